"""Tests of `sc_neurocore.distributed`: whole-dataset explanations, sharded, resumable, on torchrun.

The multi-process tests launch real ``torchrun`` jobs as a cluster launches them: two "nodes" on this
machine (``--nnodes 2 --nproc-per-node 1``, one torchrun agent per node, a static rendezvous on
127.0.0.1, gloo) running the ``sc-neurocore explain-dataset`` command, and compare what they write with a
single in-process rank.
The factories below (``make_model``, ``make_dataset``) are what those jobs import by name; the dataset
honours ``SC_NEUROCORE_TEST_KILL_AT_SAMPLE`` so that a test can SIGKILL the rank that reads that sample.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from sc_neurocore import LIFNetwork
from sc_neurocore.distributed import SpikeFileDataset, explain_dataset, load_explanations
from sc_neurocore.explain import CausalImportance, SpikeAttributor, TemporalSaliency

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
N_SAMPLES, N_STEPS, N_INPUTS, N_HIDDEN, N_OUTPUTS = 96, 20, 24, 16, 5
BATCH, SHARD = 8, 8  # 12 shards: rank 0 takes 0, 2, 4, ...; rank 1 takes 1, 3, 5, ...
KILL_ENV = "SC_NEUROCORE_TEST_KILL_AT_SAMPLE"


# -- what the torchrun jobs import by name -------------------------------------------------------------------
def make_model(seed: int = 0) -> LIFNetwork:
    """A 24-16-5 LIF network with seeded weights scaled so that hidden and output neurons fire."""
    generator = torch.Generator().manual_seed(seed)
    return LIFNetwork([torch.randn(N_INPUTS, N_HIDDEN, generator=generator) * 0.8,
                       torch.randn(N_HIDDEN, N_OUTPUTS, generator=generator) * 0.8], beta=0.9, threshold=0.5)


def spikes_and_labels(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    spikes = (torch.rand(N_SAMPLES, N_STEPS, N_INPUTS, generator=generator) < 0.3).float()
    return spikes, torch.randint(0, N_OUTPUTS, (N_SAMPLES,), generator=generator)


class KillableSpikes(Dataset):
    """Seeded ``(spikes, label)`` items; the process reading sample ``$SC_NEUROCORE_TEST_KILL_AT_SAMPLE`` is
    SIGKILLed, as a crashed node or an out-of-memory kill would end it."""

    def __init__(self) -> None:
        self.spikes, self.labels = spikes_and_labels()
        kill_at = os.environ.get(KILL_ENV)
        self.kill_at = int(kill_at) if kill_at else None

    def __len__(self) -> int:
        return N_SAMPLES

    def __getitem__(self, index: int):
        if index == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.spikes[index], self.labels[index]


def make_dataset() -> KillableSpikes:
    return KillableSpikes()


# -- helpers ----------------------------------------------------------------------------------------------------
def trained_weights(path: Path) -> LIFNetwork:
    """Save the weights of another seed: the job must load them rather than keep the factory's."""
    from conftest import require_module

    safetensors = require_module("safetensors.torch", "data")
    model = make_model(seed=7)
    safetensors.save_file({name: t.contiguous() for name, t in model.state_dict().items()}, str(path))
    return model


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Job(NamedTuple):
    """What the torchrun agents of all nodes printed, and whether every one of them succeeded."""

    returncode: int
    stdout: str
    stderr: str


def torchrun_nodes(n_nodes: int, arguments: list[str], env: dict | None = None, timeout: float = 150) -> Job:
    """``torchrun --nnodes n_nodes --nproc-per-node 1 --node-rank r ...`` for every ``r``: two "nodes" on this
    machine, a static rendezvous on 127.0.0.1 (what a cluster launch does, one agent per node)."""
    port = free_port()
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT)]), OMP_NUM_THREADS="1",
                       GLOO_SOCKET_IFNAME="lo", **(env or {}))
    agents = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", str(n_nodes),
                                "--nproc-per-node", "1", "--node-rank", str(node), "--master-addr", "127.0.0.1",
                                "--master-port", str(port), "-m", "sc_neurocore.cli", "explain-dataset", *arguments],
                               env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
              for node in range(n_nodes)]
    outputs = []
    try:
        for agent in agents:
            outputs.append(agent.communicate(timeout=timeout))
    finally:
        for agent in agents:
            if agent.poll() is None:
                agent.kill()
                agent.communicate()
    status = max(abs(agent.returncode) for agent in agents)
    return Job(status, "".join(out for out, _ in outputs), "".join(err for _, err in outputs))


def receipts(out_dir: Path) -> dict[int, dict]:
    found = {}
    for path in sorted(out_dir.glob("shard-*.json")):
        receipt = json.loads(path.read_text())
        found[receipt["shard"]] = receipt
    return found


def assert_same(a, b) -> None:
    for name in ("scores", "targets", "outputs", "sample_index", "labels"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and torch.equal(x, y), name  # bit for bit


# -- two ranks on torchrun --------------------------------------------------------------------------------------
def untrained_digits_network() -> LIFNetwork:
    """The shipped digits network's architecture with random weights: the job must load the trained ones."""
    from sc_neurocore.data import model_config

    config = model_config(8)
    sizes = config["layers"]
    return LIFNetwork([torch.randn(n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)], beta=config["beta"],
                      threshold=config["threshold"], reset=config["reset"])


def test_two_nodes_of_one_rank_write_bit_identical_results_to_one_rank(tmp_path):
    from conftest import require_module

    safetensors = require_module("safetensors.torch", "data")
    require_module("sklearn", "data")
    from sc_neurocore.data import load_digits, pretrained_network

    test = load_digits("test")  # 355 real handwritten digits as spikes (355, 25, 64)
    data = tmp_path / "digits.safetensors"
    safetensors.save_file({"spikes": test.spikes, "labels": test.labels}, str(data))
    weights = ROOT / "sc_neurocore" / "data" / "digits8.safetensors"
    trained = pretrained_network(8)

    one = explain_dataset(TemporalSaliency(trained), trained, SpikeFileDataset(data), tmp_path / "one",
                          batch_size=16, shard_size=32, progress=False)
    run = torchrun_nodes(2, ["--model", "test_distributed:untrained_digits_network", "--weights", str(weights),
                             "--dataset", str(data), "--method", "saliency", "--out", str(tmp_path / "two"),
                             "--batch-size", "16", "--shard-size", "32"])
    assert run.returncode == 0, run.stdout + run.stderr
    assert "explained 355 of 355 samples in 12 of 12 shards" in run.stdout and "on 2 rank(s)" in run.stdout
    assert "rank 0" in run.stderr and "rank 1" in run.stderr  # one progress bar per rank, one rank per node

    # Each rank took its own deterministic, disjoint half of the shards.
    assert {k: r["rank"] for k, r in receipts(tmp_path / "two").items()} == {k: k % 2 for k in range(12)}
    two = load_explanations(tmp_path / "two")
    assert_same(load_explanations(tmp_path / "one"), two)
    assert two.sample_index.tolist() == list(range(355))
    manifest = two.manifest
    assert [s["sha256"] for s in manifest["shards"]] == [s["sha256"] for s in one_manifest(tmp_path / "one")["shards"]]
    assert [(s["start"], s["stop"]) for s in manifest["shards"]][-1] == (352, 355)
    assert manifest["summary"]["world_size"] == 2 and one.world_size == 1
    assert manifest["method"] == "saliency" and manifest["parameters"]["significance"] == 1e-6
    assert manifest["metadata"]["model_factory"] == "test_distributed:untrained_digits_network"
    assert manifest["model"]["state_sha256"] == one_manifest(tmp_path / "one")["model"]["state_sha256"]
    # The job explained the trained network (it loaded the weights): it reads the digits.
    assert (two.outputs.argmax(dim=1) == test.labels).float().mean() > 0.9
    assert int((two.scores != 0).sum()) > 1000  # removing spikes changes the output: not a vacuous comparison


def one_manifest(out_dir: Path) -> dict:
    return json.loads((out_dir / "manifest.json").read_text())


def test_a_killed_node_fails_the_job_loses_only_its_current_shard_and_a_rerun_loses_and_duplicates_nothing(tmp_path):
    out = tmp_path / "run"
    arguments = ["--model", "test_distributed:make_model", "--dataset", "test_distributed:make_dataset",
                 "--method", "attribution", "--mode", "gated", "--targets", "labels", "--out", str(out),
                 "--batch-size", str(BATCH), "--shard-size", str(SHARD), "--no-progress"]
    # The rank of node 1 dies reading shard 5's first sample.
    killed = torchrun_nodes(2, arguments, env={KILL_ENV: str(5 * SHARD)})
    assert killed.returncode != 0, killed.stdout + killed.stderr
    assert "Signal 9 (SIGKILL)" in killed.stderr  # the rank died as a crashed node's would, not by an exception
    # The survivor on node 0 says so in one line, and how to resume.
    assert "error: rank 0 of 2: lost contact with another rank" in killed.stderr and "Rerun the same command" in \
        killed.stderr
    assert not (out / "manifest.json").exists()
    survivors = receipts(out)
    # Rank 1 had finished shards 1 and 3 and lost only shard 5; nothing else of rank 1 was written.
    assert {k for k in survivors if k % 2 == 1} == {1, 3}
    before = {k: (out / r["file"]).stat().st_mtime_ns for k, r in survivors.items()}

    rerun = torchrun_nodes(2, arguments)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    manifest = one_manifest(out)
    assert manifest["summary"]["skipped_shards"] == len(survivors)
    assert manifest["summary"]["explained_shards"] == 12 - len(survivors)
    # Kept shards were not rewritten.
    assert all((out / survivors[k]["file"]).stat().st_mtime_ns == mtime for k, mtime in before.items())
    # The shards still to do were dealt round-robin over both ranks, so the resumed run is balanced.
    redone = [r["rank"] for k, r in sorted(receipts(out).items()) if k not in survivors]
    assert redone == [i % 2 for i in range(len(redone))]

    merged = load_explanations(out)
    index = merged.sample_index.tolist()
    assert len(index) == N_SAMPLES and len(set(index)) == N_SAMPLES  # 0 duplicated
    assert set(index) == set(range(N_SAMPLES))  # 0 lost
    model = make_model()
    reference = explain_dataset(SpikeAttributor(mode="gated"), model, make_dataset(), tmp_path / "reference",
                                batch_size=BATCH, shard_size=SHARD, targets="labels", progress=False)
    assert reference.explained_samples == N_SAMPLES
    assert_same(load_explanations(tmp_path / "reference"), merged)


# -- one process --------------------------------------------------------------------------------------------
@pytest.fixture
def model():
    return make_model()


@pytest.fixture
def dataset():
    return TensorDataset(*spikes_and_labels())


def test_results_equal_the_explainers_called_batch_by_batch(tmp_path, model, dataset):
    spikes, labels = dataset.tensors
    runs = {
        "saliency": (TemporalSaliency(model), "predicted", "input"),
        "causal": (CausalImportance(model), "labels", "0"),
        "attribution": (SpikeAttributor(decay=0.8), 3, "input"),
    }
    for method, (explainer, targets, layer) in runs.items():
        summary = explain_dataset(explainer, model, dataset, tmp_path / method, batch_size=BATCH, shard_size=20,
                                  targets=targets, layer=layer, progress=False)
        assert (summary.n_shards, summary.explained_shards, summary.explained_samples) == (5, 5, N_SAMPLES)
        merged = load_explanations(tmp_path / method)
        assert merged.sample_index.tolist() == list(range(N_SAMPLES))
        assert torch.equal(merged.labels, labels)
        assert torch.equal(merged.outputs, model(spikes))
        # Shards of 20 with batches of 8: batches are 8, 8, 4 inside every shard.
        starts = [s for shard in range(0, N_SAMPLES, 20) for s in range(shard, min(shard + 20, N_SAMPLES), 8)]
        for start in starts:
            stop = min(start + 8, (start // 20 + 1) * 20, N_SAMPLES)
            batch = spikes[start:stop]
            if targets == "predicted":
                expected_targets = model(batch).argmax(dim=1)
            elif targets == "labels":
                expected_targets = labels[start:stop]
            else:
                expected_targets = torch.full((stop - start,), targets)
            assert torch.equal(merged.targets[start:stop], expected_targets)
            if method == "saliency":
                direct = explainer.explain(batch, output_neuron=expected_targets).saliency_map()
            elif method == "causal":
                direct = explainer.explain(batch, output_neuron=expected_targets, layer="0").importance_map()
            else:
                direct = explainer.attribute(batch, model, output_neuron=expected_targets).attribution_map()
            assert torch.equal(merged.scores[start:stop], direct), (method, start)
        assert merged.manifest["method"] == method
    assert load_explanations(tmp_path / "causal").scores.shape == (N_SAMPLES, N_HIDDEN)
    assert load_explanations(tmp_path / "saliency").manifest["targets"] == "predicted"


def test_a_corrupted_shard_is_detected_and_redone(tmp_path, model, dataset):
    out = tmp_path / "run"
    explain_dataset("saliency", model, dataset, out, batch_size=BATCH, shard_size=16, progress=False)
    original = load_explanations(out)
    shard = out / "shard-00002.npz"
    pristine = shard.read_bytes()
    corrupted = bytearray(pristine)
    corrupted[len(corrupted) // 2] ^= 0x01  # one flipped bit inside the scores
    shard.write_bytes(bytes(corrupted))
    with pytest.raises(ValueError, match="shard-00002.npz does not match its checksum"):
        load_explanations(out)
    (out / "shard-00004.json").unlink()  # a shard written without its receipt: partial
    (out / ".shard-00005.npz.x1y2.tmp").write_bytes(b"left by a killed writer")

    summary = explain_dataset("saliency", model, dataset, out, batch_size=BATCH, shard_size=16, progress=False)
    assert (summary.explained_shards, summary.redone_shards, summary.skipped_shards) == (2, 2, 4)
    assert summary.explained_samples == 32
    assert shard.read_bytes() == pristine  # redone bit for bit
    assert not list(out.glob(".*.tmp"))
    assert_same(original, load_explanations(out))

    again = explain_dataset("saliency", model, dataset, out, batch_size=BATCH, shard_size=16, progress=False)
    assert (again.explained_shards, again.skipped_shards, again.explained_samples) == (0, 6, 0)


def test_a_folder_of_another_run_is_refused_unless_overwrite(tmp_path, model, dataset):
    out = tmp_path / "run"
    explain_dataset("saliency", model, dataset, out, batch_size=BATCH, shard_size=16, progress=False)
    with pytest.raises(ValueError, match="out_dir: .* run with other settings"):
        explain_dataset("causal", model, dataset, out, batch_size=BATCH, shard_size=16, progress=False)
    with pytest.raises(ValueError, match="other settings"):  # other weights are another run too
        explain_dataset("saliency", make_model(seed=3), dataset, out, batch_size=BATCH, shard_size=16, progress=False)
    summary = explain_dataset("causal", model, dataset, out, batch_size=BATCH, shard_size=16, progress=False,
                              overwrite=True)
    assert summary.explained_shards == 6
    assert load_explanations(out).manifest["method"] == "causal"


def test_safetensors_shards_a_dataloader_and_the_model_is_left_untouched(tmp_path, model, dataset):
    from conftest import require_module

    require_module("safetensors.torch", "data")
    state = {name: t.clone() for name, t in model.state_dict().items()}
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True)  # its order is not used: samples go by index
    explainer = TemporalSaliency(model)
    explain_dataset(explainer, model, loader, tmp_path / "st", shard_size=24, shard_format="safetensors",
                    progress=False)
    explain_dataset(explainer, model, dataset, tmp_path / "npz", batch_size=BATCH, shard_size=24, progress=False)
    assert sorted(p.name for p in (tmp_path / "st").glob("shard-*.safetensors"))[-1] == "shard-00003.safetensors"
    assert_same(load_explanations(tmp_path / "st"), load_explanations(tmp_path / "npz"))
    assert explainer.run_fn is model and model.training
    assert all(torch.equal(state[name], t) for name, t in model.state_dict().items())


def test_a_real_snntorch_model_is_explained_as_the_explainers_explain_it(tmp_path):
    from conftest import require_module

    require_module("snntorch", "snntorch")
    from toy_models import random_spikes, snntorch_mlp

    from sc_neurocore.adapters import from_snntorch

    model = from_snntorch(snntorch_mlp([12, 10, 4], seed=3))
    spikes = random_spikes(batch=20, steps=15, n_inputs=12, seed=4)
    hidden = next(iter(model.neuron_layers))
    explain_dataset(CausalImportance(model), model, TensorDataset(spikes), tmp_path / "causal", batch_size=8,
                    shard_size=16, layer=hidden, progress=False)
    explain_dataset(TemporalSaliency(model), model, TensorDataset(spikes), tmp_path / "saliency", batch_size=8,
                    shard_size=16, progress=False)
    causal, saliency = load_explanations(tmp_path / "causal"), load_explanations(tmp_path / "saliency")
    for start, stop in [(0, 8), (8, 16), (16, 20)]:  # the batches: 8, 8 in shard 0, then 4 in shard 1
        batch, target = spikes[start:stop], causal.targets[start:stop]
        assert torch.equal(target, model.run(batch).argmax(dim=1))
        assert torch.equal(causal.scores[start:stop],
                           CausalImportance(model).explain(batch, output_neuron=target, layer=hidden).importance_map())
        assert torch.equal(saliency.scores[start:stop],
                           TemporalSaliency(model).explain(batch, output_neuron=target).saliency_map())
    assert causal.scores.shape == (20, model.neuron_layers[hidden]) and bool(causal.scores.any())


def test_spike_files_load_lazily_and_survive_pickling_into_workers(tmp_path):
    import pickle

    from conftest import require_module

    safetensors = require_module("safetensors.torch", "data")
    spikes, labels = spikes_and_labels()
    safetensors.save_file({"spikes": spikes, "labels": labels}, str(tmp_path / "s.safetensors"))
    dataset = SpikeFileDataset(tmp_path / "s.safetensors")
    first = dataset[5]  # opens the memory map
    copy = pickle.loads(pickle.dumps(dataset))  # what a spawned DataLoader worker receives
    for item in (first, copy[5]):
        assert torch.equal(item[0], spikes[5]) and int(item[1]) == int(labels[5])
    assert len(copy) == N_SAMPLES
    safetensors.save_file({"spikes": spikes, "labels": labels[:3]}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match=r"dataset: expected 'labels' of shape \(96,\)"):
        SpikeFileDataset(tmp_path / "bad.safetensors")
    safetensors.save_file({"trains": spikes}, str(tmp_path / "none.safetensors"))
    with pytest.raises(ValueError, match="no array named 'spikes'"):
        SpikeFileDataset(tmp_path / "none.safetensors")
    with pytest.raises(IndexError):
        dataset[N_SAMPLES]


def test_the_command_runs_in_one_process_and_reports_bad_input(tmp_path, capsys):
    from sc_neurocore.cli import main

    spikes, labels = spikes_and_labels()
    data = tmp_path / "spikes.npz"
    import numpy as np

    np.savez(data, spikes=spikes.numpy(), labels=labels.numpy())
    assert main(["explain-dataset", "--model", "test_distributed:make_model", "--dataset", str(data),
                 "--method", "causal", "--layer", "1", "--targets", "2", "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 0
    assert "explained 96 of 96 samples" in capsys.readouterr().out
    merged = load_explanations(tmp_path / "out")
    assert merged.scores.shape == (N_SAMPLES, N_OUTPUTS) and bool((merged.targets == 2).all())
    assert merged.manifest["parameters"]["layer"] == "1"
    # Attribution defaults to the recommended mode='auto' (the model is at hand), equal to the library call.
    assert main(["explain-dataset", "--model", "test_distributed:make_model", "--dataset", str(data),
                 "--method", "attribution", "--targets", "labels", "--out", str(tmp_path / "auto"),
                 "--no-progress"]) == 0
    auto = load_explanations(tmp_path / "auto")
    assert auto.manifest["parameters"] == {"mode": "auto"}
    direct = SpikeAttributor(mode="auto").attribute(spikes[:BATCH], make_model(), output_neuron=labels[:BATCH])
    assert torch.equal(auto.scores[:BATCH], direct.attribution_map())

    assert main(["explain-dataset", "--model", "test_distributed:make_model", "--dataset", "nowhere",
                 "--method", "saliency", "--out", str(tmp_path / "bad")]) == 2
    assert "dataset: expected a .safetensors/.npz file" in capsys.readouterr().err
    assert main(["explain-dataset", "--model", "test_distributed:make_model", "--dataset", str(data),
                 "--method", "saliency", "--targets", "11", "--out", str(tmp_path / "bad")]) == 2
    assert "targets: expected values in [0, 5)" in capsys.readouterr().err
    assert main(["explain-dataset", "--model", "no_such_package.nets:build", "--dataset", str(data),
                 "--method", "saliency", "--out", str(tmp_path / "bad")]) == 2
    assert "model: cannot import 'no_such_package.nets'" in capsys.readouterr().err
    assert main(["explain-dataset", "--model", "test_distributed:make_model", "--dataset", "test_distributed:nothing",
                 "--method", "saliency", "--out", str(tmp_path / "bad")]) == 2
    assert "dataset: 'test_distributed' has no callable 'nothing'" in capsys.readouterr().err
    other = tmp_path / "other.pt"
    torch.save({"weights.0": torch.zeros(3, 3)}, other)
    assert main(["explain-dataset", "--model", "test_distributed:make_model", "--weights", str(other),
                 "--dataset", str(data), "--method", "saliency", "--out", str(tmp_path / "bad")]) == 2
    assert "does not fit the network test_distributed:make_model builds" in capsys.readouterr().err


class Stream(IterableDataset):
    def __iter__(self):
        yield torch.zeros(N_STEPS, N_INPUTS)


@pytest.mark.parametrize("call, error, match", [
    (lambda m, d, o: explain_dataset("gradients", m, d, o), ValueError, "explainer: expected one of"),
    (lambda m, d, o: explain_dataset(object(), m, d, o), TypeError, "explainer: expected a SpikeAttributor"),
    (lambda m, d, o: explain_dataset(TemporalSaliency(make_model()), m, d, o), ValueError,
     "explainer: this TemporalSaliency runs a different model"),
    (lambda m, d, o: explain_dataset("saliency", m, d, o, batch_size=0), ValueError, "batch_size: expected a positive"),
    (lambda m, d, o: explain_dataset("saliency", m, d, o, shard_size=2.5), ValueError, "shard_size"),
    (lambda m, d, o: explain_dataset("saliency", m, d, o, targets="best"), ValueError, "targets: expected one of"),
    (lambda m, d, o: explain_dataset("saliency", m, d, o, layer="0"), ValueError, "layer: only causal"),
    (lambda m, d, o: explain_dataset("saliency", m, d, o, shard_format="hdf5"), ValueError, "shard_format"),
    (lambda m, d, o: explain_dataset("saliency", m, d, o, metadata={"x": object()}), TypeError, "metadata"),
    (lambda m, d, o: explain_dataset("saliency", m, Stream(), o), TypeError, "IterableDataset"),
    (lambda m, d, o: explain_dataset("saliency", m, TensorDataset(torch.zeros(0, 3, 24)), o), ValueError, "empty"),
    (lambda m, d, o: explain_dataset("saliency", m, TensorDataset(torch.zeros(4, 3, 9)), o), ValueError,
     "dataset: samples have 9 input neurons but the model takes 24"),
    (lambda m, d, o: explain_dataset("saliency", m, TensorDataset(torch.zeros(4, 3, 24)), o, targets="labels"),
     ValueError, "targets: 'labels' needs a dataset"),
    (lambda m, d, o: explain_dataset("saliency", m, d, o, device="tpu:0"), ValueError, "device"),
])
def test_bad_input_is_refused_naming_the_argument(tmp_path, model, dataset, call, error, match):
    with pytest.raises(error, match=match):
        call(model, dataset, tmp_path / "out")


def test_on_a_gpu_results_come_back_to_the_cpu_and_agree_with_it(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device (the CPU paths are tested above)")
    from conftest import require_module

    require_module("sklearn", "data")
    from sc_neurocore.data import load_digits, pretrained_network

    test = load_digits("test")
    dataset, model = TensorDataset(test.spikes, test.labels), pretrained_network(8)
    for device in ("cpu", "cuda"):
        explain_dataset(TemporalSaliency(model), model, dataset, tmp_path / device, batch_size=64, shard_size=128,
                        device=device, progress=False)
    cpu, gpu = load_explanations(tmp_path / "cpu"), load_explanations(tmp_path / "cuda")
    assert gpu.manifest["device_type"] == "cuda" and gpu.scores.device.type == "cpu"
    assert next(model.parameters()).device.type == "cpu"  # the caller's model stayed where it was
    # Float sums may round differently on the GPU and flip a spike at the threshold, rarely.
    assert (gpu.targets == cpu.targets).float().mean() > 0.99
    assert (gpu.scores == cpu.scores).float().mean() > 0.999


def test_import_sc_neurocore_stays_light_and_exports_explain_dataset_lazily():
    check = ("import sys, sc_neurocore; assert 'sc_neurocore.distributed' not in sys.modules; "
             "import sc_neurocore.distributed as d; "
             "assert sc_neurocore.explain_dataset is d.explain_dataset; "
             "assert sc_neurocore.load_explanations is d.load_explanations")
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert run.returncode == 0, run.stderr
    with pytest.raises(AttributeError, match="no attribute 'explain_everything'"):
        import sc_neurocore

        _ = sc_neurocore.explain_everything


class DictSpikes(Dataset):
    """Items as mappings, the other layout datasets commonly use."""

    def __init__(self, with_labels: bool = True) -> None:
        self.spikes, self.labels = spikes_and_labels()
        self.with_labels = with_labels

    def __len__(self) -> int:
        return 20

    def __getitem__(self, index: int):
        item = {"spikes": self.spikes[index]}
        if self.with_labels:
            item["labels"] = self.labels[index]
        return item


def test_items_as_mappings_and_bad_items(tmp_path, model):
    explain_dataset("attribution", model, DictSpikes(), tmp_path / "dict", batch_size=8, targets="labels",
                    progress=False)
    merged = load_explanations(tmp_path / "dict")
    spikes, labels = spikes_and_labels()
    assert torch.equal(merged.labels, labels[:20]) and torch.equal(merged.targets, labels[:20])
    direct = SpikeAttributor(mode="auto").attribute(spikes[:8], model, output_neuron=labels[:8]).attribution_map()
    assert torch.equal(merged.scores[:8], direct)
    with pytest.raises(ValueError, match="targets: 'labels' needs a dataset"):
        explain_dataset("attribution", model, DictSpikes(with_labels=False), tmp_path / "nolabels", targets="labels")
    three = TensorDataset(spikes, labels, labels)
    with pytest.raises(ValueError, match=r"dataset: expected items spikes or \(spikes, label\), got tuples of 3"):
        explain_dataset("attribution", model, three, tmp_path / "three")
    flat = TensorDataset(spikes.reshape(N_SAMPLES, -1))
    with pytest.raises(ValueError, match=r"dataset: expected spikes of shape \(T, N\) per item"):
        explain_dataset("attribution", model, flat, tmp_path / "flat")
    floats = TensorDataset(spikes, labels.float())
    with pytest.raises(ValueError, match="dataset: expected one integer label per item"):
        explain_dataset("attribution", model, floats, tmp_path / "floats")


@pytest.mark.parametrize("method", ["attribution", "saliency"])
def test_sparse_runs_keep_the_scores_at_the_spikes_only(tmp_path, method):
    model = make_model()
    spikes, labels = spikes_and_labels()
    spikes *= torch.rand(spikes.shape, generator=torch.Generator().manual_seed(3)) < 0.3  # ~9% of the entries
    spikes[3] = 0  # a sample without a spike: no entry
    spikes[7] *= torch.rand(spikes[7].shape, generator=torch.Generator().manual_seed(4)) * 2  # graded spikes
    dataset = TensorDataset(spikes, labels)
    explain_dataset(method, model, dataset, tmp_path / "dense", batch_size=BATCH, shard_size=2 * BATCH,
                    progress=False)
    summary = explain_dataset(method, model, dataset, tmp_path / "sparse", batch_size=BATCH, shard_size=2 * BATCH,
                              progress=False, sparse=True)
    dense, sparse = load_explanations(tmp_path / "dense"), load_explanations(tmp_path / "sparse")
    assert sparse.scores.layout == torch.sparse_coo and sparse.scores.shape == dense.scores.shape
    assert sparse.scores._nnz() == int((spikes != 0).sum())  # one entry per input spike, whatever its score
    assert torch.equal(sparse.scores.to_dense(), dense.scores)  # bit for bit, and zero off the spikes
    assert bool((dense.scores[spikes == 0] == 0).all()) and int((dense.scores != 0).sum()) > 100
    assert torch.equal(sparse.targets, dense.targets) and torch.equal(sparse.outputs, dense.outputs)
    assert sparse.manifest["sparse"] is True and "scores" not in sparse.manifest["arrays"]
    # Smaller on disk than the dense shards: 8 bytes per spike against 4 per entry.
    size = {name: sum(path.stat().st_size for path in (tmp_path / name).glob("shard-*.npz"))
            for name in ("dense", "sparse")}
    assert size["sparse"] < size["dense"] / 2, size
    # A rerun resumes the sparse folder; the dense folder is not taken for a sparse run.
    again = explain_dataset(method, model, dataset, tmp_path / "sparse", batch_size=BATCH, shard_size=2 * BATCH,
                            progress=False, sparse=True)
    assert (again.explained_shards, again.skipped_shards) == (0, summary.n_shards)
    with pytest.raises(ValueError, match="the shard layout"):
        explain_dataset(method, model, dataset, tmp_path / "dense", batch_size=BATCH, shard_size=2 * BATCH,
                        progress=False, sparse=True)


def test_the_command_writes_sparse_shards(tmp_path, capsys):
    import numpy as np

    from sc_neurocore.cli import main

    spikes, labels = spikes_and_labels()
    data = tmp_path / "spikes.npz"
    np.savez(data, spikes=spikes.numpy(), labels=labels.numpy())
    assert main(["explain-dataset", "--model", "test_distributed:make_model", "--dataset", str(data),
                 "--method", "attribution", "--targets", "labels", "--sparse", "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 0
    merged = load_explanations(tmp_path / "out")
    direct = SpikeAttributor(mode="auto").attribute(spikes, make_model(), output_neuron=labels).attribution_map()
    assert torch.equal(merged.scores.to_dense(), direct)
