"""Checking and converting what users pass in: spikes, weights, targets, sizes.

One place for the rules, so that every public entry point rejects bad input the same way: a
``TypeError`` or ``ValueError`` that names the argument and says what was expected, before any tensor
work starts. Nothing here mutates what it is given; every conversion copies or views read-only.
"""

from __future__ import annotations

import numbers
from collections.abc import Collection, Sequence
from typing import Any, NamedTuple, cast

import numpy as np
import torch
from torch import Tensor


class SpikeBatch(NamedTuple):
    """Spikes as the engine uses them, plus how to give results back.

    Attributes:
        spikes: ``(B, T, N)`` floating tensor on the caller's device (a copy or a read-only view).
        batched: whether the caller passed ``(B, T, N)`` (else ``(T, N)``).
        numpy: whether the caller passed a NumPy array (results then come back as NumPy).
    """

    spikes: Tensor
    batched: bool
    numpy: bool

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.spikes.shape)  # type: ignore[return-value]


def as_tensor(value: Any, name: str) -> tuple[Tensor, bool]:
    """Array-like -> ``(tensor, came_from_numpy)``; rejects what is not numeric with a ``TypeError``."""
    if isinstance(value, Tensor):
        tensor, from_numpy = value, False
    elif isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"{name}: expected a numeric array (bool, int or float), got dtype {value.dtype}")
        if value.dtype.kind == "u" and value.dtype.itemsize > 1:
            # torch computes little with uint16/32/64: take them as int64 when every value fits.
            if value.size and value.max() > np.iinfo(np.int64).max:
                raise ValueError(f"{name}: expected values that fit int64, got {value.max()}")
            value = value.astype(np.int64)
        tensor, from_numpy = torch.from_numpy(np.ascontiguousarray(value)), True
    elif isinstance(value, (list, tuple)):
        try:
            array = np.asarray(value)
        except ValueError as error:
            raise ValueError(f"{name}: expected a rectangular array, got a ragged sequence") from error
        return as_tensor(array, name)[0], True
    else:
        raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(value).__name__}")
    if tensor.layout != torch.strided:
        # A sparse tensor has no strides: every view and matrix product downstream would raise deep in torch.
        raise TypeError(f"{name}: expected a dense tensor, got layout {tensor.layout}; call {name}.to_dense() "
                        "first (spike trains are processed densely)")
    if tensor.is_complex() or tensor.dtype not in REAL_DTYPES:
        raise TypeError(f"{name}: expected a real numeric dtype (bool, int or float), got {tensor.dtype}")
    if tensor.device.type == "meta":
        # A meta tensor has a shape but no values: every later check or result would be meaningless.
        raise ValueError(f"{name}: expected a tensor holding values (cpu or cuda), got one on the 'meta' device")
    return tensor, from_numpy


REAL_DTYPES = {torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
                torch.float16, torch.bfloat16, torch.float32, torch.float64}


def floating(tensor: Tensor) -> Tensor:
    """``tensor`` in a floating dtype that sums exactly: float32 or float64 are kept, others become float32."""
    if tensor.dtype in (torch.float32, torch.float64):
        return tensor
    return tensor.to(torch.float32)


def as_spikes(value: Any, name: str = "input_spikes") -> SpikeBatch:
    """Validate spikes given as ``(T, N)`` or ``(B, T, N)``; returns a `SpikeBatch`."""
    tensor, from_numpy = as_tensor(value, name)
    if tensor.ndim not in (2, 3):
        raise ValueError(f"{name}: expected shape (T, N) or (B, T, N), got {tensor.ndim} dimensions "
                         f"{tuple(tensor.shape)}")
    batched = tensor.ndim == 3
    tensor = floating(tensor if batched else tensor.unsqueeze(0))
    if 0 in tensor.shape:
        raise ValueError(f"{name}: expected a non-empty spike train (B, T, N all > 0), got shape "
                         f"{tuple(tensor.shape) if batched else tuple(tensor.shape[1:])}")
    check_finite(tensor, name)
    return SpikeBatch(tensor, batched, from_numpy)


#: Elements `check_finite` looks at exactly at once: it allocates at most ``(itemsize + 3) * FINITE_CHUNK``
#: bytes (torch's ``isfinite`` is ``x == x & x.abs() != inf``), whatever the size of the input. A
#: whole-input ``torch.isfinite(x).all()`` would allocate ``itemsize + 3`` bytes per element.
FINITE_CHUNK = 1 << 20


def check_finite(tensor: Tensor, name: str, chunk: int = FINITE_CHUNK) -> None:
    """A ``ValueError`` naming ``name`` if ``tensor`` holds NaN or Inf, in bounded memory.

    A sum is finite only when every term is (a NaN or an Inf term makes it NaN or Inf), so each block of
    the input is first summed, which allocates nothing but a scalar; only a block whose sum is not finite
    (a NaN, an Inf, or finite values so large that they overflow) is checked element by element, at most
    ``chunk`` elements at a time. Blocks are views along the first axes, never copies. Integer and bool
    tensors are finite by construction and are not scanned.

    Example:
        >>> check_finite(torch.tensor([0.0, float("nan")]), "input_spikes")
        Traceback (most recent call last):
        ...
        ValueError: input_spikes: expected finite values, found NaN or Inf
    """
    if not tensor.dtype.is_floating_point:
        return
    if not _all_finite(tensor, max(1, int(chunk))):
        raise ValueError(f"{name}: expected finite values, found NaN or Inf")


def _all_finite(tensor: Tensor, chunk: int) -> bool:
    if tensor.numel() == 0:
        return True
    if bool(torch.isfinite(tensor.sum())):
        return True
    if tensor.numel() <= chunk or tensor.ndim == 0:
        return bool(torch.isfinite(tensor).all())
    per_row = tensor[0].numel() or 1
    if per_row > chunk:  # one row is more than a chunk: split it further along its own first axis
        return all(_all_finite(row, chunk) for row in tensor)
    rows = max(1, chunk // per_row)
    return all(bool(torch.isfinite(tensor[start:start + rows]).all()) for start in range(0, tensor.shape[0], rows))


#: The dtypes a model may compute in. float16 / bfloat16 would round membranes and spike counts
#: differently from every reference (and torch's CPU kernels lack some of them).
MODEL_DTYPES = (torch.float32, torch.float64)


def model_dtype(tensors: Any, name: str = "model") -> torch.dtype:
    """The floating dtype a model computes in, from its parameters and buffers (an ``nn.Module``) or a list of
    tensors: float32 or float64; float16 / bfloat16, or a mix, is a ``TypeError`` naming the dtype.

    A model without floating tensors computes in float32.

    Example:
        >>> model_dtype(torch.nn.Linear(2, 2).double())
        torch.float64
        >>> model_dtype(torch.nn.Linear(2, 2).half())
        Traceback (most recent call last):
        ...
        TypeError: model: expected float32 or float64 parameters, got torch.float16 (weight); convert the model with .float() or .double()
    """
    if isinstance(tensors, torch.nn.Module):
        named = [*tensors.named_parameters(), *tensors.named_buffers()]
    else:
        named = [(f"[{index}]", tensor) for index, tensor in enumerate(tensors)]
    found: dict[torch.dtype, str] = {}
    for label, tensor in named:
        if isinstance(tensor, Tensor) and tensor.dtype.is_floating_point:
            found.setdefault(tensor.dtype, label)
    for dtype, label in found.items():
        if dtype not in MODEL_DTYPES:
            raise TypeError(f"{name}: expected float32 or float64 parameters, got {dtype} ({label}); convert "
                            "the model with .float() or .double()")
    if len(found) > 1:
        raise TypeError(f"{name}: expected one floating dtype, got a mix of {sorted(map(str, found))}; convert the "
                        "model with .float() or .double()")
    return next(iter(found), torch.float32)


def as_weight_chain(weights: Any, name: str = "weights") -> list[Tensor]:
    """Validate a list of ``(n_in, n_out)`` matrices whose shapes chain; returns float tensors (copies
    are never needed: callers only read them)."""
    if isinstance(weights, (Tensor, np.ndarray)):
        weights = [weights]
    if not isinstance(weights, Sequence) or isinstance(weights, (str, bytes)):
        raise TypeError(f"{name}: expected a list of (n_in, n_out) weight matrices, got {type(weights).__name__}")
    if len(weights) == 0:
        raise ValueError(f"{name}: expected at least one (n_in, n_out) weight matrix, got an empty list")
    chain: list[Tensor] = []
    for index, w in enumerate(weights):
        label = f"{name}[{index}]"
        tensor = floating(as_tensor(w, label)[0])
        if tensor.ndim != 2 or 0 in tensor.shape:
            raise ValueError(f"{label}: expected a non-empty 2-D (n_in, n_out) matrix, got shape {tuple(tensor.shape)}")
        check_finite(tensor, label)
        if chain and chain[-1].shape[1] != tensor.shape[0]:
            raise ValueError(f"{name}: shapes do not chain: {name}[{index - 1}] is {tuple(chain[-1].shape)} "
                             f"but {label} is {tuple(tensor.shape)} (expected {chain[-1].shape[1]} rows)")
        chain.append(tensor)
    return chain


def as_targets(value: Any, batch: int, n_outputs: int, device: torch.device,
               name: str = "output_neuron") -> Tensor:
    """An int, or one int per sample ``(B,)``, each in ``[0, n_outputs)``; returns a ``(B,)`` long tensor."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if not 0 <= int(value) < n_outputs:  # checked before torch.full, which overflows past int64
            raise ValueError(f"{name}: expected values in [0, {n_outputs}) (the model has {n_outputs} outputs), "
                             f"got {int(value)}")
        targets = torch.full((batch,), int(value), dtype=torch.long, device=device)
    elif isinstance(value, (Tensor, np.ndarray, list, tuple)):
        tensor, _ = as_tensor(value, name)
        if tensor.dtype.is_floating_point or tensor.dtype == torch.bool:
            raise TypeError(f"{name}: expected integer class indices, got dtype {tensor.dtype}")
        if tensor.ndim == 0:
            return as_targets(int(tensor), batch, n_outputs, device, name)
        if tensor.shape != (batch,):
            raise ValueError(f"{name}: expected an int or a ({batch},) tensor (one per sample), "
                             f"got shape {tuple(tensor.shape)}")
        targets = tensor.to(device=device, dtype=torch.long)
    else:
        raise TypeError(f"{name}: expected an int or a (B,) integer tensor, got {type(value).__name__}")
    if bool(((targets < 0) | (targets >= n_outputs)).any()):
        bad = targets[(targets < 0) | (targets >= n_outputs)][0].item()
        raise ValueError(f"{name}: expected values in [0, {n_outputs}) (the model has {n_outputs} outputs), got {bad}")
    return targets


def check_same_device(spikes: Tensor, device: torch.device | None, name: str, holder: str = "model") -> None:
    """A ``ValueError`` naming ``name`` unless ``spikes`` is on ``device`` (the ``holder``'s; ``None``: unknown,
    nothing to compare). torch would otherwise fail deep inside a matrix product, or, with a 'meta'
    model, compute garbage."""
    if device is not None and spikes.device != device:
        raise ValueError(f"{name}: on {spikes.device} but the {holder} is on {device}; move one of them "
                         f"(e.g. {name}.to('{device}'))")


def as_choice(value: Any, choices: Collection, name: str):
    """``value`` if it is one of ``choices``, else a ``ValueError`` listing them.

    Only a str or an int is compared: an array (or anything else) is rejected before ``in`` could ask it
    for a truth value (NumPy's unnamed "truth value of an array is ambiguous" error).
    """
    comparable = isinstance(value, (str, numbers.Integral)) and not isinstance(value, bool)
    if not comparable or value not in choices:
        raise ValueError(f"{name}: expected one of {tuple(choices)}, got {value!r}")
    return value


def as_positive_int(value: Any, name: str) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return int(value)


def as_fraction(value: Any, name: str, *, inclusive_high: bool = True) -> float:
    """A real number in ``[0, 1]`` (``[0, 1)`` if not ``inclusive_high``)."""
    # An int is always finite (and may be too big for np.isfinite); a float may be NaN or Inf.
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or \
            (not isinstance(value, numbers.Integral) and not np.isfinite(cast(float, value))):
        raise TypeError(f"{name}: expected a float in [0, 1], got {value!r}")
    real = cast(float, value)  # a numbers.Real, which the type checker cannot compare
    if real < 0 or real > 1 or (not inclusive_high and real == 1):
        raise ValueError(f"{name}: expected a float in [0, 1{']' if inclusive_high else ')'}, got {value}")
    return float(value)


def give_back(tensor: Tensor, batched: bool, numpy: bool):
    """Result tensor ``(B, ...)`` -> what the caller expects: squeeze a lone sample, NumPy for NumPy callers."""
    if not batched:
        tensor = tensor[0]
    return tensor.detach().cpu().numpy() if numpy else tensor
