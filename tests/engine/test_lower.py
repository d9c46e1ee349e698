"""Traced graphs lower to compiled stacks that the event and incremental executors run exactly: Linear and
convolution segments; a max pool, a pooling chain or a recurrent layer keeps the graph on the batched path."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import require_module
from sc_neurocore.engine import execute, run_plan
from sc_neurocore.engine.lower import to_compiled_stack
from sc_neurocore.engine.plans import remove_each_spike, silence_each_neuron


def graph_of(model, spikes, **kwargs):
    from sc_neurocore.adapters import from_snntorch

    adapter = from_snntorch(model, **kwargs)
    graph = adapter.graph_for(spikes)
    assert graph is not None, getattr(adapter, "graph_reason", "")
    return adapter, graph


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_lowered_graphs_run_exactly_on_the_compiled_executors(kind):
    snn = require_module("snntorch", "snntorch")
    torch.manual_seed(0)
    if kind == "linear":
        model = nn.Sequential(nn.Linear(40, 16), snn.Leaky(beta=0.8, init_hidden=True),
                              nn.Linear(16, 4), snn.Leaky(beta=0.8, init_hidden=True, output=True))
        spikes = (torch.rand(2, 15, 40) < 0.3).float()
        adapter, graph = graph_of(model, spikes)
    else:
        model = nn.Sequential(nn.Conv2d(1, 4, 3), snn.Leaky(beta=0.9, init_hidden=True), nn.Flatten(),
                              nn.Linear(4 * 6 * 6, 5), snn.Leaky(beta=0.9, init_hidden=True, output=True))
        spikes = (torch.rand(2, 10, 64) < 0.3).float()
        adapter, graph = graph_of(model, spikes, input_shape=(1, 8, 8))
    stack = to_compiled_stack(graph)
    assert stack is not None and stack.names == tuple(graph.neuron_layers)
    first = next(iter(graph.neuron_layers))
    for plan in (remove_each_spike(spikes), silence_each_neuron("input", graph.n_inputs, 2, spikes.device),
                 silence_each_neuron(first, graph.neuron_layers[first], 2, spikes.device)):
        reference = run_plan(adapter, spikes, plan)
        for engine in ("event", "incremental"):
            outputs, info = execute(graph, spikes, plan, engine=engine, return_info=True)
            assert info.engine == engine and torch.equal(outputs, reference), (kind, engine)


def test_selections_and_recurrence_do_not_lower():
    snn = require_module("snntorch", "snntorch")
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.MaxPool2d(2), snn.Leaky(beta=0.9, init_hidden=True), nn.Flatten(),
                          nn.Linear(4 * 3 * 3, 5), snn.Leaky(beta=0.9, init_hidden=True, output=True))
    spikes = (torch.rand(1, 8, 64) < 0.3).float()
    adapter, graph = graph_of(model, spikes, input_shape=(1, 8, 8))
    assert to_compiled_stack(graph) is None
    outputs, info = execute(graph, spikes, remove_each_spike(spikes), return_info=True)
    assert info.engine == "batched" and torch.equal(outputs, run_plan(adapter, spikes, remove_each_spike(spikes)))
    assert to_compiled_stack(object()) is None


def test_a_graph_is_lowered_once_and_again_after_its_weights_change():
    snn = require_module("snntorch", "snntorch")
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(12, 6), snn.Leaky(beta=0.8, init_hidden=True),
                          nn.Linear(6, 3), snn.Leaky(beta=0.8, init_hidden=True, output=True))
    spikes = (torch.rand(1, 8, 12) < 0.4).float()
    _, graph = graph_of(model, spikes)
    stack = to_compiled_stack(graph)
    assert to_compiled_stack(graph) is stack  # the lowering is kept per graph
    dense = graph.segments[0].maps[0]
    weight = next(value for value in vars(dense).values() if isinstance(value, torch.Tensor) and value.ndim == 2)
    before = stack.layers[0].weight.clone()
    with torch.no_grad():
        weight.mul_(2.0)  # an in-place change: a new version, so a new lowering with the new weights
    changed = to_compiled_stack(graph)
    assert changed is not stack and torch.equal(changed.layers[0].weight, 2.0 * before)


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_a_replayed_rows_current_is_the_layers_own_call_on_that_row(kind):
    from sc_neurocore.engine.replay import _per_step, _row_current

    snn = require_module("snntorch", "snntorch")
    torch.manual_seed(3)
    if kind == "linear":
        model = nn.Sequential(nn.Linear(30, 12), snn.Leaky(beta=0.8, init_hidden=True),
                              nn.Linear(12, 4), snn.Leaky(beta=0.8, init_hidden=True, output=True))
        spikes, kwargs = (torch.rand(1, 6, 30) < 0.4).float(), {}
    else:
        model = nn.Sequential(nn.Conv2d(1, 3, 3), snn.Leaky(beta=0.9, init_hidden=True), nn.Flatten(),
                              nn.Linear(3 * 4 * 4, 5), snn.Leaky(beta=0.9, init_hidden=True, output=True))
        spikes, kwargs = (torch.rand(1, 6, 36) < 0.4).float(), {"input_shape": (1, 6, 6)}
    _, graph = graph_of(model, spikes, **kwargs)
    stack = to_compiled_stack(graph)
    for layer in stack.layers:  # the first segment reads the input in place, the later ones a fresh copy
        assert _per_step(layer)
        rows = (torch.rand(5, layer.weight.shape[0]) < 0.5).float()
        one_row = _row_current(layer)
        for t, row in enumerate(rows):  # as step t of one copy's (1, T, n_in) input that holds the row there
            copy = torch.zeros(1, len(rows), len(row))
            copy[0, t] = row
            assert torch.equal(one_row(row, t), layer.current(copy)[0, t])


def test_a_replayed_first_layer_row_is_read_where_the_naive_loop_reads_it():
    # 13 inputs: a row's place in memory changes how a short matrix product rounds. A one-layer stack with a
    # membrane readout replays every changed row; each must equal the model's forward on its own copy.
    from sc_neurocore.adapters import from_snntorch
    from sc_neurocore.engine.batched import materialise

    snn = require_module("snntorch", "snntorch")
    for seed in range(12):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(13, 2, bias=False),
                              snn.Leaky(beta=0.7, threshold=0.5, init_hidden=True, output=True)).eval()
        with torch.no_grad():
            model[0].weight.mul_(3.0)
        spikes = (torch.rand(1, 4 + seed % 8, 13) < 0.3).float()
        adapter = from_snntorch(model, readout="final_membrane")
        graph = adapter.graph_for(spikes)
        plan = remove_each_spike(spikes)
        outputs, info = execute(graph, spikes, plan, engine="event", return_info=True)
        rows, _ = materialise(spikes, plan)
        naive = torch.cat([adapter.run(rows[p:p + 1].clone()) for p in range(len(plan))])
        assert torch.equal(outputs[~info.tie_mask], naive[~info.tie_mask]), seed
