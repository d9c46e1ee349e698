"""The benchmark's inner-loop section: the ways the event engine's loop could run, timed on one workload.

Each path computes the exact saliency plan of one R-MNIST sample, is checked against the generic batched
path (outside the event engine's reported tie rows) before it is timed, and is reported with its median:

- the event engine with its numba-compiled kernels (`sc_neurocore.engine.event_kernels`, the `fast` extra);
- the same kernels uncompiled (plain Python), first layer only, timed on a slice of the rows and scaled;
- the incremental engine (pure torch: per-step replays of the suffix), and with `torch.compile` on its
  step function;
- the generic batched path.

A small C++ extension was not built: numba gives a compiled loop from PyPI wheels that `make` installs on a
fresh machine without a compiler toolchain.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import Tensor

from ..engine import event, event_kernels, event_tables
from ..engine.batched import run_plan
from ..engine.incremental import CompiledStack, run_incremental, stack_forward
from ..engine.plans import remove_each_spike
from .workloads import Workload, input_spikes, lif_network

SECTION = "Inner loop paths (exact saliency plan of one sample, LIFNetwork)"


def paths_section(workload: Workload, runs: int, timed, row, agreement, compile_step: bool = True) -> list:
    """The section's rows (``timed``, ``row`` and ``agreement`` are the suite's measuring helpers;
    ``compile_step=False`` leaves out torch.compile, whose first call takes tens of seconds)."""
    from ..engine.compile import compile_model

    net = lif_network(workload)
    spikes = input_spikes(workload)
    stack = compile_model(net)
    assert stack is not None  # an LIFNetwork always compiles
    plan = remove_each_spike(spikes)
    reference = run_plan(net, spikes, plan)
    case = f"{workload.name} / LIFNetwork"

    replayed = torch.zeros(len(plan), dtype=torch.bool)

    def event_engine() -> tuple[Tensor, Tensor]:
        _, baseline = stack_forward(stack, spikes, record=True)
        return event.run_events(stack, spikes, plan, baseline=baseline, tight=True, recomputed=replayed)

    outputs, tie = event_engine()
    same = agreement(outputs[~tie], reference[~tie])
    event_s, _, _ = timed(event_engine, runs)
    compiled = "numba" if event_kernels.numba_available() else "plain Python (numba missing)"
    rows = [row(SECTION, case, f"event engine, {compiled} kernels ({int(tie.sum())} tie rows, "
                f"{int(replayed.sum())} of them replayed)", event_s,
                runs, None, f"vs generic path: {same} outside the tie rows", 1.0)]

    _, baseline = stack_forward(stack, spikes, record=True)
    table = event_tables.layer_tables(stack, spikes, baseline, tight=True)[0]
    sliced = event.select(plan, torch.arange(min(50, len(plan))))
    events = event.plan_events(stack, spikes, baseline, sliced)
    python = event_kernels.kernels(compiled=False)["propagate_layer"]
    start = time.perf_counter()
    python(events.offsets, events.t, events.i, events.delta, sliced.sample.numpy(), np.full(len(sliced), -1),
           *table.kernel_args(), 64,
           *table.tight_args())
    scaled = (time.perf_counter() - start) * len(plan) / len(sliced)
    rows.append(row(SECTION, case, "event kernels uncompiled, first layer only (scaled from 50 rows)", scaled, 1,
                    None, "-", scaled / event_s))

    incremental_s, _, got = timed(lambda: run_incremental(stack, spikes, plan), runs)
    rows.append(row(SECTION, case, "incremental engine (torch ops)", incremental_s, runs, None,
                    agreement(got, reference), incremental_s / event_s))
    try:
        if not compile_step:
            raise NotImplementedError("left out of smoke runs")
        layers = tuple(layer._replace(step=torch.compile(layer.step, dynamic=True)) for layer in stack.layers)
        compiled_stack = CompiledStack(layers, stack.names, stack.readout)
        start = time.perf_counter()
        warm = run_incremental(compiled_stack, spikes, plan)
        first = time.perf_counter() - start
        seconds, _, _ = timed(lambda: run_incremental(compiled_stack, spikes, plan), runs)
        rows.append(row(SECTION, case, f"incremental engine, torch.compile'd step (first call {first:.1f} s)", seconds,
                        runs, None, agreement(warm, reference), seconds / event_s))
    except NotImplementedError:
        pass
    except Exception as error:  # noqa: BLE001 (a missing compiler toolchain is a result here)
        rows.append(row(SECTION, case, f"incremental engine, torch.compile'd step: failed ({type(error).__name__})",
                        float("nan"), 0, None, "-", float("nan")))
    batched_s, _, got = timed(lambda: run_plan(net, spikes, plan), runs)
    rows.append(row(SECTION, case, "generic batched path", batched_s, runs, None, agreement(got, reference),
                    batched_s / event_s))
    return rows
