"""`execute(..., columns=)`: a caller that reads one output column per row (a target class) gets exactly that
column, NaN elsewhere, from every executor; the event engine then scans only that output neuron."""

from __future__ import annotations

import pytest
import torch
from event_networks import EXAMPLES, float32_workload, naive_loop, networks, plans_of
from hypothesis import given

from sc_neurocore.engine import event, event_tables, execute
from sc_neurocore.engine.plans import remove_each_spike
from sc_neurocore.engine.recorded import forget
from sc_neurocore.models import LIFNetwork


def picked(outputs: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    return outputs[torch.arange(len(columns)), columns]


@EXAMPLES
@given(networks())
def test_the_picked_column_is_the_naive_loops_and_the_rest_is_nan(problem):
    net, spikes = problem
    forget()
    generator = torch.Generator().manual_seed(len(spikes.flatten()))
    for plan in plans_of(net, spikes):
        if len(plan) == 0:
            continue
        columns = torch.randint(0, net.n_outputs, (len(plan),), generator=generator)
        naive = naive_loop(net, spikes, plan)
        for engine in ("event", "incremental", "batched"):
            outputs, info = execute(net, spikes, plan, engine=engine, return_info=True, columns=columns)
            assert torch.equal(picked(outputs, columns), picked(naive, columns)), (engine, type(plan).__name__)
            others = torch.ones_like(outputs, dtype=torch.bool)
            others[torch.arange(len(plan)), columns] = False
            assert bool(outputs[others].isnan().all()), engine


def test_one_column_narrows_the_tie_mask_to_what_it_depends_on():
    net, spikes = float32_workload()
    plan = remove_each_spike(spikes)
    forget()
    _, every = execute(net, spikes, plan, engine="event", return_info=True)
    columns = torch.zeros(len(plan), dtype=torch.long)
    outputs, one = execute(net, spikes, plan, engine="event", return_info=True, columns=columns)
    assert torch.equal(picked(outputs, columns), picked(naive_loop(net, spikes, plan), columns))
    # The output layer's other neurons are never scanned, so their near-ties are not reported.
    assert not bool((one.tie_mask & ~every.tie_mask).any()) and int(one.tie_mask.sum()) < int(every.tie_mask.sum())


def test_a_hidden_layer_tie_replays_that_layer_alone_and_goes_on_as_events(monkeypatch):
    net, spikes = float32_workload()
    plan = remove_each_spike(spikes)
    layers, suffixes = [], []
    replay_layer, replay_rows = event.replay_layer, event.replay_rows
    monkeypatch.setattr(event, "replay_layer", lambda *args: layers.append(args[3]) or replay_layer(*args))
    monkeypatch.setattr(event, "replay_rows", lambda *args: suffixes.append(args[3]) or replay_rows(*args))
    forget()
    outputs, info = execute(net, spikes, plan, engine="event", return_info=True)
    assert torch.equal(outputs, naive_loop(net, spikes, plan))
    last = len(net.neuron_layers) - 1
    assert any(index < last for index in layers)  # not vacuous: a hidden layer held a tie row
    assert all(start == last for start in suffixes)  # only the output layer is replayed to its readout
    assert bool(info.recomputed.any())


def test_bad_columns_are_refused_by_name():
    net = LIFNetwork([torch.randn(6, 4), torch.randn(4, 3)])
    spikes = (torch.rand(1, 5, 6) < 0.5).float()
    plan = remove_each_spike(spikes)
    n = len(plan)
    with pytest.raises(TypeError, match="columns"):
        execute(net, spikes, plan, columns=torch.zeros(n))
    with pytest.raises(TypeError, match="columns"):
        execute(net, spikes, plan, columns=[0] * n)
    with pytest.raises(ValueError, match="columns.*shape"):
        execute(net, spikes, plan, columns=torch.zeros(n + 1, dtype=torch.long))
    with pytest.raises(ValueError, match="columns.*>= 0"):
        execute(net, spikes, plan, columns=torch.full((n,), -1))
    for engine in ("event", "batched"):
        with pytest.raises(ValueError, match="columns.*below"):
            execute(net, spikes, plan, engine=engine, columns=torch.full((n,), 3))
    with pytest.raises(ValueError, match="columns"):
        execute(net, spikes, None, columns=torch.zeros(1, dtype=torch.long))


def test_a_copy_adding_many_spikes_at_once_is_decided_not_tied(monkeypatch):
    # Input 0 inhibits 16 hidden neurons that the other inputs drive over threshold at every step: removing its
    # one spike adds 16 spikes at once to the output layer's input, more than the default slack of the tables.
    hidden = 24
    w1 = torch.zeros(5, hidden)
    w1[1:, :] = 0.6
    w1[0, :16] = -4.0
    w2 = torch.linspace(-0.3, 0.5, hidden * 3).reshape(hidden, 3)
    net = LIFNetwork([w1, w2], beta=0.5)
    spikes = torch.zeros(1, 12, 5)
    spikes[0, :, 1:] = 1.0
    spikes[0, 6, 0] = 1.0
    plan = remove_each_spike(spikes)
    slacks = []
    layer_table = event_tables.layer_table
    monkeypatch.setattr(event_tables, "layer_table", lambda *args: slacks.append(args[6] if len(args) > 6 else None)
                        or layer_table(*args))
    forget()
    outputs, info = execute(net, spikes, plan, engine="event", return_info=True)
    assert torch.equal(outputs, naive_loop(net, spikes, plan))
    row = int(((plan.timestep == 6) & (plan.neuron == 0)).nonzero()[0, 0])
    rebuilt = [slack for slack in slacks if slack is not None]
    assert rebuilt and max(rebuilt) >= 16 > event_tables.ADDED_SPIKES  # the output layer's tables were rebuilt for it
    assert not bool(info.tie_mask[row])
