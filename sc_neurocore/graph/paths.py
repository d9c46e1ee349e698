r"""Weight paths through a model graph, without autograd: what `SpikeAttributor` attributes through.

The linear rule's path vector of output neuron $k$ is the adjoint of the whole network's linear part
applied to the unit vector $e_k$: with the segments' maps $M_1 .. M_L$ (neurons counted as identity),

$$p = M_1^\top M_2^\top \cdots M_L^\top e_k,$$

which for dense layers is $W_{\mathrm{eff}}[:, k]$ with $W_{\mathrm{eff}} = W_1 W_2 \cdots W_L$. A
convolution contributes its transposed convolution, a pooling layer its adjoint, and a max pool routes
through the argmax recorded in one forward pass, so its paths depend on the timestep. The gated rule
multiplies the signal after each neuron layer by that layer's gate $g_l[t] \in [0, 1]$:

$$v_L[t] = g_L[t] \odot e_k, \qquad v_{l-1}[t] = g_{l-1}[t] \odot M_l^\top v_l[t], \qquad p[t] = M_1^\top v_1[t].$$

A recurrent neuron layer has paths of every length through its own recurrence; the one-pass rule does not
count them, so graphs with recurrence are refused with that reason.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .maps import MaxPool
from .model import ModelGraph


def has_selections(graph: ModelGraph) -> bool:
    """Whether any map is a max pool (whose paths need a recorded forward)."""
    return any(isinstance(m, MaxPool) for segment in graph.segments for m in segment.maps)


def check_paths_defined(graph: ModelGraph) -> None:
    """Refuse graphs whose weight paths the one-pass rule does not define (recurrent layers)."""
    recurrent = [segment.neuron.name for segment in graph.segments if segment.neuron.recurrent is not None]
    if recurrent:
        raise ValueError(f"weights: layers {recurrent} are recurrent, and a one-pass weight-path attribution counts "
                         "no paths through a recurrence; use TemporalSaliency or CausalImportance for this model")


def record_argmax(graph: ModelGraph, spikes: Tensor) -> list[list[Tensor]]:
    """For every segment, the argmax of each max pool at every timestep, `(B, T, C, *out)` each.

    Runs the graph's maps on the recorded layer inputs (one forward pass).
    """
    recording = graph.record(spikes)
    steps, batch = spikes.shape[1], spikes.shape[0]
    layer_input = spikes.transpose(0, 1).reshape(steps * batch, *graph.input_shape).to(graph._dtype())
    argmax: list[list[Tensor]] = []
    for segment, layer in zip(graph.segments, recording.layers, strict=True):
        x, found = layer_input, []
        for linear_map in segment.maps:
            if isinstance(linear_map, MaxPool):
                x, index = linear_map.select(x)
                found.append(index.reshape(steps, batch, *index.shape[1:]).transpose(0, 1))
            else:
                x = linear_map.forward(x)
        argmax.append(found)
        layer_input = layer.spikes.transpose(0, 1).reshape(steps * batch, *segment.neuron.shape)
    return argmax


def weight_paths(graph: ModelGraph, targets: Tensor, *, gates: Sequence[Tensor] | None = None,
                 argmax: Sequence[Sequence[Tensor]] | None = None, steps: int | None = None) -> Tensor:
    """The path vector of each sample's target output through the graph's adjoints.

    Args:
        graph: the model graph (no recurrent layer).
        targets: `(B,)` output neuron per sample.
        gates: `None` (linear rule), or one `(B, T, n_l)` gate per neuron layer (gated rule).
        argmax: from `record_argmax`, required when the graph has max pools.
        steps: `T`, when neither gates nor argmax give it.

    Returns:
        `(B, 1, N)` when the paths do not depend on time (linear rule, no max pool), else `(B, T, N)`.

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> from sc_neurocore.adapters.lif_network import lif_network_graph
        >>> w = [torch.randn(6, 4), torch.randn(4, 3)]
        >>> paths = weight_paths(lif_network_graph(LIFNetwork(w)), torch.tensor([2]))
        >>> torch.allclose(paths[0, 0], (w[0] @ w[1])[:, 2])
        True
    """
    check_paths_defined(graph)
    if has_selections(graph) and argmax is None:
        raise ValueError("argmax: the graph has max pools, whose paths follow the recorded argmax; pass "
                         "record_argmax(graph, spikes)")
    timed = gates is not None or argmax is not None
    n_steps = 1
    if timed:
        n_steps = gates[0].shape[1] if gates is not None else (steps or _steps_of(argmax))
    batch = targets.shape[0]
    last = graph.segments[-1].neuron
    dtype = graph._dtype()
    signal = torch.zeros(batch, n_steps, last.size, dtype=dtype, device=targets.device)
    signal[torch.arange(batch), :, targets] = 1
    for index in range(len(graph.segments) - 1, -1, -1):
        segment = graph.segments[index]
        if gates is not None:
            signal = signal * gates[index].to(dtype)
        flat = signal.reshape(batch * n_steps, *segment.neuron.shape)
        pools = list(argmax[index]) if argmax is not None else []
        for linear_map in reversed(segment.maps):
            if isinstance(linear_map, MaxPool):
                route = pools.pop()
                flat = linear_map.adjoint(flat, _broadcast_steps(route, n_steps).reshape(batch * n_steps,
                                                                                          *route.shape[2:]))
            else:
                flat = linear_map.adjoint(flat)
        size = flat[0].numel()
        signal = flat.reshape(batch, n_steps, size)
    return signal


def _steps_of(argmax: Sequence[Sequence[Tensor]] | None) -> int:
    for found in argmax or ():
        for index in found:
            return index.shape[1]
    return 1


def _broadcast_steps(route: Tensor, n_steps: int) -> Tensor:
    return route if route.shape[1] == n_steps else route.expand(route.shape[0], n_steps, *route.shape[2:])


def paths_for(graph: ModelGraph, spikes: Tensor, targets: Tensor, gates: Sequence[Tensor] | None = None) -> Tensor:
    """`weight_paths` for the spikes being attributed: records the max pools' argmax when the graph has any.

    Args:
        graph: the model graph.
        spikes: `(B, T, N)`.
        targets: `(B,)`.
        gates: as for `weight_paths`.

    Returns:
        `(B, 1, N)` or `(B, T, N)` path vectors, in the graph's dtype.

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> from sc_neurocore.adapters.lif_network import lif_network_graph
        >>> graph = lif_network_graph(LIFNetwork([torch.randn(6, 4), torch.randn(4, 3)]))
        >>> paths_for(graph, torch.ones(2, 5, 6), torch.tensor([0, 1])).shape
        torch.Size([2, 1, 6])
    """
    argmax = record_argmax(graph, spikes) if has_selections(graph) else None
    return weight_paths(graph, targets, gates=gates, argmax=argmax, steps=spikes.shape[1])
