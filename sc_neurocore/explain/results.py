"""Result types of the explainers.

Scores are stored batch-first as tensors on the input's device; accessors give them back the way the
input came in: a `(T, N)` input gets `(T, N)` maps and a `(B, T, N)` input `(B, T, N)` maps;
NumPy in gives NumPy out, torch in gives torch out on the input's device.

Every result shares one vocabulary: `top_k`, `spatial_importance`, `temporal_profile` (where there is a
time axis), `to_numpy` and `as_dict`; every result pickles (a dataset run on many processes sends them
between processes); and each says how it was computed: `method` (the explainer's class), `options` (its
settings) and `engine` (which executor ran it: `"generic"` unless the explainer says otherwise).
"""

from __future__ import annotations

import numbers

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..inputs import as_fraction, as_positive_int, give_back

TopK = list[tuple[int, int, float]]
NeuronTopK = list[tuple[int, float]]

#: Option values a result records (an explainer's model or callable is not an option).
_OPTION_TYPES = (bool, int, float, str, type(None))


def explainer_options(explainer: Any) -> dict[str, Any]:
    """The public settings of an explainer that are plain values (its model and callables left out).

    Example:
        >>> class Explainer:
        ...     def __init__(self):
        ...         self.decay, self.mode, self.run_fn, self._cache = 0.9, "gated", print, {}
        >>> explainer_options(Explainer())
        {'decay': 0.9, 'mode': 'gated'}
    """
    return {
        name: value
        for name, value in vars(explainer).items()
        if not name.startswith("_") and isinstance(value, _OPTION_TYPES)
    }


def _as_numpy(value: Any) -> Any:
    return value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)


class Explanation:
    """What every result carries: how it was computed, and the accessors that turn it into plain data."""

    #: Set by `_describe`; class-level defaults keep results built without it valid.
    method: str = ""
    engine: str = "generic"
    options: dict[str, Any] = {}

    def _describe(self, explainer: Any, engine: str) -> None:
        if not isinstance(engine, str) or not engine:
            raise TypeError(f"engine: expected the executor's name as a non-empty str, got {engine!r}")
        self.method = type(explainer).__name__ if explainer is not None else type(self).__name__
        self.options = explainer_options(explainer) if explainer is not None else {}
        self.engine = engine

    def to_numpy(self) -> np.ndarray:
        """The result's main scores as a NumPy array, shaped as its main accessor returns them."""
        return _as_numpy(self._main())

    def _main(self) -> Any:
        raise NotImplementedError

    def _fields(self) -> dict[str, Any]:
        raise NotImplementedError

    def as_dict(self) -> dict[str, Any]:
        """Plain data: `method`, `engine`, `options`, then every score and summary as NumPy arrays or numbers."""
        fields = {
            name: value if isinstance(value, (int, float, str)) else _as_numpy(value)
            for name, value in self._fields().items()
        }
        return {"method": self.method, "engine": self.engine, "options": dict(self.options), **fields}


def rank_by_magnitude(scores: Tensor, k: int) -> TopK:
    """The ``k`` entries of a ``(T, N)`` map with the largest ``|score|``, ties broken by ``(t, neuron)``."""
    flat = scores.reshape(-1)
    # A stable sort on the flat index keeps equal magnitudes in (t, neuron) order.
    order = torch.sort(flat.abs(), descending=True, stable=True).indices[:k]
    n_neurons = scores.shape[1]
    return [
        (t, n, s)
        for t, n, s in zip(
            (order // n_neurons).tolist(), (order % n_neurons).tolist(), flat[order].tolist(), strict=True
        )
    ]


class SpikeMap(Explanation):
    """Per-spike, per-timestep scores `(B, T, N)` and the accessors shared by attribution and saliency."""

    def __init__(
        self, scores: Tensor, *, batched: bool, numpy: bool, explainer: Any = None, engine: str = "generic"
    ) -> None:
        self._scores = scores
        self._batched = batched
        self._numpy = numpy
        self._describe(explainer, engine)

    def _main(self) -> Any:
        return self._give(self._scores)

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
        if not isinstance(sample, numbers.Integral) or isinstance(sample, bool) or not 0 <= sample < self.batch_size:
            raise ValueError(f"sample: expected an int in [0, {self.batch_size}), got {sample!r}")
        return rank_by_magnitude(self._scores[int(sample)], k)

    def temporal_profile(self, absolute: bool = False):
        """Score summed over neurons, per timestep: ``(T,)`` (``(B, T)`` for a batch).

        Signed by default, so that it sums to the same total as the map; ``absolute=True`` sums ``|score|``.
        """
        return self._give(self._map(absolute).sum(dim=2))

    def spatial_importance(self, absolute: bool = False):
        """Score summed over time, per input neuron: ``(N,)`` (``(B, N)`` for a batch)."""
        return self._give(self._map(absolute).sum(dim=1))


class AttributionResult(SpikeMap):
    """What `SpikeAttributor` returns.

    Attributes:
        total: the sum of all scores (per sample for a batch): the linear leaky readout for
            ``mode="linear"`` (completeness), the gated readout for ``mode="gated"``.
        output_neuron: the explained output neuron(s).
    """

    def __init__(
        self,
        scores: Tensor,
        output_neuron: Tensor,
        *,
        batched: bool,
        numpy: bool,
        explainer: Any = None,
        engine: str = "generic",
    ) -> None:
        super().__init__(scores, batched=batched, numpy=numpy, explainer=explainer, engine=engine)
        self._output_neuron = output_neuron

    def _fields(self) -> dict[str, Any]:
        return {"attribution_map": self.attribution_map(), "total": self.total, "output_neuron": self.output_neuron}

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
    """What `TemporalSaliency` returns.

    ``saliency[t, i] = f_k(x) - f_k(x with spike (t, i) removed)`` for every spike of the input and 0 where
    there is no spike: positive means the spike supported output ``k``. In the model's output units.

    Attributes:
        baseline: the unperturbed target output ``f_k(x)`` (per sample for a batch).
        significance: the ``|saliency|`` from which a spike counts as significant in `summary`.
    """

    def __init__(
        self,
        scores: Tensor,
        tested: Tensor,
        baseline: Tensor,
        significance: float,
        *,
        batched: bool,
        numpy: bool,
        explainer: Any = None,
        engine: str = "generic",
    ) -> None:
        super().__init__(scores, batched=batched, numpy=numpy, explainer=explainer, engine=engine)
        self._tested = tested
        self._baseline = baseline
        self.significance = significance

    def _fields(self) -> dict[str, Any]:
        return {
            "saliency_map": self.saliency_map(),
            "tested_mask": self.tested_mask(),
            "baseline": self.baseline,
            "significance": self.significance,
        }

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


class CausalResult(Explanation):
    """What `CausalImportance` returns.

    Attributes:
        layer: the silenced layer (``"input"`` for input neurons).
        metric: ``"output"`` (change of the target output) or ``"accuracy"`` (change of accuracy over
            the batch, when labels were given).
        baseline: the unsilenced target output (per sample) or accuracy.
    """

    def __init__(
        self,
        importance: Tensor,
        baseline: Tensor,
        *,
        layer: str,
        metric: str,
        curve: Callable[[Tensor], Tensor],
        per_sample: bool,
        numpy: bool,
        explainer: Any = None,
        engine: str = "generic",
    ) -> None:
        self._importance = importance
        self._baseline = baseline
        self._curve = curve
        self._per_sample = per_sample
        self._numpy = numpy
        self.layer = layer
        self.metric = metric
        self._describe(explainer, engine)

    def __getstate__(self) -> dict[str, Any]:
        # The curve reruns the network, which does not travel; the importance never changes, so its curve is
        # evaluated once here and the unpickled result answers from that tensor.
        state = dict(self.__dict__)
        state["_curve"] = _StoredCurve(self._importance, self._curve(self._importance))
        return state

    def _main(self) -> Any:
        return self.importance_map()

    def _fields(self) -> dict[str, Any]:
        return {
            "importance_map": self.importance_map(),
            "baseline": self.baseline,
            "robustness_curve": self.robustness_curve(),
            "layer": self.layer,
            "metric": self.metric,
        }

    def spatial_importance(self):
        """Importance per neuron of the silenced layer (the same as `importance_map`; there is no time axis:
        a neuron is silenced at every timestep)."""
        return self.importance_map()

    def top_k(self, k: int, sample: int | None = None) -> NeuronTopK | list[NeuronTopK]:
        """The `k` neurons of largest `|importance|` as `(neuron, importance)`, ties by neuron index.

        Args:
            k: how many (fewer if the layer has fewer neurons).
            sample: for a batch explained without labels, which sample; `None` gives one list per sample.

        Returns:
            A list of `(neuron, importance)` with Python `int, float` (a list of such lists for a batch
            and `sample=None`).
        """
        k = as_positive_int(k, "k")
        rows = self._importance.reshape(-1, self._importance.shape[-1])
        if sample is not None:
            if not self._per_sample:
                raise ValueError(
                    "sample: this result has one importance per neuron (labels were given or one "
                    "sample was explained); pass sample=None"
                )
            if not isinstance(sample, numbers.Integral) or isinstance(sample, bool) or not 0 <= sample < rows.shape[0]:
                raise ValueError(f"sample: expected an int in [0, {rows.shape[0]}), got {sample!r}")
            rows = rows[int(sample) : int(sample) + 1]
        ranked = []
        for row in rows:
            order = torch.sort(row.abs(), descending=True, stable=True).indices[:k]
            ranked.append([(n, v) for n, v in zip(order.tolist(), row[order].tolist(), strict=True)])
        return ranked if self._per_sample and sample is None else ranked[0]

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


class _StoredCurve:
    """The robustness curve of an unpickled `CausalResult`: the values evaluated before pickling."""

    def __init__(self, importance: Tensor, curve: Tensor) -> None:
        self._importance = importance
        self._values = curve

    def __call__(self, importance: Tensor) -> Tensor:
        if not torch.equal(importance, self._importance):
            raise RuntimeError("an unpickled CausalResult can give the robustness curve of its own importance only")
        return self._values.clone()
