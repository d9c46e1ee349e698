"""The yosys `synth_ice40` netlist of the network core, simulated with yosys' iCE40 cell models.

It checks what the bitstream relies on: every lane multiplier is an `SB_MAC16` whose A and B inputs and
output are registers (so nextpnr times every DSP port), the memories are block RAM, and the netlist
gives the reference's answers bit for bit.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import torch
from conftest import require_module, require_tool
from network_bench import assert_reads_match, explain_program, random_trains, run_iverilog_with_cells

from sc_neurocore.fpga.network_reference import quantize_network
from sc_neurocore.models import LIFNetwork

LANES, N_TRAINS = 3, 30


@pytest.mark.toolchain
@pytest.mark.slow
def test_gate_level_netlist_matches_reference_with_registered_dsps(tmp_path):
    require_tool("yosys", "iverilog", "vvp")
    require_module("litex", "fpga")
    from sc_neurocore.fpga.network_build import REGISTERED_DSP, estimate_resources
    from sc_neurocore.fpga.network_top import export_network_verilog

    generator = torch.Generator().manual_seed(21)
    weights = [torch.round((torch.rand(11, 5, generator=generator) - 0.4) * 2 * 256) / 256,
               torch.round((torch.rand(5, 3, generator=generator) - 0.4) * 2 * 256) / 256]
    network = quantize_network(LIFNetwork(weights, beta=0.85, threshold=0.6), n_steps=5, top_k=4)
    export_network_verilog(tmp_path / "net.v", network, LANES)
    # As the bitstream build: the SB_MAC16s are instances, so no -dsp (see NetworkExplainer's dsp argument).
    script = ("read_verilog net.v; synth_ice40 -top network_explainer; tee -o cells.txt stat; "
              "write_json netlist.json; write_verilog -noattr netlist.v")
    result = subprocess.run(["yosys", "-q", "-p", script], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert "Driver-driver conflict" not in result.stdout + result.stderr
    cells = dict(re.findall(r"^\s+(SB_\w+)\s+(\d+)$", (tmp_path / "cells.txt").read_text(), re.MULTILINE))
    assert int(cells.get("SB_MAC16", 0)) == LANES, cells
    # yosys keeps memories of a few words in logic, so the fit check's count is an upper bound here
    # (the shipped network's build uses exactly the estimate: tests/fpga/test_network_build.py).
    assert 0 < int(cells.get("SB_RAM40_4K", 0)) <= estimate_resources(network, LANES)["bram"], cells
    design = json.loads((tmp_path / "netlist.json").read_text())
    macs = [cell for module in design["modules"].values() for cell in module["cells"].values()
            if cell["type"] == "SB_MAC16"]
    for cell in macs:
        for name, want in REGISTERED_DSP.items():
            assert int(cell["parameters"][name], 2) == want, (name, cell["parameters"])
        assert cell["connections"]["CLK"] != ["0"]  # clocked by the system clock, not tied off

    trains = random_trains(generator, N_TRAINS, network.spec.n_steps, network.spec.n_inputs)
    program = explain_program(network, trains, full=True)
    reads = run_iverilog_with_cells(program, [tmp_path / "netlist.v"], tmp_path)
    assert program.n_trains == N_TRAINS
    assert_reads_match(program, reads)
