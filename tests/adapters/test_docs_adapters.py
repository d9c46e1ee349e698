"""docs/adapters.md runs as written, in order, and prints what its text says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import require_module

PAGE = Path(__file__).resolve().parents[2] / "docs" / "adapters.md"


def test_adapters_page_runs_as_written(capsys):
    require_module("snntorch", "snntorch")
    require_module("norse", "norse")
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) >= 6
    namespace: dict = {"__name__": "__docs_adapters__"}
    for code in blocks:
        exec(compile(code, str(PAGE), "exec"), namespace)
    printed = capsys.readouterr().out
    assert "{'1': 12, '3': 4}" in printed  # the names the text promises
    assert re.search(r"importance of hidden neurons for output 0: \[(-?\d+\.\d+, ){11}-?\d+\.\d+\]", printed)
    assert "{'1': 12, '3': 4} max_membrane" in printed
    assert "{'lif1': 12, 'lif2': 4}" in printed
    assert "hidden importances: 12" in printed
    assert "equal to Captum's FeatureAblation: True" in printed
    assert "gradient map shape: (2, 30, 16)" in printed
    fired = int(re.search(r"output 0 fired (\d+) times", printed).group(1))
    if fired == 0:
        pytest.fail("the page's example network must fire for its explanations to mean anything")
