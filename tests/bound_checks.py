"""The event engine's rounding bounds, checked against the truth: every step a kernel scans (or every decision
its tight test takes), the perturbed copy's own float membrane must lie within the radius the kernel used around
its estimate. Shared by the property tests of the charge-then-reset and the current-based layers (tests/engine)."""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable

import numpy as np
import torch

from sc_neurocore.engine import event, event_tables
from sc_neurocore.engine.incremental import stack_forward
from sc_neurocore.engine.lower import to_compiled_stack
from sc_neurocore.engine.plans import remove_each_spike

ROW_LOOP = "    for p in range(first, n_rows):\n"


def logging_copy(kernels: types.ModuleType, logged: dict[str, str]) -> types.ModuleType:
    """A plain-Python copy of the kernel module ``kernels`` that runs, after each line of ``logged`` (which must
    occur once: the test fails loudly if the kernel no longer has it), the statement it maps to, with the row
    being scanned in ``ROW[0]`` and empty lists ``LOG`` and ``TIGHT`` to append to."""
    source = inspect.getsource(kernels)
    for anchor in (*logged, ROW_LOOP):
        assert source.count(anchor) == 1, f"the kernel's line {anchor!r} moved: update this test"
    for anchor, statement in logged.items():
        source = source.replace(anchor, anchor + statement)
    source = source.replace(ROW_LOOP, ROW_LOOP + "        ROW[0] = p\n")
    source = source.replace("\nfrom .", "\nfrom sc_neurocore.engine.")  # its imports, absolute
    module = types.ModuleType(f"logging_{kernels.__name__.rsplit('.', 1)[-1]}")
    module.__dict__.update(LOG=[], TIGHT=[], ROW=[0])
    exec(compile(source, module.__name__, "exec"), module.__dict__)  # noqa: S102 - the kernel's own source
    return module


def worst_error(graph, x: torch.Tensor, charged: Callable, scan: Callable, tight: bool = False) -> tuple[int, float]:
    """``(entries checked, the largest |true - estimate| / radius)`` over the entries ``(row, neuron, step,
    estimate, radius)`` the kernel logs for the spike removals of ``x``, layer by layer: the true value is
    ``charged(layer, currents, states)`` ``(T, n)``, the float membrane the spikes are decided on, of the perturbed
    copy's own forward (by the stack, whose ops are the model's). ``scan(table, events, plan) -> (result, entries)``
    runs one layer's kernel; ``tight``: its tables have the tight test."""
    stack = to_compiled_stack(graph)
    _, baseline = stack_forward(stack, x, record=True)
    tables = event_tables.layer_tables(stack, x, baseline, tight=tight)
    plan = remove_each_spike(x)
    events = event.plan_events(stack, x, baseline, plan)
    truth = []  # each copy's float membranes, layer by layer, by the stack's forward on it alone
    for p in range(len(plan)):
        copy = x.clone()
        copy[0, plan.timestep[p], plan.neuron[p]] = 0
        _, alone = stack_forward(stack, copy, record=True)
        truth.append([charged(layer, alone.currents[index], alone.states[index])
                      for index, layer in enumerate(stack.layers)])
    tied = np.zeros(len(plan), dtype=bool)  # a tie row's later layers see incomplete events: not checked
    checked, worst = 0, 0.0
    for index, table in enumerate(tables):
        result, entries = scan(table, events, plan)
        logged = np.array([entry for entry in entries if not tied[entry[0]]]).reshape(-1, 5)
        true = np.array([truth[int(p)][index][int(t), int(j)] for p, j, t in logged[:, :3]])
        checked += len(logged)
        worst = max([worst, *(np.abs(true - logged[:, 3]) / logged[:, 4])])
        tied |= result[4]
        events = event.Events(*result[:4])
    return checked, worst


def kernel_scan(kernel: types.ModuleType, entry: str, log: str = "LOG") -> Callable:
    """``scan`` for `worst_error`: the logging ``kernel``'s function ``entry`` on every row, every neuron needed,
    and its ``log``."""
    def scan(table, events, plan):
        kernel.LOG.clear()
        kernel.TIGHT.clear()
        result = getattr(kernel, entry)(events.offsets, events.t, events.i, events.delta,
                                        plan.sample.numpy().astype(np.int64), np.full(len(plan), -1),
                                        *table.kernel_args(), 64, *table.tight_args())
        return result, list(getattr(kernel, log))

    return scan
