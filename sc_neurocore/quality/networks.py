"""The networks of the quality report: the shipped digits network and networks trained here, cached.

Every network is trained by the project's one training loop (`sc_neurocore.data.train.fit`) on the
training split of the scikit-learn digits (no download); the 784-input ones on the digits upsampled to
MNIST's 28x28 layout (`sc_neurocore.data.digits`). A trained network's weights are cached under the user's
cache folder (`$SC_NEUROCORE_CACHE`, else `$XDG_CACHE_HOME/sc-neurocore`, else `~/.cache/sc-neurocore`), in a
file named by a hash of its training configuration, so a second run trains nothing. Samples explained come
from the test split: a selection set (the first `n_select`) on which every method's settings are chosen,
and the disjoint held-out set after it on which every reported number is measured.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..atomic import atomic_path, atomic_write
from ..inputs import as_positive_int

#: Bumped whenever the training code changes what a configuration produces.
TRAINING_VERSION = 2


class NetworkSpec(NamedTuple):
    """A network of the report.

    Attributes:
        name: its name in the report.
        size: `8` (8x8 digits) or `28` (28x28).
        hidden: hidden layer sizes, input side first (the shipped network: its own).
        readout: `"count"` or `"final_membrane"`.
        epochs: training epochs (`0` for the shipped network, which is loaded, not trained).
        beta, threshold: LIF parameters.
        conv: `(channels, kernel)` for a CSNN (`sc_neurocore.data.train.build_csnn`), else `None`.
    """

    name: str
    size: int
    hidden: tuple[int, ...]
    readout: str
    epochs: int
    beta: float = 0.9
    threshold: float = 1.0
    conv: tuple[int, int] | None = None

    @property
    def layers(self) -> str:
        """The architecture as text, e.g. `784-128-10` or `784-conv8x5-pool2-10`."""
        middle = [f"conv{self.conv[0]}x{self.conv[1]}", "pool2"] if self.conv else [str(n) for n in self.hidden]
        return "-".join([str(self.size * self.size), *middle, "10"])


SHIPPED = NetworkSpec("shipped 64-32-10 count", 8, (32,), "count", 0)
#: The report's networks by the key `--networks` takes.
SPECS = {"shipped": SHIPPED,
         "count128": NetworkSpec("784-128-10 count", 28, (128,), "count", 15),
         "membrane128": NetworkSpec("784-128-10 final membrane", 28, (128,), "final_membrane", 15),
         "count256": NetworkSpec("784-256-128-10 count", 28, (256, 128), "count", 15),
         "csnn": NetworkSpec("CSNN 784-conv8x5-pool2-10 count", 28, (), "count", 8, conv=(8, 5))}


class Network(NamedTuple):
    """A network ready to be explained.

    Attributes:
        spec: what it is.
        model: the `SpikingModel` (an `LIFNetwork`, or an snnTorch adapter for a membrane readout).
        weights: its `(n_in, n_out)` weight matrices (a CSNN: its `state_dict`).
        test_accuracy: accuracy on the whole test split.
        source: `"shipped"`, `"trained"` (now, in `seconds`) or `"cached"`.
        seconds: training time (0 when not trained now).
        select: `(spikes, targets)` of the selection set, targets the predicted classes.
        held_out: `(spikes, targets)` of the held-out set.
    """

    spec: NetworkSpec
    model: Any
    weights: Any
    test_accuracy: float
    source: str
    seconds: float
    select: tuple[Tensor, Tensor]
    held_out: tuple[Tensor, Tensor]

    def twin(self, spike_grad: Any) -> Any:
        """A differentiable twin (snnTorch adapter, same spikes and readout) with surrogate `spike_grad`."""
        return _network(self.spec, self.weights, spike_grad)


def _network(spec: NetworkSpec, weights: Any, spike_grad: Any = None) -> Any:
    from ..data.train import csnn_network, network_from_weights

    if spec.conv is not None:
        return csnn_network(weights, spec.size, beta=spec.beta, threshold=spec.threshold, spike_grad=spike_grad)
    return network_from_weights(weights, spec.beta, spec.threshold, spec.readout, spike_grad=spike_grad)


def cache_folder() -> Path:
    """Where trained weights are cached (see the module docstring).

    Example:
        >>> cache_folder().name
        'quality'
    """
    root = os.environ.get("SC_NEUROCORE_CACHE")
    if root is None:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(base) / "sc-neurocore")
    return Path(root) / "quality"


def training_config(spec: NetworkSpec, seed: int = 0) -> dict[str, Any]:
    """Everything that decides the trained weights, as a JSON-ready dict (the cache key hashes it).

    Example:
        >>> training_config(SPECS["count128"])["layers"]
        '784-128-10'
    """
    from ..data.digits import DEFAULT_STEPS
    from ..data.train import BATCH_SIZE, LEARNING_RATE

    return {"version": TRAINING_VERSION, "torch": torch.__version__, "size": spec.size,
            "layers": spec.layers, "conv": spec.conv, "readout": spec.readout, "epochs": spec.epochs,
            "beta": spec.beta, "threshold": spec.threshold, "n_steps": DEFAULT_STEPS, "encoding": "rate",
            "batch_size": BATCH_SIZE, "learning_rate": LEARNING_RATE, "seed": seed}


def config_hash(config: dict[str, Any]) -> str:
    """A short stable hash of a training configuration.

    Example:
        >>> config_hash({"a": 1}) == config_hash({"a": 1}) != config_hash({"a": 2})
        True
    """
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def _train(spec: NetworkSpec, seed: int, folder: Path, log: Any) -> tuple[Any, str, float]:
    from safetensors.torch import load_file, save_file

    from ..data.digits import digit_images, load_digits
    from ..data.train import train, train_csnn

    config = training_config(spec, seed)
    stem = folder / f"{spec.readout}-{spec.layers}-{config_hash(config)}"
    weights_path, record_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    if weights_path.is_file() and record_path.is_file():
        state = load_file(str(weights_path))
        if spec.conv is not None:
            return state, "cached", 0.0
        return [state[f"weights.{i}"] for i in range(len(state))], "cached", 0.0
    if log is not None:
        log(f"training {spec.name} ({spec.epochs} epochs; cached afterwards in {folder})")
    images, labels, _ = digit_images("train", spec.size)
    weights: Any
    if spec.conv is not None:
        weights, seconds = train_csnn(images, labels, channels=spec.conv[0], kernel=spec.conv[1], beta=spec.beta,
                                      threshold=spec.threshold, epochs=spec.epochs, seed=seed)
        tensors = {key: value.contiguous() for key, value in weights.items()}
    else:
        test = load_digits("test", spec.size, seed=0)
        result = train(images, labels, (test.spikes[:1], test.labels[:1]), hidden=list(spec.hidden), beta=spec.beta,
                       threshold=spec.threshold, readout=spec.readout, epochs=spec.epochs, seed=seed)
        weights, seconds = [w.detach().contiguous() for w in result.network.linear_weights()], result.seconds
        tensors = {f"weights.{i}": w for i, w in enumerate(weights)}
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(weights_path) as temporary:
        save_file(tensors, str(temporary))
    with atomic_write(record_path) as handle:
        json.dump(dict(config, training_seconds=round(seconds, 1)), handle, indent=2)
    return weights, "trained", seconds


def load_network(spec: NetworkSpec, *, n_select: int = 32, n_eval: int = 64, seed: int = 0,
                 cache: Path | None = None, log: Any = None) -> Network:
    """The network of `spec` (shipped, cached or trained now) with its selection and held-out samples.

    Args:
        spec: which network.
        n_select, n_eval: sizes of the selection and held-out sets (disjoint, from the test split).
        seed: the training seed.
        cache: the cache folder (`None`: `cache_folder()`).
        log: a callable taking a line of progress text.

    Example:
        >>> net = load_network(SHIPPED, n_select=2, n_eval=3)
        >>> net.source, net.held_out[0].shape
        ('shipped', torch.Size([3, 25, 64]))
    """
    from ..data.digits import load_digits
    from ..data.pretrained import pretrained_weights
    from ..data.train import accuracy

    n_select, n_eval = as_positive_int(n_select, "n_select"), as_positive_int(n_eval, "n_eval")
    test = load_digits("test", spec.size, seed=0)
    if n_select + n_eval > len(test.labels):
        raise ValueError(f"n_select, n_eval: together at most {len(test.labels)} test digits, got "
                         f"{n_select} + {n_eval}")
    if spec.epochs == 0:
        weights, source, seconds = pretrained_weights(spec.size), "shipped", 0.0
    else:
        weights, source, seconds = _train(spec, seed, cache_folder() if cache is None else Path(cache), log)
    model = _network(spec, weights)
    with torch.no_grad():
        predicted = model.run(test.spikes).argmax(dim=1)
    select = (test.spikes[:n_select], predicted[:n_select])
    held_out = (test.spikes[n_select:n_select + n_eval], predicted[n_select:n_select + n_eval])
    return Network(spec, model, weights, accuracy(model.run, test.spikes, test.labels), source, seconds, select,
                   held_out)
