"""Norse models as `SpikingModel`: `from_norse`.

A Norse ``SequentialState`` of ``Linear`` layers and neurons (``LIF``, ``LIFCell``, ``LIFBoxCell``,
``LI``, ``LICell``, ``LILinearCell``) is driven one timestep at a time, carrying Norse's explicit state
list from step to step and starting from ``None`` (rest) on every call. Each step feeds a ``(1, B, N)``
slice, which sequence-level modules (``LIF``, ``LI``) read as one timestep and cells as one more batch
axis, so mixed stacks work and give exactly what one call on the whole sequence gives.

Norse neurons return ``(z, state)``; the hooks silence ``z`` and keep the state (for a recurrent
Norse layer, the spikes kept in the state for the recurrence are silenced too). Membranes come from
``state.v``. A leaky integrator (``LI``, ``LICell``, ``LILinearCell``) emits its voltage, not spikes,
so a stack ending in one reads out ``"max_membrane"`` by default (the max-over-time decoder of Norse's
tutorials); ``"final_membrane"`` is the other choice. Any other Norse module with its own time loop is
wrapped through `from_module`, called once on the whole sequence.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from ..extras import missing_extra
from .hooked import Candidate, Emitted, HookedModel, infer_input_shape
from .registry import Framework
from .stack import StackLayer, linear_chain, structure_params


def import_norse():
    """``norse.torch``, or an ImportError naming the extra that installs it."""
    try:
        import norse.torch
    except ImportError as error:
        raise missing_extra("sc_neurocore.adapters.from_norse needs Norse", "norse") from error
    return norse.torch


def _norse_classes() -> tuple[tuple[type, ...], tuple[type, ...]] | None:
    """``(neuron classes, leaky-integrator classes)`` if Norse is loaded, without importing it otherwise."""
    if "norse.torch" not in sys.modules:
        return None
    norse = sys.modules["norse.torch"]
    from norse.torch.module.snn import SNN, SNNCell, SNNRecurrent, SNNRecurrentCell

    integrators = (norse.LI, norse.LICell, norse.LILinearCell, norse.LIBoxCell)
    return (SNN, SNNCell, SNNRecurrent, SNNRecurrentCell, *integrators), integrators


def split_output(module: nn.Module, args: tuple, output: Any) -> Emitted:
    """A Norse neuron's ``(z, state)`` taken apart: spikes ``z``, membrane ``state.v``, rebuild."""
    if not (isinstance(output, tuple) and len(output) == 2 and isinstance(output[0], Tensor)):
        raise TypeError(f"model: Norse layer {type(module).__name__} returned {type(output).__name__}; expected "
                        "a (z, state) tuple")
    z, state = output
    voltage = getattr(state, "v", None)
    membrane = (lambda: voltage) if isinstance(voltage, Tensor) and voltage.shape == z.shape else None

    def rebuild(spikes: Tensor) -> tuple[Tensor, Any]:
        # A recurrent layer feeds back state.z: the silenced spikes, not the computed ones.
        recurrent = getattr(state, "z", None)
        if isinstance(recurrent, Tensor) and recurrent.shape == spikes.shape and hasattr(state, "_replace"):
            return spikes, state._replace(z=spikes)
        return spikes, state

    return Emitted(z, membrane, rebuild)


def neuron_candidates(model: nn.Module) -> list[Candidate]:
    """Every Norse neuron submodule of ``model`` (empty when Norse is not loaded)."""
    classes = _norse_classes()
    if classes is None:
        return []
    neurons, integrators = classes
    return [Candidate(name, module, split_output, spiking=not isinstance(module, integrators))  # type: ignore[arg-type]
            for name, module in model.named_modules() if name and isinstance(module, neurons)]


def layer_kind(module: nn.Module) -> str:
    """The `StackLayer` kind of one entry of a ``SequentialState``."""
    norse = import_norse()
    kinds = [(nn.Linear, "linear"), (nn.Flatten, "flatten"), (nn.Dropout, "dropout"), (norse.LIF, "lif"),
             (norse.LIFCell, "lif_cell"), (norse.LIFBoxCell, "lif_box_cell"), (norse.LI, "li"),
             (norse.LICell, "li_cell"), (norse.LILinearCell, "li_linear_cell")]
    return next((kind for cls, kind in kinds if type(module) is cls), "other")


def layer_params(module: nn.Module, kind: str) -> dict[str, Any]:
    """The numbers that define one layer: a Linear's weights, or Norse's parameter fields plus ``dt``."""
    structure = structure_params(module, kind)
    if structure is not None:
        return structure
    params = getattr(module, "p", None)
    if params is None or not hasattr(params, "_asdict"):
        return {}
    values: dict[str, Any] = {**params._asdict(), "dt": getattr(module, "dt", None)}
    if kind == "li_linear_cell":
        values["input_weights"] = module.input_weights.detach()  # type: ignore[operator]
    return values


class NorseSequential(HookedModel):
    """A Norse ``SequentialState`` as a SpikingModel (built by `from_norse`).

    Attributes:
        module: the wrapped ``SequentialState``.
        stack: the ordered `StackLayer` description of it.
    """

    def __init__(self, module: nn.Module, *, input_shape: Sequence[int], readout: str | None) -> None:
        stack = []
        for name, child in module.named_children():
            kind = layer_kind(child)
            stateful = bool(module.stateful_layers[int(name)])  # type: ignore[index]
            stack.append(StackLayer(name, kind, child, stateful, layer_params(child, kind)))
        if not stack or not stack[-1].neuron:
            raise ValueError("model: the last entry of a Norse SequentialState must be a neuron layer (LIF, LI, "
                             "LICell, LILinearCell, ...); its output is the readout")
        self.stack = tuple(stack)
        super().__init__(module, neuron_candidates(module), input_shape=input_shape, readout=readout)

    def linear_weights(self) -> list[Tensor] | None:
        return linear_chain(self.stack)  # type: ignore[arg-type]

    def _drive(self, inputs: Tensor) -> None:
        state = None  # Norse's rest state, for every layer, on every call
        for t in range(inputs.shape[0]):  # time is sequential
            _, state = self.module(inputs[t:t + 1], state)


def from_norse(model: nn.Module, *, readout: str | None = None, input_shape: int | Sequence[int] | None = None,
               time_first: bool = True) -> HookedModel:
    """Wrap a Norse model for the explainers (and Captum).

    Args:
        model: a ``SequentialState`` stack, or another Norse module taking the whole sequence (wrapped as
            `from_module` does, reading the first element of what it returns).
        readout: ``"count"`` (default for a spiking output layer), ``"rate"``, ``"final_membrane"`` or
            ``"max_membrane"`` (default for a leaky-integrator output layer).
        input_shape: per-timestep input shape; default: the first Linear's ``in_features``.
        time_first: for a module that is not a ``SequentialState``: whether it takes ``(T, B, ...)``.

    Returns:
        A `SpikingModel` and ``nn.Module``; ``adapter.module`` is ``model``.

    Example:
        >>> import torch, norse.torch as norse
        >>> net = norse.SequentialState(torch.nn.Linear(8, 4), norse.LIFCell(), torch.nn.Linear(4, 2), norse.LI())
        >>> model = from_norse(net)
        >>> model.neuron_layers, model.readout
        ({'1': 4, '3': 2}, 'max_membrane')
        >>> model.run(torch.ones(3, 10, 8)).shape
        torch.Size([3, 2])
    """
    norse = import_norse()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a Norse nn.Module, got {type(model).__name__}")
    shape = infer_input_shape(model, input_shape)
    if isinstance(model, norse.SequentialState):
        if model.return_hidden:
            raise ValueError("model: a SequentialState built with return_hidden=True returns every layer's output; "
                             "build it without, the adapter records hidden layers itself")
        return NorseSequential(model, input_shape=shape, readout=readout)
    from .module import ModuleModel

    return ModuleModel(model, time_first=time_first, input_shape=shape, readout=readout,
                       candidates=neuron_candidates(model))


def _is_norse_neuron(module: nn.Module) -> bool:
    classes = _norse_classes()
    return classes is not None and isinstance(module, classes[0] + classes[1])


def _neuron_node(name: str, module: nn.Module, shape: tuple[int, ...]):
    from .torch_maps import Untraceable

    raise Untraceable(f"Norse {type(module).__name__} layer {name!r}: no graph node yet")


FRAMEWORK = Framework("norse", "norse", _is_norse_neuron, _neuron_node, lambda model, **options: from_norse(model, **options),
                      "a fresh state (None) at every call of the module")
