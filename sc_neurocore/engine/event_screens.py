"""The event kernel's narrow screens: a row with one event, and a row that needs one neuron.

The general screen of `sc_neurocore.engine.event_kernels` sums, per neuron and per direction, the decaying
kicks of a row's events against the reach tables (its module docstring gives the test). These two passes give
the same sums, in the same operations and order, for the two commonest narrow cases: a removed input spike
(one kick per neuron) and an output column (one neuron). Plain Python, compiled with the kernel.
"""

from __future__ import annotations

import numpy as np


def one_neuron_screen(start, stop, b, j, ev_t, ev_i, ev_delta, weight, inverse_up, inverse_down, powers, reset,
                       grow, share, totals, totals_down, group_t, group_kicks, group_change, group_mass):
    """The screen of one neuron ``j``: the general pass's groups and sums, for that neuron alone (the
    same operations in the same order); the number of groups.

    Example:
        >>> import numpy as np
        >>> totals, down = np.zeros(1), np.zeros(1)
        >>> groups = (np.zeros(2, dtype=np.int64), np.zeros(2, dtype=np.int64), np.zeros((2, 1)), np.zeros((2, 1)))
        >>> one_neuron_screen(0, 2, 0, 0, np.array([0, 1]), np.array([0, 0]), np.array([-1.0, -1.0]),
        ...                   np.array([[0.5]]), np.full((1, 2, 1), 0.5), np.full((1, 2, 1), 0.5), np.ones((3, 1)), 0,
        ...                   1.0, 0.0, totals, down, *groups)
        2
        >>> float(down[0]), groups[2][:, 0].tolist()  # two kicks of -0.5 sum to -1: half the downward reach 2
        (0.5, [-0.5, -0.5])
    """
    up_total = 0.0
    down_total = 0.0
    level = 0.0
    bulk = 0.0
    n_groups = 0
    e = start
    last = ev_t[start]
    while e < stop:
        t = ev_t[e]
        change = 0.0
        mass = 0.0
        kicks = 0
        while e < stop and ev_t[e] == t:
            kick = ev_delta[e] * weight[ev_i[e], j]
            change += kick
            mass += abs(kick)
            if reset == 1:  # as the general pass: each kick's own sign bounds the difference
                rise = max(kick, 0.0)
                fall = max(-kick, 0.0)
                up_total += (grow * rise + share * fall) * inverse_up[b, t, j]
                down_total += (grow * fall + share * rise) * inverse_down[b, t, j]
            kicks += 1
            e += 1
        group_t[n_groups] = t
        group_kicks[n_groups] = kicks
        group_change[n_groups, j] = change
        group_mass[n_groups, j] = mass
        if reset != 1:
            level = level * powers[t - last, j] + change
            bulk = bulk * powers[t - last, j] + mass
            up = (max(level, 0.0) + share * bulk) * inverse_up[b, t, j]
            down = (max(-level, 0.0) + share * bulk) * inverse_down[b, t, j]
            up_total = max(up_total, up if up == up else np.inf)
            down_total = max(down_total, down if down == down else np.inf)
        last = t
        n_groups += 1
    totals[j] = up_total
    totals_down[j] = down_total
    return n_groups


def one_event_screen(t, delta, row, lo, hi, up_t, down_t, grow, share, totals, totals_down, change, mass):
    """The screen of a row with one event ``delta`` of input ``row`` at step ``t``: each neuron's kick (its
    change and mass) and both directions' sums, in one pass (before a first flip the difference is the kick
    decaying, whatever the reset: the general pass's sums for one kick).

    Example:
        >>> import numpy as np
        >>> totals, down, change, mass = (np.zeros(2) for _ in range(4))
        >>> one_event_screen(0, -1.0, np.array([0.5, -0.25]), 0, 2, np.full(2, 2.0), np.full(2, 2.0), 1.0, 0.0,
        ...                  totals, down, change, mass)
        >>> change.tolist(), totals.tolist(), down.tolist()
        ([-0.5, 0.25], [0.0, 0.5], [1.0, 0.0])
    """
    for j in range(lo, hi):
        kick = delta * row[j]
        rise = max(kick, 0.0)
        fall = max(-kick, 0.0)
        change[j] = kick
        mass[j] = abs(kick)
        totals[j] = (grow * rise + share * fall) * up_t[j]  # NaN (a zero kick times inf) is scanned
        totals_down[j] = (grow * fall + share * rise) * down_t[j]
