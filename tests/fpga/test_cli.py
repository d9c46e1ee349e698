"""``sc-neurocore fpga build``: arguments, errors, and one real build that rewrites a document's table."""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import pytest
from conftest import require_module, require_tool

from sc_neurocore.cli import main


def test_fpga_is_a_subcommand_with_a_build_action(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fpga", "build", "--help"])
    assert exit_info.value.code == 0
    usage = capsys.readouterr().out
    for option in ("--board", "--inputs", "--outputs", "--steps", "--lanes", "--out", "--report-md"):
        assert option in usage


def test_missing_action_is_a_usage_error(capsys):
    assert main(["fpga"]) == 2
    assert "expected an action: build" in capsys.readouterr().err


def test_unknown_board_is_a_clear_error(tmp_path, capsys):
    assert main(["fpga", "build", "--board", "arty", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "board: expected one of ('icebreaker', 'icesugar'), got 'arty'" in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option, value", [("--inputs", "0"), ("--lanes", "many"), ("--sys-clk-freq", "-1")])
def test_bad_numbers_are_rejected_by_the_parser(option, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fpga", "build", option, value, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert option in capsys.readouterr().err


def test_toolchain_failure_exits_1_with_the_reason(tmp_path, capsys, monkeypatch):
    require_module("litex", "fpga")
    from sc_neurocore.fpga import build

    def fails(*args, **kwargs):
        raise build.BuildError("the icebreaker build failed (timing-strict):\nERROR: Max frequency for clock ...")

    monkeypatch.setattr(build, "build_bitstream", fails)
    assert main(["fpga", "build", "--out", str(tmp_path)]) == 1
    assert "Max frequency for clock" in capsys.readouterr().err


def generated_section(text: str) -> str:
    from sc_neurocore.fpga.network_build import NETWORK_REPORT_BEGIN, NETWORK_REPORT_END

    assert NETWORK_REPORT_BEGIN in text and NETWORK_REPORT_END in text
    return text.split(NETWORK_REPORT_BEGIN, 1)[1].split(NETWORK_REPORT_END, 1)[0]


def test_docs_generated_table_is_the_generators_output_for_its_report():
    """docs/fpga.md's figures are `NetworkBuildReport.to_markdown()` of the JSON report committed beside it."""
    from sc_neurocore.fpga.network_build import NetworkBuildReport

    docs = Path(__file__).resolve().parents[2] / "docs"
    report = NetworkBuildReport.from_json((docs / "fpga-digits8-report.json").read_text())
    assert generated_section((docs / "fpga.md").read_text()).strip() == report.to_markdown().strip()


@pytest.mark.toolchain
@pytest.mark.slow
def test_cli_builds_the_shipped_network_and_reproduces_the_documented_figures(tmp_path):
    """The one UP5K build of CI: `sc-neurocore fpga build --model digits8`, as a user runs it."""
    require_tool("yosys", "nextpnr-ice40", "icepack")
    require_module("litex_boards", "fpga")
    from sc_neurocore.fpga.network_build import NETWORK_REPORT_BEGIN, NETWORK_REPORT_END, NetworkBuildReport

    document = tmp_path / "fpga.md"
    document.write_text(f"# FPGA\n\nhand-written prose\n\n{NETWORK_REPORT_BEGIN}\nold\n{NETWORK_REPORT_END}\n")
    out = tmp_path / "digits8"
    command = [sys.executable, "-m", "sc_neurocore.cli", "fpga", "build", "--model", "digits8", "--out", str(out),
               "--report-md", str(document)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    report = NetworkBuildReport.from_json((out / "report.json").read_text())
    # The acceptance figures for the shipped network on the UP5K.
    assert report.timing_met and report.sys_clk_mhz >= 24.0 and report.fmax_mhz >= 24.0
    assert report.dsp_ports_registered and report.dsp == report.lanes
    assert report.logic_cells <= 0.6 * report.logic_cells_available
    assert abs(report.accuracy["float"] - report.accuracy["integer"]) <= 0.01
    assert report.link["host_ms"] <= 20.0 and report.baudrate == 2_000_000
    assert report.layers == [64, 32, 10] and report.bram == 22
    assert (out / "explainer.bin").stat().st_size > 100_000 and "explainer_core_control" in (out / "csr.csv").read_text()
    # Progress lines while the tools ran, and the document's table rewritten, prose kept.
    assert "nextpnr (place and route) running" in result.stderr
    text = document.read_text()
    assert "hand-written prose" in text and "\nold\n" not in text
    # docs/fpga.md shows exactly what this build measured (regenerate it with the command in its text).
    docs = Path(__file__).resolve().parents[2] / "docs"
    assert generated_section(text) == generated_section((docs / "fpga.md").read_text())
    committed = json.loads((docs / "fpga-digits8-report.json").read_text())
    assert committed == json.loads(report.to_json())
