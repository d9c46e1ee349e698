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
import logging
import math
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from ..concurrency import CallLock
from ..graph.model import ModelGraph
from ..inputs import REAL_DTYPES, check_same_device, model_dtype
from ..protocol import LayerRecord, Recording
from .readout import MEMBRANE_READOUTS, apply_readout, check_readout
from .trace import MadeNode

logger = logging.getLogger(__name__)

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
    #: Called once with all the probe's timesteps (a sequence-level layer, or a step-wise one misfed).
    whole_sequence: bool = False

    @property
    def size(self) -> int:
        return math.prod(self.feature_shape)


#: Timesteps of the wrap-time probe that finds the layers (the batch is chosen to differ from it, so a
#: step output ``(B, ...)`` and a chunk ``(t, B, ...)`` cannot be confused).
_PROBE_STEPS = 3


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
                 state_buffers: Sequence[tuple[nn.Module, str]] = (), n_steps: int | None = None) -> None:
        super().__init__()
        model_dtype(module, "model")  # float16 / bfloat16 or a mix: refused, naming the dtype
        self.module = module
        self.input_shape = tuple(int(size) for size in input_shape)
        if not self.input_shape or any(size < 1 for size in self.input_shape):
            raise ValueError(f"input_shape: expected positive sizes, got {tuple(input_shape)}")
        if n_steps is not None and (isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer))
                                    or n_steps < 1):
            raise ValueError(f"n_steps: expected None or a positive int (the timesteps the model runs), got {n_steps!r}")
        self.n_steps = None if n_steps is None else int(n_steps)
        self.time_first = time_first
        self._state_buffers = list(state_buffers)
        self._candidates = list(candidates)
        self._readout_asked = readout
        self._layers: list[NeuronLayer] = []
        self.readout = "count" if readout is None else check_readout(readout)
        self._n_outputs = 0
        #: Why the wrap-time probe could not run the model (it then runs at the first call, with that
        #: call's number of timesteps); `None` once the layers are known.
        self._deferred: str | None = None
        try:
            self._discover(_PROBE_STEPS if self.n_steps is None else self.n_steps)
        except _ModelFailed as failure:
            if self.n_steps is not None:
                raise ValueError(f"model: {type(module).__name__} failed on a probe of n_steps={self.n_steps} "
                                 f"timesteps: {failure}") from failure.__cause__
            self._deferred = str(failure)

    def _discover(self, steps: int) -> None:
        """Find the neuron layers and the readout by running the model on `steps` timesteps, and check
        that it is safe to explain: no state kept between calls, no step-wise layer fed a whole sequence."""
        self._layers = self._probe(self._candidates, steps)
        if not self._layers and self._readout_from_last_layer:
            raise ValueError(f"model: found no neuron layer that {type(self.module).__name__} calls")
        self.readout = self._choose_readout(self._readout_asked)
        probe = self._random_probe(steps)
        with torch.inference_mode():
            first = self._call_model(probe, record=False).outputs
            again = self._call_model(probe, record=False).outputs
        self._n_outputs = first.shape[1]
        if not torch.equal(first, again):
            raise ValueError(f"model: {type(self.module).__name__} gave different outputs for the same spikes on two "
                             "calls: it keeps state between calls that this adapter does not reset, so every "
                             f"explanation would depend on what ran before. {_reset_advice(self.module)}")
        self._check_time_dependence(probe)

    def _check_time_dependence(self, probe: Tensor) -> None:
        """Refuse a step-wise neuron layer that received the whole sequence as one step (see `_probe`)."""
        from .registry import framework_of_module

        # Only a framework's neuron is known to keep state over time; a user-named memoryless layer fed
        # the whole sequence is explained exactly either way.
        whole = [layer.name for layer in self._layers
                 if layer.whole_sequence and framework_of_module(layer.module) is not None]
        if not whole or probe.shape[1] < 2:
            return
        changed = probe.clone()
        changed[:, 0] = 1 - changed[:, 0]
        with torch.inference_mode():
            before = self._call_model(probe, record=True).layers
            after = self._call_model(changed, record=True).layers
        first_step_moved, later_moved = False, False
        for a, b in zip(before, after, strict=True):
            for x, y in ((a.spikes, b.spikes), (a.membrane, b.membrane)):
                if torch.isnan(x).all():
                    continue
                first_step_moved |= not torch.equal(x[:, :1], y[:, :1])
                later_moved |= not torch.equal(x[:, 1:], y[:, 1:])
        if first_step_moved and not later_moved:
            raise ValueError(f"model: neuron layer(s) {whole} received all {probe.shape[1]} timesteps in one call, yet "
                             "no layer's activity at a later timestep depends on the input at timestep 0: a step-wise "
                             "neuron is being fed the whole sequence as one step. Wrap step-wise stacks with "
                             "from_snntorch / from_norse / from_spikingjelly (one timestep per call); use from_module "
                             "only for models that loop over time themselves")

    def _random_probe(self, steps: int, rate: float = 0.5, device: torch.device | None = None) -> Tensor:
        """Seeded random spikes `(B, T, N)` in the model's dtype, with a batch that cannot be taken for `T`."""
        reference = _reference_tensor(self.module)
        generator = torch.Generator().manual_seed(0)
        spikes = torch.rand(_probe_batch(steps), steps, self.n_inputs, generator=generator) < rate
        return spikes.to(dtype=reference.dtype, device=reference.device if device is None else device)

    def _call_model(self, spikes: Tensor, record: bool) -> Recording:
        try:
            return self._pass(spikes, None, record=record)
        except (ValueError, TypeError):
            raise
        except Exception as error:
            raise _ModelFailed(f"{type(error).__name__}: {error}") from error

    def prepare(self, spikes: Tensor) -> None:
        """Find the layers with these spikes' number of timesteps, if the wrap-time probe could not (a
        forward that only runs its own `num_steps`); nothing when they are known.

        Example:
            >>> import torch, snntorch as snn
            >>> from sc_neurocore.adapters import from_snntorch
            >>> net = torch.nn.Sequential(torch.nn.Linear(4, 2), snn.Leaky(beta=0.9, init_hidden=True, output=True))
            >>> model = from_snntorch(net)
            >>> model.prepare(torch.zeros(1, 5, 4)); model.neuron_layers
            {'1': 2}
        """
        self._ensure_discovered(self._checked_shape(spikes))

    def _checked_shape(self, spikes: Any) -> int:
        if not isinstance(spikes, Tensor) or spikes.ndim != 3 or spikes.shape[1] < 1:
            raise ValueError(f"spikes: expected a (B, T, {self.n_inputs}) tensor")
        return int(spikes.shape[1])

    def _ensure_discovered(self, steps: int) -> None:
        if self._deferred is None:
            return
        try:
            self._discover(steps)
        except _ModelFailed as failure:
            hint = ""
            if model_dtype(self.module) == torch.float64 and "dtype" in str(failure):
                hint = ("; the model's parameters are float64 but its own forward mixes dtypes (snnTorch's spike "
                        "functions emit float32 spikes): run it in float32 with model.float()")
            raise ValueError(f"model: {type(self.module).__name__} failed on {steps} timesteps: {failure}{hint}") \
                from failure.__cause__
        self._deferred = None

    def _known(self) -> None:
        if self._deferred is not None:
            raise ValueError(f"model: its layers are not known yet, because a 3-step probe failed ({self._deferred}); "
                             "pass n_steps=<the timesteps it runs> when wrapping it, or run it once on spikes first")

    # -- SpikingModel protocol ------------------------------------------------------------------------
    @property
    def neuron_layers(self) -> dict[str, int]:
        """Ordered ``{layer name: number of neurons}``, in the order the model calls them."""
        self._known()
        return {layer.name: layer.size for layer in self._layers}

    @property
    def n_inputs(self) -> int:
        return math.prod(self.input_shape)

    @property
    def n_outputs(self) -> int:
        """``C``, the number of readout values per sample."""
        self._known()
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

    # -- the traced graph -------------------------------------------------------------------------------
    def graph_for(self, spikes: Tensor) -> ModelGraph | None:
        """The model's traced `ModelGraph`, verified bit for bit against its own forward on `spikes`.

        The graph is traced once per number of timesteps, dtype and device (one forward of the model with
        hooks, see `sc_neurocore.adapters.trace`), and checked on every call against `self.run(spikes)` on
        the very spikes given. `None` when the model cannot be traced or the graph does not reproduce it;
        `graph_reason` then says why, and the caller runs the model itself (exact, slower).

        Args:
            spikes: batch-first `(B, T, N)`, the spikes about to be explained.

        Returns:
            The graph, or `None`.

        Example:
            >>> import torch, snntorch as snn
            >>> from sc_neurocore.adapters import from_snntorch
            >>> net = torch.nn.Sequential(torch.nn.Linear(8, 4), snn.Leaky(beta=0.9, init_hidden=True, output=True))
            >>> model = from_snntorch(net)
            >>> model.graph_for((torch.rand(2, 10, 8) < 0.5).float()).neuron_layers
            {'1': 4}
        """
        return self.check_graph(spikes)[0]

    def check_graph(self, spikes: Tensor, reuse: bool = False) -> tuple[ModelGraph | None, Tensor | None]:
        """`(graph_for(spikes), self.run(spikes))`: the verified graph and the model's own outputs, which
        the caller may use as the unperturbed baseline instead of running the model again.

        With `reuse`, a model whose forward is fixed by its layers (`fixed_structure`) and whose graph was
        verified on spikes of the same shape, dtype and device, with the same parameters and settings, is
        not run again: the outputs are then `None` (the caller takes the graph's forward, checked to be the
        model's once per shape, as the compiled executors' check is)."""
        spikes = self._checked(spikes)
        fingerprint = self.fingerprint()
        traced = self._traces(fingerprint)
        key = (spikes.shape[1], _reference_tensor(self.module).dtype, spikes.device)
        verified = (tuple(spikes.shape), spikes.dtype, str(spikes.device), fingerprint)
        if reuse and self.fixed_structure and key in traced and traced[key][0] is not None and \
                _VERIFIED.get(self) == verified:
            _LAST_REASON[self] = ""
            return traced[key][0], None
        expected = self.run(spikes)
        # The cache lives beside the adapter, not on it: explaining never changes the objects it is given.
        if key not in traced:
            traced[key] = self._trace(spikes.shape[1], spikes.device)
        graph, reason = traced[key]
        if graph is not None:
            with torch.inference_mode():
                got = graph.run(spikes)
            if got.dtype != expected.dtype or not torch.equal(got, expected):
                graph, reason = None, "the traced graph does not reproduce the model's forward bit for bit on these spikes"
        if reason:
            logger.info("%s: %s; the model's own forward runs instead", type(self.module).__name__, reason)
            _VERIFIED.pop(self, None)
        else:
            _VERIFIED[self] = verified
        _LAST_REASON[self] = reason
        return graph, expected

    def fingerprint(self) -> tuple:
        """`module_fingerprint` of the wrapped module, its neuron state (what this adapter empties before
        every call: its state buffers, and the state its frameworks keep on modules) left out: what a
        reused check, or a front end an explainer keeps, needs unchanged.

        Example:
            >>> import torch, snntorch as snn
            >>> from sc_neurocore.adapters import from_snntorch
            >>> net = torch.nn.Sequential(torch.nn.Linear(8, 4), snn.Leaky(beta=0.9, init_hidden=True, output=True))
            >>> model = from_snntorch(net)
            >>> before = model.fingerprint()
            >>> _ = net(torch.ones(2, 8))  # the user's own forward: only neuron state changes
            >>> model.fingerprint() == before
            True
        """
        from .registry import frameworks_in

        state = list(self._state_buffers)
        for framework in frameworks_in(self.module):
            if framework.state_attributes is not None:
                state += framework.state_attributes(self.module)
        return module_fingerprint(self.module, state)

    @property
    def fixed_structure(self) -> bool:
        """Whether the model's forward is fixed by its layers and their settings, never by the spikes it is
        fed, so that a graph verified once per input shape stays verified (`check_graph`'s `reuse`): a
        known stack (`stack` is not `None`). A module with its own time loop may branch on its input."""
        return self.stack is not None

    def _traces(self, fingerprint: tuple | None = None) -> dict:
        """This adapter's traced graphs `{(T, dtype, device): (graph or None, reason)}`, emptied when the
        module has changed since they were traced (a replaced submodule or parameter, a changed setting, an
        in-place weight update: see `module_fingerprint`), so that a graph is never reused stale."""
        fingerprint = self.fingerprint() if fingerprint is None else fingerprint
        kept = _TRACED.get(self)
        if kept is None or kept[0] != fingerprint:
            kept = _TRACED[self] = (fingerprint, {})
        return kept[1]

    @property
    def graph_reason(self) -> str:
        """Why the last `graph_for` / `check_graph` call gave no graph (`""` when it gave one)."""
        return _LAST_REASON.get(self, "")

    def _trace(self, steps: int, device: torch.device) -> tuple[ModelGraph | None, str]:
        from .trace import Untraceable, build_graph, group_calls, record_calls

        probe = self._random_probe(steps, rate=0.3, device=device)
        batch = probe.shape[0]
        inputs = self._model_inputs(probe)
        emitted = {layer.name: (lambda m, a, o, split=layer.split: split(m, a, o).spikes) for layer in self._layers}

        def run(hooks):
            with torch.inference_mode(), self._session(hooks):
                self._drive(inputs)

        try:
            chain = group_calls(record_calls(self.module, emitted, run), steps, batch, self.time_first, set(emitted))
            graph = build_graph(chain, inputs if self.time_first else inputs.transpose(0, 1), readout=self.readout,
                                neuron_node=self._neuron_node, input_shape=self.input_shape,
                                source=type(self.module).__name__)
        except Untraceable as error:
            return None, f"not traceable: {error}"
        with torch.inference_mode():
            if not torch.equal(graph.run(probe), self.run(probe)):
                return None, "the traced graph does not reproduce the model's forward on a random probe"
        return graph, ""

    def _neuron_node(self, name: str, module: nn.Module, shape: tuple[int, ...]) -> MadeNode:
        from .registry import framework_of_module
        from .trace import Untraceable

        framework = framework_of_module(module)
        if framework is None:
            raise Untraceable(f"neuron layer {name!r} ({type(module).__name__}) is of no framework the graph knows")
        return framework.neuron_node(name, module, shape)

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
        self._ensure_discovered(spikes.shape[1])
        return spikes

    def _model_inputs(self, spikes: Tensor) -> Tensor:
        """``(B, T, N)`` -> the module's layout, in its dtype and on its device (autograd kept)."""
        reference = _reference_tensor(self.module)
        batch, steps, _ = spikes.shape
        inputs = spikes.to(dtype=reference.dtype, device=reference.device).reshape(batch, steps, *self.input_shape)
        return inputs.transpose(0, 1) if self.time_first else inputs

    @contextlib.contextmanager
    def _session(self, hooks: Sequence[tuple[nn.Module, Callable]]) -> Iterator[None]:
        """Eval mode, empty neuron state and ``hooks`` for one call; everything restored on exit.

        One call at a time per user module: the hooks and the emptied state are the module's own for the
        length of the call, so a second thread waits (`sc_neurocore.concurrency.CallLock`)."""
        from .registry import frameworks_in

        with module_lock(self.module), contextlib.ExitStack() as stack:
            for framework in frameworks_in(self.module):
                if framework.fresh_state is not None:  # state kept on modules between calls (SpikingJelly)
                    stack.enter_context(framework.fresh_state(self.module))
            stack.enter_context(self._buffers_session(hooks))
            yield

    @contextlib.contextmanager
    def _buffers_session(self, hooks: Sequence[tuple[nn.Module, Callable]]) -> Iterator[None]:
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

    def _probe(self, candidates: list[Candidate], steps: int) -> list[NeuronLayer]:
        """Run zeros through the model once; the candidates it calls, in call order, are its neuron layers."""
        calls: dict[str, list[tuple[int, ...]]] = {}
        order: list[str] = []
        batch = _probe_batch(steps)

        def probe_hook(candidate: Candidate):
            def hook(module, args, output):
                shape = tuple(candidate.split(module, args, output).spikes.shape)
                if candidate.name not in calls:
                    calls[candidate.name] = []
                    order.append(candidate.name)
                calls[candidate.name].append(shape)
            return hook

        reference = _reference_tensor(self.module)
        inputs = self._model_inputs(torch.zeros(batch, steps, self.n_inputs, dtype=reference.dtype,
                                                device=reference.device))
        with torch.inference_mode(), self._session([(c.module, probe_hook(c)) for c in candidates]):
            try:
                self._drive(inputs)
            except (ValueError, TypeError):
                raise
            except Exception as error:
                raise _ModelFailed(f"{type(error).__name__}: {error}") from error
        by_name = {candidate.name: candidate for candidate in candidates}
        layers = []
        for name in order:
            shapes = calls[name]
            candidate = by_name[name]
            if not self.time_first and len(shapes) == 1 and shapes[0][:2] == (batch, steps):
                layers.append(NeuronLayer(name, candidate.module, candidate.split, candidate.spiking, shapes[0][2:],
                                          batch_first=True, whole_sequence=steps > 1))
                continue
            feature_shape, chunk = _layout(shapes[0], batch)
            covered = sum(_layout(shape, batch)[1] for shape in shapes)
            if any(_layout(shape, batch)[0] != feature_shape for shape in shapes) or covered != steps:
                raise ValueError(f"model: neuron layer {name!r} was called with outputs {shapes} for "
                                 f"{steps} timesteps of {batch} samples; an adapter needs each neuron "
                                 "layer called once per timestep (or once per chunk of timesteps)")
            layers.append(NeuronLayer(name, candidate.module, candidate.split, candidate.spiking, feature_shape,
                                      whole_sequence=chunk == steps and steps > 1))
        return layers


def module_fingerprint(module: nn.Module, state: Sequence[tuple[nn.Module, str]] = ()) -> tuple:
    """What must be unchanged for a check of `module`, or a front end built for it, to be reused.

    Every submodule: its name, identity and type, and every setting it holds (plain values, tensors by
    identity and version, tuples such as Norse's parameter NamedTuples element by element, other objects
    such as a reset function by identity; the training flag included: a changed reset, threshold or
    `reset_delay` changes the forward without touching a parameter); and every parameter's and buffer's
    identity and version (an in-place update, an optimiser step included, bumps it). The module's own
    bookkeeping (its parameter, buffer and submodule tables, its hooks) is left out, and so is neuron
    `state`: `(submodule, attribute name)` pairs that an adapter empties before every call and restores
    after it (snnTorch's `mem`, SpikingJelly's memories), which the user's own forwards change.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2))
        >>> before = module_fingerprint(net)
        >>> with torch.no_grad():
        ...     _ = net[0].weight.mul_(2.0)
        >>> module_fingerprint(net) == before
        False
    """
    skipped = {(id(sub), name) for sub, name in state}
    submodules = tuple((name, id(sub), type(sub),
                        tuple(sorted((key, _setting(value)) for key, value in vars(sub).items()
                                     if key not in _MODULE_TABLES and "hook" not in key and (id(sub), key) not in skipped)))
                       for name, sub in module.named_modules())
    buffers = ((owner, name, buffer) for owner in module.modules() for name, buffer in owner.named_buffers(recurse=False))
    tensors = tuple((t.data_ptr(), t._version) for t in (*module.parameters(),
                                                         *(b for owner, name, b in buffers if (id(owner), name) not in skipped)))
    return submodules, tensors


#: `nn.Module` attributes that are its own bookkeeping (the tensors and submodules are fingerprinted apart).
_MODULE_TABLES = frozenset({"_parameters", "_buffers", "_modules", "_non_persistent_buffers_set"})

_PLAIN = (bool, int, float, complex, str, bytes, type(None))


def _setting(value: Any, depth: int = 0) -> Any:
    """A comparable stand-in for one attribute of a submodule (see `module_fingerprint`)."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, Tensor):
        return "tensor", id(value), value.data_ptr(), value._version, tuple(value.shape), value.dtype
    if depth < 3 and isinstance(value, (tuple, list)):
        return type(value), tuple(_setting(item, depth + 1) for item in value)
    if depth < 3 and isinstance(value, dict):
        return dict, tuple(sorted(((str(key), _setting(item, depth + 1)) for key, item in value.items()),
                                  key=lambda pair: pair[0]))
    return "object", type(value), id(value)


#: One `CallLock` per user module: every adapter of a module takes turns with every other.
_MODULE_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCKS_LOCK = threading.Lock()


def module_lock(module: nn.Module) -> CallLock:
    """The lock every adapter of `module` holds for the length of one call."""
    with _LOCKS_LOCK:
        lock = _MODULE_LOCKS.get(module)
        if lock is None:
            lock = _MODULE_LOCKS[module] = CallLock(f"{type(module).__name__} (wrapped by an adapter)")
        return lock


#: `{adapter: (module fingerprint, {(T, dtype, device): (graph or None, reason)})}`: each adapter's traced
#: graphs, traced once per input shape and module state (`HookedModel._traces`); and the reason of each
#: adapter's last check. Weak: they go with the adapter.
_TRACED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LAST_REASON: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: adapter -> the shape, dtype, device and parameter versions its graph was last verified on (`check_graph`).
_VERIFIED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _ModelFailed(Exception):
    """The user's own forward raised while the adapter probed it."""


def _probe_batch(steps: int) -> int:
    """A probe batch size that cannot be mistaken for the number of timesteps."""
    return next(b for b in (2, 3, 5, 7) if b != steps)


def _reset_advice(module: nn.Module) -> str:
    from .registry import frameworks_in

    hints = [f"{framework.name}: {framework.reset_hint}" for framework in frameworks_in(module) if framework.reset_hint]
    adapters = [f"from_{framework.name}" for framework in frameworks_in(module)]
    if hints:
        return (f"The framework's reset is {'; '.join(hints)}; wrap the model with {' or '.join(adapters)}, which "
                "resets it on every call, or reset it at the start of its forward")
    return "Reset every state the model keeps at the start of its forward (or wrap it with its framework's adapter)"


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


def _layout(shape: tuple[int, ...], batch: int) -> tuple[tuple[int, ...], int]:
    """``(feature_shape, timesteps)`` of a probe-run output: ``(B, ...)`` is one step, ``(t, B, ...)`` a chunk."""
    if len(shape) >= 2 and shape[0] == batch:
        return shape[1:], 1
    if len(shape) >= 3 and shape[1] == batch:
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


#: Layers that change the shape of what they pass on: the first Linear-like layer after one of them does not
#: tell the model's input size.
RESHAPING = (nn.modules.conv._ConvNd, nn.Unflatten, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
             nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd, nn.Upsample)


def model_input_shape(model: nn.Module) -> tuple[int, ...] | None:
    """The input size the model's first Linear-like layer (``in_features``, ``input_size``, or the columns of a
    Norse cell's ``input_weights``) tells, when no layer before it changes the shape (a convolution, a pool,
    an ``Unflatten``: `RESHAPING`); else ``None``.

    Example:
        >>> from torch import nn
        >>> model_input_shape(nn.Sequential(nn.Linear(4, 2))), model_input_shape(nn.Sequential(nn.Conv1d(1, 2, 3)))
        ((4,), None)
    """
    for module in model.modules():
        if isinstance(module, RESHAPING):
            return None
        size = getattr(module, "in_features", None) or getattr(module, "input_size", None)
        weights = getattr(module, "input_weights", None)  # Norse cells with their own input weights
        if not isinstance(size, int) and isinstance(weights, Tensor) and weights.ndim == 2:
            size = weights.shape[1]
        if isinstance(size, int):
            return (size,)
    return None


def infer_input_shape(model: nn.Module, input_shape: int | Sequence[int] | None) -> tuple[int, ...]:
    """``input_shape`` as a tuple, or the input size the model tells (`model_input_shape`)."""
    if input_shape is not None:
        shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
        if not shape or not all(isinstance(size, int) and not isinstance(size, bool) and size > 0 for size in shape):
            raise ValueError(f"input_shape: expected a positive int or a tuple of them, got {input_shape!r}")
        return shape
    told = model_input_shape(model)
    if told is None:
        raise ValueError(f"input_shape: cannot tell the input size of {type(model).__name__} (a layer before its first "
                         "Linear changes the shape, or it has none); pass input_shape=, e.g. input_shape=(1, 28, 28)")
    return told
