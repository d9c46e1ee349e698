"""Tracing: one call of the user's own model, recorded module by module, becomes a `ModelGraph`.

The model runs once, through its adapter and with the user's number of timesteps, with a forward hook on
every leaf module and every neuron layer (modules inside a neuron layer belong to it). The calls are
grouped per module: a module called once per timestep is a per-step map or neuron, a module called once
with all timesteps is a whole-sequence one. Their first-call order is the chain, and the chain is
trusted only where the data flow proves it: each module's input must be the previous module's output
(the same storage, or the same values) and the first module's input the model's input. A reshape
between two modules becomes a `Reshape` map. Then each module becomes a node: torch maps through
`torch_map`, neurons through their framework's `neuron_node`.

A model the graph cannot represent (an op between modules that no hook sees, a module of unknown kind,
a branch, a recurrence across layers) raises `Untraceable` with the reason. The caller then verifies any
graph it got against the model's own forward before using it (`HookedModel.graph_for`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ..graph.maps import LinearMap, Reshape
from ..graph.model import ModelGraph, Segment
from ..graph.neurons import NeuronNode
from .torch_maps import Untraceable, torch_map

#: What a framework's `neuron_node` gives: the node, or `(pre_maps, node)` for a layer that applies its own
#: input weights first (the maps run per step in front of the node).
MadeNode = NeuronNode | tuple[tuple[LinearMap, ...], NeuronNode]


class Call(NamedTuple):
    """One recorded call of a module: its input and the tensor it emitted (spikes, for a neuron)."""

    name: str
    module: nn.Module
    input: Tensor
    output: Tensor


class Traced(NamedTuple):
    """A module of the chain and how it was called.

    Attributes:
        name, module: as in `model.named_modules()`.
        neuron: whether it is a neuron layer.
        whole_sequence: called once with all timesteps (else once per timestep).
        inputs, outputs: time-first `(T, B, *shape)` views of what it received and emitted.
    """

    name: str
    module: nn.Module
    neuron: bool
    whole_sequence: bool
    inputs: Tensor
    outputs: Tensor


def record_calls(module: nn.Module, neurons: Mapping[str, Callable[..., Tensor]],
                 run: Callable[[list[tuple[nn.Module, Callable]]], Any]) -> list[Call]:
    """Every call of a leaf module or neuron layer during `run(hooks)`, in call order.

    Args:
        module: the user's model.
        neurons: `{name: emitted(module, args, output) -> spikes}` for its neuron layers.
        run: runs the model once with the given `(module, forward hook)` pairs registered.
    """
    inside_neuron = {id(m) for name, n in module.named_modules() if name in neurons
                     for m in n.modules() if m is not n}
    calls: list[Call] = []

    def hook(name: str, emitted: Callable[..., Tensor] | None):
        def record(mod: nn.Module, args: tuple, output: Any) -> None:
            first = args[0] if args else None
            out = emitted(mod, args, output) if emitted is not None else output
            if isinstance(first, Tensor) and isinstance(out, Tensor):
                calls.append(Call(name, mod, first, out))
            else:
                calls.append(Call(name, mod, torch.empty(0), torch.empty(0)))
        return record

    hooks = []
    for name, sub in module.named_modules():
        if id(sub) in inside_neuron or not name:
            continue
        if name in neurons:
            hooks.append((sub, hook(name, neurons[name])))
        elif not any(True for _ in sub.children()):
            hooks.append((sub, hook(name, None)))
    run(hooks)
    return calls


def _time_first(tensor: Tensor, steps: int, batch: int, time_first: bool) -> Tensor | None:
    """A whole-sequence tensor as `(T, B, *shape)`, or `None` if its leading dimensions are not that."""
    if tensor.ndim >= 2 and tuple(tensor.shape[:2]) == ((steps, batch) if time_first else (batch, steps)):
        return tensor if time_first else tensor.transpose(0, 1)
    if tensor.ndim >= 1 and tensor.shape[0] == steps * batch and steps > 1:
        return tensor.reshape(steps, batch, *tensor.shape[1:])
    return None


def _one_step(tensor: Tensor, batch: int) -> Tensor | None:
    """One timestep `(B, *shape)` of a per-step call: the tensor itself, or a `(1, B, *shape)` slice
    (Norse stacks with sequence-level layers are fed one-step chunks) without its time axis."""
    if tensor.ndim >= 1 and tensor.shape[0] == batch:
        return tensor
    if tensor.ndim >= 2 and tuple(tensor.shape[:2]) == (1, batch):
        return tensor[0]
    return None


def group_calls(calls: list[Call], steps: int, batch: int, time_first: bool,
                neuron_names: set[str]) -> list[Traced]:
    """The chain of modules, each with its time-first inputs and outputs (see the module docstring)."""
    order: list[str] = []
    by_name: dict[str, list[Call]] = {}
    for call in calls:
        if call.name not in by_name:
            order.append(call.name)
            by_name[call.name] = []
        by_name[call.name].append(call)
    chain = []
    for name in order:
        group = by_name[name]
        first = group[0]
        if first.input.numel() == 0 and first.output.numel() == 0:
            raise Untraceable(f"module {name!r} ({type(first.module).__name__}) was called without a tensor input "
                              "or output")
        step_inputs = [_one_step(c.input, batch) for c in group]
        step_outputs = [_one_step(c.output, batch) for c in group]
        if len(group) == steps and not any(x is None for x in (*step_inputs, *step_outputs)):
            inputs = torch.stack(step_inputs)  # type: ignore[arg-type]
            outputs = torch.stack(step_outputs)  # type: ignore[arg-type]
            whole = False
        elif len(group) == 1:
            sequence_in = _time_first(first.input, steps, batch, time_first)
            sequence_out = _time_first(first.output, steps, batch, time_first)
            if sequence_in is None or sequence_out is None:
                raise Untraceable(f"module {name!r} ({type(first.module).__name__}) was called once with input "
                                  f"{tuple(first.input.shape)} and output {tuple(first.output.shape)}, which are "
                                  f"neither one timestep of {batch} samples nor all {steps} timesteps")
            inputs, outputs, whole = sequence_in, sequence_out, True
        else:
            raise Untraceable(f"module {name!r} ({type(first.module).__name__}) was called {len(group)} times in a "
                              f"forward pass of {steps} timesteps; the graph needs each module called once per "
                              "timestep or once per sequence")
        chain.append(Traced(name, first.module, name in neuron_names, whole, inputs, outputs))
    return chain


def _same_flow(produced: Tensor, received: Tensor) -> bool:
    """Whether `received` is `produced` (values equal, any per-sample shape of the same size)."""
    if produced.shape[:2] != received.shape[:2] or produced[0, 0].numel() != received[0, 0].numel():
        return False
    return bool(torch.equal(produced.reshape(produced.shape[0], produced.shape[1], -1),
                            received.reshape(received.shape[0], received.shape[1], -1)))


def build_graph(chain: list[Traced], model_inputs: Tensor, *, readout: str,
                neuron_node: Callable[[str, nn.Module, tuple[int, ...]], MadeNode],
                input_shape: tuple[int, ...], source: str) -> ModelGraph:
    """The `ModelGraph` of a traced chain, after checking its data flow.

    Args:
        chain: from `group_calls`.
        model_inputs: the time-first `(T, B, ...)` input the model received.
        readout: the adapter's readout.
        neuron_node: `neuron_node(name, module, shape)` for the chain's neuron layers, `shape` the
            per-sample shape the layer emits; it returns the node, or `(pre_maps, node)` when the layer
            applies its own input weights first (Norse `LIFRecurrentCell`, `LILinearCell`): maps applied
            per step from the shape it receives to the node's.
        input_shape: the per-timestep input shape.
        source: what the graph was traced from, for messages.
    """
    if not chain:
        raise Untraceable("the model called no module")
    produced = model_inputs.reshape(model_inputs.shape[0], model_inputs.shape[1], *input_shape)
    previous = "the model's input"
    shape = tuple(input_shape)
    segments: list[Segment] = []
    maps: list[LinearMap] = []
    whole: list[bool] = []
    for link in chain:
        if not _same_flow(produced, link.inputs):
            raise Untraceable(f"the input of {link.name!r} ({type(link.module).__name__}) is not the output of "
                              f"{previous}: the forward computes something between them that no module hook sees "
                              "(a functional op, a branch or a sum)")
        in_shape = tuple(link.inputs.shape[2:])
        if in_shape != shape:
            maps.append(Reshape(shape, in_shape))
            whole.append(True)
        out_shape = tuple(link.outputs.shape[2:])
        if link.neuron:
            made = neuron_node(link.name, link.module, out_shape)
            pre, node = made if isinstance(made, tuple) else ((), made)
            if (pre[0].in_shape if pre else out_shape) != in_shape or (pre and pre[-1].out_shape != out_shape):
                raise Untraceable(f"neuron layer {link.name!r} maps shape {in_shape} to {out_shape}")
            maps += pre
            whole += [False] * len(pre)
            segments.append(Segment(tuple(maps), node, tuple(whole)))
            maps, whole = [], []
        else:
            maps.append(torch_map(link.module, in_shape, out_shape))
            whole.append(link.whole_sequence)
        produced, previous, shape = link.outputs, repr(link.name), out_shape
    if maps:
        raise Untraceable(f"the model ends in {previous}, not in a neuron layer: the readout must be a neuron "
                          "layer's activity")
    return ModelGraph(input_shape, segments, readout, source=source)
