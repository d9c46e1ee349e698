r"""Replaying a few perturbed copies exactly as the naive loop computes them, from one layer on.

The event engine decides almost every spike of a perturbed copy from its float64 estimate. A decision that
lands inside the rounding bound (`sc_neurocore.engine.event_tables.layer_tables`) cannot be taken that way; the
rows holding one are replayed here instead, from the first layer where it happened (every layer below
was decided outside the bound, so that layer's input train is exact).

The naive loop runs the model's own forward on one copy at a time: every layer's current is the layer's
product called on a ``(1, T, n_in)`` input, then the neurons' step function. A replay of ``k`` copies in
one batch would call the product with ``k T`` rows, and a BLAS may round a row differently for a different
row count. So the replay keeps the naive call shape:

* a row of the layer's input that equals the baseline's row keeps the baseline's current (the product of
  the same row, in the same call shape and position, gives the same bits; the event engine's tight test
  rests on the same fact, checked for batches of samples by `layer_tables`);
* the changed rows are packed into ``(1, T, n_in)`` calls, each at its own timestep's position (one
  call holds at most one changed row per timestep), so each is computed as the naive loop computes it
  (a product the framework calls one step at a time gets one call per changed row);
* the step function runs on all ``k`` copies at once (elementwise: the same bits at any batch size;
  compiled for a plain LIF layer, `sc_neurocore.engine.lif_loop`).

The result is then the naive loop's, bit for bit, whatever batch sizes the model's product rounds
differently at.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..graph import Dense
from .incremental import Baseline, CompiledStack, membrane_of, readout_finish, readout_start, readout_step
from .lif_loop import run_neurons


class ChangedRows(NamedTuple):
    """The rows of ``k`` perturbed copies' input to one layer that may differ from the baseline's (any superset
    of those that do: an unchanged row recomputed in its own call shape and place gives the baseline's bits).

    Attributes:
        copy, step: ``(m,)`` LongTensors: row ``r`` is copy ``copy[r]``'s input at step ``step[r]``.
        data: ``(m, n_in)`` those rows.
    """

    copy: Tensor
    step: Tensor
    data: Tensor

    @staticmethod
    def of(train: Tensor, below: Tensor) -> ChangedRows:
        """The rows where the copies' trains ``(k, T, n_in)`` differ from the baseline's ``below``.

        Example:
            >>> import torch
            >>> train = torch.zeros(2, 3, 4); train[1, 2, 0] = 1
            >>> ChangedRows.of(train, torch.zeros(2, 3, 4)).step.tolist()
            [2]
        """
        copy, step = torch.nonzero((train != below.to(train.dtype)).any(dim=2), as_tuple=True)
        return ChangedRows(copy, step, train[copy, step])


def replay_rows(stack: CompiledStack, inputs: Tensor, baseline: Baseline, start: int, samples: Tensor,
                train: Tensor | ChangedRows) -> Tensor:
    """The outputs ``(k, C)`` of ``k`` perturbed copies whose input to layer ``start`` is ``train``.

    Args:
        stack: the compiled stack, whose ops are the model's own.
        inputs: the samples ``(B, T, N)`` (the baseline input of the first layer).
        baseline: the recorded forward of the samples.
        start: the first layer to replay.
        samples: ``(k,)`` the copies' samples (index ``baseline``).
        train: ``(k, T, n_in)`` their exact input train of layer ``start``, or only its rows that differ from
            the baseline's (`ChangedRows`).

    Returns:
        ``(k, C)``, as the model's forward on each copy alone computes them.

    Example:
        >>> import torch
        >>> from sc_neurocore.engine.compile import compile_model
        >>> from sc_neurocore.engine.incremental import stack_forward
        >>> from sc_neurocore.models import LIFNetwork
        >>> net = LIFNetwork([torch.randn(8, 4), torch.randn(4, 2)])
        >>> x = (torch.rand(1, 20, 8) < 0.3).float()
        >>> _, baseline = stack_forward(compile_model(net), x, record=True)
        >>> copy = x.clone(); copy[0, 3] = 0
        >>> replayed = replay_rows(compile_model(net), x, baseline, 0, torch.tensor([0]), copy)
        >>> bool(torch.equal(replayed, net.run(copy)))
        True
    """
    n_steps = inputs.shape[1]
    for index in range(start, len(stack.layers)):
        spikes, membrane = replay_layer(stack, inputs, baseline, index, samples, train)
        train = spikes  # the next layer's input, compared with the baseline's there (narrow: a layer's spikes)
    return readout_finish(stack.readout, _accumulated(stack.readout, spikes, membrane), n_steps)


def replay_layer(stack: CompiledStack, inputs: Tensor, baseline: Baseline, index: int, samples: Tensor,
                 train: Tensor | ChangedRows) -> tuple[Tensor, Tensor]:
    """Layer ``index``'s spikes and membranes ``(k, T, n)`` for ``k`` perturbed copies whose input to it is
    ``train`` ``(k, T, n_in)`` (or only its rows that differ from the baseline's, `ChangedRows`), as the naive
    loop computes them (see the module docstring).

    Example:
        >>> import torch
        >>> from sc_neurocore.engine.compile import compile_model
        >>> from sc_neurocore.engine.incremental import stack_forward
        >>> from sc_neurocore.models import LIFNetwork
        >>> stack = compile_model(LIFNetwork([torch.randn(8, 4), torch.randn(4, 2)]))
        >>> x = (torch.rand(1, 20, 8) < 0.3).float()
        >>> _, baseline = stack_forward(stack, x, record=True)
        >>> spikes, _ = replay_layer(stack, x, baseline, 0, torch.tensor([0]), x)
        >>> bool(torch.equal(spikes, baseline.spikes[0]))
        True
    """
    layer = stack.layers[index]
    current = baseline.currents[index][samples]  # indexing copies
    if isinstance(train, Tensor):
        train = ChangedRows.of(train, (baseline.spikes[index - 1] if index > 0 else inputs)[samples])
    _changed_rows(layer, train, current)
    spikes, states = run_neurons(layer, current)
    return spikes, membrane_of(states)


def _accumulated(readout: str, train: Tensor, membrane: Tensor) -> Tensor:
    """The readout accumulator after the last step, with the forward's bits: 0/1 spike counts are integers
    (any order of the sum is exact), a maximum and a last value are exact; anything else step by step."""
    if readout in ("count", "rate") and bool(((train == 0) | (train == 1)).all()):
        return train.sum(dim=1)
    if readout == "max_membrane":
        return torch.maximum(readout_start(readout, membrane[:, 0]), membrane.amax(dim=1))
    if readout == "final_membrane":
        return membrane[:, -1].clone()
    accumulated = readout_start(readout, train[:, 0])
    for t in range(train.shape[1]):
        accumulated = readout_step(readout, accumulated, train[:, t], membrane[:, t])
    return accumulated


def _per_step(layer) -> bool:
    """Whether the layer's product is called one timestep at a time (`sc_neurocore.engine.compile`'s
    per-step linear, as snnTorch and Norse call ``nn.Linear``, or a traced segment of per-step maps)."""
    from .compile import _per_step_linear
    from .lower import _segment_current

    linear = layer.linear
    if not isinstance(linear, functools.partial):
        return False
    if linear.func is _segment_current:  # a lowered graph segment whose maps all run per step
        return not any(linear.keywords["segment"].whole_sequence)
    return linear.func is _per_step_linear


def _row_current(layer, aligned: bool = False):
    """``(row (n_in,), t) -> (n_out,)``: a per-step layer's product of step ``t``'s input row, by the very calls
    ``layer.current`` makes for that step of one copy's ``(1, T, n_in)`` input, the row at the same place in
    memory: a first layer reads step ``t`` in place, ``t`` rows into its copy's own buffer (a matrix product
    can round differently for a row that starts elsewhere), a later one gets a fresh copy of it, or (``aligned``:
    the rows already lie as a fresh copy would, `as_fresh`) the row itself."""
    from .lower import _segment_current

    linear = layer.linear
    if linear.func is _segment_current:
        maps = linear.keywords["segment"].maps
        fresh = linear.keywords["fresh"]
        shape = (1, *maps[0].in_shape)

        if fresh and aligned and len(maps) == 1 and type(maps[0]) is Dense:
            weight, bias = maps[0].weight, maps[0].bias  # one Linear: its very call, without the loop around it
            return lambda row, t: F.linear(row.view(1, -1), weight, bias)[0]

        def one_row(row: Tensor, t: int) -> Tensor:
            if fresh:
                z = row.reshape(shape) if aligned else row.reshape(shape).clone()
            else:
                z = _in_place_row(row, t).reshape(shape)
            for linear_map in maps:
                z = linear_map.forward(z)
            return z.reshape(-1)
        return one_row
    return lambda row, t: layer.current(_in_place_row(row, t)[None])[0]


def _fresh_rows(layer) -> bool:
    """Whether a per-step layer's product reads each step's row from a fresh copy of it (a lowered graph
    segment after the first: `_row_current`), so that a row's product depends on its bits alone."""
    from .lower import _segment_current

    linear = layer.linear
    return linear.func is _segment_current and bool(linear.keywords["fresh"])


#: Integer dtypes of each float width, to compare rows bit for bit.
_BITS = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def _as_bits(data: Tensor) -> Tensor:
    """``data`` ``(m, n)`` reinterpreted as integers of its width (contiguous): equal rows are equal bits."""
    data = data.contiguous()
    return data.view(_BITS[data.element_size()]) if data.is_floating_point() else data


def distinct_rows(rows: Tensor, hashes: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``(first, inverse)`` for integer ``rows`` ``(m, n)``: ``rows[first]`` holds each distinct row once and
    ``rows[first][inverse]`` is ``rows``. Rows are grouped by a hash (``hashes`` ``(m,)``, if given) and each group
    checked equal to its first row, element by element (a collision falls back to sorting the rows themselves),
    so the grouping is exact.

    Example:
        >>> import torch
        >>> first, inverse = distinct_rows(torch.tensor([[1, 2], [3, 4], [1, 2]]))
        >>> first.tolist(), inverse.tolist()
        ([0, 1], [0, 1, 0])
    """
    m, n = rows.shape
    # Any hash will do: equal rows that hash apart are only computed twice, and a group is checked below.
    if hashes is None:
        weights = torch.rand(n, generator=torch.Generator().manual_seed(n), dtype=torch.float64) + 0.5
        hashes = rows.to(torch.float64) @ weights
    _, inverse = torch.unique(hashes, return_inverse=True)
    first = _leaders(inverse, m)
    if not torch.equal(rows, rows[first][inverse]):  # two distinct rows with one hash: group them exactly
        _, inverse = torch.unique(rows, dim=0, return_inverse=True)
        first = _leaders(inverse, m)
    return first, inverse


def _leaders(inverse: Tensor, m: int) -> Tensor:
    """The first of the ``m`` rows in each group ``inverse`` (``(m,)`` group numbers ``0 ..``)."""
    first = torch.full((int(inverse.max()) + 1 if m else 0,), m, dtype=torch.int64)
    return first.scatter_reduce_(0, inverse, torch.arange(m), reduce="amin")


def _rows_as_fresh(data: Tensor) -> bool:
    """Whether every row of ``data`` ``(m, n)`` lies in memory as a fresh copy of it would: contiguous, from a
    64-byte boundary, each row a whole number of such boundaries long (`sc_neurocore.engine.event_tables.as_fresh`)."""
    from .event_tables import FRESH_ALIGNMENT, as_fresh

    return as_fresh(data) and (data.shape[1] * data.element_size()) % FRESH_ALIGNMENT == 0


def _in_place_row(row: Tensor, t: int) -> Tensor:
    """``row`` at offset ``t * len(row)`` of a buffer of its own, where step ``t`` of one copy's ``(1, T, n)``
    input lies."""
    buffer = row.new_empty((t + 1) * row.numel())
    buffer[t * row.numel():] = row.reshape(-1)
    return buffer[t * row.numel():].view(row.shape)


def _changed_rows(layer, rows: ChangedRows, current: Tensor) -> None:
    """Overwrite ``current[copy, step]`` for each changed row with the layer's product of it, called in
    ``(1, T, n_in)`` shape with the row at its own position ``step``."""
    copies, steps = rows.copy, rows.step
    if len(copies) == 0:
        return
    if _per_step(layer):  # the framework calls the product one step at a time: one row per call, as alone
        data = rows.data
        with torch.no_grad():
            if _fresh_rows(layer):
                # Each row is a fresh copy, so its product depends on its bits alone: each distinct row (bit for
                # bit) is computed once (a hidden layer's changed rows repeat: 2,557 distinct of 8,375 on Norse's
                # tutorial shape).
                leaders, inverse = distinct_rows(_as_bits(data))
                distinct = data[leaders]
                one_row = _row_current(layer, aligned=_rows_as_fresh(distinct))
                computed = torch.stack([one_row(distinct[u], 0) for u in range(len(distinct))])[inverse]
            else:  # each row read in place, at its own step's position in a copy's buffer: one call per row
                one_row = _row_current(layer)
                computed = torch.stack([one_row(data[r], t) for r, t in enumerate(steps.tolist())])
            current[copies, steps] = computed.to(current.dtype)
        return
    # The rank of each changed row among those of its timestep: call ``r`` holds every timestep's r-th one.
    order = np.argsort(steps.numpy(), kind="stable")
    sorted_steps = steps.numpy()[order]
    first = np.searchsorted(sorted_steps, sorted_steps, side="left")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - first
    rank_t = torch.from_numpy(rank)
    n_calls = int(rank.max()) + 1
    with torch.no_grad():
        packed = rows.data.new_zeros((n_calls, current.shape[1], rows.data.shape[1]))
        packed[rank_t, steps] = rows.data
        # One call per packed input, each in the naive loop's (1, T, n_in) shape and a buffer of its own.
        computed = torch.cat([layer.current(packed[call:call + 1].clone()) for call in range(n_calls)])
        current[copies, steps] = computed[rank_t, steps].to(current.dtype)
