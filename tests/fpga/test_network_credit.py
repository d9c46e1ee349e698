"""The one-pass auto rule in integers (`network_credit`) against the float rule of `explain.credit`.

The float rule runs on the same recorded spikes with the chip's constants: equal bit for bit when every
leak is a power of two and `credit_bits` covers the shifts, within `credit_error_bound` otherwise (the
shipped digits8 network), and ranking alike. Against the float rule on the float model (whose spikes
differ where quantisation flips one) the top-10 inputs mostly agree.
"""

from __future__ import annotations

import pytest
import torch

from sc_neurocore.data import load_digits, pretrained_network
from sc_neurocore.explain.credit import CreditLayer, auto_scores, credit_scores
from sc_neurocore.fpga.network_credit import credit_error_bound, credit_magnitudes, integer_credit
from sc_neurocore.fpga.network_reference import quantize_network, record_spikes, run_network
from sc_neurocore.models import LIFNetwork


def float_rule_on_chip_spikes(network, spikes, targets):
    """`explain.credit`'s rule with the chip's constants (`beta_int / 2**kb`, `w / 2**G`, `theta / 2**G`) on
    the integer network's recorded spikes, in float64."""
    spec = network.spec
    recorded = [z.to(torch.float64) for z in record_spikes(network, spikes)]
    grid = 2.0**spec.weight_frac_bits
    layers = [CreditLayer.dense(w.to(torch.float64) / grid, beta / 2**spec.beta_bits, theta / grid, spec.reset)
              for w, beta, theta in zip(network.weights, spec.beta_int, spec.threshold_int, strict=True)]
    return credit_scores(spikes.to(torch.float64), layers, "count", recorded, [torch.zeros_like(z) for z in recorded],
                         targets)


def top_k(importance, k):
    return torch.sort(importance.abs(), dim=1, descending=True, stable=True).indices[:, :k]


def test_power_of_two_leaks_give_the_float_rule_exactly():
    """beta = 1/2 in both layers (one shift per step), T = 8: Q = 15 >= 2 * (T - 1) shifts, so no floor drops
    a bit and the integer scores are the float rule times the scale, exactly."""
    network = quantize_network(LIFNetwork(pretrained_network(8).linear_weights(), beta=0.5), n_steps=8)
    spikes = load_digits("test").spikes[:60, :8].to(torch.int64)
    credit = integer_credit(network, spikes)
    float_scores = float_rule_on_chip_spikes(network, spikes, credit.predicted)
    assert torch.equal(credit.scores.to(torch.float64), float_scores * credit.scale)
    assert int(credit.scores.abs().max()) > 2**20  # not a trivial zero map
    assert torch.equal(credit.predicted, run_network(network, spikes).predicted)


def test_shipped_network_within_the_bound_and_ranking_alike():
    network = quantize_network(pretrained_network(8), n_steps=25)
    spikes = load_digits("test").spikes[:100].to(torch.int64)
    credit = integer_credit(network, spikes)
    float_scores = float_rule_on_chip_spikes(network, spikes, credit.predicted)
    error = (float_scores * credit.scale - credit.scores.to(torch.float64)).abs()
    assert float(error.max()) <= credit_error_bound(network)
    assert float(error.max()) > 0  # beta = 0.9: the floors do act here
    agree = (top_k(float_scores.sum(dim=1), 10) == credit.top_indices).all(dim=1).double().mean()
    assert agree >= 0.99, agree
    assert torch.equal(credit.top_scores, torch.gather(credit.importance, 1, credit.top_indices))


def test_against_the_float_rule_on_the_float_model():
    """The auto rule of `SpikeAttributor(mode="auto")` on the float digits8 network, explaining the chip's
    class: the integer rule's top-10 inputs overlap it by at least 90% on average."""
    model = pretrained_network(8)
    network = quantize_network(model, n_steps=25)
    spikes = load_digits("test").spikes.to(torch.int64)
    credit = integer_credit(network, spikes)
    float_top = top_k(auto_scores(model, spikes.to(torch.float32), credit.predicted).sum(dim=1), 10)
    overlap = [len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(float_top, credit.top_indices, strict=True)]
    assert sum(overlap) / len(overlap) >= 0.9, sum(overlap) / len(overlap)


def test_arguments_and_overflow_are_checked():
    network = quantize_network(pretrained_network(8), n_steps=25)
    with pytest.raises(ValueError, match="credit_bits"):
        integer_credit(network, torch.zeros(1, 25, 64), credit_bits=-1)
    with pytest.raises(ValueError, match="credit_bits: credits of"):
        integer_credit(network, torch.zeros(1, 25, 64), credit_bits=40)
    with pytest.raises(ValueError, match="spikes"):
        integer_credit(network, torch.zeros(1, 24, 64))
    zero = quantize_network(LIFNetwork(pretrained_network(8).linear_weights(), reset="zero"), n_steps=25)
    with pytest.raises(ValueError, match="network: a zero reset"):
        integer_credit(zero, torch.zeros(1, 25, 64))
    assert credit_magnitudes(network)[0] == 2**15
    spikes = load_digits("test").spikes[:2]
    before = spikes.clone()
    integer_credit(network, spikes)
    assert torch.equal(spikes, before)
