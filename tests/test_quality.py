"""`sc-neurocore quality`: every part of the report recomputed from its definition on small inputs."""

import doctest
import importlib
import math

import numpy as np
import pytest
import torch
from conftest import require_module

from sc_neurocore.cli import main as cli_main
from sc_neurocore.explain.metrics import deletion_curve
from sc_neurocore.models import LIFNetwork
from sc_neurocore.quality import faithfulness_rows, format_table
from sc_neurocore.quality.evaluate import MethodResult, NetworkResult
from sc_neurocore.quality.networks import SHIPPED, NetworkSpec, config_hash, load_network, training_config
from sc_neurocore.quality.rivals import AUTO, LINEAR, RANDOM, SALIENCY, Method, Tuned, methods, tune
from sc_neurocore.quality.stats import paired_bootstrap
from sc_neurocore.quality.targets import network_targets, timing_target
from sc_neurocore.quality.timing import matchings, separation, timing_task

DOCTEST_MODULES = ["sc_neurocore.explain.attribution", "sc_neurocore.explain.credit", "sc_neurocore.explain.metrics",
                   "sc_neurocore.explain.faithfulness", "sc_neurocore.explain.tsa"] + [
    f"sc_neurocore.quality.{name}" for name in ("networks", "rivals", "stats", "timing", "timing_run", "evaluate",
                                                "targets", "report", "table", "diagnostics", "variants",
                                                "report_misses")]


@pytest.mark.parametrize("name", DOCTEST_MODULES)
def test_examples(name):
    require_module("snntorch", "snntorch")
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_command_prints_and_writes_the_same_report(tmp_path, capsys):
    require_module("snntorch", "snntorch")
    require_module("captum", "captum")
    out = tmp_path / "quality.md"
    code = cli_main(["quality", "--networks", "shipped", "--select", "3", "--samples", "4", "--points", "3",
                     "--tune-points", "3", "--subsets", "3", "--timing-train", "32", "--timing-eval", "3",
                     "--timing-epochs", "1", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    written = out.read_text(encoding="utf-8")
    assert printed.strip().endswith(written.strip())  # progress lines first, then the report
    for needle in ("## shipped 64-32-10 count", "| SpikeAttributor auto |", "Captum IntegratedGradients",
                   "sensitivity-n 0.05", "occlusion agreement", "paired bootstrap", "## Timing task",
                   "## Cross-check against Captum", "## Targets", "timing task: mode='auto'"):
        assert needle in written
    assert "Largest difference from our curve's $(f_k(x) - D_j)^2$ over its 3 points: 0 " in written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quality.md"]  # no temporary file left behind


def test_command_rejects_bad_arguments(tmp_path, capsys):
    for option, value in (("--samples", "0"), ("--points", "1"), ("--tune-points", "1"), ("--networks", "bogus"),
                          ("--timing-train", "-3"), ("--subsets", "0"), ("--saliency-digits", "0")):
        assert cli_main(["quality", option, value]) == 2
        assert option in capsys.readouterr().err
    assert cli_main(["quality", "--samples", "2", "--out", str(tmp_path / "missing" / "q.md")]) == 2
    assert "--out" in capsys.readouterr().err


def test_paired_bootstrap_against_numpy():
    rng = np.random.default_rng(0)
    a, b = torch.from_numpy(rng.normal(1.0, 1.0, 40)), torch.from_numpy(rng.normal(0.0, 1.0, 40))
    result = paired_bootstrap(a, b, n_resamples=500, seed=3)
    g = torch.Generator().manual_seed(3)
    draws = torch.randint(0, 40, (500, 40), generator=g)
    means = (a - b)[draws].mean(dim=1).numpy()
    assert result.mean == pytest.approx(float((a - b).mean()))
    assert result.low == pytest.approx(np.quantile(means, 0.025)) and result.high == pytest.approx(np.quantile(means, 0.975))
    same = paired_bootstrap(a, a)
    assert (same.mean, same.low, same.high, same.excludes_zero) == (0.0, 0.0, 0.0, False)
    empty = paired_bootstrap(torch.full((3,), math.nan), torch.zeros(3))
    assert empty.n == 0 and empty.n_undefined == 3 and empty.text() == "n/a"


def test_timing_task_only_timing_decides():
    task = timing_task(40, n_steps=20, n_pattern=6, n_noise=5, n_classes=4, n_distractors=2, seed=1)
    schedule = matchings(6)
    pattern = task.spikes[:, :, :6]
    assert bool((pattern.sum(dim=1) == 3).all())  # every pattern neuron fires 1 + 2 times, whatever the class
    assert not bool((task.planted & task.distractor).any())
    for b in range(40):
        for i, j in schedule[int(task.labels[b])]:  # the class's pairs fire together
            t = torch.nonzero(task.planted[b, :, i])[:, 0]
            assert t.numel() == 1 and bool(task.planted[b, t, j])
    perfect = separation(task.planted.double() - task.distractor.double(), task)
    assert bool((perfect == 1).all())
    neuron_level = task.spikes.sum(dim=1, keepdim=True).expand_as(task.spikes).double()  # knows neurons, not times
    assert bool((separation(neuron_level, task) == 0.5).all())
    assert bool((separation(task.distractor.double(), task) == 0).all())
    with pytest.raises(ValueError, match="n_pattern"):
        matchings(5)
    with pytest.raises(ValueError, match="n_classes"):
        timing_task(4, n_pattern=4, n_classes=4)


def test_networks_train_once_then_come_from_the_cache(tmp_path):
    require_module("snntorch", "snntorch")
    spec = NetworkSpec("tiny", 8, (4,), "final_membrane", 1)
    first = load_network(spec, n_select=2, n_eval=2, cache=tmp_path)
    second = load_network(spec, n_select=2, n_eval=2, cache=tmp_path)
    assert (first.source, second.source) == ("trained", "cached")
    assert all(torch.equal(a, b) for a, b in zip(first.weights, second.weights, strict=False))
    assert first.model.readout == "final_membrane"
    assert len(list(tmp_path.glob("*.safetensors"))) == 1
    assert config_hash(training_config(spec)) != config_hash(training_config(spec._replace(epochs=2)))
    spikes = first.held_out[0]
    assert torch.equal(first.twin(None).run(spikes), first.model.run(spikes))  # the twin computes the same
    select, held = first.select[0], first.held_out[0]
    assert not any(torch.equal(s, h) for s in select for h in held)  # disjoint samples


def test_tuning_chooses_the_lowest_selection_deletion_auc():
    network = load_network(SHIPPED, n_select=3, n_eval=2)
    linear = next(m for m in methods(captum=False, decays=(0.8, 1.0)) if m.name == LINEAR)
    tuned = tune(linear, network, n_points=5, tie_seed=0)
    spikes, targets = network.select
    aucs = {}
    for setting in linear.grid:
        scores = linear.build(network, setting)(spikes, targets)
        aucs[setting["decay"]] = float(deletion_curve(network.model, spikes, scores, targets, n_points=5,
                                                      tie_seed=0).auc.mean())
    assert tuned.setting["decay"] == min(aucs, key=aucs.get)
    assert sorted(tuned.selection_auc.values()) == sorted(aucs.values())


def _result(per_method):
    network = load_network(SHIPPED, n_select=1, n_eval=1)
    items = [MethodResult(Tuned(Method(name, ({},), None), {}, {}), values, 0.0, torch.zeros(2), torch.zeros(2))
             for name, values in per_method.items()]
    return NetworkResult(network, items, (0.5,), {})


def _values(deletion, insertion, sensitivity):
    return {"deletion": torch.tensor(deletion, dtype=torch.float64), "insertion": torch.tensor(insertion, dtype=torch.float64),
            "sensitivity_0.5": torch.tensor(sensitivity, dtype=torch.float64)}


def test_targets_are_met_or_missed_with_the_measured_reason():
    good = _result({AUTO: _values([1.0, 1.1, 0.9, 1.0], [5.0, 5.2, 4.9, 5.1], [0.9] * 4),
                    LINEAR: _values([2.0, 2.1, 1.9, 2.0], [3.0, 3.1, 2.9, 3.0], [0.5] * 4),
                    RANDOM: _values([4.0] * 4, [2.0] * 4, [0.0] * 4)})
    assert [t.met for t in network_targets(good)] == [True, True, True]
    tied = _result({AUTO: _values([1.0, 1.1, 0.9, 1.0], [5.0] * 4, [0.4, 0.4, math.nan, 0.4]),
                    LINEAR: _values([1.0, 1.2, 0.8, 1.0], [3.0] * 4, [0.5] * 4),
                    SALIENCY: _values([3.0] * 4, [1.0] * 4, [0.9] * 4)})
    deletion, insertion, sensitivity = network_targets(tied)
    assert not deletion.met and "SpikeAttributor linear" in deletion.detail and "1 of 2" in deletion.detail
    assert insertion.met
    assert not sensitivity.met and "SpikeAttributor auto 0.400" in sensitivity.detail  # NaN left out, not 0
    assert "TemporalSaliency" not in sensitivity.detail  # not a one-pass method
    assert timing_target({AUTO: 0.79}).met is False and timing_target({AUTO: 0.8}).met is True


def test_quick_table_for_the_demo():
    net = LIFNetwork([torch.randn(12, 8, generator=torch.Generator().manual_seed(0)),
                      torch.randn(8, 4, generator=torch.Generator().manual_seed(1))], beta=0.9, threshold=0.5)
    spikes = (torch.rand(3, 10, 12, generator=torch.Generator().manual_seed(2)) < 0.3).float()
    targets = net(spikes).argmax(dim=1)
    rows = faithfulness_rows(net, spikes, targets, captum=False, n_points=5)
    assert rows[0].method == AUTO and "SpikeAttributor gated" not in [r.method for r in rows]
    for row in rows:
        assert row.deletion_auc == pytest.approx(float(row.deletion.auc.mean()))
    assert format_table(rows).splitlines()[2].startswith(f"| {AUTO} |")
