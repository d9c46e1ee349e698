r"""The event engine: exact perturbations of a feed-forward LIF stack, propagated as spike-change events.

A removed input spike, or a silenced neuron, is a set of *events*: changes ``(t, i, delta)`` of the train
that feeds one layer. Layer by layer, `propagate_layer` turns the
events into the layer's own spike changes, per (row, neuron) pair and not per row: the pairs that provably
cannot flip a spike are ruled out by one test against per-neuron tables, and only the rest are scanned, in
time order, from the row's first event. The next layer receives the flips as rank-k current updates (rows
of its weight matrix). The readout is the baseline's plus the output layer's flips.

Layers plug in through `sc_neurocore.engine.event_tables.LayerTables` (a weight matrix and the baseline tables of one LIF layer); a
current-based layer (snnTorch `Synaptic`) through `sc_neurocore.engine.cuba.CubaTables` and its own kernel; a
layer that charges and resets in the same step (SpikingJelly's integrate-and-fire nodes, Norse `LIFBoxCell`) as a
LIF layer on its charged membrane (`sc_neurocore.engine.charge_forms`).
A convolution or pooling segment lowers to the same interface by its ``dense()`` matrix or
``unit_responses`` (see `sc_neurocore.engine.lower`).

Exactness: a spike decision is taken from its float64 estimate only outside a rigorous bound on the
framework's own rounding, in a loose test (any summation order, any batch shape) and a tight one (anchored
on the baseline's own float membrane), both defined with the tables in `sc_neurocore.engine.event_tables`.
A row with a decision inside the loose bound is reported in the tie mask. A row with one inside the tight
bound too (a layer without tight tables: inside the loose one) is replayed from that layer by
`sc_neurocore.engine.replay` in the naive loop's own call shapes, where the stack's ops are checked to be the
model's own (else recomputed by the model's own forward, the caller's ``recompute``). Every row is
then the naive loop's bit for bit (outside the tie mask also every other executor's): spike counts are
integers, and the readout is formed as the forward forms it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..dynamics import LIFParameters, lif_step
from ..protocol import INPUT_LAYER
from .charge_forms import charge_unsupported, is_charge
from .cuba import cuba_unsupported, is_cuba
from .event_kernels import RESET_CODES, kernels
from .event_tables import MEMBRANE_READOUTS, ChunkTables, LayerTables, _rows_alone_match, table_bytes_per_sample
from .incremental import Baseline, CompiledStack, readout_finish, stack_forward
from .plans import Silencing, SpikeRemovals
from .replay import ChangedRows, replay_layer, replay_rows

#: Readouts the event engine computes exactly from spike changes.
EVENT_READOUTS = ("count", "rate")


def unsupported(stack: CompiledStack, tight: bool = False) -> str | None:
    """Why the event engine cannot run ``stack`` (``None``: it can).

    A membrane readout (`MEMBRANE_READOUTS`) is a float value, not a count: its hidden layers run as
    events and the output layer is replayed in the naive loop's call shapes (`sc_neurocore.engine.replay`),
    which needs ``tight`` (the stack's ops checked to be the model's own); its output layer may then be any
    neuron, a leaky integrator included.

    Example:
        >>> import torch
        >>> from sc_neurocore.engine.compile import compile_model
        >>> from sc_neurocore.models import LIFNetwork
        >>> unsupported(compile_model(LIFNetwork([torch.randn(8, 4), torch.randn(4, 2)]))) is None
        True
    """
    evented = stack.layers
    if stack.readout in MEMBRANE_READOUTS:
        if not tight:
            return (f"readout {stack.readout!r} is a membrane value, replayed exactly only where the compiled "
                    "stack's membranes were checked to be the model's own")
        evented = stack.layers[:-1]
    elif stack.readout not in EVENT_READOUTS:
        return f"readout {stack.readout!r} is not one the event engine computes"
    for name, layer in zip(stack.names[:len(evented)], evented, strict=True):
        if is_cuba(layer):  # a current-based layer: its own kernel (engine.cuba)
            why = cuba_unsupported(name, layer)
            if why is not None:
                return why
            continue
        if is_charge(layer):  # charge then reset in the same step: the LIF kernel on its charged membrane
            why = charge_unsupported(name, layer)
            if why is not None:
                return why
            continue
        if layer.step is not lif_step or not isinstance(layer.params, LIFParameters):
            return f"layer {name!r} is not a leaky integrate-and-fire layer"
        beta = torch.as_tensor(layer.params.beta)
        if bool((beta < 0).any()) or bool((beta > 1).any()):
            return f"layer {name!r} has a beta outside [0, 1]"
        if layer.params.reset not in RESET_CODES:
            return f"layer {name!r} has reset {layer.params.reset!r}"
        if not bool(torch.all(torch.as_tensor(layer.params.graded) == 1)):
            return f"layer {name!r} emits graded spikes (the events are spike flips of height 1)"
        if not layer.params.reset_delay:
            return f"layer {name!r} resets in the same step (the events follow the delayed reset)"
    return None


def naive_baseline(stack: CompiledStack, x: Tensor, baseline: Baseline) -> Baseline:
    """``baseline`` if every layer's product gives each sample's rows, computed alone in a fresh buffer, the
    recorded bits; else the forward recorded one sample at a time, each in a fresh buffer, as the naive loop runs
    it (a BLAS may round a batch's rows differently, or a row by its place in memory, and the tight test and the
    replays must anchor on what the naive loop computes).

    Example:
        >>> import torch
        >>> from sc_neurocore.engine.compile import compile_model
        >>> from sc_neurocore.models import LIFNetwork
        >>> stack = compile_model(LIFNetwork([torch.randn(8, 4), torch.randn(4, 2)]))
        >>> x = (torch.rand(3, 10, 8) < 0.3).float()
        >>> naive_baseline(stack, x, stack_forward(stack, x, record=True)[1]).spikes[0].shape
        torch.Size([3, 10, 4])
    """
    if all(_rows_alone_match(layer, x if index == 0 else baseline.spikes[index - 1], baseline.currents[index])
           for index, layer in enumerate(stack.layers)):
        return baseline
    alone = []
    for b in range(x.shape[0]):
        # A fresh buffer, as the naive loop's copy is: a product may round a row by its place in memory.
        recorded_forward = stack_forward(stack, x[b:b + 1].clone(), record=True)
        assert isinstance(recorded_forward, tuple)
        alone.append(recorded_forward[1])
    return Baseline([torch.cat([one.currents[i] for one in alone]) for i in range(len(stack.layers))],
                    [type(alone[0].states[i])(*(torch.cat(fields) for fields in zip(*(one.states[i] for one in alone),
                                                                                    strict=True)))
                     for i in range(len(stack.layers))],
                    [torch.cat([one.spikes[i] for one in alone]) for i in range(len(stack.layers))],
                    torch.cat([one.partial_outputs for one in alone]))


class Events(NamedTuple):
    """Changes of the train feeding one layer, per row, sorted by row then time (NumPy arrays)."""

    offsets: np.ndarray
    t: np.ndarray
    i: np.ndarray
    delta: np.ndarray


def events_from(rows: Tensor, t: Tensor, i: Tensor, delta: Tensor, n_rows: int) -> Events:
    """Events from parallel index tensors (any order): sorted by row, then time (stable: events of one row and
    step keep their order)."""
    rows_np, t_np = rows.numpy(), t.numpy()
    counts = np.bincount(rows_np, minlength=n_rows)
    offsets = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    # Already in order (a nonzero of row-major trains, the common case): no sort.
    in_order = len(rows_np) < 2 or bool(np.all((rows_np[1:] > rows_np[:-1]) |
                                               ((rows_np[1:] == rows_np[:-1]) & (t_np[1:] >= t_np[:-1]))))
    order = slice(None) if in_order else np.lexsort((t_np, rows_np))
    return Events(offsets, np.ascontiguousarray(t_np[order], dtype=np.int64),
                  np.ascontiguousarray(i.numpy()[order], dtype=np.int64),
                  np.ascontiguousarray(delta.numpy()[order], dtype=np.float64))


def level_of(stack: CompiledStack, plan: SpikeRemovals | Silencing) -> int:
    """The index of the first layer whose input ``plan`` changes (``len(layers)``: the output's own spikes)."""
    if isinstance(plan, SpikeRemovals) or plan.layer == INPUT_LAYER:
        return 0
    return stack.names.index(plan.layer) + 1


def plan_events(stack: CompiledStack, x: Tensor, baseline: Baseline, plan: SpikeRemovals | Silencing) -> Events:
    """The events of every row of ``plan`` (samples index ``x``), in the train feeding `level_of`."""
    n_rows = len(plan)
    if isinstance(plan, SpikeRemovals):
        value = x[plan.sample, plan.timestep, plan.neuron]
        keep = value != 0
        rows = torch.arange(n_rows)[keep]
        return events_from(rows, plan.timestep[keep], plan.neuron[keep], -value[keep].double(), n_rows)
    level = level_of(stack, plan)
    train = x if level == 0 else baseline.spikes[level - 1]
    if bool((plan.stop - plan.start == 1).all()):  # one neuron a row: the one at rank start[p]
        by_rank = torch.argsort(plan.rank, dim=-1)
        neuron = by_rank[plan.start] if by_rank.ndim == 1 else by_rank[plan.sample, plan.start]
        row = torch.arange(n_rows)
    else:
        row, neuron = torch.nonzero(plan.masks(), as_tuple=True)  # (P, n) masks
    fired = train[plan.sample[row], :, neuron]  # (K, T): each silenced neuron's baseline train
    which, t = torch.nonzero(fired, as_tuple=True)
    return events_from(row[which], t, neuron[which], -fired[which, t].double(), n_rows)


def run_event(stack: CompiledStack, x: Tensor, baseline: Baseline, plan: SpikeRemovals | Silencing,
              recompute: Callable[[Tensor], Tensor] | None = None,
              tables: ChunkTables | None = None, recomputed: Tensor | None = None,
              columns: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Outputs ``(P, C)`` of every row of ``plan`` and the ``(P,)`` bool tie mask, for one chunk of samples.

    Args:
        stack: a stack the event engine supports (`unsupported` is ``None``).
        x: the samples ``(B, T, N)`` in the weights' dtype; ``plan.sample`` indexes them.
        baseline: their recorded forward (``stack_forward(stack, x, record=True)``).
        plan: spike removals or silencings.
        recompute: ``recompute(rows) -> (k, C)``: the outputs of plan rows ``rows`` (a LongTensor) by the
            model's own forward; tie rows are recomputed by it. ``None``: by the stack's own forward.
        tables: the `ChunkTables` of ``x``, if the caller has them (the layers' tables built so far are kept
            there for the caller's next call).
        recomputed: a ``(P,)`` bool tensor, if given, set to the rows recomputed by ``recompute`` (a decision
            inside even the tight bound); the other tie rows hold the naive loop's outcome, which another
            batch shape of the model's forward may round the other way.
        columns: ``(P,)`` LongTensor, if given: the one output column of each row the caller reads. The
            output layer then scans only that neuron of each row (a count or rate readout), the tie mask
            covers only what that column depends on, and the other columns come back NaN.

    Returns:
        ``(outputs, tie)``: the tie mask holds every row with a decision inside the loose bound.

    Example:
        >>> import torch
        >>> from sc_neurocore.engine.compile import compile_model
        >>> from sc_neurocore.engine.plans import remove_each_spike
        >>> from sc_neurocore.models import LIFNetwork
        >>> net = LIFNetwork([torch.randn(8, 4), torch.randn(4, 2)])
        >>> x = (torch.rand(1, 20, 8) < 0.3).float()
        >>> stack = compile_model(net)
        >>> _, baseline = stack_forward(stack, x, record=True)
        >>> outputs, tie = run_event(stack, x, baseline, remove_each_spike(x))
        >>> outputs.shape[1], tie.dtype
        (2, torch.bool)
    """
    n_rows = len(plan)
    n_steps = x.shape[1]
    level = level_of(stack, plan)
    accumulated = baseline.partial_outputs[:, n_steps]  # the readout accumulator after the last step
    sample = plan.sample
    counts = accumulated[sample].clone()
    tie = torch.zeros(n_rows, dtype=torch.bool)
    membrane = stack.readout in MEMBRANE_READOUTS
    if level == len(stack.layers):  # silenced output neurons: their spikes leave the readout
        assert isinstance(plan, Silencing)
        if membrane:
            raise ValueError("plan: silencing the output layer of a membrane readout is not run by the event "
                             "engine; pass engine='batched'")
        counts = counts * (~plan.masks()).to(counts.dtype)
        return readout_finish(stack.readout, counts, n_steps), tie
    tables = ChunkTables(stack, x, baseline, tight=membrane) if tables is None else tables
    events = plan_events(stack, x, baseline, plan)
    sample_np = sample.numpy().astype(np.int64)
    every = np.full(n_rows, -1, dtype=np.int64)  # each row needs every neuron of a layer
    needed = every if columns is None or membrane else columns.numpy().astype(np.int64)
    propagate = kernels()["propagate_layer"]
    ties = np.zeros(n_rows, dtype=np.bool_)
    shape = np.zeros(n_rows, dtype=np.bool_)
    suffixes = []  # (layer index, rows, the rows of their exact input to that layer that changed, tie): replayed
    replayed = np.zeros(n_rows, dtype=np.bool_)  # rows with a hidden layer replayed exactly
    for index in range(level, len(tables)):
        only = needed if index == len(stack.layers) - 1 else every
        # Flips of the layer below may add spikes to a step's input: the table is built for as many (a copy
        # adding more than it allows ties); the silenced or removed spikes of the first layer add none.
        added = 0 if index == level else kernels()["most_added"](events.offsets, events.t, events.delta)
        table = tables.table(index, added)
        if membrane and not table.replay:
            raise ValueError("stack: a membrane readout needs every layer it runs as events replayable in the naive "
                             "loop's call shapes (the stack's ops checked to be the model's own)")
        kernel = propagate if isinstance(table, LayerTables) else table.kernel()  # a current-based layer's own
        offsets, t, j, delta, row_ties, row_shape = kernel(
            events.offsets, events.t, events.i, events.delta, sample_np, only, *table.kernel_args(),
            max(16, 4 * events.t.shape[0]), *table.tight_args())
        new_ties = row_ties & ~ties
        if table.replay and new_ties.any():
            # Every decision below this layer was taken outside the bound, so this layer's input is exact:
            # this layer is replayed in the naive loop's own call shapes, and its exact spike changes go on
            # as events (the output layer's replay gives the rows' outputs).
            picked = np.nonzero(new_ties)[0]
            below = baseline.spikes[index - 1] if index > 0 else x
            changed_rows = _changed_input(below, sample_np, events, picked)
            if index == len(stack.layers) - 1:
                suffixes.append((index, picked, changed_rows, True))
            else:
                copies_of = sample[torch.from_numpy(picked)]
                exact, _ = replay_layer(stack, x, baseline, index, copies_of, changed_rows)
                offsets, t, j, delta = _with_rows(offsets, t, j, delta, picked, exact - baseline.spikes[index][copies_of])
                replayed[picked] = True
            row_ties = row_ties & ~new_ties
            shape |= new_ties
        ties |= row_ties
        shape |= row_shape
        events = Events(offsets, t, j, delta)
    rows = np.repeat(np.arange(n_rows), np.diff(events.offsets))
    if membrane:  # the output layer's membrane: every row whose input to it changed is replayed there
        outputs = readout_finish(stack.readout, counts, n_steps)
        last = len(stack.layers) - 1
        changed = np.diff(events.offsets) > 0
        for _, picked, _, _ in suffixes:  # tie rows: replayed from their own layer
            changed[picked] = False
        changed &= ~ties
        if changed.any():
            picked = np.nonzero(changed)[0]
            below = baseline.spikes[last - 1] if last > 0 else x
            suffixes.append((last, picked, _changed_input(below, sample_np, events, picked), False))
    else:
        counts.index_put_((torch.from_numpy(rows), torch.from_numpy(events.i)),
                          torch.from_numpy(events.delta).to(counts.dtype), accumulate=True)
        outputs = readout_finish(stack.readout, counts, n_steps)
    redo = torch.from_numpy(ties | replayed)
    for start, picked, changed_rows, is_tie in suffixes:
        rows_t = torch.from_numpy(picked)
        outputs[rows_t] = replay_rows(stack, x, baseline, start, sample[rows_t], changed_rows).to(outputs.dtype)
        redo[rows_t] |= is_tie
    if bool(torch.from_numpy(ties).any()):
        tie_rows = torch.nonzero(torch.from_numpy(ties))[:, 0]
        if recompute is None:
            outputs[tie_rows] = _stack_rows(stack, x, plan, tie_rows)
        else:
            outputs[tie_rows] = recompute(tie_rows).to(outputs.dtype)
    if recomputed is not None:
        recomputed.copy_(redo)
    return only_columns(outputs, columns), torch.from_numpy(ties | shape)


def only_columns(outputs: Tensor, columns: Tensor | None) -> Tensor:
    """``outputs`` ``(P, C)`` with every entry but ``outputs[p, columns[p]]`` set to NaN (``columns=None``:
    unchanged), so that a value no executor computed is never read as one.

    Example:
        >>> only_columns(torch.ones(2, 3), torch.tensor([0, 2])).tolist()
        [[1.0, nan, nan], [nan, nan, 1.0]]
    """
    if columns is None:
        return outputs
    kept = torch.full_like(outputs, float("nan"))
    rows = torch.arange(outputs.shape[0], device=outputs.device)
    kept[rows, columns] = outputs[rows, columns]
    return kept


def _with_rows(offsets: np.ndarray, t: np.ndarray, j: np.ndarray, delta: np.ndarray, picked: np.ndarray,
               change: Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Events ``(offsets, t, j, delta)`` with rows ``picked`` (increasing; they hold none) given the non-zero entries of
    ``change`` ``(k, T, n)``, in time order."""
    owner, step, neuron = (a.numpy() for a in torch.nonzero(change, as_tuple=True))  # row-major: by row, then time
    values = change[owner, step, neuron].double().numpy()
    new_offsets = np.zeros(len(picked) + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=len(picked)), out=new_offsets[1:])
    return kernels()["rows_inserted"](offsets, t, j, delta, picked.astype(np.int64), new_offsets, step, neuron, values)


def _changed_input(below: Tensor, sample: np.ndarray, events: Events, picked: np.ndarray) -> ChangedRows:
    """The input rows that the events of plan rows ``picked`` change (copy ``r`` is ``picked[r]``): their samples'
    baseline rows ``below`` ``(B, T, n)`` plus the events, one per copy and step."""
    n_steps = below.shape[1]
    counts = events.offsets[picked + 1] - events.offsets[picked]
    owner = np.repeat(np.arange(len(picked)), counts)
    # Each picked row's events: its offset, plus the rank of the event within the row.
    where = np.repeat(events.offsets[picked], counts) + np.arange(int(counts.sum())) - \
        np.repeat(np.cumsum(counts) - counts, counts)
    pairs, which = np.unique(owner * n_steps + events.t[where], return_inverse=True)
    copy, step = torch.from_numpy(pairs // n_steps), torch.from_numpy(pairs % n_steps)
    data = below[torch.from_numpy(sample[picked])[copy], step]  # (m, n): indexing copies
    data.index_put_((torch.from_numpy(which.reshape(-1)), torch.from_numpy(events.i[where])),
                    torch.from_numpy(events.delta[where]).to(data.dtype), accumulate=True)
    return ChangedRows(copy, step, data)


def _stack_rows(stack: CompiledStack, x: Tensor, plan: SpikeRemovals | Silencing, index: Tensor) -> Tensor:
    """Rows ``index`` of ``plan`` by the stack's own forward on perturbed copies."""
    from .batched import materialise

    rows, silence = materialise(x, select(plan, index))
    result = stack_forward(stack, rows, silence=dict(silence) if silence else None)
    assert isinstance(result, Tensor)
    return result


def _slice(baseline: Baseline, start: int, stop: int) -> Baseline:
    """Samples ``[start, stop)`` of a recorded baseline (views, no copies)."""
    return Baseline([c[start:stop] for c in baseline.currents],
                    [type(state)(*(field[start:stop] for field in state)) for state in baseline.states],
                    [s[start:stop] for s in baseline.spikes], baseline.partial_outputs[start:stop])


def select(plan: SpikeRemovals | Silencing, index: Tensor) -> SpikeRemovals | Silencing:
    """Rows ``index`` (a LongTensor) of ``plan``.

    Example:
        >>> import torch
        >>> from sc_neurocore.engine.plans import remove_each_spike
        >>> len(select(remove_each_spike(torch.ones(1, 2, 3)), torch.tensor([0, 4])))
        2
    """
    if isinstance(plan, SpikeRemovals):
        return SpikeRemovals(plan.sample[index], plan.timestep[index], plan.neuron[index])
    return Silencing(plan.layer, plan.sample[index], plan.rank, plan.start[index], plan.stop[index])


def minimum_memory(stack: CompiledStack, n_steps: int) -> int:
    """The smallest ``max_memory`` the event engine runs under: one sample's recorded forward and tables."""
    from .incremental import baseline_bytes_per_sample

    itemsize = torch.empty((), dtype=stack.layers[0].weight.dtype).element_size()
    return baseline_bytes_per_sample(stack, n_steps, itemsize) + table_bytes_per_sample(stack, n_steps)


def run_events(stack: CompiledStack, spikes: Tensor, plan: SpikeRemovals | Silencing, *,
               baseline: Baseline | None = None, max_memory: int | None = None,
               recompute: Callable[[Tensor], Tensor] | None = None, tight: bool = False,
               recomputed: Tensor | None = None, progress: bool = False,
               columns: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Outputs ``(P, C)`` and tie mask ``(P,)`` of every row of ``plan``, one chunk of samples at a time.

    Args:
        stack: a stack the event engine supports.
        spikes: the samples ``(B, T, N)``.
        plan: spike removals or silencings of ``spikes``.
        baseline: the recorded forward of all of ``spikes``, if the caller has it.
        max_memory: peak bytes of one chunk's baseline and tables (``None``: automatic).
        recompute: ``recompute(rows)``: outputs of plan rows ``rows`` (global indices) by the model's own
            forward, for the tie rows (``None``: the stack's forward).
        tight: the stack's ops are the model's own (`sc_neurocore.engine.recorded.Recording.same_ops`): the
            tight test of `layer_tables` may decide, and only the rows inside it are recomputed.
        recomputed: a ``(P,)`` bool tensor, if given, set to the rows that were recomputed.
        progress: show a progress bar over rows.
        columns: ``(P,)`` LongTensor, if given: the one output column each row's caller reads (see `run_event`;
            the other columns come back NaN).

    Returns:
        ``(outputs, tie)``.

    Example:
        >>> import torch
        >>> from sc_neurocore.engine.compile import compile_model
        >>> from sc_neurocore.engine.plans import remove_each_spike
        >>> from sc_neurocore.models import LIFNetwork
        >>> net = LIFNetwork([torch.randn(8, 4), torch.randn(4, 2)])
        >>> x = (torch.rand(3, 20, 8) < 0.3).float()
        >>> plan = remove_each_spike(x)
        >>> outputs, tie = run_events(compile_model(net), x, plan)
        >>> from sc_neurocore.engine.batched import run_plan
        >>> bool(torch.equal(outputs[~tie], run_plan(net, x, plan)[~tie]))
        True
    """
    from .budget import default_max_memory
    from .incremental import baseline_bytes_per_sample

    dtype = stack.layers[0].weight.dtype
    x = spikes.to(dtype)
    n_samples, n_steps, _ = x.shape
    n_rows = len(plan)
    outputs = torch.empty((n_rows, stack.n_outputs), dtype=dtype)
    tie = torch.zeros(n_rows, dtype=torch.bool)
    if n_rows == 0:
        return outputs, tie
    budget = default_max_memory(x.device) if max_memory is None else max_memory
    per_sample = baseline_bytes_per_sample(stack, n_steps, x.element_size()) + table_bytes_per_sample(stack, n_steps)
    # The tables are sized from the budget even when the whole baseline is given (it is sliced per chunk).
    samples = max(1, min(n_samples, budget // 2 // per_sample))
    from .batched import _progress_bar

    bar = _progress_bar(n_rows, progress)
    try:
        _run_chunks(stack, x, plan, baseline, budget, samples, recompute, tight, recomputed, outputs, tie, bar,
                    columns)
    finally:
        bar.close()
    return outputs, tie  # each piece's run_event already left NaN in the columns it did not compute


def _run_chunks(stack, x, plan, baseline, budget, samples, recompute, tight, recomputed, outputs, tie, bar,
                columns) -> None:
    """`run_events`'s loop over chunks of samples and pieces of rows, filling ``outputs`` and ``tie``."""
    n_samples = x.shape[0]
    order = torch.argsort(plan.sample, stable=True)
    bounds = torch.searchsorted(plan.sample[order], torch.arange(0, n_samples + samples, samples).clamp(max=n_samples))
    for chunk, start in enumerate(range(0, n_samples, samples)):
        lo, hi = int(bounds[chunk]), int(bounds[chunk + 1])
        if lo == hi:
            continue
        picked = order[lo:hi]
        chunk_x = x[start:start + samples]
        chunk_baseline: Baseline
        if baseline is None:
            recorded_forward = stack_forward(stack, chunk_x, record=True)
            assert isinstance(recorded_forward, tuple)
            chunk_baseline = recorded_forward[1]
        elif samples == n_samples:
            chunk_baseline = baseline
        else:
            chunk_baseline = _slice(baseline, start, start + samples)
        sub = select(plan, picked)
        if isinstance(sub, SpikeRemovals):  # samples renumbered into the chunk
            sub = SpikeRemovals(sub.sample - start, sub.timestep, sub.neuron)
        else:
            rank = sub.rank[start:start + samples] if sub.rank.ndim == 2 else sub.rank
            sub = Silencing(sub.layer, sub.sample - start, rank, sub.start, sub.stop)
        if tight:  # anchored on what the naive loop computes, one sample at a time
            chunk_baseline = naive_baseline(stack, chunk_x, chunk_baseline)
        tables = ChunkTables(stack, chunk_x, chunk_baseline, tight=tight, alone_checked=tight)
        # Rows in pieces: each row's events (about two per changed neuron) live until its piece is done.
        piece = max(1, budget // 8 // (24 * 2 * sum(stack.sizes) + 64))
        for first in range(0, len(sub), piece):
            index = torch.arange(first, min(first + piece, len(sub)))
            rows_of = picked[index]
            local = None if recompute is None else (lambda rows, rows_of=rows_of: recompute(rows_of[rows]))
            redo = torch.zeros(len(index), dtype=torch.bool)
            outputs[rows_of], tie[rows_of] = run_event(stack, chunk_x, chunk_baseline, select(sub, index),
                                                       recompute=local, tables=tables, recomputed=redo,
                                                       columns=None if columns is None else columns[rows_of])
            if recomputed is not None:
                recomputed[rows_of] = redo
            bar.update(len(index))
