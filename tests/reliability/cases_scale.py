"""Bad-input cases of issue 16 ("reliability at scale"): direct LIFNetwork calls, dtypes, sparse input, dataset
runs that must not reuse stale results, damaged or oversized files, and the adapters that accept a model of
another framework. Cases whose fix belongs to another part of the project are listed as gaps (strict
``xfail``: they fail loudly once fixed, to be moved into the table proper)."""

from __future__ import annotations

import contextlib
import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from .cases import (
    BATCH,
    N_HIDDEN,
    N_IN,
    N_OUT,
    N_STEPS,
    Case,
    CommandFailed,
    attributor,
    cli,
    network,
    saliency,
    spikes,
)

SNNTORCH = (("snntorch", "snntorch"),)
NORSE = (("norse", "norse"),)
ADAPTERS_GAP = "the adapter accepts it and computes silently wrong outputs (the 'Any SNN in' issue fixes the cause)"


def _double_counts(counts) -> None:
    assert counts.dtype == torch.float64
    assert torch.equal(counts, network()(spikes()).double())  # the same spikes fire: integer counts agree


LIF, ED = "LIFNetwork.run", "explain_dataset"


def _lif_cases() -> list[Case]:
    x = spikes
    mask = torch.zeros(BATCH, N_HIDDEN, dtype=torch.bool)
    return [
        Case("lif-nan-spikes", LIF, "NaN in spikes, called directly", lambda: network().run(
             x().masked_fill(x() > 0, float("nan"))), ValueError, ("spikes", "finite")),
        Case("lif-nan-bias", "LIFNetwork()", "a NaN in biases[1]",
             lambda: _lif(biases=[None, torch.tensor([0.0, float("nan"), 0.0])]), ValueError, ("biases[1]", "finite")),
        Case("lif-silence-list", LIF, "silence = {'0': a list}",
             lambda: network().run(x(), silence={"0": mask.tolist()}), TypeError, ("silence['0']", "bool tensor", "list")),
        Case("lif-silence-float", LIF, "silence mask of 0.5 floats (would count as True)",
             lambda: network().run(x(), silence={"0": torch.full((BATCH, N_HIDDEN), 0.5)}), TypeError,
             ("silence['0']", "bool mask", "torch.float32")),
        Case("lif-silence-not-dict", LIF, "silence = a list of masks",
             lambda: network().run(x(), silence=[mask]), TypeError, ("silence", "dict of layer name")),
        Case("lif-sparse", LIF, "sparse COO spikes", lambda: network().run(x().to_sparse()), TypeError,
             ("spikes", "dense tensor", "sparse_coo")),
        Case("lif-half", LIF, "a network converted to float16", lambda: network().half().run(x()), TypeError,
             ("network", "float32 or float64", "torch.float16")),
        Case("lif-bfloat16", LIF, "a network converted to bfloat16", lambda: network().bfloat16().run(x()), TypeError,
             ("network", "float32 or float64", "torch.bfloat16")),
        Case("lif-float64", LIF, "a network converted to float64, float32 spikes (legal)",
             lambda: network().double().run(x()), outcome="float64 counts, equal to the float32 network's",
             check=_double_counts),
        Case("lif-load-beta", "LIFNetwork.load_state_dict", "a state dict with beta = 1.5",
             lambda: network().load_state_dict({**network().state_dict(), "beta": torch.tensor([0.9, 1.5])}),
             ValueError, ("state_dict['beta']", "[0.0, 1.0]")),
        Case("lif-load-nan-weights", "LIFNetwork.load_state_dict", "a state dict with NaN weights",
             lambda: network().load_state_dict({**network().state_dict(),
                                               "weights.0": torch.full((N_IN, N_HIDDEN), float("nan"))}),
             ValueError, ("state_dict['weights.0']", "finite")),
        Case("attr-sparse", "SpikeAttributor.attribute", "sparse COO input_spikes",
             lambda: attributor().attribute(x().to_sparse(), network()), TypeError, ("input_spikes", "dense tensor")),
        Case("sal-sparse", "TemporalSaliency.explain", "sparse COO input_spikes",
             lambda: saliency().explain(x().to_sparse()), TypeError, ("input_spikes", "dense tensor")),
        Case("topk-np-int", "AttributionResult.top_k", "sample = np.int64(1) (legal)",
             lambda: attributor().attribute(x(), network()).top_k(3, sample=np.int64(1)),
             outcome="the same as sample=1", check=_same_as_sample_1),
    ]


def _same_as_sample_1(found) -> None:
    assert found == attributor().attribute(spikes(), network()).top_k(3, sample=1)


def _lif(**kwargs):
    from sc_neurocore.models import LIFNetwork

    from .cases import weights

    return LIFNetwork(weights(), **kwargs)


# -- dataset runs ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _folder():
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def _run(out: Path, model=None, dataset=None, **kwargs):
    from torch.utils.data import TensorDataset

    from sc_neurocore import explain_dataset

    model = network() if model is None else model
    dataset = TensorDataset(spikes(8)) if dataset is None else dataset
    return explain_dataset(kwargs.pop("explainer", "saliency"), model, dataset, out, batch_size=4, progress=False,
                           **kwargs)


def _stale(change: dict):
    from sc_neurocore.models import LIFNetwork

    from .cases import weights

    with _folder() as out:
        _run(out)
        return _run(out, model=LIFNetwork(weights(), **{"beta": 0.9, "threshold": 0.5, **change}))


def _dense_then_sparse():
    with _folder() as out:
        _run(out)
        return _run(out, sparse=True)


def _changed_samples():
    from torch.utils.data import TensorDataset

    with _folder() as out:
        _run(out)
        other = spikes(8)
        other[5, 0, 0] = 1 - other[5, 0, 0]
        return _run(out, dataset=TensorDataset(other))


def _busy():
    from sc_neurocore.distributed import folder_lock

    with _folder() as out, folder_lock(out):
        return _run(out)


def _ragged():
    class Ragged(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            return torch.zeros(N_STEPS + index % 2, N_IN)

    with _folder() as out:
        return _run(out, dataset=Ragged())


def _all_explained(explained_samples) -> None:
    assert explained_samples == 8


def _np_int_targets():
    from sc_neurocore import load_explanations

    with _folder() as out:
        _run(out / "np", targets=np.int64(1))
        _run(out / "int", targets=1)
        np_run, int_run = load_explanations(out / "np"), load_explanations(out / "int")
        assert torch.equal(np_run.scores, int_run.scores) and np_run.manifest["targets"] == 1
        return np_run.manifest["summary"]["explained_samples"]


def _manifest(text: str):
    from sc_neurocore import load_explanations

    with _folder() as out:
        (out / "manifest.json").write_text(text)
        return load_explanations(out)


def _npz(kind: str, **kwargs):
    from sc_neurocore.distributed import SpikeFileDataset

    with _folder() as folder:
        return SpikeFileDataset(_npz_file(folder, kind), **kwargs)


def _npz_item(index):
    from sc_neurocore.distributed import SpikeFileDataset

    with _folder() as folder:
        path = folder / "spikes.npz"
        np.savez(path, spikes=spikes(4).numpy())
        return SpikeFileDataset(path)[index]


def _is_sample_3(item) -> None:
    assert torch.equal(item, spikes(4)[3])


def _npz_file(folder: Path, kind: str) -> Path:
    path = folder / f"{kind}.npz"
    if kind == "truncated":
        np.savez(path, spikes=np.zeros((4, N_STEPS, N_IN), np.float32))
        path.write_bytes(path.read_bytes()[:200])
    elif kind == "not-npy":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("spikes", b"\0" * 64)
    else:  # deflated: 4 MB of zeros in a few kB
        np.savez_compressed(path, spikes=np.zeros((1000, 100, 10), np.float32))
    return path


def _cli_npz(kind: str):
    with _folder() as folder:
        return cli("explain-dataset", "--model", "tests.reliability.cases:network", "--dataset",
                   str(_npz_file(folder, kind)), "--method", "saliency", "--out", str(folder / "out"))


def _cli_twice(*second: str):
    with _folder() as folder:
        data = folder / "spikes.npz"
        np.savez(data, spikes=spikes(8).numpy())
        common = ("--dataset", str(data), "--method", "saliency", "--out", str(folder / "out"), "--no-progress")
        cli("explain-dataset", "--model", "tests.reliability.cases:network", *common)
        return cli("explain-dataset", "--model", "tests.reliability.cases_scale:hotter_network", *common, *second)


def hotter_network():
    """The table's network with another threshold (a CLI factory)."""
    from sc_neurocore.models import LIFNetwork

    from .cases import weights

    return LIFNetwork(weights(), beta=0.9, threshold=0.3)


def _cli_busy():
    from sc_neurocore.distributed import folder_lock

    with _folder() as folder:
        data = folder / "spikes.npz"
        np.savez(data, spikes=spikes(8).numpy())
        (folder / "out").mkdir()
        with folder_lock(folder / "out"):
            return cli("explain-dataset", "--model", "tests.reliability.cases:network", "--dataset", str(data),
                       "--method", "saliency", "--out", str(folder / "out"))


def _dataset_cases() -> list[Case]:
    return [
        Case("ed-stale-threshold", ED, "a finished folder rerun with another threshold",
             lambda: _stale({"threshold": 0.3}), ValueError, ("out_dir", "other settings", "the model", "overwrite=True")),
        Case("ed-stale-reset", ED, "a finished folder rerun with reset='zero'",
             lambda: _stale({"reset": "zero"}), ValueError, ("out_dir", "the model")),
        Case("ed-stale-samples", ED, "a finished folder rerun with one spike changed (same length)",
             _changed_samples, ValueError, ("out_dir", "the dataset's samples changed")),
        Case("ed-busy", ED, "a folder another live run is writing", _busy, ValueError,
             ("out_dir", "being written by another run", "pid")),
        Case("ed-ragged", ED, "items of different T", _ragged, ValueError, ("dataset", "same shape (T, N)")),
        Case("ed-meta-model", ED, "a model on the 'meta' device", lambda: _run(Path("unused"), model=network().to("meta")),
             ValueError, ("model", "'meta' device")),
        Case("ed-metadata-nan", ED, "metadata = {'x': NaN}", lambda: _run(Path("unused"), metadata={"x": float("nan")}),
             ValueError, ("metadata", "NaN")),
        Case("ed-sparse-causal", ED, "sparse=True with causal importance", lambda: _run(Path("unused"),
             explainer="causal", sparse=True), ValueError, ("sparse", "one score per neuron", "attribution and saliency")),
        Case("ed-sparse-str", ED, "sparse = 'yes'", lambda: _run(Path("unused"), sparse="yes"), TypeError,
             ("sparse", "True or False")),
        Case("ed-dense-as-sparse", ED, "a finished dense folder rerun with sparse=True", _dense_then_sparse,
             ValueError, ("out_dir", "the shard layout", "overwrite=True")),
        Case("ed-layer-int", ED, "layer = 0 (an int)", lambda: _run(Path("unused"), explainer="causal", layer=0),
             TypeError, ("layer", "a str")),
        Case("ed-np-int-targets", ED, "targets = np.int64(1) (legal)", _np_int_targets,
             outcome="the same results as targets=1, recorded as 1", check=_all_explained),
        Case("le-no-shards", "load_explanations", "a manifest without 'shards'", lambda: _manifest('{"format": 1}'),
             ValueError, ("out_dir", "not an sc-neurocore manifest")),
        Case("le-bad-json", "load_explanations", "a manifest that is not JSON", lambda: _manifest("{shards"),
             ValueError, ("out_dir", "not valid JSON")),
        Case("le-escaping-shard", "load_explanations", "a manifest naming a shard outside the folder",
             lambda: _manifest(json.dumps({"shards": [{"file": "../../etc/passwd", "sha256": "0"}]})), ValueError,
             ("out_dir", "not an sc-neurocore manifest")),
        Case("sfd-truncated", "SpikeFileDataset", "a truncated .npz", lambda: _npz("truncated"), ValueError,
             ("dataset", "not a readable .npz file")),
        Case("sfd-not-npy", "SpikeFileDataset", "an .npz member 'spikes' that is not .npy", lambda: _npz("not-npy"),
             ValueError, ("dataset", "not a .npy array")),
        Case("sfd-too-big", "SpikeFileDataset", "a deflated .npz inflating past max_bytes",
             lambda: _npz("deflated", max_bytes=1 << 20), ValueError, ("dataset", "more than max_bytes")),
        Case("sfd-max-bytes", "SpikeFileDataset", "max_bytes = 0", lambda: _npz("deflated", max_bytes=0), ValueError,
             ("max_bytes", "positive int")),
        Case("sfd-float-index", "SpikeFileDataset[index]", "index = 1.5", lambda: _npz_item(1.5), TypeError,
             ("index", "int sample index")),
        Case("sfd-np-index", "SpikeFileDataset[index]", "index = np.int64(3) (legal)", lambda: _npz_item(np.int64(3)),
             outcome="sample 3, as for index=3", check=_is_sample_3),
        Case("cli-ed-truncated-npz", "sc-neurocore explain-dataset", "--dataset: a truncated .npz",
             lambda: _cli_npz("truncated"), CommandFailed, ("error: dataset:", "not a readable .npz")),
        Case("cli-ed-not-npy", "sc-neurocore explain-dataset", "--dataset: an .npz member that is not .npy",
             lambda: _cli_npz("not-npy"), CommandFailed, ("error: dataset:", "not a .npy array")),
        Case("cli-ed-stale", "sc-neurocore explain-dataset", "a finished --out rerun with another threshold",
             lambda: _cli_twice(), CommandFailed, ("error: out_dir:", "the model", "--overwrite")),
        Case("cli-ed-busy", "sc-neurocore explain-dataset", "an --out another live run is writing",
             _cli_busy, CommandFailed, ("error: out_dir:", "being written by another run")),
    ]


# -- loaders -----------------------------------------------------------------------------------------------
def _idx(content: bytes, gzipped: bool = False, **kwargs):
    import gzip

    from sc_neurocore.data.mnist import read_idx

    with _folder() as folder:
        path = folder / "images.idx"
        path.write_bytes(gzip.compress(content) if gzipped else content)
        if gzipped == "truncated":
            path.write_bytes(path.read_bytes()[:-6])
        return read_idx(path, **kwargs)


HEADER = bytes([0, 0, 8, 1]) + np.array([5], dtype=">i4").tobytes()


def _train_on(content: bytes):
    """``python -m sc_neurocore.data.train`` with MNIST files that are not IDX; a failure becomes CommandFailed
    like the ``sc-neurocore`` dispatcher's."""
    import io

    from sc_neurocore.data.train import main

    with _folder() as folder:
        path = folder / "images.idx"
        path.write_bytes(content)
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            try:
                status = main(["--out", str(folder), "--mnist-images", str(path), "--mnist-labels", str(path),
                               "--mnist-test-images", str(path), "--mnist-test-labels", str(path)])
            except SystemExit as stop:
                status = stop.code if isinstance(stop.code, int) else 1
        if status:
            raise CommandFailed(status, stderr.getvalue())
        return status


def _loader_cases() -> list[Case]:
    return [
        Case("idx-not-idx", "data.read_idx", "a text file", lambda: _idx(b"hello, not an IDX file"), ValueError,
             ("path", "not an unsigned-byte IDX file")),
        Case("idx-bad-gzip", "data.read_idx", "a truncated gzip", lambda: _idx(HEADER + bytes(5), gzipped="truncated"),
             ValueError, ("path", "not a readable gzip file")),
        Case("idx-longer", "data.read_idx", "more values than the header says", lambda: _idx(HEADER + bytes(6)),
             ValueError, ("path", "holds more values")),
        Case("idx-shorter", "data.read_idx", "fewer values than the header says", lambda: _idx(HEADER + bytes(4)),
             ValueError, ("path", "holds 4 values")),
        Case("idx-too-big", "data.read_idx", "a header giving more than max_bytes",
             lambda: _idx(HEADER + bytes(5), max_bytes=4), ValueError, ("path", "more than max_bytes=4")),
        Case("cli-train-not-idx", "python -m sc_neurocore.data.train", "--mnist-images: a text file",
             lambda: _train_on(b"not an IDX file"), CommandFailed, ("error:", "not an unsigned-byte IDX file")),
    ]


# -- adapters: the wrong front end, dtypes (the adapters' own fixes) -----------------------------------------
def _adapter_cases() -> list[Case]:
    from .landed import norse_stack, snntorch_stack

    def from_norse(model):
        from sc_neurocore.adapters import from_norse as build

        return build(model)

    def from_module(model, **kwargs):
        from sc_neurocore.adapters import from_module as build

        return build(model, **kwargs)

    def from_snntorch(model):
        from sc_neurocore.adapters import from_snntorch as build

        return build(model)

    def float64_outputs(outputs) -> None:
        assert outputs.dtype == torch.float64 and outputs.shape == (BATCH, N_OUT)

    x = spikes
    return [
        Case("norse-given-snntorch", "adapters.from_norse", "an snnTorch Sequential",
             lambda: from_norse(snntorch_stack()).run(x()), ValueError, ("model", "from_snntorch"),
             needs=SNNTORCH),
        Case("module-given-snntorch", "adapters.from_module", "an snnTorch Sequential with time_first=True",
             lambda: from_module(snntorch_stack(), time_first=True).run(x()), ValueError,
             ("model", "step-wise neuron is being fed the whole sequence"), needs=SNNTORCH),
        Case("norse-given-linear", "adapters.from_norse", "nn.Linear(6, 3), no neuron at all",
             lambda: from_norse(torch.nn.Linear(N_IN, N_OUT)).run(x()), ValueError, ("model", "neuron", "from_module"),
             needs=NORSE),
        Case("snn-float64", "adapter.run", "an snnTorch Sequential in float64 (its own forward fails: snnTorch's "
             "spike functions emit float32 spikes)", lambda: from_snntorch(snntorch_stack().double()).run(x()),
             ValueError, ("model", "float64", "model.float()"), needs=SNNTORCH),
        Case("snn-half", "adapter.run", "an snnTorch model in float16",
             lambda: from_snntorch(snntorch_stack().half()).run(x()), TypeError, ("model", "torch.float16"),
             needs=SNNTORCH),
        Case("norse-float64", "adapter.run", "a Norse model in float64 (legal)",
             lambda: from_norse(norse_stack().double()).run(x()), outcome="float64 outputs (B, C)",
             check=float64_outputs, needs=NORSE),
        Case("norse-half", "adapter.run", "a Norse model in float16",
             lambda: from_norse(norse_stack().half()).run(x()), TypeError, ("model", "torch.float16"),
             needs=NORSE),
    ]


def cases() -> list[Case]:
    return _lif_cases() + _dataset_cases() + _loader_cases() + _adapter_cases()
