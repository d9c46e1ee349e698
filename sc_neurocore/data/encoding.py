r"""Turning images into spike trains: rate coding and latency coding.

Both take intensities in ``[0, 1]`` of shape ``(B, N)`` (flattened images) and return batch-first spikes
``(B, T, N)`` of 0.0 / 1.0 in float32, the layout every explainer takes.

Rate coding (Bernoulli, as snnTorch's ``spikegen.rate``): each pixel fires independently at each
timestep with probability equal to its intensity:

    s[t, i] ~ Bernoulli(x[i])            t = 0 .. T-1

Latency coding (one spike per pixel, bright pixels first): a pixel of intensity ``x[i] > 0`` fires once, at

    t_i = round((1 - x[i]) * (T - 1))

and a pixel of intensity 0 never fires. Deterministic; no generator needed.
"""

from __future__ import annotations

import numbers

import torch
from torch import Tensor

from ..inputs import as_positive_int

ENCODINGS: tuple[str, ...] = ("rate", "latency")


def _check_intensities(intensities: Tensor, name: str) -> Tensor:
    if not isinstance(intensities, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of intensities in [0, 1], got {type(intensities).__name__}")
    if intensities.ndim != 2 or 0 in intensities.shape:
        raise ValueError(f"{name}: expected a non-empty (B, N) tensor (flattened images), got shape "
                         f"{tuple(intensities.shape)}")
    if not intensities.dtype.is_floating_point:
        raise TypeError(f"{name}: expected a floating tensor, got dtype {intensities.dtype}")
    if not bool(((intensities >= 0) & (intensities <= 1)).all()):
        raise ValueError(f"{name}: expected intensities in [0, 1] (NaN not allowed)")
    return intensities


def rate_encode(intensities: Tensor, n_steps: int, seed: int = 0) -> Tensor:
    """Bernoulli rate coding: a pixel fires at every timestep with probability equal to its intensity.

    Args:
        intensities: ``(B, N)`` floats in ``[0, 1]``.
        n_steps: the number of timesteps ``T``.
        seed: seed of the private ``torch.Generator`` (CPU, Mersenne Twister), so that the same call gives the
            same spikes on every machine and never touches torch's global random state.

    Returns:
        Spikes ``(B, T, N)`` in float32 on ``intensities``' device.

    Example:
        >>> import torch
        >>> spikes = rate_encode(torch.tensor([[0.0, 1.0, 0.5]]), n_steps=4)
        >>> spikes.shape, spikes[0, :, 1].tolist()
        (torch.Size([1, 4, 3]), [1.0, 1.0, 1.0, 1.0])
    """
    intensities = _check_intensities(intensities, "intensities")
    n_steps = as_positive_int(n_steps, "n_steps")
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
        raise TypeError(f"seed: expected an int, got {seed!r}")
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    batch, n_inputs = intensities.shape
    # Drawn on the CPU from a private generator: the spikes do not depend on the device or global seeds.
    draws = torch.rand((batch, n_steps, n_inputs), generator=generator, dtype=torch.float32)
    probability = intensities.detach().to(device="cpu", dtype=torch.float32)[:, None, :]
    return (draws < probability).to(torch.float32).to(intensities.device)


def latency_encode(intensities: Tensor, n_steps: int) -> Tensor:
    """Latency coding: one spike per non-zero pixel, at ``round((1 - x) * (T - 1))`` (bright pixels first).

    Args:
        intensities: ``(B, N)`` floats in ``[0, 1]``.
        n_steps: the number of timesteps ``T``.

    Returns:
        Spikes ``(B, T, N)`` in float32 on ``intensities``' device; each column holds at most one spike.

    Example:
        >>> import torch
        >>> latency_encode(torch.tensor([[1.0, 0.0, 0.5]]), n_steps=3)[0].tolist()
        [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    """
    intensities = _check_intensities(intensities, "intensities")
    n_steps = as_positive_int(n_steps, "n_steps")
    fire_time = torch.round((1 - intensities.to(torch.float64)) * (n_steps - 1)).long()  # (B, N)
    timesteps = torch.arange(n_steps, device=intensities.device)[None, :, None]
    spikes = (timesteps == fire_time[:, None, :]) & (intensities[:, None, :] > 0)
    return spikes.to(torch.float32)


def encode(intensities: Tensor, n_steps: int, encoding: str = "rate", seed: int = 0) -> Tensor:
    """Spikes ``(B, T, N)`` from intensities ``(B, N)`` with ``encoding`` ``"rate"`` or ``"latency"``.

    Args:
        intensities: ``(B, N)`` floats in ``[0, 1]``.
        n_steps: the number of timesteps ``T``.
        encoding: ``"rate"`` (`rate_encode`) or ``"latency"`` (`latency_encode`).
        seed: the rate coder's seed (ignored by latency coding, which is deterministic).

    Returns:
        Spikes ``(B, T, N)`` in float32.

    Example:
        >>> import torch
        >>> encode(torch.full((2, 5), 0.5), n_steps=10, encoding="latency").sum().item()
        10.0
    """
    if encoding == "rate":
        return rate_encode(intensities, n_steps, seed)
    if encoding == "latency":
        return latency_encode(intensities, n_steps)
    raise ValueError(f"encoding: expected one of {ENCODINGS}, got {encoding!r}")
