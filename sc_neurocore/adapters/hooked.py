"""The machinery every framework adapter shares: hooks on neuron layers, state reset, readout.

A framework model (an snnTorch ``nn.Sequential``, a Norse ``SequentialState``, a user module with its
own time loop) is wrapped by a subclass of `HookedModel`, which only says how to drive it over
time (`HookedModel._drive`) and which submodules are its neuron layers. Everything else is here,
written once:

* **batch-first at the boundary.** Explainers pass ``(B, T, N)``; the adapter reshapes ``N`` to the
  model's ``input_shape`` and translates to the framework's time-first ``(T, B, ...)`` once.
* **fresh state on every call.** snnTorch layers keep their membranes on the module (``init_hidden``)
  and reuse them whenever the batch shape repeats; the adapter empties that state before the call and
  puts the user's tensors back afterwards, so no call sees another's state and the model is left as it
  was. ``model.eval()`` is applied during the call and every submodule's ``training`` flag restored.
* **silencing and recording by forward hooks** on the neuron layers. They fire on every call of the
  layer: once per timestep for step-wise layers (snnTorch ``Leaky``, Norse cells), once per chunk of
  timesteps for sequence layers (``LeakyParallel``, Norse ``LIF``), told apart by the output's shape.
  Silencing multiplies the emitted spikes by a ``(B, ...)`` keep mask (so gradients still flow); the
  hooks are removed in ``finally``, also when the forward raises.
* **gradients where asked.** ``adapter(spikes)`` (``forward``) is differentiable through the frameworks'
  surrogate gradients, so Captum's gradient methods work on it; ``run`` and ``record`` run under
  ``torch.inference_mode()``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ..protocol import LayerRecord, Recording
from ..inputs import REAL_DTYPES, check_same_device
from .readout import MEMBRANE_READOUTS, apply_readout, check_readout

#: ``split(module, args, output) -> Emitted``: a framework's neuron output taken apart.
Split = Callable[[nn.Module, tuple, Any], "Emitted"]


class Emitted(NamedTuple):
    """What one call of a neuron layer emitted.

    Attributes:
        spikes: the emitted spikes (for a leaky integrator, its emitted voltage), ``(B, ...)`` for one
            timestep or ``(t, B, ...)`` for a chunk of ``t`` timesteps.
        membrane: a zero-argument callable returning the membrane of the same shape (computed only
            when recorded), or ``None`` when the layer does not expose it.
        rebuild: ``rebuild(spikes)`` returns the layer's output with its spikes replaced (the framework's
            output form kept: a bare tensor, ``(spk, mem)``, ``(z, state)``).
    """

    spikes: Tensor
    membrane: Callable[[], Tensor] | None
    rebuild: Callable[[Tensor], Any]


class Candidate(NamedTuple):
    """A submodule that may be a neuron layer (it is one if the model calls it)."""

    name: str
    module: nn.Module
    split: Split
    #: ``False`` for leaky integrators, which emit a voltage rather than spikes.
    spiking: bool = True


class NeuronLayer(NamedTuple):
    """A neuron layer as the adapter found it by running the model once.

    Attributes:
        name: the submodule's name in ``model.named_modules()``.
        module: the submodule.
        split: how to take its output apart.
        spiking: ``False`` for leaky integrators.
        feature_shape: the per-sample shape of its output, e.g. ``(n,)`` or ``(C, H, W)``.
        batch_first: ``True`` for a layer of a batch-first module called once on the whole sequence,
            emitting ``(B, T, ...)``; otherwise it emits ``(B, ...)`` per step or ``(t, B, ...)`` per chunk.
    """

    name: str
    module: nn.Module
    split: Split
    spiking: bool
    feature_shape: tuple[int, ...]
    batch_first: bool = False

    @property
    def size(self) -> int:
        return math.prod(self.feature_shape)


#: Batch and time of the probe run that finds the layers: distinct so a step output ``(B, ...)`` and a
#: chunk ``(t, B, ...)`` cannot be confused (chunks have 1 or ``T`` timesteps, never ``B``).
_PROBE_BATCH, _PROBE_STEPS = 2, 3


_ABSENT = object()


class HookedModel(nn.Module):
    """Base of the framework adapters: a `SpikingModel` around a module.

    Subclasses implement `_drive` and pass the candidate neuron layers; see the module docstring
    for what this class does. Not used directly: call `from_snntorch`,
    `from_norse` or `from_module`.

    Args:
        module: the wrapped framework model (kept as ``self.module``, never modified).
        candidates: submodules that may be neuron layers, with how to read their outputs.
        input_shape: the per-timestep input shape the module takes; ``N = prod(input_shape)``.
        readout: one of `READOUTS`, or ``None`` for the subclass's
            default.
        time_first: whether `_drive` receives ``(T, B, ...)`` (else ``(B, T, ...)``).
        state_buffers: ``(submodule, attribute name)`` pairs holding neuron state on the module; each is
            emptied before a call and restored (or removed, if the call created it) after it.
    """

    #: Whether the readout is taken from the last neuron layer's hook (stacks) or from what
    #: `_drive` returns (modules with their own time loop).
    _readout_from_last_layer: bool = True

    #: The ordered layer description of a plain stack (see `sc_neurocore.adapters.stack`); ``None``
    #: for modules with their own time loop, whose structure is not known.
    stack: tuple | None = None

    def __init__(self, module: nn.Module, candidates: Sequence[Candidate], *, input_shape: Sequence[int],
                 readout: str | None, time_first: bool = True,
                 state_buffers: Sequence[tuple[nn.Module, str]] = ()) -> None:
        super().__init__()
        self.module = module
        self.input_shape = tuple(int(size) for size in input_shape)
        if not self.input_shape or any(size < 1 for size in self.input_shape):
            raise ValueError(f"input_shape: expected positive sizes, got {tuple(input_shape)}")
        self.time_first = time_first
        self._state_buffers = list(state_buffers)
        self._layers = self._probe(list(candidates))
        if not self._layers and self._readout_from_last_layer:
            raise ValueError(f"model: found no neuron layer that {type(module).__name__} calls")
        self.readout = self._choose_readout(readout)
        with torch.inference_mode():
            self._n_outputs = self._pass(self._probe_input(), None, record=False).outputs.shape[1]

    # -- SpikingModel protocol ------------------------------------------------------------------------
    @property
    def neuron_layers(self) -> dict[str, int]:
        """Ordered ``{layer name: number of neurons}``, in the order the model calls them."""
        return {layer.name: layer.size for layer in self._layers}

    @property
    def n_inputs(self) -> int:
        return math.prod(self.input_shape)

    @property
    def n_outputs(self) -> int:
        """``C``, the number of readout values per sample."""
        return self._n_outputs

    def linear_weights(self) -> list[Tensor] | None:
        """The ``(n_in, n_out)`` weight chain when the model is a plain stack of linear layers and neurons."""
        return None

    def run(self, spikes: Tensor, silence: Mapping[str, Tensor] | None = None) -> Tensor:
        """The readout of one forward pass, under ``torch.inference_mode()``, from fresh neuron state.

        Args:
            spikes: batch-first input spikes ``(B, T, N)``.
            silence: ``{layer name: (B, n) bool mask}``; a ``True`` neuron emits no spikes at any timestep
                of that sample (its membrane keeps integrating).

        Returns:
            The readout ``(B, C)``.

        Example:
            >>> model.run(spikes, silence={"1": torch.eye(len(spikes), 12, dtype=torch.bool)})  # doctest: +SKIP
        """
        with torch.inference_mode():
            return self._pass(self._checked(spikes), silence, record=False).outputs

    def record(self, spikes: Tensor, silence: Mapping[str, Tensor] | None = None) -> Recording:
        """One forward pass recording every neuron layer, under ``torch.inference_mode()``.

        Args:
            spikes: batch-first input spikes ``(B, T, N)``.
            silence: as for `run`.

        Returns:
            A `Recording`: the readout and one
            `LayerRecord` per neuron layer in call order, spikes and
            membranes ``(B, T, n)``. A layer that does not expose its membrane records ``NaN``
            membranes (not observable, never a made-up value).

        Example:
            >>> [layer.spikes.shape for layer in model.record(spikes).layers]  # doctest: +SKIP
        """
        with torch.inference_mode():
            return self._pass(self._checked(spikes), silence, record=True)

    def forward(self, spikes: Tensor, silence: Mapping[str, Tensor] | None = None) -> Tensor:
        """The differentiable readout: ``adapter(spikes)`` is a valid Captum ``forward_func``.

        Args:
            spikes: batch-first input spikes ``(B, T, N)``; may require gradients.
            silence: as for `run`.

        Returns:
            The readout ``(B, C)``, with gradients through the frameworks' surrogate spike functions.

        Example:
            >>> captum.attr.Saliency(model).attribute(spikes, target=0)  # doctest: +SKIP
        """
        return self._pass(self._checked(spikes), silence, record=False).outputs

    # -- to implement ---------------------------------------------------------------------------------
    def _drive(self, inputs: Tensor) -> Any:
        """Run the wrapped module over all timesteps of ``inputs`` and return what it returns."""
        raise NotImplementedError

    def _activity(self, returned: Any, batch: int) -> tuple[Tensor | None, Tensor | None] | Tensor:
        """For modules read from their return value: ``(spikes, membrane)`` time-first, or a ``(B, C)``."""
        raise NotImplementedError

    def _default_readout(self) -> str:
        last = self._layers[-1] if self._layers else None
        return "count" if last is None or last.spiking else "max_membrane"

    # -- one forward pass -----------------------------------------------------------------------------
    def _choose_readout(self, readout: str | None) -> str:
        readout = self._default_readout() if readout is None else check_readout(readout)
        if self._readout_from_last_layer and readout not in MEMBRANE_READOUTS and not self._layers[-1].spiking:
            raise ValueError(f"readout: the output layer {self._layers[-1].name!r} is a leaky integrator and emits "
                             f"no spikes, so {readout!r} is meaningless; use 'max_membrane' or 'final_membrane'")
        return readout

    def _checked(self, spikes: Any) -> Tensor:
        if not isinstance(spikes, Tensor):
            raise TypeError(f"spikes: expected a torch.Tensor (B, T, N), got {type(spikes).__name__}")
        if spikes.is_complex() or spikes.dtype not in REAL_DTYPES:
            raise TypeError(f"spikes: expected a real dtype (bool, int or float), got {spikes.dtype}")
        if spikes.ndim != 3 or spikes.shape[2] != self.n_inputs or spikes.shape[1] < 1:
            raise ValueError(f"spikes: expected shape (B, T, {self.n_inputs}) with T >= 1, got {tuple(spikes.shape)}")
        check_same_device(spikes, _reference_tensor(self.module).device, "spikes")
        return spikes

    def _probe_input(self) -> Tensor:
        reference = _reference_tensor(self.module)
        return torch.zeros(_PROBE_BATCH, _PROBE_STEPS, self.n_inputs, dtype=reference.dtype, device=reference.device)

    def _model_inputs(self, spikes: Tensor) -> Tensor:
        """``(B, T, N)`` -> the module's layout, in its dtype and on its device (autograd kept)."""
        reference = _reference_tensor(self.module)
        batch, steps, _ = spikes.shape
        inputs = spikes.to(dtype=reference.dtype, device=reference.device).reshape(batch, steps, *self.input_shape)
        return inputs.transpose(0, 1) if self.time_first else inputs

    @contextlib.contextmanager
    def _session(self, hooks: Sequence[tuple[nn.Module, Callable]]) -> Iterator[None]:
        """Eval mode, empty neuron state and ``hooks`` for one call; everything restored on exit."""
        training = [(module, module.training) for module in self.module.modules()]
        saved = [(module, name, getattr(module, name, _ABSENT)) for module, name in self._state_buffers]
        handles = []
        try:
            self.module.eval()
            for module, name, tensor in saved:
                # snnTorch re-creates a state whose shape differs from its input as zeros of the input's shape.
                if isinstance(tensor, Tensor):
                    setattr(module, name, tensor.new_zeros(0))
            for module, hook in hooks:
                handles.append(module.register_forward_hook(hook))
            yield
        finally:
            for handle in handles:
                handle.remove()
            for module, name, tensor in saved:
                if tensor is not _ABSENT:
                    setattr(module, name, tensor)
                elif name in vars(module):  # state the call created (snnTorch's `reset`): not the user's
                    delattr(module, name)
            for module, flag in training:
                module.training = flag

    def _pass(self, spikes: Tensor, silence: Mapping[str, Tensor] | None, record: bool) -> Recording:
        batch, steps, _ = spikes.shape
        inputs = self._model_inputs(spikes)
        keep = self._keep_masks(silence, batch, inputs)
        watched = self._layers if record else (self._layers[-1:] if self._readout_from_last_layer else [])
        want_membranes = record or self.readout in MEMBRANE_READOUTS
        captures = {layer.name: _Capture(want_membranes) for layer in watched}
        hooks = [(layer.module, _LayerHook(layer, batch, keep.get(layer.name), captures.get(layer.name)))
                 for layer in self._layers if layer.name in keep or layer.name in captures]
        with self._session(hooks):
            returned = self._drive(inputs)
        layers = {name: capture.time_first(self._layers_by_name[name], batch, steps) for name, capture in captures.items()}
        if self._readout_from_last_layer:
            outputs = apply_readout(self.readout, *layers[self._layers[-1].name])
        else:
            activity = self._activity(returned, batch)
            outputs = activity if isinstance(activity, Tensor) else apply_readout(self.readout, *activity)
        outputs = outputs.reshape(batch, -1)
        records: tuple[LayerRecord, ...] = ()
        if record:
            records = tuple(LayerRecord(layer.name, *_batch_first(*layers[layer.name])) for layer in self._layers)
        return Recording(outputs, records)

    @property
    def _layers_by_name(self) -> dict[str, NeuronLayer]:
        return {layer.name: layer for layer in self._layers}

    def _keep_masks(self, silence: Mapping[str, Tensor] | None, batch: int, like: Tensor) -> dict[str, Tensor]:
        """``{name: keep}``: ``(B, *feature_shape)`` multipliers, 0 where a neuron is silenced."""
        if not silence:
            return {}
        if not isinstance(silence, Mapping):
            raise TypeError(f"silence: expected a mapping {{layer name: (B, n) bool mask}}, got {type(silence).__name__}")
        layers = self._layers_by_name
        keep = {}
        for name, mask in silence.items():
            if name not in layers:
                raise ValueError(f"silence: unknown layer {name!r}; the neuron layers are {list(layers)}")
            layer = layers[name]
            if not isinstance(mask, Tensor) or mask.shape != (batch, layer.size):
                shape = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
                raise ValueError(f"silence[{name!r}]: expected a ({batch}, {layer.size}) bool mask, got {shape}")
            mask = mask.to(device=like.device, dtype=torch.bool)
            keep[name] = (~mask).to(like.dtype).reshape(batch, *layer.feature_shape)
        return keep

    def _probe(self, candidates: list[Candidate]) -> list[NeuronLayer]:
        """Run zeros through the model once; the candidates it calls, in call order, are its neuron layers."""
        calls: dict[str, list[tuple[int, ...]]] = {}
        order: list[str] = []

        def probe_hook(candidate: Candidate):
            def hook(module, args, output):
                shape = tuple(candidate.split(module, args, output).spikes.shape)
                if candidate.name not in calls:
                    calls[candidate.name] = []
                    order.append(candidate.name)
                calls[candidate.name].append(shape)
            return hook

        inputs = self._model_inputs(self._probe_input())
        with torch.inference_mode(), self._session([(c.module, probe_hook(c)) for c in candidates]):
            self._drive(inputs)
        by_name = {candidate.name: candidate for candidate in candidates}
        layers = []
        for name in order:
            shapes = calls[name]
            candidate = by_name[name]
            if not self.time_first and len(shapes) == 1 and shapes[0][:2] == (_PROBE_BATCH, _PROBE_STEPS):
                layers.append(NeuronLayer(name, candidate.module, candidate.split, candidate.spiking, shapes[0][2:],
                                          batch_first=True))
                continue
            feature_shape, steps = _layout(shapes[0])
            covered = sum(_layout(shape)[1] for shape in shapes)
            if any(_layout(shape)[0] != feature_shape for shape in shapes) or covered != _PROBE_STEPS:
                raise ValueError(f"model: neuron layer {name!r} was called with outputs {shapes} for "
                                 f"{_PROBE_STEPS} timesteps of {_PROBE_BATCH} samples; an adapter needs each neuron "
                                 "layer called once per timestep (or once per chunk of timesteps)")
            layers.append(NeuronLayer(name, candidate.module, candidate.split, candidate.spiking, feature_shape))
        return layers


class _Capture:
    """Chunks of one layer's spikes (and membranes) over a forward pass, time-first."""

    def __init__(self, want_membranes: bool) -> None:
        self.want_membranes = want_membranes
        self.spikes: list[Tensor] = []
        self.membranes: list[Tensor | None] = []

    def time_first(self, layer: NeuronLayer, batch: int, steps: int) -> tuple[Tensor, Tensor | None]:
        """``(spikes, membrane)`` as ``(T, B, n)``, membrane ``None`` if not captured or hidden."""
        spikes = torch.cat(self.spikes).reshape(-1, batch, layer.size)
        if spikes.shape[0] != steps:
            raise RuntimeError(f"layer {layer.name!r} emitted {spikes.shape[0]} timesteps for {steps} input steps")
        if not self.membranes or any(m is None for m in self.membranes):
            return spikes, None
        return spikes, torch.cat(self.membranes).reshape(-1, batch, layer.size)  # type: ignore[arg-type]


class _LayerHook:
    """The forward hook of one neuron layer: silence (multiply by ``keep``) and capture."""

    def __init__(self, layer: NeuronLayer, batch: int, keep: Tensor | None, capture: _Capture | None) -> None:
        self.layer, self.keep, self.capture = layer, keep, capture
        self.step_shape = (batch, *layer.feature_shape)

    def __call__(self, module: nn.Module, args: tuple, output: Any) -> Any:
        emitted = self.layer.split(module, args, output)
        spikes = emitted.spikes
        if self.layer.batch_first:
            return self._batch_first_sequence(emitted)
        one_step = tuple(spikes.shape) == self.step_shape
        if not one_step and tuple(spikes.shape[1:]) != self.step_shape:
            raise RuntimeError(f"layer {self.layer.name!r} emitted shape {tuple(spikes.shape)}; expected "
                               f"{self.step_shape} per timestep or (t, *{self.step_shape}) per chunk")
        if self.keep is not None:
            spikes = spikes * (self.keep if one_step else self.keep[None])
            output = emitted.rebuild(spikes)
        if self.capture is not None:
            chunk = spikes[None] if one_step else spikes
            membrane = None
            if not self.layer.spiking:  # a leaky integrator emits its membrane: silencing it zeroes both
                membrane = chunk
            elif self.capture.want_membranes and emitted.membrane is not None:
                membrane = emitted.membrane()
                membrane = membrane[None] if one_step else membrane
            self.capture.spikes.append(chunk)
            self.capture.membranes.append(membrane)
        return output if self.keep is not None else None

    def _batch_first_sequence(self, emitted: Emitted) -> Any:
        """A whole ``(B, T, ...)`` sequence at once: silence along time, capture time-first."""
        spikes = emitted.spikes
        if spikes.shape[0] != self.step_shape[0] or tuple(spikes.shape[2:]) != self.step_shape[1:]:
            raise RuntimeError(f"layer {self.layer.name!r} emitted shape {tuple(spikes.shape)}; expected "
                               f"({self.step_shape[0]}, T, *{self.step_shape[1:]})")
        output = None
        if self.keep is not None:
            spikes = spikes * self.keep[:, None]
            output = emitted.rebuild(spikes)
        if self.capture is not None:
            membrane = None
            if not self.layer.spiking:
                membrane = spikes.transpose(0, 1)
            elif self.capture.want_membranes and emitted.membrane is not None:
                membrane = emitted.membrane().transpose(0, 1)
            self.capture.spikes.append(spikes.transpose(0, 1))
            self.capture.membranes.append(membrane)
        return output


def _layout(shape: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    """``(feature_shape, timesteps)`` of a probe-run output: ``(B, ...)`` is one step, ``(t, B, ...)`` a chunk."""
    if len(shape) >= 2 and shape[0] == _PROBE_BATCH:
        return shape[1:], 1
    if len(shape) >= 3 and shape[1] == _PROBE_BATCH:
        return shape[2:], shape[0]
    return shape, -1


def _batch_first(spikes: Tensor, membrane: Tensor | None) -> tuple[Tensor, Tensor]:
    """``(T, B, n)`` -> ``(B, T, n)``; a hidden membrane becomes ``NaN`` (not observable, never a fake 0)."""
    if membrane is None:
        membrane = torch.full_like(spikes, float("nan"))
    return spikes.transpose(0, 1), membrane.transpose(0, 1)


def _reference_tensor(module: nn.Module) -> Tensor:
    """A floating parameter or buffer of ``module``: the dtype and device its inputs must have."""
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.is_floating_point():
            return tensor
    return torch.zeros(())


def infer_input_shape(model: nn.Module, input_shape: int | Sequence[int] | None) -> tuple[int, ...]:
    """``input_shape`` as a tuple, or the input size of the first Linear-like layer (``in_features``,
    ``input_size``, or the columns of a Norse cell's ``input_weights``)."""
    if input_shape is not None:
        shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
        if not shape or not all(isinstance(size, int) and not isinstance(size, bool) and size > 0 for size in shape):
            raise ValueError(f"input_shape: expected a positive int or a tuple of them, got {input_shape!r}")
        return shape
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            break
        size = getattr(module, "in_features", None) or getattr(module, "input_size", None)
        weights = getattr(module, "input_weights", None)  # Norse cells with their own input weights
        if not isinstance(size, int) and isinstance(weights, Tensor) and weights.ndim == 2:
            size = weights.shape[1]
        if isinstance(size, int):
            return (size,)
    raise ValueError(f"input_shape: cannot tell the input size of {type(model).__name__} (no Linear before any "
                     "convolution); pass input_shape=, e.g. input_shape=(1, 28, 28)")
