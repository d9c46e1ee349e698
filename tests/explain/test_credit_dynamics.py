"""mode="auto" on every neuron type the graph supports: each type's kernel and reset, exact where the rule says
it is (condition 1 of `sc_neurocore.explain.credit`), against brute-force removal through the framework's own
forward (nothing of sc-neurocore in it)."""

from collections.abc import Callable

import numpy as np
import pytest
import torch
from conftest import require_module
from torch import Tensor, nn

from sc_neurocore.explain import SpikeAttributor

N_IN, N_OUT, STEPS = 10, 3, 14


def _spikes(seed: int, batch: int = 2) -> Tensor:
    return (torch.rand(batch, STEPS, N_IN, generator=torch.Generator().manual_seed(seed)) < 0.35).float()


def _linear(gain: float, seed: int) -> nn.Linear:
    torch.manual_seed(seed)
    linear = nn.Linear(N_IN, N_OUT, bias=True)
    with torch.no_grad():
        linear.weight.mul_(gain)
        linear.bias.fill_(0.05)
    return linear


def _read(readout: str, membranes: Tensor) -> Tensor:
    """`(T, B, C)` membranes -> `(B, C)`."""
    return membranes[-1] if readout == "final_membrane" else membranes.amax(dim=0)


# -- the frameworks' own forwards, returning (B, C) membrane readouts -------------------------------------------

def _norse(neuron: Callable[[], nn.Module], gain: float, readout: str):
    require_module("norse", "norse")
    import norse.torch as norse

    from sc_neurocore.adapters import from_norse

    net = norse.SequentialState(_linear(gain, 1), neuron())

    def forward(spikes: Tensor) -> Tensor:
        state, membranes = None, []
        with torch.no_grad():
            for x_t in spikes.transpose(0, 1):
                out, state = net(x_t, state)
                last = state[-1]
                membranes.append(last.v if hasattr(last, "v") else out)
        return _read(readout, torch.stack(membranes))
    return from_norse(net, readout=readout), forward


def _spikingjelly(neuron: Callable[[], nn.Module], gain: float, readout: str):
    require_module("spikingjelly", "spikingjelly")
    from spikingjelly.activation_based import functional, layer

    from sc_neurocore.adapters import from_spikingjelly

    net = nn.Sequential(layer.Linear(N_IN, N_OUT), neuron())
    with torch.no_grad():
        net[0].weight.copy_(_linear(gain, 2).weight)
        net[0].bias.fill_(0.05)

    def forward(spikes: Tensor) -> Tensor:
        functional.reset_net(net)
        membranes = []
        with torch.no_grad():
            for x_t in spikes.transpose(0, 1):
                net(x_t)
                membranes.append(net[1].v.clone())
        functional.reset_net(net)
        return _read(readout, torch.stack(membranes))
    return from_spikingjelly(net, readout=readout), forward


def _snntorch(neuron: Callable[[], nn.Module], gain: float, readout: str):
    require_module("snntorch", "snntorch")
    from zoo.common import snntorch_sequential_forward

    from sc_neurocore.adapters import from_snntorch

    net = nn.Sequential(_linear(gain, 3), neuron())
    return from_snntorch(net, readout=readout), snntorch_sequential_forward(net, (N_IN,), readout)


def _nir(node: Callable[[], object], gain: float, readout: str, dt: float = 1e-3):
    require_module("nir", "nir")
    import nir
    from zoo.nir_reference import NirReference

    from sc_neurocore.adapters import from_nir

    linear = _linear(gain, 4)
    graph = nir.NIRGraph.from_list(nir.Affine(linear.weight.detach().numpy(), linear.bias.detach().numpy()), node())
    reference = NirReference(graph, dt, (N_IN,))
    output = next(module for module in reference.nodes.values() if type(module).__name__ == "_Neuron")

    def forward(spikes: Tensor) -> Tensor:
        membranes: list[Tensor] = []
        handle = output.register_forward_hook(lambda module, args, out: membranes.append(module.v.clone()))
        try:
            reference(spikes)
        finally:
            handle.remove()
        return _read(readout, torch.stack(membranes))
    return from_nir(graph, dt=dt, readout=readout), forward


def _full(value: float) -> np.ndarray:
    return np.full(N_OUT, value, dtype=np.float32)


def _norse_lif(v_th: float):
    import norse.torch as norse

    return lambda: norse.LIFCell(norse.LIFParameters(v_th=torch.as_tensor(v_th), v_reset=torch.as_tensor(-0.2)))


def _norse_box(v_th: float, subtract: bool):
    import norse.torch as norse
    from norse.torch.functional.reset import reset_subtract, reset_value

    return lambda: norse.LIFBoxCell(norse.LIFBoxParameters(v_th=torch.as_tensor(v_th),
                                                           reset_method=reset_subtract if subtract else reset_value))


def _norse_li(box: bool):
    import norse.torch as norse

    return norse.LIBoxCell if box else norse.LICell


def _sj(kind: str, v_th: float, v_reset: float | None, decay_input: bool = True):
    from spikingjelly.activation_based import neuron

    if kind == "if":
        return lambda: neuron.IFNode(v_threshold=v_th, v_reset=v_reset)
    if kind == "lif":
        return lambda: neuron.LIFNode(tau=3.0, decay_input=decay_input, v_threshold=v_th, v_reset=v_reset)
    return lambda: neuron.ParametricLIFNode(init_tau=2.5, decay_input=decay_input, v_threshold=v_th, v_reset=v_reset)


def _snn(kind: str, threshold: float, reset: str, reset_delay: bool = True):
    import snntorch as snn

    if kind == "synaptic":
        return lambda: snn.Synaptic(alpha=0.7, beta=0.85, threshold=threshold, reset_mechanism=reset,
                                    reset_delay=reset_delay, init_hidden=True, output=True)
    return lambda: snn.Leaky(beta=0.85, threshold=threshold, reset_mechanism=reset, reset_delay=reset_delay,
                             init_hidden=True, output=True)


def _nir_node(kind: str, v_th: float):
    import nir

    if kind == "LIF":
        return lambda: nir.LIF(tau=_full(4e-3), r=_full(1.5), v_leak=_full(0.1), v_threshold=_full(v_th),
                               v_reset=_full(-0.1))
    if kind == "CubaLIF":
        return lambda: nir.CubaLIF(tau_syn=_full(3e-3), tau_mem=_full(5e-3), r=_full(2.0), v_leak=_full(0.0),
                                   v_threshold=_full(v_th), v_reset=_full(0.0), w_in=_full(1.5))
    if kind == "IF":
        return lambda: nir.IF(r=_full(200.0), v_threshold=_full(v_th), v_reset=_full(0.0))
    if kind == "LI":
        return lambda: nir.LI(tau=_full(4e-3), r=_full(1.5), v_leak=_full(0.1))
    if kind == "CubaLI":
        return lambda: nir.CubaLI(tau_syn=_full(3e-3), tau_mem=_full(5e-3), r=_full(2.0), v_leak=_full(0.0),
                                  w_in=_full(1.5))
    return lambda: nir.I(r=_full(200.0))


#: (name, builder(readout), spiking): each fires now and then (its reset acts) unless it is a leaky integrator.
CASES = {
    "norse-lif-cell": lambda r: _norse(_norse_lif(0.25), 6.0, r),
    "norse-lif-box-value": lambda r: _norse(_norse_box(0.4, False), 6.0, r),
    "norse-lif-box-subtract": lambda r: _norse(_norse_box(0.4, True), 6.0, r),
    "norse-li-cell": lambda r: _norse(_norse_li(box=False), 6.0, r),
    "norse-li-box-cell": lambda r: _norse(_norse_li(box=True), 6.0, r),
    "snntorch-synaptic-zero": lambda r: _snntorch(_snn("synaptic", 1.2, "zero"), 1.0, r),
    "snntorch-synaptic-same-step": lambda r: _snntorch(_snn("synaptic", 1.2, "zero", False), 1.0, r),
    "snntorch-leaky-zero-same-step": lambda r: _snntorch(_snn("leaky", 0.8, "zero", False), 1.0, r),
    "spikingjelly-if-hard": lambda r: _spikingjelly(_sj("if", 1.5, 0.0), 1.0, r),
    "spikingjelly-if-soft": lambda r: _spikingjelly(_sj("if", 1.5, None), 1.0, r),
    "spikingjelly-lif-hard": lambda r: _spikingjelly(_sj("lif", 0.3, -0.2), 2.5, r),
    "spikingjelly-lif-no-decay-input": lambda r: _spikingjelly(_sj("lif", 0.8, 0.0, False), 1.5, r),
    "spikingjelly-plif-soft": lambda r: _spikingjelly(_sj("plif", 0.3, None), 2.0, r),
    "nir-lif": lambda r: _nir(_nir_node("LIF", 0.4), 2.0, r),
    "nir-cubalif": lambda r: _nir(_nir_node("CubaLIF", 0.3), 2.0, r),
    "nir-if": lambda r: _nir(_nir_node("IF", 0.8), 1.0, r),
    "nir-li": lambda r: _nir(_nir_node("LI", 0.0), 2.0, r),
    "nir-cubali": lambda r: _nir(_nir_node("CubaLI", 0.0), 2.0, r),
    "nir-i": lambda r: _nir(_nir_node("I", 0.0), 1.0, r),
}
INTEGRATORS = {"norse-li-cell", "norse-li-box-cell", "nir-li", "nir-cubali", "nir-i"}
SPIKING = set(CASES) - INTEGRATORS


def _removals(x: Tensor) -> tuple[Tensor, Tensor]:
    """Every single-spike removal of one sample `(T, N)`: the removed inputs `(K, T, N)` and the spikes `(K, 2)`."""
    where = torch.nonzero(x)
    removed = x.expand(len(where), *x.shape).clone()
    removed[torch.arange(len(where)), where[:, 0], where[:, 1]] = 0
    return removed, where


@pytest.mark.parametrize("readout", ["final_membrane", "max_membrane"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_one_layer_membrane_readout_is_exact_for_every_neuron_type(name, readout):
    # Condition 1: removing a spike changes the readout by exactly its score, as long as the removal flips no
    # output spike (and, for max_membrane, leaves the time of the maximum in place).
    model, forward = CASES[name](readout)
    x = _spikes(seed=len(name))
    base = forward(x)
    targets = base.argmax(dim=1)
    torch.testing.assert_close(model.run(x), base, rtol=1e-5, atol=1e-5)  # the same network
    scores = SpikeAttributor(mode="auto").attribute(x, model, targets).attribution_map()
    recorded = model.record(x).layers[-1]
    kept = fired = 0
    for b in range(x.shape[0]):
        k = int(targets[b])
        removed, where = _removals(x[b])
        effect = base[b, k] - forward(removed)[:, k]
        after = model.record(removed).layers[-1]
        same = torch.ones(len(where), dtype=torch.bool)
        if name in SPIKING:
            same &= (after.spikes == recorded.spikes[b][None]).flatten(1).all(dim=1)
        if readout == "max_membrane":
            same &= after.membrane[:, :, k].argmax(dim=1) == recorded.membrane[b, :, k].argmax()
        torch.testing.assert_close(scores[b][where[:, 0], where[:, 1]][same], effect[same], rtol=1e-4, atol=2e-5)
        kept += int(same.sum())
        fired += int(recorded.spikes[b].abs().sum()) if name in SPIKING else 0
    assert kept > 20  # the test is not vacuous
    if name in SPIKING:
        assert fired > 0  # the reset acts: the wipe (or its absence) is tested too


def _silent(name: str, readout: str):
    """The same network with a threshold no membrane reaches (spiking types only)."""
    import functools

    silent = {"norse-lif-cell": lambda r: _norse(_norse_lif(1e6), 6.0, r),
              "spikingjelly-lif-hard": lambda r: _spikingjelly(_sj("lif", 1e6, -0.2), 1.0, r),
              "snntorch-synaptic-zero": lambda r: _snntorch(_snn("synaptic", 1e6, "zero"), 1.0, r),
              "nir-cubalif": lambda r: _nir(_nir_node("CubaLIF", 1e6), 2.0, r)}
    return functools.partial(silent[name], readout) if name in silent else functools.partial(CASES[name], readout)


@pytest.mark.parametrize("name", ["norse-lif-cell", "spikingjelly-lif-hard", "snntorch-synaptic-zero", "nir-cubalif",
                                  "norse-li-cell", "nir-cubali", "nir-i"])
def test_completeness_where_no_reset_acts(name):
    # With no output spike the readout is linear in the input: the scores sum to the readout less its value
    # on no input spikes (biases, leak and rest potentials enter no score), and every removal is exact.
    model, forward = _silent(name, "final_membrane")()
    x = _spikes(seed=7)
    base = forward(x)
    if name in SPIKING:
        assert not model.record(x).layers[-1].spikes.abs().sum()
    for k in range(N_OUT):
        scores = SpikeAttributor(mode="auto").attribute(x, model, k).attribution_map()
        torch.testing.assert_close(scores.sum(dim=(1, 2)), base[:, k] - forward(torch.zeros_like(x))[:, k],
                                   rtol=1e-4, atol=1e-4)
        assert float(scores.abs().sum()) > 0


def test_kernels_follow_each_frameworks_parameters():
    # The kernel is read from the layer, never from the attributor's decay: change a time constant in the
    # framework's module and the scores move; change the attributor's decay and they do not.
    require_module("norse", "norse")
    import norse.torch as norse

    from sc_neurocore.adapters import from_norse

    x = _spikes(seed=9)
    scores = []
    for tau_syn_inv in (200.0, 50.0):
        torch.manual_seed(0)
        net = norse.SequentialState(_linear(6.0, 1), norse.LICell(norse.LIParameters(
            tau_syn_inv=torch.as_tensor(tau_syn_inv))))
        model = from_norse(net, readout="final_membrane")
        scores.append([SpikeAttributor(decay, mode="auto").attribute(x, model, 0).attribution_map()
                       for decay in (0.5, 1.0)])
    assert torch.equal(scores[0][0], scores[0][1]) and torch.equal(scores[1][0], scores[1][1])
    assert not torch.allclose(scores[0][0], scores[1][0])


def test_threshold_nodes_are_refused_by_name():
    require_module("nir", "nir")
    import nir

    from sc_neurocore.adapters import from_nir

    linear = _linear(1.0, 5)
    graph = nir.NIRGraph.from_list(nir.Affine(linear.weight.detach().numpy(), linear.bias.detach().numpy()),
                                   nir.Threshold(threshold=_full(0.5)))
    with pytest.raises(ValueError, match=r"layer '.*' \(threshold\).*TemporalSaliency"):
        SpikeAttributor(mode="auto").attribute(_spikes(seed=10), from_nir(graph, dt=1e-3), 0)


def test_a_spike_that_discharges_nothing_is_refused():
    require_module("spikingjelly", "spikingjelly")
    model, _ = _spikingjelly(_sj("if", 0.5, 0.5), 1.0, "final_membrane")
    with pytest.raises(ValueError, match="discharges no membrane"):
        SpikeAttributor(mode="auto").attribute(_spikes(seed=11), model, 0)
