"""Train the shipped digit networks: surrogate-gradient BPTT with fixed seeds, on the CPU in minutes.

Run ``python -m sc_neurocore.data.train --size 8 --out sc_neurocore/data`` (and ``--size 28``) to
reproduce the shipped ``digits{size}.safetensors`` / ``.json``. The network is built with
`sc_neurocore.data.pretrained.snntorch_sequential` (snnTorch ``Leaky`` neurons, arctan surrogate
gradient) and trained through time (BPTT) on output spike counts with a cross-entropy loss
(snnTorch's ``ce_count_loss``):

    loss = CE(softmax(sum_t s_out[t]), label)

Each epoch draws fresh rate-coded spikes of the training images (a seeded generator per batch), so the
network cannot memorise one draw. After training the weights are rounded to a grid of ``1/256`` (see
`sc_neurocore.data.pretrained`), loaded into an `sc_neurocore.models.LIFNetwork` and
evaluated once on the test split, encoded with ``seed=0`` exactly as `load_digits` gives it; that
accuracy is what the ``.json`` records. The test split is never used to choose anything.

To train on your own copy of MNIST instead, pass ``--mnist-images`` / ``--mnist-labels`` (IDX files, see
`sc_neurocore.data.load_mnist`); the test accuracy is then measured on ``--mnist-test-images`` /
``--mnist-test-labels``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..atomic import atomic_path, atomic_write
from ..inputs import as_choice, as_positive_int
from ..models import LIFNetwork
from .digits import DEFAULT_STEPS, DigitSpikes, digit_images, load_digits
from .encoding import ENCODINGS, encode
from .pretrained import WEIGHT_FRACTION_BITS, reset_snntorch, snntorch_sequential

#: Defaults of the shipped models (the command line exposes each).
HIDDEN = 32
BETA = 0.9
THRESHOLD = 1.0
EPOCHS = 30
BATCH_SIZE = 64
LEARNING_RATE = 5e-3
SEED = 0


class TrainingResult(NamedTuple):
    """What `train` returns.

    Attributes:
        network: the trained network with grid-rounded weights (an `LIFNetwork` for a count readout).
        test_accuracy: its accuracy on the test spikes.
        losses: mean training loss per epoch.
        seconds: wall-clock training time.
    """

    network: Any
    test_accuracy: float
    losses: list[float]
    seconds: float


def round_to_grid(weight: Tensor, fraction_bits: int = WEIGHT_FRACTION_BITS) -> Tensor:
    """``weight`` rounded to the nearest multiple of ``2**-fraction_bits`` (a new tensor).

    Example:
        >>> round_to_grid(torch.tensor([0.1, -0.3]), 2).tolist()
        [0.0, -0.25]
    """
    scale = 2.0 ** fraction_bits
    return torch.round(weight.detach() * scale) / scale


def accuracy(network: Any, spikes: Tensor, labels: Tensor) -> float:
    """Share of samples whose largest output (ties: lowest index) is the label.

    Args:
        network: a batched model ``(B, T, N) -> (B, C)``.
        spikes: ``(B, T, N)`` inputs.
        labels: ``(B,)`` classes.

    Returns:
        The accuracy in ``[0, 1]``.

    Example:
        >>> from sc_neurocore.data import load_digits, pretrained_network
        >>> test = load_digits("test")
        >>> accuracy(pretrained_network(8), test.spikes, test.labels) >= 0.9
        True
    """
    with torch.no_grad():
        return float((network(spikes).argmax(dim=1) == labels).to(torch.float64).mean())


#: Readouts a network can be trained on: output spike counts, or the output layer's final membrane (that
#: layer then never resets, a leaky integrator of its input).
TRAIN_READOUTS = ("count", "final_membrane")


def _hidden_sizes(hidden: Any) -> list[int]:
    if isinstance(hidden, (list, tuple)):
        if not hidden:
            raise ValueError("hidden: expected a positive int or a non-empty list of them, got []")
        return [as_positive_int(size, "hidden") for size in hidden]
    return [as_positive_int(hidden, "hidden")]


def build_model(n_inputs: int, hidden: Any, n_classes: int, *, beta: float = BETA, threshold: float = THRESHOLD,
                readout: str = "count", seed: int = SEED, spike_grad: Any = None) -> torch.nn.Sequential:
    """A freshly initialised snnTorch network `N-hidden...-C` (`nn.Linear` default init, seeded).

    Args:
        n_inputs, hidden, n_classes: layer sizes (`hidden` an int or a list of ints).
        beta, threshold: LIF parameters of every layer.
        readout: `"count"`, or `"final_membrane"` (the output layer then has `reset_mechanism="none"`).
        seed: seeds the initial weights; the caller's global random state is left as it was.
        spike_grad: snnTorch surrogate gradient (`None`: arctan).

    Example:
        >>> [type(m).__name__ for m in build_model(8, [6, 4], 3)]
        ['Linear', 'Leaky', 'Linear', 'Leaky', 'Linear', 'Leaky']
    """
    as_choice(readout, TRAIN_READOUTS, "readout")
    sizes = [n_inputs, *_hidden_sizes(hidden), n_classes]
    # nn.Linear's default initialisation draws from the global generator: seed it, and give the caller's
    # random state back afterwards.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        initial = [torch.nn.Linear(a, b, bias=False).weight.detach().T for a, b in itertools.pairwise(sizes)]
    model = snntorch_sequential(initial, beta=beta, threshold=threshold, spike_grad=spike_grad)
    if readout == "final_membrane":
        _never_reset(model)
    return model


def _never_reset(model: torch.nn.Sequential) -> None:
    """Make the output layer a leaky integrator of its input: it never resets (snnTorch's `"none"`).

    The layer is rebuilt with `reset_mechanism="none"`: setting the attribute on a built `Leaky` changes what
    it reports but not every path of its forward.
    """
    import snntorch as snn

    old: Any = model[-1]
    options = {"spike_grad": old.spike_grad} if getattr(old, "spike_grad", None) is not None else {}
    model[-1] = snn.Leaky(beta=float(old.beta), threshold=float(old.threshold), reset_mechanism="none",
                          init_hidden=True, output=True, **options)


def build_csnn(size: int, channels: int, kernel: int, n_classes: int, *, beta: float = BETA,
               threshold: float = THRESHOLD, seed: int = SEED, spike_grad: Any = None) -> torch.nn.Sequential:
    """A freshly initialised snnTorch CSNN for `size x size` one-channel images: `Conv2d(1, channels, kernel)`,
    LIF, 2x2 max pool, flatten, `Linear(..., n_classes)`, LIF (bias-free, default init, seeded).

    Example:
        >>> [type(m).__name__ for m in build_csnn(8, 2, 3, 3)]
        ['Conv2d', 'Leaky', 'MaxPool2d', 'Flatten', 'Linear', 'Leaky']
    """
    import snntorch as snn

    side = (size - kernel + 1) // 2
    options = {} if spike_grad is None else {"spike_grad": spike_grad}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        conv = torch.nn.Conv2d(1, channels, kernel, bias=False)
        linear = torch.nn.Linear(channels * side * side, n_classes, bias=False)
    return torch.nn.Sequential(conv, snn.Leaky(beta=beta, threshold=threshold, init_hidden=True, **options),
                               torch.nn.MaxPool2d(2), torch.nn.Flatten(), linear,
                               snn.Leaky(beta=beta, threshold=threshold, init_hidden=True, output=True, **options))


def readout_values(model: torch.nn.Sequential, spikes: Tensor, readout: str,
                   input_shape: tuple[int, ...] | None = None) -> Tensor:
    """Run an snnTorch network built by `build_model` over `(B, T, N)` spikes: the readout `(B, C)` (with
    the autograd graph: the training loss is taken on it).

    Example:
        >>> model = build_model(3, 4, 2)
        >>> readout_values(model, torch.ones(1, 5, 3), "final_membrane").shape
        torch.Size([1, 2])
    """
    reset_snntorch(model)
    counts: Tensor | None = None
    membrane = spikes.new_zeros(0)
    for t in range(spikes.shape[1]):
        step = spikes[:, t] if input_shape is None else spikes[:, t].reshape(spikes.shape[0], *input_shape)
        output_spikes, membrane = model(step)
        counts = output_spikes if counts is None else counts + output_spikes
    if readout == "count" and counts is not None:
        return counts
    return membrane


def trained_network(model: torch.nn.Sequential, readout: str) -> Any:
    """The trained `model` with grid-rounded weights: an `LIFNetwork` for a count readout, else the snnTorch
    network wrapped by `sc_neurocore.adapters.from_snntorch` with its readout (a fresh copy either way).

    Example:
        >>> net = trained_network(build_model(4, 3, 2), "count")
        >>> net.neuron_layers
        {'0': 3, '1': 2}
    """
    weights = [round_to_grid(module.weight.T) for module in model if isinstance(module, torch.nn.Linear)]
    leaky: list[Any] = [module for module in model if not isinstance(module, torch.nn.Linear)]
    return network_from_weights(weights, float(leaky[0].beta), float(leaky[0].threshold), readout)


def network_from_weights(weights: list[Tensor], beta: float, threshold: float, readout: str,
                         spike_grad: Any = None) -> Any:
    """The network `build_model` trains, with these `(n_in, n_out)` weights: an `LIFNetwork` for a count
    readout (subtractive reset), else an snnTorch stack whose output layer never resets, wrapped by
    `sc_neurocore.adapters.from_snntorch` with the readout. With `spike_grad` (a surrogate) it is always the
    snnTorch adapter, for gradient methods.

    Example:
        >>> net = network_from_weights([torch.ones(3, 2)], 0.9, 1.0, "final_membrane")
        >>> net.readout
        'final_membrane'
    """
    as_choice(readout, TRAIN_READOUTS, "readout")
    if readout == "count" and spike_grad is None:
        return LIFNetwork(weights, beta=beta, threshold=threshold, reset="subtract")
    from ..adapters import from_snntorch

    stack = snntorch_sequential(weights, beta=beta, threshold=threshold, spike_grad=spike_grad)
    if readout == "final_membrane":
        _never_reset(stack)
    stack.requires_grad_(False)
    return from_snntorch(stack, readout=readout)


def fit(model: torch.nn.Sequential, n_samples: int, labels: Tensor, draw: Any, *, readout: str = "count",
        epochs: int = EPOCHS, batch_size: int = BATCH_SIZE, learning_rate: float = LEARNING_RATE, seed: int = SEED,
        max_batches: int | None = None, log: Any = None, input_shape: tuple[int, ...] | None = None) -> list[float]:
    """The one training loop of the project: surrogate-gradient BPTT with Adam on a cross-entropy loss.

    Args:
        model: an snnTorch network (`build_model`), trained in place.
        n_samples: training samples.
        labels: `(n_samples,)` classes.
        draw: `draw(indices, draw_seed) -> (b, T, N)` spikes of those samples (fresh spikes per batch for
            images, fixed ones for a spike task).
        readout: what the loss is taken on (`readout_values`).
        epochs, batch_size, learning_rate: the optimiser's schedule.
        seed: seeds the batch order and the draws.
        max_batches: stop each epoch after this many batches (`None`: all).
        log: a callable taking one line of progress text.
        input_shape: the per-step shape the model takes (`(1, 28, 28)` for a CSNN), `None` for flat input.

    Returns:
        The mean training loss per epoch.

    Example:
        >>> model = build_model(4, 3, 2)
        >>> spikes, labels = torch.ones(8, 5, 4), torch.arange(8) % 2
        >>> len(fit(model, 8, labels, lambda rows, _: spikes[rows], epochs=2, batch_size=4))
        2
    """
    epochs, batch_size = as_positive_int(epochs, "epochs"), as_positive_int(batch_size, "batch_size")
    if not isinstance(learning_rate, (int, float)) or isinstance(learning_rate, bool) or not 0 < learning_rate < 1e3:
        raise ValueError(f"learning_rate: expected a positive float, got {learning_rate!r}")
    if max_batches is not None:
        max_batches = as_positive_int(max_batches, "max_batches")
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    order_generator = torch.Generator().manual_seed(seed)
    loss_function = torch.nn.CrossEntropyLoss()
    start = time.perf_counter()
    losses = []
    for epoch in range(epochs):
        order = torch.randperm(n_samples, generator=order_generator)
        batches = order.split(batch_size)[:max_batches]
        total = 0.0
        for batch in batches:
            draw_seed = int(torch.randint(2**31 - 1, (1,), generator=order_generator))
            loss = loss_function(readout_values(model, draw(batch, draw_seed), readout, input_shape), labels[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach())
        losses.append(total / len(batches))
        if log is not None:
            log(f"epoch {epoch + 1:>3d}/{epochs}: loss {losses[-1]:.4f} ({time.perf_counter() - start:.0f} s)")
    return losses


def train(train_images: Tensor, train_labels: Tensor, test: DigitSpikes | tuple[Tensor, Tensor], *,
          hidden: int | list[int] = HIDDEN, n_steps: int = DEFAULT_STEPS, encoding: str = "rate",
          beta: float = BETA, threshold: float = THRESHOLD, readout: str = "count", epochs: int = EPOCHS,
          batch_size: int = BATCH_SIZE, learning_rate: float = LEARNING_RATE, seed: int = SEED,
          max_batches: int | None = None, log: Any = None) -> TrainingResult:
    """Train an `N-hidden-10` LIF network on images with surrogate-gradient BPTT (see the module docstring).

    Args:
        train_images: `(B, ...)` intensities in `[0, 1]` (flattened to `(B, N)`).
        train_labels: `(B,)` integer classes.
        test: `(spikes (B, T, N), labels (B,))` to measure the final accuracy on.
        hidden: hidden layer size, or a list of sizes (input side first).
        n_steps: timesteps per sample.
        encoding: `"rate"` or `"latency"`.
        beta, threshold: LIF parameters of every layer.
        readout: `"count"` (an `LIFNetwork` comes back) or `"final_membrane"` (an snnTorch adapter).
        epochs: passes over the training set.
        batch_size: samples per gradient step.
        learning_rate: Adam's step size.
        seed: seeds the initial weights, the batch order and the spike draws.
        max_batches: stop each epoch after this many batches (`None`: all); for smoke tests.
        log: a callable taking one line of progress text (`None`: silent).

    Returns:
        A `TrainingResult`.

    Example:
        >>> from sc_neurocore.data import load_digits
        >>> from sc_neurocore.data.digits import digit_images
        >>> images, labels, _ = digit_images("train")
        >>> result = train(images, labels, load_digits("test")[:2], epochs=1, max_batches=2)
        >>> 0.0 <= result.test_accuracy <= 1.0
        True
    """
    as_choice(encoding, ENCODINGS, "encoding")
    as_choice(readout, TRAIN_READOUTS, "readout")
    intensities = torch.as_tensor(train_images).reshape(len(train_images), -1).to(torch.float32)
    labels = torch.as_tensor(train_labels, dtype=torch.long)
    if labels.shape != (len(intensities),):
        raise ValueError(f"train_labels: expected one label per image ({len(intensities)},), got shape "
                         f"{tuple(labels.shape)}")
    model = build_model(intensities.shape[1], hidden, int(labels.max()) + 1, beta=beta, threshold=threshold,
                        readout=readout, seed=seed)
    start = time.perf_counter()
    losses = fit(model, len(labels), labels, lambda rows, draw_seed: encode(intensities[rows], n_steps, encoding,
                                                                             seed=draw_seed),
                 readout=readout, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                 max_batches=max_batches, log=log)
    seconds = time.perf_counter() - start
    network = trained_network(model, readout)
    return TrainingResult(network, accuracy(network, test[0], test[1]), losses, seconds)


def train_csnn(train_images: Tensor, train_labels: Tensor, *, channels: int = 8, kernel: int = 5,
               n_steps: int = DEFAULT_STEPS, beta: float = BETA, threshold: float = THRESHOLD, epochs: int = EPOCHS,
               batch_size: int = BATCH_SIZE, learning_rate: float = LEARNING_RATE, seed: int = SEED,
               max_batches: int | None = None, log: Any = None) -> tuple[dict[str, Tensor], float]:
    """Train a `build_csnn` network on square images with `fit` (rate coding, fresh spikes per batch).

    Returns:
        `(state_dict, seconds)`: the trained weights rounded to the grid, and the training time.

    Example:
        >>> images, labels = torch.rand(8, 8, 8), torch.arange(8) % 2
        >>> state, _ = train_csnn(images, labels, channels=2, kernel=3, n_steps=4, epochs=1)
        >>> sorted(state)
        ['0.weight', '4.weight']
    """
    size = int(train_images.shape[-1])
    intensities = torch.as_tensor(train_images).reshape(len(train_images), -1).to(torch.float32)
    labels = torch.as_tensor(train_labels, dtype=torch.long)
    model = build_csnn(size, channels, kernel, int(labels.max()) + 1, beta=beta, threshold=threshold, seed=seed)
    start = time.perf_counter()
    fit(model, len(labels), labels, lambda rows, draw_seed: encode(intensities[rows], n_steps, "rate", seed=draw_seed),
        epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed, max_batches=max_batches,
        log=log, input_shape=(1, size, size))
    state = {key: round_to_grid(value) for key, value in model.state_dict().items() if key.endswith("weight")}
    return state, time.perf_counter() - start


def csnn_network(state: dict[str, Tensor], size: int, *, beta: float = BETA, threshold: float = THRESHOLD,
                 spike_grad: Any = None) -> Any:
    """A trained CSNN (`train_csnn`'s weights) wrapped by `sc_neurocore.adapters.from_snntorch` (count readout,
    flat `(B, T, size * size)` spikes in).

    Example:
        >>> state, _ = train_csnn(torch.rand(4, 8, 8), torch.arange(4) % 2, channels=2, kernel=3, n_steps=3, epochs=1)
        >>> csnn_network(state, 8).neuron_layers
        {'1': 72, '5': 2}
    """
    from ..adapters import from_snntorch

    channels, _, kernel, _ = state["0.weight"].shape
    module = build_csnn(size, channels, kernel, state["4.weight"].shape[0], beta=beta, threshold=threshold,
                        spike_grad=spike_grad)
    module.load_state_dict(state, strict=False)
    module.requires_grad_(False)
    return from_snntorch(module, readout="count", input_shape=(1, size, size))


def train_on_spikes(spikes: Tensor, labels: Tensor, *, hidden: int | list[int] = HIDDEN, beta: float = BETA,
                    threshold: float = THRESHOLD, epochs: int = 20, batch_size: int = BATCH_SIZE,
                    learning_rate: float = LEARNING_RATE, seed: int = SEED) -> LIFNetwork:
    """Train a count-readout `LIFNetwork` on fixed spikes `(B, T, N)` (a spike task) with `fit`.

    Example:
        >>> spikes, labels = (torch.rand(16, 6, 5) < 0.3).float(), torch.arange(16) % 2
        >>> train_on_spikes(spikes, labels, hidden=4, epochs=1).neuron_layers
        {'0': 4, '1': 2}
    """
    labels = torch.as_tensor(labels, dtype=torch.long)
    if spikes.ndim != 3 or labels.shape != (spikes.shape[0],):
        raise ValueError(f"spikes, labels: expected (B, T, N) spikes and (B,) labels, got {tuple(spikes.shape)} "
                         f"and {tuple(labels.shape)}")
    model = build_model(spikes.shape[2], hidden, int(labels.max()) + 1, beta=beta, threshold=threshold, seed=seed)
    fit(model, len(labels), labels, lambda rows, _: spikes[rows], epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, seed=seed)
    return trained_network(model, "count")


def save(result: TrainingResult, folder: str | Path, name: str, config: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``folder/name.safetensors`` (the network's ``state_dict``) and ``folder/name.json``, atomically.

    Args:
        result: what `train` returned.
        folder: the output folder (created if missing).
        name: the file name stem (``digits8`` for the shipped 8x8 model).
        config: what to record beside the measured accuracy, loss and time (hyperparameters, command).

    Returns:
        The paths of the weights and of the record.

    Example:
        >>> import tempfile
        >>> from sc_neurocore.data import load_digits
        >>> from sc_neurocore.data.digits import digit_images
        >>> images, labels, _ = digit_images("train")
        >>> result = train(images, labels, load_digits("test")[:2], epochs=1, max_batches=1)
        >>> [path.name for path in save(result, tempfile.mkdtemp(), "digits8", {"seed": 0})]
        ['digits8.safetensors', 'digits8.json']
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights_path, config_path = folder / f"{name}.safetensors", folder / f"{name}.json"
    state = {key: value.detach().contiguous() for key, value in result.network.state_dict().items()}
    with atomic_path(weights_path) as temporary:
        save_file(state, str(temporary))
    record = dict(config, test_accuracy=round(result.test_accuracy, 6),
                  final_loss=round(result.losses[-1], 6), training_seconds=round(result.seconds, 1))
    with atomic_write(config_path) as handle:
        json.dump(record, handle, indent=2)
        handle.write("\n")
    return weights_path, config_path


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m sc_neurocore.data.train`` (every `train` option)."""
    parser = argparse.ArgumentParser(prog="python -m sc_neurocore.data.train", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, choices=(8, 28), default=8, help="8x8 digits or the 28x28 variant")
    parser.add_argument("--out", default=".", help="folder for digits{size}.safetensors and .json")
    parser.add_argument("--hidden", type=int, default=HIDDEN)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="timesteps per sample")
    parser.add_argument("--encoding", choices=ENCODINGS, default="rate")
    parser.add_argument("--beta", type=float, default=BETA)
    parser.add_argument("--threshold", type=float, default=THRESHOLD)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--lr", type=float, default=LEARNING_RATE)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--max-batches", type=int, default=None, help="batches per epoch (smoke tests)")
    parser.add_argument("--name", default=None, help="file name stem (default: digits{size}, or mnist)")
    parser.add_argument("--mnist-images", help="your MNIST training images (IDX, optionally .gz)")
    parser.add_argument("--mnist-labels", help="your MNIST training labels (IDX)")
    parser.add_argument("--mnist-test-images", help="your MNIST test images (IDX)")
    parser.add_argument("--mnist-test-labels", help="your MNIST test labels (IDX)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Train, evaluate once on the test split and write the weights and their record; returns 0."""
    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)  # small per-step ops: one thread is fastest and the result does not vary
    mnist = [args.mnist_images, args.mnist_labels, args.mnist_test_images, args.mnist_test_labels]
    if any(mnist):
        if not all(mnist):
            raise ValueError("--mnist-images, --mnist-labels, --mnist-test-images and --mnist-test-labels "
                             "go together")
        from .mnist import load_mnist, read_mnist

        try:
            images, labels = read_mnist(args.mnist_images, args.mnist_labels)
            test = load_mnist(args.mnist_test_images, args.mnist_test_labels, n_steps=args.steps,
                              encoding=args.encoding, seed=0)
        except (ValueError, OSError) as error:  # a file that is not IDX, or missing: one line, no traceback
            print(f"python -m sc_neurocore.data.train: error: {error}", file=sys.stderr)
            return 2
        name, source = args.name or "mnist", "user MNIST (IDX files)"
    else:
        images, labels, _ = digit_images("train", args.size)
        test = load_digits("test", args.size, args.steps, args.encoding, seed=0)
        name, source = args.name or f"digits{args.size}", "sklearn digits"
    print(f"training {source}: {len(labels)} images of {images.shape[-1]}x{images.shape[-1]}, "
          f"T={args.steps}, {args.encoding} coding, {args.epochs} epochs", flush=True)
    result = train(images, labels, test, hidden=args.hidden, n_steps=args.steps, encoding=args.encoding,
                   beta=args.beta, threshold=args.threshold, epochs=args.epochs, batch_size=args.batch_size,
                   learning_rate=args.lr, seed=args.seed, max_batches=args.max_batches,
                   log=lambda line: print(line, flush=True))
    # The exact command line, so that the record says how to reproduce these weights.
    command = "python -m sc_neurocore.data.train " + shlex.join(sys.argv[1:] if argv is None else argv)
    config = {"layers": [images[0].numel(), args.hidden, int(labels.max()) + 1], "beta": args.beta,
              "threshold": args.threshold, "reset": "subtract", "n_steps": args.steps, "encoding": args.encoding,
              "data": source, "seed": args.seed, "epochs": args.epochs, "batch_size": args.batch_size,
              "learning_rate": args.lr, "weight_grid": f"2**-{WEIGHT_FRACTION_BITS}",
              "torch": torch.__version__, "command": command.strip()}
    weights_path, _ = save(result, args.out, name, config)
    print(f"test accuracy {result.test_accuracy:.4f} ({len(test[1])} images); wrote {weights_path} "
          f"in {result.seconds:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
