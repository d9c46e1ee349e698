"""docs/adapters.md's support matrix is the generator's: one row per zoo model, the generator's columns, and
the markers the generator splices between (regenerate with `make matrix`)."""

from __future__ import annotations

from pathlib import Path

from zoo import collect
from zoo.matrix import BEGIN, END, HEADERS

PAGE = Path(__file__).resolve().parents[2] / "docs" / "adapters.md"


def test_the_matrix_lists_every_zoo_model_once():
    text = PAGE.read_text(encoding="utf-8")
    assert BEGIN in text and END in text, "docs/adapters.md has no generated matrix: run `make matrix`"
    matrix = text[text.index(BEGIN):text.index(END)]
    header = next(line for line in matrix.splitlines() if line.startswith("| framework"))
    assert all(name in header for name in HEADERS), "the matrix's columns are stale: run `make matrix`"
    rows = [line for line in matrix.splitlines() if line.startswith("| ") and "`" in line]
    named = [row.split("`")[1] for row in rows]
    assert sorted(named) == sorted(entry.name for entry in collect()), "the matrix is stale: run `make matrix`"
    for row, name in zip(rows, named, strict=True):
        entry = next(e for e in collect() if e.name == name)
        assert ("traced, verified" in row) == (entry.engine == "graph"), f"{name}: the graph column is stale"
