"""``sc-neurocore fpga build``: arguments, errors, and one real build that rewrites a document's table."""

from __future__ import annotations

import json
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
    assert "board: expected one of ('icebreaker',), got 'arty'" in error
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


def test_cli_build_writes_the_outputs_and_the_documents_generated_table(tmp_path):
    require_tool("yosys", "nextpnr-ice40", "icepack")
    require_module("litex_boards", "fpga")
    from sc_neurocore.fpga.build import REPORT_BEGIN, REPORT_END

    document = tmp_path / "fpga.md"
    document.write_text(f"# FPGA\n\nhand-written prose\n\n{REPORT_BEGIN}\nold\n{REPORT_END}\n")
    out = tmp_path / "ice40"
    # The command line as a user runs it (python -m, so that it does not depend on PATH).
    command = [sys.executable, "-m", "sc_neurocore.cli", "fpga", "build", "--board", "icebreaker", "--inputs", "40",
               "--outputs", "2", "--steps", "5", "--lanes", "2", "--decay", "0.75", "--out", str(out),
               "--report-md", str(document)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert (report["n_inputs"], report["n_outputs"], report["n_steps"], report["lanes"]) == (40, 2, 5, 2)
    assert report["spec"]["decay"] == 0.75 and report["timing_met"] and report["dsp"] == 2
    assert (out / "explainer.bin").stat().st_size > 100_000 and (out / "csr.csv").exists()
    text = document.read_text()
    assert "hand-written prose" in text and "\nold\n" not in text
    assert f"| Logic cells | {report['logic_cells']} / 5280" in text
    assert "| Cycles per explanation (start to done) |" in result.stdout
