"""Which executor `sc_neurocore.engine.execute` runs: a cost model, in seconds, of each one on a plan.

Each executor's time is modelled from the work it does, with per-unit costs measured on a 2-core x86 CPU
with one torch thread (``sc-neurocore bench`` records the real times next to these estimates):

* **batched**: every row is a full forward pass: ``rows x T x sum(n_in x n_out)`` multiply-adds at
  `BATCHED_MAC`, plus ``rows x T x sum(n)`` neuron updates at `BATCHED_NEURON`, plus one call per
  step and layer (`STEP_CALL`).
* **incremental**: the recorded baseline (one forward of the samples), then each row's suffix replay:
  about half the window, ``sum(n)`` neuron updates per step at `INCREMENTAL_NEURON`, and the
  replay loop's per-step calls for every chunk.
* **event**: a fixed cost per call (`EVENT_FIXED`: tables, events, kernel calls), the recorded forward
  (its LIF time loops compiled) and the float64 tables, then per row the first layer's screen and scans
  and, above it, every neuron scanned over the window, at `EVENT_STEP` (compiled) or `PYTHON_STEP`
  (numba missing), plus the rows decided inside the tight rounding bound, replayed from their first
  such layer (`REPLAY_ROW` each; their share from `TIE_RATE`), and for a membrane readout every row's
  output layer replayed (`MEMBRANE_REPLAY_STEP` a step). A current-based layer (snnTorch `Synaptic`, Norse
  `LIFCell`, `sc_neurocore.engine.cuba`) is costed as a LIF layer: its scan step, two states and two bounds, measured
  6.3 ns against a LIF layer's 5.9 ns (medians, a 784-128 layer with every pair scanned).

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
#: Seconds of one event-engine call beyond its kernels (tables, events, the Python between them).
EVENT_FIXED = 1e-3
#: Seconds per replayed tie row (its changed rows' products in the naive call shapes, the compiled loops).
REPLAY_ROW = 5e-5
#: Seconds per step of a row's output layer replayed for a membrane readout (a product call in the naive
#: loop's call shape for each distinct changed row, and the step's ops): the event engine replays every row whose
#: input to it changed. Measured 0.6 us on Norse's LIFCell + LICell tutorial network at 784-128-10, T = 25
#: (2,557 distinct rows of 8,375 changed ones).
MEMBRANE_REPLAY_STEP = 0.6e-6
#: Rows landing inside the tight rounding bound (replayed) grow with the decisions a row scans: share
#: ``1 - exp(-TIE_RATE x layers x T x sum(n))``. Fitted on the benchmark workloads (R-MNIST 1.1%, R-seed 1.0%,
#: R-deep 26% of the saliency rows in float32).
TIE_RATE = 3e-6


class Shape(NamedTuple):
    """What the costs depend on: samples, rows, window, input width, layer widths, the input changes
    (events) of an average row, whether the caller reads one output column per row (the event engine
    then scans one output neuron), and whether the readout is a membrane (the event engine then replays
    the output layer of every row)."""

    samples: int
    rows: int
    steps: int
    n_inputs: int
    sizes: tuple[int, ...]
    events: float = 1.0
    one_column: bool = False
    membrane: bool = False

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
    # The recorded forward and the float64 tables: a few products per layer, compiled loops over the neurons.
    forward = shape.samples * shape.steps * (3 * shape.macs_per_step * BATCHED_MAC + 10 * sum(shape.sizes) * step)
    # Per row: the first layer's screen and about a fifth of the window scanned; above it, the whole window.
    first, *above = shape.sizes
    if above and shape.one_column:
        above[-1] = 1
    per_row = step * (first * (1 + shape.steps / 5) * max(1.0, shape.events) + shape.steps * sum(above))
    share = 1.0 - math.exp(-TIE_RATE * len(shape.sizes) * shape.steps * sum(shape.sizes))
    replayed = shape.steps * MEMBRANE_REPLAY_STEP if shape.membrane else 0.0
    return EVENT_FIXED + forward + shape.rows * (per_row + share * REPLAY_ROW + replayed)


def cheapest(estimates: dict[str, float]) -> tuple[str, str]:
    """``(engine, reason)``: the executor with the smallest estimate, and the estimates as a sentence.

    Example:
        >>> cheapest({"batched": 2.0, "event": 0.5})[0]
        'event'
    """
    name = min(estimates, key=lambda key: estimates[key])
    told = ", ".join(f"{key} {1e3 * value:.1f} ms" for key, value in sorted(estimates.items(), key=lambda kv: kv[1]))
    return name, f"cost model: {told}"
