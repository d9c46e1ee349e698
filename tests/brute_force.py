"""Brute-force references: the definitions of saliency and causal importance, one forward pass per
perturbation, written as plainly as possible. Every fast path is tested against these."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def saliency_loop(forward: Callable[[Tensor], Tensor], spikes: Tensor, target: int) -> Tensor:
    """``S[t, i] = f_k(x) - f_k(x with x[t, i] = 0)`` for one sample ``(T, N)``; ``forward`` maps ``(T, N) -> (C,)``."""
    base = forward(spikes)[target]
    saliency = torch.zeros(spikes.shape, dtype=torch.float64)
    for t, i in torch.nonzero(spikes).tolist():
        perturbed = spikes.clone()
        perturbed[t, i] = 0
        saliency[t, i] = float(base - forward(perturbed)[target])
    return saliency


def input_causal_loop(forward: Callable[[Tensor], Tensor], spikes: Tensor, target: int) -> Tensor:
    """``I[n] = f_k(x) - f_k(x with input neuron n zeroed at every step)`` for one sample ``(T, N)``."""
    base = forward(spikes)[target]
    importance = torch.zeros(spikes.shape[1], dtype=torch.float64)
    for n in range(spikes.shape[1]):
        perturbed = spikes.clone()
        perturbed[:, n] = 0
        importance[n] = float(base - forward(perturbed)[target])
    return importance


def one_sample(model) -> Callable[[Tensor], Tensor]:
    """A batched ``(B, T, N) -> (B, C)`` model as a ``(T, N) -> (C,)`` function."""
    return lambda spikes: model(spikes[None])[0]
