"""The package as a user installs it: its name, license, one version, py.typed in the wheel, a light import."""

import email
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import sc_neurocore
from sc_neurocore.extras import DISTRIBUTION

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(folder), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (path,) = folder.glob("*.whl")
    return path


@pytest.mark.slow
def test_wheel_ships_py_typed_the_license_and_our_name(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert "sc_neurocore/py.typed" in names
        assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
        assert "sc_neurocore/data/digits8.safetensors" in names or any(n.endswith(".safetensors") for n in names)
        (metadata_name,) = [name for name in names if name.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(archive.read(metadata_name))
    assert metadata["Name"] == DISTRIBUTION
    assert metadata["Version"] == sc_neurocore.__version__  # one version string, read from the package
    assert metadata["License-Expression"] == "Apache-2.0"
    assert not any("nbmake" in requirement for requirement in metadata.get_all("Requires-Dist"))


def test_license_file_is_apache_2():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text


def test_the_version_is_written_once():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'dynamic = ["version"]' in pyproject and sc_neurocore.__version__ not in pyproject


def test_import_is_light_and_exposes_the_explainers():
    code = (
        "import sys, sc_neurocore\nprint('torch' in sys.modules)\n"
        "from sc_neurocore import SpikeAttributor, TemporalSaliency, CausalImportance, LIFNetwork\n"
        "print(CausalImportance.__module__, 'matplotlib' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "sc_neurocore.explain.causal", "False"]
    assert set(sc_neurocore.__all__) <= set(dir(sc_neurocore))
    with pytest.raises(AttributeError, match="no attribute 'explain_everything'"):
        _ = sc_neurocore.explain_everything


def test_declared_dependencies_are_used():
    """Every core dependency is imported somewhere in the package (nbmake was not)."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    constraints = (ROOT / "requirements" / "constraints.txt").read_text(encoding="utf-8")
    assert "nbmake" not in pyproject
    assert "torchvision" not in constraints or "spikingjelly" in constraints  # only pinned for spikingjelly
    source = "\n".join(path.read_text(encoding="utf-8") for path in (ROOT / "sc_neurocore").rglob("*.py"))
    for module in ("torch", "numpy", "captum", "tqdm"):
        assert f"import {module}" in source or f"from {module}" in source, module
