"""The yosys ``synth_ice40`` netlist of the exported core, simulated with yosys' iCE40 cell models.

The small configuration keeps synthesis and simulation short; its memories are steered to the primitives
the full 784-input build uses (trace and spike RAMs in ``SB_RAM40_4K``, the weight RAM in
``SB_SPRAM256KA``) so that the netlist exercises the same cells: block RAM, SPRAM and one ``SB_MAC16`` per
lane, each with its A/B input registers and its output register (every DSP path timed by nextpnr;
main's core left them combinational, `A_REG = B_REG = 0`, which this test refuses).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import require_module, require_tool
from fpga_bus import assert_reads_match, explain_program, random_trains, random_weights, run_iverilog

from sc_neurocore.fpga import FixedPointSpec

N_INPUTS, N_OUTPUTS, N_STEPS, LANES = 12, 2, 6, 3
N_TRAINS = 100


def cell_models() -> Path:
    """yosys' iCE40 simulation models, in the data folder beside the installed yosys (``bin/../share/yosys``)."""
    models = Path(shutil.which("yosys")).resolve().parent.parent / "share" / "yosys" / "ice40" / "cells_sim.v"
    assert models.is_file(), f"yosys' iCE40 cell models are not at {models}"
    return models


@pytest.mark.toolchain
@pytest.mark.slow
def test_gate_level_netlist_matches_reference(tmp_path):
    require_tool("yosys", "iverilog", "vvp")
    require_module("litex", "fpga")
    from sc_neurocore.fpga.core import cycles_per_run
    from sc_neurocore.fpga.export import export_verilog

    spec = FixedPointSpec(decay=0.9)
    from sc_neurocore.fpga.dsp import dsp_registration

    source = export_verilog(tmp_path / "core.v", N_INPUTS, N_OUTPUTS, N_STEPS, LANES, spec)
    # As the bitstream build: the SB_MAC16s are registered instances, so no -dsp (see sc_neurocore.fpga.dsp).
    script = ("read_verilog core.v; "
              'setattr -set ram_style "block" m:*trace_ram* m:*spike_ram*; '
              'setattr -set ram_style "huge" m:*weight_ram*; '
              "synth_ice40 -spram -top trace_explainer; "
              "tee -o cells.txt stat; write_verilog -noattr netlist.v; write_json netlist.json")
    subprocess.run(["yosys", "-q", "-p", script], cwd=tmp_path, check=True, capture_output=True, text=True)
    cells = dict(re.findall(r"^\s+(SB_\w+)\s+(\d+)$", (tmp_path / "cells.txt").read_text(), re.MULTILINE))
    assert int(cells.get("SB_MAC16", 0)) == LANES, cells  # one decay multiplier per lane, in a DSP
    assert dsp_registration(tmp_path / "netlist.json") == (LANES, True)  # A_REG = B_REG = 1, output registered
    assert int(cells.get("SB_RAM40_4K", 0)) == LANES + 1, cells  # a trace RAM per lane + the spike RAM
    assert int(cells.get("SB_SPRAM256KA", 0)) == 1, cells  # the weight RAM
    assert source.exists()

    generator = torch.Generator().manual_seed(11)
    trains = random_trains(generator, N_TRAINS, N_STEPS, N_INPUTS)
    weights = [random_weights(generator, N_INPUTS, N_OUTPUTS, spec) for _ in range(2)]
    program = explain_program(trains, weights, spec, LANES, cycles_per_run(N_INPUTS, N_STEPS, LANES))
    models = tmp_path / "cells_sim.v"
    shutil.copy(cell_models(), models)
    reads = run_iverilog(program, [tmp_path / "netlist.v", models], tmp_path,
                         defines=("NO_ICE40_DEFAULT_ASSIGNMENTS",))  # iverilog lacks default port values
    assert program.n_trains == N_TRAINS
    assert_reads_match(program, reads)
