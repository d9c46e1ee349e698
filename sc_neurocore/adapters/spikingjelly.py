"""SpikingJelly models as a `SpikingModel`: `from_spikingjelly`.

A SpikingJelly network (`spikingjelly.activation_based`) runs in one of two step modes, which its
modules hold (`functional.set_step_mode(net, "m")` sets them):

- **single-step** (`"s"`): the network takes one timestep `(B, ...)` per call and its neurons keep their
  membrane `v` between calls; the adapter calls it once per timestep;
- **multi-step** (`"m"`): the network takes the whole sequence `(T, B, ...)` in one call (`layer.*` modules
  in multi-step mode, `layer.SeqToANNContainer` around plain torch layers); the adapter calls it once.

SpikingJelly keeps neuron state on the modules until `functional.reset_net(net)`. The adapter gives every
call the state `reset_net` would leave and afterwards puts back the user's own: each memory module's
`_memories` entries (the very tensors or floats the user had, never modified in place) and `v_seq`. No
inference-mode tensor is left in the model, so the user's own `functional.reset_net(net)` and training
steps work after wrapping. This applies to every adapter around a model with SpikingJelly memory modules
(`from_module` too), through `fresh_memories`.

Neuron layers are the SpikingJelly spiking neurons the model calls (`BaseNode` and `SimpleBaseNode`
subclasses), named as in `model.named_modules()`; their output is the spike tensor, their membrane `v`
after the reset (in multi-step mode the adapter turns on `store_v_seq` for the call to read it, on the
neurons where that changes nothing else; other multi-step neurons record `NaN` membranes). The
readout is the last neuron layer's activity; `"rate"` by default, SpikingJelly's `out_fr = net(x).mean(0)`.

`IFNode`, `LIFNode` and `ParametricLIFNode` become graph nodes on `sc_neurocore.dynamics.integrate_fire`
(hard and soft reset, `decay_input` either way); other neurons are run through the model's own forward.
"""

from __future__ import annotations

import contextlib
import copy
import sys
from collections.abc import Iterator, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from ..dynamics import (
    IntegrateFireParameters,
    integrate_fire_decision,
    integrate_fire_initial_state,
    integrate_fire_step,
)
from ..extras import missing_extra
from ..graph.neurons import NeuronNode
from .hooked import Candidate, Emitted, HookedModel, infer_input_shape
from .readout import check_readout
from .registry import Framework
from .torch_maps import Untraceable

STEP_MODES: tuple[str, ...] = ("s", "m")

#: Timesteps of the trace that reads the weight chain (any number gives the same maps).
_WEIGHT_STEPS = 4

_ABSENT = object()


#: Where a layer's class must come from for `SpikingJellyModel.fixed_structure`.
_STRUCTURAL_PACKAGES = ("torch.nn.", "spikingjelly.activation_based.")


def import_spikingjelly():
    """`spikingjelly.activation_based`, or an ImportError naming the extra that installs it."""
    try:
        import spikingjelly.activation_based.base
        import spikingjelly.activation_based.functional
        import spikingjelly.activation_based.neuron
    except ImportError as error:
        raise missing_extra("sc_neurocore.adapters.from_spikingjelly needs SpikingJelly", "spikingjelly") from error
    return spikingjelly.activation_based


def _loaded(name: str):
    """A SpikingJelly submodule if it is imported, else `None` (never imports it)."""
    return sys.modules.get(f"spikingjelly.activation_based.{name}")


def is_spikingjelly_neuron(module: nn.Module) -> bool:
    """Whether `module` is a SpikingJelly spiking neuron (without importing SpikingJelly if it is not loaded).

    Example:
        >>> is_spikingjelly_neuron(torch.nn.Linear(2, 2))
        False
    """
    neuron = _loaded("neuron")
    return neuron is not None and isinstance(module, (neuron.BaseNode, neuron.SimpleBaseNode))


def memory_modules(model: nn.Module) -> list[nn.Module]:
    """Every SpikingJelly `MemoryModule` of `model` (the modules `functional.reset_net` resets)."""
    base = _loaded("base")
    return [] if base is None else [m for m in model.modules() if isinstance(m, base.MemoryModule)]


@contextlib.contextmanager
def fresh_memories(model: nn.Module, *, record_voltage: bool = True) -> Iterator[None]:
    """Within the block, every SpikingJelly memory of `model` holds its reset value; on exit the user's own
    values are back (the same objects), also when the block raises.

    This is `functional.reset_net` without its in-place `copy_` into the user's tensors: each memory is
    given a fresh copy of its reset value. With `record_voltage`, multi-step `IFNode`, `LIFNode` and
    `ParametricLIFNode` layers also store their voltage sequence (`store_v_seq`) for the block, so that
    their membranes can be read (other multi-step neurons record `NaN` membranes: not observable).

    Example:
        >>> from spikingjelly.activation_based import neuron
        >>> node = neuron.IFNode()
        >>> with fresh_memories(node):
        ...     _ = node(torch.full((1,), 0.5))
        >>> node.v
        0.0
    """
    modules = memory_modules(model)
    saved = [(m, dict(_memories(m)), vars(m).get("v_seq", _ABSENT), vars(m).get("_store_v_seq", _ABSENT))
             for m in modules]
    try:
        for module in modules:
            memories, reset_values = _memories(module), vars(module)["_memories_rv"]
            for key in memories:
                memories[key] = copy.deepcopy(reset_values[key])
            if "v_seq" in vars(module):
                vars(module)["v_seq"] = None
            if record_voltage and _stores_voltage_alike(module):
                vars(module)["_store_v_seq"] = True
        yield
    finally:
        for module, memories, v_seq, store in saved:
            _memories(module).clear()
            _memories(module).update(memories)
            for name, value in (("v_seq", v_seq), ("_store_v_seq", store)):
                if value is not _ABSENT:
                    vars(module)[name] = value


def _stores_voltage_alike(module: nn.Module) -> bool:
    """Whether `store_v_seq` may be turned on for `module` without changing what it computes: a multi-step
    `IFNode`, `LIFNode` or `ParametricLIFNode` (exactly these: their multi-step forward runs the same op
    with or without it; a subclass may switch to a per-step loop that rounds differently)."""
    neuron = _loaded("neuron")
    return (neuron is not None and type(module) in (neuron.IFNode, neuron.LIFNode, neuron.ParametricLIFNode)
            and getattr(module, "step_mode", "s") == "m")


def _memories(module: nn.Module) -> dict[str, Any]:
    """A memory module's `_memories` dict (the one `register_memory` fills)."""
    return vars(module)["_memories"]


def model_step_mode(model: nn.Module) -> str:
    """The step mode `"s"` or `"m"` the modules of `model` are in; a `ValueError` for a mix or none.

    Walks the modules as `functional.set_step_mode` does (the children of SpikingJelly's containers keep
    their own single-step mode and are not counted).

    Example:
        >>> from spikingjelly.activation_based import neuron
        >>> model_step_mode(torch.nn.Sequential(torch.nn.Linear(2, 2), neuron.IFNode(step_mode="m")))
        'm'
    """
    base = import_spikingjelly().base
    from spikingjelly.activation_based import layer

    containers = (layer.StepModeContainer, layer.MultiStepContainer, layer.SeqToANNContainer,
                  layer.TLastMultiStepContainer, layer.TLastSeqToANNContainer, layer.ElementWiseRecurrentContainer,
                  layer.LinearRecurrentContainer)
    modes: dict[str, list[str]] = {"s": [], "m": []}
    pending: list[tuple[str, nn.Module]] = [("", model)]
    while pending:
        name, module = pending.pop()
        mode = None
        if isinstance(module, base.MultiStepModule):
            mode = "m"
        elif isinstance(module, base.SingleStepModule):
            mode = "s"
        elif isinstance(module, base.StepModule):
            mode = getattr(module, "_step_mode", None)
        if mode in modes:
            modes[mode].append(name or type(module).__name__)
        if not isinstance(module, containers):
            pending += [(f"{name}.{child}" if name else child, sub) for child, sub in reversed(list(module.named_children()))]
    if modes["s"] and modes["m"]:
        raise ValueError(f"model: its modules mix single-step {modes['s'][:4]} and multi-step {modes['m'][:4]} mode; "
                         "set one with spikingjelly.activation_based.functional.set_step_mode(model, 's' or 'm')")
    if not modes["s"] and not modes["m"]:
        raise ValueError(f"model: {type(model).__name__} holds no SpikingJelly step-mode module")
    return "m" if modes["m"] else "s"


def split_output(module: nn.Module, args: tuple, output: Any) -> Emitted:
    """A SpikingJelly neuron's output: the spike tensor, its membrane `v` (or `v_seq`) after the reset."""
    if not isinstance(output, Tensor):
        raise TypeError(f"model: SpikingJelly layer {type(module).__name__} returned {type(output).__name__}; "
                        "expected a spike tensor")
    voltage: Any = getattr(module, "v", None)
    if not (isinstance(voltage, Tensor) and voltage.shape == output.shape):
        voltage = vars(module).get("v_seq")
    membrane = (lambda: voltage) if isinstance(voltage, Tensor) and voltage.shape == output.shape else None
    return Emitted(output, membrane, _same)


def _same(spikes: Tensor) -> Tensor:
    return spikes


def neuron_candidates(model: nn.Module) -> list[Candidate]:
    """Every SpikingJelly spiking neuron submodule of `model` (the model itself included when it is one)."""
    return [Candidate(name or type(module).__name__, module, split_output) for name, module in model.named_modules()
            if is_spikingjelly_neuron(module)]


def _float(value: Any, what: str, name: str) -> float:
    if isinstance(value, Tensor):
        raise Untraceable(f"SpikingJelly layer {name!r} has a tensor {what}; the graph takes a float")
    return float(value)


def neuron_node(name: str, module: nn.Module, shape: tuple[int, ...]) -> NeuronNode:
    """The graph node of a SpikingJelly `IFNode`, `LIFNode` or `ParametricLIFNode` (exactly these classes:
    a subclass may compute something else), with its threshold, hard or soft reset and `decay_input`; a
    PLIF's decay is `sigmoid(w)` as SpikingJelly computes it (`tau = 1 / sigmoid(w)`). `Untraceable` for
    other neurons, a surrogate in its non-spiking (continuous) mode, and a reduced neuron precision.

    Example:
        >>> from spikingjelly.activation_based import neuron
        >>> plif = neuron.ParametricLIFNode(init_tau=2.0)
        >>> float(1 / neuron_node("plif", plif, (4,)).params.decay)
        2.0
    """
    neuron = import_spikingjelly().neuron
    kinds = {neuron.IFNode: "if", neuron.LIFNode: "lif", neuron.ParametricLIFNode: "plif"}
    kind = kinds.get(type(module))
    if kind is None:
        raise Untraceable(f"SpikingJelly {type(module).__name__} layer {name!r} has no step function in "
                          "sc_neurocore.dynamics (IFNode, LIFNode and ParametricLIFNode have)")
    if not getattr(module.surrogate_function, "spiking", True):
        raise Untraceable(f"SpikingJelly layer {name!r} has its surrogate function in non-spiking mode (it emits "
                          "the surrogate's primitive, not spikes)")
    if getattr(module, "_neuron_precision", None) is not None:
        raise Untraceable(f"SpikingJelly layer {name!r} runs at a reduced neuron precision")
    v_reset = None if module.v_reset is None else _float(module.v_reset, "v_reset", name)
    threshold = _float(module.v_threshold, "v_threshold", name)
    if kind == "if":
        params = IntegrateFireParameters(threshold, v_reset)
    elif kind == "lif":
        params = IntegrateFireParameters(threshold, v_reset, tau=_float(module.tau, "tau", name),
                                         decay_input=bool(module.decay_input))
    else:
        w = cast(Tensor, module.w)
        if w.ndim != 0:
            raise Untraceable(f"SpikingJelly ParametricLIFNode {name!r} has a per-neuron w")
        params = IntegrateFireParameters(threshold, v_reset, decay=w.detach().sigmoid(),
                                         decay_input=bool(module.decay_input))
    return NeuronNode(name, kind, shape, integrate_fire_step, params,
                      lambda like: integrate_fire_initial_state(like, params), decision=integrate_fire_decision)


class SpikingJellyModel(HookedModel):
    """A SpikingJelly network as a SpikingModel (built by `from_spikingjelly`).

    Attributes:
        module: the wrapped network.
        step_mode: `"s"` (fed one timestep per call) or `"m"` (fed the whole sequence in one call).
    """

    def __init__(self, module: nn.Module, *, step_mode: str, input_shape: Sequence[int], readout: str | None) -> None:
        self.step_mode = step_mode
        super().__init__(module, neuron_candidates(module), input_shape=input_shape, readout=readout)

    def _default_readout(self) -> str:
        return "rate"

    @property
    def fixed_structure(self) -> bool:
        """Whether the network is a plain stack: an `nn.Sequential` of layers, containers and neurons that
        torch and SpikingJelly themselves define (run in evaluation mode, as every adapter call runs). Such
        a forward never branches on its input, so its graph, verified once per input shape, stays verified;
        a network with its own `forward` (or a layer subclassed outside those two packages) is checked on
        every call."""
        if type(self.module) is not nn.Sequential:
            return False
        return all(type(module).__module__.startswith(_STRUCTURAL_PACKAGES) for module in self.module.modules())

    def linear_weights(self) -> list[Tensor] | None:
        """The `(n_in, n_out)` weight chain of a network of Linear layers and neurons (Flatten and Dropout
        aside), read from its traced graph; `None` for convolutions, pooling or a network the graph
        cannot trace."""
        reference = next((t for t in (*self.module.parameters(), *self.module.buffers()) if t.is_floating_point()),
                         torch.zeros(()))
        self._known()
        traced = self._traces()
        key = (_WEIGHT_STEPS, reference.dtype, reference.device)
        if key not in traced:
            traced[key] = self._trace(_WEIGHT_STEPS, reference.device)
        graph = traced[key][0]
        return None if graph is None else graph.linear_weights()

    def _drive(self, inputs: Tensor) -> Any:
        if self.step_mode == "m":
            return self.module(inputs)
        return torch.stack([self.module(step) for step in inputs])  # time is sequential

    def _discover(self, steps: int) -> None:
        super()._discover(steps)
        self._check_output(steps)

    def _check_output(self, steps: int) -> None:
        """Refuse a network whose output is not its last neuron layer's spikes (the readout reads those)."""
        last = self._layers[-1]
        probe = self._random_probe(steps)
        emitted: list[Tensor] = []

        def capture(module: nn.Module, args: tuple, output: Any) -> None:
            emitted.append(split_output(module, args, output).spikes)

        with torch.inference_mode(), self._session([(last.module, capture)]):
            returned = self._drive(self._model_inputs(probe))
        last_spikes = emitted[0] if len(emitted) == 1 else torch.stack(emitted)  # one sequence, or a call per step
        if (not isinstance(returned, Tensor) or returned.shape != last_spikes.shape
                or not torch.equal(returned, last_spikes)):
            raise ValueError(f"model: {type(self.module).__name__} does not return the spikes of its last neuron layer "
                             f"{last.name!r}, which the readout reads; end the network in a neuron layer, or wrap a "
                             "module with its own time loop with from_module(model, time_first=True)")


def from_spikingjelly(model: nn.Module, step_mode: str | None = None, input_shape: int | Sequence[int] | None = None,
                      readout: str | None = None) -> SpikingJellyModel:
    """Wrap a SpikingJelly network for the explainers (and Captum).

    Args:
        model: a network of `spikingjelly.activation_based` modules ending in a neuron layer, never modified:
            its memories, `training` flags and `v_seq` are restored after every call.
        step_mode: `"s"` or `"m"` (see the module docstring); `None` reads it from the model's modules and
            refuses a mix. A value that disagrees with the modules is refused (set it with
            `functional.set_step_mode(model, step_mode)`).
        input_shape: the per-timestep input shape, e.g. `(1, 8, 8)` for a convolutional network; default:
            the first Linear's `in_features`.
        readout: `"rate"` (default, SpikingJelly's mean firing rate), `"count"`, `"final_membrane"` or
            `"max_membrane"`, of the last neuron layer.

    Returns:
        A SpikingModel and `nn.Module`; `adapter.module` is `model`.

    Example:
        >>> from spikingjelly.activation_based import layer, neuron
        >>> net = torch.nn.Sequential(layer.Linear(8, 4), neuron.LIFNode(), layer.Linear(4, 2), neuron.IFNode())
        >>> model = from_spikingjelly(net)
        >>> model.step_mode, model.neuron_layers, model.readout
        ('s', {'1': 4, '3': 2}, 'rate')
        >>> model.run(torch.ones(3, 10, 8)).shape
        torch.Size([3, 2])
    """
    import_spikingjelly()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a SpikingJelly nn.Module, got {type(model).__name__}")
    found = model_step_mode(model)
    if step_mode is not None and step_mode not in STEP_MODES:
        raise ValueError(f"step_mode: expected 's', 'm' or None, got {step_mode!r}")
    if step_mode is not None and step_mode != found:
        raise ValueError(f"step_mode: {step_mode!r} was given but the model's modules are in {found!r} mode; call "
                         f"spikingjelly.activation_based.functional.set_step_mode(model, {step_mode!r}) first, or "
                         "leave step_mode unset")
    if readout is not None:
        check_readout(readout)
    if not neuron_candidates(model):
        raise ValueError(f"model: {type(model).__name__} holds no SpikingJelly spiking neuron")
    shape = infer_input_shape(model, input_shape)
    try:
        return SpikingJellyModel(model, step_mode=found, input_shape=shape, readout=readout)
    except ValueError as error:
        if isinstance(model, nn.Sequential):
            raise
        raise ValueError(f"{error}. from_spikingjelly feeds {type(model).__name__} as its step mode {found!r} says ("
                         f"{'the whole (T, B, ...) sequence in one call' if found == 'm' else 'one (B, ...) step per call'}"
                         "); if its forward runs its own time loop, wrap it with from_module(model, time_first=True)") \
            from error


def memory_attributes(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """Where SpikingJelly keeps neuron state on `model` between calls: every memory module's `_memories`
    (its `v`, ...) and `v_seq`, the attributes `fresh_memories` empties and restores.

    Example:
        >>> from spikingjelly.activation_based import neuron
        >>> node = neuron.IFNode()
        >>> [name for _, name in memory_attributes(torch.nn.Sequential(node))]
        ['_memories', 'v_seq']
    """
    return [(module, name) for module in memory_modules(model) for name in ("_memories", "v_seq")]


FRAMEWORK = Framework("spikingjelly", "spikingjelly", is_spikingjelly_neuron, neuron_node, from_spikingjelly,
                      "spikingjelly.activation_based.functional.reset_net(model)", fresh_memories, memory_attributes)
