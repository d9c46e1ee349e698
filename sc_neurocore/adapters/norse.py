"""Norse models as `SpikingModel`s: `from_norse`, and the Norse entry of the framework registry.

A Norse `SequentialState` of torch layers (`Linear`, `Conv2d`, pooling, `Flatten`, ...) and neurons
(`LIF`, `LIFCell`, `LIFRecurrentCell`, `LIFBoxCell`, `LI`, `LICell`, `LILinearCell`, `LIBoxCell`) is
driven the way a Norse user drives it, starting from `None` (rest) on every call:

| its neurons | fed |
|---|---|
| cells only (`LIFCell`, `LICell`, ...) | one `(B, ...)` step per call (a `Conv2d` gets 4-D steps) |
| sequence-level only (`LIF`, `LI`, `Lift`), none recurrent | the whole `(T, B, ...)` sequence, once |
| cells and sequence-level layers, or a `LIFRecurrent` | `(1, B, ...)` one-step chunks |

Fed step by step, the state list is carried from call to call.

Norse neurons return `(z, state)`; the hooks silence `z` and keep the state (a recurrent Norse layer
also feeds back the silenced spikes: `state.z` is replaced). Membranes come from `state.v`; a
sequence-level layer called on the whole sequence returns only its last state, so its membranes are
not observable (recorded as `NaN`) unless it was built with `record_states=True`. A leaky
integrator (`LI`, `LICell`, `LILinearCell`, `LIBoxCell`) emits its voltage, not spikes, so a model ending
in one reads out `"max_membrane"` by default (the max-over-time decoder of Norse's tutorials),
`"final_membrane"` being the other choice; `"count"` and `"rate"` are refused for it.

Any other Norse module, one with its own time loop (Norse's tutorial style), is called once on the whole
sequence as `sc_neurocore.adapters.from_module` does; when its last neuron layer is a leaky integrator,
the `(T, B, C)` record it returns is read as that layer's voltage trace. A Norse cell takes one timestep
per call, so a module that feeds a cell several timesteps at once is refused, not reinterpreted.

For the traced model graph, `neuron_node` turns each Norse neuron into a node of the current-based step
functions of `sc_neurocore.dynamics.current`; the input weights of `LIFRecurrentCell` / `LIFRecurrent` /
`LILinearCell` become a `Dense` map in front of it. Only threshold methods whose forward is the
Heaviside step (`HEAVISIDE_METHODS`) are modelled.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..dynamics import current as dynamics
from ..extras import missing_extra
from ..graph.maps import Dense, LinearMap
from ..graph.neurons import NeuronNode
from .hooked import Candidate, Emitted, HookedModel, infer_input_shape
from .module import ModuleModel
from .readout import MEMBRANE_READOUTS, check_readout
from .registry import Framework, frameworks_in
from .stack import StackLayer, linear_chain, structure_params
from .torch_maps import Untraceable

#: Norse threshold methods whose forward pass is the Heaviside step (they differ only in the surrogate
#: gradient, which the explainers never use).
HEAVISIDE_METHODS = ("super", "heaviside", "triangle", "tanh", "circ", "heavi_erfc")


def import_norse():
    """`norse.torch`, or an ImportError naming the extra that installs it."""
    try:
        import norse.torch
    except ImportError as error:
        raise missing_extra("sc_neurocore.adapters.from_norse needs Norse", "norse") from error
    return norse.torch


def _norse_classes() -> tuple[tuple[type[nn.Module], ...], tuple[type[nn.Module], ...]] | None:
    """`(neuron classes, leaky-integrator classes)` if Norse is loaded, without importing it otherwise."""
    norse = sys.modules.get("norse.torch")
    if norse is None:
        return None
    from norse.torch.module.snn import SNN, SNNCell, SNNRecurrent, SNNRecurrentCell

    integrators = (norse.LI, norse.LICell, norse.LILinearCell, norse.LIBoxCell)
    return (SNN, SNNCell, SNNRecurrent, SNNRecurrentCell, *integrators), integrators


def is_norse_neuron(module: nn.Module) -> bool:
    """Whether `module` is a Norse neuron layer (without importing Norse if it is not loaded).

    Example:
        >>> import torch, norse.torch as norse
        >>> is_norse_neuron(norse.LIFCell()), is_norse_neuron(torch.nn.Linear(2, 2))
        (True, False)
    """
    classes = _norse_classes()
    return classes is not None and isinstance(module, classes[0])


def _is_cell(module: nn.Module) -> bool:
    """A Norse layer that takes one timestep per call (`LIFCell`, `LICell`, `LILinearCell`, ...)."""
    from norse.torch.module.snn import SNNCell, SNNRecurrentCell

    return isinstance(module, (SNNCell, SNNRecurrentCell, sys.modules["norse.torch"].LILinearCell))


def _is_sequence_level(module: nn.Module) -> bool:
    """A Norse layer that reads the first axis of its input as time (`LIF`, `LI`, `LIFRecurrent`, `Lift`)."""
    from norse.torch.module.snn import SNN, SNNRecurrent

    return isinstance(module, (SNN, SNNRecurrent, sys.modules["norse.torch"].Lift))


def split_output(module: nn.Module, args: tuple, output: Any) -> Emitted:
    """A Norse neuron's `(z, state)` taken apart: spikes `z`, membrane `state.v`, rebuild."""
    if not (isinstance(output, tuple) and len(output) == 2 and isinstance(output[0], Tensor)):
        raise TypeError(f"model: Norse layer {type(module).__name__} returned {type(output).__name__}; expected "
                        "a (z, state) tuple")
    z, state = output
    voltage = getattr(state, "v", None)
    membrane = None
    if isinstance(voltage, Tensor) and (voltage.shape == z.shape or (z.ndim == voltage.ndim + 1 and z.shape[0] == 1
                                                                      and z.shape[1:] == voltage.shape)):
        # The state holds the membrane of the step (of a one-step chunk's step) the layer just ran.
        membrane = functools.partial(torch.reshape, voltage, z.shape)

    def rebuild(spikes: Tensor) -> tuple[Tensor, Any]:
        # A recurrent layer feeds back state.z: the silenced spikes, not the computed ones (of the chunk's
        # last step when the layer was fed a one-step chunk `(1, B, ...)`).
        recurrent = getattr(state, "z", None)
        if not isinstance(recurrent, Tensor) or not hasattr(state, "_replace"):
            return spikes, state
        if recurrent.shape == spikes.shape:
            return spikes, state._replace(z=spikes)
        if spikes.ndim == recurrent.ndim + 1 and spikes.shape[1:] == recurrent.shape:
            return spikes, state._replace(z=spikes[-1])
        return spikes, state

    return Emitted(z, membrane, rebuild)


def neuron_candidates(model: nn.Module) -> list[Candidate]:
    """Every Norse neuron submodule of `model` (empty when Norse is not loaded)."""
    classes = _norse_classes()
    if classes is None:
        return []
    neurons, integrators = classes
    return [Candidate(name, module, split_output, spiking=not isinstance(module, integrators))
            for name, module in model.named_modules() if name and isinstance(module, neurons)]


# -- the graph node of a Norse neuron ---------------------------------------------------------------------

def _value(value: Any) -> Any:
    """A parameter field as Norse uses it, detached when it is a tensor (same values, no autograd)."""
    return value.detach() if isinstance(value, Tensor) else value


def _input_weights(name: str, module: nn.Module, shape: tuple[int, ...]) -> Dense:
    """The `Dense` map of a Norse layer's own `input_weights` (`F.linear(x, input_weights)`, no bias)."""
    weights = _value(module.input_weights)
    if len(shape) != 1 or weights.ndim != 2 or weights.shape[0] != shape[0]:
        raise Untraceable(f"Norse {type(module).__name__} layer {name!r} with input weights "
                          f"{tuple(weights.shape)} emitting shape {shape}")
    return Dense((weights.shape[1],), shape, weights, None)


def _check_method(name: str, module: nn.Module) -> None:
    method = getattr(module.p, "method", None)
    if method not in HEAVISIDE_METHODS:
        raise Untraceable(f"Norse layer {name!r} uses threshold method {method!r}, whose forward pass is not the "
                          f"Heaviside step (the graph models {', '.join(HEAVISIDE_METHODS)})")


def _box_reset(name: str, module: nn.Module) -> dynamics.BoxReset:
    from norse.torch.functional.reset import reset_subtract, reset_value

    reset = getattr(module.p, "reset_method", None)
    if reset is reset_value:
        return "value"
    if reset is reset_subtract:
        return "subtract"
    raise Untraceable(f"Norse LIFBoxCell layer {name!r} with reset method {getattr(reset, '__name__', reset)!r} "
                      "(the graph models reset_value and reset_subtract)")


def neuron_node(name: str, module: nn.Module,
                shape: tuple[int, ...]) -> NeuronNode | tuple[tuple[LinearMap, ...], NeuronNode]:
    """The graph node of a Norse neuron emitting per-sample `shape`, with its own parameters and `dt`.

    `LIF` / `LIFCell` / `LIFRecurrentCell` / `LIFRecurrent` step by `current_lif_step`, `LIFBoxCell` by
    `current_lif_box_step`, `LI` / `LICell` / `LILinearCell` by `current_li_step` and `LIBoxCell` by
    `current_li_box_step` (all in `sc_neurocore.dynamics.current`). A layer with its own input weights
    gives `(pre_maps, node)`: the `Dense` map of those weights runs in front of the node. `Untraceable`
    for a threshold method whose forward is not the Heaviside step, an unknown reset method, and Norse
    neurons the dynamics do not implement.

    Example:
        >>> import norse.torch as norse
        >>> neuron_node("1", norse.LIFCell(), (4,)).kind
        'lif_cell'
        >>> pre, node = neuron_node("0", norse.LIFRecurrentCell(8, 4), (4,))
        >>> pre[0].in_shape, node.feedback
        ((8,), 'spikes')
    """
    norse = import_norse()
    kind = type(module)
    p: Any = module.p
    dt: Any = module.dt  # as Norse uses it
    if kind in (norse.LIF, norse.LIFCell, norse.LIFRecurrentCell, norse.LIFRecurrent):
        _check_method(name, module)
        recurrent = kind in (norse.LIFRecurrentCell, norse.LIFRecurrent)
        feedback = Dense(shape, shape, _value(module.recurrent_weights), None).forward if recurrent else None
        params = dynamics.CurrentLIFParameters(_value(p.tau_syn_inv), _value(p.tau_mem_inv), _value(p.v_leak),
                                               _value(p.v_th), _value(p.v_reset), dt, feedback)
        node = NeuronNode(name, layer_kind(module), shape, dynamics.current_lif_step, params,
                          functools.partial(dynamics.current_lif_initial_state, params=params),
                          feedback="spikes" if recurrent else None, decision=dynamics.current_lif_decision)
        return ((_input_weights(name, module, shape),), node) if recurrent else node
    if kind is norse.LIFBoxCell:
        _check_method(name, module)
        box = dynamics.CurrentLIFBoxParameters(_value(p.tau_mem_inv), _value(p.v_leak), _value(p.v_th),
                                               _value(p.v_reset), _box_reset(name, module), dt)
        return NeuronNode(name, "lif_box_cell", shape, dynamics.current_lif_box_step, box,
                          functools.partial(dynamics.current_box_initial_state, params=box),
                          decision=dynamics.current_lif_box_decision)
    if kind in (norse.LI, norse.LICell, norse.LILinearCell):
        li = dynamics.CurrentLIParameters(_value(p.tau_syn_inv), _value(p.tau_mem_inv), _value(p.v_leak), dt)
        node = NeuronNode(name, layer_kind(module), shape, dynamics.current_li_step, li,
                          functools.partial(dynamics.current_li_initial_state, params=li), spiking=False)
        return ((_input_weights(name, module, shape),), node) if kind is norse.LILinearCell else node
    if kind is norse.LIBoxCell:
        li_box = dynamics.CurrentLIBoxParameters(_value(p.tau_mem_inv), _value(p.v_leak), dt)
        return NeuronNode(name, "li_box_cell", shape, dynamics.current_li_box_step, li_box,
                          functools.partial(dynamics.current_box_initial_state, params=li_box), spiking=False)
    raise Untraceable(f"Norse {kind.__name__} layer {name!r} has no step function in sc_neurocore.dynamics")


# -- SequentialState stacks ---------------------------------------------------------------------------------

def layer_kind(module: nn.Module) -> str:
    """The `StackLayer` kind of one entry of a `SequentialState`."""
    norse = import_norse()
    kinds = [(nn.Linear, "linear"), (nn.Conv2d, "conv2d"), (nn.Flatten, "flatten"), (nn.Dropout, "dropout"),
             (norse.LIF, "lif"), (norse.LIFCell, "lif_cell"), (norse.LIFRecurrentCell, "lif_recurrent_cell"),
             (norse.LIFRecurrent, "lif_recurrent"), (norse.LIFBoxCell, "lif_box_cell"), (norse.LI, "li"),
             (norse.LICell, "li_cell"), (norse.LILinearCell, "li_linear_cell"), (norse.LIBoxCell, "li_box_cell")]
    return next((kind for cls, kind in kinds if type(module) is cls), "other")


def layer_params(module: nn.Module, kind: str) -> dict[str, Any]:
    """The numbers that define one layer: a Linear's weights, or Norse's parameter fields plus `dt`."""
    structure = structure_params(module, kind)
    if structure is not None:
        return structure
    params = getattr(module, "p", None)
    if params is None or not hasattr(params, "_asdict"):
        return {}
    values: dict[str, Any] = {**params._asdict(), "dt": getattr(module, "dt", None)}
    if kind == "li_linear_cell":
        values["input_weights"] = _value(module.input_weights)
    return values


class NorseSequential(HookedModel):
    """A Norse `SequentialState` as a SpikingModel (built by `from_norse`).

    Attributes:
        module: the wrapped `SequentialState`.
        stack: the ordered `StackLayer` description of it.
        feed: how it is driven (see the module docstring): `"step"` (`(B, ...)` per call), `"chunk"`
            (`(1, B, ...)` per call) or `"sequence"` (all timesteps in one call).
    """

    def __init__(self, module: nn.Module, *, input_shape: Sequence[int], readout: str | None) -> None:
        stack = []
        flags: Any = module.stateful_layers
        for name, child in module.named_children():
            kind = layer_kind(child)
            stateful = bool(flags[int(name)])
            stack.append(StackLayer(name, kind, child, stateful, layer_params(child, kind)))
        if not stack or not stack[-1].neuron:
            raise ValueError("model: the last entry of a Norse SequentialState must be a neuron layer (LIF, LI, "
                             "LICell, LILinearCell, ...); its output is the readout")
        self.stack = tuple(stack)
        self.feed = _feed(module)
        super().__init__(module, neuron_candidates(module), input_shape=input_shape, readout=readout)

    def linear_weights(self) -> list[Tensor] | None:
        return linear_chain(self.stack or ())

    def _check_time_dependence(self, probe: Tensor) -> None:
        """Nothing to check: `feed` gives a cell one timestep per call by construction, and only Norse's
        sequence-level layers the whole sequence (the generic check could mistake a weakly driven LIF
        stack, whose membranes a whole-sequence call hides, for a step-wise one)."""

    def _drive(self, inputs: Tensor) -> None:
        if self.feed == "sequence":
            self.module(inputs)
            return
        state = None  # Norse's rest state, for every layer, on every call
        for t in range(inputs.shape[0]):  # time is sequential
            _, state = self.module(inputs[t:t + 1] if self.feed == "chunk" else inputs[t], state)


def _feed(module: nn.Module) -> str:
    """How a `SequentialState` is driven over time: `"step"`, `"chunk"` or `"sequence"`."""
    from norse.torch.module.snn import SNNRecurrent

    children = list(module.children())
    if not any(_is_sequence_level(child) for child in children):
        return "step"
    # A cell would read a whole sequence as one step; a recurrent sequence-level layer fed the whole
    # sequence would feed back spikes the hooks never silence.
    if any(_is_cell(child) or isinstance(child, SNNRecurrent) for child in children):
        return "chunk"
    return "sequence"


# -- modules with their own time loop ------------------------------------------------------------------------

class NorseModule(ModuleModel):
    """A Norse module with its own time loop, called once on the whole sequence (built by `from_norse`)."""

    def __init__(self, module: nn.Module, *, time_first: bool, input_shape: Sequence[int], readout: str | None,
                 n_steps: int | None = None) -> None:
        super().__init__(module, time_first=time_first, input_shape=input_shape, readout=readout,
                         candidates=neuron_candidates(module), n_steps=n_steps)

    def _output_integrator(self) -> bool:
        return bool(self._layers) and not self._layers[-1].spiking

    def _choose_readout(self, readout: str | None) -> str:
        if not self._output_integrator():
            return super()._choose_readout(readout)
        readout = "max_membrane" if readout is None else check_readout(readout)
        if readout not in MEMBRANE_READOUTS:
            raise ValueError(f"readout: the output layer {self._layers[-1].name!r} is a leaky integrator and emits "
                             f"no spikes, so {readout!r} is meaningless; use 'max_membrane' or 'final_membrane'")
        return readout

    def _activity(self, returned: Any, batch: int) -> tuple[Tensor | None, Tensor | None] | Tensor:
        activity = super()._activity(returned, batch)
        if isinstance(activity, Tensor) or not self._output_integrator():
            return activity
        return None, activity[0]  # the record is the output leaky integrator's voltage trace

    def _check_time_dependence(self, probe: Tensor) -> None:
        """Refuse a module that feeds a Norse cell all timesteps in one call (the cell would integrate them
        as one step of a larger batch), then the generic check."""
        for layer in self._layers:
            if layer.whole_sequence and _is_cell(layer.module):
                raise ValueError(f"model: Norse {type(layer.module).__name__} layer {layer.name!r} takes one timestep "
                                 f"per call, but {type(self.module).__name__} fed it all {probe.shape[1]} timesteps "
                                 "in one call; loop over time in its forward, or put the layers in a "
                                 "norse.SequentialState")
        super()._check_time_dependence(probe)


def from_norse(model: nn.Module, *, readout: str | None = None, input_shape: int | Sequence[int] | None = None,
               time_first: bool = True, n_steps: int | None = None) -> HookedModel:
    """Wrap a Norse model for the explainers (and Captum).

    Args:
        model: a `SequentialState` stack, or another Norse module taking the whole sequence (see the
            module docstring). Never modified.
        readout: `"count"` (default for a spiking output layer), `"rate"`, `"final_membrane"` or
            `"max_membrane"` (default for a leaky-integrator output layer, for which `"count"` and
            `"rate"` are refused).
        input_shape: per-timestep input shape, e.g. `(1, 28, 28)` for a convolutional stack; default:
            the first Linear's `in_features`.
        time_first: for a module that is not a `SequentialState`: whether it takes `(T, B, ...)`.
        n_steps: for a module that is not a `SequentialState` and loops over a fixed number of timesteps:
            that number (see `from_module`); default: found at the first call.

    Returns:
        A `SpikingModel` and `nn.Module`; `adapter.module` is `model`.

    Raises:
        ValueError: `model` holds no Norse neuron (the message names the adapter to use instead), or it
            feeds a Norse cell several timesteps at once.

    Example:
        >>> import torch, norse.torch as norse
        >>> net = norse.SequentialState(torch.nn.Linear(8, 4), norse.LIFCell(), torch.nn.Linear(4, 2), norse.LI())
        >>> model = from_norse(net)
        >>> model.neuron_layers, model.readout, model.feed
        ({'1': 4, '3': 2}, 'max_membrane', 'chunk')
        >>> model.run(torch.ones(3, 10, 8)).shape
        torch.Size([3, 2])
    """
    norse = import_norse()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a Norse nn.Module, got {type(model).__name__}")
    frameworks = [framework.name for framework in frameworks_in(model)]
    if "norse" not in frameworks:
        if frameworks:
            raise ValueError(f"model: {type(model).__name__} is built from {frameworks[0]} neurons, not Norse ones; "
                             f"wrap it with sc_neurocore.adapters.from_{frameworks[0]}(model)")
        raise ValueError(f"model: {type(model).__name__} holds no Norse neuron (LIF, LIFCell, LICell, ...); wrap a "
                         "plain torch module with sc_neurocore.adapters.from_module(model, time_first=..., "
                         "neuron_layers=[...])")
    if _is_cell(model):
        raise ValueError(f"model: a bare Norse {type(model).__name__} takes one timestep per call; put it in a "
                         "norse.SequentialState (from_norse drives it step by step) or a module with its own time loop")
    shape = infer_input_shape(model, input_shape)
    if isinstance(model, norse.SequentialState):
        if model.return_hidden:
            raise ValueError("model: a SequentialState built with return_hidden=True returns every layer's output; "
                             "build it without, the adapter records hidden layers itself")
        return NorseSequential(model, input_shape=shape, readout=readout)
    return NorseModule(model, time_first=time_first, input_shape=shape, readout=readout, n_steps=n_steps)


FRAMEWORK = Framework("norse", "norse", is_norse_neuron, neuron_node, from_norse,
                      "Norse keeps no state on its modules: call the model with state=None")
