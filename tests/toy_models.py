"""Small, seeded snnTorch and Norse models shared by the tests (one place, as Captum's test helpers).

Every builder is deterministic for a given ``seed`` and scales its weights (``gain``) so that hidden and
output neurons actually fire on sparse random input: a model that never spikes makes every attribution
zero and every test of it vacuous. The frameworks are imported inside the builders, so importing this
module never needs them; tests call ``require_module`` first.

Example:
    >>> net = snntorch_mlp([12, 10, 4], beta=0.9, seed=0)
    >>> spikes = random_spikes(batch=2, steps=20, n_inputs=12, seed=1)   # (B, T, N)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def random_spikes(batch: int, steps: int, n_inputs: int, rate: float = 0.3, seed: int = 0) -> torch.Tensor:
    """Bernoulli input spikes ``(batch, steps, n_inputs)`` (batch-first, float32, 0/1)."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, steps, n_inputs, generator=generator) < rate).float()


def spike_train(shape: Sequence[int], seed: int = 1, rate: float = 0.25) -> torch.Tensor:
    """Bernoulli spikes of any ``shape`` (``(T, N)`` or ``(B, T, N)``), float32 0/1."""
    return (torch.rand(tuple(shape), generator=torch.Generator().manual_seed(seed)) < rate).float()


def lif_network(seed: int = 0, sizes: Sequence[int] = (20, 12, 6), gain: float = 0.9):
    """A seeded reference :class:`~sc_neurocore.models.LIFNetwork` (beta 0.85, threshold 0.5) that fires
    on sparse random input."""
    from sc_neurocore.models import LIFNetwork

    generator = torch.Generator().manual_seed(seed)
    weights = [torch.randn(a, b, generator=generator) * gain for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    return LIFNetwork(weights, beta=0.85, threshold=0.5)


def _linears(sizes: Sequence[int], gain: float, seed: int) -> list[nn.Linear]:
    """Seeded ``nn.Linear`` layers ``sizes[i] -> sizes[i + 1]`` with weights scaled by ``gain``."""
    if len(sizes) < 2:
        raise ValueError(f"sizes: expected at least [n_inputs, n_outputs], got {list(sizes)}")
    torch.manual_seed(seed)
    layers = [nn.Linear(n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)]
    with torch.no_grad():
        for layer in layers:
            layer.weight.mul_(gain)
            layer.bias.mul_(0.1)
    return layers


def snntorch_neuron(kind: str, beta: float, n: int, *, output: bool):
    """One snnTorch neuron layer with ``init_hidden=True``: ``leaky``, ``synaptic``, ``alpha`` or ``rleaky``."""
    import snntorch as snn

    if kind == "leaky":
        return snn.Leaky(beta=beta, init_hidden=True, output=output)
    if kind == "synaptic":
        return snn.Synaptic(alpha=0.5, beta=beta, init_hidden=True, output=output)
    if kind == "alpha":
        # Alpha needs alpha > beta; its double-exponential kernel rises slowly, hence a low threshold.
        return snn.Alpha(alpha=0.9, beta=0.8, threshold=0.3, init_hidden=True, output=output)
    if kind == "rleaky":
        layer = snn.RLeaky(beta=beta, linear_features=n, init_hidden=True, output=output)
        with torch.no_grad():
            layer.recurrent.weight.mul_(0.5)
        return layer
    raise ValueError(f"kind: expected 'leaky', 'synaptic', 'alpha' or 'rleaky', got {kind!r}")


def snntorch_mlp(sizes: Sequence[int], beta: float = 0.9, seed: int = 0, *, neuron: str = "leaky",
                 gain: float = 5.0, dropout: float = 0.0) -> nn.Sequential:
    """``nn.Sequential(Linear, neuron, Linear, neuron, ...)``: snnTorch's ``init_hidden`` style.

    Module names are ``"0"`` (Linear), ``"1"`` (neuron), ``"2"``, ... (a ``Dropout`` after every hidden
    neuron layer when ``dropout > 0`` shifts the later indices). The last neuron layer has
    ``output=True`` and returns ``(spk, mem)``; hidden ones return ``spk`` alone.
    """
    layers: list[nn.Module] = []
    linears = _linears(sizes, gain, seed)
    for index, linear in enumerate(linears):
        last = index == len(linears) - 1
        layers += [linear, snntorch_neuron(neuron, beta, linear.out_features, output=last)]
        if dropout and not last:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def snntorch_conv(channels: int = 2, size: int = 6, n_outputs: int = 3, beta: float = 0.8,
                  seed: int = 0) -> nn.Sequential:
    """``Conv2d -> Leaky -> Flatten -> Linear -> Leaky(output=True)`` on ``(1, size, size)`` inputs."""
    import snntorch as snn

    torch.manual_seed(seed)
    conv = nn.Conv2d(1, channels, kernel_size=3, padding=1)
    linear = nn.Linear(channels * size * size, n_outputs)
    with torch.no_grad():
        conv.weight.mul_(6.0)
        linear.weight.mul_(4.0)
    return nn.Sequential(conv, snn.Leaky(beta=beta, init_hidden=True), nn.Flatten(), linear,
                         snn.Leaky(beta=beta, init_hidden=True, output=True))


class SnnTorchLoop(nn.Module):
    """The snnTorch tutorials' style: explicit state, its own time loop, returns ``(spk_rec, mem_rec)``.

    ``forward(x)`` takes time-first spikes ``(T, B, N)`` and returns the output layer's spikes and
    membranes, both ``(T, B, C)``.
    """

    def __init__(self, sizes: Sequence[int], beta: float = 0.9, seed: int = 0, gain: float = 5.0) -> None:
        super().__init__()
        import snntorch as snn

        if len(sizes) != 3:
            raise ValueError(f"sizes: expected [n_inputs, n_hidden, n_outputs], got {list(sizes)}")
        self.fc1, self.fc2 = _linears(sizes, gain, seed)
        self.lif1 = snn.Leaky(beta=beta)
        self.lif2 = snn.Leaky(beta=beta)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()
        spk2_rec, mem2_rec = [], []
        for step in range(x.shape[0]):
            spk1, mem1 = self.lif1(self.fc1(x[step]), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            spk2_rec.append(spk2)
            mem2_rec.append(mem2)
        return torch.stack(spk2_rec, dim=0), torch.stack(mem2_rec, dim=0)


def snntorch_parallel(sizes: Sequence[int], beta: float = 0.9, seed: int = 0,
                      gain: float = 3.0) -> nn.Sequential:
    """``nn.Sequential(LeakyParallel, LeakyParallel, ...)``: sequence-level layers on ``(T, B, N)``."""
    import snntorch as snn

    torch.manual_seed(seed)
    layers = [snn.LeakyParallel(n_in, n_out, beta=beta) for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)]
    with torch.no_grad():
        for layer in layers:
            layer.rnn.weight_ih_l0.mul_(gain)
    return nn.Sequential(*layers)


def norse_neuron(kind: str, n_in: int, n_out: int, tau_mem_inv: float = 100.0):
    """One Norse layer: ``lif``, ``lif_cell``, ``lif_box_cell``, ``li``, ``li_cell`` (neurons only) or
    ``li_linear_cell`` (its own ``n_in -> n_out`` weights)."""
    import norse.torch as norse

    if kind == "lif":
        return norse.LIF(norse.LIFParameters(tau_mem_inv=torch.tensor(tau_mem_inv)))
    if kind == "lif_cell":
        return norse.LIFCell(norse.LIFParameters(tau_mem_inv=torch.tensor(tau_mem_inv)))
    if kind == "lif_box_cell":
        return norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=torch.tensor(tau_mem_inv)))
    if kind == "li":
        return norse.LI()
    if kind == "li_cell":
        return norse.LICell()
    if kind == "li_linear_cell":
        return norse.LILinearCell(n_in, n_out)
    raise ValueError(f"kind: unknown Norse layer kind {kind!r}")


def norse_mlp(sizes: Sequence[int], seed: int = 0, *, hidden: str = "lif", output: str = "lif",
              gain: float = 30.0):
    """``SequentialState(Linear, hidden, ..., Linear, output)`` (``output="li_linear_cell"``: no last Linear).

    Norse's defaults (``dt = 1 ms``, ``tau_syn_inv = 200/s``) pass input current through a synapse, so
    the weights need a large ``gain`` to make neurons fire within a few dozen steps.
    """
    import norse.torch as norse

    linears = _linears(sizes, gain, seed)
    layers: list[nn.Module] = []
    for index, linear in enumerate(linears):
        last = index == len(linears) - 1
        if last and output == "li_linear_cell":
            cell = norse_neuron(output, linear.in_features, linear.out_features)
            with torch.no_grad():
                cell.input_weights.copy_(linear.weight)
            layers.append(cell)
        else:
            layers += [linear, norse_neuron(output if last else hidden, linear.in_features, linear.out_features)]
    return norse.SequentialState(*layers)


# -- the frameworks' own forward passes: what every adapter result is checked against ------------------

def _reset_snntorch(net: nn.Module) -> None:
    """Rest state for every snnTorch neuron of ``net``, through snnTorch's own ``reset_mem``."""
    for module in net.modules():
        if hasattr(module, "reset_mem"):
            module.reset_mem()


def _hooked(hooks):
    """Register ``(module, hook)`` pairs; returns the handles to remove."""
    return [module.register_forward_hook(hook) for module, hook in hooks]


def snntorch_counts(net: nn.Module, spikes: torch.Tensor, hooks=()) -> torch.Tensor:
    """Output spike counts ``(B, C)`` of an snnTorch Sequential (step-wise), a ``SnnTorchLoop`` or a
    ``LeakyParallel`` stack, run by snnTorch itself on batch-first ``spikes`` with optional forward hooks."""
    import snntorch as snn

    _reset_snntorch(net)
    handles = _hooked(hooks)
    try:
        net.eval()
        time_first = spikes.transpose(0, 1)
        if isinstance(net, SnnTorchLoop):
            return net(time_first)[0].sum(0)
        if any(isinstance(m, snn.LeakyParallel) for m in net.modules()):
            return net(time_first).sum(0)
        return sum(net(step)[0] for step in time_first)
    finally:
        for handle in handles:
            handle.remove()


def norse_readout(net, spikes: torch.Tensor, hooks=(), *, readout: str = "auto") -> torch.Tensor:
    """``(B, C)`` of a Norse ``SequentialState`` run by Norse itself: the whole sequence in one call when
    every stateful layer is sequence-level (``LIF``, ``LI``), else one step at a time carrying the state
    list: ``(B, N)`` steps for a stack of cells, ``(1, B, N)`` ones when cells and sequence-level layers
    mix (a sequence-level layer reads the first axis as time). ``readout="auto"``: spike count for a
    spiking output layer, max voltage over time for a leaky integrator."""
    import norse.torch as norse

    handles = _hooked(hooks)
    try:
        time_first = spikes.transpose(0, 1)
        stateful = [m for m, flag in zip(net, net.stateful_layers, strict=True) if flag]
        sequence_level = [isinstance(m, (norse.LIF, norse.LI)) for m in stateful]
        if all(sequence_level):
            outputs, _ = net(time_first)
        else:
            state, steps = None, []
            for step in (time_first if not any(sequence_level) else time_first[:, None]):
                out, state = net(step, state)
                steps.append(out.reshape(time_first.shape[1], -1))
            outputs = torch.stack(steps)
    finally:
        for handle in handles:
            handle.remove()
    last = stateful[-1]
    if readout == "auto":
        readout = "max" if isinstance(last, (norse.LI, norse.LICell, norse.LILinearCell)) else "count"
    return outputs.amax(0) if readout == "max" else outputs.sum(0)


def silence_neuron_hook(neuron: int):
    """A forward hook forcing neuron ``neuron``'s spikes to 0 on every call (every timestep), for a bare
    spike tensor or a tuple with the spikes first (snnTorch ``(spk, mem)``, Norse ``(z, state)``)."""
    def hook(module, args, output):
        spikes = output if isinstance(output, torch.Tensor) else output[0]
        spikes = spikes.clone()
        spikes[..., neuron] = 0
        return spikes if isinstance(output, torch.Tensor) else (spikes, *output[1:])
    return hook


def hidden_importance_loop(readout, module: nn.Module, n_neurons: int, target: int) -> torch.Tensor:
    """The brute-force definition of hidden-neuron importance: ``(B, n)`` of
    ``readout()[:, target] - readout(hooks silencing neuron j of module)[:, target]``, one run per neuron,
    where ``readout(hooks)`` runs a framework forward (``snntorch_counts`` / ``norse_readout``)."""
    with torch.no_grad():
        base = readout(())[:, target]
        return torch.stack([base - readout([(module, silence_neuron_hook(j))])[:, target]
                            for j in range(n_neurons)], dim=1)
