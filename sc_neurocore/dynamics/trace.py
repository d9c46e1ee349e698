r"""The decayed spike trace: the quantity an attribution trace register holds.

$$x[t] = d \, (x[t-1] + s[t]), \qquad x[T-1] = \sum_{t=0}^{T-1} d^{T-t} s[t]$$

the tutorial's attribution weighting of a spike at `t`.
"""

from __future__ import annotations

import torch
from torch import Tensor


def trace_step(spikes: Tensor, trace: Tensor, decay: float | Tensor) -> Tensor:
    """Advance a decayed spike trace by one timestep: `decay * (trace + spikes)`.

    For integer (fixed-point) traces pass `decay` as the integer multiplier and rescale outside; the FPGA
    reference does exactly that.

    Example:
        >>> trace_step(torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.5]), 0.5)
        tensor([0.7500, 0.2500])
    """
    return decay * (trace + spikes)


def decay_weights(n_steps: int, decay: float, *, dtype: torch.dtype = torch.float32,
                  device: torch.device | str | None = None) -> Tensor:
    """`decay**(T - t)` for `t = 0 .. T-1`: the weight of a spike at `t` in the final trace.

    Computed in float64 and cast once, so that it matches `trace_step` run over time to the last bit of
    the requested dtype's precision.

    Example:
        >>> decay_weights(3, 0.5)
        tensor([0.1250, 0.2500, 0.5000])
    """
    exponents = torch.arange(n_steps, 0, -1, dtype=torch.float64, device=device)
    return torch.as_tensor(decay, dtype=torch.float64, device=device).pow(exponents).to(dtype)
