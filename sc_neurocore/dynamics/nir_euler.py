r"""NIR's continuous-time neurons, integrated by forward Euler with step $dt$ (the discretisation of
`sc_neurocore.adapters.from_nir`).

The input $I[t]$ of a step is the value of the input signal over $[t\,dt, (t+1)\,dt)$ (a spike is a
value 1 in its bin, as snnTorch's and Norse's NIR importers read it), each factor $\delta = dt / \tau$
is computed once per layer as `dt * (1 / tau)` in the parameters' dtype, and a spike resets in the step
that fires it. With $H(x) = 1$ if $x > 0$ else $0$:

| NIR node | step |
|---|---|
| `LI` | $v[t] = v[t-1] + \delta \, ((v_{leak} - v[t-1]) + R \, I[t])$, emits $v[t]$ |
| `LIF` | $\tilde v$ as `LI`'s $v[t]$, $z[t] = H(\tilde v - v_{th})$, $v[t] = (1 - z) \, \tilde v + z \, v_{reset}$ |
| `CubaLI` | $i[t] = i[t-1] + \delta_{syn} \, (w_{in} I[t] - i[t-1])$, then `LI` driven by $i[t]$ |
| `CubaLIF` | $i[t]$ as for `CubaLI`, then `LIF` driven by $i[t]$ |
| `I` (integrator) | $v[t] = v[t-1] + (dt\,R) \, I[t]$, emits $v[t]$ |
| `IF` | $\tilde v = v[t-1] + (dt\,R) \, I[t]$, then the `LIF` threshold and reset |
| `Threshold` | $z[t] = H(I[t] - v_{th})$ (no state) |
| `Delay` | $y[t] = I[t - d]$ with $d = \tau_{delay} / dt$ whole steps ($0$ before the first input) |

Every state starts at rest: $v = v_{leak}$ (`LI`, `LIF`, `Cuba*`) or $0$ (`I`, `IF`), $i = 0$. A neuron
with a recurrent edge (its own output fed back through maps $W$) receives $I[t] + W(y[t-1])$, its
previous step's output (before the first step, its resting output: no spikes, or $v_{leak}$), as input;
it keeps that output in its state (`emitted`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from .leaky import heaviside

#: The map from a layer's previous output to an extra input current (a recurrent edge), or `None`.
Recurrence = Callable[[Tensor], Tensor] | None


class EulerParameters(NamedTuple):
    """Parameters of one Euler-integrated NIR neuron layer (tensors broadcastable to the layer's shape).

    Attributes:
        gain: $\\delta = dt/\\tau$ (`LI`, `LIF`, `Cuba*`) or $dt\\,R$ (`I`, `IF`), precomputed.
        r: the resistance $R$ (multiplies the input in the leaky kinds; folded into `gain` for `I`, `IF`).
        v_leak: the leak potential (0 for `I`, `IF`).
        v_threshold: the firing threshold, or `None` for a kind that does not fire.
        v_reset: the potential after a spike.
        syn_gain: $\\delta_{syn} = dt/\\tau_{syn}$ for the `Cuba*` kinds, else `None`.
        w_in: the `Cuba*` input weight.
        leaky: whether the membrane leaks towards `v_leak` (`LI`, `LIF`, `Cuba*`), else it only integrates.
        recurrent: a recurrent edge's map, or `None`.
    """

    gain: Tensor
    r: Tensor
    v_leak: Tensor
    v_threshold: Tensor | None = None
    v_reset: Tensor | None = None
    syn_gain: Tensor | None = None
    w_in: Tensor | None = None
    leaky: bool = True
    recurrent: Recurrence = None


class EulerState(NamedTuple):
    """State of an Euler-integrated NIR neuron layer.

    Attributes:
        membrane: $v$ after the step (after the reset, for firing kinds).
        synaptic: $i$ for the `Cuba*` kinds (zeros otherwise).
        emitted: what the layer emitted last (fed back by a recurrent edge).
    """

    membrane: Tensor
    synaptic: Tensor
    emitted: Tensor


def euler_initial_state(like: Tensor, params: EulerParameters) -> EulerState:
    """The resting state shaped like the current `like`: $v = v_{leak}$, $i = 0$, and as the last output
    no spikes (firing kinds) or the resting membrane (the others).

    Example:
        >>> params = EulerParameters(torch.tensor(0.1), torch.tensor(1.0), torch.tensor(-0.5))
        >>> euler_initial_state(torch.zeros(2), params).membrane
        tensor([-0.5000, -0.5000])
    """
    zeros = torch.zeros_like(like)
    membrane = zeros + params.v_leak
    return EulerState(membrane, zeros, zeros if params.v_threshold is not None else membrane)


def euler_integrate(current: Tensor, state: EulerState, params: EulerParameters) -> tuple[Tensor, Tensor]:
    """`(i[t], v~)`: the synaptic current and the membrane before any threshold, for one step.

    Example:
        >>> params = EulerParameters(torch.tensor(0.5), torch.tensor(2.0), torch.tensor(0.0))
        >>> euler_integrate(torch.tensor([1.0]), euler_initial_state(torch.zeros(1), params), params)[1]
        tensor([1.])
    """
    if params.recurrent is not None:
        current = current + params.recurrent(state.emitted)
    synaptic = state.synaptic
    if params.syn_gain is not None and params.w_in is not None:
        synaptic = synaptic + params.syn_gain * (params.w_in * current - synaptic)
        current = synaptic
    if params.leaky:
        membrane = state.membrane + params.gain * ((params.v_leak - state.membrane) + params.r * current)
    else:
        membrane = state.membrane + params.gain * current
    return synaptic, membrane


def euler_step(current: Tensor, state: EulerState, params: EulerParameters) -> tuple[Tensor, EulerState]:
    """Advance an Euler-integrated NIR neuron layer by one step (the table in the module docstring).

    Args:
        current: the input $I[t]$, `(B, *shape)`.
        state: the state after `t - 1`.
        params: the layer's parameters; `v_threshold=None` for the kinds that emit their membrane.

    Returns:
        `(emitted, state)`: spikes (firing kinds) or the membrane (`LI`, `CubaLI`, `I`).

    Example:
        >>> params = EulerParameters(torch.tensor(0.5), torch.tensor(1.0), torch.tensor(0.0),
        ...                          torch.tensor(0.6), torch.tensor(0.0))
        >>> state = euler_initial_state(torch.zeros(1), params)
        >>> spikes, state = euler_step(torch.tensor([1.0]), state, params)
        >>> spikes, state.membrane
        (tensor([0.]), tensor([0.5000]))
        >>> euler_step(torch.tensor([1.0]), state, params)[0]
        tensor([1.])
    """
    synaptic, membrane = euler_integrate(current, state, params)
    if params.v_threshold is None or params.v_reset is None:
        return membrane, EulerState(membrane, synaptic, membrane)
    spikes = heaviside(membrane - params.v_threshold)
    membrane = (1 - spikes) * membrane + spikes * params.v_reset
    return spikes, EulerState(membrane, synaptic, spikes)


def euler_decision(current: Tensor, before: EulerState, after: EulerState, params: EulerParameters) -> Tensor:
    """$\\tilde v - v_{th}$: the signed distance to threshold that decided this step's spikes.

    Example:
        >>> params = EulerParameters(torch.tensor(0.5), torch.tensor(1.0), torch.tensor(0.0),
        ...                          torch.tensor(0.6), torch.tensor(0.0))
        >>> before = euler_initial_state(torch.zeros(1), params)
        >>> spikes, after = euler_step(torch.tensor([2.0]), before, params)
        >>> euler_decision(torch.tensor([2.0]), before, after, params)
        tensor([0.4000])
    """
    if params.v_threshold is None:
        raise ValueError("params: a layer without v_threshold emits its membrane and decides no spikes")
    return euler_integrate(current, before, params)[1] - params.v_threshold


class ThresholdParameters(NamedTuple):
    """Parameters of a NIR `Threshold` node: its threshold (broadcastable to the layer's shape)."""

    threshold: Tensor


class ThresholdState(NamedTuple):
    """A `Threshold` node keeps nothing; `membrane` is the last input it compared (for recordings)."""

    membrane: Tensor


def threshold_initial_state(like: Tensor) -> ThresholdState:
    """A `Threshold` node before its first input.

    Example:
        >>> threshold_initial_state(torch.ones(2)).membrane
        tensor([0., 0.])
    """
    return ThresholdState(torch.zeros_like(like))


def threshold_step(current: Tensor, state: ThresholdState,
                   params: ThresholdParameters) -> tuple[Tensor, ThresholdState]:
    """$z[t] = H(I[t] - v_{th})$.

    Example:
        >>> threshold_step(torch.tensor([0.5, 1.5]), threshold_initial_state(torch.zeros(2)),
        ...                ThresholdParameters(torch.tensor(1.0)))[0]
        tensor([0., 1.])
    """
    return heaviside(current - params.threshold), ThresholdState(current)


def threshold_decision(current: Tensor, before: ThresholdState, after: ThresholdState,
                       params: ThresholdParameters) -> Tensor:
    """$I[t] - v_{th}$, the quantity whose sign decided the spike.

    Example:
        >>> params = ThresholdParameters(torch.tensor(1.0))
        >>> state = threshold_initial_state(torch.zeros(1))
        >>> threshold_decision(torch.tensor([1.5]), state, state, params)
        tensor([0.5000])
    """
    return current - params.threshold


class DelayParameters(NamedTuple):
    """Parameters of a NIR `Delay` node.

    Attributes:
        steps: the delay of each element in whole timesteps, an integer tensor broadcastable to the
            layer's shape.
        longest: `int(steps.max())`, the length of the history kept.
    """

    steps: Tensor
    longest: int


class DelayState(NamedTuple):
    """The last `longest` inputs, newest first `(longest, B, *shape)`; `membrane` is what was emitted."""

    history: Tensor
    membrane: Tensor


def delay_initial_state(like: Tensor, params: DelayParameters) -> DelayState:
    """A delay line holding zeros.

    Example:
        >>> delay_initial_state(torch.zeros(3), DelayParameters(torch.tensor(2), 2)).history.shape
        torch.Size([2, 3])
    """
    return DelayState(like.new_zeros(params.longest, *like.shape), torch.zeros_like(like))


def delay_step(current: Tensor, state: DelayState, params: DelayParameters) -> tuple[Tensor, DelayState]:
    """$y[t] = I[t - d]$ per element (zeros before the first input arrives).

    Example:
        >>> params = DelayParameters(torch.tensor([0, 2]), 2)
        >>> state = delay_initial_state(torch.zeros(2), params)
        >>> outputs = []
        >>> for value in (1.0, 2.0, 3.0):
        ...     out, state = delay_step(torch.tensor([value, value]), state, params)
        ...     outputs.append(out.tolist())
        >>> outputs
        [[1.0, 0.0], [2.0, 0.0], [3.0, 1.0]]
    """
    history = torch.cat([current[None], state.history])
    index = params.steps.expand(current.shape)[None]
    out = history.gather(0, index)[0]
    return out, DelayState(history[:-1], out)
