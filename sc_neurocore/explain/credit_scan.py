r"""The reverse-time scans of the spike-time credit rule (equations in `sc_neurocore.explain.credit`).

Each scan runs once over time, backwards, on `(B, T, n)` tensors; time is the only loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .credit_layers import CreditLayer


def _as(value: Any, like: Tensor) -> Tensor:
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def spike_credit(spikes: Tensor, worth: Tensor, beta: float | Tensor, threshold: float | Tensor) -> Tensor:
    r"""The spike rule on membrane kicks: $m[t] = \beta^{t_n - t} g[t_n] / \theta$, `(B, T, n)`.

    Args:
        spikes: the layer's recorded spikes $z$ `(B, T, n)`.
        worth: $g$ `(B, T, n)`, what a spike at each step is worth.
        beta: the layer's decay (float or `(n,)`).
        threshold: the cost of a spike $\theta$ (float or `(n,)`).

    Example:
        >>> import torch
        >>> z = torch.tensor([[[0.0], [0.0], [1.0]]])
        >>> spike_credit(z, torch.ones(1, 3, 1), 0.5, 2.0)[0, :, 0].tolist()
        [0.125, 0.25, 0.5]
    """
    decay = _as(beta, worth).reshape(-1)
    fired = spikes != 0
    share = torch.where(fired, worth / _as(threshold, worth).reshape(-1), torch.zeros_like(worth))
    credit = torch.empty_like(worth)
    carry = torch.zeros_like(worth[:, 0])
    for t in range(worth.shape[1] - 1, -1, -1):  # reverse time: the next spike at or after t
        carry = torch.where(fired[:, t], share[:, t], decay * carry)
        credit[:, t] = carry
    return credit


def accumulate(credit: Tensor, decay: float | Tensor) -> Tensor:
    r"""$a[t] = \sum_{u \ge t} d^{u-t} c[u]$ along time, `(B, T, n)`: a current or membrane that keeps a kick.

    Example:
        >>> import torch
        >>> accumulate(torch.ones(1, 3, 1), 0.5)[0, :, 0].tolist()
        [1.75, 1.5, 1.0]
    """
    rate = _as(decay, credit).reshape(-1)
    total = torch.empty_like(credit)
    carry = torch.zeros_like(credit[:, 0])
    for t in range(credit.shape[1] - 1, -1, -1):
        carry = credit[:, t] + rate * carry
        total[:, t] = carry
    return total


def readout_end(membrane: Tensor, targets: Tensor, readout: str) -> Tensor:
    """`(B,)`: the step a membrane readout reads, `T - 1` or the first maximum of the target's membrane.

    Example:
        >>> import torch
        >>> readout_end(torch.tensor([[[1.0], [3.0], [2.0]]]), torch.tensor([0]), "max_membrane").tolist()
        [1]
    """
    n_samples, n_steps = membrane.shape[:2]
    if readout == "final_membrane":
        return torch.full((n_samples,), n_steps - 1, device=membrane.device)
    return torch.argmax(membrane[torch.arange(n_samples, device=membrane.device), :, targets], dim=1)


def membrane_credit(spikes: Tensor, membrane: Tensor, targets: Tensor, layer: CreditLayer, readout: str) -> Tensor:
    r"""Credit per unit **membrane kick** of a spiking output layer under a membrane readout, `(B, T, C)`.

    $m[u, k] = \beta^{e-u}$ for $u \le e$ (the read step $e$), `0` for a kick a reset wipes before $e$:
    a spike in $[u, e-1]$ (`wipe="next"`), in $[u-1, e-1]$ (`"through"`) or in $[u, e]$ (`"same"`).
    Zero but in column $k$.

    Args:
        spikes: the output layer's spikes `(B, T, C)`.
        membrane: its recorded membrane `(B, T, C)` (the time of the maximum for `"max_membrane"`).
        targets: `(B,)` the explained neuron of each sample.
        layer: the output layer.
        readout: `"final_membrane"` or `"max_membrane"`.

    Example:
        >>> import torch
        >>> z, v = torch.zeros(1, 3, 1), torch.tensor([[[1.0], [3.0], [2.0]]])
        >>> layer = CreditLayer.dense(torch.ones(1, 1), 0.5, reset="none")
        >>> membrane_credit(z, v, torch.tensor([0]), layer, "max_membrane")[0, :, 0].tolist()
        [0.5, 1.0, 0.0]
    """
    n_samples, n_steps, _ = membrane.shape
    rows = torch.arange(n_samples, device=membrane.device)
    fired = (spikes[rows, :, targets] != 0).to(membrane.dtype)  # (B, T)
    decay = _as(layer.beta, membrane).reshape(-1)
    decay = decay[targets] if decay.numel() > 1 else decay
    end = readout_end(membrane, targets, readout)
    steps = torch.arange(n_steps, device=membrane.device)
    if layer.wipe == "next":  # a spike at the read step itself resets only after it
        wiper = fired * (steps[None] < end[:, None])
    elif layer.wipe == "through":  # a spike at u - 1 zeroes v[u] whole
        wiper = torch.cat([torch.zeros_like(fired[:, :1]), fired[:, :-1]], dim=1)
    else:
        wiper = fired
    column = torch.zeros(n_samples, n_steps, dtype=membrane.dtype, device=membrane.device)
    carry = torch.zeros(n_samples, dtype=membrane.dtype, device=membrane.device)
    for t in range(n_steps - 1, -1, -1):
        carry = torch.where(end == t, torch.ones_like(carry), decay * carry)
        if layer.wipe != "none":
            carry = carry * (1 - wiper[:, t])
        column[:, t] = carry
    credit = torch.zeros_like(membrane)
    credit[rows, :, targets] = column
    return credit


def _delayed(worth: Tensor, delay: Tensor) -> Tensor:
    """$c[t, j] = g[t + d_j, j]$ (`0` past the window): a delay line's credit per unit input."""
    n_samples, n_steps, size = worth.shape
    index = torch.arange(n_steps, device=worth.device)[:, None] + delay.to(worth.device)[None, :]
    inside = (index < n_steps).to(worth.dtype)
    gathered = worth.gather(1, index.clamp(max=n_steps - 1).expand(n_samples, n_steps, size))
    return gathered * inside


def _recurrent_adjoint(maps: tuple[Any, ...], credit: Tensor, shape: tuple[int, ...]) -> Tensor:
    """$R^\\top c$ for one step's credit `(B, n)` through the recurrent maps (in reverse)."""
    flat = credit.reshape(credit.shape[0], *shape)
    for linear_map in reversed(maps):
        flat = linear_map.adjoint(flat)
    return flat.reshape(credit.shape[0], -1)


#: A replacement of the spike rule for the evaluation of variants: `rule(spikes, worth, membrane, layer) -> m`,
#: all `(B, T, n)` (`worth` already times the spike height).
SpikeRule = Callable[[Tensor, Tensor, Tensor, CreditLayer], Tensor]


def layer_credit(layer: CreditLayer, spikes: Tensor, worth: Tensor, readout_kick: Tensor | None = None,
                 membrane: Tensor | None = None, spike_rule: SpikeRule | None = None) -> Tensor:
    r"""Credit per unit input current $c[t]$ of one layer, `(B, T, n)` (the module docstring of `credit`).

    Args:
        layer: the layer (`credit_layer`).
        spikes: its recorded spikes `(B, T, n)` (unused for `"li"` and `"delay"`).
        worth: $g$, what a unit of the layer's emitted value at each step is worth downstream `(B, T, n)`.
        readout_kick: for a spiking output layer under a membrane readout, its `membrane_credit`.
        membrane: its recorded membrane `(B, T, n)` (needed by `spike_rule` only).
        spike_rule: a variant of the spike rule (`spike_credit`), used on a plain spiking layer only (no
            synaptic current, recurrence, input gain or readout kick); other layers keep the rule.

    Example:
        >>> import torch
        >>> layer = CreditLayer.dense(torch.ones(1, 1), 0.5)
        >>> z = torch.tensor([[[0.0], [1.0]]])
        >>> layer_credit(layer, z, torch.ones(1, 2, 1))[0, :, 0].tolist()
        [0.5, 1.0]
    """
    if layer.delay is not None:
        return _delayed(worth, layer.delay)
    if layer.recurrent is None and readout_kick is None and layer.alpha is None and _is_one(layer.gain):
        if layer.kind == "li":
            return accumulate(worth, layer.beta)
        height = worth * _as(layer.graded, worth).reshape(-1)
        if spike_rule is not None:
            if membrane is None:
                raise ValueError("membrane: a spike_rule needs the layer's recorded membrane")
            return _wiped(spike_rule(spikes, height, membrane, layer), spikes, layer)
        return _wiped(spike_credit(spikes, height, layer.beta, layer.threshold), spikes, layer)
    decay = _as(layer.beta, worth).reshape(-1)
    gain = _as(layer.gain, worth).reshape(-1)
    synapse = None if layer.alpha is None else _as(layer.alpha, worth).reshape(-1)
    height = _as(layer.graded, worth).reshape(-1)
    cost = _as(layer.threshold, worth).reshape(-1)
    fired = spikes != 0
    credit = torch.empty_like(worth)
    carry = torch.zeros_like(worth[:, 0])
    current = torch.zeros_like(worth[:, 0])
    for t in range(worth.shape[1] - 1, -1, -1):
        g = worth[:, t]
        if layer.recurrent is not None and t + 1 < worth.shape[1]:  # a spike at t feeds R at t + 1
            g = g + _recurrent_adjoint(layer.recurrent, credit[:, t + 1], layer.shape)
        if layer.kind == "li":
            carry = g + decay * carry
            kick = carry
        else:
            carry = torch.where(fired[:, t], g * height / cost, decay * carry)
            kick = carry * ~fired[:, t - 1] if layer.wipe == "through" and t > 0 else carry
        if readout_kick is not None:
            kick = kick + readout_kick[:, t]
        current = kick if synapse is None else kick + synapse * current
        credit[:, t] = gain * current
    return credit


def _is_one(value: Any) -> bool:
    return isinstance(value, (int, float)) and value == 1


def _wiped(credit: Tensor, spikes: Tensor, layer: CreditLayer) -> Tensor:
    """A delayed zero reset of `Synaptic` / `RLeaky` zeroes $v[t+1]$ whole: the kick of the step after a spike
    is lost."""
    if layer.wipe != "through":
        return credit
    after = torch.cat([torch.zeros_like(spikes[:, :1]), spikes[:, :-1]], dim=1) != 0
    return credit.masked_fill(after, 0.0)
