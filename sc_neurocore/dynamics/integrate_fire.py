r"""Integrate-and-fire neurons as SpikingJelly computes them (bit for bit, in its order of operations).

SpikingJelly's `IFNode`, `LIFNode` and `ParametricLIFNode` (`spikingjelly.activation_based.neuron`) split
a step into charge, fire and reset. With input $x[t]$, membrane $v$, threshold $\theta$, reset potential
$v_r$ ($0$ for a soft reset) and the charged membrane $h[t]$:

| neuron | charge $h[t]$ (`decay_input=True`) | `decay_input=False` |
|---|---|---|
| IF | $v[t-1] + x[t]$ | the same |
| LIF (`tau`) | $v[t-1] + (x[t] - (v[t-1] - v_r)) / \tau$ | $v[t-1] - (v[t-1] - v_r) / \tau + x[t]$ |
| PLIF (`w`) | $v[t-1] + (x[t] - (v[t-1] - v_r)) \, q$ | $v[t-1] - (v[t-1] - v_r) \, q + x[t]$ |

where PLIF's decay is $q = \sigma(w) = 1 / \tau$, its learned parameter `w` through a sigmoid. Then

$$s[t] = H(h[t] - \theta), \qquad H(x) = 1 \text{ if } x \ge 0 \text{ else } 0$$

(SpikingJelly fires *at* the threshold, unlike snnTorch), and the reset is hard,
$v[t] = s[t] \, v_r + (1 - s[t]) \, h[t]$ (`v_reset` a float), or soft, $v[t] = h[t] - s[t] \, \theta$
(`v_reset=None`). A layer starts at $v = v_r$ (hard) or $0$ (soft), as `functional.reset_net` leaves it.

LIF divides by `tau` while PLIF multiplies by `q`: the two round differently, so each keeps its own form.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class IntegrateFireParameters(NamedTuple):
    """Parameters of a SpikingJelly integrate-and-fire layer.

    Attributes:
        v_threshold: firing threshold $\\theta$.
        v_reset: the hard-reset potential, or `None` for a soft reset (subtract the threshold).
        tau: `LIFNode`'s membrane time constant (the charge divides by it), or `None`.
        decay: `ParametricLIFNode`'s $q = \\sigma(w)$ (the charge multiplies by it), or `None`. With
            neither `tau` nor `decay` the layer is an `IFNode`.
        decay_input: whether the leak also scales the input (SpikingJelly's `decay_input`).
    """

    v_threshold: float = 1.0
    v_reset: float | None = 0.0
    tau: float | None = None
    decay: float | Tensor | None = None
    decay_input: bool = True


class IntegrateFireState(NamedTuple):
    """State of an integrate-and-fire layer: its membrane potential `v` after the reset."""

    membrane: Tensor


def integrate_fire_initial_state(like: Tensor, params: IntegrateFireParameters) -> IntegrateFireState:
    """The state `functional.reset_net` leaves: `v = v_reset` (hard reset) or `0` (soft), shaped like `like`.

    Example:
        >>> integrate_fire_initial_state(torch.zeros(2), IntegrateFireParameters(v_reset=-0.5)).membrane
        tensor([-0.5000, -0.5000])
    """
    return IntegrateFireState(torch.full_like(like, 0.0 if params.v_reset is None else params.v_reset))


def integrate_fire_charge(current: Tensor, membrane: Tensor, params: IntegrateFireParameters) -> Tensor:
    """SpikingJelly's `neuronal_charge`: the membrane `h[t]` before fire and reset.

    Example:
        >>> integrate_fire_charge(torch.tensor([1.0]), torch.tensor([0.5]), IntegrateFireParameters(tau=2.0))
        tensor([0.7500])
    """
    if params.tau is None and params.decay is None:
        return membrane + current
    reset = 0.0 if params.v_reset is None else params.v_reset
    if params.tau is not None:
        if params.decay_input:
            return membrane + (current - (membrane - reset)) / params.tau
        return membrane - (membrane - reset) / params.tau + current
    decay = params.decay
    if params.decay_input:
        return membrane + (current - (membrane - reset)) * decay  # type: ignore[operator]
    return membrane - (membrane - reset) * decay + current  # type: ignore[operator]


def integrate_fire_fire(charged: Tensor, params: IntegrateFireParameters) -> Tensor:
    """SpikingJelly's `neuronal_fire` (forward): `1` where `h >= v_threshold`, in `h`'s dtype.

    Example:
        >>> integrate_fire_fire(torch.tensor([0.5, 1.0, 2.0]), IntegrateFireParameters())
        tensor([0., 1., 1.])
    """
    return torch.ge(charged, params.v_threshold, out=torch.empty_like(charged))


def integrate_fire_reset(charged: Tensor, spikes: Tensor, params: IntegrateFireParameters) -> Tensor:
    """SpikingJelly's `neuronal_reset`: hard (`v_reset` a float) or soft (`v_reset=None`).

    Example:
        >>> integrate_fire_reset(torch.tensor([1.5]), torch.tensor([1.0]), IntegrateFireParameters(v_reset=None))
        tensor([0.5000])
    """
    if params.v_reset is None:
        return charged - spikes * params.v_threshold
    return spikes * params.v_reset + (1 - spikes) * charged


def integrate_fire_step(current: Tensor, state: IntegrateFireState,
                        params: IntegrateFireParameters) -> tuple[Tensor, IntegrateFireState]:
    """Advance an integrate-and-fire layer by one timestep: charge, fire, reset (the module docstring).

    Args:
        current: input current `x[t]`, any shape.
        state: the membrane after `t - 1`.
        params: threshold, reset, leak.

    Returns:
        `(spikes, state)`: spikes `s[t]` in `current`'s dtype and the membrane after the reset.

    Example:
        >>> params = IntegrateFireParameters(v_threshold=1.0, v_reset=0.0)
        >>> spikes, state = integrate_fire_step(torch.tensor([0.6, 1.0]), integrate_fire_initial_state(
        ...     torch.zeros(2), params), params)
        >>> spikes, state.membrane
        (tensor([0., 1.]), tensor([0.6000, 0.0000]))
    """
    charged = integrate_fire_charge(current, state.membrane, params)
    spikes = integrate_fire_fire(charged, params)
    return spikes, IntegrateFireState(integrate_fire_reset(charged, spikes, params))


def integrate_fire_decision(current: Tensor, before: IntegrateFireState, after: IntegrateFireState,
                            params: IntegrateFireParameters) -> Tensor:
    """The signed distance to threshold that decided each spike: `h[t] - v_threshold` (a spike where `>= 0`).

    Example:
        >>> params = IntegrateFireParameters()
        >>> before = integrate_fire_initial_state(torch.zeros(1), params)
        >>> integrate_fire_decision(torch.tensor([0.75]), before, before, params)
        tensor([-0.2500])
    """
    return integrate_fire_charge(current, before.membrane, params) - params.v_threshold
