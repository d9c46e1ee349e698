"""The trace explainer's build: its report, its failure messages and the checks before the toolchain.

The real builds in CI are the whole-network ones (tests/fpga/test_cli.py for the UP5K,
tests/fpga/test_network_build.py for the second board); this file needs no toolchain run.
"""

from __future__ import annotations

import json

import pytest
from conftest import require_module

SIZES = {"n_inputs": 50, "n_outputs": 3, "n_steps": 6, "lanes": 4}


def synthetic_report():
    """A report with made-up numbers: the report's own logic is tested without a build (CI builds once:
    the shipped network, in tests/fpga/test_cli.py, and a second board in test_network_build.py)."""
    from sc_neurocore.fpga.build import BuildReport

    return BuildReport(board="icebreaker", device="Lattice iCE40UP5K-SG48", spec={"decay": 0.85}, sys_clk_mhz=24.0,
                       fmax_mhz=31.5, timing_met=True, dsp_ports_registered=True,
                       timed_paths="every path", logic_cells=1200, logic_cells_available=5280, bram=7,
                       bram_available=30, spram=1, spram_available=4, dsp=4, dsp_available=8, cycles_per_timestep=13,
                       cycles_per_explanation=82, explanation_us=3.417, seed=1, yosys="Yosys 0.23",
                       nextpnr="nextpnr-ice40 0.4", bitstream="explainer.bin", **SIZES)


def test_report_round_trips_through_json():
    from sc_neurocore.fpga.build import BuildReport

    report = synthetic_report()
    assert BuildReport.from_json(report.to_json()) == report
    assert "| Logic cells | 1200 / 5280 (23%) |" in report.to_markdown()
    with pytest.raises(ValueError, match="report"):
        BuildReport.from_json(json.dumps({"board": "icebreaker"}))


def test_a_design_that_does_not_fit_says_so_not_timing(tmp_path):
    """On main an over-full design was reported as 'failed (timing-strict)'."""
    from sc_neurocore.fpga.build import _failure_reason

    log = tmp_path / "explainer_nextpnr.log"
    log.write_text("Info: Device utilisation:\nInfo: \t         ICESTORM_LC:  6001/ 5280   113%\n"
                   "Info: \t        ICESTORM_RAM:    12/   30    40%\nERROR: Unable to place cell 'x'\n")
    assert _failure_reason(log) == "does not fit: needs 6001 of 5280 ICESTORM_LC"
    log.write_text("Info: Max frequency for clock 'sys': 12.0 MHz (FAIL at 24.00 MHz)\n")
    assert "Max frequency" in _failure_reason(log)


def test_fit_and_saturation_are_checked_before_the_toolchain(tmp_path):
    """On main `--decay 1.0 --steps 100` saturated the traces silently, and a design needing more block RAM
    than the device has was handed to the tools."""
    require_module("litex_boards", "fpga")
    from sc_neurocore.fpga import FixedPointSpec
    from sc_neurocore.fpga.build import build_bitstream

    with pytest.raises(ValueError, match="saturates within 100 steps"):
        build_bitstream(tmp_path, n_inputs=40, n_outputs=2, n_steps=100, lanes=2, spec=FixedPointSpec(decay=1.0))
    with pytest.raises(ValueError, match=r"does not fit: needs \d+ of 30 BRAM"):
        build_bitstream(tmp_path, n_inputs=784, n_outputs=10, n_steps=2000, lanes=8,
                        spec=FixedPointSpec(decay=0.5))
    assert not (tmp_path / "build").exists()  # nothing ran


def test_report_markdown_rewrites_only_the_marked_section(tmp_path):
    from sc_neurocore.fpga.build import REPORT_BEGIN, REPORT_END, write_report_markdown

    report = synthetic_report()
    document = tmp_path / "fpga.md"
    document.write_text(f"# Prose\n\nkept\n\n{REPORT_BEGIN}\nstale table\n{REPORT_END}\n\nmore prose\n")
    write_report_markdown(report, document)
    text = document.read_text()
    assert "stale table" not in text and text.startswith("# Prose\n\nkept\n") and text.endswith("\n\nmore prose\n")
    assert report.to_markdown() in text
    broken = tmp_path / "broken.md"
    broken.write_text(f"{REPORT_BEGIN}\nno end marker\n")
    with pytest.raises(ValueError, match="report_md"):
        write_report_markdown(report, broken)


def test_bad_arguments_are_rejected_before_the_toolchain_runs(tmp_path):
    require_module("litex_boards", "fpga")
    from sc_neurocore.fpga.build import build_bitstream, parse_nextpnr_report

    with pytest.raises(ValueError, match="board"):
        build_bitstream(tmp_path, board="de10nano", **SIZES)
    with pytest.raises(ValueError, match="lanes"):
        build_bitstream(tmp_path, **{**SIZES, "lanes": 0})
    with pytest.raises(ValueError, match="lanes"):
        build_bitstream(tmp_path, **{**SIZES, "lanes": 9})
    with pytest.raises(FileNotFoundError, match="report_md"):
        build_bitstream(tmp_path, report_md=tmp_path / "missing" / "fpga.md", **SIZES)
    report = tmp_path / "report.json"
    report.touch()
    with pytest.raises(ValueError, match="out_dir"):
        build_bitstream(report, **SIZES)
    report.write_text(json.dumps({"utilization": {}, "fmax": {}}))
    with pytest.raises(ValueError, match="ICESTORM_LC"):
        parse_nextpnr_report(report)
