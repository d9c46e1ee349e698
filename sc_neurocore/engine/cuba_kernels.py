r"""The event engine's inner loop for a current-based (synaptic-current) layer: snnTorch `Synaptic`, Norse `LIFCell`.

The layer (`sc_neurocore.dynamics.synaptic_step`, delayed reset, spikes of height 1) runs, in the framework's
order of operations, with $r[t] = s[t-1]$ the reset decided from the previous membrane:

$$i[t] = \alpha i[t-1] + I[t], \qquad u[t] = \beta v[t-1] + i[t], \qquad
v[t] = u[t] - r[t]\theta \;\text{(subtract)},\; (1 - r[t]) u[t] \;\text{(zero)},\; u[t] \;\text{(none)}$$

and $s[t] = H(v[t] - \theta)$. A perturbed row changes the layer's input by events $(t_e, i_e, \delta_e)$;
for neuron $j$ the kicks $k[t] = \sum_{e: t_e = t} \delta_e W_{i_e j}$ drive the differences to the
baseline, a two-state linear recurrence until a reset flips:

$$\Delta i[t] = \alpha \Delta i[t-1] + k[t], \qquad \Delta u[t] = \beta \Delta v[t-1] + \Delta i[t],
\qquad \Delta v[t] = \Delta u[t] - (r'[t] - r[t])\theta$$

(none: no reset term; zero: $(1 - r)\Delta u$ while the resets agree, re-anchored on the baseline's
pre-reset membrane $u$ where they differ: $\Delta v = (1 - r')(u + \Delta u) - (1 - r) u$).

**The screen.** Without a flip, a kick $K$ at $t_e$ moves the membrane at $s \ge t_e$ by $K h[s - t_e]$,
the double-exponential response $h[n] = \sum_{q=0}^{n} \beta^{n-q} \alpha^q$ ($h[0] = 1$; the baseline's
zero resets only cut it, to between 0 and $h$), so before a neuron's first flip $\Delta v$ lies between
minus the response of its negative kicks and the response of its positive ones. A silent step can only
flip upward, by $\Delta v[s] \ge m[s]$, a spiking one only downward, where $m[s] = |v[s] - \theta| - c E[s]$ is
the baseline's margin less its rounding bound $E$ (a step with $m \le 0$ counts both ways). With the tables
$\mathrm{up}[t] = \min m[s] / h[s - t]$ over the silent steps $s \ge t$ and $\mathrm{down}[t]$ over the
spiking ones (`reverse_reach`), a neuron with
$\sum_e (g K_e^+ + (g - 1) K_e^-) / \mathrm{up}[t_e] < 1$ and $\sum_e (g K_e^- + (g - 1) K_e^+) /
\mathrm{down}[t_e] < 1$ provably flips nothing, nor comes within the rounding bound ($g - 1$ covers the
perturbation's own rounding, below), and is skipped. A scan stops after the row's last event as soon as
what is left, which acts from $t + 1$ as kicks $\beta \Delta v[t]$ and $\alpha \Delta i[t]$ (both responses
between 0 and $h$) plus its rounding, passes the same two tests at $t + 1$.

**Rounding (the loose test, any summation order).** With $u$ the unit roundoff, the baseline's float
forward ($\hat i, \hat v$) differs from its real-arithmetic anchor (real currents, the float forward's own
resets) by at most $E$:

$$E_i[t] = \alpha E_i[t-1] + \rho_i[t] + \gamma_{k_t} A[t], \qquad E[t] = \beta E[t-1] + E_i[t] + \rho_v[t],$$

$$\rho_i[t] = f(\alpha|\hat i[t-1]| + |\hat i[t]|), \qquad \rho_v[t] = f(2\beta|\hat v[t-1]| + |\hat i[t]| + |\hat v[t]|)$$

(the product's bound $\gamma_{k_t} A[t]$ as for a LIF layer). Each op rounds by at most $u$ times its
float result (round to nearest), which is at most $(1 + u)^2$ times the bound of its terms: the current's
multiply and add, the membrane's multiply, add (its sum $|\hat u| \le \beta|\hat v[t-1]| + |\hat i[t]|$) and
subtracted reset (a zero reset is exact), so $f = u(1 + 4u)$; in float64, where the estimates round as
finely as the model, $f = 2u$. A perturbed copy rounds at most as much plus its share, with $c = 4u$:

$$R_i[t] = \alpha R_i[t-1] + c(\alpha|\Delta i[t-1]| + |\Delta i[t]|) + \gamma_{n_{in}+1} \textstyle\sum |k|,
\qquad R[t] = \beta R[t-1] + R_i[t] + c(2\beta|\Delta v[t-1]| + |\Delta i[t]| + |\Delta v[t]| + \theta|r' - r|)$$

and a decision is taken from the estimate $v[t] + \Delta v[t]$ only outside $c_s E[t] + R[t]$ ($c_s$ =
``spread``, as for a LIF layer). Summed over the window these shares stay below
$(\gamma_{n_{in}+1} + c(6T + 6))$ times the response bound, hence the screen's $g = 1 + \gamma_{n_{in}+1} +
c(6T + 6)$.

**The tight test** (where the stack's ops are the model's own): the estimate $\hat v[t] + \Delta_t v[t]$
anchored on the baseline's own float membrane $\hat v$, whose differences run the same recurrence from the
row's first event (before it the two computations are identical), against

$$R^t_i[t] = \alpha R^t_i[t-1] + 2\rho_i[t] + c'(\alpha|\Delta_t i[t-1]| + |\Delta_t i[t]|) +
[\text{input changed at } t]\,\gamma_{k_t}(2M[t] + \textstyle\sum|k|), \qquad
R^t[t] = \beta R^t[t-1] + R^t_i[t] + 2\rho_v[t] + c'(\dots)$$

($\rho_i, \rho_v$ the baseline's local update roundings of the two states, above: both copies round; $M$ the
larger one-signed sum of the product's summands, whose rounding differs only where the input did;
$c' = c + 2^{-51}$ for the float64 estimate), times $1 + c(2T + 4)$ for the second-order terms. It is followed
only from the first decision of a neuron that falls inside the loose bound (caught up from the row's first
event then). A decision the tight test takes flags the row (``shape``); one inside both bounds makes the row
a tie, replayed by the caller exactly as for a LIF layer (`sc_neurocore.engine.event`).

**Norse's current-based LIF** (`current_lif_step`, `LIFCell`) charges and resets in the same step: the input
jumps the current, $j[t] = i[t-1] + I[t]$, the membrane charges on it, $\tilde v[t] = v[t-1] + a(j[t] -
v[t-1])$ ($a = dt\,\tau_{mem}^{-1}$, no leak potential), fires on $\tilde v$ and resets to 0, and the current
decays, $i[t] = j[t] + c\,j[t]$ ($c = -dt\,\tau_{syn}^{-1}$). On its charged membrane $v := \tilde v$, with the
current $a j$ (the kernel's weights $aW$), $\alpha = 1 + c$ and $\beta = 1 - a$, that is

$$i[t] = \alpha i[t-1] + I[t], \qquad v[t] = \beta (1 - r[t])\, v[t-1] + i[t]$$

(reset code 3): the reset wipes the old membrane and not the step's current. Its differences run
$\Delta v[t] = \beta(1 - r)\Delta v[t-1] + \Delta i[t]$ while the resets agree, re-anchored on the membrane
the step before where they differ; the zero resets only cut the response, so the screen holds unchanged.
Its float forward rounds the current twice a step ($\rho_i = f a(|\hat j[t]| + |c||\hat j[t-1]| + |\hat
i[t-1]|)$) and the membrane three times ($\rho_v = f(2a(|\hat j[t]| + |\hat v[t-1]|) + |\tilde v[t]|)$, the
leak's difference, its scaling by $a$, the sum; the reset and the comparison with the threshold are exact);
a perturbed copy adds $c(|\Delta i[t-1]| + |\Delta i[t]|)$ and $c(2|\Delta i[t]| + |\Delta v[t]| + 2a(|\Delta
v[t-1]| + |v[t-1]|\,|r' - r|))$, at most $7(T + 1)$ response bounds over the window, hence $8T + 8$ in $g$.
Its tight test (where the stack's ops are Norse's own) runs on the baseline's own float charged membrane: two
float forwards through the same ops differ, step by step, by the same linear recurrence plus their local
roundings ($2\rho$ and the copy's share) and, where the input changed, their products; the reset's anchor is
the baseline's float membrane the step before (``recorded_pre``).

Written once in plain Python over NumPy arrays and compiled by numba when it is installed (the ``fast``
extra), as `sc_neurocore.engine.event_kernels`; without numba the same functions run uncompiled. The layer's
plain time loop, compiled, is `sc_neurocore.engine.synaptic_loop`.
"""

from __future__ import annotations

import numpy as np

from .kernel_compile import grown_events, jit_kernels, numba_available, plain_kernels, time_sorted


def propagate_cuba(offsets, ev_t, ev_i, ev_delta, sample, only, weight, alpha, beta, theta, reset, membrane, pre,
                   spikes, bound, inverse_up, inverse_down, up_by_neuron, down_by_neuron, c_op, c_sum, spread, slack,
                   capacity, recorded, recorded_pre, rho_i, rho_v, partial, gam, tight, c_est):
    r"""Spike changes of one current-based layer for every row (see the module docstring).

    Args:
        offsets: ``(P + 1,)`` int64: row ``p``'s input events are ``[offsets[p], offsets[p + 1])``.
        ev_t, ev_i, ev_delta: the input events (time, input neuron, change of the input), by row and time.
        sample: ``(P,)`` int64: the sample of each row.
        only: ``(P,)`` int64: the one neuron whose spikes row ``p`` needs, or -1 for all of them (as for
            `sc_neurocore.engine.event_kernels.propagate_layer`).
        weight: ``(n_in, n)`` float64.
        alpha, beta, theta: ``(n,)`` float64.
        reset: 0 subtract, 1 zero, 2 none, 3 the old membrane's zero reset (Norse, on its charged membrane).
        membrane, pre, spikes, bound: ``(B, n, T)``: the real anchor's membrane $v$ and pre-reset membrane
            $u$, the baseline spikes, the bound $E$.
        inverse_up, inverse_down: ``(B, T, n)``: ``1 / reach`` where ``reach > 0``, else ``inf``, for the reach of
            an upward and of a downward flip (`reverse_reach`); up_by_neuron, down_by_neuron: the reaches
            themselves ``(B, n, T)``.
        c_op, c_sum, spread, slack: as for `sc_neurocore.engine.event_kernels.propagate_layer`.
        capacity: initial size of the output event buffers.
        recorded, recorded_pre, rho_i, rho_v, partial: ``(B, n, T)``: the baseline's float membrane and
            pre-reset membrane, its local update roundings and the product's one-signed sum $M$; gam: ``(B, T)``;
            tight: whether the tight test may decide; c_est: the float64 estimate's rounding ($2^{-52}$).

    Returns:
        ``(offsets, t, j, delta, tie, shape)``, as `propagate_layer`.

    Example:
        >>> import numpy as np
        >>> z, one = np.zeros((1, 1, 3)), np.ones(1)
        >>> never = np.full((1, 3, 1), np.inf), np.full((1, 3, 1), np.inf), -np.ones((1, 1, 3)), -np.ones((1, 1, 3))
        >>> out = propagate_cuba(np.array([0, 1]), np.array([0]), np.array([0]), np.array([1.0]), np.array([0]),
        ...                      np.array([-1]), np.array([[1.5]]), 0.5 * one, 0.5 * one, one, 0, z, z, z, z, *never,
        ...                      1e-7, 1e-7, 1.05, 8, 4, z, z, z, z, z, np.zeros((1, 3)), False, 2.0**-52)
        >>> out[0].tolist(), out[1].tolist(), out[3].tolist()  # v = 1.5, 0.5, 0.625: a new spike at t = 0
        ([0, 1], [0], [1.0])
    """
    n_rows = offsets.shape[0] - 1
    n_steps = membrane.shape[2]
    n_out = weight.shape[1]
    by_neuron = np.ascontiguousarray(weight.T)
    shares = 8.0 if reset == 3 else 6.0  # the copy's rounding shares a step, in units of the response bound
    grow = 1.0 + c_sum + c_op * (shares * n_steps + shares)
    slack_share = grow - 1.0
    scale_t = 1.0 + c_op * (2.0 * n_steps + 4.0)
    c_opt = c_op + 2.0 * c_est
    out_offsets = np.zeros(n_rows + 1, dtype=np.int64)
    out_t = np.empty(max(capacity, 1), dtype=np.int64)
    out_j = np.empty(max(capacity, 1), dtype=np.int64)
    out_delta = np.empty(max(capacity, 1), dtype=np.float64)
    tie = np.zeros(n_rows, dtype=np.bool_)
    shape = np.zeros(n_rows, dtype=np.bool_)
    # One row's changes before they are put in time order, and the scans' scratch: allocated here, once, as the
    # row loop (`_cuba_rows`) is compiled without reference counting and allocates nothing.
    row_t = np.empty(n_out * n_steps, dtype=np.int64)
    row_j = np.empty(n_out * n_steps, dtype=np.int64)
    row_delta = np.empty(n_out * n_steps, dtype=np.float64)
    per_step = np.zeros(n_steps + 1, dtype=np.int64)
    totals = np.empty(n_out, dtype=np.float64)
    totals_down = np.empty(n_out, dtype=np.float64)
    history = np.empty(n_steps, dtype=np.float64)  # the perturbed copy's spikes of the neuron being scanned
    count = 0
    first = 0
    while first < n_rows:
        first, count = _cuba_rows(first, count, offsets, ev_t, ev_i, ev_delta, sample, only, weight, by_neuron, alpha,
                                  beta, theta, reset, membrane, pre, spikes, bound, inverse_up, inverse_down,
                                  up_by_neuron, down_by_neuron, c_op, c_sum, spread, slack, recorded, recorded_pre,
                                  rho_i, rho_v, partial, gam, tight, c_est, grow, slack_share, scale_t, c_opt,
                                  out_offsets, out_t, out_j, out_delta, tie, shape, row_t, row_j, row_delta, per_step,
                                  totals, totals_down, history)
        if first < n_rows:  # the buffers are full: grown (doubling), and the rows go on from ``first``
            out_t, out_j, out_delta = grown_events(out_t, out_j, out_delta, count, n_out * n_steps)
    return out_offsets, out_t[:count], out_j[:count], out_delta[:count], tie, shape


def _cuba_rows(first, count, offsets, ev_t, ev_i, ev_delta, sample, only, weight, by_neuron, alpha, beta, theta,
               reset, membrane, pre, spikes, bound, inverse_up, inverse_down, up_by_neuron, down_by_neuron, c_op,
               c_sum, spread, slack, recorded, recorded_pre, rho_i, rho_v, partial, gam, tight, c_est, grow,
               slack_share, scale_t, c_opt, out_offsets, out_t, out_j, out_delta, tie, shape, row_t, row_j, row_delta,
               per_step, totals, totals_down, history):
    """`propagate_cuba`'s rows from ``first`` on, appended to ``out_*`` from ``count``: ``(the first row not done,
    the events written)``; a row stops it, undone, when its changes do not fit in ``out_*``."""
    n_rows = offsets.shape[0] - 1
    n_steps = membrane.shape[2]
    n_out = weight.shape[1]
    for p in range(first, n_rows):
        start = offsets[p]
        stop = offsets[p + 1]
        found = 0
        is_tie = False
        if start < stop:
            b = sample[p]
            lo = 0 if only[p] < 0 else only[p]
            hi = n_out if only[p] < 0 else only[p] + 1
            added = 0  # the most spikes this row adds to one step's input
            e = start
            while e < stop:
                here = 0
                t = ev_t[e]
                while e < stop and ev_t[e] == t:
                    if ev_delta[e] > 0.0:
                        here += 1
                    e += 1
                added = max(added, here)
            is_tie = added > slack
            first_t = ev_t[start]
            last_t = ev_t[stop - 1]
            # The screen, per direction: a kick's sign says which way it moves the membrane (h >= 0), its
            # rounding share reaches both ways.
            for j in range(lo, hi):
                totals[j] = 0.0
                totals_down[j] = 0.0
            for e in range(start, stop):
                delta = ev_delta[e]
                i = ev_i[e]
                t = ev_t[e]
                for j in range(lo, hi):  # branch-free, so that it vectorises
                    kick = delta * weight[i, j]
                    rising = max(kick, 0.0)
                    falling = max(-kick, 0.0)
                    totals[j] += (grow * rising + slack_share * falling) * inverse_up[b, t, j]
                    totals_down[j] += (grow * falling + slack_share * rising) * inverse_down[b, t, j]
            for j in range(lo, hi):
                if is_tie:
                    break
                if totals[j] < 1.0 and totals_down[j] < 1.0:  # NaN (a zero kick times an infinite inverse) is scanned
                    continue
                aj = alpha[j]
                bj = beta[j]
                th = theta[j]
                di = 0.0  # differences to the real anchor, and the perturbation's share of the rounding
                dv = 0.0
                ri = 0.0
                rv = 0.0
                tracking = False  # the tight test's state, followed from the first decision that needs it
                ti = 0.0
                tv = 0.0
                rti = 0.0
                rtv = 0.0
                e = start
                previous = spikes[b, j, first_t - 1] if first_t > 0 else 0.0  # the perturbed copy's spike at t - 1
                for t in range(first_t, n_steps):
                    e, change, mass, kicks = _kicks(e, stop, t, j, ev_t, ev_i, ev_delta, by_neuron)
                    base_reset = spikes[b, j, t - 1] if t > 0 else 0.0
                    if reset == 3:  # the real anchor's membrane the step before
                        anchor = membrane[b, j, t - 1] if t > 0 else 0.0
                    else:  # its pre-reset membrane, read on a flipped zero reset only
                        anchor = pre[b, j, t] if reset == 1 else 0.0
                    new_di, _, new_dv = _difference_step(di, dv, change, previous, base_reset, aj, bj, th, reset,
                                                         anchor)
                    share_i, share_v = _shares(di, new_di, dv, new_dv, previous, base_reset, aj, bj, th, reset, anchor)
                    ri = aj * ri + c_op * share_i + c_sum * mass
                    rv = bj * rv + ri + c_op * share_v
                    di = new_di
                    dv = new_dv
                    if tracking:
                        ti, tv, rti, rtv = _tight_step(ti, tv, rti, rtv, change, mass, kicks, previous, base_reset, aj,
                                                       bj, th, reset, b, j, t, recorded_pre, rho_i, rho_v, partial, gam,
                                                       c_opt, c_est)
                    estimate = membrane[b, j, t] + dv
                    radius = spread * bound[b, j, t] + rv
                    if estimate - th > radius:
                        fired = 1.0
                    elif th - estimate > radius:
                        fired = 0.0
                    elif tight:
                        if not tracking:
                            ti, tv, rti, rtv = _tight_catch_up(start, stop, t + 1, b, j, ev_t, ev_i, ev_delta, by_neuron,
                                                               history, spikes, aj, bj, th, reset, recorded_pre, rho_i,
                                                               rho_v, partial, gam, c_opt, c_est)
                            tracking = True
                        estimate = recorded[b, j, t] + tv
                        radius = rtv * scale_t + c_est * (abs(estimate) + th) + c_op * th
                        if estimate - th > radius:
                            fired = 1.0
                        elif th - estimate > radius:
                            fired = 0.0
                        else:
                            is_tie = True
                            break
                        shape[p] = True
                    else:
                        is_tie = True
                        break
                    base = spikes[b, j, t]
                    if fired != base:
                        row_t[found] = t
                        row_j[found] = j
                        row_delta[found] = fired - base
                        found += 1
                    previous = fired
                    history[t] = fired
                    # After the last event, what is left acts from t + 1 as kicks beta dv and alpha di (and its
                    # rounding): the scan stops once that passes the screen.
                    if t >= last_t and fired == base and t + 1 < n_steps:
                        rising = max(bj * dv, 0.0) + max(aj * di, 0.0)
                        falling = max(-bj * dv, 0.0) + max(-aj * di, 0.0)
                        carried = bj * rv + aj * ri
                        if grow * rising + slack_share * falling + carried < up_by_neuron[b, j, t + 1] and \
                                grow * falling + slack_share * rising + carried < down_by_neuron[b, j, t + 1]:
                            break
        if is_tie:
            found = 0
        if count + found > out_t.shape[0]:
            return p, count
        tie[p] = is_tie
        time_sorted(found, count, n_steps, row_t, row_j, row_delta, per_step, out_t, out_j, out_delta)
        count += found
        out_offsets[p + 1] = count
    return n_rows, count


def _kicks(e, stop, t, j, ev_t, ev_i, ev_delta, by_neuron):
    """The events of step ``t`` from event ``e`` on, as neuron ``j``'s kicks: ``(next event, their sum, the sum
    of their magnitudes, their number)``."""
    change = 0.0
    mass = 0.0
    kicks = 0
    while e < stop and ev_t[e] == t:
        kick = ev_delta[e] * by_neuron[j, ev_i[e]]
        change += kick
        mass += abs(kick)
        kicks += 1
        e += 1
    return e, change, mass, kicks


def _difference_step(di, dv, change, previous, base_reset, aj, bj, th, reset, anchor_pre):
    """One step of the differences ``(di, dv)`` to an anchor (``anchor_pre``: its pre-reset membrane at this
    step, read on a flipped zero reset only; for code 3 its membrane the step before): the new ``(di, du, dv)``."""
    new_di = aj * di + change
    if reset == 3:  # the reset zeroes the old membrane only: v = beta (1 - r) v[t-1] + i
        if previous == base_reset:
            du = bj * (1.0 - base_reset) * dv + new_di
        else:  # a flipped reset: re-anchored on the membrane the step before
            du = bj * ((1.0 - previous) * (anchor_pre + dv) - (1.0 - base_reset) * anchor_pre) + new_di
        return new_di, du, du
    du = bj * dv + new_di
    if reset == 0:
        new_dv = du - (previous - base_reset) * th
    elif reset == 2:
        new_dv = du
    elif previous == base_reset:
        new_dv = (1.0 - base_reset) * du
    else:  # a flipped zero reset: re-anchored on the pre-reset membrane
        new_dv = (1.0 - previous) * (anchor_pre + du) - (1.0 - base_reset) * anchor_pre
    return new_di, du, new_dv


def _tight_step(ti, tv, rti, rtv, change, mass, kicks, previous, base_reset, aj, bj, th, reset, b, j, t, recorded_pre,
                rho_i, rho_v, partial, gam, c_opt, c_est):
    """One step of the tight test's differences to the baseline's float states and their bounds."""
    anchor = recorded_pre[b, j, t]  # code 3: the baseline's float membrane the step before
    new_ti, _, new_tv = _difference_step(ti, tv, change, previous, base_reset, aj, bj, th, reset, anchor)
    share_i, share_v = _shares(ti, new_ti, tv, new_tv, previous, base_reset, aj, bj, th, reset, anchor)
    # Both copies' updates round (2 rho); their products differ only where the input did.
    rti = aj * rti + 2.0 * rho_i[b, j, t] + c_opt * share_i
    if kicks > 0:
        rti += gam[b, t] * (2.0 * partial[b, j, t] + mass) + c_est * mass * (kicks + 1)
    rtv = bj * rtv + rti + 2.0 * rho_v[b, j, t] + c_opt * share_v
    return new_ti, new_tv, rti, rtv


def _shares(di, new_di, dv, new_dv, previous, base_reset, aj, bj, th, reset, anchor):
    """A perturbed copy's share of one step's roundings, beyond the anchor's, per unit roundoff: ``(of the
    current, of the membrane)``, from the differences before and after the step (``anchor``: as for
    `_difference_step`). For Norse's form (code 3) the current's two roundings (its jump, and its decay a step
    before) and the membrane's three (the leak's difference, its scaling by 1 - beta, the sum)."""
    if reset == 3:
        flipped = abs(anchor) * abs(previous - base_reset)
        return abs(di) + abs(new_di), 2.0 * abs(new_di) + abs(new_dv) + 2.0 * (1.0 - bj) * (abs(dv) + flipped)
    return aj * abs(di) + abs(new_di), 2.0 * bj * abs(dv) + abs(new_di) + abs(new_dv) + th * abs(previous - base_reset)


def _tight_catch_up(start, stop, stop_t, b, j, ev_t, ev_i, ev_delta, by_neuron, history, spikes, aj, bj, th, reset,
                    recorded_pre, rho_i, rho_v, partial, gam, c_opt, c_est):
    """The tight test's state of neuron ``j`` after step ``stop_t - 1``, from the row's first event, with the
    perturbed copy's spikes so far in ``history`` (it is tracked only once a decision needs it)."""
    ti = 0.0
    tv = 0.0
    rti = 0.0
    rtv = 0.0
    e = start
    first_t = ev_t[start]
    for t in range(first_t, stop_t):
        e, change, mass, kicks = _kicks(e, stop, t, j, ev_t, ev_i, ev_delta, by_neuron)
        base_reset = spikes[b, j, t - 1] if t > 0 else 0.0
        previous = history[t - 1] if t > first_t else base_reset
        ti, tv, rti, rtv = _tight_step(ti, tv, rti, rtv, change, mass, kicks, previous, base_reset, aj, bj, th, reset,
                                       b, j, t, recorded_pre, rho_i, rho_v, partial, gam, c_opt, c_est)
    return ti, tv, rti, rtv


def reverse_reach(margin, spikes, alpha, beta):
    r"""The reaches of an upward and of a downward flip, ``(up, down)`` ``(B, T, n)``:
    ``up[b, t, j] = min over s >= t of margin[b, s, j] / h_j[s - t]`` over the steps ``s`` where the baseline is
    silent (only an upward flip is possible there), ``down`` over those where it spikes, and a step with
    ``margin <= 0`` in both; $h[n] = \sum_{q \le n} \beta^{n-q} \alpha^q$ is the membrane's response to a unit kick
    of the current (``spikes``: the baseline's, ``(B, T, n)``).

    A step the response cannot reach ($h = 0$: $\alpha = \beta = 0$) is out of reach (``inf``) unless its
    margin is not positive (then ``-inf``: never screened, as for a LIF layer).

    Example:
        >>> import numpy as np
        >>> up, down = reverse_reach(np.array([[[3.0], [1.0]]]), np.array([[[0.0], [1.0]]]), np.array([0.5]),
        ...                          np.array([0.5]))
        >>> up[0, :, 0].tolist(), down[0, :, 0].tolist()
        ([3.0, inf], [1.0, 1.0])
    """
    n_samples, n_steps, n_out = margin.shape
    up = np.empty_like(margin)
    down = np.empty_like(margin)
    response = np.empty(n_steps, dtype=np.float64)
    for j in range(n_out):
        a = alpha[j]
        bj = beta[j]
        power = 1.0  # alpha ** n
        running = 0.0
        for n in range(n_steps):
            running = bj * running + power if n > 0 else 1.0
            response[n] = running
            power *= a
        for b in range(n_samples):
            for t in range(n_steps):
                best_up = np.inf
                best_down = np.inf
                for s in range(t, n_steps):
                    m = margin[b, s, j]
                    h = response[s - t]
                    if h > 0.0:
                        value = m / h
                    elif m > 0.0:
                        value = np.inf
                    else:
                        value = -np.inf
                    if (m <= 0.0 or spikes[b, s, j] == 0.0) and value < best_up:
                        best_up = value
                    if (m <= 0.0 or spikes[b, s, j] != 0.0) and value < best_down:
                        best_down = value
                up[b, t, j] = best_up
                down[b, t, j] = best_down
    return up, down


def real_states(current, direct, spikes, alpha, beta, theta, reset):
    """The two-state recurrence in real (float64) arithmetic, ``(B, T, n)`` arrays: the synaptic current, the
    pre-reset membrane and the membrane, driven by the currents ``current`` (and ``direct``, added to the
    membrane), with the resets of ``spikes`` (the spikes the float forward emitted, for the anchor of every
    perturbed estimate). With reset code 2 (none) and the local rounding bounds as drives, the membrane is
    the rounding bound $E$ of the module docstring.

    Example:
        >>> import numpy as np
        >>> out = real_states(np.ones((1, 3, 1)), np.zeros((1, 3, 1)), np.array([[[0.0], [1.0], [0.0]]]),
        ...                   np.array([0.5]), np.array([0.5]), np.array([1.0]), 0)
        >>> [a[0, :, 0].tolist() for a in out]
        [[1.0, 1.5, 1.75], [1.0, 2.0, 2.75], [1.0, 2.0, 1.75]]
    """
    n_samples, n_steps, n_out = current.shape
    synaptic = np.empty_like(current)
    pre = np.empty_like(current)
    membrane = np.empty_like(current)
    for b in range(n_samples):
        for j in range(n_out):
            i = 0.0
            v = 0.0
            for t in range(n_steps):
                fired = spikes[b, t - 1, j] if t > 0 else 0.0
                i = alpha[j] * i + current[b, t, j]
                u = beta[j] * (1.0 - fired if reset == 3 else 1.0) * v + i + direct[b, t, j]
                if reset == 0:
                    v = u - fired * theta[j]
                elif reset == 1:
                    v = (1.0 - fired) * u
                else:  # none, or (3) the old membrane's reset, already in u
                    v = u
                synaptic[b, t, j] = i
                pre[b, t, j] = u
                membrane[b, t, j] = v
    return synaptic, pre, membrane


def product_sums(train, weight, real, positive, negative):
    """Accumulate, over the non-zero inputs only (spike trains are sparse), ``train @ weight`` into ``real`` and
    the magnitudes of its positive and of its negative products into ``positive`` and ``negative``
    (``(B, T, n)`` each, zeroed by the caller): a layer's real current and its one-signed sums.

    Example:
        >>> import numpy as np
        >>> out = [np.zeros((1, 1, 2)) for _ in range(3)]
        >>> product_sums(np.array([[[1.0, 0.0, 1.0]]]), np.array([[1.0, -2.0], [5.0, 5.0], [-3.0, 1.0]]), *out)
        >>> [a[0, 0].tolist() for a in out]
        [[-2.0, -1.0], [1.0, 1.0], [3.0, 2.0]]
    """
    n_samples, n_steps, n_in = train.shape
    n_out = weight.shape[1]
    for b in range(n_samples):
        for t in range(n_steps):
            for i in range(n_in):
                x = train[b, t, i]
                if x != 0.0:
                    for j in range(n_out):
                        term = x * weight[i, j]
                        real[b, t, j] += term
                        positive[b, t, j] += max(term, 0.0)
                        negative[b, t, j] += max(-term, 0.0)


_PYTHON_HELPERS = {"_kicks": _kicks, "_difference_step": _difference_step, "_shares": _shares,
                   "_tight_step": _tight_step, "_tight_catch_up": _tight_catch_up, "_cuba_rows": _cuba_rows,
                   "grown_events": grown_events, "time_sorted": time_sorted}
_ENTRIES = {"propagate_cuba": propagate_cuba, "reverse_reach": reverse_reach, "real_states": real_states,
            "product_sums": product_sums}
PYTHON_KERNELS = {name: function for name, function in plain_kernels(globals(), _PYTHON_HELPERS, _ENTRIES).items()
                  if name in _ENTRIES}
_COMPILED: dict[str, object] = {}


def cuba_kernels(compiled: bool = True) -> dict:
    """The kernels by name: numba-compiled when ``compiled`` and numba is installed, else plain Python.

    Example:
        >>> sorted(cuba_kernels(compiled=False))
        ['product_sums', 'propagate_cuba', 'real_states', 'reverse_reach']
    """
    if not compiled or not numba_available():
        return PYTHON_KERNELS
    if not _COMPILED:
        _COMPILED.update({name: function for name, function in jit_kernels(globals(), _PYTHON_HELPERS, _ENTRIES,
                                                                   ("grown_events",)).items()
                          if name in _ENTRIES})
    return _COMPILED
