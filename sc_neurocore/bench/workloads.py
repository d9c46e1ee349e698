"""The benchmark workloads: seeded random LIF networks of three shapes, as our ``LIFNetwork`` and as the
equivalent snnTorch model, with Bernoulli input spikes.

=========  ==================  =====  ==========  ==================================================
name       layers              T      input rate  why
=========  ==================  =====  ==========  ==================================================
R-seed     64-32-10            100    10%         the tutorial's shape
R-MNIST    784-128-10          25     5%          an MNIST-sized classifier
R-deep     784-256-128-10      50     5%          more layers and a longer window
=========  ==================  =====  ==========  ==================================================

Weights are Gaussian, scaled so that about a fifth of the hidden neurons fire per step (a network that
never fires makes every explanation zero and every timing meaningless). The snnTorch twin is an
``nn.Sequential`` of bias-free ``nn.Linear`` and ``snn.Leaky`` (same beta, threshold and subtractive
reset) wrapped by `sc_neurocore.adapters.from_snntorch`; the suite checks that it gives the same
spike counts as the ``LIFNetwork`` before timing anything.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..extras import missing_extra
from ..models import LIFNetwork

#: Membrane decay and threshold of every workload.
BETA, THRESHOLD = 0.9, 1.0


class Workload(NamedTuple):
    """One benchmark shape.

    Attributes:
        name: e.g. ``"R-MNIST"``.
        sizes: layer sizes, input first.
        steps: timesteps ``T``.
        rate: input spike probability per neuron and step.
    """

    name: str
    sizes: tuple[int, ...]
    steps: int
    rate: float

    def scaled(self, factor: float) -> Workload:
        """The same workload with every size and the window shrunk by ``factor`` (for smoke runs)."""
        sizes = tuple(max(4, int(size * factor)) for size in self.sizes[:-1]) + (self.sizes[-1],)
        return Workload(self.name, sizes, max(5, int(self.steps * factor)), self.rate)


WORKLOADS = {
    "R-seed": Workload("R-seed", (64, 32, 10), 100, 0.10),
    "R-MNIST": Workload("R-MNIST", (784, 128, 10), 25, 0.05),
    "R-deep": Workload("R-deep", (784, 256, 128, 10), 50, 0.05),
}


def weights(workload: Workload, seed: int = 0) -> list[Tensor]:
    """Seeded ``(n_in, n_out)`` Gaussian weights, std ``1.5 / sqrt(expected active inputs)`` per layer."""
    generator = torch.Generator().manual_seed(seed)
    chain, active_rate = [], workload.rate
    for n_in, n_out in zip(workload.sizes[:-1], workload.sizes[1:], strict=True):
        chain.append(torch.randn(n_in, n_out, generator=generator) * (1.5 / (active_rate * n_in) ** 0.5))
        active_rate = 0.2  # hidden layers fire about this often with these scales
    return chain


def lif_network(workload: Workload, seed: int = 0) -> LIFNetwork:
    """The workload as our `LIFNetwork`."""
    return LIFNetwork(weights(workload, seed), beta=BETA, threshold=THRESHOLD, reset="subtract")


def snntorch_network(workload: Workload, seed: int = 0) -> nn.Sequential:
    """The same network as an snnTorch ``nn.Sequential`` (``init_hidden=True``, last layer ``output=True``)."""
    try:
        import snntorch as snn
    except ImportError as error:
        raise missing_extra("the snnTorch workloads need snnTorch", "snntorch") from error
    layers: list[nn.Module] = []
    linears = bias_free_linears(weights(workload, seed))
    for index, linear in enumerate(linears):
        layers += [linear, snn.Leaky(beta=BETA, threshold=THRESHOLD, reset_mechanism="subtract", init_hidden=True,
                                     output=index == len(linears) - 1)]
    return nn.Sequential(*layers)


def bias_free_linears(chain: list[Tensor], gain: float = 1.0) -> list[nn.Linear]:
    """Bias-free ``nn.Linear`` layers computing ``x @ (gain * W)`` for each ``(n_in, n_out)`` matrix ``W`` of
    ``chain``.

    Example:
        >>> [layer.weight.shape for layer in bias_free_linears([torch.ones(3, 2)], gain=10.0)]
        [torch.Size([2, 3])]
    """
    linears = []
    for weight in chain:
        linear = nn.Linear(weight.shape[0], weight.shape[1], bias=False)
        with torch.no_grad():
            linear.weight.copy_(gain * weight.T)
        linears.append(linear)
    return linears


def input_spikes(workload: Workload, batch: int = 1, seed: int = 1, rate: float | None = None) -> Tensor:
    """Bernoulli input spikes ``(batch, T, N)``; the last timestep of sample 0 always holds a spike."""
    generator = torch.Generator().manual_seed(seed)
    probability = workload.rate if rate is None else rate
    spikes = (torch.rand(batch, workload.steps, workload.sizes[0], generator=generator) < probability).float()
    spikes[0, -1, 0] = 1.0
    return spikes


class FrameworkWorkload(NamedTuple):
    """A benchmark model that exists only as one framework's model (no `LIFNetwork` twin).

    Attributes:
        name: e.g. ``"CSNN-7"``.
        steps: timesteps ``T``.
        why: what it stands for.
        scale: size factor (1.0: the real workload; smoke runs shrink the window).
        framework: ``"snnTorch"``, ``"Norse"`` or ``"SpikingJelly"``.
    """

    name: str
    steps: int
    why: str
    scale: float = 1.0
    framework: str = "snnTorch"

    def scaled(self, factor: float) -> FrameworkWorkload:
        """The same workload with the window shrunk by ``factor`` (for smoke runs)."""
        return self._replace(steps=max(3, int(self.steps * factor)), scale=factor)


FRAMEWORK_WORKLOADS = {
    "CSNN-7": FrameworkWorkload("CSNN-7", 10, "snnTorch tutorial 7: Conv2d(1, 12, 5), MaxPool2d(2), Leaky, "
                                "Conv2d(12, 64, 5), MaxPool2d(2), Leaky, Linear(1024, 10), Leaky; a bundled 28x28 digit"),
    "Synaptic": FrameworkWorkload("Synaptic", 25, "R-MNIST's 784-128-10 shape with snnTorch Synaptic neurons "
                                  "(alpha 0.8, beta 0.9)"),
    "LIFBox": FrameworkWorkload("LIFBox", 25, "R-MNIST's 784-128-10 network with Norse LIFBoxCell neurons (decay "
                                "dt * tau_mem_inv = 0.1: beta 0.9 and input gain 0.1; reset to 0), weights x10",
                                framework="Norse"),
    "LIFCell": FrameworkWorkload("LIFCell", 25, "R-MNIST's 784-128-10 network with Norse LIFCell neurons, Norse's "
                                 "default (current decay dt * tau_syn_inv = 0.2 and membrane decay 0.1: alpha 0.8, beta "
                                 "0.9, input gain 0.1; reset to 0), weights x10", framework="Norse"),
    "LIFNode": FrameworkWorkload("LIFNode", 25, "R-MNIST's 784-128-10 network with SpikingJelly LIFNode neurons "
                                 "(tau 10: beta 0.9 and input gain 0.1; hard reset to 0), weights x10",
                                 framework="SpikingJelly"),
}


def framework_network(workload: FrameworkWorkload, seed: int = 0) -> nn.Module:
    """The workload's seeded framework model (weights scaled so that every layer fires): an snnTorch
    ``nn.Sequential``, a Norse ``SequentialState`` or a SpikingJelly ``nn.Sequential`` (single-step)."""
    if workload.framework != "snnTorch":
        return _charge_network(workload, seed)
    try:
        import snntorch as snn
    except ImportError as error:
        raise missing_extra("the snnTorch workloads need snnTorch", "snntorch") from error
    torch.manual_seed(seed)  # the layers' own initialisation draws from the global generator
    if workload.name == "CSNN-7":
        model = nn.Sequential(nn.Conv2d(1, 12, 5), nn.MaxPool2d(2), snn.Leaky(beta=BETA, init_hidden=True),
                              nn.Conv2d(12, 64, 5), nn.MaxPool2d(2), snn.Leaky(beta=BETA, init_hidden=True),
                              nn.Flatten(), nn.Linear(64 * 4 * 4, 10),
                              snn.Leaky(beta=BETA, init_hidden=True, output=True))
        gains = {0: 3.0, 3: 2.0, 7: 3.0}
    else:
        model = nn.Sequential(nn.Linear(784, 128, bias=False), snn.Synaptic(alpha=0.8, beta=BETA, init_hidden=True),
                              nn.Linear(128, 10, bias=False),
                              snn.Synaptic(alpha=0.8, beta=BETA, init_hidden=True, output=True))
        gains = {0: 1.2, 2: 1.0}
    with torch.no_grad():
        for index, gain in gains.items():
            layer = model[index]
            assert isinstance(layer, (nn.Linear, nn.Conv2d))
            layer.weight.mul_(gain)
    return model.eval()


def _charge_network(workload: FrameworkWorkload, seed: int) -> nn.Module:
    """R-MNIST's weights, times 10 (the neurons' input gain is 0.1), in bias-free Linear layers, with Norse
    ``LIFBoxCell`` or ``LIFCell``, or SpikingJelly ``LIFNode`` neurons."""
    linears = bias_free_linears(weights(WORKLOADS["R-MNIST"], seed), gain=10.0)
    if workload.framework == "Norse":
        try:
            import norse.torch as norse
        except ImportError as error:
            raise missing_extra("the Norse workloads need Norse", "norse") from error
        cell = norse.LIFCell if workload.name == "LIFCell" else norse.LIFBoxCell
        return norse.SequentialState(linears[0], cell(), linears[1], cell())
    try:
        from spikingjelly.activation_based import neuron
    except ImportError as error:
        raise missing_extra("the SpikingJelly workloads need SpikingJelly", "spikingjelly") from error
    return nn.Sequential(linears[0], neuron.LIFNode(tau=10.0), linears[1], neuron.LIFNode(tau=10.0)).eval()


def framework_spikes(workload: FrameworkWorkload, seed: int = 1) -> Tensor:
    """One sample ``(1, T, 784)``: a bundled 28x28 test digit, rate coded at a quarter of its intensity (the
    CSNN), or R-MNIST's Bernoulli spikes (the Synaptic stack)."""
    if workload.name == "CSNN-7":
        from ..data.digits import digit_images
        from ..data.encoding import rate_encode

        images, _, _ = digit_images("test", size=28)
        return rate_encode(0.25 * images[:1].reshape(1, -1), workload.steps, seed=seed)
    return input_spikes(Workload(workload.name, (784, 128, 10), workload.steps, 0.05), seed=seed)
