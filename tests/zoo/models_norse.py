"""Norse zoo entries: networks built as Norse's documentation and tutorials build them (`SequentialState`
stacks of torch layers and `norse.torch` neurons, and the tutorials' module with its own time loop and a
max-over-time decoder), seeded and scaled so that every layer is active on the bundled digits.

`raw_forward` is Norse's own loop, with nothing of sc-neurocore in it: a stack of cells is fed one
`(B, ...)` timestep per call carrying the state list from `None`, a stack of sequence-level layers the
whole `(T, B, ...)` sequence in one call, a mix `(1, B, ...)` one-step chunks; the readout is the output
spike count, or the maximum over time of a leaky-integrator output's voltage (the tutorials' decoder).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from sc_neurocore.data import load_digits

from .entry import Built, ZooModel

STEPS = 16
BATCH = 2


def _digits(size: int = 8) -> Tensor:
    """`(BATCH, STEPS, size * size)` rate-coded digit spikes."""
    return load_digits("test", size=size, n_steps=STEPS).spikes[:BATCH]


def _decode(outputs: Tensor, integrator: bool) -> Tensor:
    """`(T, B, ...)` outputs -> `(B, C)`: max voltage over time for a leaky integrator, else spike count."""
    flat = outputs.reshape(outputs.shape[0], outputs.shape[1], -1)
    return flat.amax(dim=0) if integrator else flat.sum(dim=0)


def norse_forward(net: nn.Module, feed: str, input_shape: tuple[int, ...],
                  integrator: bool) -> Callable[[Tensor], Tensor]:
    """Norse's own forward of a `SequentialState` (see the module docstring), read out `(B, C)`."""

    def forward(spikes: Tensor) -> Tensor:
        x = spikes.transpose(0, 1).reshape(spikes.shape[1], spikes.shape[0], *input_shape)
        with torch.no_grad():
            if feed == "sequence":
                outputs, _ = net(x)
            else:
                state, steps = None, []
                for x_t in x:
                    out, state = net(x_t[None] if feed == "chunk" else x_t, state)
                    steps.append(out[0] if feed == "chunk" else out)
                outputs = torch.stack(steps)
        return _decode(outputs, integrator)
    return forward


def norse_silence_hook(lead: int) -> Callable[[nn.Module, int], Callable]:
    """`silence_hook(module, neuron)`: a forward hook (the harness registers it) zeroing neuron `neuron` (flat
    index within one sample) of a Norse neuron's `(z, state)` output, whose first `lead` dimensions are
    batch (and time); a recurrent layer's fed-back `state.z` is silenced too, so a silenced neuron stops
    feeding its own layer."""

    def silence_hook(module: nn.Module, neuron: int) -> Callable:
        def hook(mod, args, output):
            z, state = output
            z = z.clone()
            z.flatten(start_dim=lead)[..., neuron] = 0
            if hasattr(state, "z") and state.z.shape == z.shape:
                state = state._replace(z=z)
            return z, state
        return hook
    return silence_hook


def scale_weights(module: nn.Module, gain: float) -> nn.Module:
    """Multiply every weight matrix or kernel of `module` by `gain` (Norse cells' own weights included)."""
    with torch.no_grad():
        for parameter in module.parameters():
            if parameter.ndim > 1:
                parameter.mul_(gain)
    return module


def _stack(net: nn.Module, feed: str, input_shape: tuple[int, ...], integrator: bool, hidden: dict[str, int],
           lead: int, *, bare: bool = False) -> Built:
    """A stack's entry: wrapped with `from_norse`, or `bare` (the explainers pick the front end) with
    spikes shaped `(B, T, *input_shape)`."""
    from sc_neurocore.adapters import from_norse

    modules = dict(net.named_modules())
    spikes = _digits()
    model = net if bare else from_norse(net, input_shape=input_shape)
    return Built(model, norse_forward(net, feed, input_shape, integrator),
                 spikes.reshape(*spikes.shape[:2], *input_shape) if bare else spikes,
                 {name: (modules[name], size) for name, size in hidden.items()}, norse_silence_hook(lead))


def mlp_lif_cell_li_cell() -> Built:
    """The documentation's stack: `Linear, LIFCell, Linear, LICell`, max-voltage readout."""
    import norse.torch as norse

    torch.manual_seed(10)
    net = norse.SequentialState(scale_weights(nn.Linear(64, 24), 12.0), norse.LIFCell(),
                                scale_weights(nn.Linear(24, 10), 6.0),
                                norse.LICell())
    return _stack(net, "step", (64,), True, {"1": 24}, 1)


def conv_stack() -> Built:
    """A convolutional stack fed 4-D `(B, C, H, W)` steps: `Conv2d, LIFCell, MaxPool2d, Flatten, Linear, LIFCell`,
    passed bare with image-shaped spikes (the explainers wrap it with `from_norse`)."""
    import norse.torch as norse

    torch.manual_seed(11)
    net = norse.SequentialState(scale_weights(nn.Conv2d(1, 4, 3, padding=1), 10.0), norse.LIFCell(), nn.MaxPool2d(2),
                                nn.Flatten(), scale_weights(nn.Linear(4 * 4 * 4, 10), 12.0), norse.LIFCell())
    return _stack(net, "step", (1, 8, 8), False, {"1": 4 * 8 * 8}, 1, bare=True)


def lif_recurrent_cell() -> Built:
    """`LIFRecurrentCell` (its own input and recurrent weights) then `LILinearCell` (its own input weights)."""
    import norse.torch as norse

    torch.manual_seed(12)
    cell = norse.LIFRecurrentCell(64, 24)
    readout = norse.LILinearCell(24, 10)
    with torch.no_grad():
        cell.input_weights.mul_(4.0)
        cell.recurrent_weights.mul_(3.0)
        readout.input_weights.mul_(8.0)
    net = norse.SequentialState(cell, readout)
    return _stack(net, "step", (64,), True, {"0": 24}, 1)


def lif_box_cell() -> Built:
    """`LIFBoxCell` layers (no synaptic current): a subtractive-reset hidden layer, a value-reset output."""
    import norse.torch as norse
    from norse.torch.functional.reset import reset_subtract

    torch.manual_seed(13)
    hidden = norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=torch.as_tensor(200.0), reset_method=reset_subtract))
    net = norse.SequentialState(scale_weights(nn.Linear(64, 24), 12.0), hidden, scale_weights(nn.Linear(24, 10), 12.0),
                                norse.LIFBoxCell())
    return _stack(net, "step", (64,), False, {"1": 24}, 1)


def sequence_lif() -> Built:
    """Sequence-level layers called once on the whole sequence: `Linear, LIF, Linear, LIF`."""
    import norse.torch as norse

    torch.manual_seed(14)
    net = norse.SequentialState(scale_weights(nn.Linear(64, 24), 12.0), norse.LIF(),
                                scale_weights(nn.Linear(24, 10), 10.0),
                                norse.LIF())
    return _stack(net, "sequence", (64,), False, {"1": 24}, 2)


def mixed_cell_and_li() -> Built:
    """A cell and a sequence-level leaky integrator in one stack, fed `(1, B, N)` one-step chunks."""
    import norse.torch as norse

    torch.manual_seed(15)
    net = norse.SequentialState(scale_weights(nn.Linear(64, 24), 12.0), norse.LIFCell(),
                                scale_weights(nn.Linear(24, 10), 6.0),
                                norse.LI())
    return _stack(net, "chunk", (64,), True, {"1": 24}, 2)


class TutorialSNN(nn.Module):
    """The Norse tutorials' network: `Linear, LIFCell, Linear, LICell` with its own loop over time,
    returning the output voltages `(T, B, C)` (the decoder takes their maximum over time)."""

    def __init__(self, n_inputs: int = 64, n_hidden: int = 24, n_outputs: int = 10) -> None:
        import norse.torch as norse

        super().__init__()
        self.fc_in = nn.Linear(n_inputs, n_hidden, bias=False)
        self.lif = norse.LIFCell(norse.LIFParameters(alpha=torch.as_tensor(100.0), v_th=torch.as_tensor(0.5)))
        self.fc_out = nn.Linear(n_hidden, n_outputs, bias=False)
        self.out = norse.LICell()

    def forward(self, x: Tensor) -> Tensor:
        s1 = so = None
        voltages = []
        for ts in range(x.shape[0]):
            z = self.fc_in(x[ts])
            z, s1 = self.lif(z, s1)
            z = self.fc_out(z)
            vo, so = self.out(z, so)
            voltages.append(vo)
        return torch.stack(voltages)


def tutorial_module() -> Built:
    """The tutorial module through `from_norse` (readout `"max_membrane"`, its default for an LI output)."""
    from sc_neurocore.adapters import from_norse

    torch.manual_seed(16)
    net = TutorialSNN()
    scale_weights(net.fc_in, 8.0)
    scale_weights(net.fc_out, 6.0)

    def forward(spikes: Tensor) -> Tensor:
        with torch.no_grad():
            return net(spikes.transpose(0, 1)).amax(dim=0)

    return Built(from_norse(net), forward, _digits(), {"lif": (net.lif, 24)}, norse_silence_hook(1))


MODELS: list[ZooModel] = [
    ZooModel("norse-linear-lifcell-licell", "norse", ("Linear", "LIFCell", "LICell"), mlp_lif_cell_li_cell, "norse"),
    ZooModel("norse-conv-stack", "norse", ("Conv2d", "LIFCell", "MaxPool2d", "Flatten", "Linear"), conv_stack,
             "norse"),
    ZooModel("norse-lif-recurrent-cell", "norse", ("LIFRecurrentCell", "LILinearCell"), lif_recurrent_cell, "norse",
             refused={"attribution_linear": "recurren", "attribution_gated": "recurren"}),
    ZooModel("norse-lif-box-cell", "norse", ("Linear", "LIFBoxCell"), lif_box_cell, "norse"),
    ZooModel("norse-sequence-lif", "norse", ("Linear", "LIF"), sequence_lif, "norse"),
    ZooModel("norse-mixed-cell-and-li", "norse", ("Linear", "LIFCell", "LI"), mixed_cell_and_li, "norse"),
    ZooModel("norse-tutorial-module", "norse", ("Linear", "LIFCell", "LICell"), tutorial_module, "norse"),
]
