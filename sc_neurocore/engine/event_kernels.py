r"""The event engine's inner loop: one LIF layer's spike changes from its input's spike changes.

Written once, in plain Python over NumPy arrays, and compiled by numba when it is installed (the ``fast``
extra, `pip install 'spikexplain[fast]'`). Without numba the very same function runs uncompiled: the same
results, far slower, so `sc_neurocore.engine.execute` then prefers the torch executors.

One call handles every perturbed row of a chunk for one layer. Row ``p`` changes the layer's input train by
events ``(t, i, delta)`` (a removed input spike, a flipped spike of the layer below), sorted by time. For
each neuron ``j`` the membrane difference to the baseline evolves, until a spike flips, as

$$
d[t] = \beta\, d[t-1] + \sum_{e:\, t_e = t} \delta_e W_{i_e j} - (r'[t] - r[t])\,\theta
$$

(reset by subtraction; no reset drops the last term; reset to zero multiplies by $1 - r'$ and re-anchors on
a flipped reset). A neuron is first screened, per direction. Before a neuron's first flip its resets are the
baseline's, so $d$ lies between minus the decayed sum of its negative kicks and the decayed sum of its positive
ones. A silent step ($r[t'] = 0$) can only flip upward, by $d[t'] \ge m[t']$, and a spiking step only downward,
by $-d[t'] \ge m[t']$, where $m$ is the baseline's margin to threshold less its rounding bound (a step with
$m \le 0$ counts on both sides). Two per-neuron tables hold the reaches
$\mathrm{up}[t] = \min_{t' \ge t,\ \text{silent or } m \le 0} m[t'] / \beta^{t' - t}$ and $\mathrm{down}[t]$ (the
same over the spiking steps). With $g = 1 + 4u(2 + 2T) + \gamma_{n_{in}+1}$ covering the perturbation's own
rounding ($R_x \le (g - 1) \sum_e |k_e| \beta^{t - t_e}$ for kicks $k_e = \delta_e W_{i_e j}$), neuron ``j`` cannot
flip, nor come within the rounding bound, when both
$\sum_e (g\, k_e^+ + (g - 1)\, k_e^-) / \mathrm{up}[t_e, j] < 1$ and
$\sum_e (g\, k_e^- + (g - 1)\, k_e^+) / \mathrm{down}[t_e, j] < 1$, and it is skipped. Only the others are scanned,
in time order, from the row's first event, and a scan stops as soon as the same two tests pass for what is left
of the difference (its sign says which side it can reach; only its rounding reaches the other).

Exactness: a spike decision is taken only when the estimate $v[t] + d[t]$ (float64) lies further from
threshold than a rigorous bound ``R`` on its distance from what the framework's own float forward of that
perturbed copy computes, whatever the order of its matrix product's sums. ``R`` is
$2.05\,E[t] + R_x[t]$ ($2.5$ in float64, where the estimate's own rounding is of the same order): $E$ bounds the baseline's own rounding (the table ``bound``, see
`sc_neurocore.engine.event_tables.layer_tables`) and $R_x[t] = \beta R_x[t-1] + 4u\,(\beta|d[t-1]| + |d[t]|
+ \theta |r' - r|) + \gamma_{n_{in}+1} \sum_e |\delta_e W_{i_e j}|$ the perturbation's share (its membrane
updates' roundings, and its matrix product's extra terms). A decision inside that (loose) bound goes to
the tight test when the tables carry it: the estimate $\hat v[t] + d_t[t]$ anchored on the baseline's own
float membrane $\hat v$, where $d_t$ also takes out the baseline's own known roundings (its update's slip
$\sigma[t]$ every step, its product's residual $\eta[t]$ where the input changed), against
$R_t[t] = \beta R_t[t-1] + \rho[t] + c(\beta|d_t[t-1]| + |d_t[t]| + \theta|r' - r|) + [\text{input changed
at } t]\,\gamma_{k_t}(M[t] + \text{mass})$ from the row's first event (before it the two computations are
the same; the tables define $\rho$, $M$, $\eta$ and $\sigma$), times $1 + 4u(T + 2)$ for the second-order
terms.
A decision the tight test takes flags the row (``shape``: the naive loop's outcome, which another batch
shape may round the other way); one inside both bounds marks the row as a tie, replayed by the caller.
"""

from __future__ import annotations

import numpy as np

from .event_arrays import most_added, rows_inserted
from .event_screens import one_event_screen, one_neuron_screen
from .kernel_compile import grown_events, jit_kernels, numba_available, plain_kernels, time_sorted

RESET_CODES = {"subtract": 0, "zero": 1, "none": 2}


def propagate_layer(offsets, ev_t, ev_i, ev_delta, sample, only, weight, membrane, spikes, bound, inverse_up,
                    inverse_down, up_by_neuron, down_by_neuron, beta, theta, drop, reset, c_op, c_sum, spread, slack,
                    capacity, recorded, rho, partial, residual, slip, gam, tight, c_est):
    r"""Spike changes of one LIF layer for every row (see the module docstring).

    Args:
        offsets: ``(P + 1,)`` int64: row ``p``'s input events are ``[offsets[p], offsets[p + 1])``.
        ev_t, ev_i, ev_delta: the input events (time, input neuron, change of the input), by row and time.
        sample: ``(P,)`` int64: the sample of each row (indexes the tables).
        only: ``(P,)`` int64: the one neuron of the layer whose spikes row ``p`` needs (the output column its
            caller reads), or -1 for all of them; the other neurons are neither screened nor scanned.
        weight: ``(n_in, n)`` float64.
        membrane, spikes, bound: ``(B, n, T)`` float64 baseline tables, neuron-major (a scan reads along time).
        inverse_up, inverse_down: ``(B, T, n)``: ``1 / reach`` where ``reach > 0``, else ``inf``, time-major (the
            screen reads along neurons), for the reach of an upward and of a downward flip (see the module
            docstring); ``up_by_neuron``, ``down_by_neuron``: the reaches themselves, ``(B, n, T)``.
        beta, theta: ``(n,)`` float64.
        drop: ``(n,)`` float64: what a reset by subtraction takes off the membrane ($\theta$; on the charged
            membrane of a layer that resets in the same step, $\beta \theta$).
        reset: 0 subtract, 1 zero, 2 none.
        c_op: the rounding factor of the membrane updates in the perturbation's share of the bound ($4u$).
        c_sum: that of the matrix product's extra terms ($\gamma_{n_{in} + 1}$).
        spread: the factor on the baseline's bound ($2 +$ the float64 estimate's own rounding).
        slack: how many spikes a row may add to one step's input before that step's sum has more terms
            than the bound allows for (more: a tie).
        capacity: initial size of the output event buffers.
        recorded, rho, partial, residual, slip: ``(B, n, T)`` float64: the baseline's own float membrane, the
            tight radius's update term $\rho$ and product summand bound $M$, the baseline's product residual
            $\eta$ and update slip $\sigma$ (see the module docstring); gam: ``(B, T)`` the product's $\gamma$ per
            step; tight: whether the tight test may decide.
        c_est: the float64 estimate's own rounding factor ($2^{-52}$).

    Returns:
        ``(offsets, t, j, delta, tie, shape)``: the layer's spike changes by row and time, the ``(P,)`` bool
        rows to recompute (a decision inside even the tight bound) and the ``(P,)`` bool rows decided by the
        tight test alone (the naive loop's outcome; another product shape may round the other way).

    Example:
        >>> import numpy as np
        >>> z = np.zeros((1, 2, 1))
        >>> out = propagate_layer(np.array([0, 1]), np.array([0]), np.array([0]), np.array([1.0]), np.array([0]),
        ...                       np.array([-1]), np.array([[2.0]]), z, z, z, np.full((1, 2, 1), np.inf),
        ...                       np.full((1, 2, 1), np.inf), np.full((1, 1, 2), -1.0), np.full((1, 1, 2), -1.0),
        ...                       np.array([0.5]), np.array([1.0]), np.array([1.0]), 0, 1e-7, 1e-7, 2.5, 8, 4,
        ...                       z, z, z, z, z, np.zeros((1, 2)), True, 2.0**-52)
        >>> out[0].tolist(), out[1].tolist(), out[3].tolist()
        ([0, 1], [0], [1.0])
    """
    n_rows = offsets.shape[0] - 1
    n_steps = membrane.shape[2]
    n_out = weight.shape[1]
    grow = 1.0 + c_op * (2.0 + 2.0 * n_steps) + c_sum
    out_offsets = np.zeros(n_rows + 1, dtype=np.int64)
    out_t = np.empty(max(capacity, 1), dtype=np.int64)
    out_j = np.empty(max(capacity, 1), dtype=np.int64)
    out_delta = np.empty(max(capacity, 1), dtype=np.float64)
    tie = np.zeros(n_rows, dtype=np.bool_)
    shape = np.zeros(n_rows, dtype=np.bool_)
    flag = np.zeros(1, dtype=np.bool_)
    scale_t = 1.0 + c_op * (n_steps + 2.0)
    # One row's changes before they are put in time order, and the scans' scratch: allocated here, once, as the
    # row loop (`_propagate_rows`) is compiled without reference counting and allocates nothing.
    row_t = np.empty(n_out * n_steps, dtype=np.int64)
    row_j = np.empty(n_out * n_steps, dtype=np.int64)
    row_delta = np.empty(n_out * n_steps, dtype=np.float64)
    per_step = np.zeros(n_steps + 1, dtype=np.int64)
    totals = np.empty(n_out, dtype=np.float64)
    totals_down = np.empty(n_out, dtype=np.float64)
    level = np.empty(n_out, dtype=np.float64)
    bulk = np.empty(n_out, dtype=np.float64)
    group_t = np.empty(n_steps, dtype=np.int64)  # a row's event times, and per neuron each one's summed kicks
    group_kicks = np.empty(n_steps, dtype=np.int64)
    group_change = np.empty((n_steps, n_out), dtype=np.float64)
    group_mass = np.empty((n_steps, n_out), dtype=np.float64)
    powers = np.empty((n_steps + 1, n_out), dtype=np.float64)  # powers[k, j] = beta[j] ** k
    for j in range(n_out):
        powers[0, j] = 1.0
        for k in range(n_steps):
            powers[k + 1, j] = powers[k, j] * beta[j]
    count = 0
    first = 0
    while first < n_rows:
        first, count = _propagate_rows(first, count, offsets, ev_t, ev_i, ev_delta, sample, only, weight, membrane,
                                       spikes, bound, inverse_up, inverse_down, up_by_neuron, down_by_neuron, beta,
                                       theta, drop, reset, c_op, c_sum, spread, slack, recorded, rho, partial, residual,
                                       slip, gam, tight, c_est, grow, scale_t, out_offsets, out_t, out_j, out_delta,
                                       tie, shape, flag, row_t, row_j, row_delta, per_step, totals, totals_down, level,
                                       bulk, powers, group_t, group_kicks, group_change, group_mass)
        if first < n_rows:  # the buffers are full: grown (doubling), and the rows go on from ``first``
            out_t, out_j, out_delta = grown_events(out_t, out_j, out_delta, count, n_out * n_steps)
    return out_offsets, out_t[:count], out_j[:count], out_delta[:count], tie, shape


def _propagate_rows(first, count, offsets, ev_t, ev_i, ev_delta, sample, only, weight, membrane, spikes, bound,
                    inverse_up, inverse_down, up_by_neuron, down_by_neuron, beta, theta, drop, reset, c_op, c_sum,
                    spread, slack, recorded, rho, partial, residual, slip, gam, tight, c_est, grow, scale_t,
                    out_offsets, out_t, out_j, out_delta, tie, shape, flag, row_t, row_j, row_delta, per_step, totals,
                    totals_down, level, bulk, powers, group_t, group_kicks, group_change, group_mass):
    """`propagate_layer`'s rows from ``first`` on, appended to ``out_*`` from ``count``: ``(the first row not
    done, the events written)``; a row stops it, undone, when its changes do not fit in ``out_*``."""
    n_rows = offsets.shape[0] - 1
    n_steps = membrane.shape[2]
    for p in range(first, n_rows):
        start = offsets[p]
        stop = offsets[p + 1]
        found = 0
        flag[0] = False
        if start < stop:
            lo = 0
            hi = weight.shape[1]
            if only[p] >= 0:
                lo = only[p]
                hi = only[p] + 1
            found = _scan_row(start, stop, sample[p], lo, hi, ev_t, ev_i, ev_delta, weight, membrane, spikes, bound,
                              inverse_up, inverse_down, up_by_neuron, down_by_neuron, beta, theta, drop, reset, c_op,
                              c_sum, spread, slack, grow, totals, totals_down, row_t, row_j, row_delta, recorded, rho,
                              partial, residual, slip, gam, tight, c_est, scale_t, flag, level, bulk, powers, group_t,
                              group_kicks, group_change, group_mass)
        if count + max(found, 0) > out_t.shape[0]:
            return p, count
        shape[p] = flag[0]
        if found < 0:
            tie[p] = True
            found = 0
        time_sorted(found, count, n_steps, row_t, row_j, row_delta, per_step, out_t, out_j, out_delta)
        count += found
        out_offsets[p + 1] = count
    return n_rows, count


def _scan_row(start, stop, b, lo, hi, ev_t, ev_i, ev_delta, weight, membrane, spikes, bound, inverse_up, inverse_down,
              up_by_neuron, down_by_neuron, beta, theta, drop, reset, c_op, c_sum, spread, slack, grow, totals,
              totals_down, row_t, row_j, row_delta, recorded, rho, partial, residual, slip, gam, tight, c_est, scale_t,
              flag, level, bulk, powers, group_t, group_kicks, group_change, group_mass):
    """The spike changes of one row's neurons ``lo .. hi - 1``, in neuron order, written to ``row_*``: their
    number, or -1 on a tie (``flag[0]`` set when a decision was taken by the tight test alone)."""
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
    if added > slack:
        return -1
    first_t = ev_t[start]
    last_t = ev_t[stop - 1]
    found = 0
    # The vectorised test, one pass over the neurons per event: can the summed, decaying kicks of this row's
    # events reach a threshold from below (the positive kicks, and every kick's rounding) or from above (the
    # negative ones)? (``inverse_*`` is 1 / reach, or inf where reach <= 0: never screened.)
    share = grow - 1.0
    if stop - start == 1:  # one event (a removed input spike): one pass, its kick is the difference itself
        one_event_screen(ev_t[start], ev_delta[start], weight[ev_i[start]], lo, hi, inverse_up[b, ev_t[start]],
                          inverse_down[b, ev_t[start]], grow, share, totals, totals_down, group_change[0],
                          group_mass[0])
        group_t[0] = ev_t[start]
        group_kicks[0] = 1
        n_groups = 1
    elif hi - lo == 1:  # one neuron (the output column a caller reads): the same sums, kept in registers
        n_groups = one_neuron_screen(start, stop, b, lo, ev_t, ev_i, ev_delta, weight, inverse_up, inverse_down,
                                      powers, reset, grow, share, totals, totals_down, group_t, group_kicks,
                                      group_change, group_mass)
    else:
        # One pass over the row's events, one group per timestep: each neuron's summed change and mass of the
        # step (what the scans below read), and the screen's sums.
        for j in range(lo, hi):
            totals[j] = 0.0
            totals_down[j] = 0.0
            level[j] = 0.0
            bulk[j] = 0.0
        n_groups = 0
        e = start
        last = ev_t[start]
        while e < stop:
            t = ev_t[e]
            group_t[n_groups] = t
            change_g = group_change[n_groups]  # one-dimensional views: plain strided loops over the neurons
            mass_g = group_mass[n_groups]
            up_t = inverse_up[b, t]
            down_t = inverse_down[b, t]
            kicks = 0
            while e < stop and ev_t[e] == t:
                delta = ev_delta[e]
                row = weight[ev_i[e]]
                if kicks == 0:  # the group's first event (0.0 + kick is kick)
                    for j in range(lo, hi):
                        kick = delta * row[j]
                        change_g[j] = kick
                        mass_g[j] = abs(kick)
                else:
                    for j in range(lo, hi):
                        kick = delta * row[j]
                        change_g[j] += kick
                        mass_g[j] += abs(kick)
                if reset == 1:  # a reset to zero may cut a kick short: each kick's own sign bounds the difference
                    for j in range(lo, hi):
                        kick = delta * row[j]
                        rise = max(kick, 0.0)
                        fall = max(-kick, 0.0)
                        totals[j] += (grow * rise + share * fall) * up_t[j]
                        totals_down[j] += (grow * fall + share * rise) * down_t[j]
                kicks += 1
                e += 1
            group_kicks[n_groups] = kicks
            if reset != 1:  # before a first flip the difference is the kicks' decayed sum itself: opposite kicks cancel
                decay = powers[t - last]
                for j in range(lo, hi):  # the reach from t on covers every step until the next event time
                    new_level = level[j] * decay[j] + change_g[j]
                    new_bulk = bulk[j] * decay[j] + mass_g[j]
                    level[j] = new_level
                    bulk[j] = new_bulk
                    up = (max(new_level, 0.0) + share * new_bulk) * up_t[j]
                    down = (max(-new_level, 0.0) + share * new_bulk) * down_t[j]
                    totals[j] = max(totals[j], up if up == up else np.inf)  # NaN (0 times inf): scanned
                    totals_down[j] = max(totals_down[j], down if down == down else np.inf)
            last = t
            n_groups += 1
    c_opt = c_op + 2.0 * c_est
    n_steps = membrane.shape[2]
    for j in range(lo, hi):
        if totals[j] < 1.0 and totals_down[j] < 1.0:  # NaN (a zero weight times an infinite inverse) is scanned
            continue
        bj = beta[j]
        th = theta[j]
        dj = drop[j]
        # First without the tight test's bookkeeping (``careful``); only a decision inside the loose bound reruns
        # the neuron with it (the same steps and values: the tight test never changes the estimate).
        saved = found
        careful = False
        for _attempt in range(2):
            retry = False
            d = 0.0  # the difference to the real anchor ``membrane``
            rx = 0.0
            dt = 0.0  # the difference to the baseline's own float membrane ``recorded`` (the tight test)
            rxt = 0.0
            g = 0  # the next group of events
            t = first_t
            previous = spikes[b, j, t - 1] if t > 0 else 0.0  # the perturbed row's spike at t - 1
            while t < n_steps:
                change = 0.0
                mass = 0.0
                kicks = 0
                if g < n_groups and group_t[g] == t:
                    change = group_change[g, j]
                    mass = group_mass[g, j]
                    kicks = group_kicks[g]
                    g += 1
                base_reset = spikes[b, j, t - 1] if t > 0 else 0.0
                flipped = abs(previous - base_reset)
                if reset == 0:
                    new = bj * d + change - (previous - base_reset) * dj
                    new_t = bj * dt + change - (previous - base_reset) * dj
                elif reset == 2:
                    new = bj * d + change
                    new_t = bj * dt + change
                elif previous == base_reset:
                    new = bj * (1.0 - base_reset) * d + change
                    new_t = bj * (1.0 - base_reset) * dt + change
                else:  # a flipped reset to zero: re-anchored on the baseline's membrane (real, and float)
                    before = membrane[b, j, t - 1]
                    new = bj * (1.0 - previous) * (before + d) - bj * (1.0 - base_reset) * before + change
                    new_t = 0.0
                    if careful:  # the float anchor exists only in the tight test's tables
                        before = recorded[b, j, t - 1]
                        new_t = bj * (1.0 - previous) * (before + dt) - bj * (1.0 - base_reset) * before + change
                rx = bj * rx + c_op * (bj * abs(d) + abs(new) + th * flipped) + c_sum * mass
                if careful:
                    # The baseline's own roundings are known and taken out of the difference: its update's slip and,
                    # where the input changed, its product's residual. The perturbed copy's are bounded: its
                    # update's (rho), and its product's where its input changed (the products are otherwise equal).
                    known = slip[b, j, t]
                    if kicks > 0:
                        known += residual[b, j, t]
                    new_t -= known
                    rxt = bj * rxt + rho[b, j, t] + c_opt * (bj * abs(dt) + abs(new_t) + th * flipped) + \
                        c_est * (abs(new_t) + 2.0 * abs(known))
                    if kicks > 0:
                        rxt += gam[b, t] * (partial[b, j, t] + mass) + c_est * mass * (kicks + 1)
                d = new
                dt = new_t
                estimate = membrane[b, j, t] + d
                radius = spread * bound[b, j, t] + rx
                if estimate - th > radius:
                    fired = 1.0
                elif th - estimate > radius:
                    fired = 0.0
                elif not tight:
                    return -1
                elif not careful:
                    retry = True
                    break
                else:
                    estimate = recorded[b, j, t] + dt
                    radius = rxt * scale_t + c_est * (abs(estimate) + th) + c_op * th
                    if estimate - th > radius:
                        fired = 1.0
                    elif th - estimate > radius:
                        fired = 0.0
                    else:
                        return -1
                    flag[0] = True
                base = spikes[b, j, t]
                if fired != base:
                    row_t[found] = t
                    row_j[found] = j
                    row_delta[found] = fired - base
                    found += 1
                previous = fired
                if fired == base and t + 1 < n_steps and \
                        (max(d, 0.0) * grow + max(-d, 0.0) * share + rx) * bj < up_by_neuron[b, j, t + 1] and \
                        (max(-d, 0.0) * grow + max(d, 0.0) * share + rx) * bj < down_by_neuron[b, j, t + 1]:
                    # What is left of the difference only decays and provably flips nothing before the next event.
                    if t >= last_t:
                        break
                    gap = group_t[g] - t - 1  # steps without an event: skipped, the difference decayed over them
                    if gap > 0:
                        decay = 1.0
                        for skipped in range(t + 1, t + 1 + gap):
                            factor = bj if reset != 1 else bj * (1.0 - spikes[b, j, skipped - 1])
                            if careful:  # no input change: the difference decays, less the baseline's slip
                                known = slip[b, j, skipped]
                                new_t = factor * dt - known
                                rxt = factor * rxt + rho[b, j, skipped] + c_opt * (factor * abs(dt) + abs(new_t)) + \
                                    c_est * (abs(new_t) + 2.0 * abs(known))
                                dt = new_t
                            decay *= factor
                        rx = bj ** gap * (rx + 2.0 * c_op * gap * abs(d))
                        d *= decay
                        t += gap
                        previous = spikes[b, j, t]
                t += 1
            if not retry:
                break
            found = saved
            careful = True
    return found


_HELPERS = {"_propagate_rows": _propagate_rows, "_scan_row": _scan_row, "one_event_screen": one_event_screen,
            "one_neuron_screen": one_neuron_screen,
            "time_sorted": time_sorted, "grown_events": grown_events}
_ALLOCATING = ("grown_events",)
_ENTRIES = {"propagate_layer": propagate_layer, "most_added": most_added, "rows_inserted": rows_inserted}
PYTHON_KERNELS = plain_kernels(globals(), _HELPERS, _ENTRIES)
_COMPILED: dict[str, object] = {}


def kernels(compiled: bool = True) -> dict:
    """The kernels by name: numba-compiled when ``compiled`` and numba is installed, else plain Python.

    Example:
        >>> [name in kernels(compiled=False) for name in ("propagate_layer", "most_added", "rows_inserted")]
        [True, True, True]
    """
    if not compiled or not numba_available():
        return PYTHON_KERNELS
    if not _COMPILED:
        _COMPILED.update(jit_kernels(globals(), _HELPERS, _ENTRIES, _ALLOCATING))
    return _COMPILED
