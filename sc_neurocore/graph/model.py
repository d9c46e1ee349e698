r"""The timestep-level model graph: a spiking network as stateless maps and neuron layers.

A `ModelGraph` is a chain of `Segment`s. Each segment applies its linear maps (and selections) to the
previous layer's emitted spikes, the input spikes for the first, and feeds the result as input current to
one `NeuronNode`; a neuron may also feed its own previous spikes back through a recurrent map. The last
layer's activity over time becomes the readout. For input spikes $x[t]$ and segments $l = 1 .. L$:

$$I_l[t] = M_l(z_{l-1}[t]), \qquad (z_l[t], S_l[t]) = \mathrm{step}_l(I_l[t], S_l[t-1]), \qquad
y = \mathrm{readout}(z_L, v_L)$$

with $z_0 = x$ and $M_l$ the composition of the segment's maps. The graph is itself a
`SpikingModel` (batch-first `(B, T, N)` in, `(B, C)` out, fresh state on every call, silencing by name),
so every executor and explainer can run it directly.

Maps the framework applied to a whole sequence at once (`whole_sequence`) run here on all `T * B` rows in
one call too, and per-step maps one step at a time, so every op sees the shapes the framework's op saw
and rounds the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from ..protocol import LayerRecord, Recording
from .maps import Dense, Identity, LinearMap, MatMul, Reshape
from .neurons import NeuronNode
from .readout import MEMBRANE_READOUTS, apply_readout, check_readout


class Segment(NamedTuple):
    """The maps in front of one neuron layer, and the layer.

    Attributes:
        maps: applied in order to the previous layer's emitted spikes.
        neuron: the neuron layer they feed.
        whole_sequence: per map, whether the framework applied it to all timesteps in one call.
    """

    maps: tuple[LinearMap, ...]
    neuron: NeuronNode
    whole_sequence: tuple[bool, ...] = ()


class ModelGraph:
    """A traced spiking network (see the module docstring), usable wherever a `SpikingModel` is.

    Args:
        input_shape: the per-timestep input shape, e.g. `(784,)` or `(1, 28, 28)`.
        segments: the segments, input side first.
        readout: one of `sc_neurocore.graph.readout.READOUTS`.
        source: what the graph was traced from, for messages (e.g. `"snntorch Sequential"`).

    Example:
        >>> import torch
        >>> from sc_neurocore.dynamics import LIFParameters, lif_initial_state, lif_step
        >>> from sc_neurocore.graph import Dense, ModelGraph, NeuronNode, Segment
        >>> hidden = NeuronNode("1", "leaky", (3,), lif_step, LIFParameters(0.9, 1.0), lif_initial_state)
        >>> graph = ModelGraph((4,), [Segment((Dense((4,), (3,), torch.ones(3, 4)),), hidden)], "count")
        >>> graph.run(torch.ones(2, 5, 4))
        tensor([[5., 5., 5.],
                [5., 5., 5.]])
    """

    def __init__(self, input_shape: Sequence[int], segments: Sequence[Segment], readout: str = "count", *,
                 source: str = "model graph") -> None:
        self.input_shape = tuple(int(size) for size in input_shape)
        self.segments = tuple(segment if len(segment.whole_sequence) == len(segment.maps)
                              else segment._replace(whole_sequence=(False,) * len(segment.maps))
                              for segment in segments)
        if not self.segments:
            raise ValueError("segments: a model graph needs at least one neuron layer")
        self.readout = check_readout(readout)
        self.source = source
        shape = self.input_shape
        for segment in self.segments:
            for linear_map in segment.maps:
                if linear_map.in_shape != shape:
                    raise ValueError(f"segments: map {type(linear_map).__name__} takes {linear_map.in_shape} but "
                                     f"receives {shape}")
                shape = linear_map.out_shape
            if segment.neuron.shape != shape:
                raise ValueError(f"segments: neuron layer {segment.neuron.name!r} has shape {segment.neuron.shape} "
                                 f"but receives {shape}")
            shape = segment.neuron.shape
        last = self.segments[-1].neuron
        if not last.spiking and self.readout not in MEMBRANE_READOUTS:
            raise ValueError(f"readout: the output layer {last.name!r} is a leaky integrator and emits no spikes, "
                             f"so {self.readout!r} is meaningless; use 'max_membrane' or 'final_membrane'")
        names = [segment.neuron.name for segment in self.segments]
        if len(set(names)) != len(names):
            raise ValueError(f"segments: neuron layer names must be unique, got {names}")

    # -- SpikingModel protocol ------------------------------------------------------------------------
    @property
    def neuron_layers(self) -> dict[str, int]:
        """Ordered `{layer name: number of neurons}`, input side first."""
        return {segment.neuron.name: segment.neuron.size for segment in self.segments}

    @property
    def n_inputs(self) -> int:
        """Number of input values per timestep."""
        return math.prod(self.input_shape)

    @property
    def n_outputs(self) -> int:
        """`C`, the number of readout values per sample."""
        return self.segments[-1].neuron.size

    @property
    def neurons(self) -> tuple[NeuronNode, ...]:
        """The neuron layers, input side first."""
        return tuple(segment.neuron for segment in self.segments)

    def run(self, spikes: Tensor, silence: Mapping[str, Tensor] | None = None) -> Tensor:
        """The readout `(B, C)` of spikes `(B, T, N)`, `silence[name]` a `(B, n)` bool mask of silenced neurons."""
        with torch.inference_mode():
            return self.simulate(spikes.transpose(0, 1), silence, record=False).outputs

    def record(self, spikes: Tensor, silence: Mapping[str, Tensor] | None = None) -> Recording:
        """One forward pass recording every neuron layer's spikes and membranes `(B, T, n)`."""
        with torch.inference_mode():
            return self.simulate(spikes.transpose(0, 1), silence, record=True)

    def __call__(self, spikes: Tensor, silence: Mapping[str, Tensor] | None = None) -> Tensor:
        """The readout, with autograd where the inputs require it (no surrogate gradients: spikes are steps)."""
        return self.simulate(spikes.transpose(0, 1), silence, record=False).outputs

    def linear_weights(self) -> list[Tensor] | None:
        """The `(n_in, n_out)` weight chain when every segment is one dense map (reshapes and identities
        aside) feeding neurons without recurrence, else `None`."""
        chain = []
        for segment in self.segments:
            dense = [m for m in segment.maps if not isinstance(m, (Identity, Reshape))]
            if len(dense) != 1 or not isinstance(dense[0], (Dense, MatMul)) or segment.neuron.recurrent is not None:
                return None
            if any(isinstance(m, Reshape) and len(m.in_shape) != 1 for m in segment.maps):
                return None
            chain.append(dense[0].dense())
        return chain

    # -- the one simulation loop ------------------------------------------------------------------------
    def simulate(self, inputs: Tensor, silence: Mapping[str, Tensor] | None = None, *,
                 record: bool = False) -> Recording:
        """Run the graph on time-first inputs `(T, B, N)` (or `(T, B, *input_shape)`).

        Layer by layer: every map of a segment over all timesteps, then its neurons step by step (time
        is sequential; layers are not, since no recurrence crosses a layer).

        Returns:
            A `Recording`: the readout `(B, C)` and, when `record`, every layer's spikes and membranes
            batch-first `(B, T, n)`.
        """
        steps, batch = inputs.shape[:2]
        x = inputs.reshape(steps, batch, *self.input_shape)
        dtype = self._dtype()
        if x.dtype != dtype:
            x = x.to(dtype)
        keep = self._keep_masks(silence, batch, x)
        layers: list[LayerRecord] = []
        membranes: Tensor | None = None
        last = len(self.segments) - 1
        for index, segment in enumerate(self.segments):
            current = self._apply_maps(segment, x, fresh=index > 0)
            want_membrane = record or (index == last and self.readout in MEMBRANE_READOUTS)
            x, membranes = self._run_neurons(segment.neuron, current, keep.get(segment.neuron.name), want_membrane)
            if record:
                flat_spikes = x.reshape(steps, batch, -1).transpose(0, 1)
                flat_membrane = membranes.reshape(steps, batch, -1).transpose(0, 1)  # type: ignore[union-attr]
                layers.append(LayerRecord(segment.neuron.name, flat_spikes, flat_membrane))
        flat = x.reshape(steps, batch, -1)
        outputs = apply_readout(self.readout, flat, None if membranes is None else membranes.reshape(steps, batch, -1))
        return Recording(outputs, tuple(layers))

    def _apply_maps(self, segment: Segment, x: Tensor, *, fresh: bool = False) -> Tensor:
        """The segment's maps over all timesteps. With `fresh`, a per-step map gets each step in a buffer of
        its own, as a framework's neuron layer hands the next layer a newly allocated spike tensor: a matrix
        product can round differently for a slice that starts elsewhere in memory."""
        steps, batch = x.shape[:2]
        for index, (linear_map, whole) in enumerate(zip(segment.maps, segment.whole_sequence, strict=True)):
            if whole:
                x = linear_map.forward(x.reshape(steps * batch, *linear_map.in_shape))
                x = x.reshape(steps, batch, *linear_map.out_shape)
            else:
                copy = fresh and index == 0
                x = torch.stack([linear_map.forward(x[t].clone() if copy else x[t]) for t in range(steps)])
        return x

    @staticmethod
    def _run_neurons(neuron: NeuronNode, current: Tensor, keep: Tensor | None,
                     want_membrane: bool) -> tuple[Tensor, Tensor | None]:
        steps = current.shape[0]
        state = neuron.initial_state(current[0])
        emitted, membranes = [], []
        for t in range(steps):  # time is sequential
            out, state = neuron.step(current[t], state, neuron.params)
            if keep is not None:
                out = out * keep
                if neuron.feedback is not None:
                    state = state._replace(**{neuron.feedback: out})
            emitted.append(out)
            if want_membrane:
                membranes.append(out if not neuron.spiking else neuron.membrane(state))
        return torch.stack(emitted), (torch.stack(membranes) if want_membrane else None)

    def _keep_masks(self, silence: Mapping[str, Tensor] | None, batch: int, like: Tensor) -> dict[str, Tensor]:
        if not silence:
            return {}
        shapes = {segment.neuron.name: segment.neuron.shape for segment in self.segments}
        keep = {}
        for name, mask in silence.items():
            if name not in shapes:
                raise ValueError(f"silence: unknown layer {name!r}; expected one of {list(shapes)}")
            size = math.prod(shapes[name])
            if not isinstance(mask, Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != (batch, size):
                raise ValueError(f"silence[{name!r}]: expected a bool tensor of shape ({batch}, {size})")
            keep[name] = (~mask).to(like.dtype).reshape(batch, *shapes[name])
        return keep

    def _dtype(self) -> torch.dtype:
        """The dtype of the first map that holds a tensor (a leading reshape holds none)."""
        for segment in self.segments:
            for linear_map in segment.maps:
                own = linear_map._own_tensor()
                if own is not None:
                    return own.dtype
        return torch.get_default_dtype()

    def __repr__(self) -> str:
        lines = [f"ModelGraph(input_shape={self.input_shape}, readout={self.readout!r}, source={self.source!r})"]
        for segment in self.segments:
            maps = " -> ".join(type(m).__name__ for m in segment.maps) or "(none)"
            recurrent = " (recurrent)" if segment.neuron.recurrent is not None else ""
            lines.append(f"  {maps} -> {segment.neuron.kind} {segment.neuron.name!r} {segment.neuron.shape}{recurrent}")
        return "\n".join(lines)
