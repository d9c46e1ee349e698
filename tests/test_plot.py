"""Every figure renders to a PNG with real content, uses the documented colour scale, and draws into ax=."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import require_module
from sc_neurocore import plot
from sc_neurocore.explain import CausalImportance, SpikeAttributor, TemporalSaliency
from sc_neurocore.explain.metrics import deletion_curve, insertion_curve
from sc_neurocore.models import LIFNetwork


@pytest.fixture(scope="module")
def matplotlib():
    module = require_module("matplotlib", "viz")
    return module


@pytest.fixture(scope="module")
def explained(matplotlib):
    generator = torch.Generator().manual_seed(0)
    network = LIFNetwork(
        [torch.randn(16, 12, generator=generator) * 0.6, torch.randn(12, 4, generator=generator)], threshold=0.5
    )
    spikes = (torch.rand(6, 20, 16, generator=generator) < 0.3).float()
    targets = network(spikes).argmax(dim=1)
    attribution = SpikeAttributor(decay=0.9, mode="gated").attribute(spikes, network, targets)
    saliency = TemporalSaliency(network).explain(spikes, targets)
    causal = CausalImportance(network).explain(spikes, labels=targets, layer="0")
    return network, spikes, targets, attribution, saliency, causal


def rendered(figure, tmp_path, name):
    """The figure written as PNG through save_figure, read back as an (H, W, 4) float array."""
    import matplotlib.image

    path = tmp_path / f"{name}.png"
    plot.save_figure(figure, path)
    assert path.stat().st_size > 2000
    assert not list(tmp_path.glob(".*.tmp"))
    return matplotlib.image.imread(path)


def assert_non_trivial(pixels, min_colours):
    assert pixels.std() > 0.05  # not a blank canvas
    colours = np.unique((pixels[..., :3] * 255).round().astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) >= min_colours, f"only {len(colours)} distinct colours"


def test_matplotlib_is_imported_lazily():
    code = "import sys, sc_neurocore.plot, sc_neurocore.demo; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_spike_raster_colours_each_spike_by_its_score(explained, tmp_path):
    network, spikes, targets, attribution, *_ = explained
    scores = attribution.attribution_map()[0]
    figure = plot.plot_spike_raster(spikes[0], scores)
    assert_non_trivial(rendered(figure, tmp_path, "raster"), min_colours=30)
    points = figure.axes[0].collections[0]
    values = points.get_array()
    assert len(values) == int(spikes[0].count_nonzero())
    # Signed scores: a diverging map with limits symmetric about 0 at the largest |score|.
    largest = float(scores.abs().max())
    assert points.get_cmap().name == plot.SIGNED_CMAP
    assert points.norm.vmin == pytest.approx(-largest) and points.norm.vmax == pytest.approx(largest)
    assert float(np.abs(values).max()) == pytest.approx(largest)
    assert figure.axes[1].get_ylabel() == "importance (a.u.)"  # the colour bar is labelled, with its unit
    plain = plot.plot_spike_raster(spikes[0])
    assert_non_trivial(rendered(plain, tmp_path, "plain"), min_colours=2)


def test_saliency_heatmap_is_time_by_neuron(explained, tmp_path):
    *_, saliency, _ = explained
    saliency_map = saliency.saliency_map()[0] + 0.25  # not integer-valued: a continuous scale
    figure = plot.plot_saliency_heatmap(saliency_map)
    assert_non_trivial(rendered(figure, tmp_path, "heatmap"), min_colours=4)
    image = figure.axes[0].images[0]
    np.testing.assert_array_equal(image.get_array(), saliency_map.numpy().T)  # x: timestep, y: neuron
    assert figure.axes[0].get_xlabel() == "timestep"
    assert figure.axes[1].get_ylabel() == "saliency (output change)"
    # Non-negative scores use the sequential map starting at 0.
    unsigned = plot.plot_saliency_heatmap(saliency_map.abs())
    assert unsigned.axes[0].images[0].get_cmap().name == plot.UNSIGNED_CMAP
    assert unsigned.axes[0].images[0].norm.vmin == 0
    # signed=True keeps a signed method on the diverging scale even where its map happens to be >= 0.
    forced = plot.plot_saliency_heatmap(saliency_map.abs(), signed=True, title="")
    assert forced.axes[0].images[0].get_cmap().name == plot.SIGNED_CMAP
    assert forced.axes[0].images[0].norm.vmin == -forced.axes[0].images[0].norm.vmax
    assert forced.axes[0].get_title() == ""


def test_integer_saliency_gets_a_discrete_scale_and_absent_spikes_their_own_colour(matplotlib, tmp_path):
    from matplotlib.colors import BoundaryNorm, to_rgba

    generator = np.random.default_rng(0)
    spikes = (generator.random((20, 16)) < 0.4).astype(float)
    saliency = spikes * generator.integers(-1, 2, size=spikes.shape)  # -1 / 0 / +1 on spikes, 0 elsewhere
    figure = plot.plot_saliency_heatmap(saliency, tested=spikes)
    rendered(figure, tmp_path, "discrete")
    image = figure.axes[0].images[0]
    assert isinstance(image.norm, BoundaryNorm) and image.get_cmap().N == 3  # one colour per value
    assert [tick.get_text() for tick in figure.axes[1].get_yticklabels()] == ["\u22121", "0", "+1"]
    shown = image.get_array()
    np.testing.assert_array_equal(shown.mask, (spikes == 0).T)  # no spike: masked, not "saliency 0"
    cmap = image.get_cmap()
    absent = cmap(np.ma.masked_array([0.0], mask=[True]))[0]
    assert np.allclose(absent, to_rgba(plot.ABSENT_COLOUR))
    zero = cmap(image.norm(0.0))
    assert not np.allclose(zero, absent)  # a spike of saliency 0 (white) and no spike (grey) differ
    assert [t.get_text() for t in figure.axes[0].get_legend().get_texts()] == ["no spike (not tested)"]
    # A saliency result brings its own tested mask.
    network = LIFNetwork([torch.ones(16, 2)], threshold=1.5)
    result = TemporalSaliency(network).explain(torch.as_tensor(spikes, dtype=torch.float32), 0)
    from_result = plot.plot_saliency_heatmap(result)
    np.testing.assert_array_equal(from_result.axes[0].images[0].get_array().mask, (spikes == 0).T)
    with pytest.raises(ValueError, match="tested"):
        plot.plot_saliency_heatmap(saliency, tested=np.ones((3, 3)))


def test_temporal_profile_puts_each_method_on_its_own_axis(explained, tmp_path, matplotlib):
    from matplotlib.figure import Figure

    *_, attribution, saliency, _ = explained
    first_attribution = SpikeAttributor(decay=0.9).attribute(explained[1][0], explained[0], 0)
    figure = plot.plot_temporal_profile(
        {"attribution": first_attribution, "saliency": saliency.temporal_profile()[0]},
        units={"attribution": "a.u.", "saliency": "output spikes"},
    )
    assert_non_trivial(rendered(figure, tmp_path, "profile"), min_colours=10)
    assert len(figure.axes) == 2  # different units never share a y axis
    np.testing.assert_allclose(figure.axes[0].get_lines()[0].get_ydata(), first_attribution.temporal_profile().numpy())
    np.testing.assert_allclose(figure.axes[1].get_lines()[0].get_ydata(), saliency.temporal_profile()[0].numpy())
    assert [axes.get_ylabel() for axes in figure.axes] == ["attribution\n(a.u.)", "saliency\n(output spikes)"]
    assert figure.axes[0].get_shared_x_axes().joined(figure.axes[0], figure.axes[1])
    # Into the caller's axes: one axes, with a legend.
    axes = Figure().subplots()
    plot.plot_temporal_profile({"a": np.arange(4.0), "b": np.ones(4)}, ax=axes)
    assert [text.get_text() for text in axes.get_legend().get_texts()] == ["a", "b"]


@pytest.mark.parametrize("size", [8, 28])
def test_digit_importance_overlay(size, tmp_path, matplotlib):
    generator = np.random.default_rng(size)
    image = np.zeros((size, size))
    image[size // 4 : 3 * size // 4, size // 3 : 2 * size // 3] = 1.0  # a bar, like a "1"
    importance = (image * generator.normal(size=(size, size))).ravel()
    figure = plot.plot_digit_importance(image, torch.as_tensor(importance))
    assert_non_trivial(rendered(figure, tmp_path, f"digit{size}"), min_colours=20)
    axes = figure.axes[0]
    digit, heat = axes.images  # the digit itself, in grey, under the importance
    np.testing.assert_array_equal(digit.get_array(), image)
    assert digit.get_cmap().name == "gray_r"
    shown = heat.get_array()
    assert shown.shape == (size, size)
    assert shown.mask[0, 0] and not shown.mask[size // 2, size // 2]  # no importance: the digit shows through
    assert len(axes.collections) == 1  # the digit's outline
    assert figure.axes[1].get_ylabel() == "importance (a.u.)"
    # A shared limit puts several panels on one scale.
    shared = plot.plot_digit_importance(image, importance, limit=10.0, colorbar=False)
    assert shared.axes[0].images[1].norm.vmin == -10.0 and shared.axes[0].images[1].norm.vmax == 10.0
    assert len(shared.axes) == 1
    with pytest.raises(ValueError, match="limit"):
        plot.plot_digit_importance(image, importance, limit=0.0)


def test_causal_bars_and_robustness_curve(explained, tmp_path):
    *_, causal = explained
    importance = causal.importance_map()
    figure = plot.plot_causal_importance(causal)
    assert_non_trivial(rendered(figure, tmp_path, "causal"), min_colours=8)
    bars = figure.axes[0].patches
    assert len(bars) == 12
    # An accuracy drop is drawn in percentage points, the unit the demo prints.
    np.testing.assert_allclose([bar.get_height() for bar in bars], 100 * importance.numpy())
    assert figure.axes[0].get_ylabel() == "accuracy drop when silenced\n(percentage points)"
    fraction = plot.plot_causal_importance(causal, percent=False)
    np.testing.assert_allclose([bar.get_height() for bar in fraction.axes[0].patches], importance.numpy())
    top = plot.plot_causal_importance(importance, top=3)
    expected = np.argsort(-np.abs(importance.numpy()), kind="stable")[:3]
    assert [tick.get_text() for tick in top.axes[0].get_xticklabels()] == [str(n) for n in expected]

    curve = plot.plot_robustness_curve(causal, threshold=0.05)
    assert_non_trivial(rendered(curve, tmp_path, "robustness"), min_colours=8)
    line = curve.axes[0].get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), 100 * causal.robustness_curve().numpy())  # accuracy in %
    assert curve.axes[0].get_ylabel() == "accuracy (%)"
    count_line = curve.axes[0].get_lines()[2]
    assert count_line.get_xdata()[0] == causal.robustness_count(threshold=0.05)


def test_deletion_and_insertion_curves_of_several_methods(explained, tmp_path):
    network, spikes, targets, attribution, saliency, _ = explained
    random_scores = torch.rand(spikes.shape, generator=torch.Generator().manual_seed(1))
    for kind, measure in (("deletion", deletion_curve), ("insertion", insertion_curve)):
        curves = {
            name: measure(network, spikes, scores, targets, n_points=11)
            for name, scores in (("gated", attribution), ("saliency", saliency), ("random", random_scores))
        }
        figure = plot.plot_perturbation_curves(curves)
        assert_non_trivial(rendered(figure, tmp_path, kind), min_colours=15)
        axes = figure.axes[0]
        assert axes.get_title() == f"{kind.capitalize()} curves"
        for line, (name, curve) in zip(axes.get_lines(), curves.items(), strict=True):
            np.testing.assert_allclose(line.get_ydata(), curve.values.mean(dim=0).numpy())
            assert line.get_label() == f"{name} (AUC {float(curve.auc.mean()):.3g})"
        # A spread band per method, from the per-sample curves (25th to 75th percentile).
        bands = [c for c in axes.collections if type(c).__name__ == "FillBetweenPolyCollection"]
        assert len(bands) == 3
        vertices = bands[2].get_paths()[0].vertices
        low = np.percentile(curves["random"].values.numpy(), 25, axis=0)
        assert np.allclose(vertices[:, 1].min(), low.min())
        # The legend sits outside the data, right of the axes.
        legend = axes.get_legend()
        figure.canvas.draw()
        assert legend.get_window_extent().x0 > axes.get_window_extent().x1
        assert len({line.get_linestyle() for line in axes.get_lines()}) > 1  # coinciding curves stay visible
    pairs = plot.plot_perturbation_curves({"a": (np.linspace(0, 1, 3), np.array([1.0, 0.5, 0.0]))})
    assert pairs.axes[0].get_lines()[0].get_label() == "a (AUC 0.5)"
    # Methods whose mean curves coincide are one line named after all of them, not one hidden under another.
    x = np.linspace(0, 1, 3)
    same = plot.plot_perturbation_curves({"a": (x, 1 - x), "b": (x, 1 - x), "c": (x, 1 - x**2)})
    assert [line.get_label() for line in same.axes[0].get_lines()] == ["a = b (AUC 0.5)", "c (AUC 0.625)"]
    with pytest.raises(ValueError, match="band"):
        plot.plot_perturbation_curves({"a": (x, 1 - x)}, band="iqr")


def test_saved_images_are_capped_in_size(matplotlib, tmp_path):
    import matplotlib.image

    figure = plot.new_figure((60.0, 200.0))  # what --samples 500 once asked for: 127,800 pixels tall
    figure.add_subplot().plot([0, 1], [0, 1])
    path = tmp_path / "huge.png"
    plot.save_figure(figure, path, dpi=120)
    height, width = matplotlib.image.imread(path).shape[:2]
    assert max(height, width) <= plot.MAX_IMAGE_PIXELS


def test_figures_show_as_png_in_notebooks(matplotlib):
    figure = plot.plot_temporal_profile(np.arange(5.0))
    assert figure._repr_png_().startswith(b"\x89PNG\r\n\x1a\n")
    assert isinstance(figure, matplotlib.figure.Figure)


def test_ax_argument_draws_into_the_callers_axes(explained, matplotlib):
    from matplotlib.figure import Figure

    network, spikes, targets, attribution, saliency, causal = explained
    figure = Figure()
    grid = figure.subplots(2, 3)
    assert plot.plot_spike_raster(spikes[0], attribution.attribution_map()[0], ax=grid[0, 0]) is figure
    assert plot.plot_saliency_heatmap(saliency.saliency_map()[0], ax=grid[0, 1]) is figure
    assert plot.plot_temporal_profile(saliency.temporal_profile()[0], ax=grid[0, 2]) is figure
    assert plot.plot_digit_importance(np.eye(4), np.arange(16.0), ax=grid[1, 0]) is figure
    assert plot.plot_causal_importance(causal, ax=grid[1, 1]) is figure
    assert plot.plot_robustness_curve(causal, ax=grid[1, 2]) is figure
    assert all(axes.has_data() for axes in grid.ravel())


def test_bad_input_names_the_argument(explained, matplotlib):
    _, spikes, _, attribution, *_ = explained
    with pytest.raises(ValueError, match="scores"):
        plot.plot_saliency_heatmap(attribution.attribution_map())  # a batch, not one sample
    with pytest.raises(ValueError, match="scores"):
        plot.plot_spike_raster(spikes[0], torch.zeros(3, 3))
    with pytest.raises(ValueError, match="importance"):
        plot.plot_digit_importance(np.zeros((8, 8)), np.zeros(10))
    with pytest.raises(ValueError, match="curves"):
        plot.plot_perturbation_curves({})
    with pytest.raises(TypeError, match="curves"):
        plot.plot_perturbation_curves({"a": 3})
    with pytest.raises(ValueError, match="spikes"):
        plot.plot_spike_raster(np.zeros(5))
    with pytest.raises(ValueError, match="finite"):
        plot.plot_temporal_profile(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="top"):
        plot.plot_causal_importance(np.ones(3), top=0)


def test_benchmark_times_are_grouped_by_case_on_a_log_scale(matplotlib, tmp_path):
    rows = [
        ("a", "ours (10 spikes)", 0.02),
        ("a", "naive loop", 2.0),
        ("b", "ours (20 spikes)", 0.1),
        ("b", "naive loop", 5.0),
    ]
    figure = plot.plot_benchmark_times(rows, title="")
    rendered(figure, tmp_path, "bench")
    axes = figure.axes[0]
    assert [bar.get_width() for bar in axes.patches] == [0.02, 2.0, 0.1, 5.0]
    assert axes.get_xscale() == "log"
    assert [text.get_text() for text in axes.texts] == ["1.0x", "100.0x", "1.0x", "50.0x"]  # ratio to the first row
    assert [tick.get_text() for tick in axes.get_yticklabels()] == ["a", "b"]
    # One colour per kind of contender, whatever its parenthesis says.
    assert axes.patches[0].get_facecolor() == axes.patches[2].get_facecolor() != axes.patches[1].get_facecolor()
    assert [text.get_text() for text in axes.get_legend().get_texts()] == ["ours", "naive loop"]
    with pytest.raises(ValueError, match="rows"):
        plot.plot_benchmark_times([("a", "ours", -1.0)])
