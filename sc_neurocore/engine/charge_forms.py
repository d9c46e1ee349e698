r"""Charge-then-reset neurons in the event engine: SpikingJelly `IFNode`, `LIFNode` and `ParametricLIFNode`,
Norse `LIFBoxCell` and NIR `LIF` and `IF`, each with a reset to 0 or by subtraction.

Such a neuron first charges, $h[t] = f(v[t-1], I[t])$, then fires on the charged membrane ($h[t] \ge \theta$ in
SpikingJelly, $h[t] > \theta$ in Norse and NIR) and resets in the same step: to 0, $v[t] = (1 - s[t])\, h[t]$
(SpikingJelly ``v_reset=0``, Norse ``reset_value``, NIR), or softly, $v[t] = h[t] - s[t]\, \theta$ (SpikingJelly
``v_reset=None``, Norse ``reset_subtract``). Its charge is affine, $f(v, I) = \beta v + g I$, so on the charged
membrane the layer is exactly a delayed reset of `sc_neurocore.dynamics.lif_step`, to zero or by $\beta\theta$:

$$h[t] = \beta\, (1 - s[t-1])\, h[t-1] + g\, I[t], \qquad h[t] = \beta\, h[t-1] - \beta\theta\, s[t-1] + g\, I[t].$$

The event engine runs it with the LIF kernel (`sc_neurocore.engine.event_kernels`), reset code ``"zero"`` or
``"subtract"`` (taking off ``drop`` $= \beta\theta$), on weights $g W$ (bias $g b$) and on tables anchored on $h$
(`sc_neurocore.engine.event_tables.layer_table`).

| neuron (step function) | charge, as the framework computes it | $\beta$ | $g$ |
|---|---|---|---|
| SpikingJelly `IFNode` (`integrate_fire_step`) | $v + x$ | 1 | 1 |
| SpikingJelly `LIFNode`, `decay_input=True` | $v + (x - (v - 0)) / \tau$ | $1 - 1/\tau$ | $1/\tau$ |
| SpikingJelly `LIFNode`, `decay_input=False` | $v - (v - 0) / \tau + x$ | $1 - 1/\tau$ | 1 |
| SpikingJelly `ParametricLIFNode` | as `LIFNode`, times $q = \sigma(w)$ instead of $/ \tau$ | $1 - q$ | $q$ or 1 |
| Norse `LIFBoxCell` (`current_lif_box_step`), `reset_value` | $v + a\,((I + 0) - v)$, $a = dt\, \tau_{mem}^{-1}$ | $1 - a$ | $a$ |
| NIR `LIF` (`euler_step`) | $v + \delta\,((0 - v) + R\, I)$, $\delta = dt / \tau$ | $1 - \delta$ | $\delta R$ |
| NIR `IF` | $v + (dt\, R)\, I$ | 1 | $dt\, R$ |

Rounding. Each float op of the charge rounds its result by at most $u$ of it (a division perhaps twice, as a
multiplication by a rounded reciprocal; a constant such as $a$ perhaps once more, where the framework forms it
in another precision), and a reset to 0 is exact ($0 \cdot h + 0$ and $1 \cdot h + 0$). Bounding each op's result
by the magnitudes of its operands gives the charge's local rounding

$$\rho[t] \le u\, (k_v\, |\hat h[t-1]| + k_I\, |\hat I[t]| + k_h\, |\hat h[t]| + k_\theta\, \theta)$$

on the float charged membranes $\hat h$ ($|\hat v[t-1]| \le |\hat h[t-1]|$ whatever the reset did, so a flipped
reset of a perturbed copy is covered too; after a soft reset $|\hat v[t-1]| \le |\hat h[t-1]| + \theta$, and the
subtraction rounds by $u$ of it, so $k_v$ grows by 1 and $k_\theta = k_v$; $k_\theta = 0$ for a reset to 0) and
the float current $\hat I$.
The coefficients (`ChargeForm`) are read off the op sequences in the table above, times $1.01$ for the second-order
terms:

| charge | $k_v$ | $k_I$ | $k_h$ |
|---|---|---|---|
| $v + x$ | 0 | 0 | 1 |
| $v + (x - v) \cdot c$ ($c = 1/\tau$, $q$ or $a$) | $3c$ | $3c$ | 1 |
| $v - v \cdot c + x$ | $1 + 3c$ | 0 | 1 |
| $v + \delta\,((0 - v) + R\, I)$ | $2\delta$ | $3\delta R$ | 1 |
| $v + g\, I$ | 0 | $g$ | 1 |

A perturbed copy's charge rounds at most $u\,(k_v |d[t-1]| + k_I |\Delta I[t]| + k_h |d[t]|)$ more than the
baseline's ($d$ the charged membrane's difference, $|\Delta I| \le \text{mass} / g$), which the kernel's
per-step term covers with $c_{op} = 2u \max(k_h, k_v / \beta)$ and $c_{sum} = \gamma_{n_{in}+1} + 2u\, k_I / g$
(twice, as for `lif_step`, for the second-order terms).

Only the loose test decides for these layers (no tight tables: the charge's own residuals are not computed): a row
with a decision inside the loose bound is replayed from that layer in the naive loop's own call shapes
(`sc_neurocore.engine.replay`), or recomputed by the model's own forward where the stack's ops were not checked
to be the model's.

Not covered (their stacks take the other executors): a reset or leak potential other than 0, a decay so fast that
$\beta < 1/64$, and Norse's current-based `LIFCell` (two states, `sc_neurocore.engine.cuba` covers snnTorch's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from ..dynamics import (
    CurrentBoxState,
    CurrentLIFBoxParameters,
    IntegrateFireParameters,
    current_lif_box_integrate,
    current_lif_box_step,
    integrate_fire_charge,
    integrate_fire_step,
)
from ..dynamics.nir_euler import EulerParameters, EulerState, euler_integrate, euler_step
from .incremental import CompiledLayer

#: Second-order slack on every rounding coefficient.
SECOND_ORDER = 1.01
#: The smallest decay a charge-then-reset layer may have in the event engine (the previous membrane's rounding
#: is carried by $c_{op}\, \beta$, see the module docstring).
MIN_BETA = 1.0 / 64


class ChargeForm(NamedTuple):
    """A charge-then-reset layer as the event engine runs it (see the module docstring); float64, ``(n,)``.

    Attributes:
        beta: $\\beta$, the decay of the charged membrane.
        gain: $g$, the current's gain.
        threshold: $\\theta$.
        k_prev, k_current: the charge's rounding coefficients on $|\\hat h[t-1]|$ and $|\\hat I[t]|$.
        k_charged: its coefficient on $|\\hat h[t]|$ (one value).
        charge: ``charge(current, membrane) -> h``: the framework's own charge on float tensors (the recorded
            current and the membrane after the previous step's reset).
        soft: whether a spike subtracts the threshold (a soft reset) rather than resetting to 0; ``k_prev`` then
            includes the subtraction's rounding.
    """

    beta: Tensor
    gain: Tensor
    threshold: Tensor
    k_prev: Tensor
    k_current: Tensor
    k_charged: float
    charge: Callable[[Tensor, Tensor], Tensor]
    soft: bool = False


def is_charge(layer: CompiledLayer) -> bool:
    """Whether ``layer``'s step is one this module describes (SpikingJelly's integrate-and-fire step, Norse's box
    LIF step); `charge_unsupported` says whether its parameters are covered.

    Example:
        >>> from sc_neurocore.dynamics import IntegrateFireParameters
        >>> is_charge(CompiledLayer(torch.ones(2, 2), None, integrate_fire_step, IntegrateFireParameters(), None))
        True
    """
    return (layer.step is integrate_fire_step and isinstance(layer.params, IntegrateFireParameters)) or \
        (layer.step is current_lif_box_step and isinstance(layer.params, CurrentLIFBoxParameters)) or \
        (layer.step is euler_step and isinstance(layer.params, EulerParameters))


def charge_unsupported(name: str, layer: CompiledLayer) -> str | None:
    """Why the charge-then-reset ``layer`` cannot run as events (``None``: it can).

    Example:
        >>> from sc_neurocore.dynamics import IntegrateFireParameters
        >>> layer = CompiledLayer(torch.ones(2, 2), None, integrate_fire_step, IntegrateFireParameters(v_reset=0.5),
        ...                       None)
        >>> charge_unsupported("1", layer)
        "layer '1' has a v_reset other than 0"
    """
    params = layer.params
    n_out = layer.weight.shape[1]
    fields: dict[str, float | Tensor]
    if isinstance(params, IntegrateFireParameters):
        fields = {"v_threshold": params.v_threshold}
        if params.v_reset is not None:  # a hard reset (None: a soft one, subtracting the threshold)
            fields["v_reset"] = params.v_reset
    elif isinstance(params, EulerParameters):
        if params.v_threshold is None or params.v_reset is None:
            return f"layer {name!r} emits its membrane (no spikes to flip)"
        if params.syn_gain is not None or params.recurrent is not None:
            return f"layer {name!r} has a synaptic current or a recurrent edge"
        fields = {"v_reset": params.v_reset, "v_leak": params.v_leak, "v_threshold": params.v_threshold,
                  "gain": params.gain, "r": params.r}
    else:
        fields = {"v_leak": params.v_leak, "v_th": params.v_th}
        if params.reset != "subtract":  # reset_value: to v_reset
            fields["v_reset"] = params.v_reset
    for field, given in fields.items():
        value = torch.as_tensor(given)
        if value.numel() not in (1, n_out):
            return f"layer {name!r} has a {field} of shape {tuple(value.shape)}, neither one value nor one per neuron"
        if field in ("v_reset", "v_leak") and bool((value != 0).any()):
            return f"layer {name!r} has a {field} other than 0"
    form = charge_form(layer)
    if not bool(torch.isfinite(form.beta).all()) or bool((form.beta < MIN_BETA).any()) or \
            bool((form.beta > 1).any()):
        return f"layer {name!r} has a decay outside [{MIN_BETA}, 1] (beta = 1 - leak)"
    if not bool((form.gain > 0).all()):
        return f"layer {name!r} has an input gain that is not positive"
    return None


def charged_membranes(layer: CompiledLayer, current: Tensor, after: Tensor) -> Tensor:
    r"""The float charged membranes $\hat h$ ``(B, T, n)`` of a recorded forward of a charge-then-reset ``layer``:
    its charge, as the framework computes it, of each step's current from the membrane the step before left
    (``after``, the membranes after each step's reset; at rest before the first).

    Example:
        >>> from sc_neurocore.dynamics import IntegrateFireParameters, integrate_fire_initial_state
        >>> params = IntegrateFireParameters()
        >>> layer = CompiledLayer(torch.ones(2, 1), None, integrate_fire_step, params,
        ...                       lambda like: integrate_fire_initial_state(like, params))
        >>> charged_membranes(layer, torch.full((1, 3, 1), 0.6), torch.tensor([[[0.6], [0.0], [0.6]]]))[0, :, 0]
        tensor([0.6000, 1.2000, 0.6000])
    """
    before = torch.cat([layer.initial_state(current[:, 0]).membrane[:, None], after[:, :-1]], dim=1)
    return charge_form(layer).charge(current, before)


def charge_form(layer: CompiledLayer) -> ChargeForm:
    """The `ChargeForm` of a charge-then-reset ``layer`` (`is_charge`), its parameters read as the step reads them.

    Example:
        >>> from sc_neurocore.dynamics import IntegrateFireParameters
        >>> form = charge_form(CompiledLayer(torch.ones(2, 3), None, integrate_fire_step,
        ...                                  IntegrateFireParameters(tau=2.0), None))
        >>> form.beta.tolist(), form.gain.tolist()
        ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    """
    form = _hard_form(layer)
    params = layer.params
    soft = (isinstance(params, IntegrateFireParameters) and params.v_reset is None) or \
        (isinstance(params, CurrentLIFBoxParameters) and params.reset == "subtract")
    if not soft:
        return form
    # v[t-1] = h[t-1] - theta after a spike: the charge's operand is at most |h[t-1]| + theta, and the subtraction
    # itself rounds by u of it (carried into the next charge by beta <= 1).
    return form._replace(k_prev=form.k_prev + SECOND_ORDER, soft=True)


def _hard_form(layer: CompiledLayer) -> ChargeForm:
    """`charge_form` before the reset: the charge's own form and rounding."""
    params = layer.params
    n_out = layer.weight.shape[1]
    dtype = layer.weight.dtype

    def flat(value) -> Tensor:
        return torch.as_tensor(value, dtype=torch.float64).reshape(-1).expand(n_out).clone()

    if isinstance(params, CurrentLIFBoxParameters):
        # The rate the framework multiplies by: dt * tau_mem_inv, formed as the step forms it, in the model dtype
        # (a double-precision rate instead differs by less than the one extra u of the coefficients).
        rate = flat(torch.as_tensor(params.dt * params.tau_mem_inv, dtype=dtype))

        def box_charge(current: Tensor, membrane: Tensor) -> Tensor:
            return current_lif_box_integrate(current, CurrentBoxState(membrane), params)

        return ChargeForm(1 - rate, rate, flat(params.v_th), 3 * SECOND_ORDER * rate, 3 * SECOND_ORDER * rate,
                          SECOND_ORDER, box_charge)

    if isinstance(params, EulerParameters):
        gain = flat(params.gain)

        def euler_charge(current: Tensor, membrane: Tensor) -> Tensor:
            zeros = torch.zeros_like(membrane)
            return euler_integrate(current, EulerState(membrane, zeros, zeros), params)[1]

        if not params.leaky:  # IF: v + (dt R) I
            zeros = torch.zeros(n_out, dtype=torch.float64)
            return ChargeForm(torch.ones(n_out, dtype=torch.float64), gain, flat(params.v_threshold), zeros,
                              SECOND_ORDER * gain, SECOND_ORDER, euler_charge)
        r = flat(params.r)  # LIF: v + delta ((0 - v) + r I)
        return ChargeForm(1 - gain, gain * r, flat(params.v_threshold), 2 * SECOND_ORDER * gain,
                          3 * SECOND_ORDER * gain * r.abs(), SECOND_ORDER, euler_charge)

    def sj_charge(current: Tensor, membrane: Tensor) -> Tensor:
        return integrate_fire_charge(current, membrane, params)

    threshold = flat(params.v_threshold)
    if params.tau is None and params.decay is None:  # IFNode: v + x
        zeros = torch.zeros(n_out, dtype=torch.float64)
        return ChargeForm(torch.ones(n_out, dtype=torch.float64), torch.ones(n_out, dtype=torch.float64), threshold,
                          zeros, zeros.clone(), SECOND_ORDER, sj_charge)
    if params.tau is not None:
        leak = flat(1.0 / float(params.tau))
    else:
        leak = flat(torch.as_tensor(params.decay, dtype=dtype).detach())  # the float q the step multiplies by
    if params.decay_input:  # v + (x - v) * c
        return ChargeForm(1 - leak, leak, threshold, 3 * SECOND_ORDER * leak, 3 * SECOND_ORDER * leak, SECOND_ORDER,
                          sj_charge)
    return ChargeForm(1 - leak, torch.ones(n_out, dtype=torch.float64), threshold, SECOND_ORDER * (1 + 3 * leak),
                      torch.zeros(n_out, dtype=torch.float64), SECOND_ORDER, sj_charge)
