"""The exported standalone Verilog in iverilog against the integer reference, many trains per run.

The export holds the bitstream's registered `SB_MAC16` instances, simulated with yosys' iCE40 cell models
(4x slower in iverilog): the saturating configuration and the inlined-weights run use them, the two
larger batches the export's plain-Verilog multipliers (`dsp="behavioral"`, the same register stages); the
gate-level netlist (tests/fpga/test_gate_level.py) runs the instances on 100 more trains.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from conftest import require_module, require_tool
from fpga_bus import (CSR_MAP, assert_reads_match, explain_program, random_trains, random_weights,
                      run_iverilog)

from sc_neurocore.fpga import FixedPointSpec

CELL_DEFINES = ("NO_ICE40_DEFAULT_ASSIGNMENTS",)  # iverilog lacks default port values


def with_cell_models(folder):
    """yosys' iCE40 cell models (SB_MAC16), copied into the simulation folder."""
    import shutil

    from network_bench import cell_models

    return Path(shutil.copy(cell_models(), folder / "cells_sim.v"))

# 900 trains over three configurations; with test_gate_level and test_core_sim more than 1,000 in all.
CONFIGS = [
    pytest.param(13, 3, 8, 4, FixedPointSpec(decay=0.9), 450, "behavioral", id="13x3-T8-L4"),
    pytest.param(9, 2, 25, 8, FixedPointSpec(decay=0.95, weight_frac_bits=14), 300, "behavioral", id="9x2-T25-L8"),
    pytest.param(6, 2, 16, 5, FixedPointSpec(decay=1.0, trace_bits=7, frac_bits=3, decay_bits=3, weight_bits=5,
                                             weight_frac_bits=2), 150, "sb_mac16", id="saturating-L5-sb_mac16"),
]


@pytest.mark.toolchain
@pytest.mark.parametrize("n_inputs, n_outputs, n_steps, lanes, spec, n_trains, dsp", CONFIGS)
def test_exported_verilog_matches_reference(tmp_path, n_inputs, n_outputs, n_steps, lanes, spec, n_trains, dsp):
    require_tool("iverilog", "vvp")
    require_module("litex", "fpga")
    from sc_neurocore.fpga.core import cycles_per_run
    from sc_neurocore.fpga.export import export_verilog

    generator = torch.Generator().manual_seed(7 * n_inputs + n_steps)
    trains = random_trains(generator, n_trains, n_steps, n_inputs)
    weights = [random_weights(generator, n_inputs, n_outputs, spec) for _ in range(3)]
    program = explain_program(trains, weights, spec, lanes, cycles_per_run(n_inputs, n_steps, lanes))
    # allow_saturation: the saturating configuration checks the clamp bit for bit.
    source = export_verilog(tmp_path / "explainer.v", n_inputs, n_outputs, n_steps, lanes, spec, allow_saturation=True,
                            dsp=dsp)
    if dsp == "sb_mac16":
        assert "SB_MAC16 #(" in source.read_text()
        reads = run_iverilog(program, [source, with_cell_models(tmp_path)], tmp_path, defines=CELL_DEFINES)
    else:
        reads = run_iverilog(program, [source], tmp_path)
    assert program.n_trains == n_trains
    assert_reads_match(program, reads)


@pytest.mark.toolchain
def test_inlined_weights_need_no_loading(tmp_path):
    """Weights given to the exporter are in the weight RAM from configuration on."""
    require_tool("iverilog", "vvp")
    require_module("litex", "fpga")
    from fpga_bus import BusProgram

    from sc_neurocore.fpga.export import export_verilog
    from sc_neurocore.fpga.reference import hardware_importance, spike_memory_words

    spec = FixedPointSpec(decay=0.9)
    generator = torch.Generator().manual_seed(3)
    weights = random_weights(generator, 5, 2, spec)
    trains = random_trains(generator, 6, 7, 5)
    source = export_verilog(tmp_path / "inlined.v", 5, 2, 7, 2, spec, weights=weights)
    program = BusProgram()
    for train in trains:
        program.write("load_target", 0)
        program.write("load_address", 0)
        for word in spike_memory_words(train, 2).tolist():
            program.write("load_data", word)
        program.write("control", 1)
        program.poll("status", 2)
        importance = hardware_importance(train, weights, spec)
        for c in range(2):
            program.write("readout", c)
            for i in range(5):
                program.poll("status", 4)
                program.read("importance", int(importance[i, c]), f"output {c} input {i}")
                program.write("advance", 1)
        program.n_trains += 1
    assert_reads_match(program, run_iverilog(program, [source, with_cell_models(tmp_path)], tmp_path,
                                             defines=CELL_DEFINES))


def test_export_header_and_errors(tmp_path):
    require_module("litex", "fpga")
    from sc_neurocore.fpga.export import export_verilog

    spec = FixedPointSpec(decay=0.9)
    path = export_verilog(tmp_path / "core.v", 20, 3, 10, 4, spec, module_name="explainer_top")
    text = path.read_text()
    assert "module explainer_top (" in text and "$readmemh" not in text
    for address, name in enumerate(CSR_MAP):
        assert re.search(rf"^// +{address}: {name} \[", text, re.MULTILINE), name
    assert "D_int=29491/2^15" in text and "zero at configuration" in text
    # One registered SB_MAC16 per lane (main's were combinational: A_REG = B_REG = 0 after yosys' -dsp).
    assert text.count("SB_MAC16 #(") == 4 and "synth_ice40 -spram -top" in text and "synth_ice40 -dsp" not in text
    for parameter in ("A_REG", "B_REG", "TOPOUTPUT_SELECT", "BOTOUTPUT_SELECT"):
        assert len(re.findall(rf"\.{parameter}\s*\(1'd1\)", text)) == 4, parameter
    behavioral = export_verilog(tmp_path / "plain.v", 20, 3, 10, 4, spec, dsp="behavioral").read_text()
    assert "SB_MAC16" not in behavioral and "behavioral" in behavioral
    (tmp_path / "plain.v").unlink()
    assert list(tmp_path.iterdir()) == [path]  # one standalone file, no temporary left behind
    with pytest.raises(ValueError, match="target"):
        export_verilog(tmp_path / "x.v", 20, 3, 10, 4, spec, target="xc7")
    with pytest.raises(ValueError, match=r"weights: expected shape \(20, 3\)"):
        export_verilog(tmp_path / "x.v", 20, 3, 10, 4, spec, weights=torch.zeros(3, 20, dtype=torch.int64))
    with pytest.raises(ValueError, match="weights"):
        export_verilog(tmp_path / "x.v", 2, 1, 10, 4, spec, weights=torch.tensor([[40000], [0]]))
    with pytest.raises(ValueError, match="dsp"):
        export_verilog(tmp_path / "x.v", 20, 3, 10, 4, spec, dsp="lut")
    with pytest.raises(ValueError, match="module_name"):
        export_verilog(tmp_path / "x.v", 20, 3, 10, 4, spec, module_name="2bad")
    assert not (tmp_path / "x.v").exists()
