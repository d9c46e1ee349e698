r"""Current-based neurons integrated by forward Euler, as Norse computes them (bit for bit).

**Current-based LIF** (`current_lif_step`, Norse `LIFCell` / `LIF`; with `recurrent`, `LIFRecurrentCell`):
an exponential synapse $i$, step $dt$, the reset decided and applied in the same step:

$$j = i[t-1] + I[t] \; (+\, R(z[t-1])), \qquad
\tilde v = v[t-1] + dt \, \tau_{mem}^{-1} \big((v_{leak} - v[t-1]) + j\big)$$

$$i[t] = j + (-dt \, \tau_{syn}^{-1}) \, j, \qquad z[t] = H(\tilde v - v_{th}), \qquad
v[t] = (1 - z[t]) \, \tilde v + z[t] \, v_{reset}$$

**Current-based leaky integrator** (`current_li_step`, Norse `LICell` / `LI` / `LILinearCell`): the same
without threshold and reset, emitting $v[t] = \tilde v$.

**Box LIF** (`current_lif_box_step`, Norse `LIFBoxCell`): no synapse, the input current drives the
membrane directly, and the reset is Norse's `reset_value` or `reset_subtract`:

$$\tilde v = v[t-1] + dt \, \tau_{mem}^{-1} \big((I[t] + v_{leak}) - v[t-1]\big), \qquad z[t] = H(\tilde v - v_{th})$$

$$v[t] = (1 - z[t]) \, \tilde v + z[t] \, v_{reset} \;\text{(value)} \quad\text{or}\quad
(1 - z[t]) \, \tilde v + z[t] \, (\tilde v - v_{th}) \;\text{(subtract)}$$

**Box leaky integrator** (`current_li_box_step`, Norse `LIBoxCell`):
$v[t] = v[t-1] + dt \, \tau_{mem}^{-1} \big((v_{leak} - v[t-1]) + I[t]\big)$, emitting $v[t]$.

Each step's `..._decision(current, before, after, params)` gives the signed distance to threshold that
decided its spikes, $\tilde v - v_{th}$ (the state after the step holds the reset membrane instead).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

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


def current_lif_decision(current: Tensor, before: CurrentLIFState | RecurrentCurrentLIFState, after: object,
                         params: CurrentLIFParameters) -> Tensor:
    """The signed distance to threshold that decided `current_lif_step`'s spikes: $\\tilde v - v_{th}$.

    Example:
        >>> params = CurrentLIFParameters()
        >>> before = current_lif_initial_state(torch.zeros(1), params)
        >>> current_lif_decision(torch.full((1,), 5.0), before, None, params)
        tensor([-0.5000])
    """
    return current_lif_integrate(current, before, params)[1] - params.v_th


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
    """A resting current-based leaky integrator (`v = v_leak`, `i = 0`).

    Example:
        >>> current_li_initial_state(torch.zeros(2), CurrentLIParameters(v_leak=0.5)).membrane
        tensor([0.5000, 0.5000])
    """
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


#: Norse's reset methods of `LIFBoxCell`: `reset_value` (to `v_reset`) and `reset_subtract` (by `v_th`).
BoxReset = Literal["value", "subtract"]


class CurrentLIFBoxParameters(NamedTuple):
    """Parameters of a box LIF layer (Norse's `LIFBoxParameters` fields plus `dt`).

    Attributes:
        tau_mem_inv: inverse membrane time constant (1/s).
        v_leak: leak (resting) potential.
        v_th: firing threshold.
        v_reset: potential after a spike (`reset="value"`).
        reset: `"value"` (Norse's `reset_value`) or `"subtract"` (`reset_subtract`).
        dt: integration timestep (s).
    """

    tau_mem_inv: float | Tensor = 100.0
    v_leak: float | Tensor = 0.0
    v_th: float | Tensor = 1.0
    v_reset: float | Tensor = 0.0
    reset: BoxReset = "value"
    dt: float = 0.001


class CurrentBoxState(NamedTuple):
    """State of a box layer (LIF or leaky integrator): its membrane `v`."""

    membrane: Tensor


def current_box_initial_state(like: Tensor,
                              params: CurrentLIFBoxParameters | CurrentLIBoxParameters) -> CurrentBoxState:
    """A resting box layer (`v = v_leak`) with the shape of `like`.

    Example:
        >>> current_box_initial_state(torch.zeros(2), CurrentLIFBoxParameters(v_leak=0.25)).membrane
        tensor([0.2500, 0.2500])
    """
    return CurrentBoxState(torch.zeros_like(like) + params.v_leak)


def current_lif_box_integrate(current: Tensor, state: CurrentBoxState, params: CurrentLIFBoxParameters) -> Tensor:
    """The membrane of `current_lif_box_step` before the threshold, $\\tilde v$.

    Example:
        >>> params = CurrentLIFBoxParameters()
        >>> current_lif_box_integrate(torch.full((1,), 5.0), current_box_initial_state(torch.zeros(1), params), params)
        tensor([0.5000])
    """
    return state.membrane + params.dt * params.tau_mem_inv * (current + params.v_leak - state.membrane)


def current_lif_box_step(current: Tensor, state: CurrentBoxState,
                         params: CurrentLIFBoxParameters) -> tuple[Tensor, CurrentBoxState]:
    """Advance a box LIF layer by one timestep, in the order of Norse's `lif_box_feed_forward_step`.

    Example:
        >>> params = CurrentLIFBoxParameters()
        >>> state = current_box_initial_state(torch.zeros(2), params)
        >>> spikes, state = current_lif_box_step(torch.tensor([5.0, 20.0]), state, params)
        >>> spikes, state.membrane
        (tensor([0., 1.]), tensor([0.5000, 0.0000]))
    """
    decayed = current_lif_box_integrate(current, state, params)
    spikes = heaviside(decayed - params.v_th)
    if params.reset == "subtract":
        membrane = (1 - spikes) * decayed + spikes * (decayed - params.v_th)
    else:
        membrane = (1 - spikes) * decayed + spikes * params.v_reset
    return spikes, CurrentBoxState(membrane)


def current_lif_box_decision(current: Tensor, before: CurrentBoxState, after: object,
                             params: CurrentLIFBoxParameters) -> Tensor:
    """The signed distance to threshold that decided `current_lif_box_step`'s spikes: $\\tilde v - v_{th}$.

    Example:
        >>> params = CurrentLIFBoxParameters()
        >>> before = current_box_initial_state(torch.zeros(1), params)
        >>> current_lif_box_decision(torch.full((1,), 20.0), before, None, params)
        tensor([1.])
    """
    return current_lif_box_integrate(current, before, params) - params.v_th


class CurrentLIBoxParameters(NamedTuple):
    """Parameters of a box leaky integrator (Norse's `LIBoxParameters` plus `dt`)."""

    tau_mem_inv: float | Tensor = 100.0
    v_leak: float | Tensor = 0.0
    dt: float = 0.001


def current_li_box_step(current: Tensor, state: CurrentBoxState,
                        params: CurrentLIBoxParameters) -> tuple[Tensor, CurrentBoxState]:
    """Advance a box leaky integrator by one timestep (Norse's `li_box_feed_forward_step`); emits its membrane.

    Example:
        >>> params = CurrentLIBoxParameters()
        >>> current_li_box_step(torch.ones(1), current_box_initial_state(torch.zeros(1), params), params)[0]
        tensor([0.1000])
    """
    membrane = state.membrane + params.dt * params.tau_mem_inv * ((params.v_leak - state.membrane) + current)
    return membrane, CurrentBoxState(membrane)
