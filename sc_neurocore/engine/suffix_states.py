"""Neuron states by rows, for the suffix replay: which dim of each state field holds the rows, and taking,
joining and comparing rows along it.

A neuron layer's state is a tensor or a (named) tuple of them, as its step function returns it. Most keep
the rows first, but a delay line may keep them second, and a field may hold no rows at all (it is shared
by every row). `batch_axes` finds each field's rows' dim from the states of one and two copies of a
sample; a state whose layout cannot be told raises `StateLayoutError`, and the caller runs the model's
full forward instead.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class StateLayoutError(ValueError):
    """A neuron state whose rows' dimension cannot be told (the caller runs the model's full forward)."""


def batch_axes(one: list[list[Any]], two: list[list[Any]]) -> list[Any]:
    """Per layer, the rows' dim of every tensor in its state (``None``: no such dim), from the states of
    one and two copies of a sample at every step; a `StateLayoutError` when a field's shape changes otherwise.

    Args:
        one: ``one[t][layer]``, every layer's state after step ``t`` for one row.
        two: the same for two rows.

    Returns:
        Per layer, the state's structure with each tensor replaced by its rows' dim (or ``None``).

    Example:
        >>> one = [[(torch.zeros(1, 3), torch.zeros(2, 1, 3))]]
        >>> two = [[(torch.zeros(2, 3), torch.zeros(2, 2, 3))]]
        >>> batch_axes(one, two)
        [(0, 1)]
    """
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


def take_rows(state: Any, rows: Tensor | None, axis: Any) -> Any:
    """A fresh copy of ``state``: rows ``rows`` along each tensor's rows' dim ``axis`` (``None``: all rows).

    Example:
        >>> take_rows((torch.arange(6.0).reshape(3, 2),), torch.tensor([2, 0]), (0,))
        (tensor([[4., 5.],
                [0., 1.]]),)
    """
    if isinstance(state, Tensor):
        return state.clone() if rows is None or axis is None else state.index_select(axis, rows)
    split = _fields(state, axis)
    if split is None:
        return state
    fields, axes = split
    return _rebuild(state, [take_rows(field, rows, a) for field, a in zip(fields, axes, strict=True)])


def join_rows(parts: list[Any], axis: Any) -> Any:
    """One state from several, joined along each tensor's rows' dim (a field without rows: the first's).

    Example:
        >>> join_rows([(torch.zeros(1, 2),), (torch.ones(2, 2),)], (0,))[0].shape
        torch.Size([3, 2])
    """
    first = parts[0]
    if isinstance(first, Tensor):
        return first if axis is None else torch.cat(parts, dim=axis)
    split = _fields(first, axis)
    if split is None:
        return first
    _, axes = split
    return _rebuild(first, [join_rows([part[i] for part in parts], a) for i, a in enumerate(axes)])


#: The integer dtype of each floating element size: tensors are compared bit for bit through it.
_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def rows_differ(a: Tensor, b: Tensor, dims: int = 1) -> Tensor:
    """Bool ``a.shape[:dims]``: where ``a`` and ``b`` differ in any bit of the rest of their dims (``-0.0`` and
    ``0.0`` differ, a NaN equals the same NaN). As integers: several times faster than ``(a != b).any``.

    Example:
        >>> rows_differ(torch.tensor([[1.0, 0.0], [1.0, -0.0]]), torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
        tensor([False,  True])
    """
    if a.is_floating_point() and a.element_size() in _BITS:
        a, b = a.view(_BITS[a.element_size()]), b.view(_BITS[b.element_size()])
    differ = torch.ne(a, b).flatten(dims)
    return differ.view(torch.uint8).amax(dims).bool() if differ.shape[dims] else differ.any(dims)


def state_rows_differ(state: Any, other: Any, axis: Any, n_rows: int) -> Tensor:
    """Bool ``(n_rows,)``: the rows where two states of a layer differ in any bit of any field (a field
    without rows, or a value that is no tensor, differs for every row or none).

    Example:
        >>> a, b = (torch.zeros(3, 2), 1), (torch.tensor([[0.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), 1)
        >>> state_rows_differ(a, b, (0, None), 3)
        tensor([False,  True, False])
    """
    if isinstance(state, Tensor):
        if axis is None:
            return torch.full((n_rows,), bool(rows_differ(state.reshape(1, -1), other.reshape(1, -1))[0])
                              if state.shape == other.shape else True, device=state.device)
        return rows_differ(state.movedim(axis, 0), other.movedim(axis, 0))
    split = _fields(state, axis)
    if split is None:
        return torch.full((n_rows,), not (state is other or state == other))
    fields, axes = split
    differ = torch.zeros(n_rows, dtype=torch.bool)
    for field, theirs, field_axis in zip(fields, other, axes, strict=True):
        differ = differ | state_rows_differ(field, theirs, field_axis, n_rows).to(differ.device)
    return differ


def _fields(state: Any, axis: Any) -> tuple[list[Any], list[Any]] | None:
    """A tuple state's fields and their axes (``None``: ``state`` is a leaf)."""
    if not isinstance(state, tuple | list):
        return None
    return list(state), list(axis) if axis is not None else [None] * len(state)


def _rebuild(like: Any, fields: list[Any]) -> Any:
    return type(like)(*fields) if hasattr(like, "_fields") else type(like)(fields)
