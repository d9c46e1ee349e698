"""The suffix replay skips work, and exactly the work it may: a segment's maps run on the `(row, step)`s
whose input differs from the baseline's, and a neuron layer steps a row from a step its input differs on
until its spikes and state are the baseline's again. Counted on the map and neuron calls' rows (not timed), against the same counts taken by brute
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


def _bits(x: torch.Tensor) -> torch.Tensor:
    return x.view(torch.int32)


def _stepped(into: torch.Tensor, layer, baseline, rejoin: bool = True) -> int:
    """How many ``(row, step)``s a neuron layer steps: a row from a step its current differs on (``into``
    ``(P, T)``) until the first step its spikes and state (a LIF layer's state is its membrane) are the
    baseline's again, bit for bit (``rejoin``; else to the end)."""
    same = ((_bits(layer.spikes) == _bits(baseline.spikes)) & (_bits(layer.membrane) == _bits(baseline.membrane))
            ).all(2) & rejoin
    diverged = torch.zeros(into.shape[0], dtype=torch.bool)
    count = 0
    for t in range(into.shape[1]):
        stepped = into[:, t] | diverged
        count += int(stepped.sum())
        diverged = stepped & ~same[:, t]
    return count


def _currents(graph: ModelGraph, index: int, inputs: torch.Tensor) -> torch.Tensor:
    """Segment ``index``'s currents ``(P, T, n)`` on its inputs ``(P, T, ...)``, by the graph's own maps."""
    segment = graph.segments[index]
    x = inputs.transpose(0, 1).reshape(inputs.shape[1], inputs.shape[0], *segment.maps[0].in_shape)
    return graph._apply_maps(segment, x, fresh=index > 0).flatten(2).transpose(0, 1)


@pytest.mark.parametrize("backoff", [False, True])
@pytest.mark.parametrize("piece_bytes", [None, 1000])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_maps_and_neurons_run_only_on_the_rows_that_differ(reset, piece_bytes, backoff, monkeypatch):
    """Also with the maps called on pieces of a few rows (the dense map's pieces then start off a 64-byte
    boundary and are copied). With `REJOIN_BACKOFF` a layer looks for rows back on the baseline less
    often: its count lies between looking on every step and never."""
    if piece_bytes is not None:
        monkeypatch.setattr(suffix, "PIECE_BYTES", piece_bytes)
    monkeypatch.setattr(suffix, "REJOIN_BACKOFF", backoff)
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

    # By brute force: each perturbed copy's recorded layers against its sample's.
    rows, _ = materialise(spikes, plan)
    layers = graph.record(rows).layers
    baselines = [type(layer)(layer.name, layer.spikes[plan.sample], layer.membrane[plan.sample])
                 for layer in graph.record(spikes).layers]
    into_hidden = (rows != spikes[plan.sample]).any(2)  # (P, T): the first segment's input differs
    into_out = (_bits(layers[0].spikes) != _bits(baselines[0].spikes)).any(2)
    assert counts.maps["conv"] == counts.maps["pool"] == int(into_hidden.sum()) == len(plan)  # once per row
    assert counts.maps["dense"] == int(into_out.sum())
    moved = [(_bits(_currents(graph, 0, rows)) != _bits(_currents(graph, 0, spikes[plan.sample]))).any(2),
             (_bits(_currents(graph, 1, layers[0].spikes)) != _bits(_currents(graph, 1, baselines[0].spikes))).any(2)]
    rejoined = {}
    for name, into, layer, baseline in zip(("hidden", "out"), moved, layers, baselines, strict=True):
        looking, never = _stepped(into, layer, baseline), _stepped(into, layer, baseline, rejoin=False)
        assert looking <= counts.steps[name] <= never if backoff else counts.steps[name] == looking
        rejoined[name] = never - looking
    # Less than a replay of every row from its removal's step through every layer.
    suffixes = int((spikes.shape[1] - plan.timestep).sum())
    assert counts.maps["dense"] < suffixes and counts.steps["out"] < suffixes and counts.steps["hidden"] < suffixes
    assert int(moved[0].sum()) < len(plan)  # a max pool hid some removals: those rows never diverged
    assert into_out.any()  # the removals do reach the output layer
    assert rejoined["hidden"] > 0 or reset != "zero"  # after a reset to zero, hidden rows rejoin the baseline


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
