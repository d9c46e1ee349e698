"""How many CPU threads torch may use for the incremental executor's small per-step ops.

The incremental executor runs a loop over time whose every step is a handful of small tensor ops
(a few thousand elements). For ops that small, intra-op parallelism costs more than it gains: torch
wakes its thread pool on every op, and on a loaded machine (a 2-core CI runner, a laptop running other
work) a woken thread often waits for a core. Measured on a shared 2-core machine, such ops ran 30-50x
slower with two threads than with one. Large ops (a big first-layer matrix product, a CUDA kernel) are
unaffected by this policy.

Policy: on CPU, when the largest per-step op has fewer than `SMALL_OP_ELEMENTS` elements, run
single-threaded for the duration of the executor, then restore the caller's setting. The environment
variable ``SC_NEUROCORE_THREADS`` overrides it (a positive integer: that many threads; ``0``: leave
torch's setting alone).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: Per-step ops below this many elements run on one thread (a 128-neuron layer times ~500 rows).
SMALL_OP_ELEMENTS = 1 << 16
#: Largest per-step tensor (elements) the replay builds on CPU at once: 256 KiB of float32. Above about
#: that size glibc serves each temporary from fresh pages (mmap / heap trimming), and a step's dozen
#: temporaries then cost page faults: measured 8x slower per row at 1024 x 128 than at 512 x 128.
STEP_BLOCK_ELEMENTS = 1 << 16
#: Environment variable that overrides the policy.
THREADS_ENV = "SC_NEUROCORE_THREADS"


def threads_for(op_elements: int, device: torch.device | str = "cpu") -> int | None:
    """The torch thread count the policy picks for per-step ops of ``op_elements`` elements.

    Args:
        op_elements: elements of the largest tensor a single step computes.
        device: where the ops run; only CPU ops are affected.

    Returns:
        A thread count, or ``None`` to leave torch's setting as it is.

    Example:
        >>> threads_for(4096)
        1
        >>> threads_for(10**8) is None
        True
    """
    override = os.environ.get(THREADS_ENV)
    if override is not None and override.strip() != "":
        try:
            value = int(override)
        except ValueError:
            raise ValueError(f"{THREADS_ENV}: expected a non-negative integer, got {override!r}") from None
        if value < 0:
            raise ValueError(f"{THREADS_ENV}: expected a non-negative integer, got {override!r}")
        return value or None
    if torch.device(device).type != "cpu":
        return None
    return 1 if op_elements < SMALL_OP_ELEMENTS else None


@contextmanager
def thread_policy(op_elements: int, device: torch.device | str = "cpu") -> Iterator[int]:
    """Run the enclosed block with the thread count `threads_for` picks; restore it afterwards.

    Args:
        op_elements: elements of the largest per-step tensor of the block.
        device: where the ops run.

    Yields:
        The number of threads in effect inside the block.

    Example:
        >>> import torch
        >>> with thread_policy(1000) as n:
        ...     n
        1
    """
    previous = torch.get_num_threads()
    wanted = threads_for(op_elements, device)
    if wanted is None or wanted == previous:
        yield previous
        return
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(previous)


def step_block_rows(width: int, device: torch.device | str = "cpu") -> int:
    """How many replayed rows one per-step op should cover, for layers up to ``width`` neurons wide.

    On CPU, blocks of at most `STEP_BLOCK_ELEMENTS` elements (see there why); on other devices
    all rows at once (one kernel launch per op is what matters there).

    Args:
        width: the widest layer the step computes.
        device: where the ops run.

    Returns:
        A positive number of rows (very large off CPU).

    Example:
        >>> step_block_rows(128)
        512
    """
    if torch.device(device).type != "cpu":
        return 1 << 62
    return max(1, STEP_BLOCK_ELEMENTS // max(1, width))
