"""Kernels over the event engine's event arrays: rows given new events, and the most spikes a row adds.

Events are ``(offsets, t, j, delta)``: row ``p``'s are ``[offsets[p], offsets[p + 1])``, in time order. Plain
Python, compiled with `sc_neurocore.engine.event_kernels`.
"""

from __future__ import annotations

import numpy as np


def rows_inserted(offsets, ev_t, ev_j, ev_delta, picked, new_offsets, new_t, new_j, new_delta):
    """Events by row ``(offsets, t, j, delta)`` whose rows ``picked`` (increasing, each holding no event) get the
    events ``new_*`` (``new_offsets``: where each picked row's start, ``len(picked) + 1``), in one pass.

    Example:
        >>> import numpy as np
        >>> out = rows_inserted(np.array([0, 1, 1]), np.array([3]), np.array([0]), np.array([1.0]), np.array([1]),
        ...                     np.array([0, 2]), np.array([0, 4]), np.array([5, 6]), np.array([-1.0, 1.0]))
        >>> out[0].tolist(), out[1].tolist(), out[2].tolist()
        ([0, 1, 3], [3, 0, 4], [0, 5, 6])
    """
    n_rows = offsets.shape[0] - 1
    total = ev_t.shape[0] + new_t.shape[0]
    out_offsets = np.empty(n_rows + 1, dtype=np.int64)
    out_t = np.empty(total, dtype=np.int64)
    out_j = np.empty(total, dtype=np.int64)
    out_delta = np.empty(total, dtype=np.float64)
    out_offsets[0] = 0
    written = 0
    k = 0  # the next picked row
    for p in range(n_rows):
        if k < picked.shape[0] and picked[k] == p:
            start, stop, t_, j_, d_ = new_offsets[k], new_offsets[k + 1], new_t, new_j, new_delta
            k += 1
        else:
            start, stop, t_, j_, d_ = offsets[p], offsets[p + 1], ev_t, ev_j, ev_delta
        for e in range(start, stop):
            out_t[written] = t_[e]
            out_j[written] = j_[e]
            out_delta[written] = d_[e]
            written += 1
        out_offsets[p + 1] = written
    return out_offsets, out_t, out_j, out_delta


def most_added(offsets, ev_t, ev_delta):
    """The most spikes one row's events add to one step's input (its ``delta > 0`` events of one step; the
    events of a row are in time order).

    Example:
        >>> import numpy as np
        >>> most_added(np.array([0, 3]), np.array([1, 1, 2]), np.array([1.0, 1.0, -1.0]))
        2
    """
    most = 0
    for p in range(offsets.shape[0] - 1):
        e = offsets[p]
        while e < offsets[p + 1]:
            t = ev_t[e]
            here = 0
            while e < offsets[p + 1] and ev_t[e] == t:
                if ev_delta[e] > 0.0:
                    here += 1
                e += 1
            most = max(most, here)
    return most
