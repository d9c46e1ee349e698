"""An independent plain loop through a NIR graph: the brute-force reference for `from_nir`.

Nothing of sc-neurocore is in it. Every NIR node is a small `nn.Module` (so a brute-force silencing hook
can zero a neuron's output), called once per timestep in the order of the graph's edges: a node sums
what its input edges carry, this step's value for a feed-forward edge and the previous step's for a
recurrent one (before the first step, every node's resting output). The node equations are the ones
`sc_neurocore.adapters.nir` documents (forward Euler, `dt / tau` computed once as `dt * (1 / tau)`, the
spike's reset in the step that fires it), written out again here from the NIR fields.
"""

from __future__ import annotations

import nir
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _t(value) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach().to(torch.float32).clone()
    return torch.tensor(np.array(value), dtype=torch.float32)


class _Node(nn.Module):
    """One NIR node: `forward(x)` is one timestep; `rest(like)` is its output before the first step."""

    spiking = True

    def reset(self) -> None:
        pass

    def rest(self, like: Tensor | None) -> Tensor | None:
        return None


class _Map(_Node):
    def __init__(self, node) -> None:
        super().__init__()
        self.node = node
        self.kind = type(node).__name__

    def forward(self, x: Tensor) -> Tensor:
        node, kind = self.node, self.kind
        if kind == "Affine":
            return F.linear(x, _t(node.weight), _t(node.bias))
        if kind == "Linear":
            return F.linear(x, _t(node.weight))
        if kind == "Scale":
            return x * _t(node.scale)
        if kind in ("Conv1d", "Conv2d"):
            spatial = 1 if kind == "Conv1d" else 2
            pad = node.padding if isinstance(node.padding, str) else _pair(node.padding, spatial)
            conv = F.conv1d if spatial == 1 else F.conv2d
            return conv(x, _t(node.weight), _t(node.bias), _pair(node.stride, spatial), pad,
                        _pair(node.dilation, spatial), int(node.groups))
        if kind in ("SumPool2d", "AvgPool2d"):
            divisor = 1 if kind == "SumPool2d" else None
            return F.avg_pool2d(x, _pair(node.kernel_size, 2), _pair(node.stride, 2), _pair(node.padding, 2),
                                False, True, divisor)
        if kind == "Flatten":
            per_sample = x.ndim - 1
            start = node.start_dim % per_sample
            end = node.end_dim % per_sample
            return x.flatten(start + 1, end + 1)
        raise NotImplementedError(kind)

    def rest(self, like):
        return None if like is None else self(like)


def _pair(value, spatial: int) -> tuple[int, ...]:
    array = np.asarray(value).reshape(-1)
    return tuple(int(v) for v in array) if array.size > 1 else (int(array[0]),) * spatial


class _Neuron(_Node):
    """LIF, CubaLIF, LI, CubaLI, IF, I: forward Euler."""

    def __init__(self, node, dt: float) -> None:
        super().__init__()
        self.kind = type(node).__name__
        self.spiking = self.kind in ("LIF", "CubaLIF", "IF")
        self.cuba = self.kind.startswith("Cuba")
        self.leaky = self.kind not in ("IF", "I")
        self.r = _t(node.r)
        if self.leaky:
            self.factor = dt * (1 / _t(node.tau_mem if self.cuba else node.tau))
            self.v_leak = _t(node.v_leak)
        else:
            self.factor = dt * self.r
            self.v_leak = torch.zeros(())
        if self.cuba:
            self.syn_factor = dt * (1 / _t(node.tau_syn))
            self.w_in = _t(node.w_in)
        if self.spiking:
            self.v_th, self.v_reset = _t(node.v_threshold), _t(node.v_reset)
        self.v = self.i = None

    def reset(self) -> None:
        self.v = self.i = None

    def forward(self, x: Tensor) -> Tensor:
        if self.v is None:
            self.v = torch.zeros_like(x) + self.v_leak
            self.i = torch.zeros_like(x)
        drive = x
        if self.cuba:
            self.i = self.i + self.syn_factor * (self.w_in * x - self.i)
            drive = self.i
        if self.leaky:
            v = self.v + self.factor * ((self.v_leak - self.v) + self.r * drive)
        else:
            v = self.v + self.factor * drive
        if not self.spiking:
            self.v = v
            return v
        fired = v > self.v_th
        self.v = torch.where(fired, self.v_reset.expand_as(v), v)
        return fired.to(x.dtype)

    def rest(self, like):
        if like is None:
            return None
        return torch.zeros_like(like) if self.spiking else torch.zeros_like(like) + self.v_leak


class _Threshold(_Node):
    def __init__(self, node) -> None:
        super().__init__()
        self.threshold = _t(node.threshold)

    def forward(self, x: Tensor) -> Tensor:
        return (x > self.threshold).to(x.dtype)

    def rest(self, like):
        return None if like is None else torch.zeros_like(like)


class _Delay(_Node):
    def __init__(self, node, dt: float, spiking: bool) -> None:
        super().__init__()
        self.steps = np.rint(np.asarray(node.delay, dtype=np.float64) / dt).astype(int)
        self.spiking = spiking
        self.past: list[Tensor] = []

    def reset(self) -> None:
        self.past = []

    def forward(self, x: Tensor) -> Tensor:
        self.past.insert(0, x)
        out = torch.zeros_like(x)
        steps = np.broadcast_to(self.steps, x.shape[1:])
        for index in np.ndindex(*steps.shape):
            d = int(steps[index])
            if d < len(self.past):
                out[(slice(None), *index)] = self.past[d][(slice(None), *index)]
        return out

    def rest(self, like):
        return None if like is None else torch.zeros_like(like)


def _inline(graph, prefix, nodes, edges):
    ports = {}
    for name, node in graph.nodes.items():
        full = prefix + name
        if isinstance(node, nir.NIRGraph):
            inner_in, inner_out = _inline(node, full + ".", nodes, edges)
            ports[name] = (inner_in, inner_out)
        else:
            nodes[full] = node
    for source, target in graph.edges:
        source = ports[source][1] if source in ports else prefix + source
        target = ports[target][0] if target in ports else prefix + target
        edges.append((source, target))
    inputs = [prefix + n for n, v in graph.nodes.items() if isinstance(v, nir.Input)]
    outputs = [prefix + n for n, v in graph.nodes.items() if isinstance(v, nir.Output)]
    return inputs[0], outputs[0]


class NirReference(nn.Module):
    """`NirReference(graph, dt, input_shape)(spikes (B, T, N)) -> (B, C)`: spike counts, or the maximum
    over time of a non-spiking output; `.nodes[name]` is each node's module (named as in the graph)."""

    def __init__(self, graph, dt: float, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.graph = graph
        nodes: dict = {}
        edges: list = []
        self.input, self.output = _inline(graph, "", nodes, edges)
        self.input_shape = tuple(input_shape)
        self.preds = {name: [s for s, t in edges if t == name] for name in nodes}
        order, seen, back = [], set(), set()

        def visit(name, stack):
            seen.add(name)
            stack.add(name)
            for s, t in edges:
                if s == name:
                    if t in stack:
                        back.add((s, t))
                    elif t not in seen:
                        visit(t, stack)
            stack.discard(name)
            order.append(name)

        visit(self.input, set())
        self.order = order[::-1]
        self.back = back
        modules, spiking = {}, {self.input: True}
        for name in self.order:
            node = nodes[name]
            kind = type(node).__name__
            if isinstance(node, (nir.Input, nir.Output)):
                continue
            if kind in ("Threshold",):
                modules[name] = _Threshold(node)
            elif kind == "Delay":
                ins = [s for s in self.preds[name] if (s, name) not in back]
                modules[name] = _Delay(node, dt, all(spiking.get(s, False) for s in ins))
            elif kind in ("LIF", "CubaLIF", "LI", "CubaLI", "IF", "I"):
                modules[name] = _Neuron(node, dt)
            else:
                modules[name] = _Map(node)
            spiking[name] = modules[name].spiking if not isinstance(modules[name], _Map) else False
        self.names = {name: name.replace(".", "_") for name in modules}
        self.modules_ = nn.ModuleDict({self.names[n]: m for n, m in modules.items()})
        self.nodes = {name: self.modules_[key] for name, key in self.names.items()}
        out_pred = self.preds[self.output][0]
        while out_pred not in self.nodes:  # a nested graph's output port
            out_pred = self.preds[out_pred][0]
        self.spiking_output = isinstance(self.nodes[out_pred], (_Threshold, _Delay, _Neuron)) and \
            self.nodes[out_pred].spiking

    def _sweep(self, x: Tensor, previous: dict | None) -> dict:
        values = {self.input: x}
        for name in self.order:
            if name == self.input:
                continue
            parts = []
            for source in self.preds[name]:
                value = previous.get(source) if (source, name) in self.back and previous is not None else \
                    values.get(source)
                if value is not None:
                    parts.append(value)
            total = parts[0]
            for part in parts[1:]:
                total = total + part
            if name == self.output or name not in self.nodes:  # the output, a nested graph's ports
                values[name] = total
            elif previous is None:  # the resting pass
                values[name] = self.nodes[name].rest(total) if not isinstance(self.nodes[name], _Map) else \
                    self.nodes[name](total)
            else:
                values[name] = self.nodes[name](total)
        return values

    def forward(self, spikes: Tensor) -> Tensor:
        batch, steps = spikes.shape[:2]
        x = spikes.to(torch.float32).reshape(batch, steps, *self.input_shape)
        for module in self.nodes.values():
            module.reset()
        with torch.no_grad():
            previous = self._sweep(torch.zeros_like(x[:, 0]), None)
            outputs = []
            for t in range(steps):
                previous = self._sweep(x[:, t], previous)
                outputs.append(previous[self.output].reshape(batch, -1))
        stacked = torch.stack(outputs)
        return stacked.sum(0) if self.spiking_output else stacked.amax(0)


def silence_hook(module: nn.Module, neuron: int):
    """Zero neuron `neuron` (flat index within a sample) of a reference node's output at every step."""
    def hook(mod, args, output):
        out = output.clone()
        out.reshape(out.shape[0], -1)[:, neuron] = 0
        return out
    return module.register_forward_hook(hook)

