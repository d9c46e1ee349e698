r"""NIR graphs as model graphs: `from_nir`.

A NIR graph (`nir.NIRGraph`, or a file `nir.read` reads) says what a network computes in continuous
time; `from_nir(graph, dt=...)` reads it directly as a `ModelGraph` (no tracing: the graph is the
model) under this discretisation, with input $x[t]$ the value of the input over step $t$ of length
$dt$ (a spike is a 1 in its bin):

| NIR node | becomes | per step |
|---|---|---|
| `Affine` | `Dense` | $y[t] = W x[t] + b$ |
| `Linear` | `Dense` (no bias) | $y[t] = W x[t]$ |
| `Scale` | `Scale` | $y[t] = s \odot x[t]$ |
| `Conv1d`, `Conv2d` | `Conv` | the convolution of $x[t]$ (zero padding, `"same"` / `"valid"` as torch) |
| `SumPool2d` | `Pool` (sum) | the sum over each window of $x[t]$ |
| `AvgPool2d` | `Pool` (avg) | the mean over each window, padded zeros counted |
| `Flatten` | `Reshape` | dimensions `start_dim..end_dim` of the per-sample shape merged |
| `LIF`, `CubaLIF`, `LI`, `CubaLI`, `IF`, `I` | a neuron layer | forward Euler, see `sc_neurocore.dynamics.nir_euler` |
| `Threshold` | a neuron layer | $z[t] = H(x[t] - \theta)$ |
| `Delay` | a neuron layer | $y[t] = x[t - \tau/dt]$, delays that are whole multiples of $dt$ only |

In detail, with $\delta = dt/\tau$ and $H(x) = 1$ if $x > 0$ else $0$ (the spike resets in the step
that fires it):

$$\text{LIF:}\quad \tilde v = v[t-1] + \delta\,((v_{leak} - v[t-1]) + R\,x[t]), \quad
z[t] = H(\tilde v - v_{th}), \quad v[t] = (1 - z[t])\,\tilde v + z[t]\,v_{reset}$$

$$\text{CubaLIF:}\quad i[t] = i[t-1] + \delta_{syn}\,(w_{in}\,x[t] - i[t-1]), \text{ then LIF driven by } i[t]$$

$$\text{IF:}\quad \tilde v = v[t-1] + dt\,R\,x[t], \text{ then the LIF threshold and reset;} \qquad
\text{I:}\quad v[t] = v[t-1] + dt\,R\,x[t]$$

`LI` and `CubaLI` are `LIF` and `CubaLIF` without threshold, emitting $v[t]$. States start at rest
($v = v_{leak}$, $i = 0$). So snnTorch's export (which writes $\tau = dt_s/(1-\beta)$, $R = \tau/dt_s$
with $dt_s = 10^{-4}$) read at `dt=1e-4` is $v[t] = \beta v[t-1] + x[t]$ with a reset to $v_{reset}$,
and Norse's `LIFBoxCell` is this LIF with $R = 1$ (see `docs/nir.md` for where the round trips differ).

**Structure.** The `ModelGraph` is a chain, so the graph must be one: one `Input`, one `Output`, and
between them every node with one input and one output edge; nested graphs are inlined. A recurrent
edge into a neuron node (the node's output fed back to itself through maps only, as snnTorch exports
`RLeaky` and `RSynaptic`) is supported: the node receives $x[t] + W(y[t-1])$. Branches, merges,
recurrence through another neuron node, and a chain that does not end in a neuron node are refused
with a `ValueError` naming the node.

**dt.** `dt` is the integration step in the graph's time unit (seconds for the exporters). Left out,
it is read from `graph.metadata["dt"]`, else it is $10^{-4}$ s, the step at which snnTorch's exports
mean what the snnTorch model computes (a warning says so).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import os
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..dynamics import nir_euler
from ..extras import missing_extra
from ..graph.maps import Conv, Dense, LinearMap, Pool, Reshape, Scale
from ..graph.model import ModelGraph, Segment
from ..graph.neurons import NeuronNode
from ..graph.readout import check_readout
from .nir_structure import MAP_TYPES, chain_of

#: The step used when neither `dt=` nor `graph.metadata["dt"]` gives one: snnTorch's export convention.
DEFAULT_DT = 1e-4



def import_nir():
    """`nir`, or an ImportError naming the extra that installs it.

    Example:
        >>> import_nir().__name__
        'nir'
    """
    try:
        import nir
    except ImportError as error:
        raise missing_extra("sc_neurocore.adapters.from_nir needs NIR", "nir") from error
    return nir


def is_nir_graph(value: Any) -> bool:
    """Whether `value` is a `nir.NIRGraph` (without importing NIR if it is not loaded).

    Example:
        >>> is_nir_graph(object())
        False
    """
    import sys

    nir = sys.modules.get("nir")
    return nir is not None and isinstance(value, nir.NIRGraph)


def nir_fingerprint(graph: Any) -> tuple:
    """What a `ModelGraph` built from the NIR graph `graph` depends on: every node's kind and fields (arrays
    by shape, dtype and a digest of their bytes, so an in-place edit counts), nested graphs alike, the
    edges and the metadata. Equal fingerprints: `from_nir` would build the same graph.

    Example:
        >>> import numpy as np, nir
        >>> graph = nir.NIRGraph.from_list(nir.Affine(weight=np.ones((2, 3)), bias=np.zeros(2)))
        >>> before = nir_fingerprint(graph)
        >>> affine = next(node for node in graph.nodes.values() if isinstance(node, nir.Affine))
        >>> affine.weight[0, 0] = 2.0  # edited in place
        >>> nir_fingerprint(graph) == before
        False
    """
    return _fingerprint_value(graph, 0)


def _fingerprint_value(value: Any, depth: int) -> Any:
    if depth > 16:
        raise ValueError("graph: NIR nodes nested more than 16 levels deep")
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value)
        return "array", data.shape, data.dtype.str, hashlib.blake2b(data.tobytes(), digest_size=16).digest()
    if isinstance(value, Tensor):
        return _fingerprint_value(value.detach().cpu().numpy(), depth)
    if isinstance(value, dict):
        return dict, tuple(sorted(((str(key), _fingerprint_value(item, depth + 1)) for key, item in value.items()),
                                  key=lambda pair: pair[0]))
    if isinstance(value, (list, tuple)):
        return type(value), tuple(_fingerprint_value(item, depth + 1) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return type(value), tuple((field.name, _fingerprint_value(getattr(value, field.name), depth + 1))
                                  for field in dataclasses.fields(value))
    return type(value), repr(value)


def from_nir(graph_or_path: Any, *, dt: float | None = None, readout: str | None = None,
             input_shape: Sequence[int] | None = None, dtype: torch.dtype = torch.float32,
             device: torch.device | str = "cpu") -> ModelGraph:
    """A NIR graph as a `ModelGraph`, under the discretisation of the module docstring.

    Args:
        graph_or_path: a `nir.NIRGraph`, or the path of a NIR file (read with `nir.read`). Never modified.
        dt: the integration step (the graph's time unit, seconds for snnTorch and Norse exports); default
            `graph.metadata["dt"]`, else `DEFAULT_DT` with a warning.
        readout: `"count"` (default for a spiking output node), `"rate"`, `"final_membrane"` or
            `"max_membrane"` (default for `LI`, `CubaLI`, `I` outputs).
        input_shape: the per-timestep input shape; default the `Input` node's type (a leading 1 that the
            first node's own input type lacks is an exporter's sample batch and is dropped).
        dtype: the floating dtype of the graph's tensors.
        device: where the graph's tensors live (the spikes it runs on must be there too).

    Returns:
        The `ModelGraph`, a `SpikingModel` (batch-first `(B, T, N)` spikes in, `(B, C)` out). Its neuron
        layers are named as the graph's nodes (nested ones `"outer.inner"`).

    Example:
        >>> import nir, numpy as np, torch
        >>> graph = nir.NIRGraph.from_list(
        ...     nir.Affine(np.full((3, 4), 0.5, np.float32), np.zeros(3, np.float32)),
        ...     nir.LIF(tau=np.full(3, 0.01), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.full(3, 0.3)))
        >>> model = from_nir(graph, dt=1e-3)
        >>> model.neuron_layers
        {'lif': 3}
        >>> model.run(torch.ones(1, 10, 4))
        tensor([[5., 5., 5.]])
    """
    nir = import_nir()
    if isinstance(graph_or_path, (str, os.PathLike)):
        graph_or_path = nir.read(graph_or_path)
    if not isinstance(graph_or_path, nir.NIRGraph):
        raise TypeError(f"graph_or_path: expected a nir.NIRGraph or the path of a NIR file, got "
                        f"{type(graph_or_path).__name__}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype: expected a floating torch dtype, got {dtype!r}")
    try:
        spec = _Spec(dtype, torch.device(device))
    except (RuntimeError, TypeError) as error:
        raise TypeError(f"device: expected a torch device, got {device!r}") from error
    step = _choose_dt(graph_or_path, dt)
    chain, inputs = chain_of(graph_or_path)
    shape = _input_shape(inputs, chain, input_shape)
    segments: list[Segment] = []
    maps: list[LinearMap] = []
    start, spiking = shape, True
    for name, node, loop in chain:
        kind = type(node).__name__
        if kind in MAP_TYPES:
            maps.append(_map(name, node, shape, spec))
            shape = maps[-1].out_shape
            continue
        _check_declared(name, node.input_type, shape, "input")
        recurrent = _recurrence(name, loop, shape, spec) if loop is not None else None
        neuron = _neuron(name, node, shape, step, spec, recurrent, spiking_in=not maps and spiking)
        spiking = neuron.spiking
        segments.append(Segment(tuple(maps), neuron, (False,) * len(maps)))
        maps = []
    if maps:
        last = chain[-1][0]
        raise ValueError(f"graph_or_path: the graph ends in node {last!r} ({type(chain[-1][1]).__name__}), not in a "
                         "neuron node; the readout is a neuron layer's activity")
    if not segments:
        raise ValueError("graph_or_path: the graph has no neuron node")
    if readout is None:
        readout = "count" if segments[-1].neuron.spiking else "max_membrane"
    return ModelGraph(start, segments, check_readout(readout), source=f"NIR graph (dt={step:g})")


class _Spec(NamedTuple):
    """The dtype and device of the graph's tensors."""

    dtype: torch.dtype
    device: torch.device


def _choose_dt(graph: Any, dt: float | None) -> float:
    if dt is None:
        metadata = graph.metadata if isinstance(graph.metadata, dict) else {}
        dt = metadata.get("dt")
        if dt is None:
            warnings.warn(f"from_nir: dt not given and not in graph.metadata['dt']; integrating with dt={DEFAULT_DT:g} "
                          "(snnTorch's export step); pass dt=... to choose", UserWarning, stacklevel=3)
            return DEFAULT_DT
        name = "graph.metadata['dt']"
    else:
        name = "dt"
    if isinstance(dt, bool) or not isinstance(dt, (int, float, np.floating, np.integer)) or not math.isfinite(dt) \
            or dt <= 0:
        raise ValueError(f"{name}: expected a positive finite number (the integration step), got {dt!r}")
    return float(dt)


def _shape_of(declared: Any) -> tuple[int, ...] | None:
    """A NIR type entry as a shape, or `None` when the exporter left it undefined (None or empty)."""
    if declared is None:
        return None
    array = np.asarray(declared)
    if array.size == 0:
        return None
    return tuple(int(size) for size in array.reshape(-1))


def _input_shape(inputs: Any, chain: list, given: Sequence[int] | None) -> tuple[int, ...]:
    if given is not None:
        shape = tuple(int(size) for size in given)
        if not shape or any(size < 1 for size in shape):
            raise ValueError(f"input_shape: expected positive sizes, got {tuple(given)}")
        return shape
    declared = _shape_of(inputs.input_type.get("input")) if isinstance(inputs.input_type, dict) else None
    if declared is None:
        raise ValueError("input_shape: the graph's Input node has no type; pass input_shape=(...)")
    _, first, _ = chain[0]
    wanted = _shape_of(first.input_type.get("input")) if isinstance(first.input_type, dict) else None
    batch = declared[:1] == (1,)
    if wanted is not None and wanted != declared and batch and wanted == declared[1:]:
        return declared[1:]
    spatial = {"Conv1d": 1, "Conv2d": 2}.get(type(first).__name__)
    if wanted is None and spatial is not None and batch and len(declared) == spatial + 2:
        return declared[1:]
    return declared


def _check_declared(name: str, types: Any, shape: tuple[int, ...], port: str) -> None:
    """A node's declared type must be the shape that reaches it (or that shape after an exporter's batch 1)."""
    declared = _shape_of(types.get(port)) if isinstance(types, dict) else None
    if declared is not None and declared != shape and declared != (1, *shape):
        raise ValueError(f"graph_or_path: node {name!r} declares its {port} shape {declared}, but the chain gives it "
                         f"{shape}")


def _tensor(value: Any, spec: _Spec, name: str, field: str) -> Tensor:
    if value is None:
        raise ValueError(f"graph_or_path: node {name!r} has no {field}")
    if isinstance(value, Tensor):
        return value.detach().to(dtype=spec.dtype, device=spec.device, copy=True)
    array = np.array(value)
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"graph_or_path: node {name!r} field {field} is not numeric ({array.dtype})")
    return torch.tensor(array, dtype=spec.dtype, device=spec.device)


def _ints(value: Any, spatial: int) -> tuple[int, ...]:
    array = np.asarray(value).reshape(-1)
    if array.size == 1:
        return (int(array[0]),) * spatial
    return tuple(int(v) for v in array)


def _with_out_shape(name: str, linear_map: LinearMap, node: Any) -> LinearMap:
    """The map with its output shape, found by running it on one zero sample."""
    try:
        reference = linear_map._reference()
        probe = linear_map.forward(reference.new_zeros(1, *linear_map.in_shape))
    except RuntimeError as error:
        raise ValueError(f"graph_or_path: node {name!r} ({type(node).__name__}) cannot take input of shape "
                         f"{linear_map.in_shape}: {error}") from error
    out_shape = tuple(probe.shape[1:])
    _check_declared(name, node.output_type, out_shape, "output")
    return dataclasses.replace(linear_map, out_shape=out_shape)


def _map(name: str, node: Any, shape: tuple[int, ...], spec: _Spec) -> LinearMap:
    """The graph map of one NIR map node fed `shape`."""
    kind = type(node).__name__
    _check_declared(name, node.input_type, shape, "input")
    if kind in ("Affine", "Linear"):
        weight = _tensor(node.weight, spec, name, "weight")
        if weight.ndim != 2 or shape[-1] != weight.shape[1]:
            raise ValueError(f"graph_or_path: node {name!r} ({kind}) has weight {tuple(weight.shape)}, which does not "
                             f"take input of shape {shape}")
        bias = _tensor(node.bias, spec, name, "bias") if kind == "Affine" else None
        return _with_out_shape(name, StepDense(shape, shape, weight, bias), node)
    if kind == "Scale":
        scale = _tensor(node.scale, spec, name, "scale")
        return _with_out_shape(name, Scale(shape, shape, scale), node)
    if kind in ("Conv1d", "Conv2d"):
        spatial = 1 if kind == "Conv1d" else 2
        weight = _tensor(node.weight, spec, name, "weight")
        bias = None if node.bias is None else _tensor(node.bias, spec, name, "bias")
        padding = node.padding if isinstance(node.padding, str) else _ints(node.padding, spatial)
        conv = StepConv(shape, shape, weight, bias, _ints(node.stride, spatial), padding, _ints(node.dilation, spatial),
                    int(node.groups))
        return _with_out_shape(name, conv, node)
    if kind in ("SumPool2d", "AvgPool2d"):
        pool = Pool(shape, shape, _ints(node.kernel_size, 2), _ints(node.stride, 2), _ints(node.padding, 2),
                    "sum" if kind == "SumPool2d" else "avg", True, None)
        return _with_out_shape(name, pool, node)
    # Flatten: start_dim..end_dim of the per-sample shape (NIR types carry no batch dimension).
    start, end = int(node.start_dim), int(node.end_dim)
    start, end = (start + len(shape) if start < 0 else start), (end + len(shape) if end < 0 else end)
    if not 0 <= start <= end < len(shape):
        raise ValueError(f"graph_or_path: node {name!r} (Flatten) flattens dimensions {node.start_dim}..{node.end_dim}"
                         f" of a per-sample shape {shape}")
    out_shape = (*shape[:start], math.prod(shape[start:end + 1]), *shape[end + 1:])
    _check_declared(name, node.output_type, out_shape, "output")
    return Reshape(shape, out_shape)


def _own_buffer(x: Tensor) -> Tensor:
    """`x`, copied into a fresh buffer when it is a view at an offset: a matrix product's rounding can
    depend on where its operand starts in memory (MKL's blocking), so every step's product runs on a
    buffer of its own, as a step-by-step simulation of the graph computes it."""
    return x if x.storage_offset() == 0 and x.is_contiguous() else x.clone(memory_format=torch.contiguous_format)


@dataclasses.dataclass(frozen=True, eq=False)
class StepDense(Dense):
    """`Dense` on a buffer of its own (see `_own_buffer`).

    Example:
        >>> StepDense((2,), (1,), torch.ones(1, 2)).forward(torch.ones(3, 2)[1:])
        tensor([[2.],
                [2.]])
    """

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(_own_buffer(x))


@dataclasses.dataclass(frozen=True, eq=False)
class StepConv(Conv):
    """`Conv` on a buffer of its own (see `_own_buffer`)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(_own_buffer(x))


class _Recurrence:
    """A recurrent edge's maps, applied in order to a layer's previous output."""

    def __init__(self, maps: Sequence[LinearMap]) -> None:
        self.maps = tuple(maps)

    def __call__(self, x: Tensor) -> Tensor:
        for linear_map in self.maps:
            x = linear_map.forward(x)
        return x


def _recurrence(name: str, loop: list, shape: tuple[int, ...], spec: _Spec) -> _Recurrence:
    maps: list[LinearMap] = []
    current = shape
    for map_name, node in loop:
        maps.append(_map(map_name, node, current, spec))
        current = maps[-1].out_shape
    if current != shape:
        raise ValueError(f"graph_or_path: the recurrent edge into node {name!r} returns shape {current}, not the "
                         f"node's {shape}")
    return _Recurrence(maps)


def _param(node: Any, field: str, name: str, shape: tuple[int, ...], spec: _Spec) -> Tensor:
    """A neuron parameter, which must broadcast to the layer's shape."""
    value = _tensor(getattr(node, field, None), spec, name, field)
    try:
        broadcast = torch.broadcast_shapes(value.shape, shape)
    except RuntimeError:
        broadcast = None
    if broadcast != shape:
        raise ValueError(f"graph_or_path: node {name!r} field {field} has shape {tuple(value.shape)}, which does not "
                         f"broadcast to the {shape} it receives")
    return value


def _neuron(name: str, node: Any, shape: tuple[int, ...], dt: float, spec: _Spec,
            recurrent: _Recurrence | None, spiking_in: bool) -> NeuronNode:
    """The neuron layer of one NIR neuron node fed `shape` (equations in the module docstring)."""
    kind = type(node).__name__

    def p(field: str) -> Tensor:
        return _param(node, field, name, shape, spec)

    if kind == "Threshold":
        if recurrent is not None:
            raise ValueError(f"graph_or_path: node {name!r} (Threshold) has a recurrent edge; only integrating "
                             "neuron nodes may")
        return NeuronNode(name, "threshold", shape, nir_euler.threshold_step,
                          nir_euler.ThresholdParameters(p("threshold")), nir_euler.threshold_initial_state,
                          decision=nir_euler.threshold_decision)
    if kind == "Delay":
        if recurrent is not None:
            raise ValueError(f"graph_or_path: node {name!r} (Delay) has a recurrent edge; only integrating neuron "
                             "nodes may")
        return _delay(name, node, shape, dt, spiking_in, spec)
    zeros = torch.zeros((), dtype=spec.dtype, device=spec.device)
    if kind in ("IF", "I"):
        gain, r, v_leak = dt * p("r"), p("r"), zeros
        leaky = False
    else:
        tau = p("tau_mem" if kind.startswith("Cuba") else "tau")
        gain, r, v_leak, leaky = dt * (1 / tau), p("r"), p("v_leak"), True
    syn_gain = w_in = None
    if kind.startswith("Cuba"):
        syn_gain, w_in = dt * (1 / p("tau_syn")), p("w_in")
    spiking = kind in ("LIF", "CubaLIF", "IF")
    threshold = p("v_threshold") if spiking else None
    reset = p("v_reset") if spiking else None
    params = nir_euler.EulerParameters(gain, r, v_leak, threshold, reset, syn_gain, w_in, leaky, recurrent)
    return NeuronNode(name, kind.lower(), shape, nir_euler.euler_step, params,
                      functools.partial(nir_euler.euler_initial_state, params=params), spiking=spiking,
                      feedback="emitted" if recurrent is not None else None,
                      decision=nir_euler.euler_decision if spiking else None)


def _delay(name: str, node: Any, shape: tuple[int, ...], dt: float, spiking: bool, spec: _Spec) -> NeuronNode:
    """A delay line; it emits spikes when it delays spikes (else currents or voltages)."""
    delay = _param(node, "delay", name, shape, _Spec(torch.float64, spec.device))
    steps = torch.round(delay / dt)
    if bool((delay < 0).any()) or not torch.allclose(steps * dt, delay, rtol=1e-6, atol=0):
        shown = delay.reshape(-1)[:4].tolist()
        raise ValueError(f"graph_or_path: node {name!r} (Delay) delays by {shown}..., which is "
                         f"not a whole number of steps of dt={dt:g}; choose a dt that divides every delay")
    steps = steps.to(torch.int64)
    params = nir_euler.DelayParameters(steps, int(steps.max()) if steps.numel() else 0)
    return NeuronNode(name, "delay", shape, nir_euler.delay_step, params,
                      functools.partial(nir_euler.delay_initial_state, params=params), spiking=spiking)
