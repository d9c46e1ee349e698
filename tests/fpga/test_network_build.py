"""The whole-network build: its checks before the toolchain, the link model, and the second board.

The UP5K build of the shipped network runs once, through the CLI (tests/fpga/test_cli.py); here the
second litex-boards target (MuseLab iCESugar) builds a small network.
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import require_module, require_tool

from sc_neurocore.fpga.network_reference import quantize_network
from sc_neurocore.models import LIFNetwork


def small_network():
    generator = torch.Generator().manual_seed(8)
    weights = [torch.round((torch.rand(16, 8, generator=generator) - 0.4) * 2 * 256) / 256,
               torch.round((torch.rand(8, 4, generator=generator) - 0.4) * 2 * 256) / 256]
    return quantize_network(LIFNetwork(weights, beta=0.85, threshold=0.6), n_steps=6, top_k=4)


def test_fit_is_checked_before_the_toolchain(tmp_path):
    require_module("litex_boards", "fpga")
    from sc_neurocore.fpga.build import BuildError
    from sc_neurocore.fpga.network_build import build_network_bitstream, estimate_resources, shipped_network

    # 784-32-10 (on a coarser weight grid, so that its membranes fit 16 bits): its ROMs need far more block RAM.
    network, _ = shipped_network("digits28", weight_frac_bits=6)
    needed = estimate_resources(network, 5)["bram"]
    with pytest.raises(BuildError, match=rf"does not fit: needs {needed} of 30 BRAM"):
        build_network_bitstream(tmp_path, network, lanes=5)
    assert not (tmp_path / "build").exists()


def test_link_and_saturation_are_checked_before_the_toolchain(tmp_path):
    require_module("litex_boards", "fpga")
    from sc_neurocore.fpga.network_build import build_network_bitstream, check_link, shipped_network

    network, _ = shipped_network("digits8")
    check_link(network, 5, 24e6, 3_000_000)  # 5 lanes keep up with 3 Mbaud at 24 MHz
    with pytest.raises(ValueError, match="baudrate: at 3000000 baud"):
        build_network_bitstream(tmp_path, network, lanes=2, baudrate=3_000_000)
    narrow, _ = shipped_network("digits8", membrane_bits=12)
    with pytest.raises(ValueError, match="membrane_bits"):
        build_network_bitstream(tmp_path, narrow)


def test_current_based_network_is_refused_by_the_core_and_the_build(tmp_path):
    """The core holds no synaptic current: the core, the streaming top and the build refuse a current-based
    network in one line naming the layer, before any tool runs; the reference runs it."""
    require_module("litex_boards", "fpga")
    import dataclasses

    from sc_neurocore.fpga.network_build import build_network_bitstream
    from sc_neurocore.fpga.network_core import NetworkExplainer
    from sc_neurocore.fpga.network_reference import run_network
    from sc_neurocore.fpga.network_top import StreamingNetworkExplainer

    plain = small_network()
    network = dataclasses.replace(plain, spec=dataclasses.replace(plain.spec, alpha=(None, 0.5)))
    message = (r"^network: layer 1 is current-based \(a synaptic current, alpha=0.5\), which the chip's core does not "
               r"compute; the integer reference runs it on the host \(network_reference.run_network\)$")
    for build in (NetworkExplainer, StreamingNetworkExplainer, lambda net: build_network_bitstream(tmp_path, net)):
        with pytest.raises(ValueError, match=message):
            build(network)
    assert not (tmp_path / "build").exists()
    assert run_network(network, torch.ones(2, 6, 16, dtype=torch.int64)).currents[1] is not None
    from sc_neurocore.fpga.network_driver import NetworkChip

    with pytest.raises(ValueError, match="spec: layer 1 is current-based, which no chip runs"):
        NetworkChip("loop://", csr_csv=tmp_path / "missing.csv", spec=network.spec)


def test_link_model_counts_the_bytes_of_one_explanation():
    from sc_neurocore.fpga.network_driver import link_model
    from sc_neurocore.fpga.network_spec import NetworkSpec

    spec = NetworkSpec(layers=(64, 32, 10), n_steps=25)
    model = link_model(spec, 2_000_000)
    # start (6 + 4 bytes) + one fixed burst of 50 words (6 + 200) + one read command (6); 21 words back.
    assert (model["bytes_to_chip"], model["bytes_from_chip"], model["round_trips"]) == (222, 84, 1)
    assert model["wire_ms"] == pytest.approx((222 + 84) * 10 / 2e6 * 1e3)
    assert model["host_ms"] == pytest.approx(model["wire_ms"] + model["chip_ms"] + 1.0, abs=1e-3)
    assert model["host_ms"] <= 20.0
    assert link_model(spec, 2_000_000, full=True)["bytes_from_chip"] == 4 * (1 + 20 + 10 + 64)


def test_dsp_registration_reads_the_netlist(tmp_path):
    from sc_neurocore.fpga.network_build import dsp_registration

    cell = {"type": "SB_MAC16", "parameters": {"A_REG": "1", "B_REG": "1", "TOPOUTPUT_SELECT": "01",
                                                "BOTOUTPUT_SELECT": "01"}}
    netlist = tmp_path / "n.json"
    netlist.write_text(json.dumps({"modules": {"top": {"cells": {"m0": cell}}}}))
    assert dsp_registration(netlist) == (1, True)
    cell["parameters"]["A_REG"] = "0"  # what main's bitstream had: a combinational DSP input
    netlist.write_text(json.dumps({"modules": {"top": {"cells": {"m0": cell}}}}))
    assert dsp_registration(netlist) == (1, False)


@pytest.mark.toolchain
@pytest.mark.slow
def test_second_board_builds_timing_clean(tmp_path):
    require_tool("yosys", "nextpnr-ice40", "icepack")
    require_module("litex_boards", "fpga")
    from sc_neurocore.fpga.network_build import NetworkBuildReport, build_network_bitstream

    network = small_network()
    report = build_network_bitstream(tmp_path, network, lanes=2, board="icesugar")
    assert report.board == "icesugar" and report.timing_met and report.dsp_ports_registered
    assert report.dsp == 2 and report.layers == [16, 8, 4] and report.accuracy is None
    assert NetworkBuildReport.from_json((tmp_path / "report.json").read_text()) == report
    assert (tmp_path / "explainer.bin").stat().st_size > 100_000


def test_build_progress_announces_every_tool_as_it_starts(tmp_path):
    """A tool that finishes between two of the periodic lines is still named (the files are watched)."""
    import io
    import time

    from sc_neurocore.fpga.network_build import BUILD_NAME, _Progress

    stream = io.StringIO()

    def seen(text: str) -> bool:
        deadline = time.monotonic() + 5.0
        while text not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.005)
        return text in stream.getvalue()

    with _Progress(tmp_path, interval=60.0, stream=stream, poll=0.01):
        assert seen("yosys (synthesis) running")
        (tmp_path / f"{BUILD_NAME}.json").write_text("{}")
        assert seen("nextpnr (place and route) running")
        (tmp_path / f"{BUILD_NAME}.bin").write_bytes(b"")
        assert seen("icepack running")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and all(line.startswith("sc-neurocore fpga build: ") for line in lines)
