"""Suffix replay (`sc_neurocore.engine.suffix`) equals the naive loop bit for bit: the framework's own
forward, and the traced graph's, on one perturbed copy at a time; on random conv / pool / linear graphs,
several samples, small chunks, membrane readouts, and the snnTorch tutorial-7 CSNN of the benchmark."""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from engine.test_graph_properties import graphs, naive

from sc_neurocore.dynamics import LIFParameters, lif_initial_state, lif_step
from sc_neurocore.engine import BudgetWarning, execute
from sc_neurocore.engine.plans import remove_each_spike, silence_each_neuron
from sc_neurocore.engine.suffix import SUFFIX_NOTE, StateLayoutError, run_suffix, suffix_reason
from sc_neurocore.graph import Dense, ModelGraph, NeuronNode, Segment


def traced(sequential, spikes):
    from conftest import require_module

    require_module("snntorch", "snntorch")
    from sc_neurocore.adapters import from_snntorch

    model = from_snntorch(sequential, input_shape=(1, 8, 8))
    graph = model.graph_for(spikes)
    assert graph is not None, model.graph_reason
    return model, graph


@pytest.mark.slow
@settings(max_examples=20, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(graphs())
def test_suffix_replay_equals_the_naive_loop_on_random_graphs(chunks_of_any_size, problem):
    """Down to one-row chunks (the fixture lifts the workable minimum; it holds for every example)."""
    sequential, spikes = problem
    generator = torch.Generator().manual_seed(spikes.shape[1])
    spikes = torch.cat([spikes, (torch.rand(spikes.shape, generator=generator) < 0.3).float()])  # two samples
    model, graph = traced(sequential, spikes)
    plan = remove_each_spike(spikes)
    framework = naive(model.run, spikes, plan)
    assert torch.equal(naive(graph.run, spikes, plan), framework)
    assert torch.equal(run_suffix(graph, spikes, plan), framework)
    with pytest.warns(BudgetWarning, match="suffix replay"):  # raised to one row per chunk
        assert torch.equal(run_suffix(graph, spikes, plan, max_memory=1), framework)
    outputs, info = execute(graph, spikes, plan, return_info=True)
    if info.engine == "batched":
        assert SUFFIX_NOTE in info.reason
    keep = torch.ones(len(plan), dtype=torch.bool) if info.tie_mask is None else ~info.tie_mask
    assert torch.equal(outputs[keep], framework[keep])


@pytest.mark.parametrize("whole", [False, True])
@pytest.mark.parametrize("readout", ["count", "rate", "final_membrane", "max_membrane"])
def test_every_readout_equals_the_graphs_own_forward_per_copy(readout, whole):
    torch.manual_seed(3)
    hidden = NeuronNode("h", "leaky", (6,), lif_step, LIFParameters(0.8, 1.0), lif_initial_state)
    out = NeuronNode("o", "leaky", (3,), lif_step, LIFParameters(0.9, 1.0), lif_initial_state)
    graph = ModelGraph((5,), [Segment((Dense((5,), (6,), 1.5 * torch.randn(6, 5)),), hidden, (whole,)),
                              Segment((Dense((6,), (3,), 1.5 * torch.randn(3, 6)),), out, (whole,))], readout)
    spikes = (torch.rand(3, 12, 5) < 0.4).float()
    plan = remove_each_spike(spikes)
    assert torch.equal(run_suffix(graph, spikes, plan), naive(graph.run, spikes, plan))
    # The rows come back in plan order, whatever order their groups ran in.
    reversed_plan = type(plan)(*(field.flip(0) for field in plan))
    assert torch.equal(run_suffix(graph, spikes, reversed_plan), naive(graph.run, spikes, reversed_plan))


def test_a_tiny_budget_is_raised_to_the_workable_minimum_not_one_row_per_chunk(monkeypatch):
    import sc_neurocore.engine.suffix as suffix
    from sc_neurocore.engine.batched import minimum_rows

    torch.manual_seed(5)
    node = NeuronNode("h", "leaky", (200,), lif_step, LIFParameters(0.8, 1.0), lif_initial_state)
    graph = ModelGraph((50,), [Segment((Dense((50,), (200,), 0.3 * torch.randn(200, 50)),), node)])
    spikes = (torch.rand(2, 10, 50) < 0.3).float()  # rows enough for several workable chunks
    plan = remove_each_spike(spikes)
    floor = minimum_rows(graph, spikes, len(plan))
    replay, rows = suffix._replay, []

    def counted(graph, removals, *args):
        rows.append(len(removals))
        return replay(graph, removals, *args)

    monkeypatch.setattr(suffix, "_replay", counted)
    with pytest.warns(BudgetWarning, match="suffix replay"):
        assert torch.equal(run_suffix(graph, spikes, plan, max_memory=1), naive(graph.run, spikes, plan))
    # Chunks of the workable minimum (the last one the rest), never one row per chunk.
    assert 1 < floor < len(plan) and rows == [floor] * (len(plan) // floor) + [len(plan) % floor] * (len(plan) % floor > 0)


def test_it_refuses_what_it_cannot_replay_by_name():
    spikes = torch.ones(1, 4, 5)
    node = NeuronNode("h", "leaky", (2,), lif_step, LIFParameters(0.9, 1.0), lif_initial_state)
    graph = ModelGraph((5,), [Segment((Dense((5,), (2,), torch.ones(2, 5)),), node)])
    assert suffix_reason(graph, remove_each_spike(spikes)) is None
    silencing = silence_each_neuron("input", 5, 1, spikes.device)
    assert "silenced" in str(suffix_reason(graph, silencing))
    assert "not a traced model graph" in str(suffix_reason(object(), remove_each_spike(spikes)))
    with pytest.raises(ValueError, match="model: suffix replay cannot run"):
        run_suffix(graph, spikes, silencing)  # type: ignore[arg-type]
    # Forced batched stays the model's full forward: the reference the other executors are checked against.
    _, info = execute(graph, spikes, remove_each_spike(spikes), engine="batched", return_info=True)
    assert SUFFIX_NOTE not in info.reason


@pytest.mark.slow
def test_the_benchmarks_csnn_equals_the_snntorch_loop():
    from conftest import require_module

    require_module("snntorch", "snntorch")
    from sc_neurocore import TemporalSaliency
    from sc_neurocore.bench.suite import framework_case
    from sc_neurocore.bench.workloads import FRAMEWORK_WORKLOADS, framework_spikes

    workload = FRAMEWORK_WORKLOADS["CSNN-7"].scaled(0.5)  # 5 steps: the same layers, half the loop
    case = framework_case(workload)
    assert case is not None
    spikes = framework_spikes(workload)
    plan = remove_each_spike(spikes)
    framework = naive(case.run, spikes, plan)
    graph = case.model.graph_for(spikes)
    outputs, info = execute(graph, spikes, plan, return_info=True)
    assert info.engine == "batched" and SUFFIX_NOTE in info.reason
    assert torch.equal(outputs, framework)
    target = int(case.run(spikes)[0].argmax())
    saliency = TemporalSaliency(case.model).explain(spikes[0], output_neuron=target)
    expected = torch.zeros(spikes.shape[1:])
    expected[plan.timestep, plan.neuron] = case.run(spikes)[0, target] - framework[:, target]
    assert torch.equal(torch.as_tensor(saliency.saliency_map()).reshape(expected.shape), expected)


class _Delayed(NamedTuple):
    membrane: torch.Tensor
    line: torch.Tensor  # the last `depth` currents, rows second (as a NIR delay keeps them) or folded in


def _delayed_neuron(fold: bool) -> NeuronNode:
    """A LIF layer driven by its input current two steps late; ``fold`` keeps the line as ``(2 * B, n)``."""
    def initial(current):
        line = torch.zeros(2, *current.shape, dtype=current.dtype)
        return _Delayed(torch.zeros_like(current), line.reshape(-1, *current.shape[1:]) if fold else line)

    def step(current, state, params):
        line = state.line.reshape(2, *current.shape) if fold else state.line
        membrane = params.beta * state.membrane + line[0]
        spikes = (membrane > params.threshold).to(current.dtype)
        line = torch.stack([line[1], current])
        return spikes, _Delayed(membrane - spikes * params.threshold,
                                line.reshape(-1, *current.shape[1:]) if fold else line)

    return NeuronNode("d", "delayed", (4,), step, LIFParameters(0.9, 1.0), initial)


@pytest.mark.parametrize("fold", [False, True])
def test_a_state_holding_its_rows_second_or_folded(fold, monkeypatch):
    import sc_neurocore.engine as engine

    monkeypatch.setattr(engine, "compiled_stack", lambda model: None)  # the generic path (no compiled stack)
    torch.manual_seed(5)
    graph = ModelGraph((6,), [Segment((Dense((6,), (4,), 1.2 * torch.randn(4, 6)),), _delayed_neuron(fold))])
    spikes = (torch.rand(2, 9, 6) < 0.4).float()
    plan = remove_each_spike(spikes)
    outputs, info = execute(graph, spikes, plan, return_info=True)
    assert torch.equal(outputs, naive(graph.run, spikes, plan))
    if fold:  # no single rows' dim: the model's full forward ran instead
        assert SUFFIX_NOTE not in info.reason
        with pytest.raises(StateLayoutError, match="no single batch dimension"):
            run_suffix(graph, spikes, plan)
    else:
        assert SUFFIX_NOTE in info.reason and torch.equal(run_suffix(graph, spikes, plan), outputs)


@pytest.mark.slow
@pytest.mark.parametrize("step_mode", ["s", "m"])
def test_a_spikingjelly_csnn_equals_its_own_loop_in_either_step_mode(step_mode):
    from conftest import require_module

    require_module("spikingjelly", "spikingjelly")
    from spikingjelly.activation_based import functional, layer
    from spikingjelly.activation_based import neuron as sj_neuron

    from sc_neurocore.adapters import from_spikingjelly

    torch.manual_seed(4)
    net = torch.nn.Sequential(layer.Conv2d(1, 4, 3), layer.MaxPool2d(2), sj_neuron.LIFNode(),
                              layer.Flatten(), layer.Linear(36, 5), sj_neuron.LIFNode())
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[4].weight.mul_(3.0)
    functional.set_step_mode(net, step_mode)
    model = from_spikingjelly(net, input_shape=(1, 8, 8))
    spikes = (torch.rand(2, 6, 64) < 0.3).float()
    graph = model.graph_for(spikes)
    assert graph is not None, model.graph_reason
    assert any(any(segment.whole_sequence) for segment in graph.segments) == (step_mode == "m")
    plan = remove_each_spike(spikes)
    framework = naive(model.run, spikes, plan)
    assert model.run(spikes).sum() > 0  # the output fires
    outputs, info = execute(graph, spikes, plan, return_info=True)
    assert SUFFIX_NOTE in info.reason
    assert torch.equal(outputs, framework)
