"""How the event engine's kernels are compiled, and the pieces its kernels share.

A kernel module writes its kernels once, in plain Python over NumPy arrays. `plain_kernels` gives the
uncompiled copies (the fallback without numba), `jit_kernels` the numba-compiled ones.

Helpers that never allocate are compiled without numba's reference counting (``_nrt=False``): a call that
passes arrays then costs a few nanoseconds instead of an atomic increment and decrement per array, which on
a row loop calling a helper with some thirty arrays was more than most rows' own work. The helpers that
allocate (`grown_events`) and the kernels themselves, which allocate their results, keep it.
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np

#: The float64 estimates' own rounding factor, which every event kernel's radii add.
C_EST = 2.0**-52


def numba_available() -> bool:
    """Whether numba is installed (the ``fast`` extra).

    Example:
        >>> isinstance(numba_available(), bool)
        True
    """
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def plain_kernels(namespace: dict, helpers: dict, entries: dict) -> dict:
    """Plain-Python copies of the kernels ``entries`` (and of ``helpers``) whose calls to the helpers go to the
    plain-Python helpers, whatever the module globals ``namespace`` become once `jit_kernels` compiled them.

    Example:
        >>> def twice(x):
        ...     return 2 * x
        >>> def kernel(x):
        ...     return twice(x) + 1
        >>> plain_kernels({"twice": None}, {"twice": twice}, {"kernel": kernel})["kernel"](3)
        7
    """
    scope = dict(namespace)
    scope.update({name: types.FunctionType(function.__code__, scope, name) for name, function in helpers.items()})
    copies = {name: scope[name] for name in helpers}
    copies.update({name: types.FunctionType(function.__code__, scope, name) for name, function in entries.items()})
    return copies


def jit_kernels(namespace: dict, helpers: dict, entries: dict, allocating: tuple[str, ...] = ()) -> dict:
    """The helpers and the kernels compiled by numba, by name: the helpers first, each also bound in the module
    globals ``namespace``, through which the kernels call them (they must be the compiled ones). Helpers not
    named in ``allocating`` must not allocate: they are compiled without reference counting.

    Example (the functions must live in a module's file: numba caches what it compiles beside it):
        >>> from sc_neurocore.engine import event_kernels
        >>> entries = {"most_added": event_kernels.most_added}
        >>> compiled = jit_kernels(vars(event_kernels), {}, entries) if numba_available() else entries
        >>> int(compiled["most_added"](np.array([0, 2]), np.array([3, 3]), np.array([1.0, 1.0])))
        2
    """
    import numba

    counted = numba.njit(cache=True, error_model="numpy")
    without_counting: dict[str, Any] = {"_nrt": False}  # numba's switch for its runtime's reference counting
    uncounted = numba.njit(cache=True, error_model="numpy", **without_counting)
    compiled = {}
    for name, function in helpers.items():
        namespace[name] = compiled[name] = (counted if name in allocating else uncounted)(function)
    compiled.update({name: counted(function) for name, function in entries.items()})
    return compiled


def grown_events(out_t, out_j, out_delta, used, more):
    """Event buffers ``(t, j, delta)`` grown to hold ``more`` events beyond their first ``used`` (at least
    doubled), those kept.

    Example:
        >>> import numpy as np
        >>> t, j, delta = grown_events(np.array([4, 5]), np.array([1, 2]), np.array([0.5, -1.0]), 2, 3)
        >>> len(t), t[:2].tolist(), delta[:2].tolist()
        (5, [4, 5], [0.5, -1.0])
    """
    size = max(2 * out_t.shape[0], used + more)
    grown_t = np.empty(size, dtype=np.int64)
    grown_j = np.empty(size, dtype=np.int64)
    grown_delta = np.empty(size, dtype=np.float64)
    grown_t[:used] = out_t[:used]
    grown_j[:used] = out_j[:used]
    grown_delta[:used] = out_delta[:used]
    return grown_t, grown_j, grown_delta


def time_sorted(found, count, n_steps, row_t, row_j, row_delta, per_step, out_t, out_j, out_delta):
    """Append one row's ``found`` changes ``row_*`` at ``count`` of ``out_*``, in time order (a stable counting
    sort over ``n_steps``; ``per_step`` is scratch of ``n_steps + 1``): the next layer reads them by time.

    Example:
        >>> import numpy as np
        >>> out = np.zeros(2, dtype=np.int64), np.zeros(2, dtype=np.int64), np.zeros(2)
        >>> time_sorted(2, 0, 3, np.array([2, 0]), np.array([7, 8]), np.array([1.0, -1.0]),
        ...             np.zeros(4, dtype=np.int64), *out)
        >>> out[0].tolist(), out[1].tolist()
        ([0, 2], [8, 7])
    """
    if found == 0:
        return
    per_step[:] = 0
    for k in range(found):
        per_step[row_t[k] + 1] += 1
    for t in range(n_steps):
        per_step[t + 1] += per_step[t]
    for k in range(found):
        slot = count + per_step[row_t[k]]
        per_step[row_t[k]] += 1
        out_t[slot] = row_t[k]
        out_j[slot] = row_j[k]
        out_delta[slot] = row_delta[k]
