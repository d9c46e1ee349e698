"""The documentation site builds with warnings as errors, and its nav survives pages that do not exist yet."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from conftest import require_module

ROOT = Path(__file__).resolve().parents[1]


def test_site_builds_strict(tmp_path):
    require_module("mkdocs", "dev")
    require_module("mkdocstrings_handlers.python", "dev")
    require_module("material", "dev")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                            cwd=ROOT, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    for page in ("index.html", "getting-started/index.html", "concepts/index.html", "api/explain/index.html",
                 "api/metrics/index.html"):
        assert (site / page).is_file(), page
    api = (site / "api" / "metrics" / "index.html").read_text(encoding="utf-8")
    assert "deletion_curve" in api and "TemporalSpikeAttribution" in api  # generated from the docstrings
    assert "&gt;&gt;&gt;" in api and "<code>" in api  # doctest examples render as code


def _nav_hook():
    spec = importlib.util.spec_from_file_location("nav_hook", ROOT / "docs" / "hooks" / "nav.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nav_hook_drops_pages_that_do_not_exist(tmp_path):
    (tmp_path / "here.md").write_text("# here\n")
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "a.md").write_text("# a\n")
    nav = [{"Home": "here.md"}, {"Missing": "missing.md"}, "here.md", "gone.md",
           {"Guides": [{"Gone": "gone.md"}]}, {"API": [{"A": "api/a.md"}, {"B": "api/b.md"}]},
           {"Elsewhere": "https://example.org"}]
    config = _nav_hook().on_config({"nav": nav, "docs_dir": str(tmp_path)})
    assert config["nav"] == [{"Home": "here.md"}, "here.md", {"API": [{"A": "api/a.md"}]},
                             {"Elsewhere": "https://example.org"}]
