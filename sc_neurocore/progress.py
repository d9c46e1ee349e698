"""Progress shown on the terminal while a long step of a command runs (tqdm, on standard error).

A step whose amount of work is known up front gets a counting bar from its own code (the perturbation
engine, `explain_dataset`); a step that is one opaque call (a toolchain run, a batched explanation) is
wrapped in `step`, which shows its name and a clock that ticks while it runs, and leaves a line with the
time it took. Bars go to standard error, so a command's standard output (tables, reports) stays clean;
by default they appear only on a terminal, as tqdm decides; `SC_NEUROCORE_PROGRESS=1` shows them
anywhere (a CI log), `SC_NEUROCORE_PROGRESS=0` nowhere.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

#: How often a running step's clock is redrawn, in seconds.
TICK_SECONDS = 0.5


@contextlib.contextmanager
def step(description: str, *, enabled: bool | None = None, file: Any = None) -> Iterator[None]:
    """Show `description` and the elapsed time while the block runs.

    Args:
        description: what the step does, in a few words ("placing and routing").
        enabled: `True` always shows it, `False` never, `None` as `SC_NEUROCORE_PROGRESS` says (`1` or `0`),
            else only when `file` is a terminal.
        file: where to draw (default: standard error).

    Example:
        >>> import io
        >>> screen = io.StringIO()
        >>> with step("counting", enabled=True, file=screen):
        ...     total = sum(range(10))
        >>> "counting" in screen.getvalue()
        True
    """
    from tqdm.auto import tqdm

    if enabled is None and os.environ.get("SC_NEUROCORE_PROGRESS") in ("0", "1"):
        enabled = os.environ["SC_NEUROCORE_PROGRESS"] == "1"

    bar = tqdm(
        total=None,
        desc=description,
        bar_format="{desc}: {elapsed}",
        file=file or sys.stderr,
        disable=None if enabled is None else not enabled,
        leave=True,
    )
    finished = threading.Event()

    def tick() -> None:
        while not finished.wait(TICK_SECONDS):
            bar.refresh()

    clock = threading.Thread(target=tick, name=f"progress: {description}", daemon=True)
    clock.start()
    try:
        yield
    finally:
        finished.set()
        clock.join()
        bar.close()
