"""Result types of the explainers.

Scores are stored batch-first as tensors on the input's device; accessors give them back the way the
input came in: a ``(T, N)`` input gets ``(T, N)`` maps and a ``(B, T, N)`` input ``(B, T, N)`` maps;
NumPy in gives NumPy out, torch in gives torch out on the input's device.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..inputs import as_fraction, as_positive_int, give_back

TopK = list[tuple[int, int, float]]


def rank_by_magnitude(scores: Tensor, k: int) -> TopK:
    """The ``k`` entries of a ``(T, N)`` map with the largest ``|score|``, ties broken by ``(t, neuron)``."""
    flat = scores.reshape(-1)
    # A stable sort on the flat index keeps equal magnitudes in (t, neuron) order.
    order = torch.sort(flat.abs(), descending=True, stable=True).indices[:k]
    n_neurons = scores.shape[1]
    return [(t, n, s) for t, n, s in zip((order // n_neurons).tolist(), (order % n_neurons).tolist(),
                                         flat[order].tolist())]


class SpikeMap:
    """Per-spike, per-timestep scores ``(B, T, N)`` and the accessors shared by attribution and saliency."""

    def __init__(self, scores: Tensor, *, batched: bool, numpy: bool) -> None:
        self._scores = scores
        self._batched = batched
        self._numpy = numpy

    @property
    def batch_size(self) -> int:
        return self._scores.shape[0]

    def _give(self, tensor: Tensor):
        return give_back(tensor, self._batched, self._numpy)

    def _map(self, absolute: bool) -> Tensor:
        return self._scores.abs() if absolute else self._scores

    def top_k(self, k: int, sample: int | None = None) -> TopK | list[TopK]:
        """The ``k`` highest-``|score|`` entries as ``(t, neuron, score)``, ties by ``(t, neuron)``.

        Args:
            k: how many (fewer if the map has fewer entries).
            sample: for a batch, which sample; ``None`` gives one list per sample.

        Returns:
            A list of ``(t, neuron, score)`` with Python ``int, int, float``, or for a batch and
            ``sample=None`` a list of such lists.
        """
        k = as_positive_int(k, "k")
        if sample is None:
            ranked = [rank_by_magnitude(scores, k) for scores in self._scores]
            return ranked if self._batched else ranked[0]
        if not isinstance(sample, int) or isinstance(sample, bool) or not 0 <= sample < self.batch_size:
            raise ValueError(f"sample: expected an int in [0, {self.batch_size}), got {sample!r}")
        return rank_by_magnitude(self._scores[sample], k)

    def temporal_profile(self, absolute: bool = False):
        """Score summed over neurons, per timestep: ``(T,)`` (``(B, T)`` for a batch).

        Signed by default, so that it sums to the same total as the map; ``absolute=True`` sums ``|score|``.
        """
        return self._give(self._map(absolute).sum(dim=2))

    def spatial_importance(self, absolute: bool = False):
        """Score summed over time, per input neuron: ``(N,)`` (``(B, N)`` for a batch)."""
        return self._give(self._map(absolute).sum(dim=1))


class AttributionResult(SpikeMap):
    """What :class:`~sc_neurocore.explain.SpikeAttributor` returns.

    Attributes:
        total: the sum of all scores (per sample for a batch): the linear leaky readout for
            ``mode="linear"`` (completeness), the gated readout for ``mode="gated"``.
        output_neuron: the explained output neuron(s).
    """

    def __init__(self, scores: Tensor, output_neuron: Tensor, *, batched: bool, numpy: bool) -> None:
        super().__init__(scores, batched=batched, numpy=numpy)
        self._output_neuron = output_neuron

    def attribution_map(self):
        """Signed attribution ``(T, N)`` (``(B, T, N)`` for a batch)."""
        return self._give(self._scores)

    @property
    def total(self):
        totals = self._scores.sum(dim=(1, 2))
        if not self._batched:
            return float(totals[0])
        return self._give(totals)

    @property
    def output_neuron(self):
        return int(self._output_neuron[0]) if not self._batched else self._give(self._output_neuron)


class SaliencyResult(SpikeMap):
    """What :class:`~sc_neurocore.explain.TemporalSaliency` returns.

    ``saliency[t, i] = f_k(x) - f_k(x with spike (t, i) removed)`` for every spike of the input and 0 where
    there is no spike: positive means the spike supported output ``k``. In the model's output units.

    Attributes:
        baseline: the unperturbed target output ``f_k(x)`` (per sample for a batch).
        significance: the ``|saliency|`` from which a spike counts as significant in :meth:`summary`.
    """

    def __init__(self, scores: Tensor, tested: Tensor, baseline: Tensor, significance: float, *,
                 batched: bool, numpy: bool) -> None:
        super().__init__(scores, batched=batched, numpy=numpy)
        self._tested = tested
        self._baseline = baseline
        self.significance = significance

    def saliency_map(self, absolute: bool = False):
        """Saliency ``(T, N)`` (``(B, T, N)`` for a batch); ``absolute=True`` gives ``|saliency|``."""
        return self._give(self._map(absolute))

    def tested_mask(self):
        """Where a spike was removed and tested (the non-zero entries of the input), same shape as the map."""
        return self._give(self._tested)

    @property
    def baseline(self):
        return float(self._baseline[0]) if not self._batched else self._give(self._baseline)

    def summary(self) -> str:
        """The tutorial's four-line summary, over all samples of a batch.

        * Total spikes tested: the number of non-zero input entries.
        * Significant spikes: those with ``|saliency| >= significance``, and their share of those tested.
        * Max saliency: the signed saliency of largest magnitude, and where (``sample`` added for a batch).
        * Mean saliency: the mean of ``|saliency|`` over tested spikes.
        """
        tested = int(self._tested.sum())
        magnitudes = self._scores.abs()
        significant = int(((magnitudes >= self.significance) & self._tested).sum())
        share = 100.0 * significant / tested if tested else 0.0
        lines = [f"Total spikes tested: {tested}", f"Significant spikes: {significant} ({share:.1f}%)"]
        if tested:
            flat_index = int(torch.argmax(magnitudes.reshape(-1)))
            b, rest = divmod(flat_index, magnitudes.shape[1] * magnitudes.shape[2])
            t, n = divmod(rest, magnitudes.shape[2])
            value = float(self._scores[b, t, n])
            where = f"t={t}, neuron={n}" if not self._batched else f"sample={b}, t={t}, neuron={n}"
            mean = float(magnitudes[self._tested].mean())
            lines += [f"Max saliency: {value:.3f} at ({where})", f"Mean saliency: {mean:.3f}"]
        else:
            lines += ["Max saliency: n/a (no spikes)", "Mean saliency: n/a (no spikes)"]
        return "\n".join(lines)


class CausalResult:
    """What :class:`~sc_neurocore.explain.CausalImportance` returns.

    Attributes:
        layer: the silenced layer (``"input"`` for input neurons).
        metric: ``"output"`` (change of the target output) or ``"accuracy"`` (change of accuracy over
            the batch, when labels were given).
        baseline: the unsilenced target output (per sample) or accuracy.
    """

    def __init__(self, importance: Tensor, baseline: Tensor, *, layer: str, metric: str,
                 curve: Callable[[Tensor], Tensor], per_sample: bool, numpy: bool) -> None:
        self._importance = importance
        self._baseline = baseline
        self._curve = curve
        self._per_sample = per_sample
        self._numpy = numpy
        self.layer = layer
        self.metric = metric

    def _give(self, tensor: Tensor):
        return give_back(tensor if self._per_sample else tensor.unsqueeze(0), self._per_sample, self._numpy)

    def importance_map(self):
        """``importance[n]``: target output (or accuracy) without silencing minus with neuron ``n`` silenced.

        ``(n_neurons,)``; ``(B, n_neurons)`` for a batch explained without labels.
        """
        return self._give(self._importance)

    @property
    def baseline(self):
        return self._give(self._baseline) if self._per_sample else float(self._baseline)

    def robustness_curve(self):
        """Target output (or accuracy) with the ``k`` least important neurons silenced together, ``k = 0 .. n``.

        Neurons are ordered by importance, ascending, ties by index. One batched evaluation of all
        ``n + 1`` cumulative prefixes; computed on each call (the result keeps no cache).
        """
        return self._give(self._curve(self._importance))

    def robustness_count(self, threshold: float = 0.05):
        """The largest ``k`` such that silencing the ``k`` least important neurons together lowers the target
        output (or accuracy) by at most ``threshold`` times its unsilenced value.

        Returns an ``int`` (one per sample, as an array, for a batch without labels).
        """
        threshold = as_fraction(threshold, "threshold")
        curve = self._curve(self._importance)
        baseline = self._baseline.reshape(-1, 1).to(curve.dtype)
        curve = curve.reshape(baseline.shape[0], -1)
        within = (baseline - curve) <= threshold * baseline.abs()
        k = torch.arange(curve.shape[1], device=curve.device)
        counts = torch.where(within, k, torch.zeros_like(k)).amax(dim=1)
        if not self._per_sample:
            return int(counts[0])
        return self._give(counts)
