"""mode="auto" follows its equations on hidden layers of every neuron type, recurrent layers unrolled: the
rule against the module docstring's equations written out with explicit sums, each layer's parameters read
from the framework's own module (not from sc-neurocore's graph)."""

import numpy as np
import torch
from conftest import require_module
from torch import Tensor, nn

from sc_neurocore.explain import SpikeAttributor

N_IN, N_HIDDEN, N_OUT, STEPS = 12, 8, 3, 16


def _spikes(seed: int, batch: int = 2, rate: float = 0.4) -> Tensor:
    return (torch.rand(batch, STEPS, N_IN, generator=torch.Generator().manual_seed(seed)) < rate).float()


def _reference_layer(z, ff, beta, gain, synapse, cost, recurrent, kick=None, integrator=False):
    """The docstring's equations for one layer and one sample, written with explicit sums (numpy, float64).

    `recurrent` is `R` with the recurrent current `R @ z[t-1]`; `ff` the worth per unit emitted value from
    downstream; `kick` a membrane readout's credit per membrane kick. Returns `c[t]`, per unit input current.
    """
    n_steps, size = ff.shape
    c, m, g = np.zeros((n_steps, size)), np.zeros((n_steps, size)), np.zeros((n_steps, size))
    for t in range(n_steps - 1, -1, -1):
        g[t] = ff[t] + (recurrent.T @ c[t + 1] if recurrent is not None and t + 1 < n_steps else 0.0)
        for j in range(size):
            if integrator:
                m[t, j] = sum(beta[j] ** (u - t) * g[u, j] for u in range(t, n_steps))
            else:
                later = [u for u in range(t, n_steps) if z[u, j]]
                m[t, j] = beta[j] ** (later[0] - t) * g[later[0], j] / cost[j] if later else 0.0
            if kick is not None:
                m[t, j] += kick[t, j]
            c[t, j] = gain[j] * sum(synapse[j] ** (u - t) * m[u, j] for u in range(t, n_steps))
    return c


def _vector(value, size):
    return np.broadcast_to(np.asarray(torch.as_tensor(value, dtype=torch.float64)), (size,)).astype(np.float64)


def test_snntorch_rleaky_follows_the_unrolled_equations():
    require_module("snntorch", "snntorch")
    import snntorch as snn

    from sc_neurocore.adapters import from_snntorch

    torch.manual_seed(0)
    rleaky = snn.RLeaky(beta=0.8, threshold=0.6, linear_features=N_HIDDEN, init_hidden=True)
    net = nn.Sequential(nn.Linear(N_IN, N_HIDDEN), rleaky, nn.Linear(N_HIDDEN, N_OUT),
                        snn.Leaky(beta=0.9, threshold=0.5, init_hidden=True, output=True))
    with torch.no_grad():
        net[0].weight.mul_(2.0)
        net[2].weight.mul_(2.5)
        rleaky.recurrent.weight.mul_(1.5)
    model = from_snntorch(net)
    x = _spikes(seed=1)
    targets = model.run(x).argmax(dim=1)
    scores = SpikeAttributor(mode="auto").attribute(x, model, targets).attribution_map()
    recording = model.record(x)
    w1, w2 = net[0].weight.detach().double().numpy(), net[2].weight.detach().double().numpy()
    r = rleaky.recurrent.weight.detach().double().numpy()
    ones = np.ones(N_HIDDEN)
    for b in range(x.shape[0]):
        z1, z2 = (layer.spikes[b].double().numpy() for layer in recording.layers)
        assert z1.sum() > 5 and z2.sum() > 0  # the recurrence carries spikes: the test is not vacuous
        ff = np.zeros((STEPS, N_OUT))
        ff[:, int(targets[b])] = 1.0
        c2 = _reference_layer(z2, ff, _vector(0.9, N_OUT), np.ones(N_OUT), np.zeros(N_OUT), _vector(0.5, N_OUT), None)
        expected = []
        for recurrent in (r, None):
            c1 = _reference_layer(z1, c2 @ w2, _vector(0.8, N_HIDDEN), ones, np.zeros(N_HIDDEN),
                                  _vector(0.6, N_HIDDEN), recurrent)
            expected.append(x[b].double().numpy() * (c1 @ w1))
        np.testing.assert_allclose(scores[b].numpy(), expected[0], rtol=1e-4, atol=1e-6)
        assert np.abs(expected[0] - expected[1]).max() > 1e-3  # the recurrent term moves the scores


def test_norse_recurrent_cell_follows_the_unrolled_equations():
    require_module("norse", "norse")
    import norse.torch as norse

    from sc_neurocore.adapters import from_norse

    torch.manual_seed(2)
    cell = norse.LIFRecurrentCell(N_IN, N_HIDDEN)
    readout = norse.LILinearCell(N_HIDDEN, N_OUT)
    with torch.no_grad():
        cell.input_weights.mul_(6.0)
        cell.recurrent_weights.mul_(4.0)
        readout.input_weights.mul_(5.0)
    model = from_norse(norse.SequentialState(cell, readout))  # max_membrane, Norse's decoder for an LI output
    x = _spikes(seed=3)
    targets = model.run(x).argmax(dim=1)
    scores = SpikeAttributor(mode="auto").attribute(x, model, targets).attribution_map()
    recording = model.record(x)
    p, q, dt = cell.p, readout.p, cell.dt
    hidden_rate, out_rate = float(dt * p.tau_mem_inv), float(dt * q.tau_mem_inv)
    w1, r = cell.input_weights.detach().double().numpy(), cell.recurrent_weights.detach().double().numpy()
    w2 = readout.input_weights.detach().double().numpy()
    for b in range(x.shape[0]):
        z1 = recording.layers[0].spikes[b].double().numpy()
        v2 = recording.layers[1].membrane[b].double().numpy()
        assert z1.sum() > 5
        k = int(targets[b])
        ff = np.zeros((STEPS, N_OUT))
        ff[int(np.argmax(v2[:, k])), k] = 1.0
        c2 = _reference_layer(None, ff, _vector(1 - out_rate, N_OUT), _vector(out_rate, N_OUT),
                              _vector(1 - float(dt * q.tau_syn_inv), N_OUT), None, None, integrator=True)
        c1 = _reference_layer(z1, c2 @ w2, _vector(1 - hidden_rate, N_HIDDEN), _vector(hidden_rate, N_HIDDEN),
                              _vector(1 - float(dt * p.tau_syn_inv), N_HIDDEN),
                              _vector(float(p.v_th - p.v_reset), N_HIDDEN), r)
        np.testing.assert_allclose(scores[b].numpy(), x[b].double().numpy() * (c1 @ w1), rtol=1e-4, atol=1e-7)


def _one_hot(k: int, last: int | None = None) -> np.ndarray:
    """A count readout's worth of output `k` (every step), or a membrane readout's at step `last`."""
    worth = np.zeros((STEPS, N_OUT))
    worth[slice(None) if last is None else last, k] = 1.0
    return worth


def test_norse_current_based_hidden_layer():
    require_module("norse", "norse")
    import norse.torch as norse

    from sc_neurocore.adapters import from_norse

    torch.manual_seed(8)
    params = norse.LIFParameters(tau_syn_inv=torch.as_tensor(150.0), tau_mem_inv=torch.as_tensor(80.0),
                                 v_th=torch.as_tensor(0.4), v_reset=torch.as_tensor(-0.1))
    net = norse.SequentialState(nn.Linear(N_IN, N_HIDDEN), norse.LIFCell(params), nn.Linear(N_HIDDEN, N_OUT),
                                norse.LICell())
    with torch.no_grad():
        net[0].weight.mul_(8.0)
        net[2].weight.mul_(6.0)
    model = from_norse(net)  # max_membrane
    x = _spikes(seed=9)
    targets = model.run(x).argmax(dim=1)
    scores = SpikeAttributor(mode="auto").attribute(x, model, targets).attribution_map()
    recording = model.record(x)
    dt, out = net[1].dt, net[3].p
    rate, out_rate = float(dt * params.tau_mem_inv), float(dt * out.tau_mem_inv)
    w1, w2 = net[0].weight.detach().double().numpy(), net[2].weight.detach().double().numpy()
    for b in range(x.shape[0]):
        z1 = recording.layers[0].spikes[b].double().numpy()
        v2 = recording.layers[1].membrane[b].double().numpy()
        assert z1.sum() > 5
        k = int(targets[b])
        c2 = _reference_layer(None, _one_hot(k, int(np.argmax(v2[:, k]))), _vector(1 - out_rate, N_OUT),
                              _vector(out_rate, N_OUT), _vector(1 - float(dt * out.tau_syn_inv), N_OUT), None, None,
                              integrator=True)
        c1 = _reference_layer(z1, c2 @ w2, _vector(1 - rate, N_HIDDEN), _vector(rate, N_HIDDEN),
                              _vector(1 - float(dt * params.tau_syn_inv), N_HIDDEN), _vector(0.5, N_HIDDEN), None)
        np.testing.assert_allclose(scores[b].numpy(), x[b].double().numpy() * (c1 @ w1), rtol=1e-4, atol=1e-7)


def test_spikingjelly_hidden_layers():
    require_module("spikingjelly", "spikingjelly")
    from spikingjelly.activation_based import layer, neuron

    from sc_neurocore.adapters import from_spikingjelly

    torch.manual_seed(10)
    net = nn.Sequential(layer.Linear(N_IN, N_HIDDEN), neuron.LIFNode(tau=2.5, v_reset=None, v_threshold=0.5),
                        layer.Linear(N_HIDDEN, N_HIDDEN), neuron.ParametricLIFNode(init_tau=3.0, decay_input=False,
                                                                                  v_reset=-0.2),
                        layer.Linear(N_HIDDEN, N_OUT), neuron.IFNode(v_threshold=0.8))
    with torch.no_grad():
        for index, gain in ((0, 4.0), (2, 5.0), (4, 5.0)):
            net[index].weight.mul_(gain)
    model = from_spikingjelly(net, readout="count")
    x = _spikes(seed=11)
    targets = model.run(x).argmax(dim=1)
    scores = SpikeAttributor(mode="auto").attribute(x, model, targets).attribution_map()
    recording = model.record(x)
    q = float(torch.sigmoid(net[3].w))
    rows = [(1 - 1 / 2.5, 1 / 2.5, 0.5), (1 - q, 1.0, 1.0 + 0.2), (1.0, 1.0, 0.8)]  # beta, gain, cost
    weights = [net[i].weight.detach().double().numpy() for i in (0, 2, 4)]
    for b in range(x.shape[0]):
        fired = [layer.spikes[b].double().numpy() for layer in recording.layers]
        assert all(f.sum() > 0 for f in fired), [f.sum() for f in fired]
        worth = _one_hot(int(targets[b]))
        for index in range(2, -1, -1):
            beta, gain, cost = rows[index]
            size = fired[index].shape[1]
            credit = _reference_layer(fired[index], worth, _vector(beta, size), _vector(gain, size), np.zeros(size),
                                      _vector(cost, size), None)
            worth = credit @ weights[index]
        np.testing.assert_allclose(scores[b].numpy(), x[b].double().numpy() * worth, rtol=1e-4, atol=1e-7)


def test_nir_cuba_delay_and_integrate_and_fire():
    require_module("nir", "nir")
    import nir

    from sc_neurocore.adapters import from_nir

    rng = np.random.default_rng(12)
    dt = 1e-3
    full = lambda n, value: np.full(n, value, dtype=np.float32)  # noqa: E731
    w1 = (rng.standard_normal((N_HIDDEN, N_IN)) * 1.5).astype(np.float32)
    w2 = (np.abs(rng.standard_normal((N_OUT, N_HIDDEN))) * 0.8).astype(np.float32)
    delays = np.arange(N_HIDDEN) % 3
    graph = nir.NIRGraph.from_list(
        nir.Affine(w1, full(N_HIDDEN, 0.1)),
        nir.CubaLIF(tau_syn=full(N_HIDDEN, 2e-3), tau_mem=full(N_HIDDEN, 4e-3), r=full(N_HIDDEN, 2.0),
                    v_leak=full(N_HIDDEN, 0.0), v_threshold=full(N_HIDDEN, 0.4), v_reset=full(N_HIDDEN, -0.1),
                    w_in=full(N_HIDDEN, 1.5)),
        nir.Delay(delay=(delays * dt).astype(np.float64)), nir.Linear(w2),
        nir.IF(r=full(N_OUT, 300.0), v_threshold=full(N_OUT, 0.5), v_reset=full(N_OUT, 0.0)))
    model = from_nir(graph, dt=dt)
    x = _spikes(seed=13)
    targets = model.run(x).argmax(dim=1)
    scores = SpikeAttributor(mode="auto").attribute(x, model, targets).attribution_map()
    recording = model.record(x)
    mem, syn = dt / 4e-3, dt / 2e-3
    for b in range(x.shape[0]):
        z1, _, z3 = (layer.spikes[b].double().numpy() for layer in recording.layers)
        assert z1.sum() > 5 and z3.sum() > 0
        c3 = _reference_layer(z3, _one_hot(int(targets[b])), np.ones(N_OUT), _vector(dt * 300.0, N_OUT),
                              np.zeros(N_OUT), _vector(0.5, N_OUT), None)
        g2 = c3 @ w2.astype(np.float64)
        c2 = np.zeros_like(g2)  # the delay line: c[t, j] = g[t + d_j, j]
        for t in range(STEPS):
            for j in range(N_HIDDEN):
                c2[t, j] = g2[t + delays[j], j] if t + delays[j] < STEPS else 0.0
        c1 = _reference_layer(z1, c2, _vector(1 - mem, N_HIDDEN), _vector(mem * 2.0 * syn * 1.5, N_HIDDEN),
                              _vector(1 - syn, N_HIDDEN), _vector(0.5, N_HIDDEN), None)
        np.testing.assert_allclose(scores[b].numpy(), x[b].double().numpy() * (c1 @ w1.astype(np.float64)),
                                   rtol=1e-4, atol=1e-7)
