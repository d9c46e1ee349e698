"""The flip screen: spike removals that provably cannot flip a first-layer spike are never replayed.

The bound (``flip_reach``) must never rule out a row whose first layer's spikes change in a real forward
pass, for every reset mechanism and leak (beta = 0 and 1 included), and it must rule out rows where the
network is far from its thresholds (the shipped 28x28 digits network: most removals change nothing).
"""

import pytest
import torch

from sc_neurocore.adapters.compile import compile_model
from sc_neurocore.engine import run_plan
from sc_neurocore.engine.incremental import flip_reach, run_incremental, screen_rows, stack_forward, translate
from sc_neurocore.engine.plans import remove_each_spike
from sc_neurocore.models import LIFNetwork


def _screened(net, spikes):
    stack = compile_model(net)
    _, baseline = stack_forward(stack, spikes, record=True)
    plan = remove_each_spike(spikes)
    rows = translate(stack, spikes, plan, lambda level: spikes)
    return plan, screen_rows(stack, spikes, flip_reach(stack.layers[0], baseline.states[0].membrane), rows)


def _first_layer_changes(net, spikes, plan):
    """Brute force: does removing each spike change any first-layer spike?"""
    base = net.record(spikes).layers[0].spikes
    changed = torch.zeros(len(plan), dtype=torch.bool)
    for p, (b, t, i) in enumerate(zip(plan.sample.tolist(), plan.timestep.tolist(), plan.neuron.tolist(), strict=True)):
        x = spikes[b:b + 1].clone()
        x[0, t, i] = 0
        changed[p] = not torch.equal(net.record(x).layers[0].spikes[0], base[b])
    return changed


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("beta", [0.0, 0.7, 1.0])
def test_never_rules_out_a_row_that_flips_a_spike(reset, beta):
    generator = torch.Generator().manual_seed(int(beta * 10) + len(reset))
    weights = [torch.randn(12, 9, generator=generator) * 0.6, torch.randn(9, 3, generator=generator)]
    net = LIFNetwork(weights, beta=beta, threshold=0.8, reset=reset)
    spikes = (torch.rand(3, 20, 12, generator=generator) < 0.3).float()
    plan, may_change = _screened(net, spikes)
    changes = _first_layer_changes(net, spikes, plan)
    assert changes.any()  # the case is not vacuous
    assert not (changes & ~may_change).any()
    assert torch.equal(run_incremental(compile_model(net), spikes, plan), run_plan(net, spikes, plan))


def test_rules_out_most_removals_on_the_trained_digits_network():
    from conftest import require_module

    require_module("sklearn", "data")
    from sc_neurocore.data import load_digits, pretrained_network

    net = pretrained_network(28)
    spikes = load_digits("test", size=28).spikes[:2]
    plan, may_change = _screened(net, spikes)
    assert may_change.float().mean() < 0.5  # most rows skip the replay
    assert torch.equal(run_incremental(compile_model(net), spikes, plan), run_plan(net, spikes, plan))
