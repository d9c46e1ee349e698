"""A resume never returns old results for another model, dataset, method or target (issue 16, item 1).

A finished folder is rerun with one thing changed: a neuron parameter that lives outside the weights, the
reset mechanism, an adapter's readout, the dataset's samples (same length), the targets. Each rerun must
refuse, saying what changed and how to overwrite; ``overwrite=True`` recomputes, with a log line, and the
results then equal a fresh run. A change that cannot alter results (``max_memory``, batch size, workers)
resumes and keeps every shard.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from sc_neurocore import LIFNetwork
from sc_neurocore.distributed import explain_dataset, load_explanations, model_fingerprint
from sc_neurocore.explain import SpikeAttributor, TemporalSaliency

N_SAMPLES, N_STEPS, N_IN, N_HIDDEN, N_OUT = 24, 10, 12, 8, 4


def network(**kwargs) -> LIFNetwork:
    generator = torch.Generator().manual_seed(0)
    options = {"beta": 0.9, "threshold": 0.5, **kwargs}
    return LIFNetwork([torch.randn(N_IN, N_HIDDEN, generator=generator) * 0.8,
                       torch.randn(N_HIDDEN, N_OUT, generator=generator) * 0.8], **options)


def spikes(seed: int = 1) -> torch.Tensor:
    return (torch.rand(N_SAMPLES, N_STEPS, N_IN, generator=torch.Generator().manual_seed(seed)) < 0.3).float()


def run(out, model, data, explainer=None, **kwargs):
    explainer = TemporalSaliency(model) if explainer is None else explainer
    options = {"batch_size": 4, "shard_size": 8, "progress": False, **kwargs}
    return explain_dataset(explainer, model, TensorDataset(data), out, **options)


@pytest.mark.parametrize("change, words", [
    ({"threshold": 0.6}, "the model"),
    ({"beta": 0.8}, "the model"),
    ({"reset": "zero"}, "the model"),
])
def test_a_changed_neuron_parameter_is_refused_then_recomputed_on_overwrite(tmp_path, change, words, caplog):
    out = tmp_path / "run"
    run(out, network(), spikes())
    changed = network(**change)
    assert not torch.equal(changed(spikes()), network()(spikes()))  # the change alters the results
    with pytest.raises(ValueError, match=f"out_dir: .* other settings: {words}") as info:
        run(out, changed, spikes())
    assert "overwrite=True" in str(info.value) and "--overwrite" in str(info.value)
    with caplog.at_level(logging.WARNING, logger="sc_neurocore.distributed"):
        summary = run(out, changed, spikes(), overwrite=True)
    assert summary.explained_shards == 3 and "recomputing 3 shards" in caplog.text
    run(tmp_path / "fresh", changed, spikes())
    assert torch.equal(load_explanations(out).scores, load_explanations(tmp_path / "fresh").scores)


def test_changed_samples_of_the_same_length_are_refused(tmp_path):
    out = tmp_path / "run"
    run(out, network(), spikes())
    other = spikes()
    other[9, 3, 5] = 1 - other[9, 3, 5]  # one spike of one sample in shard 1
    with pytest.raises(ValueError, match="the dataset's samples changed .1 of 3 shards, e.g. shard-00001"):
        run(out, network(), other)
    summary = run(out, network(), other, overwrite=True)
    assert (summary.explained_shards, summary.skipped_shards) == (1, 2)  # only the changed shard is redone
    run(tmp_path / "fresh", network(), other)
    assert torch.equal(load_explanations(out).scores, load_explanations(tmp_path / "fresh").scores)
    assert load_explanations(out).manifest["dataset_sha256"] == load_explanations(tmp_path / "fresh").manifest[
        "dataset_sha256"]


def test_changed_labels_are_refused(tmp_path):
    labels = torch.arange(N_SAMPLES) % N_OUT
    data = spikes()
    explain_dataset("attribution", network(), TensorDataset(data, labels), tmp_path, batch_size=4, shard_size=8,
                    targets="labels", progress=False)
    with pytest.raises(ValueError, match="the dataset's samples"):
        explain_dataset("attribution", network(), TensorDataset(data, labels.flip(0)), tmp_path, batch_size=4,
                        shard_size=8, targets="labels", progress=False)


def test_other_targets_are_refused(tmp_path):
    run(tmp_path, network(), spikes(), targets=1)
    with pytest.raises(ValueError, match="the targets changed"):
        run(tmp_path, network(), spikes(), targets=2)


def test_what_cannot_change_results_resumes(tmp_path):
    out = tmp_path / "run"
    model = network()
    first = run(out, model, spikes())
    assert first.explained_shards == 3
    # max_memory only chunks perturbations, batch size only groups samples, workers only load them.
    again = run(out, model, spikes(), explainer=TemporalSaliency(model, max_memory=200_000), batch_size=8,
                num_workers=0)
    assert (again.explained_shards, again.skipped_shards) == (0, 3)
    # Gated and auto attribution are the exception: they read the recorded forward of the whole batch, whose
    # float32 products may round by a row's place in it.
    for mode in ("gated", "auto"):
        explain_dataset(SpikeAttributor(mode=mode), model, TensorDataset(spikes()), tmp_path / mode, batch_size=4,
                        shard_size=8, progress=False)
        with pytest.raises(ValueError, match="the batch_size changed"):
            explain_dataset(SpikeAttributor(mode=mode), model, TensorDataset(spikes()), tmp_path / mode,
                            batch_size=8, shard_size=8, progress=False)
    # auto takes its decays from the model: its unused `decay` does not refuse a resume.
    kept = explain_dataset(SpikeAttributor(decay=0.5, mode="auto"), model, TensorDataset(spikes()), tmp_path / "auto",
                           batch_size=4, shard_size=8, progress=False)
    assert kept.explained_shards == 0


def test_an_adapter_readout_is_part_of_the_key(tmp_path):
    from conftest import require_module

    require_module("snntorch", "snntorch")
    from toy_models import snntorch_mlp

    from sc_neurocore.adapters import from_snntorch

    count = from_snntorch(snntorch_mlp([N_IN, N_HIDDEN, N_OUT], seed=3), readout="count")
    membrane = from_snntorch(snntorch_mlp([N_IN, N_HIDDEN, N_OUT], seed=3), readout="max_membrane")
    run(tmp_path, count, spikes())
    with pytest.raises(ValueError, match="the model"):
        run(tmp_path, membrane, spikes())
    # The same adapter rebuilt (and after it ran) has the same key: its neuron state is not part of it.
    again = from_snntorch(snntorch_mlp([N_IN, N_HIDDEN, N_OUT], seed=3), readout="count")
    assert model_fingerprint(again) == model_fingerprint(count)
    assert run(tmp_path, again, spikes()).skipped_shards == 3


def test_a_norse_cell_parameter_outside_the_state_dict_is_part_of_the_key():
    from conftest import require_module

    require_module("norse", "norse")
    import norse.torch as norse

    slow, fast = norse.LIFCell(norse.LIFParameters(tau_mem_inv=torch.tensor(50.0))), norse.LIFCell()
    assert slow.state_dict().keys() == fast.state_dict().keys()  # nothing there tells them apart
    assert model_fingerprint(slow)["attributes_sha256"] != model_fingerprint(fast)["attributes_sha256"]


def test_the_command_refuses_a_changed_threshold_instead_of_returning_old_results(tmp_path, capsys, monkeypatch):
    from sc_neurocore.cli import main

    data = tmp_path / "spikes.npz"
    np.savez(data, spikes=spikes().numpy())
    module = type("factories", (), {"low": staticmethod(lambda: network()),
                                    "high": staticmethod(lambda: network(threshold=0.7))})
    monkeypatch.setitem(__import__("sys").modules, "resume_factories", module)
    common = ["--dataset", str(data), "--method", "saliency", "--out", str(tmp_path / "out"), "--no-progress"]
    assert main(["explain-dataset", "--model", "resume_factories:low", *common]) == 0
    assert main(["explain-dataset", "--model", "resume_factories:high", *common]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "the model" in err and "--overwrite" in err, err
    assert main(["explain-dataset", "--model", "resume_factories:high", *common, "--max-memory", "300000",
                 "--overwrite"]) == 0
    assert main(["explain-dataset", "--model", "resume_factories:high", *common, "--max-memory", "900000"]) == 0
    assert "explained 0 of 24 samples" in capsys.readouterr().out  # max_memory changes nothing: all kept
