"""A real, timing-strict bitstream build of the explainer SoC for the iCEBreaker, and its report.

The geometry is small so that yosys + nextpnr finish in seconds on a CI core, but it has every part of
the full design: several lanes (one SB_MAC16 each), padding inputs, several outputs.
"""

from __future__ import annotations

import json

import pytest
from conftest import require_module, require_tool

SIZES = {"n_inputs": 50, "n_outputs": 3, "n_steps": 6, "lanes": 4}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    require_tool("yosys", "nextpnr-ice40", "icepack")
    require_module("litex_boards", "fpga")
    from sc_neurocore.fpga import FixedPointSpec
    from sc_neurocore.fpga.build import build_bitstream

    out = tmp_path_factory.mktemp("ice40")
    spec = FixedPointSpec(decay=0.85)
    report = build_bitstream(out, spec=spec, **SIZES)
    return out, spec, report


def test_build_publishes_bitstream_register_map_and_reports(built):
    from sc_neurocore.fpga.build import REPORT_BEGIN, BuildReport

    out, _, report = built
    bitstream = (out / "explainer.bin").read_bytes()
    # icepack's output carries the iCE40 configuration sync word near its start.
    assert b"\x7e\xaa\x99\x7e" in bitstream[:64] and len(bitstream) > 100_000
    registers = (out / "csr.csv").read_text()
    for name in ("explainer_load_data", "explainer_importance", "explainer_status", "explainer_cycles"):
        assert f"csr_register,{name}," in registers
    assert BuildReport.from_json((out / "report.json").read_text()) == report
    markdown = (out / "report.md").read_text()
    assert REPORT_BEGIN in markdown and f"| Logic cells | {report.logic_cells} / 5280" in markdown
    # Nothing is left half-written beside the published files.
    assert not [path for path in out.iterdir() if path.name.endswith(".tmp")]


def test_report_holds_the_tools_measurements(built):
    from sc_neurocore.fpga.core import cycles_per_run, cycles_per_step

    out, spec, report = built
    assert report.board == "icebreaker" and report.bitstream == "explainer.bin"
    assert {key: getattr(report, key) for key in SIZES} == SIZES
    assert report.spec["decay"] == spec.decay and report.spec["trace_bits"] == spec.trace_bits
    # One SB_MAC16 per lane: the decay multiply of each lane is mapped to a DSP, not to logic.
    assert report.dsp == SIZES["lanes"] and report.dsp_available == 8
    assert (report.logic_cells_available, report.bram_available, report.spram_available) == (5280, 30, 4)
    assert 500 < report.logic_cells < report.logic_cells_available
    assert 0 < report.bram <= report.bram_available and 0 <= report.spram <= report.spram_available
    # Timing-strict: the published design meets the 24 MHz clock.
    assert report.sys_clk_mhz == pytest.approx(24.0) and report.timing_met
    assert report.fmax_mhz >= report.sys_clk_mhz
    assert report.cycles_per_timestep == cycles_per_step(SIZES["n_inputs"], SIZES["lanes"])
    assert report.cycles_per_explanation == cycles_per_run(SIZES["n_inputs"], SIZES["n_steps"], SIZES["lanes"])
    assert report.explanation_us == pytest.approx(report.cycles_per_explanation / 24.0, rel=1e-3)
    # The numbers are nextpnr's own: they equal its JSON report in the scratch folder.
    nextpnr = json.loads((out / "build" / "gateware" / "explainer_report.json").read_text())
    assert nextpnr["utilization"]["ICESTORM_LC"]["used"] == report.logic_cells
    assert nextpnr["utilization"]["ICESTORM_RAM"]["used"] == report.bram
    assert report.yosys.startswith("Yosys") and "nextpnr-ice40" in report.nextpnr


def test_a_clock_the_design_cannot_meet_fails_and_leaves_the_published_files(built):
    from sc_neurocore.fpga.build import BuildError, build_bitstream

    out, spec, _ = built
    before = {name: (out / name).read_bytes() for name in ("explainer.bin", "csr.csv", "report.json")}
    with pytest.raises(BuildError, match="timing-strict") as failure:
        build_bitstream(out, spec=spec, sys_clk_freq=150e6, **SIZES)
    assert "Max frequency for clock" in str(failure.value)
    assert {name: (out / name).read_bytes() for name in before} == before


def test_report_markdown_rewrites_only_the_marked_section(tmp_path, built):
    from sc_neurocore.fpga.build import REPORT_BEGIN, REPORT_END, write_report_markdown

    _, _, report = built
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
