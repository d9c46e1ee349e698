"""Which executor `sc_neurocore.engine.execute` runs: a cost model, in seconds, of each one on a plan.

Each executor's time is modelled from the work it does, with per-unit costs measured on a 2-core x86 CPU
with one torch thread (``sc-neurocore bench`` records the real times next to these estimates):

* **batched**: every row is a full forward pass: ``rows x T x sum(n_in x n_out)`` multiply-adds at
  `BATCHED_MAC`, plus ``rows x T x sum(n)`` neuron updates at `BATCHED_NEURON`, plus one call per
  step and layer (`STEP_CALL`).
* **incremental**: the recorded baseline (one forward of the samples), then each row's suffix replay:
  about half the window, ``sum(n)`` neuron updates per step at `INCREMENTAL_NEURON`, and the
  replay loop's per-step calls for every chunk.
* **event**: the recorded baseline, the tables (a float64 product per layer), then per row and layer the
  screen over its neurons and the scanned steps at `EVENT_STEP` (compiled) or `PYTHON_STEP`
  (numba missing), plus the tie rows, recomputed by the model's own batched forward (their share from
  `TIE_RATE`).

The model picks the cheapest executor that can run the plan exactly; ties in the estimate go to the
simpler path. The constants are medians, not guarantees: forcing an executor (``engine=``) is always
possible, and the choice never changes the outputs outside a reported tie mask.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

#: Seconds per multiply-add of a batched forward pass (float32, one thread).
BATCHED_MAC = 6e-11
#: Seconds per neuron update of a batched forward pass (a step function's half-dozen elementwise ops).
BATCHED_NEURON = 5e-9
#: Seconds of torch dispatch per step and layer of a forward pass or replay.
STEP_CALL = 6e-5
#: Seconds per neuron update of the incremental replay (scattered rows, smaller ops).
INCREMENTAL_NEURON = 8e-9
#: Seconds per screened neuron or scanned step of the compiled event kernel.
EVENT_STEP = 1e-8
#: The same, running uncompiled (numba not installed).
PYTHON_STEP = 1e-6
#: Rows landing inside the rounding bound (recomputed by the model's forward) grow with the decisions a row
#: scans: share ``1 - exp(-TIE_RATE x layers x T x sum(n))``. Fitted on the benchmark workloads (R-MNIST 5.5%,
#: R-deep 43%, R-seed 1.3% of the saliency rows in float32).
TIE_RATE = 1e-5


class Shape(NamedTuple):
    """What the costs depend on: samples, rows, window, input width and layer widths."""

    samples: int
    rows: int
    steps: int
    n_inputs: int
    sizes: tuple[int, ...]

    @property
    def macs_per_step(self) -> int:
        widths = (self.n_inputs, *self.sizes)
        return sum(a * b for a, b in itertools.pairwise(widths))


def batched_seconds(shape: Shape, rows: int | None = None) -> float:
    """The generic batched path on ``rows`` rows (default: all of the plan's).

    Example:
        >>> batched_seconds(Shape(1, 1000, 25, 784, (128, 10))) > 0
        True
    """
    rows = shape.rows if rows is None else rows
    return rows * shape.steps * (shape.macs_per_step * BATCHED_MAC + sum(shape.sizes) * BATCHED_NEURON) \
        + shape.steps * len(shape.sizes) * STEP_CALL * max(1, rows // 4096 + 1)


def incremental_seconds(shape: Shape) -> float:
    """The incremental executor (baseline cache plus suffix replays).

    Example:
        >>> incremental_seconds(Shape(1, 1000, 25, 784, (128, 10))) > 0
        True
    """
    baseline = batched_seconds(shape, rows=shape.samples)
    replay = shape.rows * shape.steps / 2 * sum(shape.sizes) * INCREMENTAL_NEURON
    return baseline + replay + shape.steps * len(shape.sizes) * STEP_CALL * 3


def event_seconds(shape: Shape, compiled: bool = True) -> float:
    """The event engine (baseline, tables, screen and scans, tie rows).

    Example:
        >>> event_seconds(Shape(1, 1000, 25, 784, (128, 10))) < event_seconds(Shape(1, 1000, 25, 784, (128, 10)), False)
        True
    """
    step = EVENT_STEP if compiled else PYTHON_STEP
    baseline = batched_seconds(shape, rows=shape.samples)
    tables = 2 * shape.samples * shape.steps * shape.macs_per_step * BATCHED_MAC
    # Per row: a screen over every neuron, and about a fifth of them scanned for a third of the window.
    per_row = sum(shape.sizes) * step * (1 + shape.steps / 15)
    share = 1.0 - math.exp(-TIE_RATE * len(shape.sizes) * shape.steps * sum(shape.sizes))
    ties = batched_seconds(shape, rows=max(1, int(share * shape.rows)))
    return baseline + tables + shape.rows * per_row + ties


def cheapest(estimates: dict[str, float]) -> tuple[str, str]:
    """``(engine, reason)``: the executor with the smallest estimate, and the estimates as a sentence.

    Example:
        >>> cheapest({"batched": 2.0, "event": 0.5})[0]
        'event'
    """
    name = min(estimates, key=lambda key: estimates[key])
    told = ", ".join(f"{key} {1e3 * value:.1f} ms" for key, value in sorted(estimates.items(), key=lambda kv: kv[1]))
    return name, f"cost model: {told}"
