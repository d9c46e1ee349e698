"""``sc-neurocore bench``: our exact methods against the naive loops and Captum, timed side by side.

Runs `sc_neurocore.bench.suite.run_suite` (workloads in `sc_neurocore.bench.workloads`,
contenders in `sc_neurocore.bench.contenders`), prints the tables and, with ``--output``, writes them
as Markdown (``docs/benchmarks.md`` is this command's output, never edited by hand):

    sc-neurocore bench --output docs/benchmarks.md      # the full run, about 10 minutes on 2 cores
    sc-neurocore bench --quick                          # tiny sizes, one run each: a smoke test
    sc-neurocore bench --strict                         # exit 1 when a target prints MISSED
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from ..atomic import atomic_write
from .workloads import WORKLOADS

if TYPE_CHECKING:
    from .suite import Report

__all__ = ["QUICK", "Settings", "add_arguments", "main", "render", "run_suite"]


def __getattr__(name: str):
    # The suite (Captum, the explainers) loads only when used: benchmarks/gpu_check.py imports the workloads
    # on a machine that may have nothing but torch and numpy.
    if name in ("run_suite", "Settings", "QUICK"):
        from . import suite

        return getattr(suite, name)
    raise AttributeError(f"module 'sc_neurocore.bench' has no attribute {name!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="tiny workloads, one run each (a smoke test)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per contender (default 5; median kept)")
    parser.add_argument("--workloads", nargs="+", choices=sorted(WORKLOADS), default=None,
                        help="which workloads (default: all)")
    parser.add_argument("--output", default=None, help="also write the report as Markdown to this file")
    parser.add_argument("--strict", action="store_true",
                        help="exit with status 1 when a target of the report is MISSED")


def main(args: argparse.Namespace) -> int:
    from .suite import QUICK, Settings, run_suite

    settings = QUICK if args.quick else Settings()
    if args.runs is not None:
        if args.runs < 1:
            raise ValueError(f"--runs: expected a positive number of runs, got {args.runs}")
        settings = settings._replace(runs=args.runs)
    if args.workloads:
        settings = settings._replace(workloads=tuple(args.workloads))
    command = "sc-neurocore bench" + "".join(f" {a}" for a in (sys.argv[2:] if len(sys.argv) > 2 else []))
    report = run_suite(settings, progress=lambda line: print(f"... {line}", file=sys.stderr, flush=True))
    text = render(report, command=command)
    print(text)
    if args.output:
        with atomic_write(args.output) as handle:
            handle.write(text)
    missed = [t for t in report.targets if not t.met]
    disagreements = [r for r in report.rows if r.agreement.startswith("DIFFERS")]
    if disagreements:
        return 1
    return 1 if missed and getattr(args, "strict", False) else 0


def render(report: Report, command: str = "sc-neurocore bench") -> str:
    """The report as Markdown: environment, one table per section, the targets, notes.

    Args:
        report: what `run_suite` returned.
        command: the command line that produced it (printed in the header).

    Returns:
        Markdown text.

    Example:
        >>> from sc_neurocore.bench.suite import Report
        >>> render(Report([], [], [], {"torch": "2"})).splitlines()[0]
        '# Benchmarks'
    """
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# Benchmarks", "",
             f"Written by `{command}` on {now}. Do not edit by hand: rerun the command.", "",
             "Every contender's numbers are checked against ours before it is timed; times are medians of the "
             "runs, ratios are contender time / our time, peak memory is the resident memory a run added.", ""]
    lines += ["| setting | value |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in report.environment.items()]
    load = report.environment.get("load average at start / end", "")
    try:
        loaded = max(float(v) for v in load.split(" / ")) > 1.0
    except ValueError:
        loaded = False
    if loaded:
        lines += ["", "**Timings were taken under load** (other processes shared the CPU; see the load averages). "
                  "Ratios are measured within one run, so every contender saw the same machine."]
    sections: dict[str, list] = {}
    for row in report.rows:
        sections.setdefault(row.section, []).append(row)
    for section, rows in sections.items():
        lines += ["", f"## {section}", "", "| case | contender | median time | ratio | peak memory | agreement with ours |",
                  "|---|---|---|---|---|---|"]
        for row in rows:
            peak = "n/a" if row.peak_mib is None else f"{row.peak_mib:.1f} MiB"
            lines.append(f"| {row.case} | {row.contender} | {_seconds(row.seconds)} | {row.ratio:.1f}x | {peak} | "
                         f"{row.agreement} |")
    if report.targets:
        lines += ["", "## Targets", "", "| target | wanted | measured | met | why it is what it is |", "|---|---|---|---|---|"]
        for target in report.targets:
            lines.append(f"| {target.name} | {'<=' if target.at_most else '>='} {target.wanted:g} | {target.measured:.2f} | "
                         f"{'yes' if target.met else '**MISSED**'} | {target.note} |")
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report.notes]
    return "\n".join(lines) + "\n"


def _seconds(value: float) -> str:
    if not value >= 0:  # NaN (a row that is not a timing) or a negative number: never printed as a time
        return "-"
    return f"{value * 1e3:.1f} ms" if value < 1 else f"{value:.2f} s"
