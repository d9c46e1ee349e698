"""The suffix replay skips work, and exactly the work it may: a segment's maps run on the `(row, step)`s
whose input differs from the baseline's, and a neuron layer steps a row from the first step its input
differs on. Counted on the map and neuron calls' rows (not timed), against the same counts taken by brute
force from each perturbed copy's own recorded forward; the outputs equal the naive loop bit for bit."""

from __future__ import annotations

import collections

import pytest
import torch
from engine.test_graph_properties import naive

import sc_neurocore.engine.suffix as suffix
from sc_neurocore.dynamics import LIFParameters, lif_initial_state, lif_step
from sc_neurocore.engine.batched import materialise
from sc_neurocore.engine.plans import remove_each_spike
from sc_neurocore.engine.suffix import run_suffix
from sc_neurocore.graph import ModelGraph, NeuronNode, Segment
from sc_neurocore.graph.maps import Conv, Dense, MaxPool, Reshape


class _Counts:
    """Rows each map and each neuron layer got, while `_replay` runs (the baseline's forward not counted)."""

    def __init__(self) -> None:
        self.replaying = False
        self.maps: collections.Counter[str] = collections.Counter()
        self.steps: collections.Counter[str] = collections.Counter()


def _counted_graph(counts: _Counts, reset: str) -> ModelGraph:
    torch.manual_seed(11)

    def counted_map(map_type, name):
        class Counted(map_type):  # type: ignore[misc, valid-type]
            def forward(self, x):
                if counts.replaying:
                    counts.maps[name] += x.shape[0]
                return super().forward(x)
        return Counted

    def neuron(name, shape, beta):
        def step(current, state, params):
            if counts.replaying:
                counts.steps[name] += current.shape[0]
            return lif_step(current, state, params)
        return NeuronNode(name, "leaky", shape, step, LIFParameters(beta, 1.0, reset), lif_initial_state)

    conv = counted_map(Conv, "conv")((1, 8, 8), (3, 6, 6), weight=1.2 * torch.randn(3, 1, 3, 3), bias=None)
    pool = counted_map(MaxPool, "pool")((3, 6, 6), (3, 3, 3), kernel=(2, 2), stride=(2, 2), padding=(0, 0),
                                        dilation=(1, 1))
    flat = Reshape((3, 3, 3), (27,))
    dense = counted_map(Dense, "dense")((27,), (4,), weight=1.5 * torch.randn(4, 27))
    return ModelGraph((1, 8, 8), [Segment((conv, pool), neuron("hidden", (3, 3, 3), 0.7)),
                                  Segment((flat, dense), neuron("out", (4,), 0.9))])


def _first_difference(changed: torch.Tensor) -> torch.Tensor:
    """Per row of ``changed`` ``(P, T)``, its first True step (``T`` when none)."""
    steps = changed.shape[1]
    index = torch.where(changed, torch.arange(steps), torch.full_like(changed, steps, dtype=torch.long))
    return index.min(dim=1).values


@pytest.mark.parametrize("piece_bytes", [None, 1000])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_maps_and_neurons_run_only_on_the_rows_that_differ(reset, piece_bytes, monkeypatch):
    """Also with the maps called on pieces of a few rows (the dense map's pieces then start off a 64-byte
    boundary and are copied)."""
    if piece_bytes is not None:
        monkeypatch.setattr(suffix, "PIECE_BYTES", piece_bytes)
    counts = _Counts()
    graph = _counted_graph(counts, reset)
    spikes = (torch.rand(2, 7, 64, generator=torch.Generator().manual_seed(3)) < 0.3).float()
    plan = remove_each_spike(spikes)
    replay = suffix._replay

    def replaying(*args):
        counts.replaying = True
        try:
            return replay(*args)
        finally:
            counts.replaying = False

    monkeypatch.setattr(suffix, "_replay", replaying)
    assert torch.equal(run_suffix(graph, spikes, plan), naive(graph.run, spikes, plan))

    # By brute force: each perturbed copy's hidden spikes against its sample's.
    rows, _ = materialise(spikes, plan)
    hidden = graph.record(rows).layers[0].spikes  # (P, T, n)
    baseline = graph.record(spikes).layers[0].spikes[plan.sample]
    steps = spikes.shape[1]
    into_hidden = (rows != spikes[plan.sample]).any(2)  # (P, T): the first segment's input differs
    into_out = (hidden != baseline).any(2)
    assert counts.maps["conv"] == counts.maps["pool"] == int(into_hidden.sum()) == len(plan)  # once per row
    assert counts.maps["dense"] == int(into_out.sum())
    assert counts.steps["hidden"] == int((steps - _first_difference(into_hidden)).sum())
    assert counts.steps["out"] == int((steps - _first_difference(into_out)).sum())
    # Less than a replay of every row from its removal's step through every layer.
    suffixes = int((steps - plan.timestep).sum())
    assert counts.maps["dense"] < suffixes and counts.steps["out"] < suffixes
    assert into_out.any()  # the removals do reach the output layer


def test_a_max_pool_on_a_channels_last_copy_selects_the_same_bits():
    """Signed zeros, NaNs and infinities included: both layouts keep each window's first maximum."""
    values = torch.tensor([0.0, -0.0, 1.0, -1.0, float("nan"), float("inf"), -float("inf"), 2.0])
    x = values[torch.randint(0, len(values), (20, 5, 9, 9), generator=torch.Generator().manual_seed(1))]
    for kernel, stride, padding, dilation in [(2, 2, 0, 1), (3, 1, 1, 1), (3, 2, 1, 2)]:
        pool = MaxPool((5, 9, 9), (5, 0, 0), kernel=(kernel,) * 2, stride=(stride,) * 2, padding=(padding,) * 2,
                       dilation=(dilation,) * 2)
        fast = suffix._forward(pool, x)
        assert fast.is_contiguous()
        assert torch.equal(fast.view(torch.int32), pool.forward(x).view(torch.int32))


@pytest.mark.parametrize("whole", [False, True])
@pytest.mark.parametrize("readout", ["count", "final_membrane", "max_membrane"])
def test_rows_the_removal_reaches_late_or_never(readout, whole, chunks_of_any_size):
    """Three layers, one row per chunk: a chunk's output layer may stay the baseline's for steps after the
    removal (or for good), and its membranes and spikes are still written at the right steps."""
    from sc_neurocore.engine import BudgetWarning

    torch.manual_seed(0)

    def node(name, size):
        return NeuronNode(name, "leaky", (size,), lif_step, LIFParameters(0.9, 1.0), lif_initial_state)

    graph = ModelGraph((8,), [Segment((Dense((8,), (6,), 0.6 * torch.randn(6, 8)),), node("a", 6), (whole,)),
                              Segment((Dense((6,), (5,), 0.8 * torch.randn(5, 6)),), node("b", 5), (whole,)),
                              Segment((Dense((5,), (3,), 1.0 * torch.randn(3, 5)),), node("c", 3), (whole,))],
                       readout)
    spikes = (torch.rand(2, 12, 8) < 0.4).float()
    plan = remove_each_spike(spikes)
    expected = naive(graph.run, spikes, plan)
    assert torch.equal(run_suffix(graph, spikes, plan), expected)
    with pytest.warns(BudgetWarning, match="suffix replay"):
        assert torch.equal(run_suffix(graph, spikes, plan, max_memory=1), expected)
    assert not torch.equal(expected, graph.run(spikes)[plan.sample])  # some removals do move the output
