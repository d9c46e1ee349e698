r"""Discrete-time leaky neurons, as snnTorch computes them (bit for bit, in its order of operations).

With input current $I[t]$, membrane $v$, threshold $\theta$, decay $\beta$ (clamped to $[0, 1]$ by the
caller), spike height $g$ (snnTorch's `graded_spikes_factor`) and $H(x) = 1$ if $x > 0$ else $0$:

**Leaky** (`lif_step`, snnTorch `Leaky`), the reset decided from the previous membrane (delayed reset):

$$r[t] = H(v[t-1] - \theta), \qquad s[t] = g \, H(v[t] - \theta)$$

| reset | $v[t]$ |
|---|---|
| `"subtract"` | $\beta v[t-1] + I[t] - r[t] \theta$ |
| `"zero"` | $\beta \, (1 - r[t]) v[t-1] + I[t]$ |
| `"none"` | $\beta v[t-1] + I[t]$ |

With `reset_delay=False` the reset is applied in the same step instead: after $s[t]$ the membrane loses
$(s[t]/g - r[t]) \theta$ (subtract) or $(s[t]/g - r[t]) v[t]$ (zero).

**Synaptic** (`synaptic_step`, snnTorch `Synaptic` / `RSynaptic`): a synaptic current $i$ with decay
$\alpha$ in front of the membrane,

$$i[t] = \alpha i[t-1] + I[t] \; (+\, R(s[t-1])), \qquad u[t] = \beta v[t-1] + i[t]$$

and $v[t] = u[t] - r[t] \theta$ (subtract), $u[t] - r[t] u[t]$ (zero) or $u[t]$ (none).

**Recurrent leaky** (`recurrent_lif_step`, snnTorch `RLeaky`): $u[t] = \beta v[t-1] + I[t] + R(s[t-1])$
with the recurrent map $R$ (a `Dense`, `Conv` or one-to-one `Scale`), then the reset as for Synaptic.

**Leaky integrator** (`li_step`): $v[t] = \beta v[t-1] + I[t]$, emitting $v[t]$.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

import torch
from torch import Tensor

ResetMechanism = Literal["subtract", "zero", "none"]
RESET_MECHANISMS: tuple[str, ...] = ("subtract", "zero", "none")


def heaviside(x: Tensor) -> Tensor:
    """`1` where `x > 0`, else `0`, in `x`'s dtype (the spike nonlinearity).

    Example:
        >>> heaviside(torch.tensor([-1.0, 0.0, 2.0]))
        tensor([0., 0., 1.])
    """
    # Comparing straight into a tensor of x's dtype: the same values as (x > 0).to(x.dtype), but on CPU
    # the bool -> float conversion kernel alone cost 5-9x the comparison, and this runs every step.
    return torch.gt(x, 0, out=torch.empty_like(x))


def _is_one(value: float | Tensor) -> bool:
    return isinstance(value, (int, float)) and value == 1


def _fire(membrane: Tensor, threshold: float | Tensor, graded: float | Tensor) -> Tensor:
    spikes = heaviside(membrane - threshold)
    return spikes if _is_one(graded) else spikes * graded


def _same_step_reset(membrane: Tensor, spikes: Tensor, reset: Tensor, params) -> Tensor:
    """snnTorch's `reset_delay=False`: the reset the delayed rule would apply next step, applied now."""
    do_reset = (spikes if _is_one(params.graded) else spikes / params.graded) - reset
    return _reset_after(membrane, do_reset, params)


class LIFParameters(NamedTuple):
    """Parameters of a leaky integrate-and-fire layer (snnTorch `Leaky`).

    Attributes:
        beta: membrane decay per timestep, in `[0, 1]` (a float or a per-neuron tensor).
        threshold: firing threshold (a float or a per-neuron tensor).
        reset: `"subtract"`, `"zero"` or `"none"`.
        graded: the height of an emitted spike (snnTorch's `graded_spikes_factor`).
        reset_delay: `True` (snnTorch's default) applies a spike's reset on the next step.
    """

    beta: float | Tensor = 0.9
    threshold: float | Tensor = 1.0
    reset: ResetMechanism = "subtract"
    graded: float | Tensor = 1.0
    reset_delay: bool = True


class LIFState(NamedTuple):
    """State of a leaky integrate-and-fire layer: its membrane potential `v`."""

    membrane: Tensor


class LIState(NamedTuple):
    """State of a leaky integrator: its membrane potential `v`."""

    membrane: Tensor


def lif_initial_state(like: Tensor) -> LIFState:
    """A resting LIF state (membrane 0) with the shape, dtype and device of `like`.

    Example:
        >>> lif_initial_state(torch.ones(2)).membrane
        tensor([0., 0.])
    """
    return LIFState(torch.zeros_like(like))


def lif_step(current: Tensor, state: LIFState, params: LIFParameters) -> tuple[Tensor, LIFState]:
    """Advance a LIF layer by one timestep (the equations in the module docstring).

    Args:
        current: input current `I[t]`, any shape.
        state: the layer's state after `t - 1`.
        params: leak, threshold, reset mechanism, spike height and reset timing.

    Returns:
        `(spikes, state)`: the spikes `s[t]` (in `current`'s dtype) and the new state.

    Example:
        >>> spikes, state = lif_step(torch.tensor([0.6, 1.5]), lif_initial_state(torch.zeros(2)),
        ...                          LIFParameters(beta=0.9, threshold=1.0))
        >>> spikes, state.membrane
        (tensor([0., 1.]), tensor([0.6000, 1.5000]))
    """
    membrane = state.membrane
    reset = heaviside(membrane - params.threshold)
    if params.reset == "subtract":
        membrane = params.beta * membrane + current - reset * params.threshold
    elif params.reset == "zero":
        membrane = params.beta * ((1 - reset) * membrane) + current
    else:
        membrane = params.beta * membrane + current
    spikes = _fire(membrane, params.threshold, params.graded)
    if not params.reset_delay:
        membrane = _same_step_reset(membrane, spikes, reset, params)
    return spikes, LIFState(membrane)


def li_step(current: Tensor, state: LIState, beta: float | Tensor) -> tuple[Tensor, LIState]:
    """Advance a leaky integrator by one timestep; returns `(membrane, state)`.

    Example:
        >>> li_step(torch.tensor([1.0]), LIState(torch.tensor([2.0])), 0.5)[0]
        tensor([2.])
    """
    membrane = beta * state.membrane + current
    return membrane, LIState(membrane)


#: A recurrent map: the previous step's emitted spikes -> an input current (a graph map's `forward`).
Recurrence = Callable[[Tensor], Tensor]


def _reset_after(base: Tensor, reset: Tensor, params) -> Tensor:
    """The reset of RLeaky / Synaptic / RSynaptic, applied to the integrated membrane `base`."""
    if params.reset == "subtract":
        return base - reset * params.threshold
    if params.reset == "zero":
        return base - reset * base
    return base


class RecurrentLIFParameters(NamedTuple):
    """Parameters of a recurrent leaky layer (snnTorch `RLeaky`).

    Attributes:
        beta, threshold, reset, graded: as for `LIFParameters`.
        recurrent: the map from the previous step's emitted spikes to a current.
    """

    beta: float | Tensor
    threshold: float | Tensor
    reset: ResetMechanism
    graded: float | Tensor
    recurrent: Recurrence


class RecurrentLIFState(NamedTuple):
    """State of a recurrent leaky layer: membrane and the spikes it emitted last (fed back)."""

    membrane: Tensor
    spikes: Tensor


def recurrent_lif_initial_state(like: Tensor) -> RecurrentLIFState:
    """A resting recurrent LIF state: membrane and last spikes 0."""
    return RecurrentLIFState(torch.zeros_like(like), torch.zeros_like(like))


def recurrent_lif_step(current: Tensor, state: RecurrentLIFState,
                       params: RecurrentLIFParameters) -> tuple[Tensor, RecurrentLIFState]:
    """Advance a recurrent leaky layer by one timestep (see the module docstring).

    Example:
        >>> params = RecurrentLIFParameters(0.5, 1.0, "subtract", 1.0, lambda spikes: 2 * spikes)
        >>> state = recurrent_lif_initial_state(torch.zeros(1))
        >>> spikes, state = recurrent_lif_step(torch.tensor([1.5]), state, params)
        >>> spikes, recurrent_lif_step(torch.tensor([0.0]), state, params)[1].membrane
        (tensor([1.]), tensor([1.7500]))
    """
    reset = heaviside(state.membrane - params.threshold)
    base = params.beta * state.membrane + current + params.recurrent(state.spikes)
    membrane = _reset_after(base, reset, params)
    spikes = _fire(membrane, params.threshold, params.graded)
    return spikes, RecurrentLIFState(membrane, spikes)


class SynapticParameters(NamedTuple):
    """Parameters of a synaptic-current leaky layer (snnTorch `Synaptic`, and `RSynaptic` with `recurrent`).

    Attributes:
        alpha: synaptic current decay per timestep, in `[0, 1]`.
        beta, threshold, reset, graded, reset_delay: as for `LIFParameters`.
        recurrent: `None`, or the map from the previous step's emitted spikes to a current (RSynaptic).
    """

    alpha: float | Tensor = 0.9
    beta: float | Tensor = 0.9
    threshold: float | Tensor = 1.0
    reset: ResetMechanism = "subtract"
    graded: float | Tensor = 1.0
    reset_delay: bool = True
    recurrent: Recurrence | None = None


class SynapticState(NamedTuple):
    """State of a synaptic layer: synaptic current, membrane, and the spikes it emitted last."""

    synaptic: Tensor
    membrane: Tensor
    spikes: Tensor


def synaptic_initial_state(like: Tensor) -> SynapticState:
    """A resting synaptic state: current, membrane and last spikes 0."""
    return SynapticState(torch.zeros_like(like), torch.zeros_like(like), torch.zeros_like(like))


def synaptic_step(current: Tensor, state: SynapticState, params: SynapticParameters) -> tuple[Tensor, SynapticState]:
    """Advance a synaptic layer by one timestep (see the module docstring).

    Example:
        >>> params = SynapticParameters(alpha=0.5, beta=0.5, threshold=1.0)
        >>> spikes, state = synaptic_step(torch.tensor([0.8]), synaptic_initial_state(torch.zeros(1)), params)
        >>> synaptic_step(torch.tensor([0.8]), state, params)[0]
        tensor([1.])
    """
    reset = heaviside(state.membrane - params.threshold)
    synaptic = params.alpha * state.synaptic + current
    if params.recurrent is not None:
        synaptic = synaptic + params.recurrent(state.spikes)
    membrane = _reset_after(params.beta * state.membrane + synaptic, reset, params)
    spikes = _fire(membrane, params.threshold, params.graded)
    if not params.reset_delay:
        membrane = _same_step_reset(membrane, spikes, reset, params)
    return spikes, SynapticState(synaptic, membrane, spikes)
