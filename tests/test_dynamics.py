"""The step functions: the equations in the module docstring, and agreement with snnTorch's Leaky."""

import pytest
import torch

from sc_neurocore.dynamics import (LIFParameters, LIFState, LIState, decay_weights, li_step, lif_step,
                                   trace_step)


def test_lif_step_subtract_reset_is_delayed_by_one_step():
    params = LIFParameters(beta=0.5, threshold=1.0, reset="subtract")
    state = LIFState(torch.zeros(1))
    spikes = []
    for current in [1.5, 0.0, 0.0]:
        s, state = lif_step(torch.tensor([current]), state, params)
        spikes.append(float(s))
    # v = 1.5 -> spike; next step: 0.5 * 1.5 + 0 - 1.0 = -0.25; then -0.125
    assert spikes == [1.0, 0.0, 0.0]
    assert float(state.membrane) == pytest.approx(-0.125)


def test_lif_step_zero_reset_and_no_reset():
    current = torch.tensor([2.0])
    s, state = lif_step(current, LIFState(torch.zeros(1)), LIFParameters(0.5, 1.0, "zero"))
    assert float(s) == 1.0
    _, state = lif_step(torch.tensor([0.25]), state, LIFParameters(0.5, 1.0, "zero"))
    assert float(state.membrane) == 0.25  # the fired membrane was zeroed before the leak
    _, state = lif_step(torch.tensor([0.25]), LIFState(torch.tensor([2.0])), LIFParameters(0.5, 1.0, "none"))
    assert float(state.membrane) == 1.25


def test_spike_needs_membrane_strictly_above_threshold():
    s, _ = lif_step(torch.tensor([1.0]), LIFState(torch.zeros(1)), LIFParameters(0.9, 1.0))
    assert float(s) == 0.0


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_lif_step_matches_snntorch_leaky_bit_for_bit(reset):
    from conftest import require_module

    snn = require_module("snntorch", "snntorch")
    torch.manual_seed(0)
    currents = torch.randn(30, 8, 16) * 0.8
    leaky = snn.Leaky(beta=0.8, threshold=0.7, reset_mechanism=reset)
    mem = leaky.init_leaky()
    state = LIFState(torch.zeros(8, 16))
    for current in currents:
        spk_ref, mem = leaky(current, mem)
        spk, state = lif_step(current, state, LIFParameters(torch.tensor(0.8), 0.7, reset))
        assert torch.equal(spk, spk_ref)
        assert torch.equal(state.membrane, mem)


def test_li_step_integrates_with_leak():
    out, state = li_step(torch.tensor([1.0]), LIState(torch.tensor([2.0])), 0.5)
    assert float(out) == 2.0 and float(state.membrane) == 2.0


def test_trace_after_T_steps_equals_decay_weighted_sum():
    torch.manual_seed(1)
    spikes = (torch.rand(40, 5) < 0.3).double()
    trace = torch.zeros(5, dtype=torch.float64)
    for s in spikes:
        trace = trace_step(s, trace, 0.9)
    expected = (decay_weights(40, 0.9, dtype=torch.float64)[:, None] * spikes).sum(0)
    torch.testing.assert_close(trace, expected, rtol=1e-12, atol=0)


def test_trace_step_works_on_integers():
    trace = torch.zeros(3, dtype=torch.int64)
    trace = trace_step(torch.tensor([1, 0, 1]), trace, 3)
    assert trace.tolist() == [3, 0, 3]


def test_decay_weights_exponents():
    w = decay_weights(4, 0.5, dtype=torch.float64)
    assert w.tolist() == [0.0625, 0.125, 0.25, 0.5]
