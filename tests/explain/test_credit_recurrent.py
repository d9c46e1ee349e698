"""mode="auto" through recurrent layers: exact for a linear recurrence, and the membrane derivative at the next
spike (condition 3) with the recurrence active, through the frameworks' own forwards (the unrolled rule's
equations are checked in test_credit_equations.py)."""

import numpy as np
import pytest
import torch
from conftest import require_module
from torch import Tensor

from sc_neurocore.explain import SpikeAttributor
from sc_neurocore.explain.credit import credit_layers, model_graph
from sc_neurocore.explain.credit_layers import credit_layer
from sc_neurocore.graph import Segment

N_IN, N_HIDDEN, N_OUT, STEPS = 12, 8, 3, 16


def _spikes(seed: int, batch: int = 2, rate: float = 0.4) -> Tensor:
    return (torch.rand(batch, STEPS, N_IN, generator=torch.Generator().manual_seed(seed)) < rate).float()


def _linear_recurrent_nir(kind: str):
    import nir

    rng = np.random.default_rng(4)
    full = lambda value: np.full(N_OUT, value, dtype=np.float32)  # noqa: E731
    if kind == "LI":
        node = nir.LI(tau=full(5e-3), r=full(1.5), v_leak=full(0.1))
    elif kind == "CubaLI":
        node = nir.CubaLI(tau_syn=full(3e-3), tau_mem=full(6e-3), r=full(2.0), v_leak=full(0.0), w_in=full(1.5))
    else:
        node = nir.I(r=full(50.0))
    nodes = {"input": nir.Input(input_type={"input": np.array([N_IN])}),
             "affine": nir.Affine((rng.standard_normal((N_OUT, N_IN)) * 0.8).astype(np.float32), full(0.05)),
             "neuron": node,
             "loop": nir.Linear((rng.standard_normal((N_OUT, N_OUT)) * 0.6).astype(np.float32)),
             "output": nir.Output(output_type={"output": np.array([N_OUT])})}
    edges = [("input", "affine"), ("affine", "neuron"), ("neuron", "loop"), ("loop", "neuron"), ("neuron", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


@pytest.mark.parametrize("kind", ["LI", "CubaLI", "I"])
def test_a_linear_recurrence_is_exact(kind):
    # Condition 2: a leaky integrator fed back through its recurrent maps is linear; R^T c[t+1] is its adjoint,
    # so every removal is exact (max_membrane: where the time of the maximum stays) and the scores are complete.
    require_module("nir", "nir")
    from zoo.nir_reference import NirReference

    from sc_neurocore.adapters import from_nir

    graph = _linear_recurrent_nir(kind)
    reference = NirReference(graph, 1e-3, (N_IN,))  # its own loop: max over time of the output's voltage
    model = from_nir(graph, dt=1e-3, readout="max_membrane")
    assert any(segment.neuron.recurrent is not None for segment in model.segments)
    x = _spikes(seed=5)
    base = reference(x)
    torch.testing.assert_close(model.run(x), base, rtol=1e-5, atol=1e-5)
    targets = base.argmax(dim=1)
    scores = SpikeAttributor(mode="auto").attribute(x, model, targets).attribution_map()
    kept = 0
    for b in range(x.shape[0]):
        k = int(targets[b])
        where = torch.nonzero(x[b])
        removed = x[b].expand(len(where), STEPS, N_IN).clone()
        removed[torch.arange(len(where)), where[:, 0], where[:, 1]] = 0
        effect = base[b, k] - reference(removed)[:, k]
        peak = model.record(x[b:b + 1]).layers[-1].membrane[0, :, k].argmax()
        same = model.record(removed).layers[-1].membrane[:, :, k].argmax(dim=1) == peak
        torch.testing.assert_close(scores[b][where[:, 0], where[:, 1]][same], effect[same], rtol=1e-4, atol=1e-5)
        kept += int(same.sum())
        # completeness at the read step: the scores sum to v[t*] less its value on no input spikes
        silent = model.record(torch.zeros_like(x[b:b + 1])).layers[-1].membrane[0, peak, k]
        torch.testing.assert_close(scores[b].sum(), base[b, k] - silent, rtol=1e-4, atol=1e-4)
    assert kept > 40
    layers, _ = credit_layers(model_graph(model, x))
    assert layers[0].recurrent is not None  # the rule saw the recurrence


@pytest.mark.parametrize("synaptic", [False, True])
def test_membrane_derivative_at_the_next_spike_with_the_recurrence_active(synaptic):
    # Condition 3: a small kick of input current at t moves the membrane that decides the neuron's next spike
    # t_n by K(t_n - t) = sum_s a b^s beta^(t_n - t - s), the kernel read from the layer, as long as no spike
    # flips; the recurrent spikes then stay as recorded. Measured through snnTorch's own RLeaky / RSynaptic.
    require_module("snntorch", "snntorch")
    import snntorch as snn

    from sc_neurocore.adapters.snntorch import neuron_node

    torch.manual_seed(6)
    if synaptic:
        lif = snn.RSynaptic(alpha=0.6, beta=0.8, threshold=1.0, linear_features=N_HIDDEN)
    else:
        lif = snn.RLeaky(beta=0.8, threshold=1.0, linear_features=N_HIDDEN)
    with torch.no_grad():
        lif.recurrent.weight.mul_(2.0)
    currents = torch.rand(1, STEPS, N_HIDDEN, generator=torch.Generator().manual_seed(7), dtype=torch.float32) * 0.9

    def simulate(kick_at=None, neuron=0, size=0.0):
        state = lif.init_rsynaptic() if synaptic else lif.init_rleaky()
        spikes, membranes = [], []
        with torch.no_grad():
            for t in range(STEPS):
                current = currents[:, t].clone()
                if t == kick_at:
                    current[:, neuron] += size
                out = lif(current, *state)
                state = out
                spikes.append(out[0])
                membranes.append(out[-1])
        return torch.stack(spikes, 1)[0], torch.stack(membranes, 1)[0]

    z, v = simulate()
    assert z.sum() > 5
    layer = credit_layer(Segment((), neuron_node("1", lif, (N_HIDDEN,))))  # read from the module, as traced
    assert layer.recurrent is not None
    checked = 0
    eps = 1e-3
    for t in range(STEPS):
        for j in range(N_HIDDEN):
            later = [u for u in range(t, STEPS) if z[u, j]]
            if not later:
                continue
            z2, v2 = simulate(t, j, eps)
            if not torch.equal(z2, z):
                continue
            d = later[0] - t
            kernel = sum(float(layer.gain) * float(layer.alpha or 0.0) ** s * float(layer.beta) ** (d - s)
                         for s in range(d + 1)) if synaptic else float(layer.beta) ** d
            assert float(v2[later[0], j] - v[later[0], j]) / eps == pytest.approx(kernel, rel=2e-3, abs=1e-4)
            checked += 1
    assert checked > 20
