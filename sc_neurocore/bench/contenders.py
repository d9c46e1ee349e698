"""What the benchmark times our methods against, each written the way a user of that tool would write it.

* the naive loops: one forward pass per removed spike, per silenced input neuron, or per silenced
  hidden neuron (a forward hook on the framework model, or ``silence=`` on an ``LIFNetwork``);
* Captum ``FeatureAblation`` with a feature mask that gives every input spike (or every input neuron)
  its own feature, at a chosen ``perturbations_per_eval``;
* Captum ``Saliency``: one surrogate-gradient backward pass through the wrapped snnTorch model.

Deliberately Python loops where the contender is a loop: that is what is measured.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def naive_saliency(run: Callable[[Tensor], Tensor], spikes: Tensor, target: int) -> Tensor:
    """``(T, N)`` saliency of one sample ``(1, T, N)``: one forward per removed spike.

    Args:
        run: batched model ``(B, T, N) -> (B, C)``.
        spikes: one sample ``(1, T, N)``.
        target: explained output.

    Returns:
        ``base - perturbed`` at every spike, 0 elsewhere.

    Example:
        >>> import torch
        >>> naive_saliency(lambda x: x.sum(dim=1), torch.ones(1, 2, 3), 0).shape
        torch.Size([2, 3])
    """
    with torch.inference_mode():
        base = run(spikes)[0, target]
        saliency = torch.zeros(spikes.shape[1:], dtype=base.dtype)
        for t, i in torch.nonzero(spikes[0]).tolist():
            perturbed = spikes.clone()
            perturbed[0, t, i] = 0
            saliency[t, i] = base - run(perturbed)[0, target]
    return saliency


def naive_input_importance(run: Callable[[Tensor], Tensor], spikes: Tensor, target: int) -> Tensor:
    """``(N,)`` causal importance of every input neuron of one sample: one forward per silenced neuron."""
    with torch.inference_mode():
        base = run(spikes)[0, target]
        importance = torch.zeros(spikes.shape[2], dtype=base.dtype)
        for neuron in range(spikes.shape[2]):
            perturbed = spikes.clone()
            perturbed[0, :, neuron] = 0
            importance[neuron] = base - run(perturbed)[0, target]
    return importance


def snntorch_counts(net: nn.Sequential, spikes: Tensor) -> Tensor:
    """Output spike counts ``(B, C)`` of an snnTorch ``init_hidden`` Sequential, driven as its tutorials do."""
    import snntorch.utils

    snntorch.utils.reset(net)
    counts = None
    for t in range(spikes.shape[1]):
        out_spikes, _ = net(spikes[:, t])
        counts = out_spikes if counts is None else counts + out_spikes
    snntorch.utils.reset(net)
    return counts  # type: ignore[return-value]


def hook_loop_hidden_importance(net: nn.Sequential, layer: nn.Module, n_neurons: int, spikes: Tensor,
                                target: int) -> Tensor:
    """``(n,)`` causal importance of the hidden neurons of ``layer``: one forward per neuron, a forward hook
    zeroing that neuron's spikes (the usual snnTorch recipe)."""
    with torch.inference_mode():
        net.eval()
        base = snntorch_counts(net, spikes)[0, target]
        importance = torch.zeros(n_neurons, dtype=base.dtype)
        for neuron in range(n_neurons):
            def silence(module, args, output, neuron=neuron):
                spikes_out = output.clone()
                spikes_out[..., neuron] = 0
                return spikes_out
            handle = layer.register_forward_hook(silence)
            try:
                importance[neuron] = base - snntorch_counts(net, spikes)[0, target]
            finally:
                handle.remove()
    return importance


def lif_loop_hidden_importance(net, layer: str, spikes: Tensor, target: int) -> Tensor:
    """``(n,)`` hidden causal importance on an ``LIFNetwork``: one forward per neuron, ``silence=`` masking it."""
    n_neurons = net.neuron_layers[layer]
    with torch.inference_mode():
        base = net.run(spikes)[0, target]
        importance = torch.zeros(n_neurons, dtype=base.dtype)
        for neuron in range(n_neurons):
            mask = torch.zeros(1, n_neurons, dtype=torch.bool)
            mask[0, neuron] = True
            importance[neuron] = base - net.run(spikes, silence={layer: mask})[0, target]
    return importance


def spike_feature_mask(spikes: Tensor) -> tuple[Tensor, int]:
    """Captum feature mask ``(1, T, N)`` giving every spike its own feature (in ``(t, i)`` order) and all
    non-spike entries one extra feature; returns ``(mask, number of spikes)``."""
    where = spikes[0] != 0
    n_spikes = int(where.sum())
    mask = torch.full(spikes.shape, n_spikes, dtype=torch.long)
    mask[0][where] = torch.arange(n_spikes)
    return mask, n_spikes


def captum_ablation_saliency(forward: Callable[[Tensor], Tensor], spikes: Tensor, target: int,
                             perturbations_per_eval: int) -> Tensor:
    """``(T, N)`` saliency by Captum ``FeatureAblation`` with one feature per spike (0 off the spikes)."""
    from captum.attr import FeatureAblation

    mask, _ = spike_feature_mask(spikes)
    with torch.inference_mode():
        attribution = FeatureAblation(forward).attribute(spikes, baselines=0.0, target=target, feature_mask=mask,
                                                         perturbations_per_eval=perturbations_per_eval)
    return torch.where(spikes[0] != 0, attribution[0], torch.zeros_like(attribution[0]))


def captum_ablation_input_importance(forward: Callable[[Tensor], Tensor], spikes: Tensor, target: int,
                                     perturbations_per_eval: int) -> Tensor:
    """``(N,)`` input causal importance by Captum ``FeatureAblation`` with one feature per input neuron."""
    from captum.attr import FeatureAblation

    mask = torch.arange(spikes.shape[2]).expand(1, spikes.shape[1], -1)
    with torch.inference_mode():
        attribution = FeatureAblation(forward).attribute(spikes, baselines=0.0, target=target, feature_mask=mask,
                                                         perturbations_per_eval=perturbations_per_eval)
    return attribution[0, 0]


def captum_saliency(model: nn.Module, spikes: Tensor, targets: Tensor, chunk: int) -> Tensor:
    """Captum ``Saliency`` (surrogate-gradient ``d output / d input``) for every sample, ``chunk`` at a time."""
    from captum.attr import Saliency

    saliency = Saliency(model)
    maps = []
    for start in range(0, spikes.shape[0], chunk):
        rows = spikes[start:start + chunk].clone().requires_grad_(True)
        maps.append(saliency.attribute(rows, target=targets[start:start + chunk], abs=False).detach())
    return torch.cat(maps)
