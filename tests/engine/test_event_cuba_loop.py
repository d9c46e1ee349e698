"""The compiled time loop of a current-based (snnTorch `Synaptic`) layer gives `synaptic_step`'s bits, step by
step, for every reset, alpha, beta, threshold and dtype; and leaves what it does not model to the step
function (`sc_neurocore.engine.lif_loop.run_neurons`, kernel `sc_neurocore.engine.synaptic_loop`)."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
import torch
from conftest import require_module

from sc_neurocore.dynamics import SynapticParameters, synaptic_initial_state, synaptic_step
from sc_neurocore.engine.lif_loop import compiled_loop, run_neurons


def stepwise(layer, current):
    state = synaptic_initial_state(current[:, 0])
    states = []
    for t in range(current.shape[1]):
        _, state = synaptic_step(current[:, t], state, layer.params)
        states.append(state)
    return [torch.stack(field, 1) for field in zip(*states, strict=True)]


def layer_of(params):
    return SimpleNamespace(step=synaptic_step, params=params, initial_state=synaptic_initial_state)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_compiled_synaptic_loop_is_the_step_function_bit_for_bit(dtype, reset):
    require_module("numba", "fast")
    generator = torch.Generator().manual_seed(2)
    n = 17
    values = [0.0, 0.7, 1.0, "tensor", "vector"]
    for alpha, beta, threshold in itertools.product(values, values, [1.0, "vector"]):
        def draw(value, low=0.0):
            if value == "vector":
                return torch.rand(n, generator=generator, dtype=dtype) + low
            return torch.tensor(0.8, dtype=dtype) if value == "tensor" else value
        layer = layer_of(SynapticParameters(draw(alpha), draw(beta), draw(threshold, 0.2), reset))
        current = torch.randn(2, 30, n, generator=generator, dtype=dtype) * 0.6
        assert compiled_loop(layer, current, synaptic=True)
        spikes, state = run_neurons(layer, current)
        expected = stepwise(layer, current)
        assert (spikes != 0).any() and torch.equal(spikes, expected[2])
        assert all(torch.equal(got, want) for got, want in zip(state, expected, strict=True)), (alpha, beta, threshold)


def test_what_the_synaptic_loop_does_not_model_takes_the_step_function():
    current = torch.randn(2, 10, 5)
    for params in (SynapticParameters(graded=2.0), SynapticParameters(reset_delay=False),
                   SynapticParameters(recurrent=lambda spikes: spikes)):
        layer = layer_of(params)
        assert not compiled_loop(layer, current, synaptic=True)
        spikes, state = run_neurons(layer, current)
        expected = stepwise(layer, current)
        assert torch.equal(spikes, expected[2]) and all(torch.equal(a, b) for a, b in zip(state, expected, strict=True))
