r"""Current-based neurons integrated by forward Euler, as Norse computes them (bit for bit).

**Current-based LIF** (`current_lif_step`, Norse `LIFCell` / `LIF`; with `recurrent`, `LIFRecurrentCell`):
an exponential synapse $i$, step $dt$, the reset decided and applied in the same step:

$$j = i[t-1] + I[t] \; (+\, R(z[t-1])), \qquad
\tilde v = v[t-1] + dt \, \tau_{mem}^{-1} \big((v_{leak} - v[t-1]) + j\big)$$

$$i[t] = j + (-dt \, \tau_{syn}^{-1}) \, j, \qquad z[t] = H(\tilde v - v_{th}), \qquad
v[t] = (1 - z[t]) \, \tilde v + z[t] \, v_{reset}$$

**Current-based leaky integrator** (`current_li_step`, Norse `LICell` / `LI` / `LILinearCell`): the same
without threshold and reset, emitting $v[t] = \tilde v$.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from .leaky import heaviside


class CurrentLIFParameters(NamedTuple):
    """Parameters of a current-based LIF layer (Norse's `LIFParameters` fields plus `dt`).

    Attributes:
        tau_syn_inv: inverse synaptic time constant (1/s).
        tau_mem_inv: inverse membrane time constant (1/s).
        v_leak: leak (resting) potential.
        v_th: firing threshold.
        v_reset: potential after a spike.
        dt: integration timestep (s).
        recurrent: `None`, or the map from the previous step's spikes to a current (`LIFRecurrentCell`).
    """

    tau_syn_inv: float | Tensor = 200.0
    tau_mem_inv: float | Tensor = 100.0
    v_leak: float | Tensor = 0.0
    v_th: float | Tensor = 1.0
    v_reset: float | Tensor = 0.0
    dt: float = 0.001
    recurrent: Callable[[Tensor], Tensor] | None = None


class CurrentLIFState(NamedTuple):
    """State of a current-based LIF layer: membrane `v` and synaptic current `i`."""

    membrane: Tensor
    current: Tensor


class RecurrentCurrentLIFState(NamedTuple):
    """State of a recurrent current-based LIF layer: membrane, synaptic current and last spikes `z`."""

    membrane: Tensor
    current: Tensor
    spikes: Tensor


def current_lif_initial_state(like: Tensor,
                              params: CurrentLIFParameters) -> CurrentLIFState | RecurrentCurrentLIFState:
    """A resting current-based LIF state (`v = v_leak`, `i = 0`, no spikes) with the shape of `like`.

    Example:
        >>> current_lif_initial_state(torch.zeros(2), CurrentLIFParameters(v_leak=0.5)).membrane
        tensor([0.5000, 0.5000])
    """
    membrane = torch.zeros_like(like) + params.v_leak
    if params.recurrent is not None:
        return RecurrentCurrentLIFState(membrane, torch.zeros_like(like), torch.zeros_like(like))
    return CurrentLIFState(membrane, torch.zeros_like(like))


def current_lif_integrate(current: Tensor, state: CurrentLIFState | RecurrentCurrentLIFState,
                          params: CurrentLIFParameters) -> tuple[Tensor, Tensor]:
    """The first half of `current_lif_step`: `(j, v~)`, the jumped synaptic current and the membrane
    before the threshold (whose distance to `v_th` decides the spike)."""
    jumped = state.current + current
    if params.recurrent is not None:
        jumped = jumped + params.recurrent(state.spikes)  # type: ignore[union-attr]
    decayed = state.membrane + params.dt * params.tau_mem_inv * ((params.v_leak - state.membrane) + jumped)
    return jumped, decayed


def current_lif_step(current: Tensor, state: CurrentLIFState | RecurrentCurrentLIFState,
                     params: CurrentLIFParameters) -> tuple[Tensor, CurrentLIFState | RecurrentCurrentLIFState]:
    """Advance a current-based LIF layer by one timestep (the equations in the module docstring).

    The operations run in the order Norse's `lif_feed_forward_step` runs them, so the two agree to the
    last bit on the same inputs.

    Args:
        current: input current `I[t]`, any shape.
        state: membrane and synaptic current after `t - 1`.
        params: time constants, potentials and `dt`.

    Returns:
        `(spikes, state)`.

    Example:
        >>> params = CurrentLIFParameters()
        >>> spikes, state = current_lif_step(torch.full((2,), 5.0), current_lif_initial_state(torch.zeros(2),
        ...                                  params), params)
        >>> spikes
        tensor([0., 0.])
        >>> current_lif_step(torch.full((2,), 5.0), state, params)[0]
        tensor([1., 1.])
    """
    jumped, decayed = current_lif_integrate(current, state, params)
    synaptic = jumped + -params.dt * params.tau_syn_inv * jumped
    spikes = heaviside(decayed - params.v_th)
    membrane = (1 - spikes) * decayed + spikes * params.v_reset
    if params.recurrent is not None:
        return spikes, RecurrentCurrentLIFState(membrane, synaptic, spikes)
    return spikes, CurrentLIFState(membrane, synaptic)


class CurrentLIParameters(NamedTuple):
    """Parameters of a current-based leaky integrator (Norse's `LIParameters` plus `dt`)."""

    tau_syn_inv: float | Tensor = 200.0
    tau_mem_inv: float | Tensor = 100.0
    v_leak: float | Tensor = 0.0
    dt: float = 0.001


class CurrentLIState(NamedTuple):
    """State of a current-based leaky integrator: membrane `v` and synaptic current `i`."""

    membrane: Tensor
    current: Tensor


def current_li_initial_state(like: Tensor, params: CurrentLIParameters) -> CurrentLIState:
    """A resting current-based leaky integrator (`v = v_leak`, `i = 0`)."""
    return CurrentLIState(torch.zeros_like(like) + params.v_leak, torch.zeros_like(like))


def current_li_step(current: Tensor, state: CurrentLIState,
                    params: CurrentLIParameters) -> tuple[Tensor, CurrentLIState]:
    """Advance a current-based leaky integrator by one timestep; emits its membrane.

    Example:
        >>> params = CurrentLIParameters()
        >>> current_li_step(torch.ones(1), current_li_initial_state(torch.zeros(1), params), params)[0]
        tensor([0.1000])
    """
    jumped = state.current + current
    membrane = state.membrane + params.dt * params.tau_mem_inv * ((params.v_leak - state.membrane) + jumped)
    synaptic = jumped + -params.dt * params.tau_syn_inv * jumped
    return membrane, CurrentLIState(membrane, synaptic)
