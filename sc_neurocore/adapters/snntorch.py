"""snnTorch models as `SpikingModel`: `from_snntorch`.

Three forms of snnTorch model are understood:

* an ``nn.Sequential`` of ``Linear`` / ``Conv2d`` / ``Flatten`` / ``Dropout`` and step-wise neurons
  (``snn.Leaky``, ``snn.Synaptic``, ``snn.Alpha``, ``snn.RLeaky``) built with ``init_hidden=True``, the
  last one with ``output=True``: the adapter feeds it one timestep at a time;
* an ``nn.Sequential`` of sequence-level ``snn.LeakyParallel`` layers (with optional ``Dropout``): fed
  all ``T`` timesteps at once;
* any other ``nn.Module`` whose ``forward`` runs its own time loop with explicit state (the snnTorch
  tutorials' style) and returns the output spike record ``(T, B, C)`` or ``(spk_rec, mem_rec)``.

Neuron layers are the snnTorch neurons the model calls, named as in ``model.named_modules()`` (``"1"``
for the second entry of a Sequential, ``"lif1"`` for an attribute). Their outputs come in several
forms: a bare ``spk`` from a hidden ``init_hidden`` layer, ``(spk, mem)`` from an ``output=True`` layer
or one called with explicit state, ``(spk, syn, mem)`` from ``Synaptic``. The hooks take the spikes as
the first element of a tuple and never index ``[0]`` of a bare tensor (that would take the first batch
row instead, neurobench#258). A silenced recurrent neuron (``RLeaky``) also stops feeding its own
layer: the spikes the layer keeps for its recurrence are silenced too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from ..dynamics import (
    LIFParameters,
    RecurrentLIFParameters,
    SynapticParameters,
    lif_initial_state,
    lif_step,
    recurrent_lif_initial_state,
    recurrent_lif_step,
    synaptic_initial_state,
    synaptic_step,
)
from ..extras import missing_extra
from ..graph.neurons import NeuronNode
from .hooked import Candidate, Emitted, HookedModel, infer_input_shape
from .registry import Framework
from .stack import StackLayer, linear_chain, structure_params
from .torch_maps import Untraceable, torch_map

#: Neuron state snnTorch keeps on the module (non-persistent buffers), emptied before every call.
STATE_BUFFERS: tuple[str, ...] = ("mem", "syn", "syn_exc", "syn_inh", "spk")


def import_snntorch():
    """``snntorch``, or an ImportError naming the extra that installs it."""
    try:
        import snntorch
    except ImportError as error:
        raise missing_extra("sc_neurocore.adapters.from_snntorch needs snnTorch", "snntorch") from error
    return snntorch


def is_snntorch_neuron(module: nn.Module) -> bool:
    """Whether ``module`` is an snnTorch neuron layer (without importing snnTorch if it is not loaded)."""
    import sys

    snntorch = sys.modules.get("snntorch")
    if snntorch is None:
        return False
    return isinstance(module, (snntorch.SpikingNeuron, snntorch.LeakyParallel))


def split_output(module: nn.Module, args: tuple, output: Any) -> Emitted:
    """An snnTorch neuron's output taken apart: spikes, membrane, and how to put new spikes back."""
    import snntorch

    if isinstance(output, Tensor):
        if isinstance(module, snntorch.LeakyParallel):
            # Its membrane is the RNN's output before the threshold; recomputed only when recorded.
            return Emitted(output, lambda: module.rnn(args[0])[0], _same)
        return Emitted(output, _attribute_membrane(module, output), _same)
    if isinstance(output, tuple) and len(output) >= 2 and isinstance(output[0], Tensor):
        rest = output[1:]
        return Emitted(output[0], lambda: output[-1], lambda spikes: (spikes, *rest))
    raise TypeError(f"model: snnTorch layer {type(module).__name__} returned {type(output).__name__}; expected "
                    "spikes or a (spk, ..., mem) tuple")


def silence_recurrence(module: nn.Module, spikes: Tensor) -> None:
    """Make a recurrent layer feed back the silenced spikes it emitted, not the ones it computed."""
    kept = getattr(module, "spk", None)
    if hasattr(module, "recurrent") and isinstance(kept, Tensor) and kept.shape == spikes.shape:
        module.spk = spikes


def _same(spikes: Tensor) -> Tensor:
    return spikes


def _attribute_membrane(module: nn.Module, spikes: Tensor):
    membrane = getattr(module, "mem", None)
    if isinstance(membrane, Tensor) and membrane.shape == spikes.shape:
        return lambda: membrane
    return None


def _split_and_silence(module: nn.Module, args: tuple, output: Any) -> Emitted:
    emitted = split_output(module, args, output)
    if not hasattr(module, "recurrent"):
        return emitted

    def rebuild(spikes: Tensor) -> Any:
        silence_recurrence(module, spikes)
        return emitted.rebuild(spikes)

    return emitted._replace(rebuild=rebuild)


def neuron_candidates(model: nn.Module) -> list[Candidate]:
    """Every snnTorch neuron submodule of ``model`` (the model itself excluded)."""
    return [Candidate(name, module, _split_and_silence) for name, module in model.named_modules()
            if name and is_snntorch_neuron(module)]


def state_buffers(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """The ``(module, buffer)`` pairs where snnTorch neurons keep state between calls."""
    pairs = []
    for module in model.modules():
        if is_snntorch_neuron(module):
            own = dict(module.named_buffers(recurse=False))
            pairs += [(module, name) for name in STATE_BUFFERS if isinstance(own.get(name), Tensor)]
            # `reset` is a plain attribute snnTorch (re)creates on every step: restore or remove it too.
            pairs.append((module, "reset"))
    return pairs


def layer_kind(module: nn.Module) -> str:
    """The `StackLayer` kind of one entry of an snnTorch Sequential."""
    import snntorch

    kinds = [(nn.Linear, "linear"), (nn.Conv2d, "conv2d"), (nn.Flatten, "flatten"), (nn.Dropout, "dropout"),
             (snntorch.RLeaky, "rleaky"), (snntorch.RSynaptic, "rsynaptic"), (snntorch.Leaky, "leaky"),
             (snntorch.Synaptic, "synaptic"), (snntorch.Alpha, "alpha"), (snntorch.LeakyParallel, "leaky_parallel")]
    kind = next((kind for cls, kind in kinds if type(module) is cls), None)
    if kind is not None:
        return kind
    if not is_snntorch_neuron(module) and _is_structure(module):
        return "structure"
    return "other"


def _is_structure(module: nn.Module) -> bool:
    """A parameter-light torch layer a Sequential may hold between neurons (pooling, BatchNorm, ...)."""
    try:
        torch_map(module, (1,), (1,))
    except Untraceable:
        return False
    except Exception:  # noqa: BLE001 -- a known map kind whose shapes this dummy call does not fit
        return True
    return True


def layer_params(module: nn.Module, kind: str) -> dict[str, Any]:
    """The numbers that define one layer of the stack (see `StackLayer`)."""
    structure = structure_params(module, kind)
    if structure is not None:
        return structure
    if kind == "leaky_parallel":
        rnn = module.rnn
        return {"weight_ih": rnn.weight_ih_l0.detach(), "bias_ih": getattr(rnn, "bias_ih_l0", None),  # type: ignore[operator, union-attr]
                "weight_hh": rnn.weight_hh_l0.detach(), "threshold": module.threshold}  # type: ignore[operator, union-attr]
    if kind in ("leaky", "synaptic", "alpha", "rleaky", "rsynaptic"):
        params: dict[str, Any] = {"beta": module.beta, "threshold": module.threshold,
                                  "reset_mechanism": module.reset_mechanism,
                                  "reset_delay": getattr(module, "reset_delay", True),
                                  "graded_spikes_factor": module.graded_spikes_factor}
        if kind in ("synaptic", "alpha", "rsynaptic"):
            params["alpha"] = module.alpha
        if kind in ("rleaky", "rsynaptic"):
            params["recurrent"] = module.recurrent
            params["V"] = getattr(module, "V", None)
        return params
    return {}


def _graded(module: Any) -> float | Tensor:
    factor = module.graded_spikes_factor.detach()
    return 1.0 if bool((factor == 1).all()) else factor


def _recurrent_map(module: Any, shape: tuple[int, ...]):
    """The graph map of an RLeaky / RSynaptic's recurrence (all-to-all Linear or Conv2d, or one-to-one V)."""
    recurrent = module.recurrent
    if isinstance(recurrent, (nn.Linear, nn.Conv2d)):
        return torch_map(recurrent, shape, shape).forward
    if type(recurrent).__name__ == "RecurrentOneToOne":
        from ..graph.maps import Scale

        scale = recurrent.V
        return Scale(shape, shape, scale.detach() if isinstance(scale, Tensor) else scale).forward
    raise Untraceable(f"{type(module).__name__} with a recurrence of type {type(recurrent).__name__}")


def neuron_node(name: str, module: Any, shape: tuple[int, ...]) -> NeuronNode:
    """The graph node of an snnTorch neuron (`Leaky`, `Synaptic`, `RLeaky`, `RSynaptic`), with its own beta,
    alpha, threshold, reset mechanism, spike height and reset timing; `Untraceable` for what the graph does
    not model (inhibition, state quantisation, `Alpha`, `LeakyParallel`, and a same-step reset on the
    recurrent neurons).

    Example:
        >>> import snntorch as snn
        >>> neuron_node("lif", snn.Leaky(beta=0.8), (4,)).params.beta
        tensor(0.8000)
    """
    import snntorch

    kind = layer_kind(module)
    if kind not in ("leaky", "synaptic", "rleaky", "rsynaptic"):
        raise Untraceable(f"snnTorch {type(module).__name__} layer {name!r} has no step function in "
                          "sc_neurocore.dynamics")
    if module.inhibition or module.state_quant:
        raise Untraceable(f"snnTorch layer {name!r} uses inhibition or state quantisation")
    beta = module.beta.detach().clamp(0, 1)
    threshold = module.threshold.detach()
    reset = module.reset_mechanism
    delay = bool(getattr(module, "reset_delay", True))
    graded = _graded(module)
    if isinstance(module, snntorch.RLeaky):
        if not delay:
            raise Untraceable(f"snnTorch RLeaky layer {name!r} with reset_delay=False")
        recurrent_params = RecurrentLIFParameters(beta, threshold, reset, graded, _recurrent_map(module, shape))
        return NeuronNode(name, kind, shape, recurrent_lif_step, recurrent_params, recurrent_lif_initial_state,
                          feedback="spikes")
    if isinstance(module, (snntorch.Synaptic, snntorch.RSynaptic)):
        recurrent = _recurrent_map(module, shape) if isinstance(module, snntorch.RSynaptic) else None
        if recurrent is not None and not delay:
            raise Untraceable(f"snnTorch RSynaptic layer {name!r} with reset_delay=False")
        params = SynapticParameters(module.alpha.detach().clamp(0, 1), beta, threshold, reset, graded, delay, recurrent)
        return NeuronNode(name, kind, shape, synaptic_step, params, synaptic_initial_state,
                          feedback="spikes" if recurrent is not None else None)
    return NeuronNode(name, kind, shape, lif_step, LIFParameters(beta, threshold, reset, graded, delay),
                      lif_initial_state)


class SnnTorchSequential(HookedModel):
    """An snnTorch ``nn.Sequential`` as a SpikingModel (built by `from_snntorch`).

    Attributes:
        module: the wrapped Sequential.
        stack: the ordered `StackLayer` description of it.
        sequence_level: ``True`` for a stack of ``LeakyParallel`` layers (fed all timesteps at once).
    """

    def __init__(self, module: nn.Sequential, *, input_shape: Sequence[int], readout: str | None,
                 n_steps: int | None = None) -> None:
        snntorch = import_snntorch()
        stack = []
        for name, child in module.named_children():
            kind = layer_kind(child)
            if kind == "other":
                raise ValueError(f"model: entry {name!r} of the Sequential is a {type(child).__name__}; from_snntorch "
                                 "takes Linear, Conv1d/2d, pooling, Flatten, Dropout, BatchNorm and snnTorch Leaky, "
                                 "Synaptic, Alpha, RLeaky, RSynaptic or LeakyParallel (wrap other models with "
                                 "from_module(model, time_first=True, input_shape=...))")
            neuron = is_snntorch_neuron(child)
            if neuron and kind != "leaky_parallel" and not child.init_hidden:
                raise ValueError(f"model: snnTorch layer {name!r} has init_hidden=False; inside an nn.Sequential "
                                 "every neuron needs init_hidden=True (the last one also output=True)")
            stack.append(StackLayer(name, kind, child, neuron, layer_params(child, kind)))
        if not stack or not stack[-1].neuron:
            raise ValueError("model: the last entry of an snnTorch Sequential must be a neuron layer (its spikes are "
                             "the readout); wrap other models with from_module")
        if stack[-1].kind != "leaky_parallel" and not stack[-1].module.output:
            raise ValueError(f"model: the last snnTorch layer {stack[-1].name!r} needs output=True")
        parallel = [layer.kind == "leaky_parallel" for layer in stack if layer.neuron]
        if any(parallel) and not all(parallel):
            raise ValueError("model: a Sequential mixing LeakyParallel (sequence-level) and step-wise snnTorch "
                             "neurons cannot be driven either per step or per sequence; wrap it with from_module")
        self.stack = tuple(stack)
        self.sequence_level = all(parallel)
        del snntorch
        super().__init__(module, neuron_candidates(module), input_shape=input_shape, readout=readout,
                         state_buffers=state_buffers(module), n_steps=n_steps)

    def linear_weights(self) -> list[Tensor] | None:
        return linear_chain(self.stack)  # type: ignore[arg-type]

    def _drive(self, inputs: Tensor) -> None:
        if self.sequence_level:
            self.module(inputs)
            return
        for step in inputs:  # time is sequential
            self.module(step)


def from_snntorch(model: nn.Module, *, readout: str | None = None, input_shape: int | Sequence[int] | None = None,
                  time_first: bool = True, n_steps: int | None = None) -> HookedModel:
    """Wrap an snnTorch model for the explainers (and Captum).

    Args:
        model: an ``nn.Sequential`` stack or a module with its own time loop (see the module docstring).
            It is never modified: its state and ``training`` flags are restored after every call.
        readout: how the output layer's activity becomes ``(B, C)``: ``"count"`` (default), ``"rate"``,
            ``"final_membrane"``, ``"max_membrane"`` (see `sc_neurocore.adapters.readout`).
        input_shape: the per-timestep input shape, e.g. ``(1, 28, 28)`` for a Conv2d stack; default: the
            first Linear's ``in_features``.
        time_first: for a module with its own time loop, whether its ``forward`` takes ``(T, B, ...)``
            (snnTorch's convention, the default) or ``(B, T, ...)``.
        n_steps: for a module with its own time loop over a fixed number of steps, that number
            (default: found at the first call, with the spikes' own number of timesteps).

    Returns:
        A `SpikingModel` and ``nn.Module``: ``adapter(spikes (B, T, N))`` is a
        differentiable ``(B, C)``; ``adapter.module`` is ``model``.

    Example:
        >>> import torch, snntorch as snn
        >>> net = torch.nn.Sequential(torch.nn.Linear(8, 4), snn.Leaky(beta=0.9, init_hidden=True),
        ...                           torch.nn.Linear(4, 2), snn.Leaky(beta=0.9, init_hidden=True, output=True))
        >>> model = from_snntorch(net)
        >>> model.neuron_layers
        {'1': 4, '3': 2}
        >>> model.run(torch.ones(3, 10, 8)).shape
        torch.Size([3, 2])
    """
    import_snntorch()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an snnTorch nn.Module, got {type(model).__name__}")
    shape = infer_input_shape(model, input_shape)
    if isinstance(model, nn.Sequential):
        return SnnTorchSequential(model, input_shape=shape, readout=readout, n_steps=n_steps)
    from .module import ModuleModel

    return ModuleModel(model, time_first=time_first, input_shape=shape, readout=readout,
                       candidates=neuron_candidates(model), state_buffers=state_buffers(model), n_steps=n_steps)


FRAMEWORK = Framework("snntorch", "snntorch", is_snntorch_neuron, neuron_node, from_snntorch,
                      "snntorch.utils.reset(model)")
