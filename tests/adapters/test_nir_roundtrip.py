"""docs/nir.md: its example runs as written, and its round-trip table is what the round trips measure now."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from conftest import require_module

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _frameworks():
    require_module("nir", "nir")
    require_module("snntorch", "snntorch")
    require_module("norse", "norse")


def test_the_page_example_runs(capsys):
    import nir_roundtrip

    blocks = re.findall(r"```python\n(.*?)```", nir_roundtrip.PAGE.read_text(), flags=re.DOTALL)
    assert blocks
    for code in blocks:
        exec(compile(code, str(nir_roundtrip.PAGE), "exec"), {"__name__": "__docs_nir__"})  # noqa: S102
    printed = capsys.readouterr().out
    assert "{'lif': 12, 'lif_1': 3}" in printed
    assert "hidden importances: 12" in printed


@pytest.mark.slow
def test_the_round_trip_table_is_current():
    import nir_roundtrip

    measured = nir_roundtrip.rows()
    page = nir_roundtrip.PAGE.read_text()
    assert nir_roundtrip.page_with(nir_roundtrip.render(measured), page) == page, \
        "docs/nir.md is stale: run `python tests/adapters/nir_roundtrip.py`"
    rows = {row[0]: row for row in measured}
    # The cases the page's conclusion names: the exports that mean what the model computes.
    assert rows["snnTorch Leaky, reset to zero in the same step"][3] == "equal bit for bit"
    assert rows["Norse LIFBoxCell"][3] == "equal bit for bit"
    assert rows["snnTorch Leaky, reset by subtraction on the next step (its default)"][3] != "equal bit for bit"
