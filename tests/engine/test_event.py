"""The event engine is exact: equal to the generic batched path and to the naive loop (one forward per
perturbation) bit for bit, outside the rows it reports in its tie mask; on random networks of every reset
mode, beta 0 / 0.7 / 1, float32 and float64, every plan kind; compiled and plain-Python kernels agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from brute_force import input_causal_loop, one_sample, saliency_loop
from event_networks import EXAMPLES, networks, plans_of
from hypothesis import given

from sc_neurocore.engine.compile import compile_model
from sc_neurocore.engine import event, event_kernels, event_tables, execute, run_plan
from sc_neurocore.engine.batched import materialise
from sc_neurocore.engine.incremental import stack_forward
from sc_neurocore.engine.plans import Silencing, remove_each_spike, silence_each_neuron, silence_prefixes
from sc_neurocore.models import LIFNetwork

def assert_equal_outside_ties(outputs, tie, reference, context):
    assert outputs.shape == reference.shape, context
    assert torch.equal(outputs[~tie], reference[~tie]), context


@EXAMPLES
@given(networks())
def test_event_equals_generic_on_random_networks(problem):
    net, spikes = problem
    stack = compile_model(net)
    for plan in plans_of(net, spikes):
        if len(plan) == 0:
            continue
        outputs, tie = event.run_events(stack, spikes, plan)
        assert_equal_outside_ties(outputs, tie, run_plan(net, spikes, plan), (type(plan).__name__, net.reset))
        via_execute, info = execute(net, spikes, plan, engine="event", return_info=True)
        assert info.engine == "event" and torch.equal(info.tie_mask, tie)
        # Tie rows are recomputed by the model's own forward: equal to the generic path there too.
        assert torch.equal(via_execute, run_plan(net, spikes, plan))


@EXAMPLES
@given(networks())
def test_event_equals_the_naive_loop(problem):
    net, spikes = problem
    plan = remove_each_spike(spikes[:1])
    if len(plan) == 0:
        return
    outputs, tie = event.run_events(compile_model(net), spikes[:1], plan)
    target = int(net.run(spikes[:1])[0].argmax())
    expected = saliency_loop(one_sample(net), spikes[0], target)
    got = torch.zeros_like(expected)
    got[plan.timestep, plan.neuron] = (net.run(spikes[:1])[0, target] - outputs[:, target]).double()
    keep = ~tie
    assert torch.equal(got[plan.timestep[keep], plan.neuron[keep]], expected[plan.timestep[keep], plan.neuron[keep]])
    silenced = silence_each_neuron("input", net.n_inputs, 1, spikes.device)
    outputs, tie = event.run_events(compile_model(net), spikes[:1], silenced)
    expected = input_causal_loop(one_sample(net), spikes[0], target)
    got = (net.run(spikes[:1])[0, target] - outputs[:, target]).double()
    assert torch.equal(got[~tie], expected[~tie])


def test_ties_are_rare_and_reported_on_a_float32_workload():
    generator = torch.Generator().manual_seed(3)
    net = LIFNetwork([torch.randn(200, 64, generator=generator) * 0.25, torch.randn(64, 10, generator=generator) * 0.4])
    spikes = (torch.rand(2, 20, 200, generator=generator) < 0.1).float()
    plan = remove_each_spike(spikes)
    outputs, tie = event.run_events(compile_model(net), spikes, plan)
    assert_equal_outside_ties(outputs, tie, run_plan(net, spikes, plan), "float32 workload")
    assert int(tie.sum()) < len(plan) // 3
    assert (outputs != net.run(spikes)[plan.sample]).any()  # removals do change outputs (not a vacuous check)


def removal_events(net, spikes):
    """The tight tables of ``net`` on ``spikes``, the plan removing each spike and its first layer's events."""
    stack = compile_model(net)
    _, baseline = stack_forward(stack, spikes, record=True)
    plan = remove_each_spike(spikes)
    return (event_tables.layer_tables(stack, spikes, baseline, tight=True), plan,
            event.plan_events(stack, spikes, baseline, plan))


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_every_screen_path_gives_the_same_changes(reset):
    # Rows with one event (removed input spikes), with many (a hidden layer's flips), for every neuron or for
    # one (a caller's output column): each has its own screen pass; all give the full run's changes.
    generator = torch.Generator().manual_seed(6)
    net = LIFNetwork([torch.randn(40, 24, generator=generator), torch.randn(24, 5, generator=generator)], beta=0.8,
                     reset=reset)
    tables, plan, events = removal_events(net, (torch.rand(1, 15, 40, generator=generator) < 0.3).float())
    sample = plan.sample.numpy()
    for table in tables:
        for compiled in (True, False):
            propagate = event_kernels.kernels(compiled)["propagate_layer"]
            every = propagate(events.offsets, events.t, events.i, events.delta, sample, np.full(len(plan), -1),
                              *table.kernel_args(), 64, *table.tight_args())
            rows = np.repeat(np.arange(len(plan)), np.diff(every[0]))
            for j in range(table.weight.shape[1]):
                one = propagate(events.offsets, events.t, events.i, events.delta, sample, np.full(len(plan), j),
                                *table.kernel_args(), 64, *table.tight_args())
                decided = ~(every[4] | one[4])  # rows tied either way hold no changes: compared elsewhere
                mine = (every[2] == j) & decided[rows]
                one_rows = np.repeat(np.arange(len(plan)), np.diff(one[0]))
                kept = decided[one_rows]
                assert np.array_equal(one_rows[kept], rows[mine]) and np.array_equal(one[1][kept], every[1][mine])
                assert np.array_equal(one[3][kept], every[3][mine]) and bool((one[4] <= every[4]).all())
        events = event.Events(*every[:4])
        assert int(np.diff(events.offsets).max()) > 1  # not vacuous: the next layer's rows have many events


def test_compiled_and_python_kernels_agree():
    from conftest import require_module

    require_module("numba", "fast")
    generator = torch.Generator().manual_seed(5)
    net = LIFNetwork([torch.randn(30, 16, generator=generator), torch.randn(16, 4, generator=generator)], beta=0.8)
    tables, plan, events = removal_events(net, (torch.rand(2, 12, 30, generator=generator) < 0.3).float())
    results = []
    table = tables[0]
    # The output buffers start at 1, 8 and more than enough events: the row loop stops at a row that does not
    # fit, the buffers grow, and it goes on from that row; the results do not depend on where it stopped.
    for compiled, capacity in ((True, 1), (True, 8), (True, 100_000), (False, 8)):
        propagate = event_kernels.kernels(compiled)["propagate_layer"]
        results.append(propagate(events.offsets, events.t, events.i, events.delta, plan.sample.numpy(),
                                 np.full(len(plan), -1), *table.kernel_args(), capacity, *table.tight_args()))
    for other in results[1:]:
        for fast, slow in zip(results[0], other, strict=True):
            assert fast.shape == slow.shape and (fast == slow).all()
    assert len(results[0][1]) > 8 * 4  # not vacuous: the small buffers grew more than once


def test_row_count_changes_the_matrix_products_rounding():
    # Why an ulp margin is no guarantee: the same rows multiplied in batches of different sizes round
    # differently (MKL / oneDNN pick kernels by shape), so the naive loop (one row) and a batched forward
    # can disagree near a threshold. The event engine's bound covers any summation order instead.
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(128, 10, generator=generator)
    rows = (torch.rand(4096, 128, generator=generator) < 0.2).float()
    together = rows @ weight
    one_by_one = torch.cat([rows[i:i + 1] @ weight for i in range(512)])
    assert not torch.equal(one_by_one, together[:512])
    exact = rows[:512].double() @ weight.double()
    unit = torch.finfo(torch.float32).eps / 2
    terms = (rows[:512] != 0).sum(dim=1, keepdim=True).double() + 1
    bound = event_tables.gamma(terms, unit) * (rows[:512].double() @ weight.double().abs())
    for computed in (one_by_one, together[:512]):
        assert bool(((computed.double() - exact).abs() <= bound).all())


def test_output_layer_and_hidden_silencing_and_rates():
    generator = torch.Generator().manual_seed(8)
    net = LIFNetwork([torch.randn(20, 12, generator=generator) * 1.2, torch.randn(12, 4, generator=generator)])
    spikes = (torch.rand(2, 15, 20, generator=generator) < 0.3).float()
    stack = compile_model(net)._replace(readout="rate")
    for layer in ("input", "0", "1"):
        plan = silence_each_neuron(layer, {"input": 20, "0": 12, "1": 4}[layer], 2, spikes.device)
        outputs, tie = event.run_events(stack, spikes, plan)
        rows, silence = materialise(spikes, plan)
        reference = stack_forward(stack, rows, silence=dict(silence) if silence else None)
        assert_equal_outside_ties(outputs, tie, reference, layer)


def test_unsupported_stacks_are_named():
    net = LIFNetwork([torch.randn(6, 3)])
    stack = compile_model(net)
    assert event.unsupported(stack) is None
    assert "membrane" in event.unsupported(stack._replace(readout="final_membrane"))
    for change, words in (({"graded": 2.0}, "graded"), ({"reset_delay": False}, "same step")):
        layer = stack.layers[0]._replace(params=stack.layers[0].params._replace(**change))
        assert words in event.unsupported(stack._replace(layers=(layer,)))
    with pytest.raises(ValueError, match="engine: 'event' cannot run this call"):
        from sc_neurocore.adapters import FunctionModel

        function = FunctionModel(lambda x: net.run(x), batched=True, n_inputs=6)
        spikes = torch.ones(1, 4, 6)
        execute(function, spikes, remove_each_spike(spikes), engine="event")
    with pytest.raises(ValueError, match="engine: expected one of"):
        execute(net, torch.ones(1, 4, 6), None, engine="fast")


def test_silencing_plans_with_per_sample_ranks():
    generator = torch.Generator().manual_seed(9)
    net = LIFNetwork([torch.randn(10, 8, generator=generator) * 1.3, torch.randn(8, 3, generator=generator)])
    spikes = (torch.rand(3, 12, 10, generator=generator) < 0.4).float()
    order = torch.stack([torch.randperm(8, generator=generator) for _ in range(3)])
    plan = silence_prefixes("0", order, 3)
    assert isinstance(plan, Silencing)
    outputs, tie = event.run_events(compile_model(net), spikes, plan, max_memory=20_000)
    assert_equal_outside_ties(outputs, tie, run_plan(net, spikes, plan), "prefixes")
