"""The event engine's rounding bounds hold: at every step a scan visits, the framework's own float membrane of
the perturbed copy (its forward on that copy alone) lies within the loose radius of the real-anchored
estimate and within the tight radius of the float-anchored one.

A decision test can only catch a bound that is too small where a membrane happens to land between the true
and the claimed radius, which random networks almost never do. This test checks the bounds themselves: it runs
a copy of the plain-Python kernel, made from its source with two lines added that log each scanned step's
estimates and radii (the tight state is followed from the first step, as a rerun would), and compares them with
the membranes of the naive forward.
"""

from __future__ import annotations

import inspect
import types

import numpy as np
import pytest
import torch

from sc_neurocore.engine import event, event_tables, event_kernels
from sc_neurocore.engine.compile import compile_model
from sc_neurocore.engine.incremental import stack_forward
from sc_neurocore.engine.plans import remove_each_spike
from sc_neurocore.models import LIFNetwork

# The lines of `_scan_row` the logging copy changes (the test fails loudly if the kernel no longer has them).
CAREFUL = "        careful = False\n"
STEP = "                d = new\n                dt = new_t\n"
LOGGED = ("                if careful:\n"
          "                    est = recorded[b, j, t] + dt\n"
          "                    LOG.append((ROW[0], j, t, d + membrane[b, j, t], spread * bound[b, j, t] + rx, est,\n"
          "                                rxt * scale_t + c_est * abs(est)))\n")
ROW_LOOP = "    for p in range(first, n_rows):\n"


def logging_kernel() -> types.ModuleType:
    """A copy of `event_kernels` (plain Python) whose scans follow the tight state from the first step and log
    ``(row, neuron, step, loose estimate, loose radius, tight estimate, tight radius)`` at every step."""
    source = inspect.getsource(event_kernels)
    for anchor in (CAREFUL, STEP, ROW_LOOP):
        assert source.count(anchor) == 1, f"the kernel's line {anchor!r} moved: update this test"
    source = source.replace(CAREFUL, "        careful = True\n").replace(STEP, STEP + LOGGED)
    source = source.replace(ROW_LOOP, ROW_LOOP + "        ROW[0] = p\n")
    source = source.replace("\nfrom .", "\nfrom sc_neurocore.engine.")  # its imports, absolute
    module = types.ModuleType("logging_event_kernels")
    module.__dict__.update(LOG=[], ROW=[0])
    exec(compile(source, "logging_event_kernels", "exec"), module.__dict__)  # noqa: S102 - the kernel's own source
    return module


@pytest.mark.parametrize("reset,beta", [("subtract", 0.9), ("zero", 0.9), ("none", 0.7), ("subtract", 1.0)])
def test_the_true_float_membrane_lies_within_both_radii(reset, beta):
    generator = torch.Generator().manual_seed(11)
    net = LIFNetwork([torch.randn(160, 48, generator=generator) * 0.3, torch.randn(48, 6, generator=generator) * 0.4],
                     beta=beta, reset=reset)
    x = (torch.rand(1, 20, 160, generator=generator) < 0.12).float()
    stack = compile_model(net)
    _, baseline = stack_forward(stack, x, record=True)
    tables = event_tables.layer_tables(stack, x, baseline, tight=True, alone_checked=True)
    plan = remove_each_spike(x)
    events = event.plan_events(stack, x, baseline, plan)
    truth = []  # each copy's float membranes, layer by layer, by its forward alone
    for p in range(len(plan)):
        copy = x.clone()
        copy[0, plan.timestep[p], plan.neuron[p]] = 0
        truth.append([layer.membrane[0].double().numpy() for layer in net.record(copy).layers])
    kernel = logging_kernel()
    tied = np.zeros(len(plan), dtype=bool)  # a tie row's later layers see incomplete events: not checked
    checked = 0
    for index, table in enumerate(tables):
        kernel.LOG.clear()
        result = kernel.propagate_layer(events.offsets, events.t, events.i, events.delta,
                                        plan.sample.numpy().astype(np.int64), np.full(len(plan), -1),
                                        *table.kernel_args(), 64, *table.tight_args())
        logged = np.array([entry for entry in kernel.LOG if not tied[entry[0]]])
        true = np.array([truth[int(p)][index][int(t), int(j)] for p, j, t in logged[:, :3]])
        assert (np.abs(true - logged[:, 3]) <= logged[:, 4]).all(), f"layer {index}: the loose bound fails"
        assert (np.abs(true - logged[:, 5]) <= logged[:, 6]).all(), f"layer {index}: the tight bound fails"
        checked += len(logged)
        tied |= result[4]
        events = event.Events(*result[:4])
    assert checked > 5000  # not vacuous: thousands of scanned steps, on both layers
