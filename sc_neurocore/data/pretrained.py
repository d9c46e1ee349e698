"""The shipped trained digit networks, as an `LIFNetwork` or an snnTorch model.

Two networks are shipped inside the package, trained by `sc_neurocore.data.train` (surrogate-gradient
BPTT, fixed seeds) on the training split of `load_digits`:

* ``size=8``: 64-32-10, on the 8x8 digits -- the tutorial's shape;
* ``size=28``: 784-32-10, on the digits upsampled to MNIST's 28x28 layout.

Each is one ``digits{size}.safetensors`` file holding the weight matrices ``weights.0``, ``weights.1``
(``(n_in, n_out)``, the ``LIFNetwork`` convention; the network's own ``state_dict``), loaded with
`sc_neurocore.loading.load_state_dict` (no pickle), and a ``digits{size}.json`` written by the
training script with the neuron parameters, the encoding, the command that produced it and the test
accuracy it measured.

The weights lie on a grid of ``1/256``: every sum of input currents is then exact in float32, so the
``LIFNetwork``, the snnTorch model and any other summation order produce bit-identical membranes and spikes.

`to_snntorch` turns any bias-free or biased ``LIFNetwork`` into the equivalent snnTorch
``nn.Sequential`` (``Linear`` + ``snn.Leaky(init_hidden=True)`` pairs, the last with ``output=True``);
snnTorch's ``Leaky`` with its default delayed reset computes exactly `sc_neurocore.dynamics.lif_step`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from typing import Any, cast

import torch
from torch import Tensor, nn

from ..dynamics import RESET_MECHANISMS
from ..extras import missing_extra
from ..inputs import as_choice, as_weight_chain
from ..loading import load_state_dict
from ..models import LIFNetwork
from .digits import SIZES

#: The weight grid of the shipped models: multiples of ``2**-WEIGHT_FRACTION_BITS``.
WEIGHT_FRACTION_BITS = 8


def _model_file(size: int, suffix: str):
    as_choice(size, SIZES, "size")
    return resources.files(__package__).joinpath(f"digits{size}{suffix}")


def model_config(size: int = 8) -> dict[str, Any]:
    """What the training script recorded about the shipped ``size`` model.

    Keys include ``layers`` (sizes, input first), ``beta``, ``threshold``, ``reset``, ``n_steps``,
    ``encoding``, ``seed``, ``epochs``, ``command`` (how to reproduce it) and ``test_accuracy`` (measured
    by the script on ``load_digits("test", size, n_steps, encoding, seed=0)``).

    Example:
        >>> model_config(8)["layers"]
        [64, 32, 10]
    """
    return json.loads(_model_file(size, ".json").read_text(encoding="utf-8"))


def pretrained_weights(size: int = 8) -> list[Tensor]:
    """The shipped model's weight matrices, input side first, each ``(n_in, n_out)`` float32 (fresh copies).

    This is the tutorial's ``model_weights``: pass it to
    `attribute`.

    Example:
        >>> [tuple(w.shape) for w in pretrained_weights(28)]
        [(784, 32), (32, 10)]
    """
    with resources.as_file(_model_file(size, ".safetensors")) as path:
        state = load_state_dict(path)
    # A file written by the training script since LIFNetwork keeps beta and threshold as buffers also
    # holds those two; the neuron parameters of the shipped models come from their .json.
    n_layers = len(set(state) - {"beta", "threshold"})
    names = [f"weights.{index}" for index in range(n_layers)]
    if sorted(set(state) - {"beta", "threshold"}) != sorted(names):
        raise ValueError(f"weights: expected the tensors {names} in digits{size}.safetensors, got {sorted(state)}")
    return [state[name].to(torch.float32).clone() for name in names]


def pretrained_network(size: int = 8) -> LIFNetwork:
    """The shipped trained digit classifier as an `LIFNetwork`.

    Its output is the spike count of each of the 10 output neurons; the predicted digit is the ``argmax``.

    Args:
        size: ``8`` (64-32-10, 8x8 digits) or ``28`` (784-32-10, 28x28 digits).

    Example:
        >>> from sc_neurocore.data import load_digits, pretrained_network
        >>> net, test = pretrained_network(), load_digits("test")
        >>> accuracy = (net(test.spikes).argmax(dim=1) == test.labels).float().mean().item()
        >>> accuracy >= 0.9
        True
    """
    config = model_config(size)
    return LIFNetwork(pretrained_weights(size), beta=config["beta"], threshold=config["threshold"],
                      reset=config["reset"])


def pretrained_snntorch(size: int = 8) -> nn.Sequential:
    """The shipped model as an snnTorch ``nn.Sequential`` (see `to_snntorch`).

    Example:
        >>> from sc_neurocore.data import load_digits, pretrained_network, pretrained_snntorch
        >>> spikes = load_digits("test").spikes[:8]
        >>> counts = snntorch_spike_counts(pretrained_snntorch(), spikes)
        >>> bool(torch.equal(counts, pretrained_network()(spikes)))
        True
    """
    return to_snntorch(pretrained_network(size))


def _import_snntorch():
    try:
        import snntorch
    except ImportError as error:  # an optional dependency
        raise missing_extra("the snnTorch model needs snnTorch", "snntorch") from error
    return snntorch


def snntorch_sequential(weights: Sequence[Tensor], beta: float | Sequence[float] = 0.9,
                        threshold: float | Sequence[float] = 1.0, reset: str = "subtract",
                        biases: Sequence[Tensor | None] | None = None,
                        spike_grad: Any = None) -> nn.Sequential:
    """An snnTorch ``nn.Sequential`` of ``Linear`` + ``snn.Leaky(init_hidden=True)`` pairs from weight matrices.

    Args:
        weights: ``(n_in, n_out)`` matrices, input side first (copied; ``Linear.weight`` is the transpose).
        beta, threshold: one float, or one per layer.
        reset: ``"subtract"``, ``"zero"`` or ``"none"`` (snnTorch's ``reset_mechanism``).
        biases: optional per-layer bias vectors (``None`` entries: no bias).
        spike_grad: snnTorch surrogate gradient (``None``: snnTorch's default, arctan).

    Returns:
        The network; call it once per timestep on ``(B, N)`` input after resetting it (see
        `snntorch_spike_counts`). The last ``Leaky`` has ``output=True``, so the network returns
        ``(spikes, membrane)`` of the output layer.

    Example:
        >>> net = snntorch_sequential([torch.zeros(64, 32), torch.zeros(32, 10)])
        >>> [type(m).__name__ for m in net]
        ['Linear', 'Leaky', 'Linear', 'Leaky']
    """
    snn = _import_snntorch()
    weights = as_weight_chain(weights, "weights")
    as_choice(reset, RESET_MECHANISMS, "reset")
    n_layers = len(weights)
    betas = [beta] * n_layers if isinstance(beta, (int, float)) else list(beta)
    thresholds = [threshold] * n_layers if isinstance(threshold, (int, float)) else list(threshold)
    biases = [None] * n_layers if biases is None else list(biases)
    if not len(betas) == len(thresholds) == len(biases) == n_layers:
        raise ValueError(f"beta, threshold, biases: expected one value per layer ({n_layers})")
    modules: list[nn.Module] = []
    for index, weight in enumerate(weights):
        bias = biases[index]
        # skip_init: the weights are overwritten below, so draw nothing from the caller's random generator.
        linear = torch.nn.utils.skip_init(nn.Linear, weight.shape[0], weight.shape[1], bias=bias is not None,
                                          dtype=weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(weight.T)
            if bias is not None:
                linear.bias.copy_(torch.as_tensor(bias))
        options = {} if spike_grad is None else {"spike_grad": spike_grad}
        leaky = snn.Leaky(beta=float(betas[index]), threshold=float(thresholds[index]), reset_mechanism=reset,
                          init_hidden=True, output=index == n_layers - 1, **options)
        modules += [linear, leaky]
    return nn.Sequential(*modules)


def to_snntorch(network: LIFNetwork, spike_grad: Any = None) -> nn.Sequential:
    """The snnTorch ``nn.Sequential`` that computes exactly what ``network`` computes.

    snnTorch's ``Leaky`` (default delayed reset) is `sc_neurocore.dynamics.lif_step`: the reset is
    decided from the previous membrane, then ``v = beta * v + I - reset * threshold``; a spike where
    ``v > threshold``.

    Args:
        network: an `LIFNetwork` (its weights are copied, not shared).
        spike_grad: surrogate gradient for training (``None``: snnTorch's default).

    Returns:
        See `snntorch_sequential`.

    Example:
        >>> net = LIFNetwork([torch.randn(64, 32), torch.randn(32, 10)], beta=0.9, threshold=1.0)
        >>> spikes = (torch.rand(4, 25, 64) < 0.3).float()
        >>> snntorch_spike_counts(to_snntorch(net), spikes).shape
        torch.Size([4, 10])
    """
    if not isinstance(network, LIFNetwork):
        raise TypeError(f"network: expected an LIFNetwork, got {type(network).__name__}")
    biases = [network._bias(index) for index in range(len(network.weights))]
    return snntorch_sequential(network.linear_weights(), beta=network.betas, threshold=network.thresholds,
                               reset=network.reset, biases=[None if b is None else b.detach() for b in biases],
                               spike_grad=spike_grad)


def reset_snntorch(network: nn.Module) -> None:
    """Zero the hidden membrane of every snnTorch neuron in ``network`` (call before each new sequence).

    Args:
        network: a module holding snnTorch neurons built with ``init_hidden=True``.

    Example:
        >>> net = pretrained_snntorch(8)
        >>> _ = net(torch.ones(2, 64))
        >>> reset_snntorch(net)
        >>> float(net[1].mem.abs().sum())
        0.0
    """
    snn = _import_snntorch()
    for module in network.modules():
        if isinstance(module, snn.SpikingNeuron) and hasattr(module, "reset_mem"):
            module.reset_mem()


def snntorch_spike_counts(network: nn.Module, spikes: Tensor) -> Tensor:
    """Run an ``init_hidden`` snnTorch network over batch-first spikes ``(B, T, N)``; output spike counts ``(B, C)``.

    Resets the network first, then feeds one timestep at a time (snnTorch is time-first); keeps the
    autograd graph, so the training script uses it for BPTT.

    Example:
        >>> net = snntorch_sequential([torch.ones(3, 2)])
        >>> snntorch_spike_counts(net, torch.ones(1, 4, 3)).tolist()
        [[4.0, 4.0]]
    """
    if not isinstance(spikes, Tensor) or spikes.ndim != 3:
        raise ValueError(f"spikes: expected a (B, T, N) tensor, got {getattr(spikes, 'shape', type(spikes))}")
    reset_snntorch(network)
    counts = None
    for t in range(spikes.shape[1]):
        output_spikes, _ = network(spikes[:, t])
        counts = output_spikes if counts is None else counts + output_spikes
    return cast(Tensor, counts)

