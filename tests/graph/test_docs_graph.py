"""docs/graph.md runs as written and prints what its text says."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import require_module

PAGE = Path(__file__).resolve().parents[2] / "docs" / "graph.md"


def test_graph_page_runs_as_written(capsys):
    require_module("snntorch", "snntorch")
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert blocks
    namespace: dict = {"__name__": "__docs_graph__"}
    for code in blocks:
        exec(compile(code, str(PAGE), "exec"), namespace)
    assert "graph (traced and verified)" in capsys.readouterr().out
