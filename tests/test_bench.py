"""``sc-neurocore bench`` on tiny sizes: every contender agrees with ours, the report renders and is written.

Timings are never asserted (they depend on the machine); exactness always is.
"""

from __future__ import annotations

import pytest
import torch

from sc_neurocore.bench import QUICK, render, run_suite, suite
from sc_neurocore.cli import main


@pytest.fixture(scope="module")
def report():
    from conftest import require_module

    require_module("snntorch", "snntorch")
    return run_suite(QUICK)


def test_every_contender_agrees_with_ours(report):
    checked = [row for row in report.rows if row.agreement not in ("reference", "-")]
    assert len(checked) >= 15
    for row in checked:
        assert row.agreement in ("identical", ) or row.agreement.startswith(("different method", "vs generic path: identical")), row


def test_every_section_and_both_model_kinds_ran(report):
    sections = {row.section.split(",")[0].split(" (")[0] for row in report.rows}
    assert {"Exact saliency", "Causal importance", "Attribution", "Time vs number of spikes",
            "Peak memory", "Inner loop paths"} <= sections
    cases = {row.case for row in report.rows}
    for workload in ("R-seed", "R-MNIST", "R-deep"):
        assert f"{workload} / LIFNetwork" in cases and f"{workload} / snnTorch" in cases
    # A straight-line fit's row is not a timing (its 'time' is NaN, printed as '-', never as a negative number).
    assert all(row.seconds > 0 and row.ratio > 0 for row in report.rows if "straight-line fit" not in row.case)
    assert any(note.split(": ", 1)[1].startswith("executor ") for note in report.notes if ": executor" in note)
    assert report.environment["event engine inner loop"]
    assert report.targets == []  # targets are only judged on the real workload sizes


def test_render_is_markdown_with_every_row(report):
    text = render(report, command="sc-neurocore bench --quick")
    assert text.startswith("# Benchmarks")
    assert "sc-neurocore bench --quick" in text
    for row in report.rows:
        assert row.contender in text


def test_agreement_check_can_fail():
    assert suite._agreement(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])) == "identical"
    assert suite._agreement(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 3.0])).startswith("DIFFERS: 1 entries")


def test_cli_writes_the_report(tmp_path, capsys):
    from conftest import require_module

    require_module("snntorch", "snntorch")
    output = tmp_path / "benchmarks.md"
    assert main(["bench", "--quick", "--workloads", "R-seed", "--output", str(output)]) == 0
    written = output.read_text()
    assert written.startswith("# Benchmarks") and "R-seed / snnTorch" in written
    assert "R-seed / LIFNetwork" in capsys.readouterr().out


def test_strict_exits_non_zero_on_a_missed_target(monkeypatch, tmp_path):
    from sc_neurocore.bench.targets import Target

    missed = suite.Report([], [Target("x", 2.0, 1.0, "a missed target")], [], {"torch": "2"})
    met = suite.Report([], [Target("y", 3.0, 1.0, "a ceiling met", at_most=True)], [], {"torch": "2"})
    for report, strict_code in ((missed, 1), (met, 0)):
        monkeypatch.setattr(suite, "run_suite", lambda settings, progress=None, report=report: report)
        assert main(["bench", "--quick"]) == 0
        assert main(["bench", "--quick", "--strict"]) == strict_code
    assert "**MISSED**" in render(missed) and "<= 3" in render(met)


def test_cli_rejects_bad_runs(capsys):
    assert main(["bench", "--quick", "--runs", "0"]) == 2
    assert "--runs" in capsys.readouterr().err
