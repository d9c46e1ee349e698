"""Safe loading: nothing sc-neurocore reads from disk can run code from the file.

Weights load through safetensors or ``torch.load(weights_only=True)``; models are named as
``package.module:factory`` and imported, never unpickled. A hostile pickle that would create a marker file
when unpickled is refused by the loader and by the CLI, and the marker never appears. A static check
keeps every loader in the package on that rule.
"""

from __future__ import annotations

import ast
import pickle
import sys
from pathlib import Path

import pytest
import torch

import sc_neurocore
from sc_neurocore.loading import UnsafeFileError, import_factory, load_state_dict

from .cases import CommandFailed, cli
from .payloads import MARKER, _CreatesMarker, write_malicious_pickle

PACKAGE = Path(sc_neurocore.__file__).parent


def test_the_payload_really_runs_code_when_unpickled(tmp_path):
    # The control: without weights_only the file does run code, so the refusals below mean something.
    path = write_malicious_pickle(tmp_path)
    torch.load(path, weights_only=False)
    assert (tmp_path / MARKER).exists()


@pytest.mark.parametrize("name", ["weights.pt", "weights.pth", "weights.bin", "weights"])
def test_load_state_dict_refuses_a_malicious_torch_file(tmp_path, name):
    path = write_malicious_pickle(tmp_path, name)
    with pytest.raises(UnsafeFileError, match="weights: .* was refused"):
        load_state_dict(path)
    assert not (tmp_path / MARKER).exists()
    assert issubclass(UnsafeFileError, ValueError)


def test_load_state_dict_refuses_a_raw_pickle(tmp_path):
    path = tmp_path / "weights.pt"
    with open(path, "wb") as handle:
        pickle.dump({"payload": _CreatesMarker(tmp_path / MARKER)}, handle, protocol=2)
    with pytest.raises(UnsafeFileError):
        load_state_dict(path)
    assert not (tmp_path / MARKER).exists()


def test_load_state_dict_reads_plain_weights(tmp_path):
    from safetensors.torch import save_file

    state = {"weights.0": torch.arange(6.0).reshape(2, 3), "weights.1": torch.ones(3, 1)}
    torch.save(state, tmp_path / "w.pt")
    save_file(state, str(tmp_path / "w.safetensors"))
    for name in ("w.pt", "w.safetensors"):
        loaded = load_state_dict(tmp_path / name)
        assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)


def test_cli_refuses_a_malicious_weights_file(tmp_path):
    path = write_malicious_pickle(tmp_path)
    with pytest.raises(CommandFailed, match="weights: .* was refused") as failure:
        cli("explain-dataset", "--model", "sc_neurocore.data.pretrained:pretrained_network", "--weights", str(path),
            "--dataset", "sc_neurocore.data.digits:nothing", "--method", "saliency", "--out", str(tmp_path / "out"))
    assert failure.value.status == 2
    assert not (tmp_path / MARKER).exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("kind", ["object array in an .npz", "raw pickle named .npz"])
def test_cli_refuses_a_pickled_dataset_file(tmp_path, kind):
    import numpy as np

    path = tmp_path / "spikes.npz"
    if kind == "object array in an .npz":
        np.savez(path, spikes=np.array([_CreatesMarker(tmp_path / MARKER)], dtype=object), allow_pickle=True)
    else:
        path.write_bytes(pickle.dumps(_CreatesMarker(tmp_path / MARKER)))
    with pytest.raises(CommandFailed, match="pickle") as failure:
        cli("explain-dataset", "--model", "sc_neurocore.data.pretrained:pretrained_network", "--dataset", str(path),
            "--method", "saliency", "--out", str(tmp_path / "out"), "--no-progress")
    assert failure.value.status == 2
    assert not (tmp_path / MARKER).exists()


def test_model_is_imported_by_name_never_loaded_from_a_file(tmp_path, monkeypatch):
    # A module on the path is imported and its factory returned, exactly the named attribute.
    (tmp_path / "user_models_for_reliability.py").write_text("def build():\n    return 'built'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_factory("user_models_for_reliability:build")() == "built"
    # A pickled model file given where a factory is expected is rejected before anything is read.
    pickled = write_malicious_pickle(tmp_path, "model.pt")
    with pytest.raises(ValueError, match="model: expected 'package.module:factory'"):
        import_factory(str(pickled))
    assert not (tmp_path / MARKER).exists()


def test_a_missing_dependency_inside_the_model_module_stays_an_import_error(tmp_path, monkeypatch):
    (tmp_path / "user_module_needing_xyz.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_xyz"):
        import_factory("user_module_needing_xyz:build")
    sys.modules.pop("user_module_needing_xyz", None)


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _name(call: ast.Call) -> str:
    return ast.unparse(call.func)


def _keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def test_every_loader_in_the_package_is_safe():
    """Static: no pickle / dill / joblib / marshal anywhere; every torch.load has weights_only=True; every
    numpy.load has allow_pickle=False."""
    problems, loads = [], 0
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = path.relative_to(PACKAGE.parent)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
                if any(n.split(".")[0] in ("pickle", "dill", "cloudpickle", "joblib", "marshal", "shelve") for n in names):
                    problems.append(f"{where}:{node.lineno}: imports an unpickler")
        for call in _calls(tree):
            name = _name(call)
            if name.endswith("torch.load"):
                loads += 1
                flag = _keyword(call, "weights_only")
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    problems.append(f"{where}:{call.lineno}: torch.load without weights_only=True")
            if name in ("np.load", "numpy.load"):
                loads += 1
                flag = _keyword(call, "allow_pickle")
                if not (isinstance(flag, ast.Constant) and flag.value is False):
                    problems.append(f"{where}:{call.lineno}: numpy.load without allow_pickle=False")
    assert not problems, "\n".join(problems)
    assert loads >= 1  # the scan sees the loaders (loading.py's torch.load at least)
