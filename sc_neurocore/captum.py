"""Our three explainers as Captum ``Attribution`` classes, for Captum pipelines and metrics.

==============================  ==============================  ========================================
class                           Captum base                     attribution ``(B, T, N)``
==============================  ==============================  ========================================
`TemporalSaliencyAttr`   ``PerturbationAttribution``     ``f_k(x) - f_k(x without spike (t, i))``
`CausalImportanceAttr`   ``PerturbationAttribution``     input neuron ``i``'s importance, at every
                                                                timestep (Captum's feature-group style)
`SpikeAttributorAttr`    ``Attribution``                 weight paths times decay, per spike
==============================  ==============================  ========================================

Each takes a ``forward_func`` that is a `SpikingModel` (an adapter from
`sc_neurocore.adapters`, an `LIFNetwork`) or anything the explainers
accept, and has Captum's ``attribute(inputs, target=...)``: ``inputs`` a ``(B, T, N)`` tensor (or a
one-tensor tuple, answered with a one-tensor tuple), ``target`` an int or a ``(B,)`` integer tensor.
Results are plain tensors of the input's shape, so they go to ``captum.attr.visualization``,
``captum.metrics.infidelity`` and ``captum.metrics.sensitivity_max`` unchanged.

The adapters are themselves valid Captum ``forward_func``\\ s (differentiable through the frameworks'
surrogate gradients), so ``FeatureAblation``, ``Occlusion``, ``Saliency`` and ``IntegratedGradients``
run on them directly. Captum's *layer* perturbation methods do not fit spiking layers: a layer that
runs once per timestep is captured once (its last call) and that one output is replayed at every step
(captum#1236, #1050); use `CausalImportance` with ``layer=`` instead.

Example:
    >>> import torch
    >>> from sc_neurocore.models import LIFNetwork
    >>> net = LIFNetwork([torch.randn(16, 8) * 2, torch.randn(8, 3) * 2])
    >>> spikes = (torch.rand(2, 20, 16) < 0.3).float()
    >>> TemporalSaliencyAttr(net).attribute(spikes, target=0).shape
    torch.Size([2, 20, 16])
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from captum.attr import Attribution, PerturbationAttribution  # a core dependency, unlike the SNN frameworks

from .explain import CausalImportance, SpikeAttributor, TemporalSaliency

__all__ = ["CausalImportanceAttr", "SpikeAttributorAttr", "TemporalSaliencyAttr"]


def _unpack_inputs(inputs: Any) -> tuple[Tensor, bool]:
    """``(spikes (B, T, N), came_as_tuple)``; Captum passes one input as a tensor or a 1-tuple."""
    as_tuple = isinstance(inputs, tuple)
    if as_tuple:
        if len(inputs) != 1:
            raise ValueError(f"inputs: expected one (B, T, N) spike tensor, got a tuple of {len(inputs)}")
        inputs = inputs[0]
    if not isinstance(inputs, Tensor):
        raise TypeError(f"inputs: expected a torch.Tensor (B, T, N), got {type(inputs).__name__}")
    if inputs.ndim != 3:
        raise ValueError(f"inputs: expected a batch of spikes (B, T, N), got shape {tuple(inputs.shape)}")
    return inputs.detach(), as_tuple


def _checked_target(target: Any, batch: int) -> int | Tensor:
    """Captum's ``target``, kept simple: an int or a ``(B,)`` integer tensor; range checks follow later."""
    if isinstance(target, numbers.Integral) and not isinstance(target, bool):
        return int(target)
    if isinstance(target, Tensor) and not target.dtype.is_floating_point and target.dtype != torch.bool:
        if target.ndim == 0:
            return int(target)
        if target.shape == (batch,):
            return target
    raise TypeError(f"target: expected an int or a ({batch},) integer tensor of output indices, got "
                    f"{type(target).__name__}{tuple(target.shape) if isinstance(target, Tensor) else ''} "
                    "(Captum's tuple and list targets are not supported)")


def _attribute(inputs: Any, target: Any, compute: Callable[[Tensor, int | Tensor], Tensor]):
    """Captum's calling convention around ``compute(spikes (B, T, N), target) -> (B, T, N)``."""
    spikes, as_tuple = _unpack_inputs(inputs)
    attribution = compute(spikes, _checked_target(target, spikes.shape[0])).to(device=spikes.device)
    return (attribution,) if as_tuple else attribution


class TemporalSaliencyAttr(PerturbationAttribution):
    """Exact per-spike saliency (`TemporalSaliency`) as a Captum attribution.

    Equal, on every spike, to Captum's ``FeatureAblation`` with a zero baseline and one feature per
    entry, and 0 where there is no spike; computed in batched, chunked passes rather than one forward
    per entry.

    Args:
        forward_func: the model (a SpikingModel, an adapter, an ``nn.Module`` or batched callable).
        max_memory: peak bytes per forward pass (``None``: automatic).

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> attr = TemporalSaliencyAttr(LIFNetwork([torch.randn(16, 8) * 2, torch.randn(8, 3) * 2]))
        >>> attr.attribute((torch.rand(2, 20, 16) < 0.3).float(), target=torch.tensor([0, 2])).shape
        torch.Size([2, 20, 16])
    """

    def __init__(self, forward_func: Any, *, max_memory: int | None = None) -> None:
        super().__init__(forward_func)
        self.explainer = TemporalSaliency(forward_func, max_memory=max_memory)

    def attribute(self, inputs: Any, target: Any = 0):
        """Saliency ``(B, T, N)`` of every input spike for output ``target``.

        Args:
            inputs: spikes ``(B, T, N)`` (or a one-tensor tuple).
            target: an int or a ``(B,)`` integer tensor.

        Returns:
            A tensor of the input's shape (a one-tensor tuple if ``inputs`` was one).
        """
        return _attribute(inputs, target, lambda spikes, k: self.explainer.explain(spikes, k).saliency_map())


class CausalImportanceAttr(PerturbationAttribution):
    """Input-neuron causal importance (`CausalImportance`) as a Captum attribution.

    Silencing input neuron ``i`` removes its whole spike train; its importance is written at every
    timestep of column ``i``, as Captum's ``FeatureAblation`` writes a feature group's attribution to
    every entry of the group (so it equals ``FeatureAblation`` with ``feature_mask`` = neuron index).

    Args:
        forward_func: the model.
        max_memory: peak bytes per forward pass (``None``: automatic).

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> attr = CausalImportanceAttr(LIFNetwork([torch.randn(16, 8) * 2, torch.randn(8, 3) * 2]))
        >>> attr.attribute((torch.rand(2, 20, 16) < 0.3).float(), target=1).shape
        torch.Size([2, 20, 16])
    """

    def __init__(self, forward_func: Any, *, max_memory: int | None = None) -> None:
        super().__init__(forward_func)
        self.explainer = CausalImportance(forward_func, max_memory=max_memory)

    def attribute(self, inputs: Any, target: Any = 0):
        """Importance of each input neuron ``(B, T, N)`` (constant along ``T``) for output ``target``.

        Args:
            inputs: spikes ``(B, T, N)`` (or a one-tensor tuple).
            target: an int or a ``(B,)`` integer tensor.

        Returns:
            A tensor of the input's shape (a one-tensor tuple if ``inputs`` was one).
        """
        def per_neuron(spikes: Tensor, k: int | Tensor) -> Tensor:
            importance = self.explainer.explain(spikes, k).importance_map()  # (B, N): the input is a batch
            return importance[:, None, :].expand(spikes.shape).clone()

        return _attribute(inputs, target, per_neuron)


class SpikeAttributorAttr(Attribution):
    """Weight-path spike attribution (`SpikeAttributor`) as a Captum attribution.

    ``"linear"`` mode needs no forward pass, and a model exposing ``linear_weights()`` (an ``LIFNetwork``,
    or an adapter of a Linear + neuron stack); ``"auto"`` (and the deprecated ``"gated"``) record one
    forward pass of any model the adapters trace.

    Args:
        forward_func: the model (a SpikingModel).
        decay: the time decay ``d`` in ``(0, 1]`` of the linear and gated rules.
        mode: ``"linear"`` (the tutorial's weight paths), ``"auto"`` (spike-time credit through the model's own
            dynamics; the recommended rule) or ``"gated"`` (deprecated).

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> attr = SpikeAttributorAttr(LIFNetwork([torch.randn(16, 8), torch.randn(8, 3)]), decay=0.9)
        >>> attr.attribute((torch.rand(2, 20, 16) < 0.3).float(), target=0).shape
        torch.Size([2, 20, 16])
    """

    def __init__(self, forward_func: Any, *, decay: float = 0.9, mode: str = "linear") -> None:
        super().__init__(forward_func)
        self.explainer = SpikeAttributor(decay=decay, mode=mode)

    @property
    def multiplies_by_inputs(self) -> bool:
        # Every score is the spike times its path weight: zero where there is no spike.
        return True

    def attribute(self, inputs: Any, target: Any = 0):
        """Attribution ``(B, T, N)`` of every input spike to output ``target``.

        Args:
            inputs: spikes ``(B, T, N)`` (or a one-tensor tuple).
            target: an int or a ``(B,)`` integer tensor.

        Returns:
            A tensor of the input's shape (a one-tensor tuple if ``inputs`` was one).
        """
        return _attribute(inputs, target, lambda spikes, k: self.explainer.attribute(
            spikes, self.forward_func, output_neuron=k).attribution_map())
