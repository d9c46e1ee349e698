"""Every notebook under notebooks/ is stored without outputs and runs top to bottom (nbclient)."""

from pathlib import Path

import pytest

from conftest import require_module, require_tool

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: Seconds one cell may run; a notebook's whole run is bounded by its cells.
CELL_TIMEOUT = 180


def _read(path):
    nbformat = require_module("nbformat", "dev")
    return nbformat.read(path, as_version=4)


def test_there_are_notebooks():
    names = {path.name for path in NOTEBOOKS}
    assert {"tutorial_digits.ipynb", "captum_snntorch.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_is_stored_without_outputs(path):
    for cell in _read(path).cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: a cell has outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs(path, tmp_path, monkeypatch):
    nbclient = require_module("nbclient", "dev")
    require_module("ipykernel", "dev")
    notebook = _read(path)
    # A notebook may say what it needs and how long a cell may take: {"sc_neurocore": {"requires_tools": [...],
    # "requires_modules": {module: extra}, "cell_timeout": seconds}}
    needs = notebook.metadata.get("sc_neurocore", {})
    if needs.get("requires_tools"):
        require_tool(*needs["requires_tools"])
    for module, extra in needs.get("requires_modules", {}).items():
        require_module(module, extra)
    # Files a notebook writes land in tmp_path, the kernel's working folder; figures render inline as PNG.
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    timeout = int(needs.get("cell_timeout", CELL_TIMEOUT))
    client = nbclient.NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    images = sum("image/png" in output.get("data", {}) for cell in notebook.cells if cell.cell_type == "code"
                 for output in cell.outputs)
    errors = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
              if output.output_type == "error"]
    assert not errors
    if path.name == "tutorial_digits.ipynb":
        assert images >= 10  # every figure of the tutorial was drawn
