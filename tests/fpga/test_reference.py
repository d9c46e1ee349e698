"""The integer reference against plain-Python integer loops; SpikeAttributor(fixed_point=...) and export_fpga."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from conftest import require_module

from sc_neurocore.explain import SpikeAttributor
from sc_neurocore.fpga import FixedPointSpec, hardware_importance, hardware_traces, spike_contributions
from sc_neurocore.fpga.reference import (as_spike_bits, fixed_trace_step, importance_from_word,
                                         quantized_weight_matrix, spike_memory_words, weight_memory_words)

SPECS = [
    FixedPointSpec(decay=0.9),
    FixedPointSpec(decay=0.5, trace_bits=8, frac_bits=3, decay_bits=5),
    FixedPointSpec(decay=1.0, trace_bits=6, frac_bits=2, decay_bits=3),  # saturates
    FixedPointSpec(decay=0.97, trace_bits=12, frac_bits=7, decay_bits=9),
]


def python_trace(spikes: list[int], spec: FixedPointSpec) -> int:
    """One input's trace with Python integers, written from the spec's definition, independently."""
    trace = 0
    for spike in spikes:
        trace = min((spec.decay_int * (trace + spike * (1 << spec.frac_bits))) // (1 << spec.decay_bits),
                    (1 << spec.trace_bits) - 1)
    return trace


@pytest.mark.parametrize("spec", SPECS)
def test_traces_match_python_integers(spec):
    generator = torch.Generator().manual_seed(spec.trace_bits)
    rates = torch.rand(30, 1, 1, generator=generator)
    spikes = (torch.rand(30, 20, 9, generator=generator) < rates).to(torch.int64)
    traces = hardware_traces(spikes, spec)
    expected = [[python_trace(spikes[b, :, i].tolist(), spec) for i in range(9)] for b in range(30)]
    assert traces.dtype == torch.int64 and traces.tolist() == expected
    assert torch.equal(hardware_traces(spikes[3], spec), traces[3])  # (T, N) as a lone sample
    assert torch.equal(hardware_traces(spikes.to(torch.float32), spec), traces)


def test_floor_decays_to_zero_and_saturation_never_wraps():
    spec = FixedPointSpec(decay=0.9, trace_bits=8, frac_bits=4, decay_bits=4)
    lone = torch.zeros(60, 1, dtype=torch.int64)
    lone[0] = 1
    trace = torch.zeros(1, dtype=torch.int64)
    history = []
    for t in range(60):
        trace = fixed_trace_step(lone[t], trace, spec)
        history.append(int(trace))
    assert history[-1] == 0 and history == sorted(history, reverse=True)  # floor reaches 0, never sticks
    full = FixedPointSpec(decay=1.0, trace_bits=6, frac_bits=2, decay_bits=3)
    ones = torch.ones(40, 1, dtype=torch.int64)
    levels = [int(hardware_traces(ones[:t], full)) for t in range(1, 41)]
    assert levels == sorted(levels) and levels[-1] == full.trace_max  # climbs to the ceiling and stays


def test_spike_contributions_split_traces_exactly():
    spec = FixedPointSpec(decay=0.8, frac_bits=6)
    generator = torch.Generator().manual_seed(1)
    spikes = (torch.rand(8, 30, 12, generator=generator) < 0.4).to(torch.int64)
    contributions = spike_contributions(spikes, spec)
    assert torch.equal(contributions.sum(dim=1), hardware_traces(spikes, spec))
    assert bool((contributions[spikes == 0] == 0).all()) and bool((contributions >= 0).all())
    # A lone spike contributes exactly what the trace of that lone spike is.
    lone = torch.zeros(30, 12, dtype=torch.int64)
    lone[4, 2] = 1
    assert int(spike_contributions(lone, spec)[4, 2]) == int(hardware_traces(lone, spec)[2])
    # With decay 1 and no saturation every spike adds exactly one increment.
    exact = FixedPointSpec(decay=1.0)
    assert torch.equal(spike_contributions(spikes, exact), spikes * exact.spike_increment)


def test_spike_bits_and_weight_checks():
    with pytest.raises(ValueError, match="one bit per spike"):
        as_spike_bits(torch.tensor([0.0, 2.0]))
    with pytest.raises(ValueError, match="NaN"):
        as_spike_bits(torch.tensor([float("nan")]))
    with pytest.raises(TypeError, match="spikes"):
        as_spike_bits(np.zeros(3))
    spec = FixedPointSpec(decay=0.9, weight_bits=4, weight_frac_bits=2)
    spikes = torch.ones(3, 2, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"\[-8, 7\]"):
        hardware_importance(spikes, torch.tensor([[8], [0]]), spec)
    with pytest.raises(TypeError, match="integer"):
        hardware_importance(spikes, torch.zeros(2, 1), spec)
    with pytest.raises(ValueError, match="2 rows"):
        hardware_importance(spikes, torch.zeros(3, 1, dtype=torch.int64), spec)


def test_memory_images():
    generator = torch.Generator().manual_seed(2)
    spikes = (torch.rand(5, 11, generator=generator) < 0.5).to(torch.int64)
    for lanes in (1, 3, 4, 8):
        words = spike_memory_words(spikes, lanes)
        per_step = -(-11 // lanes)
        assert words.shape == (5 * per_step,)
        bits = (words[:, None] >> torch.arange(lanes)) & 1  # decode: word t*M + j, bit l = input j*L + l
        decoded = bits.reshape(5, per_step * lanes)
        assert torch.equal(decoded[:, :11], spikes) and int(decoded[:, 11:].sum()) == 0
    spec = FixedPointSpec(decay=0.9, weight_bits=8, weight_frac_bits=4)
    assert weight_memory_words(torch.tensor([[1, -1], [-128, 127]]), spec).tolist() == [1, 255, 128, 127]
    assert importance_from_word(0xFFFFFFFF) == -1 and importance_from_word(5) == 5


def test_fixed_point_attributor_is_the_hardware():
    spec = FixedPointSpec(decay=0.95, weight_frac_bits=10)
    rng = np.random.default_rng(42)
    spikes = (rng.random((6, 25, 40)) < 0.2).astype(np.float32)
    weights = [rng.standard_normal((40, 16)).astype(np.float32) * 0.3,
               rng.standard_normal((16, 10)).astype(np.float32) * 0.3]
    spikes_before = spikes.copy()
    targets = np.array([0, 3, 9, 3, 1, 5])
    result = SpikeAttributor(decay=0.95, fixed_point=spec).attribute(spikes, weights, output_neuron=targets)
    assert np.array_equal(spikes, spikes_before)
    matrix = quantized_weight_matrix([torch.from_numpy(w) for w in weights], spec)
    hardware = hardware_importance(torch.from_numpy(spikes), matrix, spec)  # (B, N, C)
    expected = hardware[torch.arange(6), :, torch.from_numpy(targets)].to(torch.float64) * spec.importance_scale
    assert result.spatial_importance().dtype == np.float64
    assert np.array_equal(result.spatial_importance(), expected.numpy())  # bit for bit
    assert np.all(result.attribution_map()[spikes == 0] == 0)
    single = SpikeAttributor(decay=0.95, fixed_point=spec).attribute(spikes[2], weights, output_neuron=9)
    assert np.array_equal(single.attribution_map(), result.attribution_map()[2])
    # Close to the float attribution, map entry by map entry.
    exact = SpikeAttributor(decay=0.95).attribute(spikes, weights, output_neuron=targets).attribution_map()
    assert np.abs(result.attribution_map() - exact).max() < 0.01


def test_fixed_point_attributor_errors():
    spec = FixedPointSpec(decay=0.9)
    with pytest.raises(ValueError, match="fixed_point: the spec's decay 0.9 differs from decay 0.8"):
        SpikeAttributor(decay=0.8, fixed_point=spec)
    with pytest.raises(ValueError, match="fixed_point.*linear"):
        SpikeAttributor(decay=0.9, mode="gated", fixed_point=spec)
    with pytest.raises(TypeError, match="fixed_point"):
        SpikeAttributor(decay=0.9, fixed_point=0.9)
    attributor = SpikeAttributor(decay=0.9, fixed_point=spec)
    with pytest.raises(ValueError, match="input_spikes: the hardware stores one bit per spike"):
        attributor.attribute(np.full((4, 3), 0.5), [np.ones((3, 2))])
    with pytest.raises(ValueError, match="weights: a weight of magnitude 9"):
        attributor.attribute(np.ones((4, 3)), [np.full((3, 2), 9.0)])


def test_tutorial_export_line(tmp_path, monkeypatch):
    require_module("litex", "fpga")
    monkeypatch.chdir(tmp_path)
    attr = SpikeAttributor(decay=0.95)
    attr.export_fpga("explain_ice40.v", target="ice40")
    text = (tmp_path / "explain_ice40.v").read_text()
    assert "Inputs N=784, outputs C=10, timesteps T=25, lanes L=8" in text
    assert "decay 0.95 -> D_int=31130/2^15" in text and "zero at configuration" in text
    assert os.listdir(tmp_path) == ["explain_ice40.v"]
    with pytest.raises(ValueError, match=r"target: expected one of \('ice40',\), got 'ecp5'"):
        attr.export_fpga("other.v", target="ecp5")


def test_export_with_weights_inlines_the_quantised_effective_weights(tmp_path):
    require_module("litex", "fpga")
    spec = FixedPointSpec(decay=0.9, weight_frac_bits=8)
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal((6, 4)) * 0.5, rng.standard_normal((4, 3)) * 0.5]
    path = SpikeAttributor(decay=0.9, fixed_point=spec).export_fpga(tmp_path / "w.v", weights=weights, n_steps=5,
                                                                    lanes=2)
    text = path.read_text()
    assert "Inputs N=6, outputs C=3, timesteps T=5, lanes L=2" in text and "inlined" in text
    matrix = quantized_weight_matrix([torch.from_numpy(w) for w in weights], spec)
    inlined = [int(line.split("'h")[1].rstrip(";"), 16) for line in text.splitlines() if "weight_ram[" in line
               and "'h" in line]
    assert inlined == weight_memory_words(matrix, spec).tolist()
    with pytest.raises(ValueError, match="n_inputs: expected 6"):
        SpikeAttributor(decay=0.9, fixed_point=spec).export_fpga(tmp_path / "x.v", weights=weights, n_inputs=7)


def test_fixed_point_attribution_chunks_samples(monkeypatch):
    import sc_neurocore.fpga.reference as reference

    spec = FixedPointSpec(decay=0.9)
    generator = torch.Generator().manual_seed(8)
    spikes = (torch.rand(7, 10, 5, generator=generator) < 0.5).to(torch.float32)
    chain = [torch.randn(5, 3, generator=generator)]
    targets = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    whole = reference.fixed_point_attribution(spikes, chain, targets, spec)
    monkeypatch.setattr(reference, "CONTRIBUTION_BUDGET_BYTES", 2 * 8 * 11 * 5)  # two samples per chunk
    assert torch.equal(reference.fixed_point_attribution(spikes, chain, targets, spec), whole)
