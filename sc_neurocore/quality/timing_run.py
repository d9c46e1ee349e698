"""The timing part of the report: train a network on `timing_task`, tune and score every method on it."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import torch

from .networks import Network, NetworkSpec
from .rivals import Method, describe
from .timing import TimingTask, separation, timing_task

#: The timing task of the report: 4 classes, 8 pattern neurons paired differently by each class.
TIMING_OPTIONS: dict[str, Any] = {"n_steps": 25, "n_pattern": 8, "n_noise": 24, "n_classes": 4, "n_distractors": 2,
                  "noise_rate": 0.05}
#: The network trained on it: one hidden layer, a faster leak than the digits networks (coincidences).
TIMING_NETWORK: dict[str, Any] = {"hidden": 64, "beta": 0.8}


class TimingRow(NamedTuple):
    """One method on the timing task: the setting chosen on the selection samples and the held-out score."""

    method: str
    setting: str
    separation: float
    n_undefined: int


class TimingRun(NamedTuple):
    """The timing part of the report."""

    rows: list[TimingRow]
    accuracy: float
    n_train: int
    n_select: int
    n_eval: int
    seconds: float


def _subset(task: TimingTask, rows: slice) -> TimingTask:
    return TimingTask(task.spikes[rows], task.labels[rows], task.planted[rows], task.distractor[rows], task.n_pattern)


def timing_rows(methods: list[Method], *, n_train: int = 2048, n_select: int = 32, n_eval: int = 64,
                epochs: int = 30, seed: int = 0) -> TimingRun:
    """Train a `32-64-4` LIF network (`TIMING_NETWORK`) on the timing task; each method explains the true class
    of held-out samples.

    Each method's setting is the one with the highest mean separation on the selection samples.

    Example:
        >>> from sc_neurocore.quality.rivals import methods
        >>> run = timing_rows(methods(captum=False, decays=(1.0,))[:1], n_train=32, n_select=2, n_eval=2, epochs=1)
        >>> run.rows[0].method
        'SpikeAttributor auto'
    """
    from ..data.train import train_on_spikes

    task = timing_task(n_train + n_select + n_eval, seed=seed, **TIMING_OPTIONS)
    train = _subset(task, slice(0, n_train))
    select = _subset(task, slice(n_train, n_train + n_select))
    held = _subset(task, slice(n_train + n_select, None))
    start = time.perf_counter()
    model = train_on_spikes(train.spikes, train.labels, epochs=epochs, seed=seed, **TIMING_NETWORK)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        accuracy = float((model(held.spikes).argmax(dim=1) == held.labels).to(torch.float64).mean())
    spec = NetworkSpec("timing task", 0, (TIMING_NETWORK["hidden"],), "count", epochs, TIMING_NETWORK["beta"])
    network = Network(spec, model, model.linear_weights(), accuracy, "trained", seconds,
                      (select.spikes, select.labels), (held.spikes, held.labels))
    rows = []
    for method in methods:
        def score(setting: dict[str, Any], part: TimingTask, method: Method = method) -> Any:
            return separation(method.build(network, setting)(part.spikes, part.labels), part)

        best = method.grid[0] if len(method.grid) == 1 else max(
            method.grid, key=lambda setting: float(score(setting, select).nanmean()))
        values = score(best, held)
        undefined = int(torch.isnan(values).sum())
        rows.append(TimingRow(method.name, describe(best), float(values.nanmean()), undefined))
    return TimingRun(rows, accuracy, n_train, n_select, n_eval, seconds)
