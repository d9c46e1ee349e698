"""Bit-exact snapshots of everything a call could change: its inputs, a model's parameters, buffers,
hidden framework state, flags and hooks, and the process-wide torch / NumPy settings."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn


def _tensor(value: torch.Tensor) -> tuple:
    # Bytes, not values: NaN == NaN and -0.0 != 0.0 here, so any change at all is seen.
    detached = value.detach()
    if detached.device.type == "meta":
        return ("meta", detached.dtype, tuple(detached.shape))
    return (detached.dtype, tuple(detached.shape), str(detached.device), detached.requires_grad if value.is_leaf else None,
            detached.cpu().contiguous().numpy().tobytes() if detached.dtype != torch.bfloat16 else
            detached.cpu().float().numpy().tobytes())


def of_value(value: Any, ignore=None) -> Any:
    """A comparable snapshot of an input: a tensor, an array, or a (nested) list / tuple / dict of them.

    ``ignore(module, attribute name)`` leaves out module attributes (see :func:`of_module`)."""
    if isinstance(value, torch.Tensor):
        return ("tensor", _tensor(value))
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, value.flags.writeable, value.tobytes())
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [of_value(v, ignore) for v in value])
    if isinstance(value, dict):
        return ("dict", {k: of_value(v, ignore) for k, v in value.items()})
    if isinstance(value, nn.Module):
        return of_module(value, ignore)
    return ("object", type(value).__name__, id(value))


def of_module(module: nn.Module, ignore=None) -> dict:
    """Parameters, buffers, every tensor attribute (framework hidden state such as snnTorch's ``mem``),
    plain attributes, training flags and registered hooks of ``module`` and all its submodules."""
    snapshot = {}
    for name, sub in module.named_modules():
        entry = {"training": sub.training,
                 "hooks": (len(sub._forward_hooks), len(sub._forward_pre_hooks), len(sub._backward_hooks),
                           len(getattr(sub, "_forward_hooks_with_kwargs", {}))),
                 "parameters": {k: _tensor(v) for k, v in sub._parameters.items() if v is not None},
                 "buffers": {k: _tensor(v) for k, v in sub._buffers.items() if v is not None}}
        attributes = {}
        for key, value in vars(sub).items():
            if (key.startswith("_") and key not in ("_n_outputs",)) or (ignore is not None and ignore(sub, key)):
                continue
            if isinstance(value, torch.Tensor):
                attributes[key] = _tensor(value)
            elif isinstance(value, (int, float, str, bool, type(None))):
                attributes[key] = value
        entry["attributes"] = attributes
        snapshot[name] = entry
    return snapshot


def of_process() -> dict:
    """Process-wide settings a library must leave alone."""
    return {"threads": torch.get_num_threads(), "grad": torch.is_grad_enabled(),
            "inference": torch.is_inference_mode_enabled(), "dtype": torch.get_default_dtype(),
            "torch_rng": torch.random.get_rng_state().numpy().tobytes(), "numpy_rng": repr(np.random.get_state()),
            "deterministic": torch.are_deterministic_algorithms_enabled()}
