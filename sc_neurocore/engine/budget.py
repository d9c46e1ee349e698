"""How many perturbed copies fit in a forward pass: the memory budget and the chunk size it implies.

A budget is an upper bound on what one chunk keeps alive, but a chunk also has a fixed cost: the Python
loop over timesteps and layers dispatches the same number of torch calls whether it carries one row or a
thousand. Below a certain size a run spends most of its time on that overhead and crawls (a 1-row chunk
of a 784-128-10 network costs over ten times more per row than a 64-row one). So a budget too small to finish
well is raised to a *workable minimum* -- the bytes of the smallest chunk whose fixed cost is at most
`MAX_OVERHEAD` times its work, per the executors' cost model (`sc_neurocore.engine.cost`) -- with a
`BudgetWarning` saying so, instead of running for hours under the letter of the budget.
"""

from __future__ import annotations

import math
import numbers
import warnings

import torch

#: Default budget on CPU (bytes): large enough to batch thousands of perturbations of an MNIST-sized
#: network, small enough to leave room on a laptop or a 2-core CI runner.
DEFAULT_CPU_BUDGET = 512 * 2**20
#: Fraction of the free device memory used by default on CUDA.
CUDA_FREE_FRACTION = 0.5


def default_max_memory(device: torch.device) -> int:
    """The budget used when ``max_memory`` is ``None``: half the free memory on CUDA, 512 MiB on CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * CUDA_FREE_FRACTION)
    return DEFAULT_CPU_BUDGET


def check_max_memory(max_memory) -> int | None:
    """Validate a ``max_memory`` argument (bytes, or ``None`` for automatic)."""
    if max_memory is None:
        return None
    if not isinstance(max_memory, numbers.Integral) or isinstance(max_memory, bool) or max_memory <= 0:
        raise ValueError(f"max_memory: expected a positive number of bytes or None, got {max_memory!r}")
    return int(max_memory)


def bytes_per_row(n_steps: int, n_inputs: int, layer_sizes, itemsize: int) -> int:
    """Peak bytes one perturbed copy costs in a forward pass.

    Counted: the materialised input ``T x N``, and per neuron layer ``T x n`` input currents, ``2 x T x n``
    spikes (the per-step outputs and their stacked copy, both alive while stacking) and a membrane of
    ``n`` -- what a layer-by-layer simulation such as `LIFNetwork` keeps
    alive (measured by ``tests/reliability/test_memory.py``). Models without known layers count as one
    extra input-sized layer.
    """
    sizes = list(layer_sizes) or [n_inputs]
    return itemsize * (n_steps * n_inputs + sum(3 * n_steps * n + n for n in sizes))


#: The largest share of a chunk's time its fixed per-step cost may take, relative to its work: at the
#: workable minimum a run takes at most ``1 + MAX_OVERHEAD`` times its unconstrained time.
MAX_OVERHEAD = 1.0


class BudgetWarning(UserWarning):
    """``max_memory`` was too small to finish well and was raised to the workable minimum."""


def workable_rows(chunk_seconds: float, row_seconds: float, n_rows: int) -> int:
    """The fewest rows per chunk whose fixed cost ``chunk_seconds`` is at most `MAX_OVERHEAD` times their
    work (``row_seconds`` each), capped at ``n_rows``.

    Example:
        >>> workable_rows(chunk_seconds=3e-3, row_seconds=1e-4, n_rows=1000)
        30
        >>> workable_rows(chunk_seconds=3e-3, row_seconds=1e-4, n_rows=8)
        8
    """
    if row_seconds <= 0 or MAX_OVERHEAD == math.inf:
        return 1 if n_rows > 0 else 0
    return max(1, min(n_rows, math.ceil(chunk_seconds / (MAX_OVERHEAD * row_seconds))))


def workable_budget(max_memory: int, needed: int, what: str) -> int:
    """``max_memory``, or ``needed`` with a `BudgetWarning` when ``max_memory`` is below it.

    Args:
        max_memory: the budget in force (bytes).
        needed: the workable minimum of the executor about to run (bytes).
        what: the executor and its chunk, for the warning (e.g. ``"the batched path (64 rows per chunk)"``).

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     workable_budget(1_000, 5_000, "the batched path (4 rows per chunk)")
        5000
        >>> print(caught[0].message)  # doctest: +NORMALIZE_WHITESPACE
        max_memory: 1000 bytes is too small to run the batched path (4 rows per chunk) well; raised to its
        workable minimum of 5000 bytes. Pass at least that, or None for the automatic budget, to silence this
        warning.
    """
    if max_memory >= needed:
        return max_memory
    warnings.warn(f"max_memory: {max_memory} bytes is too small to run {what} well; raised to its workable "
                  f"minimum of {needed} bytes. Pass at least that, or None for the automatic budget, to "
                  "silence this warning.", BudgetWarning, stacklevel=3)
    return needed


def rows_per_chunk(max_memory: int, row_bytes: int, n_rows: int, min_rows: int = 1, what: str = "the batched path"
                   ) -> int:
    """How many rows to run in one forward pass under ``max_memory`` (at least ``min_rows``, at most
    ``n_rows``); a budget below ``min_rows`` rows is raised to them (see `workable_budget`).

    Example:
        >>> rows_per_chunk(10_000, row_bytes=1_000, n_rows=50)
        10
    """
    min_rows = max(1, min(min_rows, n_rows))
    budget = workable_budget(max_memory, min_rows * row_bytes, f"{what} ({min_rows} rows per chunk)")
    return max(min_rows, min(n_rows, budget // row_bytes))
