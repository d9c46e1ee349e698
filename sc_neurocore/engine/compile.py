"""Compiling known network stacks into our step functions, for the incremental executor.

A model compiles when it is a feed-forward stack of linear layers and LIF-type neurons whose dynamics
`sc_neurocore.dynamics` implements: our `LIFNetwork`, and snnTorch /
Norse stacks wrapped by `sc_neurocore.adapters.from_snntorch` / ``from_norse`` (``nn.Linear`` +
``snntorch.Leaky``; ``nn.Linear`` + ``norse.torch.LIFCell`` / ``LIFBoxCell``). Anything else gives
``None`` and runs through the generic batched path.

A structural match is not trusted on its own: `compiled_for` runs the compiled stack and the
model's own forward on the very spikes being explained and uses the compiled stack only if the two
outputs are identical bit for bit. A wrong guess therefore never gives a wrong answer, only the slower
generic path.
"""

from __future__ import annotations

import functools
import logging

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..dynamics import (
    CurrentLIFParameters,
    LIFParameters,
    current_lif_initial_state,
    current_lif_integrate,
    current_lif_step,
    lif_initial_state,
    lif_step,
)
from .incremental import Baseline, CompiledLayer, CompiledStack
from ..models import LIFNetwork
from ..adapters.norse import HEAVISIDE_METHODS

logger = logging.getLogger(__name__)


def compile_model(model) -> CompiledStack | None:
    """The compiled `CompiledStack` of ``model``, or ``None`` if its
    structure is not one we know (structure only; see `compiled_for` for the verified form).

    Args:
        model: an ``LIFNetwork``, an snnTorch / Norse adapter, or any other spiking model.

    Returns:
        A `CompiledStack` or ``None``.

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> compile_model(LIFNetwork([torch.randn(8, 4), torch.randn(4, 2)])).sizes
        [4, 2]
    """
    if type(model) is LIFNetwork:  # a subclass may override the simulation: only the class itself is known
        return _compile_lif_network(model)
    framework_module = getattr(model, "module", None)
    if framework_module is None:
        return None
    for compiler in (_compile_snntorch, _compile_norse):
        try:
            stack = compiler(model, framework_module)
        except ImportError:
            stack = None
        if stack is not None:
            return stack
    return None


def compiled_for(model, spikes: Tensor) -> CompiledStack | None:
    """``model``'s compiled stack if it reproduces ``model.run(spikes)`` bit for bit, else ``None``.

    Args:
        model: a spiking model.
        spikes: ``(B, T, N)``: the spikes about to be explained (the check runs on exactly these).

    Returns:
        The verified `CompiledStack`, or ``None`` (then the caller uses the generic path).

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> net = LIFNetwork([torch.randn(8, 4), torch.randn(4, 2)])
        >>> compiled_for(net, (torch.rand(2, 10, 8) < 0.3).float()) is not None
        True
    """
    return verified(model, spikes, record=False)[0]


def verified(model, spikes: Tensor, record: bool,
             max_memory: int | None = None) -> tuple[CompiledStack | None, Baseline | None]:
    """`compiled_for`, also returning the compiled forward's recorded `Baseline` when
    ``record`` (the incremental executor starts from it instead of running the forward again).

    Without ``record`` the check runs in chunks of samples that keep the model's and the stack's forward
    passes within ``max_memory`` together (``None``: the automatic budget); with ``record`` the caller
    has made sure the whole batch fits.
    """
    from ..engine.recorded import verify

    stack = compile_model(model)
    if stack is None:
        return None, None
    checked, baseline = verify(model, spikes, stack, record, max_memory)
    return (stack, baseline) if checked else (None, None)


def _compile_lif_network(net: LIFNetwork) -> CompiledStack:
    layers = []
    for index, weight in enumerate(net.weights):
        layers.append(CompiledLayer(weight.detach(), None if net._bias(index) is None else net._bias(index).detach(),  # type: ignore[union-attr]
                                 lif_step, net.layer_params(index), lif_initial_state))
    return CompiledStack(tuple(layers), tuple(net.neuron_layers), "count")


def _compile_snntorch(model, module) -> CompiledStack | None:
    """``nn.Linear`` + ``snntorch.Leaky`` pairs (Dropout / Flatten between them: identity in evaluation)."""
    import sys

    if sys.modules.get("snntorch") is None or getattr(model, "sequence_level", False):
        return None

    def neurons(entry, linear: nn.Linear) -> CompiledLayer | None:
        if entry.kind != "leaky" or not _plain_leaky(entry.module):
            return None
        leaky = entry.module
        params = LIFParameters(leaky.beta.detach().clamp(0, 1), leaky.threshold.detach(), leaky.reset_mechanism)
        return _linear_layer(linear, lif_step, params, lif_initial_state)

    return _compile_pairs(model, neurons)


def _compile_pairs(model, neurons) -> CompiledStack | None:
    """A stack that is exactly ``Linear`` then neurons, repeated (Dropout / Flatten skipped), compiled
    with ``neurons(entry, linear) -> CompiledLayer | None`` (``None``: a neuron kind it cannot compile)."""
    stack = getattr(model, "stack", None)
    if stack is None or len(model.input_shape) != 1:
        return None
    layers, names, linear = [], [], None
    for entry in stack:
        if entry.kind in ("dropout", "flatten"):
            continue
        if entry.kind == "linear" and linear is None:
            linear = entry.module
            continue
        layer = None if linear is None else neurons(entry, linear)
        if layer is None:
            return None
        layers.append(layer)
        names.append(entry.name)
        linear = None
    if not layers or linear is not None or tuple(names) != tuple(model.neuron_layers):
        return None
    return CompiledStack(tuple(layers), tuple(names), model.readout)


def _plain_leaky(leaky) -> bool:
    """A Leaky whose step is exactly `lif_step`: delayed reset, no inhibition,
    no state quantisation, ungraded spikes."""
    graded = leaky.graded_spikes_factor
    return (getattr(leaky, "reset_delay", True) and not leaky.inhibition and not leaky.state_quant
            and leaky.reset_mechanism in ("subtract", "zero", "none")
            and bool(torch.all(torch.as_tensor(graded) == 1)))


def _linear_layer(linear: nn.Linear, step, params, initial_state, decision=None) -> CompiledLayer:
    weight = linear.weight.detach()
    bias = None if linear.bias is None else linear.bias.detach()
    return CompiledLayer(weight.T.contiguous(), bias, step, params, initial_state,
                         functools.partial(_per_step_linear, weight=weight, bias=bias), decision)


def _current_lif_decision(current: Tensor, before, after, params) -> Tensor:
    """The spike decision of a current-based LIF step: its membrane before the threshold minus ``v_th``
    (the state after the step holds the reset membrane instead)."""
    return current_lif_integrate(current, before, params)[1] - params.v_th


def _per_step_linear(spikes: Tensor, *, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``F.linear`` called one timestep at a time, as the frameworks call it (same shapes, same rounding)."""
    if spikes.ndim == 2:
        return F.linear(spikes, weight, bias)
    return torch.stack([F.linear(spikes[:, t].contiguous(), weight, bias) for t in range(spikes.shape[1])], dim=1)


def _compile_norse(model, module) -> CompiledStack | None:
    """``nn.Linear`` + Norse ``LIFCell`` / ``LIF`` pairs (current-based LIF, `current_lif_step`)."""
    import sys

    if sys.modules.get("norse.torch") is None:
        return None

    def neurons(entry, linear: nn.Linear) -> CompiledLayer | None:
        if entry.kind not in ("lif_cell", "lif") or entry.module.p.method not in HEAVISIDE_METHODS:
            return None
        p = entry.module.p
        params = CurrentLIFParameters(p.tau_syn_inv, p.tau_mem_inv, p.v_leak, p.v_th, p.v_reset, entry.module.dt)
        return _linear_layer(linear, current_lif_step, params,
                             functools.partial(current_lif_initial_state, params=params),
                             decision=_current_lif_decision)

    return _compile_pairs(model, neurons)
