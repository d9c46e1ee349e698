"""Lowering a traced `ModelGraph` to what the compiled executors run: a `CompiledStack`.

Each segment of the graph becomes one `CompiledLayer`:

- its maps (`Dense`, `MatMul`, `Conv`, `Pool`, `Scale`, `BatchNorm`, `Reshape`, `Identity`: linear or affine)
  are applied to the layer's input exactly as the graph applies them (`ModelGraph._apply_maps`, the same ops
  on the same row layout), so the stack's forward reproduces the graph's bit for bit;
- their composition as one `(n_in, n_out)` matrix is the layer's `weight`: row `i` is what one unit of input
  `i` adds to the currents (a Linear's row, a convolution's kernel patch scattered into the output, pooled),
  which is what the event and incremental executors push as rank-k updates; the affine part is `bias`;
- one real map per segment (a `Dense`, `MatMul` or `Conv`, with reshapes and identities around it): then the
  matrix's absolute values bound every partial sum of the framework's op, which the event engine's rounding
  bound needs.

A segment with a selection (`MaxPool`: which input wins depends on the others), a chain of real maps (a
convolution then pooling) or a recurrent neuron does not lower yet; the graph then runs on the generic
batched path, exactly.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import weakref
from typing import Any

import torch
from torch import Tensor

from ..graph import Conv, Dense, Identity, MatMul, ModelGraph, Reshape, Segment
from .incremental import READOUTS, CompiledLayer, CompiledStack, never_decides

#: Above this many matrix entries a segment's composed matrix is not materialised (the graph runs batched).
MAX_DENSE_ENTRIES = 2**26
#: graph -> (what its lowering depends on, the lowered stack): lowered once, again when a map's tensor changes.
_lowered: weakref.WeakKeyDictionary[ModelGraph, tuple[tuple, CompiledStack | None]] = weakref.WeakKeyDictionary()


def to_compiled_stack(graph: ModelGraph) -> CompiledStack | None:
    """The compiled stack of ``graph``, or ``None`` when a segment cannot be lowered (see the module docstring).

    Structure only: the executors still check, once per input shape, that the stack reproduces the graph bit
    for bit (`sc_neurocore.engine.recorded`).

    Example:
        >>> import torch
        >>> from sc_neurocore.dynamics import LIFParameters, lif_initial_state, lif_step
        >>> from sc_neurocore.graph import Dense, ModelGraph, NeuronNode, Segment
        >>> hidden = NeuronNode("1", "leaky", (3,), lif_step, LIFParameters(0.9, 1.0), lif_initial_state)
        >>> graph = ModelGraph((4,), [Segment((Dense((4,), (3,), torch.ones(3, 4)),), hidden)], "count")
        >>> to_compiled_stack(graph).sizes
        [3]
    """
    if not isinstance(graph, ModelGraph) or graph.readout not in READOUTS:
        return None
    key = _maps_key(graph)
    known = _lowered.get(graph)
    if known is not None and known[0] == key:
        return known[1]
    stack = _lower(graph)
    _lowered[graph] = (key, stack)
    return stack


def _maps_key(graph: ModelGraph) -> tuple:
    """What the lowering reads of ``graph``: every tensor of its maps, by storage and version counter (an
    in-place change or a new tensor makes a new key), and every other field's value."""
    def field(value: Any) -> Any:
        return (value.data_ptr(), value._version, value.dtype, tuple(value.shape)) if isinstance(value, Tensor) \
            else repr(value)

    return tuple(tuple(sorted((name, field(value)) for name, value in vars(linear_map).items()))
                 for segment in graph.segments for linear_map in segment.maps)


def _lower(graph: ModelGraph) -> CompiledStack | None:
    layers = []
    for index, segment in enumerate(graph.segments):
        layer = _lower_segment(graph, segment, last=index == len(graph.segments) - 1, fresh=index > 0)
        if layer is None:
            return None
        layers.append(layer)
    return CompiledStack(tuple(layers), tuple(segment.neuron.name for segment in graph.segments), graph.readout)


def _lower_segment(graph: ModelGraph, segment: Segment, last: bool, fresh: bool) -> CompiledLayer | None:
    neuron = segment.neuron
    if neuron.recurrent is not None or neuron.feedback is not None or (not neuron.spiking and not last):
        return None
    if not segment.maps or any(not linear_map.linear for linear_map in segment.maps):
        return None
    n_in = segment.maps[0].n_in
    n_out = math.prod(neuron.shape)
    if n_in * n_out > MAX_DENSE_ENTRIES:
        return None
    composed = _composed(segment)
    if composed is None:
        return None
    weight, bias = composed
    real = [linear_map for linear_map in segment.maps if not isinstance(linear_map, (Identity, Reshape))]
    if len(real) != 1 or not isinstance(real[0], (Dense, MatMul, Conv)):
        # A chain (conv then pooling, an affine step) sums intermediate values larger than the composed
        # matrix shows, which the event engine's rounding bound does not yet cover: run it batched.
        return None
    extra = 0
    shape = neuron.shape
    return CompiledLayer(weight, bias, neuron.step, neuron.params,
                         functools.partial(_flat_initial_state, initial_state=neuron.initial_state, shape=shape),
                         functools.partial(_segment_current, graph=graph, segment=segment, fresh=fresh),
                         neuron.decision if neuron.spiking else never_decides, extra)


def _composed(segment: Segment) -> tuple[Tensor, Tensor | None] | None:
    """``(weight (n_in, n_out), bias (n_out,) or None)`` of the segment's maps, in their dtype."""
    first = segment.maps[0]
    reference = next((m._reference() for m in segment.maps if m._reference().is_floating_point()), None)
    if reference is None:
        return None
    dtype, device = reference.dtype, reference.device
    with torch.no_grad():
        zero = torch.zeros(1, *first.in_shape, dtype=dtype, device=device)
        for linear_map in segment.maps:
            zero = linear_map.forward(zero)
        offset = zero.reshape(-1)
        # The linear part: every map without its constant, applied to the unit inputs.
        unit = torch.eye(first.n_in, dtype=dtype, device=device).reshape(first.n_in, *first.in_shape)
        for linear_map in segment.maps:
            unit = _without_constant(linear_map).forward(unit)
    weight = unit.reshape(first.n_in, -1).contiguous()
    bias = offset if bool((offset != 0).any()) else None
    return weight, bias


def _without_constant(linear_map):
    """The map with its additive constant removed (a bias, an affine shift), for its linear part."""
    fields = {f.name for f in dataclasses.fields(linear_map)} if dataclasses.is_dataclass(linear_map) else set()
    changes = {name: None for name in ("bias",) if name in fields and getattr(linear_map, name) is not None}
    if "running_mean" in fields and isinstance(linear_map.running_mean, Tensor):  # BatchNorm's shift
        changes["running_mean"] = torch.zeros_like(linear_map.running_mean)
    return dataclasses.replace(linear_map, **changes) if changes else linear_map


def _flat_initial_state(current: Tensor, *, initial_state, shape):
    """The neuron's resting state for a flat ``(B, n)`` current (the stack keeps every layer flat)."""
    state = initial_state(current.reshape(current.shape[0], *shape))
    return type(state)(*(field.reshape(current.shape[0], -1) for field in state))


def _segment_current(spikes: Tensor, *, graph: ModelGraph, segment: Segment, fresh: bool) -> Tensor:
    """The segment's input current for flat spikes ``(B, T, n_in)`` (or one step ``(B, n_in)``), computed by
    the graph's own map loop on its time-first layout (``fresh`` as the graph passes it: every segment but the
    first), flat ``(B, T, n_out)``."""
    single = spikes.ndim == 2
    x = spikes[:, None] if single else spikes
    batch, steps = x.shape[:2]
    time_first = x.transpose(0, 1).reshape(steps, batch, *segment.maps[0].in_shape)
    current = graph._apply_maps(segment, time_first, fresh=fresh).reshape(steps, batch, -1).transpose(0, 1)
    return current[:, 0] if single else current
