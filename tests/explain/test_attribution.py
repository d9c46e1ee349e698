"""SpikeAttributor: the tutorial's formula over all weight paths, completeness, batches, gated mode."""

import itertools

import numpy as np
import pytest
import torch

from sc_neurocore.explain import SpikeAttributor
from sc_neurocore.models import LIFNetwork


def _problem(seed=0, T=30, sizes=(16, 8, 5), rate=0.2, dtype=np.float64):
    rng = np.random.default_rng(seed)
    spikes = (rng.random((T, sizes[0])) < rate).astype(dtype)
    weights = [rng.standard_normal((a, b)).astype(dtype) for a, b in itertools.pairwise(sizes)]
    return spikes, weights


def test_formula_over_all_paths_elementwise():
    spikes, weights = _problem(sizes=(16, 8, 6, 5))
    decay, k, T = 0.85, 3, spikes.shape[0]
    w_eff = weights[0] @ weights[1] @ weights[2]
    expected = np.zeros_like(spikes)
    for t in range(T):  # the definition, written out
        for i in range(spikes.shape[1]):
            expected[t, i] = spikes[t, i] * decay ** (T - t) * w_eff[i, k]
    result = SpikeAttributor(decay=decay).attribute(spikes, weights, output_neuron=k)
    np.testing.assert_allclose(result.attribution_map(), expected, rtol=1e-12, atol=1e-14)


def test_completeness_float64():
    spikes, weights = _problem(seed=3, T=60)
    result = SpikeAttributor(decay=0.9).attribute(spikes, weights, output_neuron=2)
    w_eff = weights[0] @ weights[1]
    readout = sum(0.9 ** (60 - t) * spikes[t] @ w_eff[:, 2] for t in range(60))
    assert result.total == pytest.approx(readout, rel=1e-9)
    assert result.attribution_map().sum() == pytest.approx(readout, rel=1e-9)
    assert result.temporal_profile().sum() == pytest.approx(readout, rel=1e-9)
    assert result.spatial_importance().sum() == pytest.approx(readout, rel=1e-9)


def test_non_binary_inputs_scale_linearly():
    spikes, weights = _problem(seed=4)
    base = SpikeAttributor().attribute(spikes, weights, 1).attribution_map()
    scaled = SpikeAttributor().attribute(2.5 * spikes, weights, 1).attribution_map()
    np.testing.assert_allclose(scaled, 2.5 * base, rtol=1e-12)


def test_batch_equals_per_sample_with_per_sample_targets():
    rng = np.random.default_rng(5)
    batch = (rng.random((4, 20, 16)) < 0.2).astype(np.float64)
    _, weights = _problem(seed=5)
    targets = torch.tensor([0, 4, 2, 4])
    attr = SpikeAttributor(decay=0.8)
    result = attr.attribute(batch, weights, output_neuron=targets)
    assert result.attribution_map().shape == (4, 20, 16)
    for b in range(4):
        single = attr.attribute(batch[b], weights, output_neuron=int(targets[b]))
        np.testing.assert_array_equal(result.attribution_map()[b], single.attribution_map())
        assert result.total[b] == single.total
        assert result.top_k(3, sample=b) == single.top_k(3)


def test_numpy_and_torch_round_trip():
    spikes, weights = _problem(seed=6)
    from_numpy = SpikeAttributor().attribute(spikes, weights, 0)
    from_torch = SpikeAttributor().attribute(torch.from_numpy(spikes), [torch.from_numpy(w) for w in weights], 0)
    assert isinstance(from_numpy.attribution_map(), np.ndarray)
    assert isinstance(from_torch.attribution_map(), torch.Tensor)
    np.testing.assert_array_equal(from_numpy.attribution_map(), from_torch.attribution_map().numpy())
    assert isinstance(from_numpy.temporal_profile(), np.ndarray)
    assert isinstance(from_torch.spatial_importance(), torch.Tensor)


def test_bool_input_is_accepted():
    spikes, weights = _problem(seed=7)
    a = SpikeAttributor().attribute(spikes.astype(bool), weights, 0).attribution_map()
    b = SpikeAttributor().attribute(spikes, weights, 0).attribution_map()
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_top_k_ranking_and_ties():
    weights = [np.array([[1.0], [-1.0], [1.0]])]
    spikes = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    result = SpikeAttributor(decay=1.0).attribute(spikes, weights, 0)
    # all four spikes have |score| 1: ties broken by (t, neuron)
    assert result.top_k(10)[:4] == [(0, 0, 1.0), (0, 1, -1.0), (1, 1, -1.0), (1, 2, 1.0)]
    top = result.top_k(2)
    assert all(type(t) is int and type(n) is int and type(s) is float for t, n, s in top)


def test_weights_from_a_model():
    spikes, weights = _problem(seed=8, dtype=np.float32)
    net = LIFNetwork(weights)
    a = SpikeAttributor().attribute(spikes, net, 1).attribution_map()
    b = SpikeAttributor().attribute(spikes, weights, 1).attribution_map()
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_inputs_and_weights_not_mutated():
    spikes, weights = _problem(seed=9)
    copies = [spikes.copy()] + [w.copy() for w in weights]
    SpikeAttributor().attribute(spikes, weights, 0)
    for before, after in zip(copies, [spikes] + weights, strict=False):
        np.testing.assert_array_equal(before, after)


def test_results_are_ordinary_tensors():
    spikes, weights = _problem(seed=10)
    scores = SpikeAttributor().attribute(torch.from_numpy(spikes), weights, 0).attribution_map()
    scores += 1  # not an inference tensor: users may modify it


def _gated_net(seed):
    g = torch.Generator().manual_seed(seed)
    weights = [torch.randn(16, 12, generator=g, dtype=torch.float64) * 0.8,
               torch.randn(12, 5, generator=g, dtype=torch.float64) * 0.8]
    return LIFNetwork(weights, beta=0.8, threshold=0.5), weights


class TestGated:
    def _net(self, seed=11):
        return _gated_net(seed)

    def test_needs_a_model(self):
        spikes, weights = _problem()
        with pytest.raises(ValueError, match="weights: mode='gated' needs a model"):
            SpikeAttributor(mode="gated").attribute(spikes, weights, 0)

    def test_matches_the_gate_equations(self):
        net, weights = self._net()
        spikes = (torch.rand(1, 25, 16, generator=torch.Generator().manual_seed(1)) < 0.3).double()
        d, k, T = 0.9, 2, 25
        rec = net.record(spikes)
        gates = []
        for layer in rec.layers:
            z = layer.spikes[0]
            g = torch.zeros_like(z)
            for t in range(T):  # the definition: a normalised, decaying look-ahead window
                w = torch.tensor([d ** (u - t) for u in range(t, T)], dtype=torch.float64)
                g[t] = (w[:, None] * z[t:]).sum(0) / w.sum()
            gates.append(g)
        expected = torch.zeros(T, 16, dtype=torch.float64)
        for t in range(T):
            v2 = gates[1][t] * torch.nn.functional.one_hot(torch.tensor(k), 5).double()
            v1 = gates[0][t] * (weights[1] @ v2)
            expected[t] = spikes[0, t] * d ** (T - t) * (weights[0] @ v1)
        result = SpikeAttributor(decay=d, mode="gated").attribute(spikes[0], net, k)
        torch.testing.assert_close(result.attribution_map(), expected, rtol=1e-10, atol=1e-12)

    def test_silent_hidden_neurons_carry_nothing(self):
        net, weights = self._net()
        spikes = (torch.rand(25, 16, generator=torch.Generator().manual_seed(2)) < 0.3).double()
        fired = net.record(spikes[None]).layers[0].spikes[0].sum(0) > 0
        assert (~fired).any() and fired.any()
        # Zeroing the outgoing weights of silent hidden neurons changes nothing in gated mode.
        pruned = [weights[0], weights[1] * fired[:, None].double()]
        a = SpikeAttributor(mode="gated").attribute(spikes, net, 0).attribution_map()
        b = SpikeAttributor(mode="gated").attribute(spikes, LIFNetwork(pruned, beta=0.8, threshold=0.5), 0)
        torch.testing.assert_close(a, b.attribution_map())

    def test_all_gates_open_gives_the_linear_rule(self):
        # Thresholds below zero make every neuron fire at every step: every gate is 1.
        g = torch.Generator().manual_seed(3)
        weights = [torch.rand(6, 4, generator=g, dtype=torch.float64), torch.rand(4, 3, generator=g, dtype=torch.float64)]
        net = LIFNetwork(weights, beta=0.5, threshold=-1.0, reset="none")
        spikes = (torch.rand(10, 6, generator=g) < 0.5).double()
        gated = SpikeAttributor(mode="gated").attribute(spikes, net, 1).attribution_map()
        linear = SpikeAttributor().attribute(spikes, weights, 1).attribution_map()
        torch.testing.assert_close(gated, linear)

    def test_batch_equals_per_sample(self):
        net, _ = self._net()
        spikes = (torch.rand(3, 20, 16, generator=torch.Generator().manual_seed(4)) < 0.3).double()
        targets = torch.tensor([1, 0, 4])
        batch = SpikeAttributor(mode="gated").attribute(spikes, net, targets).attribution_map()
        for b in range(3):
            single = SpikeAttributor(mode="gated").attribute(spikes[b], net, int(targets[b])).attribution_map()
            torch.testing.assert_close(batch[b], single, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("call, match", [
    (lambda s, w: SpikeAttributor(decay=0).attribute(s, w), "decay"),
    (lambda s, w: SpikeAttributor(decay=1.5).attribute(s, w), "decay"),
    (lambda s, w: SpikeAttributor(mode="bogus"), "mode"),
    (lambda s, w: SpikeAttributor().attribute(s[0], w), "input_spikes"),
    (lambda s, w: SpikeAttributor().attribute(s[None, None], w), "input_spikes"),
    (lambda s, w: SpikeAttributor().attribute(s, []), "weights"),
    (lambda s, w: SpikeAttributor().attribute(s, [w[0], w[0]]), "do not chain"),
    (lambda s, w: SpikeAttributor().attribute(s, w, output_neuron=5), "output_neuron"),
    (lambda s, w: SpikeAttributor().attribute(s, w, output_neuron=-1), "output_neuron"),
    (lambda s, w: SpikeAttributor().attribute(s, w, output_neuron=1.0), "output_neuron"),
    (lambda s, w: SpikeAttributor().attribute(s[None].repeat(2, 0), w, output_neuron=[0, 1, 2]), "output_neuron"),
    (lambda s, w: SpikeAttributor().attribute(np.where(s > 0, np.nan, 0), w), "finite"),
    (lambda s, w: SpikeAttributor().attribute(s, [w[0] * np.inf, w[1]]), r"weights\[0\]"),
    (lambda s, w: SpikeAttributor().attribute(s.astype(complex), w), "input_spikes"),
    (lambda s, w: SpikeAttributor().attribute(s.astype(object), w), "input_spikes"),
    (lambda s, w: SpikeAttributor().attribute("spikes", w), "input_spikes"),
    (lambda s, w: SpikeAttributor().attribute(s[:, :3], w), "rows"),
    (lambda s, w: SpikeAttributor().attribute(s[:0], w), "non-empty"),
    (lambda s, w: SpikeAttributor().attribute(s, w).top_k(0), "k"),
])
def test_bad_input(call, match):
    spikes, weights = _problem()
    with pytest.raises((ValueError, TypeError), match=match):
        call(spikes, weights)


class TestGatedWithHandGivenWeights:
    def _net(self, seed=12):
        return _gated_net(seed)

    def test_own_weights_give_the_model_result(self):
        net, weights = self._net()
        spikes = (torch.rand(2, 20, 16, generator=torch.Generator().manual_seed(5)) < 0.3).double()
        a = SpikeAttributor(mode="gated").attribute(spikes, weights, 1, model=net).attribution_map()
        b = SpikeAttributor(mode="gated").attribute(spikes, net, 1).attribution_map()
        torch.testing.assert_close(a, b, rtol=0, atol=0)

    def test_hand_given_weights_are_the_paths_and_the_model_the_gates(self):
        net, weights = self._net()
        other = [w * 2 for w in weights]
        spikes = (torch.rand(1, 20, 16, generator=torch.Generator().manual_seed(6)) < 0.3).double()
        a = SpikeAttributor(mode="gated").attribute(spikes, other, 2, model=net).attribution_map()
        b = SpikeAttributor(mode="gated").attribute(spikes, net, 2).attribution_map()
        torch.testing.assert_close(a, 4 * b)  # linear in the path weights, gates from the same recording

    def test_refusals(self):
        net, weights = self._net()
        spikes = torch.zeros(5, 16, dtype=torch.float64)
        with pytest.raises(ValueError, match="model: only mode='gated'"):
            SpikeAttributor().attribute(spikes, weights, 0, model=net)
        with pytest.raises(TypeError, match="model: expected a model"):
            SpikeAttributor(mode="gated").attribute(spikes, weights, 0, model=object())
        with pytest.raises(ValueError, match="weights: with model= given"):
            SpikeAttributor(mode="gated").attribute(spikes, net, 0, model=net)
        with pytest.raises(ValueError, match="one per layer"):
            SpikeAttributor(mode="gated").attribute(spikes, weights[:1] + [torch.ones(12, 5, dtype=torch.float64),
                                                                           torch.ones(5, 5, dtype=torch.float64)],
                                                    0, model=net)
