"""SpikeAttributor(mode="auto"): the spike-time credit equations, their exactness conditions, every readout."""

import itertools

import numpy as np
import pytest
import torch
from brute_force import one_sample, saliency_loop
from conftest import require_module

from sc_neurocore.dynamics import LIFParameters, lif_initial_state, lif_step
from sc_neurocore.explain import SpikeAttributor
from sc_neurocore.explain.credit import CreditLayer, credit_scores, spike_credit
from sc_neurocore.models import LIFNetwork


def _weights(sizes, seed=0, gain=0.9, shift=0.2, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(a, b, generator=g, dtype=torch.float64) * gain + shift).to(dtype)
            for a, b in itertools.pairwise(sizes)]


def _spikes(shape, seed=1, rate=0.3, dtype=torch.float64):
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < rate).to(dtype)


def _snntorch(weights, readout, beta=0.8, threshold=1.0, output_reset="none", reset="subtract", output_threshold=None):
    require_module("snntorch", "snntorch")
    import snntorch as snn

    from sc_neurocore.adapters import from_snntorch
    from sc_neurocore.data.pretrained import snntorch_sequential

    stack = snntorch_sequential(weights, beta=beta, threshold=threshold, reset=reset)
    stack[-1] = snn.Leaky(beta=beta, threshold=threshold if output_threshold is None else output_threshold,
                          reset_mechanism=output_reset, init_hidden=True, output=True)
    return from_snntorch(stack, readout=readout)


def _removal(model, x, target):
    """The brute-force effect of removing each spike, one forward pass of the model per spike, `(B, T, N)`."""
    forward = one_sample(model)
    return torch.stack([saliency_loop(forward, x[b], target) for b in range(x.shape[0])]).to(x.dtype)


def _reference(x, layers, readout, spikes, membranes, k):
    """The module docstring's equations, written out with explicit loops over time (one sample)."""
    n_steps = x.shape[0]
    last = layers[-1]
    credit = np.zeros(membranes[-1].shape)
    if readout in ("final_membrane", "max_membrane"):
        end = n_steps - 1 if readout == "final_membrane" else int(np.argmax(membranes[-1][:, k]))
        for t in range(end + 1):
            wiped = last.reset == "zero" and any(spikes[-1][u, k] for u in range(t, end))
            credit[t, k] = 0.0 if wiped else last.beta ** (end - t)
    else:
        worth = np.zeros_like(credit)
        worth[:, k] = 1.0 if readout == "count" else 1.0 / n_steps
        credit = _spike_rule(spikes[-1], worth, last.beta, last.threshold)
    for index in range(len(layers) - 2, -1, -1):
        worth = credit @ layers[index + 1].maps[0].weight.numpy().T
        credit = _spike_rule(spikes[index], worth, layers[index].beta, layers[index].threshold)
    return x * (credit @ layers[0].maps[0].weight.numpy().T)


def _spike_rule(z, worth, beta, threshold):
    credit = np.zeros_like(worth)
    for t in range(z.shape[0]):
        for j in range(z.shape[1]):
            later = [u for u in range(t, z.shape[0]) if z[u, j]]
            if later:
                credit[t, j] = beta ** (later[0] - t) / threshold * worth[later[0], j]
    return credit


@pytest.mark.parametrize("readout", ["count", "rate", "final_membrane", "max_membrane"])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_matches_the_equations_for_every_readout(readout, reset):
    # snnTorch adapters probe with float32: float32 weights, compared to the float64 loops at float32 precision.
    weights = _weights((10, 8, 6, 4), seed=2, dtype=torch.float32)
    if readout in ("count", "rate"):
        require_module("snntorch", "snntorch")
        from sc_neurocore.adapters import from_snntorch
        from sc_neurocore.data.pretrained import snntorch_sequential

        model = from_snntorch(snntorch_sequential(weights, beta=0.8, threshold=0.7, reset=reset), readout=readout)
    else:
        # The output fires now and then (threshold 4): a zero reset there wipes earlier kicks.
        model = _snntorch(weights, readout, threshold=0.7, output_reset=reset, reset=reset, output_threshold=4.0)
    x = _spikes((2, 15, 10), seed=3, rate=0.5, dtype=torch.float32)
    targets = model.run(x).argmax(dim=1)  # a neuron that fires (count) or is most excited (membrane)
    result = SpikeAttributor(mode="auto").attribute(x, model, targets).attribution_map()
    recording = model.record(x)
    layers = [CreditLayer.dense(w.double(), 0.8, 0.7, reset) for w in weights]
    for b in range(2):
        fired = [layer.spikes[b].numpy() for layer in recording.layers]
        assert all(f.any() for f in fired[:-1])  # hidden layers fire: the test is not vacuous
        membranes = [layer.membrane[b].double().numpy() for layer in recording.layers]
        expected = _reference(x[b].double().numpy(), layers, readout, fired, membranes, int(targets[b]))
        np.testing.assert_allclose(result[b].numpy(), expected, rtol=1e-5, atol=1e-6)
        assert np.abs(expected).sum() > 0


@pytest.mark.parametrize("readout", ["final_membrane", "max_membrane"])
def test_exact_for_a_linear_readout_layer(readout):
    # Condition 1: no hidden layer, an output neuron that never resets: removing a spike changes the
    # readout by exactly its score (max_membrane: where the time of the maximum stays).
    weights = [w.float() for w in _weights((12, 3), seed=4, shift=0.0)]
    model = _snntorch(weights, readout, threshold=1e9)
    x = _spikes((2, 20, 12), seed=5, dtype=torch.float32)
    scores = SpikeAttributor(mode="auto").attribute(x, model, 2).attribution_map()
    saliency = _removal(model, x, 2)
    if readout == "final_membrane":
        torch.testing.assert_close(scores, saliency, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(scores.sum(dim=(1, 2)), model.run(x)[:, 2], rtol=1e-5, atol=1e-5)  # completeness
    else:
        base = model.record(x).layers[-1].membrane[:, :, 2].argmax(dim=1)
        kept = 0
        for b, t, i in torch.nonzero(x).tolist():
            removed = x.clone()
            removed[b, t, i] = 0
            if int(model.record(removed).layers[-1].membrane[b, :, 2].argmax()) == int(base[b]):
                assert float(scores[b, t, i]) == pytest.approx(float(saliency[b, t, i]), abs=1e-5)
                kept += 1
        assert kept > 10


def test_kick_derivative_at_the_next_spike():
    # Condition 2: theta * c[t] / g = beta^(t_n - t) is d v[t_n] / d I[t] while no spike flips.
    beta, threshold = 0.7, 1.0
    currents = torch.tensor([0.6, 0.5, 0.5, 0.3, 0.9, 0.4, 0.8], dtype=torch.float64)[None, :, None]
    params = LIFParameters(beta, threshold, "subtract")

    def simulate(kick_at=None, size=0.0):
        state, spikes, membranes = lif_initial_state(currents[:, 0]), [], []
        for t in range(currents.shape[1]):
            current = currents[:, t] + (size if t == kick_at else 0.0)
            s, state = lif_step(current, state, params)
            spikes.append(s)
            membranes.append(state.membrane)
        return torch.stack(spikes, 1), torch.stack(membranes, 1)

    z, v = simulate()
    fired = torch.nonzero(z[0, :, 0])[:, 0].tolist()
    assert len(fired) >= 2
    credit = spike_credit(z, torch.ones_like(z), beta, threshold)
    eps = 1e-6
    for t in range(currents.shape[1]):
        later = [u for u in fired if u >= t]
        if not later:
            assert credit[0, t, 0] == 0
            continue
        z2, v2 = simulate(t, eps)
        assert torch.equal(z2, z)  # no flip
        derivative = float(v2[0, later[0], 0] - v[0, later[0], 0]) / eps
        assert threshold * float(credit[0, t, 0]) == pytest.approx(derivative, rel=1e-6)


def test_zero_reset_wipes_earlier_kicks_of_a_membrane_readout():
    spikes = torch.tensor([[[0.0], [1.0], [0.0], [0.0]]], dtype=torch.float64)
    membrane = torch.ones_like(spikes)
    layer = CreditLayer.dense(torch.ones(1, 1, dtype=torch.float64), 0.5, 1.0, "zero")
    x = torch.ones_like(spikes)
    scores = credit_scores(x, [layer], "final_membrane", [spikes], [membrane], torch.tensor([0]))
    assert scores[0, :, 0].tolist() == [0.0, 0.0, 0.5, 1.0]


def test_per_neuron_decays():
    beta = torch.tensor([0.5, 0.9], dtype=torch.float64)
    z = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]], dtype=torch.float64)
    credit = spike_credit(z, torch.ones_like(z), beta, 2.0)
    assert credit[0, 0].tolist() == [0.25, 0.45]


def test_batch_equals_per_sample_and_numpy_round_trip():
    net = LIFNetwork(_weights((16, 10, 5), seed=6), beta=0.85, threshold=0.6).double()
    x = _spikes((4, 20, 16), seed=7)
    targets = torch.tensor([0, 3, 1, 3])
    attributor = SpikeAttributor(mode="auto")
    batch = attributor.attribute(x, net, targets).attribution_map()
    assert batch.abs().sum() > 0
    for b in range(4):
        single = attributor.attribute(x[b], net, int(targets[b])).attribution_map()
        torch.testing.assert_close(batch[b], single, rtol=1e-12, atol=1e-14)
    from_numpy = attributor.attribute(x.numpy(), net, targets.numpy()).attribution_map()
    assert isinstance(from_numpy, np.ndarray)
    np.testing.assert_array_equal(from_numpy, batch.numpy())


def test_uses_the_model_dynamics_not_the_decay_argument():
    net = LIFNetwork(_weights((8, 6, 3), seed=8), beta=0.6, threshold=0.5).double()
    x = _spikes((1, 12, 8), seed=9)
    a = SpikeAttributor(0.3, mode="auto").attribute(x, net, 1).attribution_map()
    b = SpikeAttributor(1.0, mode="auto").attribute(x, net, 1).attribution_map()
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    other = LIFNetwork(net.linear_weights(), beta=0.9, threshold=0.5).double()
    assert not torch.equal(a, SpikeAttributor(mode="auto").attribute(x, other, 1).attribution_map())


def test_inputs_and_model_not_mutated():
    net = LIFNetwork(_weights((8, 6, 3), seed=10), beta=0.6, threshold=0.5)
    before = [w.clone() for w in net.linear_weights()]
    x = _spikes((2, 10, 8), seed=11).float()
    copy = x.clone()
    SpikeAttributor(mode="auto").attribute(x, net, 0)
    assert torch.equal(x, copy) and all(torch.equal(a, b) for a, b in zip(before, net.linear_weights(), strict=False))


def test_refusals():
    net = LIFNetwork(_weights((8, 3), seed=12))
    x = torch.zeros(5, 8)
    with pytest.raises(TypeError, match="mode='auto' needs a model"):
        SpikeAttributor(mode="auto").attribute(x, [torch.ones(8, 3)], 0)
    with pytest.raises(ValueError, match="model: mode='auto' reads the weights"):
        SpikeAttributor(mode="auto").attribute(x, net, 0, model=net)
    with pytest.raises(ValueError, match="input_spikes"):
        SpikeAttributor(mode="auto").attribute(torch.zeros(5, 9), net, 0)
    with pytest.raises(ValueError, match="output_neuron"):
        SpikeAttributor(mode="auto").attribute(x, net, 3)
    with pytest.raises(ValueError, match="fixed_point"):
        from sc_neurocore.fpga.spec import FixedPointSpec

        SpikeAttributor(0.9, mode="auto", fixed_point=FixedPointSpec(decay=0.9))


def test_synaptic_neurons_and_convolutions_against_removal():
    # A Synaptic output layer with a membrane readout and no reset is linear in its input: the rule is exact.
    require_module("snntorch", "snntorch")
    import snntorch as snn

    from sc_neurocore.adapters import from_snntorch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 3), snn.Synaptic(alpha=0.6, beta=0.8, threshold=1e9,
                                                                  reset_mechanism="none", init_hidden=True,
                                                                  output=True))
    model = from_snntorch(net, readout="final_membrane")
    x = _spikes((2, 12, 8), seed=13, dtype=torch.float32)
    scores = SpikeAttributor(mode="auto").attribute(x, model, 1).attribution_map()
    saliency = _removal(model, x, 1)
    torch.testing.assert_close(scores, saliency, rtol=1e-4, atol=1e-5)
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 4, 3),
                               snn.Leaky(beta=0.7, threshold=1e9, reset_mechanism="none", init_hidden=True,
                                         output=True))
    model = from_snntorch(conv, readout="final_membrane", input_shape=(1, 6, 6))
    x = _spikes((2, 10, 36), seed=14, dtype=torch.float32)
    scores = SpikeAttributor(mode="auto").attribute(x, model, 2).attribution_map()
    saliency = _removal(model, x, 2)
    torch.testing.assert_close(scores, saliency.reshape(scores.shape), rtol=1e-4, atol=1e-5)


def test_csnn_with_max_pool_batch_equals_per_sample():
    require_module("snntorch", "snntorch")
    from sc_neurocore.data.train import csnn_network, train_csnn

    state, _ = train_csnn(torch.rand(16, 10, 10), torch.arange(16) % 3, channels=3, kernel=3, n_steps=8, epochs=1,
                          seed=2)
    state = {key: value * 4 for key, value in state.items()}  # strong enough that the hidden layer fires
    model = csnn_network(state, 10)
    x = _spikes((3, 12, 100), seed=15, rate=0.4, dtype=torch.float32)
    targets = model.run(x).argmax(dim=1)
    assert model.graph_for(x) is not None  # the traced graph (conv, max pool, dense) is what the rule reads
    batch = SpikeAttributor(mode="auto").attribute(x, model, targets).attribution_map()
    assert batch.abs().sum() > 0 and bool((batch[x == 0] == 0).all())
    for b in range(3):
        single = SpikeAttributor(mode="auto").attribute(x[b], model, int(targets[b])).attribution_map()
        torch.testing.assert_close(batch[b], single, rtol=1e-5, atol=1e-6)


def test_linear_and_gated_rules_run_on_a_csnn_through_its_graph():
    require_module("snntorch", "snntorch")
    from sc_neurocore.data.train import csnn_network, train_csnn

    state, _ = train_csnn(torch.rand(8, 8, 8), torch.arange(8) % 2, channels=2, kernel=3, n_steps=5, epochs=1, seed=3)
    model = csnn_network(state, 8)
    assert model.linear_weights() is None
    x = _spikes((2, 6, 64), seed=16, dtype=torch.float32)
    linear = SpikeAttributor(0.9).attribute(x, model, 1).attribution_map()
    # Brute force: with all gates open, the path of input i is the adjoint of the maps (conv, max pool at the
    # recorded argmax, flatten, dense) applied to e_k: autograd of the maps' linear part at the same routes.
    graph = model.graph_for(x)
    from sc_neurocore.graph.paths import paths_for

    paths = paths_for(graph, x, torch.tensor([1, 1]))
    expected = x * torch.tensor([0.9 ** (6 - t) for t in range(6)])[None, :, None] * paths
    torch.testing.assert_close(linear, expected)
    gated = SpikeAttributor(0.9, mode="gated").attribute(x, model, 1).attribution_map()
    assert gated.shape == x.shape and bool((gated[x == 0] == 0).all())
