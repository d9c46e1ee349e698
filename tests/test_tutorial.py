"""The tutorial is our public contract: its code blocks run as written and print what the text promises.

``docs/tutorial.md`` holds the original tutorial's code blocks (re-indented; the copy in
``../shared/seed`` lost its indentation) plus blocks marked *setup* that supply what the original left
to the reader. This test checks that the code is the original's, line for line, then runs it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorial.md"
SEED = ROOT.parent / "shared" / "seed" / "tutorial-61-snn-explainability.md"


def code_blocks(text: str) -> list[tuple[bool, str]]:
    """``(is_setup, code)`` for every python block; a block is setup if the paragraph before says *Setup."""
    blocks = []
    for match in re.finditer(r"```python\n(.*?)```", text, flags=re.S):
        before = text[:match.start()].rstrip().rsplit("\n\n", 1)[-1]
        blocks.append(("*Setup" in before, match.group(1)))
    return blocks


def _normalise(line: str) -> str:
    line = line.strip()
    return re.sub(r"\s+", "", line)


def test_code_is_the_original_tutorials():
    if not SEED.exists():
        pytest.skip(f"the seed tutorial is not beside this checkout ({SEED})")
    seed_lines = [_normalise(line) for line in SEED.read_text().splitlines() if line.strip()]
    ours = [_normalise(line) for setup, code in code_blocks(TUTORIAL.read_text()) if not setup
            for line in code.splitlines() if line.strip()]
    assert len(ours) > 40
    position = 0
    for line in ours:  # every line of ours appears in the seed, in order
        try:
            position = seed_lines.index(line, position) + 1
        except ValueError:
            pytest.fail(f"docs/tutorial.md has a line the original tutorial does not: {line!r}")


def test_tutorial_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # export_fpga writes into the working directory
    namespace: dict = {"__name__": "__tutorial__"}
    for _, code in code_blocks(TUTORIAL.read_text()):
        exec(compile(code, str(TUTORIAL), "exec"), namespace)
    printed = capsys.readouterr().out

    # Spike attribution: five ranked spikes and a peak time.
    assert "Most important spikes for output neuron 0:" in printed
    assert len(re.findall(r"t=\s*\d+, input neuron=\s*\d+: importance=-?\d+\.\d{4}", printed)) == 5
    assert re.search(r"Peak importance at t=\d+", printed)
    # Saliency of the tutorial's random function: every one of the 635 spikes is tested.
    assert "Total spikes tested: 635" in printed
    assert namespace["saliency_map"].shape == (100, 64)
    # Causal importance on the same function.
    assert namespace["importance"].shape == (64,)
    assert re.search(r"Robustness: can silence \d+ neurons", printed)
    # The MNIST example on real handwriting: a 28x28 importance image that is not empty.
    image = namespace["importance_image"]
    assert image.shape == (28, 28) and np.abs(np.asarray(image)).sum() > 0
    # FPGA export: synthesizable Verilog on disk.
    verilog = (tmp_path / "explain_ice40.v").read_text()
    assert "module" in verilog and "endmodule" in verilog
