"""A replayed layer computes each distinct changed row's product once (`sc_neurocore.engine.replay.distinct_rows`):
the grouping is exact, and a membrane readout replayed that way still gives the one-copy loop's bits."""

from __future__ import annotations

import torch
from conftest import require_module
from event_networks import naive_rows

from sc_neurocore.engine import execute, replay
from sc_neurocore.engine.plans import remove_each_spike
from sc_neurocore.engine.replay import distinct_rows


def test_rows_are_grouped_exactly_whatever_the_hash():
    generator = torch.Generator().manual_seed(0)
    rows = torch.randint(0, 3, (400, 6), generator=generator)
    rows[::7] = rows[3]  # plenty of repeats
    for hashes in (None, torch.zeros(400, dtype=torch.float64), torch.arange(400, dtype=torch.float64) % 5):
        first, inverse = distinct_rows(rows, hashes)
        assert torch.equal(rows[first][inverse], rows)
        assert len(first) == len(torch.unique(rows, dim=0))  # each distinct row once, a collision or not
        assert bool((first[inverse] <= torch.arange(400)).all())  # the first of its group
    zero, negative = torch.tensor([[0.0]]), torch.tensor([[-0.0]])
    bits = torch.cat([zero, negative]).view(torch.int32)
    assert len(distinct_rows(bits)[0]) == 2  # signed zeros are different bits


def test_a_membrane_readout_replays_each_distinct_row_once_and_exactly(monkeypatch):
    require_module("norse", "norse")
    import norse.torch as norse
    from torch import nn

    from sc_neurocore.adapters import from_norse

    torch.manual_seed(2)
    first, second = nn.Linear(60, 40, bias=False), nn.Linear(40, 5, bias=False)
    with torch.no_grad():
        first.weight.mul_(25.0)
        second.weight.mul_(10.0)
    model = from_norse(norse.SequentialState(first, norse.LIFCell(), second, norse.LICell()))
    spikes = (torch.rand(1, 20, 60, generator=torch.Generator().manual_seed(3)) < 0.15).float()
    grouped = []
    original = replay.distinct_rows

    def spy(rows, hashes=None):
        found = original(rows, hashes)
        grouped.append((rows.shape[0], len(found[0])))
        return found

    monkeypatch.setattr(replay, "distinct_rows", spy)
    graph = model.graph_for(spikes)
    plan = remove_each_spike(spikes)
    outputs, info = execute(graph, spikes, plan, return_info=True)
    assert info.engine == "event", info.reason
    assert any(distinct < changed for changed, distinct in grouped), grouped  # not vacuous: rows repeated
    assert torch.equal(outputs, naive_rows(model.run, spikes, plan))
