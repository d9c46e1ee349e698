r"""Figures of explanations: rasters, heatmaps, profiles, digit overlays, causal bars and faithfulness curves.

Every function returns a `matplotlib.figure.Figure`, draws into `ax=` when one is given (and then
returns `ax.figure`), and accepts NumPy arrays, torch tensors (any device) or our result objects.
Figures are built with `matplotlib.figure.Figure` rather than `pyplot`, so plotting never opens a
window, never needs a display and leaves no global figure state behind; a notebook shows them as images
(they carry a PNG representation); save them with `save_figure` (atomic, size capped) or `fig.savefig`.

Colour scales are explicit and labelled with their unit: signed scores (attribution, saliency, importance)
use a diverging map centred on 0 (red: supports the output, blue: opposes it; limits symmetric,
$\pm\max|s|$, or shared between panels through `limit=`); non-negative scores use a sequential map
starting at 0; scores that take a few integer values (the saliency of a spike-count output is -1, 0 or +1)
get one colour per value, and entries that were not tested (no spike there) get a colour of their own.

matplotlib is imported lazily: `pip install 'spikexplain[viz]'`.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .extras import missing_extra

#: Diverging map for signed scores (red positive, blue negative, white 0) and sequential map for |scores|.
SIGNED_CMAP = "RdBu_r"
UNSIGNED_CMAP = "viridis"
#: Colour of map entries that hold no score at all (no spike was there to remove).
ABSENT_COLOUR = "#d9d9d9"
#: A score map whose values are all integers, with at most this many distinct levels, gets a discrete scale.
MAX_DISCRETE_LEVELS = 9
#: `save_figure` lowers the resolution so that neither side of an image exceeds this many pixels.
MAX_IMAGE_PIXELS = 4000


def _matplotlib():
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError as error:  # an optional dependency
        raise missing_extra("sc_neurocore.plot needs matplotlib", "viz") from error
    return matplotlib, Figure


@functools.cache
def _figure_class():
    """A ``Figure`` that Jupyter shows as an image even when no pyplot backend is active."""
    _, Figure = _matplotlib()

    class ExplanationFigure(Figure):
        """A `matplotlib.figure.Figure` with a PNG representation for notebooks."""

        def _repr_png_(self) -> bytes:
            buffer = io.BytesIO()
            self.savefig(buffer, format="png", dpi=100)
            return buffer.getvalue()

    return ExplanationFigure


def new_figure(figsize: tuple[float, float] = (6.0, 4.0)):
    """An empty figure (constrained layout) that notebooks display as an image; for multi-panel layouts.

    Example:
        >>> figure = new_figure((8, 3))
        >>> axes = figure.subplots(1, 2)
        >>> len(figure.axes)
        2
    """
    return _figure_class()(figsize=figsize, layout="constrained")


def _new_axes(ax: Any, figsize: tuple[float, float]):
    """``(figure, axes)``: a fresh figure with one axes, or the caller's axes and its figure."""
    if ax is not None:
        return ax.figure, ax
    figure = new_figure(figsize)
    return figure, figure.add_subplot()


def _array(value: Any, name: str) -> np.ndarray:
    """Tensor / array / list -> float64 NumPy array (a copy; the caller's data is never touched)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name}: expected a numeric array or tensor, got {type(value).__name__}") from error
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: expected finite values, found NaN or Inf")
    return array


def _score_map(scores: Any, name: str = "scores") -> np.ndarray:
    """A ``(T, N)`` map from an array or a result object (attribution map, saliency map)."""
    for accessor in ("attribution_map", "saliency_map"):
        if hasattr(scores, accessor):
            scores = getattr(scores, accessor)()
            break
    array = _array(scores, name)
    if array.ndim != 2:
        raise ValueError(
            f"{name}: expected one sample's (T, N) map, got shape {array.shape}; index a batch first (e.g. {name}[0])"
        )
    return array


def _colour_scale(values: np.ndarray, signed: bool | None = None, limit: float | None = None):
    """`(cmap, norm, signed)`: diverging and symmetric about 0 for signed values, else sequential from 0.

    `limit` fixes the largest magnitude shown (several panels on one scale); default `max|values|`.
    """
    matplotlib, _ = _matplotlib()
    if signed is None:
        signed = bool((values < 0).any())
    if limit is not None:
        largest = float(limit)
        if not largest > 0 or not np.isfinite(largest):
            raise ValueError(f"limit: expected a positive finite magnitude, got {limit!r}")
    else:
        largest = float(np.abs(values).max()) if values.size else 0.0
    largest = largest if largest > 0 else 1.0  # an all-zero map still gets a valid, labelled scale
    if signed:
        return SIGNED_CMAP, matplotlib.colors.Normalize(-largest, largest), True
    return UNSIGNED_CMAP, matplotlib.colors.Normalize(0.0, largest), False


def plot_spike_raster(
    spikes: Any,
    scores: Any = None,
    *,
    ax: Any = None,
    title: str | None = None,
    label: str = "importance (a.u.)",
    signed: bool | None = None,
):
    """Spike raster of one sample, each spike coloured by its score.

    Args:
        spikes: ``(T, N)`` input spikes (non-zero entries are spikes).
        scores: ``(T, N)`` scores, or an attribution / saliency result of one sample; ``None`` draws plain
            black spikes.
        ax: axes to draw into (``None``: a new figure).
        title: the axes title (``None``: a default; ``""``: none).
        label: the colour bar's label, with its unit.
        signed: force the diverging (``True``) or sequential (``False``) scale; ``None``: diverging if any
            score is negative. Pass ``True`` to compare maps of a signed method on the same kind of scale.

    Returns:
        The ``Figure``.

    Example:
        >>> import numpy as np
        >>> spikes = (np.random.default_rng(0).random((25, 64)) < 0.2).astype(float)
        >>> figure = plot_spike_raster(spikes, spikes * np.linspace(-1, 1, 64))
        >>> len(figure.axes)  # the raster and its colour bar
        2
    """
    spike_map = _array(spikes, "spikes")
    if spike_map.ndim != 2:
        raise ValueError(f"spikes: expected one sample's (T, N) spikes, got shape {spike_map.shape}")
    figure, axes = _new_axes(ax, (7.0, 4.0))
    timestep, neuron = np.nonzero(spike_map)
    if scores is None:
        axes.scatter(timestep, neuron, s=6, c="black", marker="|")
    else:
        score_map = _score_map(scores)
        if score_map.shape != spike_map.shape:
            raise ValueError(f"scores: expected the spikes' shape {spike_map.shape}, got {score_map.shape}")
        values = score_map[timestep, neuron]
        cmap, norm, _ = _colour_scale(values, signed)
        # Draw the strongest last so they are not hidden under weak ones.
        order = np.argsort(np.abs(values), kind="stable")
        points = axes.scatter(
            timestep[order], neuron[order], c=values[order], cmap=cmap, norm=norm, s=14, marker="s", edgecolors="none"
        )
        figure.colorbar(points, ax=axes, label=label)
    axes.set_xlim(-0.5, spike_map.shape[0] - 0.5)
    axes.set_ylim(-0.5, spike_map.shape[1] - 0.5)
    axes.set_xlabel("timestep")
    axes.set_ylabel("input neuron")
    default = "Input spikes" + ("" if scores is None else f" coloured by {label.split(' (')[0]}")
    axes.set_title(default if title is None else title)
    return figure


def _discrete_levels(values: np.ndarray) -> np.ndarray | None:
    """The sorted integer levels of `values` when there are few of them (a discrete scale), else `None`."""
    if values.size == 0 or not np.array_equal(values, np.round(values)):
        return None
    levels = np.unique(values)
    return levels if len(levels) <= MAX_DISCRETE_LEVELS else None


def plot_saliency_heatmap(
    scores: Any,
    *,
    ax: Any = None,
    title: str | None = None,
    label: str = "saliency (output change)",
    signed: bool | None = None,
    tested: Any = None,
):
    """Heatmap of a `(T, N)` score map: timestep on x, neuron on y.

    A map of a few integer values (the exact saliency of a spike-count output: -1, 0, +1) gets one colour
    per value and a colour bar with one tick per value; any other map a continuous scale. Entries that
    were not tested (no input spike there, so no score) are drawn in `ABSENT_COLOUR` and named in the
    legend, so that "no spike" is not confused with "a spike of saliency 0".

    Args:
        scores: `(T, N)` scores or a saliency / attribution result of one sample.
        ax: axes to draw into.
        title: the axes title (`None`: a default; `""`: none).
        label: the colour bar's label, with its unit.
        signed: force the diverging (`True`) or sequential (`False`) scale; `None`: diverging if any
            score is negative.
        tested: `(T, N)` mask of the entries that hold a score (non-zero: tested), e.g. the input spikes;
            default: a saliency result's `tested_mask()`, else every entry.

    Returns:
        The `Figure`.

    Example:
        >>> import numpy as np
        >>> spikes = (np.random.default_rng(0).random((25, 64)) < 0.3).astype(float)
        >>> saliency = spikes * np.random.default_rng(1).integers(-1, 2, size=(25, 64))
        >>> figure = plot_saliency_heatmap(saliency, tested=spikes)
        >>> [tick.get_text() for tick in figure.axes[1].get_yticklabels()]
        ['−1', '0', '+1']
    """
    matplotlib, _ = _matplotlib()
    if tested is None and hasattr(scores, "tested_mask"):
        tested = scores.tested_mask()
    score_map = _score_map(scores)
    mask = np.ones(score_map.shape, dtype=bool) if tested is None else _array(tested, "tested") != 0
    if mask.shape != score_map.shape:
        raise ValueError(f"tested: expected the scores' shape {score_map.shape}, got {mask.shape}")
    figure, axes = _new_axes(ax, (7.0, 4.0))
    shown = np.ma.masked_array(score_map, mask=~mask)
    levels = _discrete_levels(score_map[mask])
    if levels is not None:
        if signed is not False:  # a symmetric set of levels, so that 0 sits in the middle of the diverging map
            largest = max(1, int(np.abs(levels).max()))
            levels = np.arange(-largest, largest + 1) if signed or (levels < 0).any() else np.arange(0, largest + 1)
        base = matplotlib.colormaps[SIGNED_CMAP if (levels < 0).any() else UNSIGNED_CMAP]
        colours = base(np.linspace(0.1, 0.9, len(levels))) if len(levels) > 1 else base([0.5])
        if (levels < 0).any():
            colours[len(levels) // 2] = (1.0, 1.0, 1.0, 1.0)  # 0 is white, as on the continuous scale
        cmap = matplotlib.colors.ListedColormap(colours).with_extremes(bad=ABSENT_COLOUR)
        norm = matplotlib.colors.BoundaryNorm(np.append(levels, levels[-1] + 1) - 0.5, len(levels))
        image = axes.imshow(shown.T, aspect="auto", origin="lower", cmap=cmap, norm=norm, interpolation="nearest")
        bar = figure.colorbar(image, ax=axes, label=label, ticks=levels)
        bar.ax.set_yticklabels([f"{level:+d}" if level else "0" for level in levels.astype(int)])
        bar.ax.set_yticklabels([text.get_text().replace("-", "\u2212") for text in bar.ax.get_yticklabels()])
    else:
        cmap_name, norm, _ = _colour_scale(score_map[mask], signed)
        cmap = matplotlib.colormaps[cmap_name].with_extremes(bad=ABSENT_COLOUR)
        image = axes.imshow(shown.T, aspect="auto", origin="lower", cmap=cmap, norm=norm, interpolation="nearest")
        figure.colorbar(image, ax=axes, label=label)
    if not mask.all():
        absent = matplotlib.patches.Patch(facecolor=ABSENT_COLOUR, edgecolor="grey", label="no spike (not tested)")
        axes.legend(handles=[absent], loc="upper left", bbox_to_anchor=(0.0, -0.14), frameon=False, fontsize=8)
    axes.set_xlabel("timestep")
    axes.set_ylabel("input neuron")
    axes.set_title("Score per spike (timestep x neuron)" if title is None else title)
    return figure


def plot_temporal_profile(
    profiles: Any,
    *,
    ax: Any = None,
    title: str | None = None,
    ylabel: str = "score summed over neurons",
    units: Mapping[str, str] | None = None,
):
    """Score per timestep (summed over neurons), one line per method.

    Methods measure different things (attribution in arbitrary units, saliency in output spikes), so a
    mapping of several methods gets one axes per method, stacked on a shared time axis, each with its own
    y label and unit; they share one axes only when drawn into the caller's `ax`.

    Args:
        profiles: a `(T,)` profile, a result object (its `temporal_profile()` is used), or a mapping
            `{method name: profile or result}`.
        ax: axes to draw into (all profiles on it).
        title: the figure's title (`None`: a default; `""`: none).
        ylabel: the y axis label of a single profile.
        units: `{method name: unit}` for the y labels of a mapping (default: `ylabel` for each).

    Returns:
        The `Figure`.

    Example:
        >>> import numpy as np
        >>> figure = plot_temporal_profile({"a": np.arange(10.0), "b": -np.arange(10.0)},
        ...                                units={"a": "a.u.", "b": "output spikes"})
        >>> [axes.get_ylabel() for axes in figure.axes]
        ['a\\n(a.u.)', 'b\\n(output spikes)']
    """
    if not isinstance(profiles, Mapping):
        profiles = {"": profiles}
    if not profiles:
        raise ValueError("profiles: expected at least one profile")
    values = {}
    for name, profile in profiles.items():
        if hasattr(profile, "temporal_profile"):
            profile = profile.temporal_profile()
        array = _array(profile, f"profiles[{name!r}]" if name else "profiles")
        if array.ndim != 1:
            raise ValueError(f"profiles: expected (T,) profiles of one sample, got shape {array.shape}")
        values[name] = array
    units = dict(units or {})
    if ax is not None or len(values) == 1:
        figure, axes = _new_axes(ax, (6.0, 3.5))
        panels = [axes] * len(values)
    else:
        figure = new_figure((6.0, 1.2 + 1.6 * len(values)))
        panels = list(figure.subplots(len(values), 1, sharex=True, squeeze=False)[:, 0])
    colours = [f"C{index}" for index in range(len(values))]
    for panel, colour, (name, array) in zip(panels, colours, values.items(), strict=True):
        panel.plot(np.arange(len(array)), array, marker="o", markersize=3, color=colour, label=name or None)
        panel.axhline(0.0, color="grey", linewidth=0.8)
        if len(set(map(id, panels))) > 1:
            panel.set_ylabel(f"{name}\n({units[name]})" if name in units else name)
        else:
            panel.set_ylabel(ylabel)
    panels[-1].set_xlabel("timestep")
    text = "Temporal profile" if title is None else title
    if len(set(map(id, panels))) > 1:
        if text:
            figure.suptitle(text)
    else:
        panels[0].set_title(text)
        if any(values):
            panels[0].legend()
    return figure


def plot_digit_importance(
    image: Any,
    importance: Any,
    *,
    ax: Any = None,
    title: str | None = None,
    label: str = "importance (a.u.)",
    outline: float = 0.3,
    signed: bool | None = None,
    limit: float | None = None,
    colorbar: bool = True,
):
    """Importance per pixel over the digit: the digit in grey, importance in colour, its outline in black.

    The digit is drawn first in grey; pixels with importance exactly 0 (no spikes) let it show through,
    the others carry their importance colour, and the contour where the intensity crosses `outline` times
    its maximum keeps the digit's shape visible under the colours.

    Args:
        image: `(H, W)` intensities (8x8, 28x28, any size).
        importance: `H * W` per-pixel scores (e.g. `result.spatial_importance()`), flat or `(H, W)`.
        ax: axes to draw into.
        title: the axes title (`None`: a default; `""`: none).
        label: the colour bar's label, with its unit.
        outline: the contour level, as a share of the image's maximum intensity.
        signed: force the diverging (`True`) or sequential (`False`) scale; `None`: diverging if any
            score is negative.
        limit: the largest magnitude on the colour scale; pass the same value to several panels to put
            them on one scale (default: this panel's `max|importance|`).
        colorbar: draw this panel's colour bar (`False` when one bar serves several panels).

    Returns:
        The `Figure`.

    Example:
        >>> import numpy as np
        >>> image = np.random.default_rng(0).random((8, 8))
        >>> figure = plot_digit_importance(image, image.ravel() - 0.5, limit=1.0)
        >>> figure.axes[0].images[1].norm.vmax, figure.axes[0].get_title()
        (1.0, 'Importance on the digit')
    """
    pixels = _array(image, "image")
    if pixels.ndim != 2:
        raise ValueError(f"image: expected an (H, W) image, got shape {pixels.shape}")
    scores = _array(importance, "importance")
    if scores.size != pixels.size:
        raise ValueError(
            f"importance: expected {pixels.size} values (one per pixel of the {pixels.shape} image), "
            f"got shape {scores.shape}"
        )
    scores = scores.reshape(pixels.shape)
    figure, axes = _new_axes(ax, (4.5, 4.0))
    cmap, norm, _ = _colour_scale(scores, signed, limit)
    brightest = float(pixels.max())
    axes.imshow(
        pixels, cmap="gray_r", vmin=0.0, vmax=brightest if brightest > 0 else 1.0, alpha=0.45, interpolation="nearest"
    )
    heat = axes.imshow(np.ma.masked_equal(scores, 0.0), cmap=cmap, norm=norm, interpolation="nearest")
    if brightest > 0 and pixels.min() < outline * brightest:
        # Padded with a dark frame so that strokes touching the border still give closed outlines.
        height, width = pixels.shape
        axes.contour(
            np.arange(-1, width + 1),
            np.arange(-1, height + 1),
            np.pad(pixels, 1),
            levels=[outline * brightest],
            colors="black",
            linewidths=1.2,
        )
        axes.set_xlim(-0.5, width - 0.5)
        axes.set_ylim(height - 0.5, -0.5)
    if colorbar:
        figure.colorbar(heat, ax=axes, label=label)
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title("Importance on the digit" if title is None else title)
    return figure


def plot_causal_importance(
    importance: Any,
    *,
    ax: Any = None,
    title: str | None = None,
    top: int | None = None,
    neuron_label: str = "neuron",
    ylabel: str | None = None,
    percent: bool | None = None,
):
    """Bar chart of causal importance per neuron (the drop when it is silenced), signed colours.

    An accuracy drop is drawn in percentage points (0.0125 -> 1.25), the unit the demo and the reports
    print; a target-output drop in output units.

    Args:
        importance: `(n,)` importance scores, or a `CausalResult` of one sample or of a labelled batch.
        ax: axes to draw into.
        title: the axes title (`None`: a default; `""`: none).
        top: show only the `top` largest `|importance|` neurons, largest first (`None`: all, in order).
        neuron_label: the x axis label.
        ylabel: the y axis label (default from the result's metric, with its unit).
        percent: draw accuracy fractions as percentage points (default: when the result's metric is
            `"accuracy"`).

    Returns:
        The `Figure`.

    Example:
        >>> import numpy as np
        >>> figure = plot_causal_importance(np.array([0.3, -0.1, 0.0, 0.5]), top=3)
        >>> [tick.get_text() for tick in figure.axes[0].get_xticklabels()]
        ['3', '0', '1']
    """
    metric = getattr(importance, "metric", None)
    if hasattr(importance, "importance_map"):
        importance = importance.importance_map()
    values = _array(importance, "importance")
    if values.ndim != 1:
        raise ValueError(
            f"importance: expected (n,) scores of one sample or a labelled batch, got shape {values.shape}"
        )
    percent = metric == "accuracy" if percent is None else bool(percent)
    if percent:
        values = 100.0 * values
    neurons = np.arange(len(values))
    if top is not None:
        if not isinstance(top, int) or isinstance(top, bool) or top < 1:
            raise ValueError(f"top: expected a positive int, got {top!r}")
        neurons = np.argsort(-np.abs(values), kind="stable")[:top]
    figure, axes = _new_axes(ax, (min(16.0, max(4.0, 0.22 * len(neurons) + 1.5)), 3.5))
    matplotlib, _ = _matplotlib()
    cmap, norm, _ = _colour_scale(values, signed=True)
    colours = matplotlib.colormaps[cmap](norm(values[neurons]))
    axes.bar(np.arange(len(neurons)), values[neurons], color=colours, edgecolor="black", linewidth=0.4)
    axes.axhline(0.0, color="grey", linewidth=0.8)
    axes.set_xticks(np.arange(len(neurons)), [str(n) for n in neurons], fontsize=7)
    axes.set_xlabel(neuron_label)
    if ylabel is None:
        ylabel = (
            "accuracy drop when silenced\n(percentage points)"
            if percent
            else "accuracy drop when silenced"
            if metric == "accuracy"
            else "output drop when silenced\n(output units)"
        )
    axes.set_ylabel(ylabel)
    axes.set_title("Causal importance" if title is None else title)
    return figure


def plot_robustness_curve(
    curve: Any,
    *,
    baseline: float | None = None,
    threshold: float = 0.05,
    ax: Any = None,
    title: str | None = None,
    ylabel: str | None = None,
):
    """Accuracy (or target output) with the ``k`` least important neurons silenced, ``k = 0 .. n``.

    Args:
        curve: a `CausalResult` of one sample or a labelled batch (its
            ``robustness_curve()`` is evaluated), or the ``(n + 1,)`` curve itself.
        baseline: the unsilenced value (default: ``curve[0]``, or the result's baseline).
        threshold: draw the level ``(1 - threshold) * baseline`` and mark the robustness count, the last
            ``k`` at or above it (as ``CausalResult.robustness_count`` defines it).
        ax: axes to draw into.
        title: the axes title (``None``: a default; ``""``: none).
        ylabel: the y axis label (default from the result's metric).

    Returns:
        The ``Figure``.

    Example:
        >>> import numpy as np
        >>> figure = plot_robustness_curve(np.array([0.9, 0.9, 0.88, 0.6, 0.1]))
        >>> figure.axes[0].get_xlabel()
        'neurons silenced (least important first)'
    """
    metric = getattr(curve, "metric", None)
    if hasattr(curve, "robustness_curve"):
        if baseline is None:
            baseline = curve.baseline
        curve = curve.robustness_curve()
    values = _array(curve, "curve")
    if values.ndim != 1 or len(values) < 2:
        raise ValueError(
            f"curve: expected an (n + 1,) curve of one sample or a labelled batch, got shape {values.shape}"
        )
    baseline = float(values[0] if baseline is None else _array(baseline, "baseline"))
    if metric == "accuracy":  # in percent, as the demo and the reports print accuracy
        values, baseline = 100.0 * values, 100.0 * baseline
    figure, axes = _new_axes(ax, (6.0, 3.5))
    k = np.arange(len(values))
    axes.plot(k, values, color="black", marker="o", markersize=3, label="silenced together")
    level = baseline - threshold * abs(baseline)
    within = np.flatnonzero(baseline - values <= threshold * abs(baseline))
    count = int(within.max()) if len(within) else 0
    axes.axhline(level, color="tab:red", linestyle="--", linewidth=1, label=f"{threshold:.0%} drop")
    axes.axvline(count, color="tab:blue", linestyle=":", linewidth=1, label=f"robustness count = {count}")
    axes.set_xlabel("neurons silenced (least important first)")
    axes.set_ylabel(ylabel or ("accuracy (%)" if metric == "accuracy" else "target output (output units)"))
    axes.set_title("Robustness" if title is None else title)
    axes.legend()
    return figure


#: Line styles cycled with the colours, so that curves that coincide stay distinguishable.
_LINE_STYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "<", ">")


def plot_perturbation_curves(
    curves: Mapping[str, Any],
    *,
    ax: Any = None,
    title: str | None = None,
    ylabel: str = "target output (output spikes)",
    band: str = "quartiles",
):
    """Deletion or insertion curves of several methods on one axes: the mean over samples, a spread band,
    the AUC in the legend, and the legend outside the data.

    Methods whose mean curves coincide are drawn once, with all their names in one legend entry, instead
    of one line hidden under the other.

    Args:
        curves: `{method name: curve}`, each a `sc_neurocore.explain.metrics.Curve` (`fractions`
            `(M,)`, `values` `(B, M)` or `(M,)`, `auc`) or a pair `(fractions, values)`.
            Computed beforehand (e.g. by `sc_neurocore.explain.metrics.deletion_curve`).
        ax: axes to draw into.
        title: the axes title (default from the curves' `kind`).
        ylabel: the y axis label, with its unit.
        band: the spread drawn around each mean over samples: `"quartiles"` (25th to 75th percentile),
            `"std"` (mean +- one standard deviation) or `"none"`.

    Returns:
        The `Figure`.

    Example:
        >>> import numpy as np
        >>> fractions = np.linspace(0, 1, 5)
        >>> figure = plot_perturbation_curves({"a": (fractions, 1 - fractions), "b": (fractions, 1 - fractions**2)})
        >>> len(figure.axes[0].get_lines())
        2
    """
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError("curves: expected a non-empty mapping {method name: curve}")
    if band not in ("quartiles", "std", "none"):
        raise ValueError(f"band: expected 'quartiles', 'std' or 'none', got {band!r}")
    kinds: set[str] = {str(curve.kind) for curve in curves.values() if getattr(curve, "kind", None) is not None}
    if len(kinds) > 1:
        raise ValueError(f"curves: expected curves of one kind on one axes, got {sorted(kinds)}")
    drawn: list[tuple[list[str], np.ndarray, np.ndarray, float]] = []  # (names, x, per-sample y, AUC)
    for name, curve in curves.items():
        if isinstance(curve, Sequence) and not hasattr(curve, "fractions") and len(curve) == 2:
            fractions, values = curve
        elif hasattr(curve, "fractions") and hasattr(curve, "values"):
            fractions, values = curve.fractions, curve.values
        else:
            raise TypeError(
                f"curves[{name!r}]: expected a Curve or a (fractions, values) pair, got {type(curve).__name__}"
            )
        x, y = _array(fractions, f"curves[{name!r}].fractions"), _array(values, f"curves[{name!r}].values")
        y = y.reshape(-1, y.shape[-1]) if y.ndim else y
        if x.ndim != 1 or y.shape[-1] != len(x):
            raise ValueError(
                f"curves[{name!r}]: expected (M,) fractions and (B, M) or (M,) values, got {x.shape} and {y.shape}"
            )
        mean = y.mean(axis=0)
        if hasattr(curve, "auc"):  # the metric's own per-sample areas, averaged
            auc = float(_array(curve.auc, f"curves[{name!r}].auc").mean())
        else:  # the trapezoid area of the mean curve (equal to the mean of the areas)
            auc = float(np.sum((mean[1:] + mean[:-1]) * np.diff(x)) / 2)
        for entry in drawn:
            if entry[1].shape == x.shape and np.allclose(entry[1], x) and np.allclose(entry[2].mean(axis=0), mean):
                entry[0].append(name)
                break
        else:
            drawn.append(([name], x, y, auc))
    figure, axes = _new_axes(ax, (7.5, 4.0))
    for index, (names, x, y, auc) in enumerate(drawn):
        colour, style = f"C{index % 10}", _LINE_STYLES[(index // 10 + index) % len(_LINE_STYLES)]
        axes.plot(
            x,
            y.mean(axis=0),
            color=colour,
            linestyle=style,
            marker=_MARKERS[index % len(_MARKERS)],
            markersize=3,
            label=f"{' = '.join(names)} (AUC {auc:.3g})",
        )
        if band != "none" and y.shape[0] > 1:
            if band == "quartiles":
                low, high = np.percentile(y, 25, axis=0), np.percentile(y, 75, axis=0)
            else:
                low, high = y.mean(axis=0) - y.std(axis=0), y.mean(axis=0) + y.std(axis=0)
            axes.fill_between(x, low, high, color=colour, alpha=0.12, linewidth=0)
    kind = next(iter(kinds), "")
    axes.set_xlabel(
        {
            "deletion": "share of spikes deleted (highest score first)",
            "insertion": "share of spikes inserted (highest score first)",
        }.get(kind, "share of spikes")
    )
    axes.set_ylabel(ylabel)
    default = f"{kind.capitalize()} curves" if kind else "Perturbation curves"
    axes.set_title(default if title is None else title)
    spread = {
        "quartiles": "bands: 25th-75th percentile over samples",
        "std": "bands: mean +- 1 std over samples",
        "none": "",
    }[band]
    axes.legend(
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        title=f"mean over samples\n{spread}" if spread else "mean over samples",
        title_fontsize=8,
    )
    return figure


def plot_benchmark_times(rows: Sequence[tuple[str, str, float]], *, ax: Any = None, title: str | None = None):
    """Median time of each contender, grouped by case, on a log scale: ours against the loops and Captum.

    Args:
        rows: `(case, contender, seconds)` triples, e.g. read from the tables `sc-neurocore bench` writes;
            within a case the first row is the reference the others' ratios are taken against.
        ax: axes to draw into.
        title: the axes title (`None`: a default; `""`: none).

    Returns:
        The `Figure`.

    Example:
        >>> figure = plot_benchmark_times([("a", "ours", 0.02), ("a", "naive loop", 2.0), ("b", "ours", 0.1)])
        >>> [float(bar.get_width()) for bar in figure.axes[0].patches]
        [0.02, 2.0, 0.1]
    """
    if not rows:
        raise ValueError("rows: expected at least one (case, contender, seconds) row")
    cases: dict[str, list[tuple[str, float]]] = {}
    for number, row in enumerate(rows):
        if len(row) != 3 or not float(row[2]) > 0:
            raise ValueError(f"rows[{number}]: expected (case, contender, positive seconds), got {row!r}")
        cases.setdefault(str(row[0]), []).append((str(row[1]), float(row[2])))
    import re

    n_bars = sum(len(entries) for entries in cases.values())
    figure, axes = _new_axes(ax, (9.0, min(16.0, 1.4 + 0.28 * n_bars + 0.25 * len(cases))))
    # One colour per kind of contender ("ours (627 spikes)" and "ours (999 spikes)" are both "ours").
    kinds = list(dict.fromkeys(re.sub(r"\s*\(.*\)$", "", name) for entries in cases.values() for name, _ in entries))
    position, ticks, labels, drawn = 0.0, [], [], set()
    for case, entries in cases.items():
        reference = entries[0][1]
        start = position
        for name, seconds in entries:
            kind = re.sub(r"\s*\(.*\)$", "", name)
            axes.barh(
                position,
                seconds,
                color=f"C{kinds.index(kind) % 10}",
                edgecolor="black",
                linewidth=0.4,
                label=None if kind in drawn else kind,
            )
            drawn.add(kind)
            axes.text(seconds * 1.08, position, f"{seconds / reference:.1f}x", va="center", fontsize=7)
            position += 1.0
        ticks.append((start + position - 1.0) / 2)
        labels.append(case)
        position += 0.6  # a gap between cases
    axes.set_yticks(ticks, labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlim(right=4 * max(float(row[2]) for row in rows))  # room for the ratio labels
    axes.set_xlabel("median time (s, log scale); bar labels: time / the case's first row")
    axes.set_title("Median time per contender" if title is None else title)
    axes.legend(
        fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, title="contender", title_fontsize=8
    )
    return figure


def save_figure(figure: Any, path: Any, dpi: int = 120) -> None:
    """Write `figure` as an image file (format from the suffix) atomically: the file is whole or absent.

    The resolution is lowered where needed so that no side of the image exceeds `MAX_IMAGE_PIXELS`.

    Args:
        figure: a matplotlib ``Figure``.
        path: the target file; its folder must exist; ``.png``, ``.svg``, ``.pdf``, ...
        dpi: resolution of raster formats.

    Example:
        >>> import numpy as np, tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> save_figure(plot_temporal_profile(np.arange(5.0)), folder / "profile.png")
        >>> (folder / "profile.png").stat().st_size > 0
        True
    """
    from pathlib import Path

    from .atomic import atomic_path

    target = Path(path)
    image_format = target.suffix.lstrip(".").lower() or "png"
    supported = figure.canvas.get_supported_filetypes()
    if image_format not in supported:
        raise ValueError(
            f"path: expected a file name ending in one of {sorted('.' + s for s in supported)}, got {str(path)!r}"
        )
    width, height = figure.get_size_inches()
    dpi = min(float(dpi), MAX_IMAGE_PIXELS / max(width, height))  # no side beyond MAX_IMAGE_PIXELS pixels
    with atomic_path(target) as temporary:
        figure.savefig(temporary, dpi=dpi, format=image_format)
