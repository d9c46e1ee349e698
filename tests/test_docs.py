"""The documentation site: built strictly, with no raw reST, no broken link, its figures, offline equations and
the notebooks; and the package's docstrings hold Markdown only."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from conftest import require_module, require_tool
from sc_neurocore.demo import FIGURES  # drawn at build time by docs/hooks/generated.py, shown on docs/figures.md

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ["tutorial_digits", "captum_snntorch", "fpga"]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


markdown_docstrings = _load("markdown_docstrings", ROOT / "scripts" / "markdown_docstrings.py")


class _Links(HTMLParser):
    """Every `href` / `src` of a page, and the text outside `<script>` / `<style>` / `<pre>`."""

    def __init__(self):
        super().__init__()
        self.links, self.images, self.text, self._skip = [], [], [], 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in ("script", "style"):
            self._skip += 1
        for name in ("href", "src"):
            if attributes.get(name):
                self.links.append((tag, attributes[name]))
        if tag == "img" and attributes.get("src"):
            self.images.append(attributes["src"])

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


def _parse(page):
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    require_module("mkdocs", "docs")
    require_module("mkdocstrings_handlers.python", "docs")
    require_module("material", "docs")
    require_module("mkdocs_jupyter", "docs")
    require_module("matplotlib", "viz")
    require_module("snntorch", "snntorch")
    if not (ROOT / "node_modules" / "katex").is_dir():
        require_tool("npm")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT, check=True, capture_output=True, timeout=300)
    site = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return site


def _pages(site):
    return sorted(site.rglob("*.html"))


@pytest.mark.slow
def test_site_builds_strict_with_the_api_pages(site):
    for page in (
        "index.html",
        "getting-started/index.html",
        "concepts/index.html",
        "api/explain/index.html",
        "api/metrics/index.html",
        "figures/index.html",
    ):
        assert (site / page).is_file(), page
    api = (site / "api" / "metrics" / "index.html").read_text(encoding="utf-8")
    assert "deletion_curve" in api and "TemporalSpikeAttribution" in api  # generated from the docstrings
    assert "&gt;&gt;&gt;" in api and "<code>" in api  # doctest examples render as code


@pytest.mark.slow
def test_site_has_no_raw_rest(site):
    found = {}
    for page in _pages(site):
        text = "".join(_parse(page).text)
        lines = markdown_docstrings.raw_markup(text)
        # arithmatex turns every well-formed $$ block into \[ \]: a $$ left in the text was not recognised.
        lines += [line.strip() for line in text.splitlines() if "$$" in line]
        if lines:
            found[str(page.relative_to(site))] = lines[:3]
    assert found == {}


@pytest.mark.slow
def test_site_has_no_broken_link(site):
    broken = []
    for page in _pages(site):
        for tag, link in _parse(page).links:
            parts = urlparse(link)
            if parts.scheme or parts.netloc or link.startswith(("#", "mailto:", "data:", "javascript:")):
                continue
            path = unquote(parts.path)
            target = (site / path.lstrip("/") if path.startswith("/") else page.parent / path).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(site)}: <{tag}> {link}")
    assert broken == []


@pytest.mark.slow
def test_figures_page_shows_every_demo_figure(site):
    page = site / "figures" / "index.html"
    images = _parse(page).images
    shown = {Path(urlparse(src).path).name for src in images}
    generated = [*FIGURES, "benchmark_saliency.png", "benchmark_causal.png"]  # the demo's and the benchmarks'
    assert set(generated) <= shown, sorted(set(generated) - shown)
    for name in generated:  # generated at build time, real images
        data = (site / "figures" / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000, name
    assert "Test accuracy:" in page.read_text(encoding="utf-8")  # the demo's printed report


@pytest.mark.slow
def test_notebooks_are_rendered_into_the_site(site):
    for name in NOTEBOOKS:
        assert (site / "notebooks" / name / "index.html").is_file(), name
    tutorial = (site / "notebooks" / "tutorial_digits" / "index.html").read_text(encoding="utf-8")
    assert tutorial.count("data:image/png;base64") >= 5  # executed at build time: its figures are there
    nav = (site / "index.html").read_text(encoding="utf-8")
    assert "notebooks/tutorial_digits/" in nav


@pytest.mark.slow
def test_equations_render_offline(site):
    katex = site / "assets" / "katex"
    assert (katex / "katex.min.js").is_file() and (katex / "contrib" / "auto-render.min.js").is_file()
    assert list((katex / "fonts").glob("*.woff2"))
    remote = []
    for page in _pages(site):
        for tag, link in _parse(page).links:
            # Nothing loaded from outside at page load (links to other sites in the text, <a>, are fine).
            if tag in ("script", "img", "link", "iframe") and (
                urlparse(link).scheme in ("http", "https") or link.startswith("//")
            ):
                remote.append(f"{page.relative_to(site)}: <{tag}> {link[:80]}")
    assert remote == []
    concepts = (site / "concepts" / "index.html").read_text(encoding="utf-8")
    assert 'class="arithmatex"' in concepts and "assets/katex/katex.min.js" in concepts


@pytest.mark.slow
def test_headless_chromium_renders_the_maths(site):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        require_tool("chromium")
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=8000",
            "--dump-dom",
            (site / "concepts" / "index.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert dom.count('class="katex"') >= 5  # KaTeX typeset the equations, from the bundled copy
    assert "katex-error" not in dom


def test_package_docstrings_hold_no_rest():
    leftovers = {}
    for path in markdown_docstrings.python_files([str(ROOT / "sc_neurocore")]):
        lines = markdown_docstrings.raw_markup(path.read_text(encoding="utf-8"))
        if lines:
            leftovers[str(path.relative_to(ROOT))] = lines
    assert leftovers == {}, "run python scripts/markdown_docstrings.py sc_neurocore"


@pytest.mark.parametrize(
    "rest, markdown",
    [
        (":class:`~sc_neurocore.explain.CausalResult`", "`CausalResult`"),
        (":func:`sc_neurocore.plot.save_figure`", "`sc_neurocore.plot.save_figure`"),
        (":meth:`the summary <SaliencyResult.summary>`", "`the summary`"),
        (":py:data:`CSR_MAP`", "`CSR_MAP`"),
        (":math:`\\beta^{T-t}`", "$\\beta^{T-t}$"),
        ("Read it with::\n\n    load()", "Read it with:\n\n    load()"),
        ("    .. math::\n\n        v = w\n\n    Then", "    $$\n    v = w\n    $$\n\n    Then"),
        ("a::b stays", "a::b stays"),
        ("$$\na = 1\n\nb = 2\n$$", "$$\na = 1\n$$\n\n$$\nb = 2\n$$"),  # Markdown ends a block at a blank line
    ],
)
def test_conversion_script(rest, markdown):
    assert markdown_docstrings.convert(rest) == markdown
    assert markdown_docstrings.raw_markup(markdown) == []
    if ":`" in rest or ".. math::" in rest:  # the checker the site test uses finds what was converted
        assert markdown_docstrings.raw_markup(rest)


def _nav_hook():
    return _load("nav_hook", ROOT / "docs" / "hooks" / "nav.py")


def test_nav_hook_drops_pages_that_do_not_exist(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "here.md").write_text("# here\n")
    (docs / "api").mkdir()
    (docs / "api" / "a.md").write_text("# a\n")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "n.ipynb").write_text("{}")
    nav = [
        {"Home": "here.md"},
        {"Missing": "missing.md"},
        "here.md",
        "gone.md",
        {"Guides": [{"Gone": "gone.md"}]},
        {"API": [{"A": "api/a.md"}, {"B": "api/b.md"}]},
        {"Elsewhere": "https://example.org"},
        {"Notebook": "notebooks/n.ipynb"},
        {"No": "notebooks/x.ipynb"},
    ]
    config = _nav_hook().on_config({"nav": nav, "docs_dir": str(docs)})
    assert config["nav"] == [
        {"Home": "here.md"},
        "here.md",
        {"API": [{"A": "api/a.md"}]},
        {"Elsewhere": "https://example.org"},
        {"Notebook": "notebooks/n.ipynb"},
    ]


def test_every_install_hint_names_our_distribution():
    """No hint sends users to PyPI's `sc-neurocore`, which is another project."""
    wrong = []
    for path in (
        list((ROOT / "sc_neurocore").rglob("*.py"))
        + list((ROOT / "docs").rglob("*.md"))
        + [ROOT / "README.md", ROOT / "tests" / "conftest.py"]
    ):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"pip install (-e )?['\"]?sc-neurocore", line):
                wrong.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert wrong == []


def test_benchmark_tables_are_read_from_the_bench_report():
    generated = _load("generated_hook", ROOT / "docs" / "hooks" / "generated.py")
    text = (
        "# Benchmarks\n\n## Exact saliency, one sample\n\n| case | contender | median time | ratio |\n|---|---|---|---|\n"
        "| R / LIF | ours (5 spikes) | 26.6 ms | 1.0x |\n| R / LIF | naive loop | 2.88 s | 108.4x |\n"
        "| R / fit | fixed 1 ms | - | 1.0x |\n\n## Other\n\n| x | y | 1.0 s |\n"
    )
    rows = generated.benchmark_rows(text)
    assert rows["Exact saliency, one sample"] == [
        ("R / LIF", "ours (5 spikes)", pytest.approx(0.0266)),
        ("R / LIF", "naive loop", 2.88),
    ]
    assert rows["Other"] == [("x", "y", 1.0)]
    real = generated.benchmark_rows((ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8"))
    assert set(generated.BENCHMARK_FIGURES) <= set(real)  # the sections the figures page draws exist
