r"""Neuron dynamics, written once.

Every part of sc-neurocore that simulates a network -- the reference `LIFNetwork`,
the perturbation engine's replay, the compiled snnTorch / Norse stacks and the FPGA's integer reference --
is built from the pure step functions below, so "what the network does" cannot drift between them.

Each step has the form ``step(input, state, params) -> (output, state)``; states and parameters are small
immutable NamedTuples (the Norse style). All functions work on any tensor shape and any floating dtype,
and the trace step on integer tensors too.

Leaky integrate-and-fire neuron (discrete time, snnTorch's ``Leaky`` with its default delayed reset):

    r[t] = H(v[t-1] - theta)                          reset decided from the previous membrane
    v[t] = beta * v[t-1] + I[t] - r[t] * theta        reset by subtraction ("subtract")
    v[t] = beta * ((1 - r[t]) * v[t-1]) + I[t]        reset to zero        ("zero")
    v[t] = beta * v[t-1] + I[t]                       no reset             ("none")
    s[t] = H(v[t] - theta)                            H(x) = 1 if x > 0 else 0

Current-based LIF neuron (Norse's ``LIFCell``: an exponential synapse ``i``, forward Euler with step
``dt``, reset decided and applied in the same step):

    j       = i[t-1] + I[t]                                           input jumps the synaptic current
    v~      = v[t-1] + dt / tau_mem * ((v_leak - v[t-1]) + j)
    i[t]    = j + (-dt / tau_syn) * j
    s[t]    = H(v~ - v_th)
    v[t]    = (1 - s[t]) * v~ + s[t] * v_reset

Leaky integrator readout:

    v[t] = beta * v[t-1] + I[t]

Decayed spike trace (the quantity a trace register holds; after ``T`` steps it equals
``sum_t decay**(T - t) * s[t]`` for ``t = 0 .. T-1``, the tutorial's attribution weighting):

    x[t] = decay * (x[t-1] + s[t])
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor

ResetMechanism = Literal["subtract", "zero", "none"]
RESET_MECHANISMS: tuple[str, ...] = ("subtract", "zero", "none")


class LIFParameters(NamedTuple):
    """Parameters of a leaky integrate-and-fire layer.

    Attributes:
        beta: membrane decay per timestep, in ``[0, 1]`` (a float or a per-neuron tensor).
        threshold: firing threshold (a float or a per-neuron tensor).
        reset: ``"subtract"``, ``"zero"`` or ``"none"``.
    """

    beta: float | Tensor = 0.9
    threshold: float | Tensor = 1.0
    reset: ResetMechanism = "subtract"


class LIFState(NamedTuple):
    """State of a leaky integrate-and-fire layer: its membrane potential ``v``."""

    membrane: Tensor


class LIState(NamedTuple):
    """State of a leaky integrator: its membrane potential ``v``."""

    membrane: Tensor


def lif_initial_state(like: Tensor) -> LIFState:
    """A resting LIF state (membrane 0) with the shape, dtype and device of ``like``."""
    return LIFState(torch.zeros_like(like))


def heaviside(x: Tensor) -> Tensor:
    """``1`` where ``x > 0``, else ``0``, in ``x``'s dtype (the spike nonlinearity)."""
    # Comparing straight into a tensor of x's dtype: the same values as (x > 0).to(x.dtype), but on CPU
    # the bool -> float conversion kernel alone cost 5-9x the comparison, and this runs every step.
    return torch.gt(x, 0, out=torch.empty_like(x))


def lif_step(current: Tensor, state: LIFState, params: LIFParameters) -> tuple[Tensor, LIFState]:
    """Advance a LIF layer by one timestep.

    Args:
        current: input current ``I[t]``, any shape.
        state: the layer's state after ``t - 1``.
        params: leak, threshold and reset mechanism.

    Returns:
        ``(spikes, state)``: the spikes ``s[t]`` (0/1 in ``current``'s dtype) and the new state.
    """
    membrane = state.membrane
    reset = heaviside(membrane - params.threshold)
    if params.reset == "subtract":
        membrane = params.beta * membrane + current - reset * params.threshold
    elif params.reset == "zero":
        membrane = params.beta * ((1 - reset) * membrane) + current
    else:
        membrane = params.beta * membrane + current
    return heaviside(membrane - params.threshold), LIFState(membrane)


class CurrentLIFParameters(NamedTuple):
    """Parameters of a current-based LIF layer (Norse's ``LIFParameters`` fields plus ``dt``).

    Attributes:
        tau_syn_inv: inverse synaptic time constant (1/s).
        tau_mem_inv: inverse membrane time constant (1/s).
        v_leak: leak (resting) potential.
        v_th: firing threshold.
        v_reset: potential after a spike.
        dt: integration timestep (s).
    """

    tau_syn_inv: float | Tensor = 200.0
    tau_mem_inv: float | Tensor = 100.0
    v_leak: float | Tensor = 0.0
    v_th: float | Tensor = 1.0
    v_reset: float | Tensor = 0.0
    dt: float = 0.001


class CurrentLIFState(NamedTuple):
    """State of a current-based LIF layer: membrane ``v`` and synaptic current ``i``."""

    membrane: Tensor
    current: Tensor


def current_lif_initial_state(like: Tensor, params: CurrentLIFParameters) -> CurrentLIFState:
    """A resting current-based LIF state (``v = v_leak``, ``i = 0``) with the shape of ``like``."""
    return CurrentLIFState(torch.zeros_like(like) + params.v_leak, torch.zeros_like(like))


def current_lif_integrate(current: Tensor, state: CurrentLIFState,
                          params: CurrentLIFParameters) -> tuple[Tensor, Tensor]:
    """The first half of `current_lif_step`: ``(j, v~)``, the jumped synaptic current and the membrane
    before the threshold (whose distance to ``v_th`` decides the spike)."""
    jumped = state.current + current
    decayed = state.membrane + params.dt * params.tau_mem_inv * ((params.v_leak - state.membrane) + jumped)
    return jumped, decayed


def current_lif_step(current: Tensor, state: CurrentLIFState,
                     params: CurrentLIFParameters) -> tuple[Tensor, CurrentLIFState]:
    """Advance a current-based LIF layer by one timestep (the equations in the module docstring).

    The operations run in the order Norse's ``lif_feed_forward_step`` runs them, so the two agree to
    the last bit on the same inputs.

    Args:
        current: input current ``I[t]``, any shape.
        state: membrane and synaptic current after ``t - 1``.
        params: time constants, potentials and ``dt``.

    Returns:
        ``(spikes, state)``.

    Example:
        >>> spikes, state = current_lif_step(torch.full((2,), 500.0), current_lif_initial_state(torch.zeros(2),
        ...                                  CurrentLIFParameters()), CurrentLIFParameters())
        >>> spikes  # a 500 current lifts the membrane past threshold in one step
        tensor([1., 1.])
    """
    jumped, decayed = current_lif_integrate(current, state, params)
    synaptic = jumped + -params.dt * params.tau_syn_inv * jumped
    spikes = heaviside(decayed - params.v_th)
    membrane = (1 - spikes) * decayed + spikes * params.v_reset
    return spikes, CurrentLIFState(membrane, synaptic)


def li_step(current: Tensor, state: LIState, beta: float | Tensor) -> tuple[Tensor, LIState]:
    """Advance a leaky integrator by one timestep; returns ``(membrane, state)``."""
    membrane = beta * state.membrane + current
    return membrane, LIState(membrane)


def trace_step(spikes: Tensor, trace: Tensor, decay: float | int | Tensor) -> Tensor:
    """Advance a decayed spike trace by one timestep: ``decay * (trace + spikes)``.

    For integer (fixed-point) traces pass ``decay`` as the integer multiplier and rescale outside;
    the FPGA reference does exactly that.
    """
    return decay * (trace + spikes)


def decay_weights(n_steps: int, decay: float, *, dtype: torch.dtype = torch.float32,
                  device: torch.device | str | None = None) -> Tensor:
    """``decay**(T - t)`` for ``t = 0 .. T-1``: the weight of a spike at ``t`` in the final trace.

    Computed in float64 and cast once, so that it matches `trace_step` run over time to the
    last bit of the requested dtype's precision.
    """
    exponents = torch.arange(n_steps, 0, -1, dtype=torch.float64, device=device)
    return torch.as_tensor(decay, dtype=torch.float64, device=device).pow(exponents).to(dtype)
