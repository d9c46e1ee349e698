"""``sc-neurocore demo`` (``make demo``): why did a trained spiking network read these digits as it did?

Loads the shipped 64-32-10 LIF network trained on scikit-learn's handwritten digits
(`sc_neurocore.data.pretrained_network`), prints its test accuracy, and explains a handful of test
digits with all three methods, each in one batched call:

* `SpikeAttributor` (`mode="auto"`, the recommended rule for a known model): the top spikes of each digit;
* `TemporalSaliency`: the exact saliency summary;
* `CausalImportance`: the input pixels whose silencing lowers each digit's
  output most; the hidden neurons whose silencing costs the most test accuracy, and how many can be
  silenced before accuracy drops 5%.

Then it measures how faithful each method is (`sc_neurocore.quality`'s table of deletion / insertion
AUC and agreement with exact saliency), times exact saliency against a naive loop that reruns the network
once per removed spike (after checking both give the same map), runs the tutorial's MNIST example on the
28x28 digits, and writes every figure of `sc_neurocore.plot` as PNG into ``--out``, atomically.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from typing import NamedTuple, cast

import torch
from torch import Tensor

from .explain import CausalImportance, SpikeAttributor, TemporalSaliency
from .explain.results import TopK
from .extras import install_hint
from .inputs import as_positive_int
from .models import LIFNetwork
from .progress import step

#: Robustness: how much accuracy may drop (as a share of the unsilenced accuracy) while neurons are silenced.
ROBUSTNESS_THRESHOLD = 0.05
#: The digit overlay figure shows at most this many digits (one column each), whatever `--samples` is.
MAX_FIGURE_SAMPLES = 8
#: The PNG files the demo writes into `--out`, in the order it writes them.
FIGURES = (
    "spike_raster.png",
    "saliency_heatmap.png",
    "temporal_profile.png",
    "digit_importance_8x8.png",
    "digit_importance_28x28.png",
    "causal_importance.png",
    "robustness_curve.png",
    "deletion_curves.png",
    "insertion_curves.png",
)
#: Colour bar and axis units of each method's scores on the shipped network (its output is a spike count).
UNITS = {"attribution": "a.u.", "saliency": "output spikes", "causal": "output spikes"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo-output", help="folder for the figures (created if missing)")
    parser.add_argument("--samples", type=int, default=4, help="how many test digits to explain (default 4)")
    parser.add_argument(
        "--faithfulness-samples",
        type=int,
        default=32,
        help="test digits the faithfulness table is measured on (default 32)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show each step's progress on standard error (default: on a terminal)",
    )


def naive_saliency(network: LIFNetwork, spikes: Tensor, output_neuron: int) -> Tensor:
    """Temporal saliency the slow way: rerun the network once per input spike, removing that spike.

    The reference the demo times `TemporalSaliency` against (and checks it
    equals). Deliberately a Python loop over spikes: that is what it measures.

    Args:
        network: the network.
        spikes: one sample ``(T, N)``.
        output_neuron: the explained output.

    Returns:
        The ``(T, N)`` saliency map (float64).

    Example:
        >>> import torch
        >>> net = LIFNetwork([torch.ones(3, 2)], threshold=1.5)  # fires only on two coincident spikes
        >>> naive_saliency(net, torch.tensor([[1.0, 0.0, 1.0]]), 0).tolist()
        [[1.0, 0.0, 1.0]]
    """
    saliency = torch.zeros(spikes.shape, dtype=torch.float64)
    with torch.no_grad():
        baseline = float(network(spikes[None])[0, output_neuron])
        for t, i in torch.nonzero(spikes).tolist():
            perturbed = spikes.clone()
            perturbed[t, i] = 0
            saliency[t, i] = baseline - float(network(perturbed[None])[0, output_neuron])
    return saliency


class SpeedUp(NamedTuple):
    """Exact saliency of one sample, timed both ways (see `saliency_speedup`)."""

    n_spikes: int
    naive_seconds: float
    batched_seconds: float

    @property
    def factor(self) -> float:
        """How many times faster the batched explainer is."""
        return self.naive_seconds / self.batched_seconds


def saliency_speedup(network: LIFNetwork, spikes: Tensor, output_neuron: int) -> SpeedUp:
    """Time `TemporalSaliency` against `naive_saliency` on one sample.

    Both maps are compared before any time is reported: a speed-up of a wrong answer is no speed-up.

    Args:
        network: the network.
        spikes: one sample ``(T, N)``.
        output_neuron: the explained output.

    Returns:
        A `SpeedUp`.

    Raises:
        RuntimeError: the two maps differ (a bug in the batched engine).

    Example:
        >>> import torch
        >>> net = LIFNetwork([torch.ones(3, 2)], threshold=1.5)
        >>> saliency_speedup(net, torch.tensor([[1.0, 0.0, 1.0]] * 4), 0).n_spikes
        8
    """
    start = time.perf_counter()
    naive = naive_saliency(network, spikes, output_neuron)
    naive_seconds = time.perf_counter() - start
    start = time.perf_counter()
    batched = TemporalSaliency(network).explain(spikes, output_neuron=output_neuron).saliency_map()
    batched_seconds = time.perf_counter() - start
    if not torch.equal(naive, batched.to(torch.float64)):
        raise RuntimeError("the batched saliency differs from the naive loop; please report this as a bug")
    return SpeedUp(int(spikes.count_nonzero()), naive_seconds, batched_seconds)


def digit_overlay(images: Tensor, labels: Tensor, predicted: Tensor, per_pixel: dict[str, Tensor]):
    """The digits in the top row, then one row per method of importance over each digit.

    Each row shares one signed colour scale (limits `+-max|importance|` over the row's digits) and one
    colour bar with the method's unit, so that panels of a row compare; at most `MAX_FIGURE_SAMPLES`
    digits are drawn.

    Args:
        images: `(B, H, W)` intensities.
        labels: `(B,)` true classes.
        predicted: `(B,)` predicted classes.
        per_pixel: `{method: (B, H * W) importance}`, methods named as in `UNITS`.

    Returns:
        The `Figure`.

    Example:
        >>> import torch
        >>> images = torch.rand(2, 8, 8)
        >>> figure = digit_overlay(images, torch.tensor([1, 2]), torch.tensor([1, 3]),
        ...                        {"saliency": images.reshape(2, 64) - 0.5})
        >>> figure.axes[0].get_title()
        'sample 0, label 1, predicted 1'
    """
    from .plot import new_figure, plot_digit_importance

    n_columns = min(len(images), MAX_FIGURE_SAMPLES)
    figure = new_figure((2.4 * n_columns + 1.6, 2.4 * (1 + len(per_pixel))))
    grid = figure.subplots(1 + len(per_pixel), n_columns, squeeze=False)
    for sample in range(n_columns):
        axes = grid[0, sample]
        axes.imshow(images[sample].detach().cpu().numpy(), cmap="gray_r", interpolation="nearest")
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_title(f"sample {sample}, label {int(labels[sample])}, predicted {int(predicted[sample])}", fontsize=9)
    grid[0, 0].set_ylabel("input digit", fontsize=11)
    for row, (method, maps) in enumerate(per_pixel.items(), start=1):
        limit = float(maps[:n_columns].abs().max()) or 1.0
        for sample in range(n_columns):
            plot_digit_importance(
                images[sample], maps[sample], ax=grid[row, sample], signed=True, limit=limit, colorbar=False, title=""
            )
        grid[row, 0].set_ylabel(method, fontsize=11)
        figure.colorbar(grid[row, -1].images[-1], ax=list(grid[row]), label=f"{method}\n({UNITS[method]})", shrink=0.9)
    return figure


def _section(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def _clamped(asked: int, available: int, name: str) -> int:
    """`asked`, or `available` with a warning on standard error when fewer are there."""
    if asked > available:
        print(
            f"sc-neurocore demo: warning: {name}: {asked} asked, but the test split has {available} digits; "
            f"using {available}",
            file=sys.stderr,
            flush=True,
        )
        return available
    return asked


def main(args: argparse.Namespace) -> int:
    threads = torch.get_num_threads()
    # Small per-timestep ops: one thread is fastest (and the timings fair) on a shared, loaded CPU.
    torch.set_num_threads(1)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> int:
    from .data import load_digits, model_config, pretrained_network, pretrained_weights
    from .plot import (
        plot_causal_importance,
        plot_digit_importance,
        plot_perturbation_curves,
        plot_robustness_curve,
        plot_saliency_heatmap,
        plot_spike_raster,
        plot_temporal_profile,
        save_figure,
    )
    from .quality import faithfulness_rows, format_table

    started = time.perf_counter()
    n_samples = as_positive_int(args.samples, "samples")
    n_faithful = as_positive_int(args.faithfulness_samples, "faithfulness_samples")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out: expected a folder for the figures, but {str(out)!r} is a file")
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(figure, name: str) -> None:
        path = out / name
        save_figure(figure, path)
        written.append(path)

    # -- the network and its accuracy ---------------------------------------------------------------------
    progress = getattr(args, "progress", None)
    config = model_config(8)
    with step("loading the network and the test digits", enabled=progress):
        network = pretrained_network(8)
        test = load_digits("test", size=8, n_steps=config["n_steps"], encoding=config["encoding"], seed=0)
    with torch.no_grad():
        predicted = network(test.spikes).argmax(dim=1)
    correct = int((predicted == test.labels).sum())
    _section("Trained network")
    shape = "-".join(map(str, config["layers"]))
    print(
        f"LIF network {shape} (beta={config['beta']}, threshold={config['threshold']}),"
        f" T={config['n_steps']} steps, {config['encoding']}-coded 8x8 digits (scikit-learn, no download)"
    )
    print(f"Test accuracy: {correct / len(test.labels):.2%} ({correct}/{len(test.labels)} test digits)")

    n_samples = _clamped(n_samples, len(test.labels), "samples")
    spikes, labels, targets = test.spikes[:n_samples], test.labels[:n_samples], predicted[:n_samples]
    images = test.images[:n_samples]
    print(f"Explaining test samples 0..{n_samples - 1}: labels {labels.tolist()}, predicted {targets.tolist()}")

    # -- spike attribution, batched -------------------------------------------------------------------------
    with step("spike attribution", enabled=progress):
        attribution = SpikeAttributor(mode="auto").attribute(spikes, network, output_neuron=targets)
    _section("Spike attribution (auto: spike-time credit through the network's own dynamics): top 5 spikes per digit")
    for sample, top in enumerate(cast(list[TopK], attribution.top_k(5))):  # a batch: one list per sample
        spikes_text = ", ".join(f"t={t} pixel=({n // 8},{n % 8}) {score:+.3f}" for t, n, score in top)
        print(f"sample {sample} (label {int(labels[sample])}, predicted {int(targets[sample])}): {spikes_text}")
    profile = attribution.temporal_profile()
    print(f"Peak attribution timestep per sample: {profile.argmax(dim=1).tolist()}")

    # -- temporal saliency, batched --------------------------------------------------------------------------
    with step("temporal saliency", enabled=progress):
        saliency = TemporalSaliency(network).explain(spikes, output_neuron=targets)
    _section("Temporal saliency (exact: output change when each input spike is removed)")
    print(saliency.summary())

    # -- causal importance of input pixels, per digit, batched -----------------------------------------------
    with step("causal importance of the input pixels", enabled=progress):
        pixels = CausalImportance(network).explain(spikes, output_neuron=targets)
    pixel_importance = pixels.importance_map()  # (B, 64)
    _section("Causal importance of input pixels (target output drop when a pixel is silenced): top 3 per digit")
    for sample in range(n_samples):
        top = torch.argsort(pixel_importance[sample], descending=True, stable=True)[:3].tolist()
        listed = ", ".join(f"pixel ({n // 8},{n % 8}) {float(pixel_importance[sample, n]):+.0f}" for n in top)  # type: ignore[operator]
        print(f"sample {sample}: {listed} (of {float(pixels.baseline[sample]):.0f} output spikes)")

    # -- causal importance of hidden neurons, over the whole test set ----------------------------------------
    with step("causal importance of the hidden neurons", enabled=progress):
        causal = CausalImportance(network).explain(test.spikes, labels=test.labels, layer="0")
    importance = causal.importance_map()
    critical = torch.argsort(importance, stable=True)[-5:].flip(0)
    _section("Causal importance of the 32 hidden neurons (test accuracy drop when silenced)")
    print(f"Most critical hidden neurons: {critical.tolist()}")
    drops = ", ".join(f"{100 * float(v):.2f}" for v in importance[critical])
    print(f"Their test accuracy drops, in percentage points: {drops} (from {float(causal.baseline):.2%})")
    count = causal.robustness_count(threshold=ROBUSTNESS_THRESHOLD)
    print(
        f"Robustness: can silence {count} of 32 hidden neurons (least important first) before test accuracy "
        f"drops more than {ROBUSTNESS_THRESHOLD:.0%}"
    )

    # -- faithfulness -------------------------------------------------------------------------------------
    n_faithful = _clamped(n_faithful, len(test.labels), "faithfulness_samples")
    # Captum's rows differentiate through the snnTorch twin: without snnTorch the table keeps our own rows.
    captum = importlib.util.find_spec("snntorch") is not None
    with step(f"faithfulness on {n_faithful} test digits", enabled=progress):
        rows = faithfulness_rows(
            network, test.spikes[:n_faithful], predicted[:n_faithful], captum=captum, n_points=21, seed=0
        )
    _section(f"Faithfulness on {n_faithful} test digits (`sc-neurocore quality` prints the full report)")
    print(format_table(rows))
    if not captum:
        print(f"(Captum rows left out: they need snnTorch, {install_hint('snntorch')})")

    # -- speed-up over the naive loop ---------------------------------------------------------------------
    with step("timing the naive loop against the batched saliency", enabled=progress):
        speed = saliency_speedup(network, spikes[0], int(targets[0]))
    _section("Speed-up over the naive loop (temporal saliency of one digit)")
    print(
        f"{speed.n_spikes} spikes: naive per-spike loop {speed.naive_seconds:.3f} s, batched "
        f"{speed.batched_seconds:.3f} s: {speed.factor:.1f}x faster (maps checked equal)"
    )

    # -- the tutorial's MNIST example, on 28x28 digits ---------------------------------------------------------
    mnist_config = model_config(28)
    test28 = load_digits("test", size=28, n_steps=mnist_config["n_steps"], encoding=mnist_config["encoding"], seed=0)
    test_spikes = test28.spikes[0]  # (25, 784)
    with torch.no_grad():
        predicted_class = int(pretrained_network(28)(test_spikes[None]).argmax())
    model_weights = pretrained_weights(28)
    mnist_result = SpikeAttributor(decay=0.95).attribute(test_spikes, model_weights, output_neuron=predicted_class)
    importance_image = mnist_result.spatial_importance().reshape(28, 28)
    _section("The tutorial's MNIST example on a 28x28 digit (784-32-10 network)")
    print(
        f"test_spikes {tuple(test_spikes.shape)}, label {int(test28.labels[0])}, predicted {predicted_class}; "
        f"importance_image {tuple(importance_image.shape)}, total attribution {mnist_result.total:.3f}"
    )

    # -- figures -----------------------------------------------------------------------------------------
    def caption(sample: int) -> str:
        return f"sample {sample}, label {int(labels[sample])}, predicted {int(targets[sample])}"

    with step("drawing the figures", enabled=progress):
        save(
            plot_spike_raster(
                spikes[0],
                attribution.attribution_map()[0],
                label=f"attribution ({UNITS['attribution']})",
                signed=True,
                title=f"{caption(0)}: input spikes coloured by attribution",
            ),
            "spike_raster.png",
        )
        save(
            plot_saliency_heatmap(
                saliency.saliency_map()[0],
                tested=saliency.tested_mask()[0],
                signed=True,
                label=f"saliency ({UNITS['saliency']})",
                title=f"{caption(0)}: exact temporal saliency",
            ),
            "saliency_heatmap.png",
        )
        save(
            plot_temporal_profile(
                {"attribution": profile[0], "saliency": saliency.temporal_profile()[0]},
                units={"attribution": UNITS["attribution"], "saliency": UNITS["saliency"]},
                title=f"{caption(0)}: score per timestep",
            ),
            "temporal_profile.png",
        )
        save(
            digit_overlay(
                images,
                labels,
                targets,
                {
                    "attribution": attribution.spatial_importance(),
                    "saliency": saliency.spatial_importance(),
                    "causal": pixel_importance,
                },
            ),
            "digit_importance_8x8.png",
        )
        save(
            plot_digit_importance(
                test28.images[0],
                importance_image,
                label="attribution, decay 0.95 (a.u.)",
                title=f"28x28 sample 0, label {int(test28.labels[0])}, predicted {predicted_class}",
            ),
            "digit_importance_28x28.png",
        )
        save(
            plot_causal_importance(
                causal, title="Hidden neurons: test accuracy drop when silenced", neuron_label="hidden neuron"
            ),
            "causal_importance.png",
        )
        save(
            plot_robustness_curve(
                causal, threshold=ROBUSTNESS_THRESHOLD, title="Test accuracy vs hidden neurons silenced"
            ),
            "robustness_curve.png",
        )
        for kind in ("deletion", "insertion"):
            curves = {row.method: getattr(row, kind) for row in rows}
            save(
                plot_perturbation_curves(curves, title=f"{kind.capitalize()} curves, {n_faithful} test digits"),
                f"{kind}_curves.png",
            )

    if n_samples > MAX_FIGURE_SAMPLES:
        print(
            f"sc-neurocore demo: note: digit_importance_8x8.png shows the first {MAX_FIGURE_SAMPLES} of the "
            f"{n_samples} samples (the printed results cover all of them)",
            file=sys.stderr,
            flush=True,
        )
    _section("Figures")
    for path in written:
        print(path)
    print(f"\nDone in {time.perf_counter() - started:.1f} s.")
    return 0
