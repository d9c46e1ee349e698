r"""Current-based (synaptic-current) layers in the event engine: snnTorch `Synaptic` and Norse `LIFCell` / `LIF`,
as the graph traces them.

A layer whose step is `sc_neurocore.dynamics.synaptic_step` (delayed reset, spikes of height 1, no
recurrence), or Norse's `current_lif_step` (the input jumps the current before the membrane charges on it,
and the spike, decided on the charged membrane, resets it to 0 in the same step; no leak potential, no
recurrence), runs as events through `sc_neurocore.engine.cuba_kernels.propagate_cuba`: the same interface
as a LIF layer's kernel (`sc_neurocore.engine.event`), with the two-state recurrence, its screen and its
rounding bounds derived in that module's docstring (Norse's on its charged membrane, `norse_form`). This
module builds the layer's tables from the recorded baseline (`CubaTables`) and says when a layer cannot
run as events (`cuba_unsupported`).

Not covered (their stacks take the incremental engine): NIR's `CubaLIF` (`euler_step`), a two-state linear
recurrence too, with other ops in another order, so other rounding bounds.

The tables (float64, per sample, neuron and step): the real-arithmetic anchor (the real currents through
the float forward's own resets: synaptic current, pre-reset membrane $u$, membrane $v$), the bound $E$ on
the baseline's own rounding (the same recurrence on the local bounds, `sc_neurocore.engine.cuba_kernels.real_states`), the screen's reach, and
for the tight test the baseline's own float membrane $\hat v$ and pre-reset membrane $\hat u = \beta \hat
v[t-1] + \hat i[t]$ (recomputed with the framework's own elementwise ops, so the same bits), the local
roundings $\rho_i, \rho_v$ and the product's one-signed sums $M$.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..dynamics import CurrentLIFParameters, SynapticParameters, current_lif_step, synaptic_step
from ..dynamics.current import current_lif_integrate
from .cuba_kernels import cuba_kernels
from .event_kernels import RESET_CODES
from .incremental import Baseline, CompiledLayer
from .kernel_compile import C_EST

#: Float64 words per neuron and step that building one sample's `CubaTables` holds at its peak (the tables,
#: their neuron-major copies, the tight test's five and the temporaries of the bounds).
CUBA_TABLE_WORDS = 32


class CubaTables(NamedTuple):
    r"""What `sc_neurocore.engine.cuba_kernels.propagate_cuba` needs about one current-based layer, for one
    chunk of samples (float64 NumPy arrays; ``(B, n, T)`` neuron-major unless said otherwise).

    Attributes:
        weight: ``(n_in, n)``.
        alpha, beta, theta: ``(n,)``.
        reset: the reset code of `RESET_CODES`.
        membrane, pre: the real anchor's membrane $v$ and pre-reset membrane $u$.
        spikes: the baseline spikes.
        bound: the bound $E$ on the baseline's rounding.
        inverse_up, inverse_down: ``(B, T, n)`` ``1 / reach`` where ``reach > 0``, else ``inf``, of the reaches of
            an upward and a downward flip; up_by_neuron, down_by_neuron: the reaches.
        c_op, c_sum, spread, slack: as `sc_neurocore.engine.event_tables.LayerTables`.
        recorded, recorded_pre: the baseline's own float $\hat v$ and $\hat u$ (tight test).
        rho_i, rho_v: their local update roundings; partial: the product's one-signed sums $M$.
        gam: ``(B, T)`` the product's $\gamma$ per step; tight: whether the tight test may decide.
        c_est: the float64 estimate's own rounding factor.
    """

    weight: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    theta: np.ndarray
    reset: int
    membrane: np.ndarray
    pre: np.ndarray
    spikes: np.ndarray
    bound: np.ndarray
    inverse_up: np.ndarray
    inverse_down: np.ndarray
    up_by_neuron: np.ndarray
    down_by_neuron: np.ndarray
    c_op: float
    c_sum: float
    spread: float
    slack: int
    recorded: np.ndarray | None = None
    recorded_pre: np.ndarray | None = None
    rho_i: np.ndarray | None = None
    rho_v: np.ndarray | None = None
    partial: np.ndarray | None = None
    gam: np.ndarray | None = None
    tight: bool = False
    c_est: float = C_EST

    @property
    def replay(self) -> bool:
        """Whether the rows inside the tight bound are replayed from this layer (see
        `sc_neurocore.engine.event_tables.LayerTables`): where the tight test may decide."""
        return self.tight

    def kernel(self):
        """The layer's kernel, `propagate_cuba` (numba-compiled when installed)."""
        return cuba_kernels()["propagate_cuba"]

    def kernel_args(self) -> tuple:
        """The arguments of `propagate_cuba` between the rows' needed neurons (``only``) and ``capacity``."""
        return (self.weight, self.alpha, self.beta, self.theta, self.reset, self.membrane, self.pre, self.spikes,
                self.bound, self.inverse_up, self.inverse_down, self.up_by_neuron, self.down_by_neuron, self.c_op,
                self.c_sum, self.spread, self.slack)

    def tight_args(self) -> tuple:
        """The tight test's arguments of `propagate_cuba` (after ``capacity``)."""
        if not self.tight or self.recorded is None:
            empty = np.zeros((1, 1, 1))
            return empty, empty, empty, empty, empty, np.zeros((1, 1)), False, self.c_est
        return self.recorded, self.recorded_pre, self.rho_i, self.rho_v, self.partial, self.gam, True, self.c_est


def is_cuba(layer: CompiledLayer) -> bool:
    """Whether ``layer`` is a current-based layer this module handles (its step is `synaptic_step`, or
    Norse's `current_lif_step`).

    Example:
        >>> import torch
        >>> from sc_neurocore.dynamics import SynapticParameters
        >>> is_cuba(CompiledLayer(torch.ones(2, 2), None, synaptic_step, SynapticParameters(), None))
        True
    """
    return (layer.step is synaptic_step and isinstance(layer.params, SynapticParameters)) or _is_norse(layer)


def _is_norse(layer: CompiledLayer) -> bool:
    return layer.step is current_lif_step and isinstance(layer.params, CurrentLIFParameters)


def norse_form(layer: CompiledLayer) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""``(gain a, alpha, beta, threshold)`` ``(n,)`` float64 of a Norse current-based LIF ``layer`` on its charged
    membrane (see `sc_neurocore.engine.cuba_kernels`): $a = dt\,\tau_{mem}^{-1}$ and $c = -dt\,\tau_{syn}^{-1}$
    exactly as `current_lif_step` forms them (a constant in the layer's dtype), $\alpha = 1 + c$, $\beta = 1 - a$.

    Example:
        >>> import torch
        >>> from sc_neurocore.dynamics import CurrentLIFParameters, current_lif_initial_state
        >>> layer = CompiledLayer(torch.ones(2, 3), None, current_lif_step, CurrentLIFParameters(), None)
        >>> [round(float(v[0]), 6) for v in norse_form(layer)]
        [0.1, 0.8, 0.9, 1.0]
    """
    params: CurrentLIFParameters = layer.params
    dtype = layer.weight.dtype
    n_out = layer.weight.shape[1]

    def constant(value) -> Tensor:  # a Python number meets the float tensor as a constant of its dtype
        return torch.as_tensor(value).to(dtype).double().expand(n_out).contiguous()

    gain = constant(params.dt * params.tau_mem_inv)
    decay = constant(-params.dt * params.tau_syn_inv)
    return gain, 1.0 + decay, 1.0 - gain, constant(params.v_th)


def _norse_unsupported(name: str, layer: CompiledLayer) -> str | None:
    params: CurrentLIFParameters = layer.params
    if params.recurrent is not None:
        return f"layer {name!r} is recurrent"
    n_out = layer.weight.shape[1]
    for field in ("tau_syn_inv", "tau_mem_inv", "v_leak", "v_th", "v_reset"):
        value = torch.as_tensor(getattr(params, field))
        if value.numel() not in (1, n_out):
            return f"layer {name!r} has a {field} of shape {tuple(value.shape)}, neither one value nor one per neuron"
    for field in ("v_leak", "v_reset"):
        if bool((torch.as_tensor(getattr(params, field)) != 0).any()):
            return f"layer {name!r} has a {field} other than 0 (the events model a reset to 0 and no leak potential)"
    gain, alpha, beta, _ = norse_form(layer)
    if bool((gain <= 0).any()) or bool((beta < 0).any()):
        return f"layer {name!r} has a membrane decay dt * tau_mem_inv outside (0, 1]"
    if bool((alpha < 0).any()) or bool((alpha > 1).any()):
        return f"layer {name!r} has a current decay dt * tau_syn_inv outside [0, 1]"
    return None


def cuba_unsupported(name: str, layer: CompiledLayer) -> str | None:
    """Why the current-based ``layer`` cannot run as events (``None``: it can).

    Example:
        >>> import torch
        >>> from sc_neurocore.dynamics import SynapticParameters
        >>> layer = CompiledLayer(torch.ones(2, 2), None, synaptic_step, SynapticParameters(reset_delay=False), None)
        >>> cuba_unsupported("1", layer)
        "layer '1' resets in the same step (the events follow the delayed reset)"
    """
    if _is_norse(layer):
        return _norse_unsupported(name, layer)
    params = layer.params
    if params.recurrent is not None:
        return f"layer {name!r} is recurrent"
    n_out = layer.weight.shape[1]
    for field in ("alpha", "beta", "threshold"):
        value = torch.as_tensor(getattr(params, field))
        if value.numel() not in (1, n_out):
            return f"layer {name!r} has a {field} of shape {tuple(value.shape)}, neither one value nor one per neuron"
        if field != "threshold" and (bool((value < 0).any()) or bool((value > 1).any())):
            return f"layer {name!r} has an {field} outside [0, 1]"
    if params.reset not in RESET_CODES:
        return f"layer {name!r} has reset {params.reset!r}"
    if not bool(torch.all(torch.as_tensor(params.graded) == 1)):
        return f"layer {name!r} emits graded spikes (the events are spike flips of height 1)"
    if not params.reset_delay:
        return f"layer {name!r} resets in the same step (the events follow the delayed reset)"
    return None


def _before(states: Tensor) -> Tensor:
    """``(B, T, n)``: at each step, the state the step before (at rest, 0, before the first)."""
    return torch.cat([states.new_zeros(states[:, :1].shape), states[:, :-1]], dim=1)


def norse_charged(layer: CompiledLayer, currents: Tensor, state) -> tuple[Tensor, Tensor]:
    r"""``(jumped current, charged membrane)`` ``(B, T, n)`` of a recorded forward of a Norse current-based LIF
    ``layer``: $\hat j = \hat i[t-1] + \hat I[t]$ and $\tilde v$, recomputed from its input currents and its
    recorded states (``state``: the step's own NamedTuple of ``(B, T, n)`` tensors) with the step's own elementwise
    ops, so with the forward's bits.

    Example:
        >>> import torch
        >>> from sc_neurocore.dynamics import CurrentLIFParameters, CurrentLIFState
        >>> layer = CompiledLayer(torch.ones(2, 1), None, current_lif_step, CurrentLIFParameters(), None)
        >>> zero = torch.zeros(1, 2, 1)
        >>> norse_charged(layer, torch.ones(1, 2, 1), CurrentLIFState(zero, zero))[1].flatten().tolist()
        [0.10000000149011612, 0.10000000149011612]
    """
    before = type(state)(_before(state.membrane), _before(state.current))
    with torch.no_grad():
        return current_lif_integrate(currents, before, layer.params)


def _norse_roundings(layer: CompiledLayer, currents: Tensor, state, gain: Tensor, alpha: Tensor,
                     factor: float) -> tuple[Tensor, Tensor, Tensor]:
    r"""The local roundings $\rho_i, \rho_v$ ``(B, T, n)`` of a Norse current-based LIF layer's float forward, in the
    kernel's units (the current scaled by $a$; see `sc_neurocore.engine.cuba_kernels`), and its float charged
    membrane $\tilde v$ (`norse_charged`)."""
    current_f, membrane_f = state.current, state.membrane
    jumped, charged = (value.double() for value in norse_charged(layer, currents, state))
    decay = (alpha - 1.0).abs()
    rho_i = factor * gain * (jumped.abs() + decay * _before(jumped).abs() + _before(current_f.double()).abs())
    rho_v = factor * (2.0 * gain * (jumped.abs() + _before(membrane_f.double()).abs()) + charged.abs())
    return rho_i, rho_v, charged


def cuba_tables(layer: CompiledLayer, index: int, below: Tensor, baseline: Baseline, tight: bool,
                alone_checked: bool, spread: float, slack: int | None = None) -> CubaTables:
    r"""The tables of current-based layer ``index`` of a stack, fed by the train ``below`` ``(B, T, n_in)``
    (the samples, or the baseline spikes of the layer below), from the recorded ``baseline``.

    ``tight``: the stack's ops are the model's own (see `sc_neurocore.engine.event_tables.layer_tables`, which
    calls this for such a layer with its ``spread``); ``alone_checked``: the caller checked that the layer's
    product gives each sample's rows alone the recorded bits; ``slack``: the most spikes a perturbed copy adds
    to one step's input of a layer above the first (``None``: `sc_neurocore.engine.event_tables.ADDED_SPIKES`).

    Example:
        >>> import torch
        >>> from sc_neurocore.dynamics import SynapticParameters, synaptic_initial_state
        >>> from sc_neurocore.engine.incremental import CompiledStack, stack_forward
        >>> layer = CompiledLayer(torch.randn(6, 3), None, synaptic_step, SynapticParameters(0.8, 0.9),
        ...                       synaptic_initial_state)
        >>> x = (torch.rand(1, 8, 6) < 0.4).float()
        >>> _, baseline = stack_forward(CompiledStack((layer,), ("1",)), x, record=True)
        >>> cuba_tables(layer, 0, x, baseline, True, False, 1.05).bound.shape
        (1, 3, 8)
    """
    from .event_tables import ADDED_SPIKES, _rows_alone_match, gamma, scalar_gamma

    slack = ADDED_SPIKES if slack is None or index == 0 else slack

    params = layer.params
    unit = torch.finfo(layer.weight.dtype).eps / 2
    n_in, n_out = layer.weight.shape
    own = cuba_kernels()
    train = below.double()
    weight = layer.weight.double()
    state = baseline.states[index]
    spikes = baseline.spikes[index].double()
    norse = _is_norse(layer)
    if norse:  # on the charged membrane, with the current a j: the kernel's weights a W
        gain, alpha, beta, theta = norse_form(layer)
        weight = weight * gain
    else:
        alpha, beta, theta = (torch.as_tensor(value, dtype=torch.float64).expand(n_out).contiguous()
                              for value in (params.alpha, params.beta, params.threshold))
    sums = [np.zeros((*train.shape[:2], n_out)) for _ in range(3)]
    own["product_sums"](np.ascontiguousarray(train.numpy()), np.ascontiguousarray(weight.numpy()), *sums)
    real_current, positive, negative = (torch.from_numpy(a) for a in sums)
    magnitude = positive + negative
    binary = bool(((train == 0) | (train == 1)).all())
    partial = torch.maximum(positive, negative) if binary else magnitude.clone()
    if layer.bias is not None:
        bias = layer.bias.double() * (gain if norse else 1.0)
        magnitude += bias.abs()
        partial += bias.abs()
        real_current += bias
    reset = 3 if norse else RESET_CODES[params.reset]
    _, pre, membrane = own["real_states"](real_current.numpy(), np.zeros(real_current.shape), spikes.numpy(),
                                          alpha.numpy(), beta.numpy(), theta.numpy(), reset)
    terms = (train != 0).sum(dim=2, keepdim=True) + 1 + layer.terms + (0 if index == 0 else slack)
    # Each op rounds by at most u times its float result (round to nearest), whose magnitude is at most
    # (1 + u) times the bound of its terms. float64: the estimates round as finely as the model, doubled.
    factor = 2 * unit if unit < 2.0**-40 else unit * (1 + 4 * unit)
    if norse:
        rho_i, rho_v, charged = _norse_roundings(layer, baseline.currents[index], state, gain, alpha, factor)
    else:
        synaptic_f, membrane_f = state.synaptic.double(), state.membrane.double()
        previous_i = _before(synaptic_f)
        previous_v = _before(membrane_f)
        rho_i = factor * (alpha * previous_i.abs() + synaptic_f.abs())
        rho_v = factor * (2 * beta * previous_v.abs() + synaptic_f.abs() + membrane_f.abs())
    gam = gamma(terms, unit)
    # The bound runs the same recurrence on the local bounds, without resets (code 2).
    bound = own["real_states"]((rho_i + gam * magnitude).numpy(), rho_v.numpy(), spikes.numpy(), alpha.numpy(),
                               beta.numpy(), theta.numpy(), 2)[2]
    margin = np.abs(membrane - theta.numpy()) - spread * bound
    up, down = own["reverse_reach"](margin, spikes.numpy(), alpha.numpy(), beta.numpy())
    with np.errstate(divide="ignore"):
        inverse_up, inverse_down = (np.where(reach > 0, 1.0 / reach, np.inf) for reach in (up, down))
    membrane_n, pre_n, spikes_n, bound_n, up_n, down_n = (np.ascontiguousarray(a.transpose(0, 2, 1))
                                                          for a in (membrane, pre, spikes.numpy(), bound, up, down))
    layer_tight = tight and (alone_checked or _rows_alone_match(layer, below, baseline.currents[index]))
    extra: tuple = ()
    if norse and layer_tight:  # the tight test on the float charged membrane, its reset anchored the step before
        extra = tuple(np.ascontiguousarray(a.double().numpy().transpose(0, 2, 1))
                      for a in (charged, _before(charged), rho_i, rho_v, partial)) \
            + (np.ascontiguousarray(gam[:, :, 0].numpy()), True)
    elif layer_tight:
        with torch.no_grad():  # the framework's own elementwise ops on its own float states: the same bits
            zero = state.membrane.new_zeros(state.membrane[:, :1].shape)
            recorded_pre = params.beta * torch.cat([zero, state.membrane[:, :-1]], dim=1) + state.synaptic
        extra = tuple(np.ascontiguousarray(a.double().numpy().transpose(0, 2, 1))
                      for a in (state.membrane, recorded_pre, rho_i, rho_v, partial)) \
            + (np.ascontiguousarray(gam[:, :, 0].numpy()), True)
    return CubaTables(weight.numpy(), alpha.numpy(), beta.numpy(), theta.numpy(), reset, membrane_n, pre_n, spikes_n,
                      bound_n, inverse_up, inverse_down, up_n, down_n, 4 * unit,
                      scalar_gamma(n_in + 1 + layer.terms, unit), spread, slack, *extra)
