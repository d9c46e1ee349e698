"""Spike layouts an explainer accepts, and how maps go back in the caller's shape.

Explainers work on batch-first `(B, T, N)`. They also take:

- `time_first=True`: `(T, B, ...)` spikes, as snnTorch and Norse keep them (`snntorch.spikegen.rate`
  returns `(T, B, N)`); the results are batch-first;
- image-shaped spikes `(B, T, C, H, W)` (or `(T, C, H, W)` for one sample of a model whose input shape
  is `(C, H, W)`): flattened to `N = C * H * W` for the engine, and the per-spike maps come back in the
  given shape.

A batch-first tensor whose first dimension equals the number of timesteps the model runs, and whose
second does not, is almost certainly time-first: that is warned about, never silently reinterpreted.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import numpy as np
import torch


class Layout(NamedTuple):
    """How the caller's spikes were laid out.

    Attributes:
        spikes: the spikes as `(T, N)` or `(B, T, N)` (same type as given, a view where possible).
        feature_shape: the per-timestep shape the caller used, e.g. `(784,)` or `(1, 28, 28)`.
    """

    spikes: Any
    feature_shape: tuple[int, ...]


def _model_input_shape(run_fn: Any) -> tuple[int, ...] | None:
    shape = getattr(run_fn, "input_shape", None)
    return tuple(shape) if isinstance(shape, tuple) and shape else None


def normalise_layout(input_spikes: Any, run_fn: Any, *, time_first: bool, name: str = "input_spikes") -> Layout:
    """Bring `input_spikes` to `(T, N)` / `(B, T, N)` and remember the caller's feature shape.

    Example:
        >>> import torch
        >>> layout = normalise_layout(torch.zeros(5, 2, 3), None, time_first=True)
        >>> tuple(layout.spikes.shape), layout.feature_shape
        ((2, 5, 3), (3,))
    """
    if not isinstance(time_first, bool):
        raise TypeError(f"time_first: expected True ((T, B, ...) spikes) or False ((B, T, ...)), got {time_first!r}")
    if not isinstance(input_spikes, (torch.Tensor, np.ndarray)) or (
            isinstance(input_spikes, torch.Tensor) and input_spikes.layout != torch.strided):
        return Layout(input_spikes, ())  # as_spikes names the type or layout it expected
    shape = tuple(input_spikes.shape)
    model_shape = _model_input_shape(run_fn)
    ndim = len(shape)
    if ndim <= 2 and not time_first:
        return Layout(input_spikes, shape[-1:])
    if model_shape is not None and len(model_shape) > 1 and ndim == len(model_shape) + 1 and not time_first:
        batched, feature_shape = False, shape[1:]  # one image-shaped sample (T, C, H, W)
    else:
        if ndim < 3:
            raise ValueError(f"{name}: time_first=True expects (T, B, ...) spikes, got shape {shape}")
        batched, feature_shape = True, shape[2:]
    spikes = input_spikes
    if time_first:
        spikes = spikes.transpose(0, 1) if isinstance(spikes, torch.Tensor) else np.swapaxes(spikes, 0, 1)
    lead = tuple(spikes.shape[:2] if batched else spikes.shape[:1])
    flat = spikes.reshape(*lead, math.prod(feature_shape))
    return Layout(flat, tuple(feature_shape))


def warn_if_time_first(spikes: torch.Tensor, model: Any, time_first: bool, name: str = "input_spikes") -> None:
    """Warn when batch-first spikes look time-first for a model that runs a known number of steps."""
    steps = getattr(model, "n_steps", None)
    if time_first or not isinstance(steps, int) or spikes.ndim != 3:
        return
    if spikes.shape[0] == steps and spikes.shape[1] != steps:
        warnings.warn(f"{name}: shape {tuple(spikes.shape)} is read batch-first (B={spikes.shape[0]}, "
                      f"T={spikes.shape[1]}), but the model runs {steps} timesteps: if these spikes are "
                      "time-first (T, B, N), as snnTorch's spikegen returns them, pass time_first=True",
                      UserWarning, stacklevel=3)
