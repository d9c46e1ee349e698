"""The measured reasons of a missed target (`quality.diagnostics`, `quality.variants`, `quality.report_misses`)
and exact saliency on a subset of the held-out digits: each on a planted case with a known answer."""

import math

import pytest
import torch
from conftest import require_module

from sc_neurocore.explain import SpikeAttributor
from sc_neurocore.explain.credit import auto_scores, spike_credit
from sc_neurocore.explain.metrics import deletion_curve, occlusion_drops, subset_drops
from sc_neurocore.models import LIFNetwork
from sc_neurocore.quality import diagnostics
from sc_neurocore.quality.evaluate import evaluate_method
from sc_neurocore.quality.networks import SHIPPED, load_network
from sc_neurocore.quality.report import network_section
from sc_neurocore.quality.report_misses import Diagnosis, Explained, miss_lines, misses_section
from sc_neurocore.quality.rivals import AUTO, LINEAR, SALIENCY, methods
from sc_neurocore.quality.stats import Paired
from sc_neurocore.quality.targets import Miss, misses
from sc_neurocore.quality.variants import VARIANTS, VariantRow, every_later_spike, no_leak, silent_to_peak


def _planted():
    """Input 0 drives hidden neuron 0 over threshold every step; input 1 drives hidden neuron 1 at 0.05 a step,
    which never reaches the threshold (its membrane tends to 0.5). Sample 1 has no input-0 spikes."""
    net = LIFNetwork([torch.tensor([[2.0, 0.0], [0.0, 0.05]]), torch.ones(2, 1)], beta=0.9, threshold=1.0)
    spikes = torch.zeros(2, 6, 2)
    spikes[0] = 1.0
    spikes[1, :, 1] = 1.0
    return net, spikes


def test_silent_neurons_of_a_planted_network():
    net, spikes = _planted()
    (found,) = diagnostics.silent_neurons(net, spikes)
    # neuron 1 fires on no sample; in sample 1 neuron 0 is silent too: (1/2 + 2/2) / 2
    assert (found.size, found.never, found.per_sample) == (2, 0.5, 0.75)
    assert net.record(spikes).layers[0].spikes[0, :, 0].sum() == 6  # the plant: neuron 0 fires every step
    louder = LIFNetwork([torch.tensor([[2.0, 0.0], [0.0, 0.5]]), torch.ones(2, 1)], beta=0.9, threshold=1.0)
    assert diagnostics.silent_neurons(louder, spikes)[0].never == 0.0  # 0.5 a step reaches the threshold: nobody silent


def test_zero_credit_counts_the_spikes_auto_leaves_out_through_a_silent_neuron():
    net, spikes = _planted()
    targets = torch.zeros(2, dtype=torch.long)
    auto = SpikeAttributor(mode="auto").attribute(spikes, net, targets).attribution_map()
    linear = SpikeAttributor(1.0).attribute(spikes, net, targets).attribution_map()
    found = diagnostics.zero_credit(auto, linear, spikes)
    # every input-1 spike (12 of 18) reaches the output only through the silent neuron 1
    assert found == diagnostics.ZeroCredit(18, 12 / 18, 0.0)
    assert bool((auto[:, :, 1] == 0).all()) and bool((linear[:, :, 1] > 0).all())
    assert diagnostics.zero_credit(linear, auto, spikes) == diagnostics.ZeroCredit(18, 0.0, 12 / 18)
    assert math.isnan(diagnostics.zero_credit(auto, linear, torch.zeros_like(spikes)).only_first)


def test_silent_path_share_of_a_planted_network():
    net, spikes = _planted()
    # path weight |W1[i, j] W2[j, 0]| per spike: input 0 -> neuron 0 (fires every step) 2.0 each, 6 spikes;
    # input 1 -> neuron 1 (never fires) 0.05 each, 12 spikes: 0.6 of 12.6 runs through the silent neuron
    assert diagnostics.silent_path_share(net, spikes, torch.zeros(2, dtype=torch.long)) == pytest.approx(0.6 / 12.6)
    late = spikes.clone()
    late[0, 3:, 0] = 0.0  # neuron 0 fires until step 2 only: input-0 spikes before it stay on live paths
    assert diagnostics.silent_path_share(net, late, torch.zeros(2, dtype=torch.long)) == pytest.approx(0.6 / (6 * 0.05 * 2 + 6.0))
    assert diagnostics.silent_path_share(LIFNetwork([torch.ones(2, 1)]), spikes, torch.zeros(2, dtype=torch.long)) is None


def test_segments_split_the_auc_difference():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.rand(30, 11, generator=generator, dtype=torch.float64), torch.rand(30, 11, generator=generator,
                                                                                      dtype=torch.float64)
    fractions = torch.linspace(0, 1, 11, dtype=torch.float64)
    found = diagnostics.segments(a, b, fractions, 0.2)
    total = torch.trapezoid(a, fractions, dim=1) - torch.trapezoid(b, fractions, dim=1)
    assert found.first.mean + found.rest.mean == pytest.approx(float(total.mean()))
    first = torch.trapezoid(a[:, :3], fractions[:3], dim=1) - torch.trapezoid(b[:, :3], fractions[:3], dim=1)
    assert found.first.mean == pytest.approx(float(first.mean()))
    with pytest.raises(ValueError, match="split"):
        diagnostics.segments(a, b, fractions, 0.25)
    # a rival whose deletion curve falls faster only at the start: ahead in the first segment, level after
    ahead = torch.zeros(4, 11, dtype=torch.float64)
    behind = ahead.clone()
    behind[:, 1] = torch.tensor([1.0, 1.1, 0.9, 1.0])
    text = diagnostics.where_text(diagnostics.segments(behind, ahead, fractions, 0.2), "deletion")
    assert text == "the rival is ahead in the first 20% of removals, and neither is ahead in the rest"
    assert diagnostics.where_text(diagnostics.segments(behind, ahead, fractions, 0.2), "insertion").startswith("auto is ahead in the first")


def test_variant_rules_plug_into_auto():
    net = load_network(SHIPPED, n_select=1, n_eval=6).model
    spikes = load_network(SHIPPED, n_select=1, n_eval=6).held_out[0]
    targets = torch.arange(6) % 10
    base = auto_scores(net, spikes, targets)
    same = auto_scores(net, spikes, targets, lambda z, g, v, layer: spike_credit(z, g, layer.beta, layer.threshold))
    assert torch.equal(base, same)  # the hook with the rule itself changes nothing
    for name, rule in VARIANTS.items():
        assert not torch.equal(auto_scores(net, spikes, targets, rule), base), name  # each one changes the credit
    flat = LIFNetwork([torch.tensor([[0.6, 0.3]]), torch.ones(2, 1)], beta=1.0, threshold=1.0)
    x = (torch.rand(3, 8, 1, generator=torch.Generator().manual_seed(1)) < 0.7).float()
    t = torch.zeros(3, dtype=torch.long)
    assert torch.equal(auto_scores(flat, x, t, no_leak), auto_scores(flat, x, t))  # beta 1: no leak to remove


def test_variants_agree_with_the_rule_where_their_assumption_does_not_bite():
    z = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]]])
    worth = torch.tensor([[[1.0, 2.0], [3.0, 1.0], [1.0, 1.0]]])
    v = torch.tensor([[[0.5, 1.2], [1.1, 0.3], [0.4, 0.8]]])
    from sc_neurocore.explain.credit import CreditLayer

    layer = CreditLayer.dense(torch.ones(2, 2), 0.5)
    rule = spike_credit(z, worth, 0.5, 1.0)
    peak = silent_to_peak(z, worth, v, layer)
    assert torch.equal(peak[:, :2, 0], rule[:, :2, 0]) and torch.equal(peak[:, :1, 1], rule[:, :1, 1])
    assert peak[0, 2, 0] == 1.0 and peak[0, 1, 1] == 0.5  # after the last spike: through the later peak (t=2)
    once = every_later_spike(z, worth, v, layer)  # each neuron fires once: the same wherever a spike follows
    assert torch.equal(once[:, :2, 0], rule[:, :2, 0]) and torch.equal(once[:, :1, 1], rule[:, :1, 1])


def test_exact_saliency_on_the_first_digits_only():
    network = load_network(SHIPPED, n_select=1, n_eval=4)
    saliency = next(m for m in methods(captum=False) if m.name == SALIENCY)
    spikes, targets = network.held_out
    drops = subset_drops(network.model, spikes, targets, fractions=(0.5,), n_subsets=4)
    occlusion = occlusion_drops(network.model, spikes, targets)
    part = evaluate_method(saliency, network, drops, occlusion, n_points=5, tune_points=3, n_run=2)
    whole = evaluate_method(saliency, network, drops, occlusion, n_points=5, tune_points=3)
    assert part.n_run == 2 and part.executor is not None
    for key, values in part.per_sample.items():
        assert values.shape == (4,) and bool(torch.isnan(values[2:]).all()), key
    scores = saliency.build(network, {})(spikes[:2], targets[:2])
    direct = deletion_curve(network.model, spikes[:2], scores, targets[:2], n_points=5, tie_seed=0).auc
    assert torch.equal(part.per_sample["deletion"][:2], direct)
    assert torch.allclose(part.per_sample["occlusion"][:2], whole.per_sample["occlusion"][:2], equal_nan=True)
    from sc_neurocore.quality.evaluate import NetworkResult

    auto = evaluate_method(methods(captum=False)[0], network, drops, occlusion, n_points=5, tune_points=3)
    lines = "\n".join(network_section(NetworkResult(network, [auto, part], (0.5,), {})))
    assert "explained the first 2 of the 4 held-out digits only" in lines and "(2 digits) |" in lines
    assert "(2 undef.)" not in lines  # the digits not run are not counted as undefined


def _paired(mean, low, high):
    return Paired(mean, low, high, 64, 0)


def test_miss_text_is_built_from_the_measured_diagnoses():
    miss = Miss("insertion", LINEAR, _paired(-0.3, -0.4, -0.2))
    
    where = diagnostics.Segments(0.2, _paired(-0.1, -0.15, -0.05), _paired(-0.2, -0.3, -0.1))
    rows = [VariantRow("every later spike", {"deletion": 0.5, "insertion": -1.0},
                       {"deletion": _paired(0.5, 0.4, 0.6), "insertion": _paired(-1.0, -1.2, -0.8)},
                       {("insertion", LINEAR): _paired(-1.3, -1.5, -1.1)}),
            VariantRow("silent kick to the membrane peak", {"deletion": -0.2, "insertion": 0.4},
                       {"deletion": _paired(-0.1, -0.2, 0.1), "insertion": _paired(0.4, 0.3, 0.5)},
                       {("insertion", LINEAR): _paired(0.1, 0.05, 0.2)})]
    diagnosis = Diagnosis("planted net", [diagnostics.Silent("0", 128, 0.75, 0.855)], 0.4321,
                          [Explained(miss, diagnostics.ZeroCredit(1000, 0.0178, 0.0004), where)], rows)
    text = "\n".join(miss_lines(diagnosis))
    assert "75.0% of its 128 neurons fire on no held-out digit, 85.5% are silent" in text
    assert f"- insertion AUC: {LINEAR} is not beaten (auto minus it -0.300 [-0.400, -0.200])" in text
    assert "1.8% of 1000 (the converse: 0.04%)" in text
    assert "$p = W_2 \\cdots W_L e_k$), 43.2% runs through first-layer neurons" in text
    assert "path weight" not in "\n".join(miss_lines(diagnosis._replace(silent_paths=None)))
    assert "the rival is ahead in the first 20% of insertions, and the rival is ahead in the rest" in text
    # the variant chosen on the selection set (insertion +0.4), and it beats the rival on the held-out set
    assert f"\"silent kick to the membrane peak\", minus {LINEAR} on the held-out digits: +0.100" in text
    assert "(beats it)" in text
    assert "| every later spike | +0.500 | -1.000 | +0.500 [+0.400, +0.600] | -1.000 [-1.200, -0.800] | " \
           "-1.300 [-1.500, -1.100] |" in text
    worse = diagnosis._replace(variants=[rows[0]])
    assert "No variant below improves the insertion AUC on the selection set" in "\n".join(miss_lines(worse))
    assert misses_section([diagnosis])[0] == "## Why a target is missed" and misses_section([]) == []


def test_diagnose_on_a_measured_network():
    require_module("snntorch", "snntorch")
    from sc_neurocore.quality.evaluate import quick_result
    from sc_neurocore.quality.report_misses import diagnose

    result = quick_result(n_select=2, n_eval=6)
    found = diagnose(result, n_points=3, tune_points=3)
    missed = misses(result, "deletion") + misses(result, "insertion")
    assert found is not None and [e.miss for e in found.explained] == missed
    network = result.network
    assert found.silent == diagnostics.silent_neurons(network.model, network.held_out[0])
    assert found.silent_paths == diagnostics.silent_path_share(network.model, *network.held_out)
    auto = SpikeAttributor(mode="auto").attribute(*network.held_out[:1], network.model,
                                                  network.held_out[1]).attribution_map()
    for item in found.explained:
        rival = next(m for m in result.methods if m.tuned.method.name == item.miss.rival)
        other = rival.tuned.method.build(network, rival.tuned.setting)(*network.held_out)
        assert item.zeros == diagnostics.zero_credit(auto, other, network.held_out[0])
        assert item.where.split == 0.5  # the inner point of a 3-point curve
    assert [row.name for row in found.variants] == list(VARIANTS)
    assert AUTO not in [row.name for row in found.variants]
