"""Figures of explanations: rasters, heatmaps, profiles, digit overlays, causal bars and faithfulness curves.

Every function returns a :class:`matplotlib.figure.Figure`, draws into ``ax=`` when one is given (and then
returns ``ax.figure``), and accepts NumPy arrays, torch tensors (any device) or our result objects.
Figures are built with ``matplotlib.figure.Figure`` rather than ``pyplot``, so plotting never opens a
window, never needs a display and leaves no global figure state behind; a notebook shows them as images
(they carry a PNG representation); save them with :func:`save_figure` (atomic) or ``fig.savefig``.

Colour scales are explicit and labelled: signed scores (attribution, saliency, importance) use a
diverging map centred on 0 (red: supports the output, blue: opposes it; limits symmetric, ``+-max|s|``);
non-negative scores use a sequential map starting at 0.

matplotlib is imported lazily: ``pip install 'spikexplain[viz]'``.
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
        """A :class:`matplotlib.figure.Figure` with a PNG representation for notebooks."""

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
        raise ValueError(f"{name}: expected one sample's (T, N) map, got shape {array.shape}; "
                         f"index a batch first (e.g. {name}[0])")
    return array


def _colour_scale(values: np.ndarray, signed: bool | None = None):
    """``(cmap, norm, signed)``: diverging and symmetric about 0 for signed values, else sequential from 0."""
    matplotlib, _ = _matplotlib()
    if signed is None:
        signed = bool((values < 0).any())
    largest = float(np.abs(values).max()) if values.size else 0.0
    largest = largest if largest > 0 else 1.0  # an all-zero map still gets a valid, labelled scale
    if signed:
        return SIGNED_CMAP, matplotlib.colors.Normalize(-largest, largest), True
    return UNSIGNED_CMAP, matplotlib.colors.Normalize(0.0, largest), False


def plot_spike_raster(spikes: Any, scores: Any = None, *, ax: Any = None, title: str | None = None,
                      label: str = "importance", signed: bool | None = None):
    """Spike raster of one sample, each spike coloured by its score.

    Args:
        spikes: ``(T, N)`` input spikes (non-zero entries are spikes).
        scores: ``(T, N)`` scores, or an attribution / saliency result of one sample; ``None`` draws plain
            black spikes.
        ax: axes to draw into (``None``: a new figure).
        title: the axes title (``None``: a default; ``""``: none).
        label: the colour bar's label.
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
        points = axes.scatter(timestep[order], neuron[order], c=values[order], cmap=cmap, norm=norm, s=14,
                              marker="s", edgecolors="none")
        figure.colorbar(points, ax=axes, label=label)
    axes.set_xlim(-0.5, spike_map.shape[0] - 0.5)
    axes.set_ylim(-0.5, spike_map.shape[1] - 0.5)
    axes.set_xlabel("timestep")
    axes.set_ylabel("input neuron")
    default = "Input spikes" + ("" if scores is None else f" coloured by {label}")
    axes.set_title(default if title is None else title)
    return figure


def plot_saliency_heatmap(scores: Any, *, ax: Any = None, title: str | None = None, label: str = "saliency",
                          signed: bool | None = None):
    """Heatmap of a ``(T, N)`` score map: timestep on x, neuron on y.

    Args:
        scores: ``(T, N)`` scores or a saliency / attribution result of one sample.
        ax: axes to draw into.
        title: the axes title (``None``: a default; ``""``: none).
        label: the colour bar's label.
        signed: force the diverging (``True``) or sequential (``False``) scale; ``None``: diverging if any
            score is negative.

    Returns:
        The ``Figure``.

    Example:
        >>> import numpy as np
        >>> figure = plot_saliency_heatmap(np.random.default_rng(0).normal(size=(25, 64)))
        >>> figure.axes[0].get_xlabel()
        'timestep'
    """
    score_map = _score_map(scores)
    figure, axes = _new_axes(ax, (7.0, 4.0))
    cmap, norm, _ = _colour_scale(score_map, signed)
    image = axes.imshow(score_map.T, aspect="auto", origin="lower", cmap=cmap, norm=norm, interpolation="nearest")
    figure.colorbar(image, ax=axes, label=label)
    axes.set_xlabel("timestep")
    axes.set_ylabel("input neuron")
    axes.set_title(f"{label.capitalize()} per spike (timestep x neuron)" if title is None else title)
    return figure


def plot_temporal_profile(profiles: Any, *, ax: Any = None, title: str | None = None,
                          ylabel: str = "score summed over neurons"):
    """Score per timestep (summed over neurons), one line per method.

    Args:
        profiles: a ``(T,)`` profile, a result object (its ``temporal_profile()`` is used), or a mapping
            ``{method name: profile or result}`` to compare methods on one axes.
        ax: axes to draw into.
        title: the axes title (``None``: a default; ``""``: none).
        ylabel: the y axis label.

    Returns:
        The ``Figure``.

    Example:
        >>> import numpy as np
        >>> figure = plot_temporal_profile({"a": np.arange(10.0), "b": -np.arange(10.0)})
        >>> len(figure.axes[0].get_lines())  # two profiles and the zero line
        3
    """
    if not isinstance(profiles, Mapping):
        profiles = {"": profiles}
    figure, axes = _new_axes(ax, (6.0, 3.5))
    for name, profile in profiles.items():
        if hasattr(profile, "temporal_profile"):
            profile = profile.temporal_profile()
        values = _array(profile, f"profiles[{name!r}]" if name else "profiles")
        if values.ndim != 1:
            raise ValueError(f"profiles: expected (T,) profiles of one sample, got shape {values.shape}")
        axes.plot(np.arange(len(values)), values, marker="o", markersize=3, label=name or None)
    axes.axhline(0.0, color="grey", linewidth=0.8)
    axes.set_xlabel("timestep")
    axes.set_ylabel(ylabel)
    axes.set_title("Temporal profile" if title is None else title)
    if any(profiles):
        axes.legend()
    return figure


def plot_digit_importance(image: Any, importance: Any, *, ax: Any = None, title: str | None = None,
                          label: str = "importance", outline: float = 0.3, signed: bool | None = None):
    """Importance per pixel overlaid on the digit: importance in colour, the digit's outline in black.

    Pixels with importance exactly 0 (no spikes) stay white; the digit is drawn as the contour where its
    intensity crosses ``outline`` times its maximum, so the colours are not mixed with the digit's grey.

    Args:
        image: ``(H, W)`` intensities (8x8, 28x28, any size).
        importance: ``H * W`` per-pixel scores (e.g. ``result.spatial_importance()``), flat or ``(H, W)``.
        ax: axes to draw into.
        title: the axes title (``None``: a default; ``""``: none).
        label: the colour bar's label.
        outline: the contour level, as a share of the image's maximum intensity.
        signed: force the diverging (``True``) or sequential (``False``) scale; ``None``: diverging if any
            score is negative.

    Returns:
        The ``Figure``.

    Example:
        >>> import numpy as np
        >>> image = np.random.default_rng(0).random((8, 8))
        >>> plot_digit_importance(image, image.ravel() - 0.5).axes[0].get_title()
        'Importance on the digit'
    """
    pixels = _array(image, "image")
    if pixels.ndim != 2:
        raise ValueError(f"image: expected an (H, W) image, got shape {pixels.shape}")
    scores = _array(importance, "importance")
    if scores.size != pixels.size:
        raise ValueError(f"importance: expected {pixels.size} values (one per pixel of the {pixels.shape} image), "
                         f"got shape {scores.shape}")
    scores = scores.reshape(pixels.shape)
    figure, axes = _new_axes(ax, (4.5, 4.0))
    cmap, norm, _ = _colour_scale(scores, signed)
    heat = axes.imshow(np.ma.masked_equal(scores, 0.0), cmap=cmap, norm=norm, interpolation="nearest")
    brightest = float(pixels.max())
    if brightest > 0 and pixels.min() < outline * brightest:
        # Padded with a dark frame so that strokes touching the border still give closed outlines.
        height, width = pixels.shape
        axes.contour(np.arange(-1, width + 1), np.arange(-1, height + 1), np.pad(pixels, 1),
                     levels=[outline * brightest], colors="black", linewidths=1.2)
        axes.set_xlim(-0.5, width - 0.5)
        axes.set_ylim(height - 0.5, -0.5)
    figure.colorbar(heat, ax=axes, label=label)
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title("Importance on the digit" if title is None else title)
    return figure


def plot_causal_importance(importance: Any, *, ax: Any = None, title: str | None = None, top: int | None = None,
                           neuron_label: str = "neuron", ylabel: str | None = None):
    """Bar chart of causal importance per neuron (the drop when it is silenced), signed colours.

    Args:
        importance: ``(n,)`` importance scores, or a :class:`~sc_neurocore.explain.CausalResult` of one sample
            or of a labelled batch.
        ax: axes to draw into.
        title: the axes title (``None``: a default; ``""``: none).
        top: show only the ``top`` largest ``|importance|`` neurons, largest first (``None``: all, in order).
        neuron_label: the x axis label.
        ylabel: the y axis label (default from the result's metric).

    Returns:
        The ``Figure``.

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
        raise ValueError(f"importance: expected (n,) scores of one sample or a labelled batch, got shape "
                         f"{values.shape}")
    neurons = np.arange(len(values))
    if top is not None:
        if not isinstance(top, int) or isinstance(top, bool) or top < 1:
            raise ValueError(f"top: expected a positive int, got {top!r}")
        neurons = np.argsort(-np.abs(values), kind="stable")[:top]
    figure, axes = _new_axes(ax, (max(4.0, 0.22 * len(neurons) + 1.5), 3.5))
    matplotlib, _ = _matplotlib()
    cmap, norm, _ = _colour_scale(values, signed=True)
    colours = matplotlib.colormaps[cmap](norm(values[neurons]))
    axes.bar(np.arange(len(neurons)), values[neurons], color=colours, edgecolor="black", linewidth=0.4)
    axes.axhline(0.0, color="grey", linewidth=0.8)
    axes.set_xticks(np.arange(len(neurons)), [str(n) for n in neurons], fontsize=7)
    axes.set_xlabel(neuron_label)
    axes.set_ylabel(ylabel or ("accuracy drop when silenced" if metric == "accuracy"
                               else "output drop when silenced"))
    axes.set_title("Causal importance" if title is None else title)
    return figure


def plot_robustness_curve(curve: Any, *, baseline: float | None = None, threshold: float = 0.05, ax: Any = None,
                          title: str | None = None, ylabel: str | None = None):
    """Accuracy (or target output) with the ``k`` least important neurons silenced, ``k = 0 .. n``.

    Args:
        curve: a :class:`~sc_neurocore.explain.CausalResult` of one sample or a labelled batch (its
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
        raise ValueError(f"curve: expected an (n + 1,) curve of one sample or a labelled batch, got shape "
                         f"{values.shape}")
    baseline = float(values[0] if baseline is None else _array(baseline, "baseline"))
    figure, axes = _new_axes(ax, (6.0, 3.5))
    k = np.arange(len(values))
    axes.plot(k, values, color="black", marker="o", markersize=3, label="silenced together")
    level = baseline - threshold * abs(baseline)
    within = np.flatnonzero(baseline - values <= threshold * abs(baseline))
    count = int(within.max()) if len(within) else 0
    axes.axhline(level, color="tab:red", linestyle="--", linewidth=1, label=f"{threshold:.0%} drop")
    axes.axvline(count, color="tab:blue", linestyle=":", linewidth=1, label=f"robustness count = {count}")
    axes.set_xlabel("neurons silenced (least important first)")
    axes.set_ylabel(ylabel or ("accuracy" if metric == "accuracy" else "target output"))
    axes.set_title("Robustness" if title is None else title)
    axes.legend()
    return figure


def plot_perturbation_curves(curves: Mapping[str, Any], *, ax: Any = None, title: str | None = None,
                             ylabel: str = "target output"):
    """Deletion or insertion curves of several methods on one axes (mean over samples, AUC in the legend).

    Args:
        curves: ``{method name: curve}``, each a :class:`~sc_neurocore.explain.metrics.Curve` (``fractions``
            ``(M,)``, ``values`` ``(B, M)`` or ``(M,)``, ``auc``) or a pair ``(fractions, values)``.
            Computed beforehand (e.g. by :func:`sc_neurocore.explain.metrics.deletion_curve`).
        ax: axes to draw into.
        title: the axes title (default from the curves' ``kind``).
        ylabel: the y axis label.

    Returns:
        The ``Figure``.

    Example:
        >>> import numpy as np
        >>> fractions = np.linspace(0, 1, 5)
        >>> figure = plot_perturbation_curves({"a": (fractions, 1 - fractions), "b": (fractions, 1 - fractions**2)})
        >>> len(figure.axes[0].get_lines())
        2
    """
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError("curves: expected a non-empty mapping {method name: curve}")
    kinds = {getattr(curve, "kind", None) for curve in curves.values()} - {None}
    if len(kinds) > 1:
        raise ValueError(f"curves: expected curves of one kind on one axes, got {sorted(kinds)}")
    figure, axes = _new_axes(ax, (6.0, 4.0))
    for name, curve in curves.items():
        if isinstance(curve, Sequence) and not hasattr(curve, "fractions") and len(curve) == 2:
            fractions, values = curve
        elif hasattr(curve, "fractions") and hasattr(curve, "values"):
            fractions, values = curve.fractions, curve.values
        else:
            raise TypeError(f"curves[{name!r}]: expected a Curve or a (fractions, values) pair, got "
                            f"{type(curve).__name__}")
        x, y = _array(fractions, f"curves[{name!r}].fractions"), _array(values, f"curves[{name!r}].values")
        y = y.reshape(-1, y.shape[-1]) if y.ndim else y
        if x.ndim != 1 or y.shape[-1] != len(x):
            raise ValueError(f"curves[{name!r}]: expected (M,) fractions and (B, M) or (M,) values, got "
                             f"{x.shape} and {y.shape}")
        mean = y.mean(axis=0)
        if hasattr(curve, "auc"):  # the metric's own per-sample areas, averaged
            auc = float(_array(curve.auc, f"curves[{name!r}].auc").mean())
        else:  # the trapezoid area of the mean curve (equal to the mean of the areas)
            auc = float(np.sum((mean[1:] + mean[:-1]) * np.diff(x)) / 2)
        axes.plot(x, mean, marker="o", markersize=3, label=f"{name} (AUC {auc:.3g})")
    kind = next(iter(kinds), None)
    axes.set_xlabel({"deletion": "share of spikes deleted (highest score first)",
                     "insertion": "share of spikes inserted (highest score first)"}.get(kind, "share of spikes"))
    axes.set_ylabel(ylabel)
    default = f"{kind.capitalize()} curves" if kind else "Perturbation curves"
    axes.set_title(default if title is None else title)
    axes.legend(fontsize=8)
    return figure


def save_figure(figure: Any, path: Any, dpi: int = 120) -> None:
    """Write ``figure`` as an image file (format from the suffix) atomically: the file is whole or absent.

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
        raise ValueError(f"path: expected a file name ending in one of {sorted('.' + s for s in supported)}, got "
                         f"{str(path)!r}")
    with atomic_path(target) as temporary:
        figure.savefig(temporary, dpi=dpi, format=image_format)
