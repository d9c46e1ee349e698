"""``docs/reliability.md`` is the bad-input table as the tests run it, never edited by hand."""

from __future__ import annotations

from pathlib import Path

from .table import render

PAGE = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"


def test_page_matches_the_table():
    assert PAGE.is_file(), "docs/reliability.md is missing: python -m tests.reliability.table --write docs/reliability.md"
    assert PAGE.read_text(encoding="utf-8") == render(), (
        "docs/reliability.md is out of date with tests/reliability/cases.py; regenerate it with "
        "python -m tests.reliability.table --write docs/reliability.md")


def test_page_lists_every_case():
    text = PAGE.read_text(encoding="utf-8")
    from .cases import all_cases

    for case in all_cases():
        assert f"| `{case.id}` |" in text
