"""SpikingJelly zoo entries: networks built as SpikingJelly's tutorials build them (`layer.*` modules,
`neuron.*Node`, `functional.set_step_mode`, `layer.SeqToANNContainer`), seeded and scaled so that every
layer fires on the bundled digits. `raw_forward` is SpikingJelly's own loop: `functional.reset_net(net)`,
then the network over all timesteps (one call per step in single-step mode, one call in multi-step
mode), read out as the tutorials do, `out_fr = out.mean(0)`."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from sc_neurocore.data import load_digits

from .entry import Built, ZooModel

STEPS = 10
BATCH = 3


def _digits(size: int = 8) -> Tensor:
    """`(BATCH, STEPS, size * size)` rate-coded digit spikes."""
    return load_digits("test", size=size, n_steps=STEPS).spikes[:BATCH]


def sj_forward(net: nn.Module, step_mode: str, input_shape: tuple[int, ...]) -> Callable[[Tensor], Tensor]:
    """SpikingJelly's own forward: reset, run over time, mean firing rate `(B, C)` (no sc-neurocore in it)."""
    from spikingjelly.activation_based import functional

    def forward(spikes: Tensor) -> Tensor:
        x = spikes.transpose(0, 1).reshape(spikes.shape[1], spikes.shape[0], *input_shape)
        with torch.no_grad():
            functional.reset_net(net)
            out = net(x) if step_mode == "m" else torch.stack([net(x_t) for x_t in x])
            functional.reset_net(net)
        return out.mean(0)
    return forward


def sj_silence_hook(step_mode: str) -> Callable[[nn.Module, int], Callable]:
    """`silence_hook(module, neuron)`: the forward hook (for `module.register_forward_hook`) that zeroes
    neuron `neuron` (flat index within one sample) of a SpikingJelly neuron's output, `(B, ...)` per step or
    `(T, B, ...)` per sequence."""
    lead = 2 if step_mode == "m" else 1

    def silence_hook(module: nn.Module, neuron: int) -> Callable:
        def hook(mod, args, output):
            out = output.clone()
            out.flatten(start_dim=lead)[..., neuron] = 0
            return out
        return hook
    return silence_hook


def _scale(linear: nn.Module, gain: float) -> None:
    with torch.no_grad():
        linear.weight.mul_(gain)


def _built(net: nn.Module, step_mode: str, input_shape: tuple[int, ...], hidden: dict[str, int]) -> Built:
    from sc_neurocore.adapters import from_spikingjelly

    net.eval()
    modules = dict(net.named_modules())
    return Built(from_spikingjelly(net, input_shape=input_shape), sj_forward(net, step_mode, input_shape),
                 _digits(math.isqrt(math.prod(input_shape))),
                 {name: (modules[name], size) for name, size in hidden.items()}, sj_silence_hook(step_mode))


def single_step_mlp() -> Built:
    """The single-step tutorial MLP: `Flatten, Linear, LIFNode, Linear, LIFNode`, fed one step per call."""
    from spikingjelly.activation_based import layer, neuron, surrogate

    torch.manual_seed(0)
    net = nn.Sequential(layer.Flatten(), layer.Linear(64, 24), neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan()),
                        layer.Linear(24, 10), neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan()))
    _scale(net[1], 5.0)
    _scale(net[3], 8.0)
    return _built(net, "s", (1, 8, 8), {"2": 24})


def multi_step_mlp() -> Built:
    """A multi-step MLP (`functional.set_step_mode(net, "m")`): IF hidden layer with hard reset, soft-reset
    LIF output with `decay_input=False`."""
    from spikingjelly.activation_based import functional, layer, neuron

    torch.manual_seed(1)
    net = nn.Sequential(layer.Linear(64, 24), neuron.IFNode(), layer.Linear(24, 10),
                        neuron.LIFNode(tau=3.0, decay_input=False, v_reset=None))
    functional.set_step_mode(net, "m")
    _scale(net[0], 2.0)
    _scale(net[2], 3.0)
    return _built(net, "m", (64,), {"1": 24})


def multi_step_csnn() -> Built:
    """The CSNN of SpikingJelly's convolutional tutorial, shrunk to 8x8: `Conv2d, BatchNorm2d, IFNode,
    MaxPool2d, Flatten, Linear, IFNode` in multi-step mode; BatchNorm statistics from one training pass."""
    from spikingjelly.activation_based import functional, layer, neuron

    torch.manual_seed(2)
    net = nn.Sequential(layer.Conv2d(1, 4, 3, padding=1, bias=False), layer.BatchNorm2d(4), neuron.IFNode(),
                        layer.MaxPool2d(2), layer.Flatten(), layer.Linear(4 * 4 * 4, 10, bias=False), neuron.IFNode())
    functional.set_step_mode(net, "m")
    with torch.no_grad():
        net.train()
        net(load_digits("train", size=8, n_steps=STEPS).spikes[:32].transpose(0, 1).reshape(STEPS, 32, 1, 8, 8))
        functional.reset_net(net)
        net[1].weight.mul_(2.0)
    _scale(net[5], 2.0)
    return _built(net, "m", (1, 8, 8), {"2": 4 * 8 * 8})


def plif_seq_to_ann() -> Built:
    """Multi-step `SeqToANNContainer(Linear)` + `ParametricLIFNode` with learned (moved) `w`, hard-reset
    hidden layer with `decay_input=False`, soft-reset output."""
    from spikingjelly.activation_based import layer, neuron

    torch.manual_seed(3)
    net = nn.Sequential(layer.SeqToANNContainer(nn.Linear(64, 24)),
                        neuron.ParametricLIFNode(init_tau=2.0, decay_input=False, step_mode="m"),
                        layer.SeqToANNContainer(nn.Linear(24, 10)),
                        neuron.ParametricLIFNode(init_tau=3.0, v_reset=None, step_mode="m"))
    with torch.no_grad():
        net[1].w.add_(0.37)
        net[3].w.sub_(0.21)
    _scale(net[0][0], 2.5)
    _scale(net[2][0], 8.0)
    return _built(net, "m", (64,), {"1": 24})


class OwnLoop(nn.Module):
    """A user module with its own time loop over single-step SpikingJelly neurons, taking `(T, B, N)`."""

    def __init__(self) -> None:
        from spikingjelly.activation_based import neuron

        super().__init__()
        self.fc1, self.lif1 = nn.Linear(64, 24), neuron.LIFNode(tau=2.5)
        self.fc2, self.lif2 = nn.Linear(24, 10), neuron.IFNode(v_reset=None)

    def forward(self, x_seq: Tensor) -> Tensor:
        return torch.stack([self.lif2(self.fc2(self.lif1(self.fc1(x)))) for x in x_seq])


def own_loop() -> Built:
    """`OwnLoop`, wrapped with `from_module(net, time_first=True, readout="rate")`."""
    from sc_neurocore.adapters import from_module

    torch.manual_seed(5)
    net = OwnLoop()
    _scale(net.fc1, 8.0)
    _scale(net.fc2, 4.0)
    net.eval()
    return Built(from_module(net, time_first=True, readout="rate"), sj_forward(net, "m", (64,)), _digits(),
                 {"lif1": (net.lif1, 24)}, sj_silence_hook("s"))


def qif_generic() -> Built:
    """A neuron without a graph step function (`QIFNode`): explained exactly through SpikingJelly's forward."""
    from spikingjelly.activation_based import layer, neuron

    torch.manual_seed(4)
    net = nn.Sequential(layer.Linear(64, 16), neuron.QIFNode(), layer.Linear(16, 10), neuron.IFNode())
    _scale(net[0], 4.0)
    _scale(net[2], 3.0)
    return _built(net, "s", (64,), {"1": 16})


#: SpikeAttributor takes its weight paths from a weight chain or the traced graph; without either it refuses.
_NO_CHAIN = {"attribution_linear": "not a stack of linear layers", "attribution_gated": "not a stack of linear layers"}

MODELS: list[ZooModel] = [
    ZooModel("spikingjelly-single-step-mlp", "spikingjelly", ("Flatten", "Linear", "LIFNode"), single_step_mlp,
             "spikingjelly"),
    ZooModel("spikingjelly-multi-step-mlp", "spikingjelly", ("Linear", "IFNode", "LIFNode"), multi_step_mlp,
             "spikingjelly"),
    ZooModel("spikingjelly-multi-step-csnn", "spikingjelly",
             ("Conv2d", "BatchNorm2d", "IFNode", "MaxPool2d", "Flatten", "Linear"), multi_step_csnn, "spikingjelly"),
    ZooModel("spikingjelly-plif-seq-to-ann", "spikingjelly", ("SeqToANNContainer", "Linear", "ParametricLIFNode"),
             plif_seq_to_ann, "spikingjelly"),
    ZooModel("spikingjelly-own-time-loop", "spikingjelly", ("Linear", "LIFNode", "IFNode"), own_loop, "spikingjelly"),
    ZooModel("spikingjelly-qif-generic", "spikingjelly", ("Linear", "QIFNode", "IFNode"), qif_generic, "spikingjelly",
             refused=_NO_CHAIN, engine="generic"),
]
