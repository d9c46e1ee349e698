"""`sc-neurocore quality`: the table's numbers recomputed from their definitions on small inputs."""

import math

import pytest
import torch

from conftest import require_module
from sc_neurocore import quality
from sc_neurocore.cli import main as cli_main
from sc_neurocore.explain.metrics import deletion_curve, insertion_curve, planted_pattern_task, spearman
from sc_neurocore.models import LIFNetwork


def _net(seed=0):
    g = torch.Generator().manual_seed(seed)
    return LIFNetwork([torch.randn(12, 8, generator=g), torch.randn(8, 4, generator=g)], beta=0.9, threshold=0.5)


def _spikes(shape=(3, 10, 12), seed=1):
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < 0.3).float()


def test_rows_recompute_from_the_metric_definitions():
    require_module("snntorch", "snntorch")
    net, spikes = _net(), _spikes()
    targets = net(spikes).argmax(dim=1)
    rows = quality.faithfulness_rows(net, spikes, targets, n_points=5, ig_steps=4, seed=3)
    names = [row.method for row in rows]
    assert names == list(quality.explanation_methods(net, seed=3))
    assert {quality.GATED, quality.LINEAR, quality.SALIENCY, *quality.CAPTUM_METHODS, quality.TSA_S,
            quality.TSA_NS, quality.RANDOM} <= set(names)
    methods = quality.explanation_methods(net, ig_steps=4, seed=3)
    exact = methods[quality.SALIENCY](spikes, targets)
    for row in rows:
        if row.method == quality.RANDOM:
            continue  # its generator has advanced; checked below through its own curves
        scores = methods[row.method](spikes, targets)
        deletion = deletion_curve(net, spikes, scores, targets, n_points=5)
        insertion = insertion_curve(net, spikes, scores, targets, n_points=5)
        assert row.deletion_auc == pytest.approx(float(deletion.auc.mean()))
        assert row.insertion_auc == pytest.approx(float(insertion.auc.mean()))
        agreement = spearman(scores, exact, spikes)
        expected = float(agreement[~torch.isnan(agreement)].mean()) if (~torch.isnan(agreement)).any() else math.nan
        assert row.spearman == pytest.approx(expected, nan_ok=True)
    for row in rows:
        assert row.deletion_auc == pytest.approx(float(row.deletion.auc.mean()))
        assert row.insertion.values.shape == (3, 5)
    assert [row for row in rows if row.method == quality.SALIENCY][0].spearman == pytest.approx(1.0)


def test_captum_saliency_is_the_surrogate_gradient_of_the_twin():
    require_module("snntorch", "snntorch")
    net, spikes = _net(), _spikes()
    twin = quality.gradient_twin(net)
    assert torch.equal(twin(spikes).detach(), net(spikes))
    inputs = spikes.clone().requires_grad_(True)
    twin(inputs)[:, 1].sum().backward()
    captum_map = quality.explanation_methods(net)[quality.CAPTUM_SALIENCY](spikes, torch.ones(3, dtype=torch.long))
    assert torch.allclose(captum_map, inputs.grad.abs())
    assert inputs.grad.abs().sum() > 0  # the surrogate really passes gradient


def test_planted_network_learns_the_task_and_precision_is_a_share():
    require_module("snntorch", "snntorch")
    run = quality.planted_rows(n_train=256, n_eval=16, captum=False, seed=1)
    assert run.accuracy >= 0.9  # the planted spikes decide the class, and a short training finds them
    precisions = {row.method: row.precision for row in run.rows}
    assert all(0.0 <= value <= 1.0 for value in precisions.values())
    assert precisions[quality.RANDOM] < precisions[quality.GATED]


def test_train_planted_network_is_seeded():
    require_module("snntorch", "snntorch")
    task = planted_pattern_task(64, n_steps=8, n_inputs=12, n_classes=2, pattern_size=2)
    a = quality.train_planted_network(task, hidden=6, epochs=2, seed=4)
    b = quality.train_planted_network(task, hidden=6, epochs=2, seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a.linear_weights(), b.linear_weights(), strict=True))


def _row(name, deletion, spearman_value=0.7):
    return quality.MethodScores(name, deletion, 10.0, spearman_value, 0.1)


def test_targets_are_met_only_when_every_rival_is_beaten():
    rivals = [*quality.CAPTUM_METHODS, quality.TSA_S, quality.TSA_NS, quality.RANDOM]
    rows = [_row(quality.GATED, 2.0)] + [_row(name, 3.0) for name in rivals]
    planted = [quality.PlantedScores(quality.SALIENCY, 0.95, 0.1), quality.PlantedScores(quality.GATED, 0.85, 0.1)]
    targets = quality.check_targets(rows, planted)
    assert [t.met for t in targets] == [True, True, True, False]
    rows[3] = _row(rivals[2], 1.5)
    missed = quality.check_targets(rows)[0]
    assert not missed.met and rivals[2] in missed.detail
    assert not quality.check_targets([_row(quality.GATED, 2.0, 0.59)])[1].met
    assert "MISSED" in quality.format_targets(targets) and "- met:" in quality.format_targets(targets)


def test_tables_hold_every_row():
    rows = [_row("a", 1.23456), quality.MethodScores("b", math.nan, 2.0, math.nan, 0.5)]
    table = quality.format_table(rows).splitlines()
    assert table[2] == "| a | 1.235 | 10.000 | 0.700 | 0.100 |"
    assert table[3] == "| b | n/a | 2.000 | n/a | 0.500 |"
    planted = quality.format_planted([quality.PlantedScores("c", 0.5, 0.25)]).splitlines()
    assert planted[2] == "| c | 0.500 | 0.250 |"


def test_command_prints_and_writes_the_same_report(tmp_path, capsys):
    require_module("snntorch", "snntorch")
    out = tmp_path / "quality.md"
    code = cli_main(["quality", "--samples", "3", "--points", "3", "--ig-steps", "2", "--planted-train", "64",
                     "--planted-eval", "4", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    written = out.read_text(encoding="utf-8")
    assert printed.strip() == written.strip()
    for needle in ("| method |", quality.GATED, quality.CAPTUM_IG, quality.TSA_NS, "## Planted patterns", "## Targets"):
        assert needle in written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quality.md"]  # no temporary file left behind


def test_command_rejects_bad_arguments(tmp_path, capsys):
    assert cli_main(["quality", "--samples", "0"]) == 2
    assert "--samples" in capsys.readouterr().err
    assert cli_main(["quality", "--samples", "2", "--out", str(tmp_path / "missing" / "q.md")]) == 2
    assert "--out" in capsys.readouterr().err
    for option, value in (("--points", "1"), ("--ig-steps", "0"), ("--planted-train", "-3"), ("--planted-eval", "0")):
        assert cli_main(["quality", option, value]) == 2
        assert option in capsys.readouterr().err


def test_spearman_ceiling_is_the_best_tie_free_agreement():
    net, spikes = _net(), _spikes((3, 12, 12), seed=5)
    targets = net(spikes).argmax(dim=1)
    ceiling, zero_share = quality.spearman_ceiling(net, spikes, targets, seed=2)
    from sc_neurocore.explain import TemporalSaliency

    exact = TemporalSaliency(net).explain(spikes, targets).saliency_map()
    # any other tie-breaking that keeps distinct values in order reaches the same value
    by_position = exact + 1e-3 * torch.arange(exact[0].numel(), dtype=exact.dtype).reshape(exact[0].shape) / exact[0].numel()
    assert ceiling == pytest.approx(float(spearman(by_position, exact, spikes).nanmean()))
    for seed in range(5):  # and no tie-free map does better
        other = torch.rand(spikes.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        assert float(spearman(other, exact, spikes).nanmean()) <= ceiling + 1e-12
    spiking = spikes != 0
    assert zero_share == pytest.approx(float(((exact == 0) & spiking).sum() / spiking.sum()))
    assert 0 < zero_share < 1


def test_misses_are_explained_only_when_missed():
    rivals = [*quality.CAPTUM_METHODS, quality.TSA_S, quality.TSA_NS, quality.RANDOM]
    good = [_row(quality.GATED, 2.0, 0.7)] + [_row(name, 3.0, 0.1) for name in rivals]
    assert quality.explain_misses(good, ceiling=0.9) == []
    bad = [_row(quality.GATED, 3.5, 0.3), _row(quality.GATED_TUTORIAL, 4.0, 0.3)] + [_row(n, 3.0, 0.1) for n in rivals]
    notes = quality.explain_misses(bad, ceiling=0.5)
    assert len(notes) == 3
    assert "0.500" in notes[0] and "out of reach" in notes[0]
    assert all(name in notes[1] for name in rivals)
    assert "decay 0.9" in notes[2]
    assert "below 0.6 although" in quality.explain_misses(bad, ceiling=0.9)[0]
