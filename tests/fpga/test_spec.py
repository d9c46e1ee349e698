"""FixedPointSpec: derived constants, validation, weight quantisation and the float-vs-fixed error bound."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from sc_neurocore.dynamics import trace_step
from sc_neurocore.explain import SpikeAttributor
from sc_neurocore.fpga import FixedPointSpec, hardware_traces


def test_derived_constants():
    spec = FixedPointSpec(decay=0.9)
    assert (spec.decay_int, spec.decay_bits, spec.spike_increment, spec.trace_max) == (29491, 15, 1024, 32767)
    assert spec.decay_fixed == 29491 / 32768
    assert (spec.weight_min, spec.weight_max, spec.importance_bits) == (-32768, 32767, 31)
    assert spec.importance_scale == 2.0 ** -22
    one = FixedPointSpec(decay=1.0, decay_bits=15)
    assert one.decay_int == 32768 and one.decay_fixed == 1.0  # 16 bits: still one SB_MAC16 operand
    assert FixedPointSpec(decay=0.5, decay_bits=3).decay_int == 4
    assert spec.with_decay(0.5) == FixedPointSpec(decay=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.trace_bits = 8  # type: ignore[misc]


@pytest.mark.parametrize("arguments, error, match", [
    (dict(trace_bits=16), ValueError, "trace_bits: a 16-bit trace plus a spike needs 17 bits, which overflows"),
    (dict(trace_bits=1), ValueError, "trace_bits"),
    (dict(trace_bits=8.0), TypeError, "trace_bits"),
    (dict(trace_bits=True), TypeError, "trace_bits"),
    (dict(frac_bits=15), ValueError, "frac_bits"),
    (dict(frac_bits=-1), ValueError, "frac_bits"),
    (dict(decay_bits=16), ValueError, "decay_bits"),
    (dict(decay_bits=0), ValueError, "decay_bits"),
    (dict(weight_bits=17), ValueError, "weight_bits"),
    (dict(weight_frac_bits=16), ValueError, "weight_frac_bits"),
    (dict(decay=0.0), ValueError, "decay"),
    (dict(decay=1.5), ValueError, "decay"),
    (dict(decay=float("nan")), TypeError, "decay"),
    (dict(decay="0.9"), TypeError, "decay"),
    (dict(decay=0.01, decay_bits=4), ValueError, "decay: 0.01 rounds to 0 with decay_bits=4"),
])
def test_validation(arguments, error, match):
    with pytest.raises(error, match=match):
        FixedPointSpec(**{"decay": 0.9, **arguments})


def test_quantize_weights():
    spec = FixedPointSpec(decay=0.9, weight_bits=8, weight_frac_bits=4)
    weights = torch.tensor([[0.5, -1.25], [7.9375, -8.0]])
    original = weights.clone()
    assert spec.quantize_weights(weights).tolist() == [[8, -20], [127, -128]]
    assert torch.equal(weights, original)
    assert spec.quantize_weights(torch.tensor([0.03125, 0.09375])).tolist() == [0, 2]  # half to even
    with pytest.raises(ValueError, match=r"weights: a weight of magnitude 8\.1 is outside the 8-bit signed range"):
        spec.quantize_weights(torch.tensor([1.0, -8.1]))
    with pytest.raises(ValueError, match="layer"):
        spec.quantize_weights(torch.tensor([float("nan")]), "layer")
    with pytest.raises(TypeError, match="weights"):
        spec.quantize_weights(np.zeros(3))


def float_traces(spikes: torch.Tensor, decay: float) -> torch.Tensor:
    """The float trace the attributor weighs spikes with, ``x = d (x + s)``, in float64."""
    trace = torch.zeros(spikes.shape[:-2] + spikes.shape[-1:], dtype=torch.float64)
    for t in range(spikes.shape[-2]):
        trace = trace_step(spikes[..., t, :].to(torch.float64), trace, decay)
    return trace


@pytest.mark.parametrize("spec, n_steps", [
    (FixedPointSpec(decay=0.9), 25),
    (FixedPointSpec(decay=0.95, frac_bits=6), 100),
    (FixedPointSpec(decay=0.7, frac_bits=4, decay_bits=6), 40),
    (FixedPointSpec(decay=1.0, frac_bits=9), 60),
])
def test_trace_error_bound_holds_and_is_meaningful(spec, n_steps):
    assert spec.never_saturates(n_steps)
    generator = torch.Generator().manual_seed(n_steps)
    rates = torch.rand(400, 1, 1, generator=generator)
    spikes = (torch.rand(400, n_steps, 64, generator=generator) < rates).to(torch.int64)
    spikes[0] = 1  # every step: the worst case of both error terms
    error = (float_traces(spikes, spec.decay) - hardware_traces(spikes, spec) / spec.spike_increment).abs()
    bound = spec.trace_error_bound(n_steps)
    assert float(error.max()) <= bound
    assert float(error.max()) >= 0.25 * bound  # the bound is not vacuous


def test_bound_would_fail_without_the_rounding_term():
    # A bound of the decay term alone is broken by floor rounding: the rounding term is needed.
    spec = FixedPointSpec(decay=0.9, frac_bits=3)
    spikes = torch.ones(1, 25, 1, dtype=torch.int64)
    error = float((float_traces(spikes, spec.decay) - hardware_traces(spikes, spec) / spec.spike_increment).abs())
    steps = torch.arange(1, 26, dtype=torch.float64)
    decay_term = float((0.9 ** steps - spec.decay_fixed ** steps).abs().sum())
    assert decay_term < error <= spec.trace_error_bound(25)


def test_never_saturates():
    spec = FixedPointSpec(decay=1.0)  # trace_max 32767, a spike = 1024
    assert spec.never_saturates(31) and not spec.never_saturates(32)
    assert FixedPointSpec(decay=0.95).never_saturates(10_000)
    with pytest.raises(ValueError, match="n_steps"):
        spec.never_saturates(0)


def test_importance_error_bound_against_float_attribution():
    spec = FixedPointSpec(decay=0.9, weight_frac_bits=10)
    generator = torch.Generator().manual_seed(5)
    spikes = (torch.rand(64, 25, 50, generator=generator) < 0.3).to(torch.float64)
    weights = torch.randn(50, 4, generator=generator, dtype=torch.float64) * 2
    targets = torch.randint(0, 4, (64,), generator=generator)
    exact = SpikeAttributor(decay=0.9).attribute(spikes, [weights], output_neuron=targets).spatial_importance()
    fixed = SpikeAttributor(decay=0.9, fixed_point=spec).attribute(spikes, [weights], output_neuron=targets)
    bound = spec.importance_error_bound(25, weights.T[targets])  # (B, N): each sample's target column
    error = (exact - fixed.spatial_importance()).abs()
    assert bool((error <= bound).all())
    assert float((error / bound).max()) > 0.1
