r"""Suffix replay: spike removals through a traced graph, each op run only on the rows it would change.

Removing input spike $x_i[t_0]$ changes nothing before $t_0$, and after it only what the removal reaches.
The unperturbed sample (the baseline) is simulated first, one sample at a time as the naive loop runs each
perturbed copy, recording every segment's input current and every neuron layer's state and spikes at every
step. Then the rows of a `SpikeRemovals` plan (across samples, in chunks, each chunk from its earliest
removal's step) are simulated layer by layer, and at every step:

* a segment's maps (stateless, per step) run only on the rows whose input differs from their sample's
  baseline input at that step (the rows are indexed out; the rest take the baseline's recorded current).
  The first segment's maps thus run once per row, at its removal's step, never after it;
* a neuron layer steps only the rows that have diverged: a row diverges at a step its current differs from
  the baseline's (a max pool may hide a changed input), and rejoins the baseline once its spikes and state
  are the baseline's again. Every other row's state and spikes are the baseline's, since the same state and
  the same current give the same bits;
* the next segment's input differs only on the diverged rows whose spikes differ from the baseline's.

The readout then reduces the baseline's output activity with the replayed rows' written in, exactly as the
full forward reduces its $T$ steps.

Every op is called as `sc_neurocore.graph.ModelGraph.simulate` calls it, on the rows that need it: a run
of per-step maps on one step's `(rows, *in_shape)` tensor (a buffer of its own, or a piece of one that
starts on a 64-byte boundary as a fresh buffer does: `PIECE_BYTES` keeps a large batch in cache), a map the
framework applied to the whole sequence at once (SpikingJelly's multi-step mode) on every changed
`(step, row)` of the chunk in one call, each neuron step on one step's current and state. Only a 2-d max
pool runs on a channels-last copy, several times faster on the CPU: it selects, rounds nothing, and both
layouts' kernels keep the same element of every window (the tests compare the bits, signed zeros and NaNs
included). Rows are compared with the baseline bit for bit. So a row equals the model's own forward on
that perturbed copy alone (the naive loop), bit for bit, under the assumption the generic batched path also
makes, which the tests check: a row's bits do not depend on the rows beside it. A neuron state whose rows'
dimension cannot be told (`StateLayoutError`) is left to the model's full forward.
`sc_neurocore.engine.execute` replays this way on the CPU under `engine="auto"` only (on a GPU the one large
batched forward was kept; not measured there).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..graph.maps import LinearMap, MaxPool
from ..graph.model import ModelGraph, Segment
from ..graph.neurons import NeuronNode
from ..graph.readout import MEMBRANE_READOUTS, apply_readout
from .batched import checked_outputs, minimum_rows
from .budget import bytes_per_row, default_max_memory, rows_per_chunk
from .plans import SpikeRemovals
from .suffix_states import StateLayoutError, batch_axes, join_rows, rows_differ, state_rows_differ, take_rows

__all__ = ["SUFFIX_NOTE", "StateLayoutError", "run_suffix", "suffix_reason"]

#: What `sc_neurocore.engine.execute` appends to its reason when the generic path ran as a suffix replay.
SUFFIX_NOTE = ("each row replayed from its removed spike's step, each op only on the rows the removal changed "
               "(suffix replay of the graph's per-step ops)")


def suffix_reason(model: Any, plan: Any) -> str | None:
    """Why `run_suffix` cannot run ``plan`` on ``model`` (``None``: it can).

    Example:
        >>> import torch
        >>> from sc_neurocore.engine import remove_each_spike
        >>> suffix_reason(object(), remove_each_spike(torch.ones(1, 2, 3)))
        'not a traced model graph'
    """
    if not isinstance(model, ModelGraph):
        return "not a traced model graph"
    if not isinstance(plan, SpikeRemovals):
        return "only spike removals start late (a silenced neuron is silent from step 0)"
    return None


def run_suffix(graph: ModelGraph, spikes: Tensor, plan: SpikeRemovals, *, max_memory: int | None = None,
               n_outputs: int | None = None) -> Tensor:
    """Outputs ``(P, C)`` of every row of ``plan`` on ``graph``, each op run only on the rows it changes.

    Equal to ``graph.run`` on each perturbed copy alone wherever the graph's ops give a row the same bits
    whatever the batch size (as the generic batched path also requires).

    Args:
        graph: a `ModelGraph` (see `suffix_reason`).
        spikes: the samples ``(B, T, N)`` the plan refers to.
        plan: the spike removals.
        max_memory: peak bytes for one chunk of rows (``None``: automatic).
        n_outputs: the expected ``C``, if known (checked).

    Returns:
        ``(P, C)``, row ``p`` the readout of plan row ``p``.

    Example:
        >>> import torch
        >>> from sc_neurocore.dynamics import LIFParameters, lif_initial_state, lif_step
        >>> from sc_neurocore.engine import remove_each_spike
        >>> from sc_neurocore.graph import Dense, ModelGraph, NeuronNode, Segment
        >>> node = NeuronNode("1", "leaky", (3,), lif_step, LIFParameters(0.9, 1.0), lif_initial_state)
        >>> graph = ModelGraph((4,), [Segment((Dense((4,), (3,), torch.ones(3, 4)),), node)], "count")
        >>> spikes = (torch.rand(1, 6, 4) < 0.5).float()
        >>> plan = remove_each_spike(spikes)
        >>> naive = torch.cat([graph.run(spikes[:1].index_put((torch.tensor([0]), t[None], n[None]),
        ...                    torch.tensor(0.0))) for t, n in zip(plan.timestep, plan.neuron)])
        >>> torch.equal(run_suffix(graph, spikes, plan), naive.reshape(-1, 3))
        True
    """
    why = suffix_reason(graph, plan)
    if why is not None:
        raise ValueError(f"model: suffix replay cannot run this plan: {why}")
    n_rows = len(plan)
    batch, n_steps, n_inputs = spikes.shape
    budget = default_max_memory(spikes.device) if max_memory is None else max_memory
    row_bytes = bytes_per_row(n_steps, n_inputs, list(graph.neuron_layers.values()), spikes.element_size())
    chunk = rows_per_chunk(budget, row_bytes, max(n_rows, 1), minimum_rows(graph, spikes, n_rows), "suffix replay")
    with torch.inference_mode():
        # Each sample in a fresh buffer, as the naive loop's copies are (a product may round a row by its place).
        records = [_record(graph, spikes[b:b + 1].clone()) for b in range(batch)]
        # Which dim of each state field holds the rows (a delay line may keep them second): the one whose
        # size doubles with two copies of a sample.
        axes = batch_axes(records[0].states, _two_copies(graph, records[0]))
        baseline = _merged(spikes, records, axes)
        outputs: Tensor | None = None
        order = torch.argsort(plan.timestep, stable=True)  # a chunk starts at its first row's step
        for first in range(0, n_rows, chunk):
            rows = order[first:first + chunk]
            removals = SpikeRemovals(plan.sample[rows], plan.timestep[rows], plan.neuron[rows])
            result = checked_outputs(_replay(graph, removals, baseline, axes), len(rows), n_outputs,
                                     spikes.device, "model")
            if outputs is None:
                outputs = torch.empty((n_rows, result.shape[1]), dtype=result.dtype, device=spikes.device)
            outputs[rows] = result
    if outputs is None:
        outputs = torch.empty((0, n_outputs or 0), device=spikes.device)
    return outputs


class _Baseline(NamedTuple):
    """The unperturbed samples' forward, every sample at its own row (of each tensor's rows' dim)."""

    spikes: Tensor  # the input spikes (B, T, N)
    currents: list[Tensor]  # currents[layer]: its input current per step (T, B, *shape)
    emitted: list[Tensor]  # emitted[layer]: its spikes per step (T, B, *shape)
    states: list[list[Any]]  # states[t][layer]: its state after step t
    membranes: Tensor | None  # the output layer's membrane per step (T, B, *shape) (membrane readouts only)


def _inputs(graph: ModelGraph, spikes: Tensor) -> Tensor:
    """Time-first ``(T, B, *input_shape)`` in the graph's dtype, as `ModelGraph.simulate` shapes them."""
    steps, batch = spikes.shape[1], spikes.shape[0]
    x = spikes.transpose(0, 1).reshape(steps, batch, *graph.input_shape)
    dtype = graph._dtype()
    return x if x.dtype == dtype else x.to(dtype)


def _record(graph: ModelGraph, sample: Tensor) -> _Baseline:
    """The forward of ``sample`` ``(B, T, N)`` as `ModelGraph.simulate` runs it, recording every layer."""
    x = _inputs(graph, sample)
    currents, emitted, membranes = [], [], None
    states: list[list[Any]] = [[] for _ in range(x.shape[0])]
    last = len(graph.segments) - 1
    for index, segment in enumerate(graph.segments):
        current = graph._apply_maps(segment, x, fresh=index > 0)
        neuron = segment.neuron
        state = neuron.initial_state(current[0])
        out, kept = [], []
        for t in range(current.shape[0]):
            z, state = neuron.step(current[t], state, neuron.params)
            out.append(z)
            states[t].append(take_rows(state, None, None))
            if index == last and graph.readout in MEMBRANE_READOUTS:
                kept.append(z if not neuron.spiking else neuron.membrane(state))
        currents.append(current)
        x = torch.stack(out)
        emitted.append(x)
        if kept:
            membranes = torch.stack(kept)
    return _Baseline(sample, currents, emitted, states, membranes)


def _two_copies(graph: ModelGraph, record: _Baseline) -> list[list[Any]]:
    """``states[t][layer]`` of two copies of ``record``'s sample: its neurons stepped on its currents twice
    over (a neuron's state depends on its current and the step alone, so the maps need not run again)."""
    states: list[list[Any]] = [[] for _ in record.states]
    for segment, current in zip(graph.segments, record.currents, strict=True):
        neuron = segment.neuron
        current = torch.cat([current, current], dim=1)
        state = neuron.initial_state(current[0])
        for t in range(current.shape[0]):
            _, state = neuron.step(current[t], state, neuron.params)
            states[t].append(state)
    return states


def _merged(spikes: Tensor, records: list[_Baseline], axes: list[Any]) -> _Baseline:
    """Every sample's baseline joined along the rows' dims (sample ``b`` at row ``b``)."""
    first = records[0]
    states = [[join_rows([r.states[t][layer] for r in records], axis) for layer, axis in enumerate(axes)]
              for t in range(len(first.states))]
    currents = [torch.cat([r.currents[layer] for r in records], dim=1) for layer in range(len(first.currents))]
    emitted = [torch.cat([r.emitted[layer] for r in records], dim=1) for layer in range(len(first.emitted))]
    membranes = None if first.membranes is None else torch.cat([r.membranes for r in records], dim=1)  # type: ignore[misc]
    return _Baseline(spikes, currents, emitted, states, membranes)


class _Changes(NamedTuple):
    """One step's rows (indices into the chunk) whose tensor differs from the baseline's, and their values."""

    rows: Tensor
    values: Tensor


def _replay(graph: ModelGraph, removals: SpikeRemovals, baseline: _Baseline, axes: list[Any]) -> Tensor:
    """The readout of every row of ``removals`` (sorted by step): its sample with one input spike removed."""
    samples, at, neurons = removals
    steps, start = baseline.spikes.shape[1], int(at[0])
    before = baseline.spikes[samples, at]  # (G, N): each row's input at its removal's step, as recorded
    after = before.clone()
    after[torch.arange(len(samples), device=after.device), neurons] = 0
    moved = rows_differ(after, before).nonzero().flatten()  # a removed 0 changes nothing
    counts = torch.bincount(at[moved] - start, minlength=steps - start).tolist()
    x = after.index_select(0, moved).reshape(-1, *graph.input_shape)
    dtype = graph._dtype()
    changes = [_Changes(r, v) for r, v in zip(moved.split(counts), (x if x.dtype == dtype else x.to(dtype)).split(counts),
                                              strict=True)]
    last = len(graph.segments) - 1
    membranes: list[_Changes] = []
    for index, segment in enumerate(graph.segments):
        currents = _map_rows(segment, [change.values for change in changes])
        changes = _step_rows(segment.neuron, index, baseline, samples, axes[index], start,
                             [change.rows for change in changes], currents,
                             membranes if index == last and graph.readout in MEMBRANE_READOUTS else None)
    emitted = _written(baseline.emitted[last], samples, start, changes).reshape(steps, len(samples), -1)
    stacked = None if baseline.membranes is None else _written(baseline.membranes, samples, start, membranes)
    return apply_readout(graph.readout, emitted, None if stacked is None else stacked.reshape(steps, len(samples), -1))


def _map_rows(segment: Segment, inputs: list[Tensor]) -> list[Tensor]:
    """The segment's maps on each step's changed rows ``inputs[t]`` (fresh tensors): per-step maps one step
    at a time, in pieces of rows that stay in cache (`_pieces`); a whole-sequence map on every step's rows
    in one call."""
    maps = list(zip(segment.maps, segment.whole_sequence, strict=True))
    while maps:
        if maps[0][1]:
            linear_map = maps.pop(0)[0]
            counts = [len(rows) for rows in inputs]
            joined = torch.cat(inputs)
            out = linear_map.forward(joined) if len(joined) else joined.new_empty((0, *linear_map.out_shape))
            inputs = list(out.split(counts))
            continue
        run = []
        while maps and not maps[0][1]:
            run.append(maps.pop(0)[0])
        inputs = [_pieces(run, rows) for rows in inputs]
    return inputs


#: Bytes of the widest output of a run of per-step maps, per call: several calls on a few rows each run
#: faster than one on them all once that output outgrows the cache (a large batch of a convolution and its
#: pool ran 1.5x slower per row, measured on the CSNN-7 benchmark).
PIECE_BYTES = 1 << 20


def _pieces(maps: list[LinearMap], rows: Tensor) -> Tensor:
    """``rows`` through ``maps`` in pieces of rows whose widest output fits `PIECE_BYTES`; a piece that does
    not start on a 64-byte boundary, as every buffer torch allocates does, is copied to one that does."""
    if not len(rows):
        return rows.new_empty((0, *maps[-1].out_shape))
    widest = max(linear_map.n_out for linear_map in maps) * rows.element_size()
    size = max(1, PIECE_BYTES // widest)
    out = []
    for first in range(0, len(rows), size):
        x = rows[first:first + size]
        if x.data_ptr() % 64:
            x = x.clone()
        for linear_map in maps:
            x = _forward(linear_map, x)
        out.append(x)
    return out[0] if len(out) == 1 else torch.cat(out)


def _forward(linear_map: LinearMap, rows: Tensor) -> Tensor:
    """``linear_map.forward(rows)``; a 2-d max pool on a channels-last copy (its CPU kernel is several times
    faster there), which selects the same element of every window: both layouts' kernels scan a window in
    the same order and keep the first maximum (or NaN), and a selection rounds nothing."""
    if isinstance(linear_map, MaxPool) and rows.ndim == 4:
        return linear_map.forward(rows.contiguous(memory_format=torch.channels_last)).contiguous()
    return linear_map.forward(rows)


#: Whether a neuron layer that found no row back on its baseline waits twice as long before it looks again
#: (the look costs a few ops per step; a layer whose rows never come back, e.g. with a subtractive reset,
#: then pays it on about $\log_2 T$ steps). Exact either way: it only decides how soon a row rejoins.
REJOIN_BACKOFF = True


def _step_rows(neuron: NeuronNode, layer: int, baseline: _Baseline, samples: Tensor, axis: Any, start: int,
               arrived: list[Tensor], currents: list[Tensor], membranes: list[_Changes] | None) -> list[_Changes]:
    """Steps ``start ..`` of one neuron layer on its diverged rows; each step's rows whose spikes differ from
    the baseline's, and (``membranes`` given) the diverged rows' membranes appended.

    ``arrived[t]`` are the rows whose input changed at step ``t``, ``currents[t]`` their currents. A row
    diverges at a step its current differs from the baseline's, bit for bit (a max pool may hide a changed
    input), and rejoins the baseline at a step after which its spikes and state are the baseline's again.
    """
    active = samples.new_empty(0)  # the diverged rows, in the order their state holds them
    position = torch.full((len(samples),), -1, dtype=torch.long, device=samples.device)
    state: Any = None
    out = []
    look, gap = start, 1  # the next step to look for rows back on the baseline, and the wait after it
    for t, (rows, current) in enumerate(zip(arrived, currents, strict=True), start):
        new = rows
        if len(rows):
            fresh = position.index_select(0, rows) < 0
            new = rows[fresh]
            if len(new):  # a row not diverged yet diverges only if its current moved
                moved = rows_differ(current[fresh], baseline.currents[layer][t].index_select(
                    0, samples.index_select(0, new)))
                if not bool(moved.all()):
                    keep = ~fresh
                    keep[fresh.nonzero().flatten()[moved]] = True
                    rows, current, new = rows[keep], current[keep], new[moved]
        if len(new):
            position[new] = torch.arange(len(active), len(active) + len(new), device=samples.device)
            if t == 0:  # nothing has diverged before the first step: every row is new
                fresh_state = neuron.initial_state(current)
            else:
                fresh_state = take_rows(baseline.states[t - 1][layer], samples.index_select(0, new), axis)
            state = fresh_state if state is None else join_rows([state, fresh_state], axis)
            active = torch.cat([active, new])
        if not len(active):
            nothing = _Changes(active, baseline.emitted[layer].new_empty((0, *neuron.shape)))
            out.append(nothing)
            if membranes is not None:
                membranes.append(nothing)
            continue
        own = samples.index_select(0, active)
        if len(rows) == len(active) and torch.equal(rows, active):
            full = current
        else:
            full = baseline.currents[layer][t].index_select(0, own)
            if len(rows):
                full.index_copy_(0, position.index_select(0, rows), current)
        z, state = neuron.step(full, state, neuron.params)
        spiked = rows_differ(z, baseline.emitted[layer][t].index_select(0, own))
        differ = spiked.nonzero().flatten()
        if len(differ) == len(active) and z.is_contiguous() and not z.data_ptr() % 64:
            out.append(_Changes(active, z))  # every diverged row's spikes moved, and z is as a fresh copy
        else:
            out.append(_Changes(active.index_select(0, differ), z.index_select(0, differ)))
        if membranes is not None:
            membranes.append(_Changes(active, z if not neuron.spiking else neuron.membrane(state)))
        if len(differ) < len(active) and t >= look:
            same = (~spiked).nonzero().flatten()
            back = same[~state_rows_differ(take_rows(state, same, axis), take_rows(
                baseline.states[t][layer], own.index_select(0, same), axis), axis, len(same))]
            gap = 1 if len(back) or not REJOIN_BACKOFF else 2 * gap
            look = t + gap
            if len(back):
                stay = torch.ones(len(active), dtype=torch.bool, device=active.device)
                stay[back] = False
                kept = stay.nonzero().flatten()
                position[active.index_select(0, back)] = -1
                active, state = active.index_select(0, kept), take_rows(state, kept, axis)
                position[active] = torch.arange(len(active), device=active.device)
    return out


def _written(recorded: Tensor, samples: Tensor, start: int, changes: list[_Changes]) -> Tensor:
    """``recorded`` ``(T, B, *shape)`` at the rows' samples ``(T, G, *shape)``, with each step's changes written in."""
    out = recorded.index_select(1, samples)
    for t, change in enumerate(changes, start):
        if len(change.rows):
            out[t].index_copy_(0, change.rows, change.values)
    return out
