"""mkdocs hook: pages and images the project's own commands produce at build time, never drawn by hand.

* The demo's figures: `sc-neurocore demo` runs once per build into `build/docs/figures/` and its PNGs are
  published as `figures/*.png` (docs/figures.md shows them, with the demo's printed report).
* The benchmarks' figures, drawn from the tables in docs/benchmarks.md (which `make bench` writes).
* The notebooks: `notebooks/*.ipynb` are added to the site, where mkdocs-jupyter renders them (executing
  those that mkdocs.yml does not list under `execute_ignore`).

The files are added to mkdocs' file collection before the pages are read, so a strict build checks every
link to them like a link to a page of docs/.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "build" / "docs"
FIGURES = GENERATED / "figures"
#: The demo's size at docs-build time: enough digits to read the figures, quick enough for every build.
DEMO_ARGUMENTS = ["demo", "--out", str(FIGURES), "--samples", "4", "--faithfulness-samples", "16", "--no-progress"]
#: The demo's printed report, shown on the figures page (the hook fills it in).
REPORT_MARKER = "<!-- demo report -->"

_report: list[str] = []


#: Sections of docs/benchmarks.md (written by `make bench`) drawn on the figures page, and their file names.
BENCHMARK_FIGURES = {
    "Exact saliency, one sample": "benchmark_saliency.png",
    "Causal importance, all input neurons": "benchmark_causal.png",
}


def benchmark_rows(markdown: str) -> dict[str, list[tuple[str, str, float]]]:
    """`{section: [(case, contender, seconds), ...]}` from the tables `sc-neurocore bench` writes."""
    sections: dict[str, list[tuple[str, str, float]]] = {}
    section = ""
    for line in markdown.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if section and len(cells) >= 3 and re.fullmatch(r"[\d.]+ (ms|s)", cells[2]):
            value, unit = cells[2].split()
            sections.setdefault(section, []).append((cells[0], cells[1], float(value) / (1e3 if unit == "ms" else 1)))
    return sections


def _draw_benchmarks() -> None:
    from sc_neurocore.plot import plot_benchmark_times, save_figure

    rows = benchmark_rows((ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8"))
    for section, name in BENCHMARK_FIGURES.items():
        if section not in rows:
            raise PluginError(f"docs/benchmarks.md has no table '## {section}'; rerun `make bench`")
        save_figure(plot_benchmark_times(rows[section], title=section), FIGURES / name)


def _run_demo() -> str:
    sys.path.insert(0, str(ROOT))
    from sc_neurocore.cli import main

    printed = io.StringIO()
    if FIGURES.is_dir():
        for stale in FIGURES.glob("*.png"):
            stale.unlink()
    with contextlib.redirect_stdout(printed):
        status = main(DEMO_ARGUMENTS)
    if status != 0:
        raise PluginError(f"`sc-neurocore {' '.join(DEMO_ARGUMENTS)}` failed with status {status}")
    return printed.getvalue().replace(str(FIGURES), "figures")


@event_priority(100)  # before mkdocs-jupyter's on_files, which turns the notebooks into pages
def on_files(files, config, **kwargs):
    if os.environ.get("SC_NEUROCORE_DOCS_FIGURES") != "reuse" or not list(FIGURES.glob("*.png")):
        _report[:] = [_run_demo()]
        _draw_benchmarks()

    def add(path: str, src_dir: Path) -> None:
        files.append(
            File(
                path, src_dir=str(src_dir), dest_dir=config["site_dir"], use_directory_urls=config["use_directory_urls"]
            )
        )

    for image in sorted(FIGURES.glob("*.png")):
        add(f"figures/{image.name}", GENERATED)
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        add(f"notebooks/{notebook.name}", ROOT)
    return files


def on_page_markdown(markdown, page, **kwargs):
    if REPORT_MARKER in markdown:
        report = _report[0] if _report else "(the figures were reused from an earlier build; rebuild to rerun)"
        markdown = markdown.replace(REPORT_MARKER, f"```text\n{report.strip()}\n```")
    return markdown
