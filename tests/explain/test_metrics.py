"""Faithfulness metrics: every number against its brute-force definition, on LIFNetwork and snnTorch models."""

import numpy as np
import pytest
import torch
from conftest import require_module
from toy_models import lif_network, spike_train

from sc_neurocore.explain import SpikeAttributor, TemporalSaliency
from sc_neurocore.explain.metrics import (
    deletion_curve,
    insertion_curve,
    perturbation_curve,
    planted_pattern_task,
    precision_at_k,
    spearman,
    spike_ranks,
)


def _net(seed=0, sizes=(12, 8, 4)):
    return lif_network(seed, sizes)


def _spikes(shape, seed=1, rate=0.3):
    return spike_train(shape, seed, rate)


def _brute_force_curve(forward, spikes, scores, targets, kind, n_points):
    """One forward per sample and point, spikes ordered by a Python sort (score descending, then (t, neuron))."""
    values = np.zeros((spikes.shape[0], n_points))
    for b in range(spikes.shape[0]):
        entries = [(t, n) for t in range(spikes.shape[1]) for n in range(spikes.shape[2]) if spikes[b, t, n] != 0]
        entries.sort(key=lambda e: (-float(scores[b, e[0], e[1]]), e[0], e[1]))
        for j in range(n_points):
            k = round(j / (n_points - 1) * len(entries))
            if kind == "deletion":
                x = spikes[b].clone()
                for t, n in entries[:k]:
                    x[t, n] = 0
            else:
                x = torch.zeros_like(spikes[b])
                for t, n in entries[:k]:
                    x[t, n] = spikes[b, t, n]
            values[b, j] = float(forward(x[None])[0, int(targets[b])])
    return values


def _trapezoid(values):
    fractions = np.linspace(0, 1, values.shape[1])
    return ((values[:, 1:] + values[:, :-1]) / 2 * np.diff(fractions)).sum(axis=1)


@pytest.mark.parametrize("kind", ["deletion", "insertion"])
def test_curve_equals_brute_force_on_lif_network(kind):
    net, spikes = _net(), _spikes((3, 15, 12))
    targets = torch.tensor([0, 2, 3])
    scores = SpikeAttributor(0.9, mode="gated").attribute(spikes, net, targets).attribution_map()
    curve = perturbation_curve(net, spikes, scores, targets, kind=kind, n_points=7)
    expected = _brute_force_curve(net, spikes, scores, targets, kind, 7)
    assert np.array_equal(curve.values.numpy(), expected)
    assert np.allclose(curve.auc.numpy(), _trapezoid(expected))
    assert curve.kind == kind and curve.values.shape == (3, 7)
    # the ends of the curves are the unperturbed and the empty input, whatever the order
    full, empty = net(spikes)[torch.arange(3), targets], net(torch.zeros_like(spikes))[torch.arange(3), targets]
    first, last = (full, empty) if kind == "deletion" else (empty, full)
    assert torch.equal(curve.values[:, 0], first.double()) and torch.equal(curve.values[:, -1], last.double())
    assert expected.std() > 0  # the curve really moves


def test_curve_equals_brute_force_on_snntorch_model():
    require_module("snntorch", "snntorch")
    from toy_models import snntorch_counts, snntorch_mlp

    from sc_neurocore.adapters import from_snntorch

    net = snntorch_mlp([10, 6, 3], beta=0.8, seed=2)
    spikes = _spikes((2, 12, 10), seed=4)
    scores = torch.randn(spikes.shape, generator=torch.Generator().manual_seed(5))
    def forward(x):
        return snntorch_counts(net, x).detach()  # snnTorch's own forward pass
    for kind in ("deletion", "insertion"):
        curve = perturbation_curve(from_snntorch(net), spikes, scores, 1, kind=kind, n_points=5)
        expected = _brute_force_curve(forward, spikes, scores, torch.tensor([1, 1]), kind, 5)
        assert np.array_equal(curve.values.numpy(), expected)


def test_curve_equals_brute_force_on_norse_model():
    require_module("norse", "norse")
    from toy_models import norse_mlp, norse_readout

    from sc_neurocore.adapters import from_norse

    net = norse_mlp([10, 6, 3], seed=3)
    spikes = _spikes((2, 30, 10), seed=6, rate=0.4)
    scores = torch.randn(spikes.shape, generator=torch.Generator().manual_seed(7))
    def forward(x):
        return norse_readout(net, x).detach()  # Norse's own forward pass
    for kind in ("deletion", "insertion"):
        curve = perturbation_curve(from_norse(net), spikes, scores, 2, kind=kind, n_points=5)
        expected = _brute_force_curve(forward, spikes, scores, torch.tensor([2, 2]), kind, 5)
        assert np.allclose(curve.values.numpy(), expected, rtol=0, atol=1e-5)
        assert expected.std() > 0  # the network responds to the input


def test_curve_is_chunked_and_numpy_and_unbatched_callables_agree(chunks_of_any_size):
    net, spikes = _net(), _spikes((2, 10, 12), seed=7)
    scores = torch.randn(spikes.shape, generator=torch.Generator().manual_seed(8))
    reference = deletion_curve(net, spikes, scores, 1, n_points=6)
    tiny_budget = deletion_curve(net, spikes, scores, 1, n_points=6, max_memory=20_000)
    assert torch.equal(reference.values, tiny_budget.values)
    def tutorial_run_fn(x):
        return net(torch.as_tensor(x, dtype=torch.float32)[None])[0].numpy()
    numpy_curve = deletion_curve(tutorial_run_fn, spikes[0].numpy(), scores[0].numpy(), 1, n_points=6)
    assert np.array_equal(numpy_curve.values[0].numpy(), reference.values[0].numpy())


def test_curve_accepts_result_objects_and_never_mutates():
    net, spikes = _net(), _spikes((2, 10, 12), seed=9)
    saliency = TemporalSaliency(net).explain(spikes, 0)
    before = spikes.clone()
    curve = insertion_curve(net, spikes, saliency, 0, n_points=4)
    assert torch.equal(curve.values, insertion_curve(net, spikes, saliency.saliency_map(), 0, n_points=4).values)
    assert torch.equal(spikes, before)


def test_counts_round_each_fraction_of_the_spikes():
    net, spikes = _net(), _spikes((2, 10, 12), seed=3)
    curve = deletion_curve(net, spikes, torch.rand(spikes.shape), 0, n_points=5)
    n = (spikes != 0).sum(dim=(1, 2))
    expected = torch.round(torch.tensor([0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64)[None] * n[:, None]).long()
    assert torch.equal(curve.counts, expected)


def test_spike_ranks_put_spikes_first_by_score_then_position():
    spikes = torch.tensor([[[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]])
    scores = torch.tensor([[[0.5, 9.0, 2.0], [0.5, -1.0, 7.0]]])
    ranks = spike_ranks(spikes, scores)[0].tolist()
    # spikes: (0,0)=0.5, (0,2)=2.0, (1,0)=0.5, (1,1)=-1 -> order (0,2), (0,0), (1,0), (1,1); then non-spikes
    assert ranks[2] == 0 and ranks[0] == 1 and ranks[3] == 2 and ranks[4] == 3
    assert sorted([ranks[1], ranks[5]]) == [4, 5]


def test_spearman_matches_scipy_per_sample():
    from scipy.stats import spearmanr

    spikes = _spikes((3, 8, 6), seed=11, rate=0.5)
    g = torch.Generator().manual_seed(12)
    a = torch.randint(0, 4, spikes.shape, generator=g).double()  # many ties
    b = torch.randn(spikes.shape, generator=g, dtype=torch.float64)
    ours = spearman(a, b, spikes)
    for sample in range(3):
        mask = spikes[sample] != 0
        expected = spearmanr(a[sample][mask].numpy(), b[sample][mask].numpy()).statistic
        assert ours[sample].item() == pytest.approx(expected, abs=1e-12)


def test_spearman_is_nan_for_a_constant_map_and_one_for_monotone_maps():
    spikes = torch.ones(2, 3, 4)
    a = torch.arange(24.0).reshape(2, 3, 4)
    result = spearman(a, torch.zeros_like(a), spikes)
    assert torch.isnan(result).all()
    assert torch.allclose(spearman(a, torch.exp(a / 5), spikes), torch.ones(2, dtype=torch.float64))


def test_precision_at_k_equals_brute_force():
    spikes = _spikes((4, 9, 7), seed=13, rate=0.5)
    g = torch.Generator().manual_seed(14)
    scores = torch.randn(spikes.shape, generator=g)
    planted = (torch.rand(spikes.shape, generator=g) < 0.3) & (spikes != 0)
    ours = precision_at_k(scores, planted, spikes)
    for b in range(4):
        entries = [(t, n) for t in range(9) for n in range(7) if spikes[b, t, n] != 0]
        entries.sort(key=lambda e: (-float(scores[b, e[0], e[1]]), e))
        k = int(planted[b].sum())
        hits = sum(bool(planted[b, t, n]) for t, n in entries[:k])
        assert ours[b].item() == pytest.approx(hits / k)
    assert precision_at_k(planted.float(), planted, spikes).eq(1).all()
    assert precision_at_k(scores, planted, spikes, k=2).shape == (4,)


def test_planted_task_hides_exactly_the_class_pattern_in_noise():
    task = planted_pattern_task(40, n_steps=12, n_inputs=20, n_classes=4, pattern_size=3, noise_rate=0.3, seed=5)
    assert task.spikes.shape == (40, 12, 20) and task.planted.shape == (40, 12, 20)
    owned = task.pattern_neurons.reshape(-1)
    for b in range(40):
        c = int(task.labels[b])
        planted = {(int(t), int(n)) for t, n in zip(*torch.nonzero(task.planted[b], as_tuple=True), strict=False)}
        assert planted == {(int(t), int(n)) for t, n in zip(task.pattern_times[c], task.pattern_neurons[c], strict=False)}
        # the owned neurons carry only the planted spikes; noise lives elsewhere
        assert torch.equal(task.spikes[b][:, owned] != 0, task.planted[b][:, owned])
    noise = task.spikes.bool() & ~task.planted
    assert 0.2 < float(noise.float().sum() / (40 * 12 * (20 - 12))) < 0.4
    assert torch.equal(planted_pattern_task(40, n_steps=12, n_inputs=20, n_classes=4, pattern_size=3,
                                            noise_rate=0.3, seed=5).spikes, task.spikes)
    assert torch.bincount(task.labels).tolist() == [10, 10, 10, 10]


@pytest.mark.parametrize("call, match", [
    (lambda net, s: perturbation_curve(net, s, torch.rand(s.shape), 0, kind="sideways"), "kind"),
    (lambda net, s: deletion_curve(net, s, torch.rand(s.shape), 0, n_points=1), "n_points"),
    (lambda net, s: deletion_curve(net, s, torch.rand(3, 3), 0), "scores"),
    (lambda net, s: deletion_curve(net, s, torch.full(s.shape, float("nan")), 0), "scores"),
    (lambda net, s: deletion_curve(net, s, torch.rand(s.shape), 9), "output_neuron"),
    (lambda net, s: deletion_curve(net, s[..., :5], torch.rand(s[..., :5].shape), 0), "input_spikes"),
    (lambda net, s: precision_at_k(torch.rand(s.shape), torch.ones(s.shape), s * 0), "planted"),
    (lambda net, s: precision_at_k(torch.rand(s.shape), torch.ones(2, 2), s), "planted"),
    (lambda net, s: spearman(torch.rand(s.shape), torch.rand(1, 2), s), "scores_b"),
    (lambda net, s: planted_pattern_task(5, n_inputs=4, n_classes=3, pattern_size=2), "n_inputs"),
    (lambda net, s: planted_pattern_task(5, noise_rate=1.5), "noise_rate"),
])
def test_bad_arguments_are_named(call, match):
    net, spikes = _net(), _spikes((2, 6, 12))
    with pytest.raises((ValueError, TypeError), match=match):
        call(net, spikes)


def test_probability_curve_is_the_softmax_of_the_brute_force_outputs():
    net, spikes = _net(), _spikes((2, 10, 12))
    scores = torch.rand(spikes.shape, generator=torch.Generator().manual_seed(3))
    targets = torch.tensor([1, 2])
    curve = deletion_curve(net, spikes, scores, targets, n_points=4)
    for b in range(2):
        for j, k in enumerate(curve.counts[b].tolist()):
            order = torch.argsort(-scores[b].reshape(-1), stable=True)
            order = order[spikes[b].reshape(-1)[order] != 0][:k]
            x = spikes[b].clone().reshape(-1)
            x[order] = 0
            probability = torch.softmax(net(x.reshape(1, 10, 12)).double(), dim=1)[0, targets[b]]
            assert float(curve.probability[b, j]) == pytest.approx(float(probability), rel=1e-9)
    assert torch.allclose(curve.probability_auc, torch.trapezoid(curve.probability, curve.fractions, dim=1))


def test_seeded_ties_are_random_but_reproducible():
    spikes = torch.ones(1, 4, 5)
    ties = torch.zeros(1, 4, 5)
    by_index = spike_ranks(spikes, ties)
    seeded = spike_ranks(spikes, ties, tie_seed=3)
    assert by_index[0].tolist() == list(range(20))
    assert sorted(seeded[0].tolist()) == list(range(20)) and seeded[0].tolist() != list(range(20))
    assert torch.equal(seeded, spike_ranks(spikes, ties, tie_seed=3))
    distinct = torch.arange(20.0).reshape(1, 4, 5)
    assert torch.equal(spike_ranks(spikes, distinct, tie_seed=3), spike_ranks(spikes, distinct))  # no ties: same
    partly = torch.tensor([[[5.0, 1.0, 1.0, 0.0, 9.0]]])
    ranks = spike_ranks(torch.ones(1, 1, 5), partly, tie_seed=1)[0].tolist()
    assert ranks[4] == 0 and ranks[0] == 1 and sorted(ranks[1:3]) == [2, 3] and ranks[3] == 4


def test_sensitivity_n_against_its_definition():
    from sc_neurocore.explain.metrics import sensitivity_n, subset_drops

    net, spikes = _net(), _spikes((2, 10, 12), rate=0.4)
    targets = torch.tensor([0, 3])
    drops = subset_drops(net, spikes, targets, fractions=(0.2, 0.6), n_subsets=5, seed=4)
    scores = torch.randn(spikes.shape, generator=torch.Generator().manual_seed(5))
    result = sensitivity_n(scores, drops)
    for b in range(2):
        base = float(net(spikes[b:b + 1])[0, targets[b]])
        n_spikes = int((spikes[b] != 0).sum())
        for s, share in enumerate((0.2, 0.6)):
            size = max(1, round(share * n_spikes))
            assert int(drops.sizes[b, s]) == size
            summed, dropped = [], []
            for r in range(5):
                positions = drops.order[b, r, :size]
                assert bool((spikes[b].reshape(-1)[positions] != 0).all())  # subsets hold spikes only
                x = spikes[b].clone().reshape(-1)
                x[positions] = 0
                dropped.append(base - float(net(x.reshape(1, 10, 12))[0, targets[b]]))
                summed.append(float(scores[b].reshape(-1)[positions].sum()))
            np.testing.assert_allclose(drops.drops[b, s].numpy(), dropped, atol=1e-9)
            if np.std(dropped) > 0:
                assert float(result[b, s]) == pytest.approx(np.corrcoef(summed, dropped)[0, 1], abs=1e-6)
            else:
                assert np.isnan(float(result[b, s]))  # undefined, never a silent 0


def test_occlusion_drops_and_agreement_against_their_definition():
    from sc_neurocore.explain.metrics import occlusion_agreement, occlusion_drops

    net, spikes = _net(), _spikes((2, 10, 12), rate=0.2)
    targets = torch.tensor([2, 1])
    drops = occlusion_drops(net, spikes, targets)
    for b in range(2):
        base = float(net(spikes[b:b + 1])[0, targets[b]])
        for i in range(12):
            if not spikes[b, :, i].any():
                assert np.isnan(float(drops[b, i]))
                continue
            x = spikes[b:b + 1].clone()
            x[0, :, i] = 0
            assert float(drops[b, i]) == pytest.approx(base - float(net(x)[0, targets[b]]))
    scores = torch.randn(spikes.shape, generator=torch.Generator().manual_seed(6))
    agreement = occlusion_agreement(scores, drops)
    for b in range(2):
        active = ~torch.isnan(drops[b])
        neuron_scores = scores[b].sum(dim=0)[active][None, None, :]
        expected = spearman(neuron_scores, drops[b][active][None, None, :], torch.ones_like(neuron_scores))
        assert float(agreement[b]) == pytest.approx(float(expected[0]), nan_ok=True)
