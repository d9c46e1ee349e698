"""`sc-neurocore demo` runs end to end into a folder: every section printed with measured numbers, every figure."""

import re

import numpy as np
import pytest
import torch

from conftest import require_module
from sc_neurocore.cli import main as cli_main
from sc_neurocore.demo import FIGURES, naive_saliency
from sc_neurocore.explain import CausalImportance, TemporalSaliency
from sc_neurocore.models import LIFNetwork


def test_naive_saliency_is_the_definition():
    generator = torch.Generator().manual_seed(3)
    network = LIFNetwork(
        [torch.randn(10, 6, generator=generator), torch.randn(6, 3, generator=generator)], threshold=0.5
    )
    spikes = (torch.rand(15, 10, generator=generator) < 0.4).float()
    naive = naive_saliency(network, spikes, 1)
    assert naive.abs().sum() > 0
    assert torch.equal(naive, TemporalSaliency(network).explain(spikes, 1).saliency_map().to(torch.float64))


def test_demo_runs_into_a_folder(tmp_path, capsys):
    require_module("matplotlib", "viz")
    require_module("snntorch", "snntorch")
    from sc_neurocore.data import load_digits, model_config, pretrained_network

    out = tmp_path / "figures"  # created by the demo
    assert cli_main(["demo", "--out", str(out), "--samples", "3", "--faithfulness-samples", "8"]) == 0
    printed = capsys.readouterr().out
    for section in [
        "Trained network",
        "Spike attribution",
        "Temporal saliency",
        "Causal importance of input pixels",
        "Causal importance of the 32 hidden neurons",
        "Faithfulness on 8 test digits",
        "Speed-up over the naive loop",
        "The tutorial's MNIST example",
        "Figures",
    ]:
        assert f"== {section}" in printed, section

    accuracy = float(re.search(r"Test accuracy: ([\d.]+)%", printed).group(1)) / 100
    assert accuracy == pytest.approx(model_config(8)["test_accuracy"], abs=5e-5) and accuracy >= 0.9
    assert len(re.findall(r"^sample \d \(label \d, predicted \d\): t=", printed, flags=re.M)) == 3
    assert "Total spikes tested:" in printed and "Mean saliency:" in printed
    assert len(re.findall(r"^sample \d: pixel \(\d,\d\) [+-]\d+, ", printed, flags=re.M)) == 3

    test = load_digits("test")
    causal = CausalImportance(pretrained_network(8)).explain(test.spikes, labels=test.labels, layer="0")
    count = int(re.search(r"Robustness: can silence (\d+) of 32", printed).group(1))
    assert count == causal.robustness_count(threshold=0.05)
    critical = [int(n) for n in re.search(r"Most critical hidden neurons: \[([\d, ]+)\]", printed).group(1).split(",")]
    importance = causal.importance_map()
    assert sorted(importance[critical].tolist(), reverse=True) == sorted(importance.tolist(), reverse=True)[:5]

    table = [line for line in printed.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| method | deletion AUC") and len(table) >= 5
    assert any(line.startswith("| random order |") for line in table)
    speed = re.search(
        r"(\d+) spikes: naive per-spike loop ([\d.]+) s, batched ([\d.]+) s: ([\d.]+)x faster "
        r"\(maps checked equal\)",
        printed,
    )
    assert speed is not None and int(speed.group(1)) == int(test.spikes[0].count_nonzero())
    assert float(speed.group(4)) > 1.0

    import matplotlib.image

    assert sorted(path.name for path in out.iterdir()) == sorted(FIGURES)  # every figure, nothing left over
    for name in FIGURES:
        pixels = matplotlib.image.imread(out / name)
        assert pixels.std() > 0.05 and len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 20, name
        assert str(out / name) in printed


def test_speedup_checks_the_maps_before_timing(monkeypatch):
    import sc_neurocore.demo as demo

    generator = torch.Generator().manual_seed(4)
    network = LIFNetwork([torch.randn(10, 3, generator=generator)], threshold=0.5)
    spikes = (torch.rand(12, 10, generator=generator) < 0.4).float()
    speed = demo.saliency_speedup(network, spikes, 0)
    assert speed.n_spikes == int(spikes.count_nonzero())
    assert speed.factor == speed.naive_seconds / speed.batched_seconds > 0
    monkeypatch.setattr(demo, "naive_saliency", lambda *args: torch.ones(spikes.shape, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="differs"):
        demo.saliency_speedup(network, spikes, 0)


def test_demo_rejects_bad_arguments(tmp_path, capsys):
    assert cli_main(["demo", "--out", str(tmp_path), "--samples", "0"]) == 2
    assert "samples" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert cli_main(["demo", "--out", str(tmp_path / "file")]) == 2
    assert "out" in capsys.readouterr().err


def test_demo_warns_when_it_clamps_and_caps_the_overlay(tmp_path, capsys, monkeypatch):
    require_module("matplotlib", "viz")
    import sc_neurocore.data as data
    import sc_neurocore.demo as demo

    real = data.load_digits

    def few_digits(*args, **kwargs):  # a 12-digit test split keeps the run short
        split = real(*args, **kwargs)
        return type(split)(*(field[:12] for field in split))

    monkeypatch.setattr(data, "load_digits", few_digits)
    monkeypatch.setattr(demo, "MAX_FIGURE_SAMPLES", 5)
    assert (
        cli_main(["demo", "--out", str(tmp_path), "--samples", "500", "--faithfulness-samples", "4", "--progress"]) == 0
    )
    captured = capsys.readouterr()
    assert "warning: samples: 500 asked, but the test split has 12 digits; using 12" in captured.err
    assert "shows the first 5 of the 12 samples" in captured.err
    for step in ("spike attribution", "temporal saliency", "faithfulness on 4 test digits", "drawing the figures"):
        assert step in captured.err, step  # a progress line per long step
    import matplotlib.image

    overlay = matplotlib.image.imread(tmp_path / "digit_importance_8x8.png")
    assert overlay.shape[1] < 2000  # 5 columns, not 12


def test_digit_overlay_shares_one_labelled_scale_per_row():
    require_module("matplotlib", "viz")
    from sc_neurocore.demo import UNITS, digit_overlay

    generator = torch.Generator().manual_seed(0)
    images = torch.rand(3, 8, 8, generator=generator)
    maps = {
        "attribution": torch.randn(3, 64, generator=generator),
        "saliency": torch.randint(-2, 3, (3, 64), generator=generator).float(),
    }
    figure = digit_overlay(images, torch.tensor([1, 2, 3]), torch.tensor([1, 2, 4]), maps)
    panels = [axes for axes in figure.axes if axes.get_label() != "<colorbar>"]
    bars = [axes for axes in figure.axes if axes.get_label() == "<colorbar>"]
    assert [axes.get_title() for axes in panels[:3]] == [
        "sample 0, label 1, predicted 1",
        "sample 1, label 2, predicted 2",
        "sample 2, label 3, predicted 4",
    ]
    np.testing.assert_array_equal(panels[0].images[0].get_array(), images[0].numpy())  # the digit itself
    assert [bar.get_ylabel() for bar in bars] == [f"{m}\n({UNITS[m]})" for m in maps]  # one bar per row, with unit
    for row, (method, values) in enumerate(maps.items(), start=1):
        limits = {(panel.images[-1].norm.vmin, panel.images[-1].norm.vmax) for panel in panels[3 * row : 3 * row + 3]}
        largest = float(values.abs().max())
        assert limits == {(-largest, largest)}, method  # shared, signed, symmetric
