r"""Suffix replay: spike removals through a traced graph, each row run only from the step its spike left.

Removing input spike $x_i[t_0]$ changes nothing before $t_0$: every layer's state and spikes at steps
$s < t_0$ are the unperturbed sample's. So the rows of a `SpikeRemovals` plan are grouped by $t_0$ (across
samples), each row starts from its sample's recorded baseline state after step $t_0 - 1$, and only steps
$t_0 .. T-1$ are simulated; the readout then reduces the baseline's first $t_0$ steps joined
with the replayed ones, exactly as the full forward reduces its $T$ steps.

Every op is called as `sc_neurocore.graph.ModelGraph.simulate` calls it: each per-step map on one
step's `(rows, *in_shape)` tensor (a layer's first map on a fresh copy of the spikes it receives), each
neuron step on one step's current and state. The baseline is simulated one sample at a time, as the naive
loop runs each perturbed copy. Work falls from $T$ steps per row to $T - t_0$ (about half), and no
`(T, rows, ...)` stack of every layer's currents is ever built: steps run time-major, each layer's
current lives for one step.

A graph with a map the framework applied to the whole sequence at once (SpikingJelly's multi-step mode)
is replayed layer by layer instead, as `ModelGraph.simulate` runs it: that map gets the suffix's
$(T - t_0) G$ rows in one call (the generic path gives it $T P$, the naive loop $T$: all assume, as the
tests check, that a row's bits do not depend on the rows beside it). A neuron state whose rows' dimension
cannot be told (`StateLayoutError`) is left to the model's full forward.
`sc_neurocore.engine.execute` replays this way on the CPU under `engine="auto"` only (on a GPU the one
large batched forward was kept; not measured there).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..graph.model import ModelGraph
from ..graph.readout import MEMBRANE_READOUTS, apply_readout
from .batched import checked_outputs, minimum_rows
from .budget import bytes_per_row, default_max_memory, rows_per_chunk
from .plans import SpikeRemovals

#: What `sc_neurocore.engine.execute` appends to its reason when the generic path ran as a suffix replay.
SUFFIX_NOTE = "each row replayed from its removed spike's step (suffix replay of the graph's per-step ops)"


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
    """Outputs ``(P, C)`` of every row of ``plan`` on ``graph``, each row simulated from its removal's step.

    Equal to ``graph.run`` on each perturbed copy alone wherever the graph's ops give a row the same bits
    whatever the batch size (as the generic batched path also requires).

    Args:
        graph: a `ModelGraph` without whole-sequence maps (see `suffix_reason`).
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
        baselines = [_baseline(graph, spikes[b:b + 1]) for b in range(batch)]
        # Which dim of each state field holds the rows (a delay line may keep them second): the one whose
        # size doubles with two copies of a sample.
        axes = _batch_axes(baselines[0].states, _baseline(graph, spikes[:1].expand(2, -1, -1)).states)
        merged = _merged(baselines, axes)
        whole = any(any(segment.whole_sequence) for segment in graph.segments)
        replay = _replay_layers if whole else _replay
        outputs: Tensor | None = None
        order = torch.argsort(plan.timestep, stable=True)
        steps_of, counts = torch.unique_consecutive(plan.timestep[order], return_counts=True)
        start = 0
        for step, count in zip(steps_of.tolist(), counts.tolist(), strict=True):
            group = order[start:start + count]
            start += count
            for first in range(0, count, chunk):
                rows = group[first:first + chunk]
                perturbed = spikes[plan.sample[rows]]
                perturbed[torch.arange(len(rows), device=perturbed.device), plan.timestep[rows], plan.neuron[rows]] = 0
                result = checked_outputs(replay(graph, perturbed, step, merged, plan.sample[rows], axes), len(rows),
                                         n_outputs, spikes.device, "model")
                if outputs is None:
                    outputs = torch.empty((n_rows, result.shape[1]), dtype=result.dtype, device=spikes.device)
                outputs[rows] = result
    if outputs is None:
        outputs = torch.empty((0, n_outputs or 0), device=spikes.device)
    return outputs


class StateLayoutError(ValueError):
    """A neuron state whose rows' dimension cannot be told (the caller runs the model's full forward)."""


class _Baseline:
    """One sample's forward: every layer's state after every step, and the output layer's activity."""

    def __init__(self, states: list[list[Any]], emitted: list[Tensor], membranes: list[Tensor]) -> None:
        self.states = states  # states[t][layer]: the state after step t
        self.emitted = emitted  # the output layer's emitted spikes per step, (rows, *shape)
        self.membranes = membranes  # its membrane per step (membrane readouts only)


def _inputs(graph: ModelGraph, spikes: Tensor) -> Tensor:
    """Time-first ``(T, B, *input_shape)`` in the graph's dtype, as `ModelGraph.simulate` shapes them."""
    steps, batch = spikes.shape[1], spikes.shape[0]
    x = spikes.transpose(0, 1).reshape(steps, batch, *graph.input_shape)
    dtype = graph._dtype()
    return x if x.dtype == dtype else x.to(dtype)


def _step(graph: ModelGraph, x: Tensor, states: list[Any], t: int, first: bool) -> tuple[Tensor, Tensor | None]:
    """Step ``t`` through every layer (``states`` updated in place); the output layer's spikes and membrane."""
    z = x[t]
    membrane = None
    last = len(graph.segments) - 1
    for index, segment in enumerate(graph.segments):
        current = z
        for position, linear_map in enumerate(segment.maps):
            current = linear_map.forward(current.clone() if index > 0 and position == 0 else current)
        neuron = segment.neuron
        state = neuron.initial_state(current) if first else states[index]
        z, states[index] = neuron.step(current, state, neuron.params)
        if index == last and graph.readout in MEMBRANE_READOUTS:
            membrane = z if not neuron.spiking else neuron.membrane(states[index])
    return z, membrane


def _baseline(graph: ModelGraph, sample: Tensor) -> _Baseline:
    x = _inputs(graph, sample)
    states: list[Any] = [None] * len(graph.segments)
    recorded, emitted, membranes = [], [], []
    for t in range(x.shape[0]):
        z, membrane = _step(graph, x, states, t, t == 0)
        recorded.append([_take(state, None, None) for state in states])
        emitted.append(z.clone())
        if membrane is not None:
            membranes.append(membrane.clone())
    return _Baseline(recorded, emitted, membranes)


def _merged(baselines: list[_Baseline], axes: list[Any]) -> _Baseline:
    """Every sample's baseline joined along the rows' dims (sample ``b`` at row ``b``)."""
    first = baselines[0]
    states = [[_merge([b.states[t][layer] for b in baselines], axis) for layer, axis in enumerate(axes)]
              for t in range(len(first.states))]
    emitted = [torch.cat([b.emitted[t] for b in baselines]) for t in range(len(first.emitted))]
    membranes = [torch.cat([b.membranes[t] for b in baselines]) for t in range(len(first.membranes))]
    return _Baseline(states, emitted, membranes)


def _replay(graph: ModelGraph, perturbed: Tensor, step: int, baseline: _Baseline, samples: Tensor,
            axes: list[Any]) -> Tensor:
    """The readout of ``perturbed`` rows ``(G, T, N)`` of samples ``samples``, all first changed at ``step``."""
    x = _inputs(graph, perturbed)
    rows = perturbed.shape[0]
    states = [None] * len(graph.segments) if step == 0 else \
        [_take(state, samples, axis) for state, axis in zip(baseline.states[step - 1], axes, strict=True)]
    emitted = [spikes.index_select(0, samples) for spikes in baseline.emitted[:step]]
    membranes = [m.index_select(0, samples) for m in baseline.membranes[:step]]
    for t in range(step, x.shape[0]):
        z, membrane = _step(graph, x, states, t, t == 0)
        emitted.append(z)
        if membrane is not None:
            membranes.append(membrane)
    flat = torch.stack(emitted).reshape(x.shape[0], rows, -1)
    stacked = torch.stack(membranes).reshape(x.shape[0], rows, -1) if membranes else None
    return apply_readout(graph.readout, flat, stacked)


def _replay_layers(graph: ModelGraph, perturbed: Tensor, step: int, baseline: _Baseline, samples: Tensor,
                   axes: list[Any]) -> Tensor:
    """`_replay` layer by layer, as `ModelGraph.simulate` runs a graph with a map applied to the whole
    sequence at once: that map gets the suffix's ``(T - step) * G`` rows in one call."""
    x = _inputs(graph, perturbed)
    steps, rows = x.shape[:2]
    x = x[step:]
    last = len(graph.segments) - 1
    membranes: list[Tensor] = []
    for index, segment in enumerate(graph.segments):
        current = graph._apply_maps(segment, x, fresh=index > 0)
        neuron = segment.neuron
        state = neuron.initial_state(current[0]) if step == 0 else \
            _take(baseline.states[step - 1][index], samples, axes[index])
        emitted = []
        for t in range(current.shape[0]):
            out, state = neuron.step(current[t], state, neuron.params)
            emitted.append(out)
            if index == last and graph.readout in MEMBRANE_READOUTS:
                membranes.append(out if not neuron.spiking else neuron.membrane(state))
        x = torch.stack(emitted)
    spikes = torch.cat([torch.stack([z.index_select(0, samples) for z in baseline.emitted[:step]]), x]) \
        if step else x
    flat = spikes.reshape(steps, rows, -1)
    stacked = None
    if membranes:
        stacked = torch.stack([m.index_select(0, samples) for m in baseline.membranes[:step]] + membranes)
        stacked = stacked.reshape(steps, rows, -1)
    return apply_readout(graph.readout, flat, stacked)


def _batch_axes(one: list[list[Any]], two: list[list[Any]]) -> list[Any]:
    """Per layer, the rows' dim of every tensor in its state (``None``: no such dim), from the states of
    one and two copies of a sample at every step; a `StateLayoutError` when a field's shape changes otherwise."""
    def axis(a: Any, b: Any) -> Any:
        if isinstance(a, Tensor):
            differ = [d for d, (m, n) in enumerate(zip(a.shape, b.shape, strict=True)) if m != n]
            if not differ:
                return None
            if differ != [differ[0]] or (a.shape[differ[0]], b.shape[differ[0]]) != (1, 2):
                raise StateLayoutError(f"model: a neuron state of shape {tuple(a.shape)} for one row and "
                                 f"{tuple(b.shape)} for two has no single batch dimension")
            return differ[0]
        if isinstance(a, tuple | list):
            return type(a)(axis(x, y) for x, y in zip(a, b, strict=True)) if not hasattr(a, "_fields") else \
                type(a)(*(axis(x, y) for x, y in zip(a, b, strict=True)))
        return None

    found = [axis(a, b) for a, b in zip(one[-1], two[-1], strict=True)]
    for step_one, step_two in zip(one, two, strict=True):  # every step's states keep the same layout
        if [axis(a, b) for a, b in zip(step_one, step_two, strict=True)] != found:
            raise StateLayoutError("model: a neuron state changes its batch layout between steps")
    return found


def _fields(state: Any, axis: Any) -> tuple[list[Any], list[Any]] | None:
    """A tuple state's fields and their axes (``None``: ``state`` is a leaf)."""
    if not isinstance(state, tuple | list):
        return None
    return list(state), list(axis) if axis is not None else [None] * len(state)


def _rebuild(like: Any, fields: list[Any]) -> Any:
    return type(like)(*fields) if hasattr(like, "_fields") else type(like)(fields)


def _merge(parts: list[Any], axis: Any) -> Any:
    """One state from every sample's, joined along each tensor's rows' dim (a batch-free field: the first's)."""
    first = parts[0]
    if isinstance(first, Tensor):
        return first if axis is None else torch.cat(parts, dim=axis)
    split = _fields(first, axis)
    if split is None:
        return first
    _, axes = split
    return _rebuild(first, [_merge([part[i] for part in parts], a) for i, a in enumerate(axes)])


def _take(state: Any, samples: Tensor | None, axis: Any) -> Any:
    """A fresh copy of ``state``: rows ``samples`` along each tensor's rows' dim ``axis`` (``None``: all)."""
    if isinstance(state, Tensor):
        return state.clone() if samples is None or axis is None else state.index_select(axis, samples)
    split = _fields(state, axis)
    if split is None:
        return state
    fields, axes = split
    return _rebuild(state, [_take(field, samples, a) for field, a in zip(fields, axes, strict=True)])
