"""The trace explainer's defects found in review (issue 14), each with a test that fails on the old main.

* a `readout` past the last output neuron returned aliased values with `ready = 1` and no error;
* a spike word past the spike RAM silently overwrote word 0;
* `export_fpga(weights=...)` of a design needing more block RAM than the UP5K has was not checked;
* a trace that saturates within `n_steps` was exported silently;
* the driver's one-burst readout could never run: `status` sat after `importance` in the CSR map.

(The fit-failure message and the build's saturation check are in test_build.py; the registered DSPs
and the network on chip in the test_network_* files.)
"""

from __future__ import annotations

import pytest
import torch
from conftest import require_module
from fpga_bus import ADDRESS, BusProgram, run_migen

from sc_neurocore.fpga import FixedPointSpec

N_INPUTS, N_OUTPUTS, N_STEPS, LANES = 6, 2, 3, 2
SPEC = FixedPointSpec(decay=0.5)
READY, READOUT_ERROR, LOAD_ERROR = 4, 8, 16


def core():
    from sc_neurocore.fpga.core import StandaloneTraceExplainer

    return StandaloneTraceExplainer(N_INPUTS, N_OUTPUTS, N_STEPS, LANES, SPEC)


def load(program, target, words):
    program.write("load_target", target)
    program.write("load_address", 0)
    for word in words:
        program.write("load_data", word)


def test_readout_past_the_last_output_sets_an_error_and_never_ready():
    require_module("litex", "fpga")
    program = BusProgram()
    load(program, 1, [1] * (N_INPUTS * N_OUTPUTS))
    load(program, 0, [3] * (N_STEPS * 3))
    program.write("control", 1)
    program.poll("status", 2)
    program.write("readout", N_OUTPUTS)  # one past the last output neuron
    for _ in range(30):
        program.read("status", None)
    program.write("readout", 1)  # a valid readout clears the error
    program.poll("status", READY)
    program.read("status", None)
    reads = run_migen(program, core())
    stuck = reads[:30]
    assert all(word & READOUT_ERROR and not word & READY for word in stuck)
    assert not reads[-1] & READOUT_ERROR and reads[-1] & READY


def test_a_spike_word_past_the_ram_is_dropped_not_wrapped():
    require_module("litex", "fpga")
    from sc_neurocore.fpga.reference import hardware_importance, spike_memory_words

    train = torch.tensor([[1, 0, 1, 0, 1, 0], [0, 1, 1, 0, 0, 1], [1, 1, 0, 0, 0, 0]])
    weights = torch.arange(N_INPUTS * N_OUTPUTS).reshape(N_INPUTS, N_OUTPUTS) - 5
    program = BusProgram()
    load(program, 1, (weights.reshape(-1) & 0xFFFF).tolist())
    load(program, 0, [*spike_memory_words(train, LANES).tolist(), 0])  # one word too many
    program.read("status", None)
    program.write("control", 1)
    program.poll("status", 2)
    program.write("readout", 0)
    expected = hardware_importance(train, weights, SPEC)[:, 0]
    for i in range(N_INPUTS):
        program.poll("status", READY)
        program.read("importance", int(expected[i]))
        program.write("advance", 1)
    reads = run_migen(program, core())
    assert reads[0] & LOAD_ERROR
    assert [r - (1 << 32) if r >> 31 else r for r in reads[1:]] == expected.tolist()


def test_export_refuses_a_design_that_does_not_fit_and_a_saturating_trace(tmp_path):
    require_module("litex", "fpga")
    from sc_neurocore.fpga.export import export_verilog

    weights = torch.zeros(784, 10, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"does not fit: needs 44 of 30 BRAM"):
        export_verilog(tmp_path / "big.v", 784, 10, 25, 8, FixedPointSpec(decay=0.9), weights=weights)
    with pytest.raises(ValueError, match="saturates within 100 steps"):
        export_verilog(tmp_path / "hot.v", 16, 2, 100, 2, FixedPointSpec(decay=1.0))
    assert not list(tmp_path.iterdir())
    # The tutorial's export (no inlined weights, weights at run time) still fits and is written.
    assert export_verilog(tmp_path / "ok.v", 784, 10, 25, 8, FixedPointSpec(decay=0.9)).exists()


def test_status_sits_just_before_importance_so_one_burst_reads_both():
    require_module("litex", "fpga")
    from sc_neurocore.fpga.core import CSR_MAP

    assert CSR_MAP.index("importance") == CSR_MAP.index("status") + 1
    assert CSR_MAP.index("readout_index") == CSR_MAP.index("status") + 2
    assert ADDRESS["importance"] == ADDRESS["status"] + 1
    assert tuple(register.name for register in core().explainer.get_csrs()) == CSR_MAP
