"""Current-based (snnTorch `Synaptic`) layers in the event engine equal the naive loop: the framework's own
forward on one perturbed copy at a time, bit for bit outside the reported tie mask (and every row, tie rows
included, equals the traced graph's own naive loop, whose ops the tight test and the replays follow).

Random stacks of Linear + Synaptic (with a Leaky layer mixed in), every reset mode, alpha and beta in
{0, 0.7, 1}, count and rate readouts, float32 through snnTorch; float64 on graphs built by hand (snnTorch's
own forward mixes dtypes in float64)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sc_neurocore.dynamics import SynapticParameters, synaptic_initial_state, synaptic_step
from sc_neurocore.engine import event, event_tables, execute
from sc_neurocore.engine.cuba_kernels import cuba_kernels
from sc_neurocore.engine.incremental import stack_forward
from sc_neurocore.engine.lower import to_compiled_stack
from sc_neurocore.engine.plans import remove_each_spike, silence_each_neuron
from sc_neurocore.graph import Dense, ModelGraph, NeuronNode, Segment

from event_networks import check_event_stack, gained_spikes, graph_plans, naive_rows

STACKS = settings(max_examples=30, deadline=None, derandomize=True, database=None)


@st.composite
def synaptic_stacks(draw):
    """A random snnTorch Linear + Synaptic stack (a Leaky layer sometimes mixed in), its readout and spikes."""
    import snntorch as snn

    torch.manual_seed(draw(st.integers(0, 2**16)))
    n_layers = draw(st.integers(1, 3))
    sizes = [draw(st.integers(6, 24)) for _ in range(n_layers)] + [draw(st.integers(2, 5))]
    readout = draw(st.sampled_from(["count", "rate", "final_membrane", "max_membrane"]))
    layers: list[torch.nn.Module] = []
    for index in range(n_layers):
        last = index == n_layers - 1
        layers.append(torch.nn.Linear(sizes[index], sizes[index + 1], bias=draw(st.booleans())))
        beta = draw(st.sampled_from([0.0, 0.7, 1.0]))
        reset = draw(st.sampled_from(["subtract", "zero", "none"]))
        threshold = draw(st.sampled_from([0.5, 1.0]))
        # A membrane readout's output layer is Synaptic (the one this module is about; a Leaky output layer's
        # replayed membrane is another matter, tests/engine/test_event_tight.py).
        if draw(st.integers(0, 3)) == 0 and not (last and readout in ("final_membrane", "max_membrane")):
            layers.append(snn.Leaky(beta=beta, threshold=threshold, reset_mechanism=reset, init_hidden=True,
                                    output=last))
        else:
            layers.append(snn.Synaptic(alpha=draw(st.sampled_from([0.0, 0.7, 1.0])), beta=beta, threshold=threshold,
                                       reset_mechanism=reset, init_hidden=True, output=last))
    spikes = gained_spikes(draw, layers, sizes[0], [2.0, 3.0, 4.5])
    return torch.nn.Sequential(*layers).eval(), readout, spikes


@pytest.mark.slow
@STACKS
@given(synaptic_stacks())
def test_synaptic_stacks_equal_the_naive_loop(problem):
    from conftest import require_module

    require_module("snntorch", "snntorch")
    from sc_neurocore.adapters import from_snntorch

    sequential, readout, spikes = problem
    check_event_stack(from_snntorch(sequential, readout=readout), spikes, tight=True)  # a membrane readout needs it


def hand_graph(dtype: torch.dtype, sizes: list[int], alpha: float, beta: float, reset: str, seed: int,
               readout: str = "count", threshold: float = 1.0) -> ModelGraph:
    """A Dense + synaptic graph built by hand (its own reference: `graph.run`)."""
    generator = torch.Generator().manual_seed(seed)
    segments = []
    for index, (a, b) in enumerate(itertools.pairwise(sizes)):
        weight = torch.randn(b, a, generator=generator, dtype=dtype) * (2.0 / a ** 0.5)
        params = SynapticParameters(torch.tensor(alpha, dtype=dtype), torch.tensor(beta, dtype=dtype),
                                    torch.tensor(threshold, dtype=dtype), reset)
        neuron = NeuronNode(str(index), "synaptic", (b,), synaptic_step, params, synaptic_initial_state)
        segments.append(Segment((Dense((a,), (b,), weight),), neuron))
    return ModelGraph((sizes[0],), segments, readout)


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("alpha,beta", [(0.0, 0.7), (0.7, 1.0), (1.0, 0.0), (0.7, 0.7), (1.0, 1.0)])
def test_float64_graphs_equal_their_naive_loop(reset, alpha, beta):
    graph = hand_graph(torch.float64, [20, 12, 4], alpha, beta, reset, seed=int(10 * alpha + beta))
    spikes = (torch.rand(2, 12, 20, generator=torch.Generator().manual_seed(5)) < 0.3).double()
    assert graph.run(spikes).sum() > 0  # not vacuous: the output fires
    for plan in graph_plans(spikes, graph):
        outputs, info = execute(graph, spikes, plan, engine="event", return_info=True)
        assert info.engine == "event"
        assert torch.equal(outputs, naive_rows(graph.run, spikes, plan))


def test_the_tight_test_replays_its_ties_and_the_loose_ties_are_recomputed():
    graph = hand_graph(torch.float32, [200, 64, 10], 0.8, 0.9, "subtract", seed=3)
    spikes = (torch.rand(1, 25, 200, generator=torch.Generator().manual_seed(4)) < 0.1).float()
    plan = remove_each_spike(spikes)
    outputs, info = execute(graph, spikes, plan, engine="event", return_info=True)
    assert info.engine == "event" and bool(info.tie_mask.any())  # not vacuous: some rows sit inside the bound
    assert not bool((info.recomputed & ~info.tie_mask).any())
    assert torch.equal(outputs, naive_rows(graph.run, spikes, plan))
    # Without the tight test every loose tie is recomputed by the stack's own forward (the tie mask is the same).
    stack = to_compiled_stack(graph)
    _, baseline = stack_forward(stack, spikes, record=True)
    loose, loose_tie = event.run_events(stack, spikes, plan, baseline=baseline)
    assert torch.equal(loose_tie, info.tie_mask) and torch.equal(loose[~loose_tie], outputs[~loose_tie])


def test_the_plain_python_kernels_give_the_compiled_ones_results():
    graph = hand_graph(torch.float32, [30, 16, 3], 0.7, 0.9, "zero", seed=1)
    spikes = (torch.rand(1, 10, 30, generator=torch.Generator().manual_seed(2)) < 0.3).float()
    stack = to_compiled_stack(graph)
    _, baseline = stack_forward(stack, spikes, record=True)
    tables = event_tables.layer_tables(stack, spikes, baseline, tight=True)
    events = event.plan_events(stack, spikes, baseline, remove_each_spike(spikes))
    sample = torch.zeros(len(events.offsets) - 1, dtype=torch.int64).numpy()
    args = (events.offsets, events.t, events.i, events.delta, sample, sample - 1, *tables[0].kernel_args(), 16,
            *tables[0].tight_args())
    fast, slow = cuba_kernels()["propagate_cuba"](*args), cuba_kernels(compiled=False)["propagate_cuba"](*args)
    assert all(bool((a == b).all()) for a, b in zip(fast, slow, strict=True)) and len(fast[1]) > 16
    # Buffers that start too small grow on the row that does not fit, and the rows go on from it.
    at = len(args) - len(tables[0].tight_args()) - 1  # the initial capacity, 16 above
    grown = cuba_kernels()["propagate_cuba"](*args[:at], 1, *args[at + 1:])
    assert all(a.shape == b.shape and bool((a == b).all()) for a, b in zip(fast, grown, strict=True))
    # A row that needs one neuron only (``only``) gets exactly that neuron's changes.
    rows = np.repeat(np.arange(len(sample)), np.diff(fast[0]))
    for j in range(stack.sizes[0]):
        one = cuba_kernels()["propagate_cuba"](*args[:5], np.full(len(sample), j), *args[6:])
        mine = fast[2] == j
        assert np.array_equal(np.repeat(np.arange(len(sample)), np.diff(one[0])), rows[mine])
        assert np.array_equal(one[1], fast[1][mine]) and np.array_equal(one[3], fast[3][mine])
        assert bool((one[4] <= fast[4]).all())


@pytest.mark.parametrize("change,why", [({"reset_delay": False}, "resets in the same step"),
                                        ({"graded": 2.0}, "graded spikes"),
                                        ({"recurrent": torch.nn.Identity()}, "recurrent"),
                                        ({"alpha": 1.5}, "alpha outside"),
                                        ({"beta": torch.full((2,), 0.5)}, "neither one value nor one per neuron")])
def test_what_the_kernel_does_not_model_is_refused(change, why):
    stack = to_compiled_stack(hand_graph(torch.float32, [6, 3], 0.5, 0.5, "subtract", seed=0))
    assert stack is not None and event.unsupported(stack) is None
    layer = stack.layers[0]
    changed = stack._replace(layers=(layer._replace(params=layer.params._replace(**change)),))
    assert why in str(event.unsupported(changed))


@pytest.mark.slow
def test_the_synaptic_workload_runs_on_the_event_engine_by_the_cost_model():
    from conftest import require_module

    require_module("snntorch", "snntorch")
    from sc_neurocore.bench.workloads import FRAMEWORK_WORKLOADS, framework_network, framework_spikes
    from sc_neurocore.adapters import from_snntorch

    workload = FRAMEWORK_WORKLOADS["Synaptic"]
    model = from_snntorch(framework_network(workload))
    spikes = framework_spikes(workload)
    graph = model.graph_for(spikes)
    plan = remove_each_spike(spikes)
    auto, info = execute(graph, spikes, plan, return_info=True)
    assert info.engine == "event", info.reason
    forced, forced_info = execute(graph, spikes, plan, engine="event", return_info=True)
    assert forced_info.engine == "event" and torch.equal(forced, auto)
    rows = torch.arange(0, len(plan), 7)  # a seventh of the rows through the framework's own forward, one at a time
    keep = ~info.tie_mask[rows]
    assert torch.equal(auto[rows][keep], naive_rows(model.run, spikes, event.select(plan, rows))[keep])


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_the_screen_and_the_early_stop_change_no_result(reset):
    """Every pair scanned to the end of the window (no screen, no early stop) gives the same changes and ties."""
    graph = hand_graph(torch.float32, [60, 24, 5], 0.8, 0.9, reset, seed=7, threshold=0.5)
    spikes = (torch.rand(2, 16, 60, generator=torch.Generator().manual_seed(8)) < 0.2).float()
    stack = to_compiled_stack(graph)
    _, baseline = stack_forward(stack, spikes, record=True)
    tables = event_tables.layer_tables(stack, spikes, baseline, tight=True)
    plan = silence_each_neuron("input", 60, 2, spikes.device)
    events = event.plan_events(stack, spikes, baseline, plan)
    kernel = cuba_kernels()["propagate_cuba"]
    for table in tables:
        never = np.full_like(table.inverse_up, np.inf), np.full_like(table.inverse_up, np.inf)
        unreached = np.full_like(table.up_by_neuron, -np.inf), np.full_like(table.up_by_neuron, -np.inf)
        every = np.full(len(plan), -1)
        head = (events.offsets, events.t, events.i, events.delta, plan.sample.numpy(), every)
        screened = kernel(*head, *table.kernel_args(), 16, *table.tight_args())
        scanned = kernel(*head, *table._replace(inverse_up=never[0], inverse_down=never[1], up_by_neuron=unreached[0],
                                                down_by_neuron=unreached[1]).kernel_args(), 16, *table.tight_args())
        assert all(np.array_equal(a, b) for a, b in zip(screened, scanned, strict=True))
        skipped = int((np.diff(screened[0]) == 0).sum())
        assert len(screened[1]) > 0 and skipped < len(plan)  # not vacuous: spikes change
        events = event.Events(*screened[:4])


def test_a_row_adding_many_spikes_a_step_gets_wider_tables_not_a_tie():
    """Removing one inhibitory spike makes 20 hidden neurons fire in the same step: more than the tables'
    default slack (8 added spikes a step), so the output layer's tables are rebuilt for 20 and the row is
    decided, not tied."""
    n_hidden = 20
    first = torch.zeros(n_hidden, 2)
    first[:, 0], first[:, 1] = -1.0, 1.25  # input 1 alone lifts every hidden neuron past threshold 1
    second = torch.full((2, n_hidden), 0.3) * torch.tensor([[1.0], [-1.0]])
    segments = []
    for index, weight in enumerate((first, second)):
        params = SynapticParameters(torch.tensor(0.0), torch.tensor(0.0), torch.tensor(1.0), "subtract")
        neuron = NeuronNode(str(index), "synaptic", (weight.shape[0],), synaptic_step, params, synaptic_initial_state)
        segments.append(Segment((Dense((weight.shape[1],), (weight.shape[0],), weight),), neuron))
    graph = ModelGraph((2,), segments, "count")
    spikes = torch.zeros(1, 6, 2)
    spikes[0, 3] = 1.0  # both inputs at t = 3: the hidden layer stays silent
    assert graph.run(spikes).sum() == 0
    plan = remove_each_spike(spikes)
    outputs, info = execute(graph, spikes, plan, engine="event", return_info=True)
    assert torch.equal(outputs, naive_rows(graph.run, spikes, plan))
    removed_inhibition = int(torch.nonzero(plan.neuron == 0)[0, 0])
    assert outputs[removed_inhibition].tolist() == [1.0, 0.0] and not bool(info.tie_mask[removed_inhibition])
