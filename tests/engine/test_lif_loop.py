"""The compiled LIF time loop gives the step function's bits, step by step, for every reset, beta, threshold
and dtype; and falls back to the step function where it does not apply."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
import torch
from conftest import require_module

from sc_neurocore.dynamics import LIFParameters, LIFState, lif_step
from sc_neurocore.engine.lif_loop import compiled_loop, run_neurons


def stepwise(layer, current):
    state = LIFState(torch.zeros(current.shape[0], current.shape[2], dtype=current.dtype))
    spikes, membranes = [], []
    for t in range(current.shape[1]):
        s, state = lif_step(current[:, t], state, layer.params)
        spikes.append(s)
        membranes.append(state.membrane)
    return torch.stack(spikes, 1), torch.stack(membranes, 1)


def layer_of(params):
    return SimpleNamespace(step=lif_step, params=params, initial_state=lambda c: LIFState(torch.zeros_like(c)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_compiled_loop_is_the_step_function_bit_for_bit(dtype, reset):
    require_module("numba", "fast")
    generator = torch.Generator().manual_seed(1)
    n = 23
    for beta, threshold in itertools.product([0.0, 0.7, 0.9, 1.0, "vector"], [1.0, 0.3, "vector"]):
        b = torch.rand(n, generator=generator, dtype=dtype) if beta == "vector" else beta
        th = torch.rand(n, generator=generator, dtype=dtype) + 0.2 if threshold == "vector" else threshold
        layer = layer_of(LIFParameters(b, th, reset))
        current = torch.randn(3, 40, n, generator=generator, dtype=dtype) * 0.7
        assert compiled_loop(layer, current)
        spikes, state = run_neurons(layer, current)
        expected_spikes, expected_membrane = stepwise(layer, current)
        assert spikes.dtype == dtype and (spikes != 0).any()
        assert torch.equal(spikes, expected_spikes) and torch.equal(state.membrane, expected_membrane), (beta, threshold)


def test_graded_or_same_step_reset_layers_take_the_step_function():
    current = torch.randn(2, 10, 5)
    for params in (LIFParameters(0.9, 1.0, graded=2.0), LIFParameters(0.9, 1.0, reset_delay=False)):
        layer = layer_of(params)
        assert not compiled_loop(layer, current)
        spikes, state = run_neurons(layer, current)
        expected_spikes, expected_membrane = stepwise(layer, current)
        assert torch.equal(spikes, expected_spikes) and torch.equal(state.membrane, expected_membrane)
