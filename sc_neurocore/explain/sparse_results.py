"""The sparse attribution result: `SpikeAttributor.attribute(..., sparse=True)` for dataset runs.

An attribution map is zero wherever the input has no spike, so a run over many samples need keep only the
scores at the spikes: `O(spikes)` memory instead of `O(B T N)` (at a 5% input rate, a tenth of the dense
map). `SparseAttributionResult` holds them per sample (see `sc_neurocore.engine.attribution_out.SparseMap`)
and answers with the dense result's vocabulary and values: `top_k`, `spatial_importance`,
`temporal_profile`, `total` and `output_neuron` give what the dense `AttributionResult` gives, to the
bit; `to_dense` is that result; `values` and `coordinates` give the spikes' scores and where they are,
for the whole batch or `sample=` one sample; `to_numpy` and `as_dict` give the values at the spikes (with
their coordinates), not the dense map; the result pickles. Sums are computed on dense blocks of at
least two samples with the same torch reductions as the dense result, so they round the same way.
"""

from __future__ import annotations

import numbers
from typing import Any

import torch
from torch import Tensor

from ..engine.attribution_out import SPARSE_BLOCK, SparseMap
from ..inputs import as_positive_int, give_back
from .results import AttributionResult, Explanation, TopK, rank_by_magnitude


class SparseAttributionResult(Explanation):
    """What `SpikeAttributor.attribute(..., sparse=True)` returns: the attribution at the input spikes only.

    Attributes:
        shape: the dense map's shape as `attribution_map` gives it (`(T, N)` or `(B, T, N)`).
        n_spikes: how many entries are kept (the non-zero entries of the input).
        total: the sum of all scores (per sample for a batch), as the dense result's `total`.
        output_neuron: the explained output neuron(s).

    Example:
        >>> import torch
        >>> from sc_neurocore.explain import SpikeAttributor
        >>> spikes = torch.zeros(20, 16); spikes[3, 5] = spikes[7, 1] = 1
        >>> result = SpikeAttributor(decay=0.9).attribute(spikes, [torch.ones(16, 4)], 0, sparse=True)
        >>> result.n_spikes, result.spike_counts(), result.coordinates().tolist()
        (2, 2, [[3, 5], [7, 1]])
        >>> [round(v, 4) for v in result.values().tolist()], result.top_k(1)
        ([0.1668, 0.2542], [(7, 1, 0.25418657064437866)])
        >>> result.to_sparse_coo().shape, result.spatial_importance().shape
        (torch.Size([20, 16]), torch.Size([16]))
        >>> torch.equal(result.to_dense().attribution_map(),
        ...             SpikeAttributor(decay=0.9).attribute(spikes, [torch.ones(16, 4)], 0).attribution_map())
        True
    """

    def __init__(self, sparse: SparseMap, output_neuron: Tensor, *, batched: bool, numpy: bool,
                 explainer: Any = None, engine: str = "generic") -> None:
        self._sparse = sparse
        self._output_neuron = output_neuron
        self._batched = batched
        self._numpy = numpy
        self._describe(explainer, engine)

    # -- what is stored ------------------------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return self._sparse.shape[0]

    @property
    def shape(self) -> tuple[int, ...]:
        return self._sparse.shape if self._batched else self._sparse.shape[1:]

    @property
    def n_spikes(self) -> int:
        return int(self._sparse.values.numel())

    def _sample(self, sample: Any) -> int:
        if not isinstance(sample, numbers.Integral) or isinstance(sample, bool) or not 0 <= int(sample) < self.batch_size:
            raise ValueError(f"sample: expected an int in [0, {self.batch_size}), got {sample!r}")
        return int(sample)

    def _range(self, sample: int) -> slice:
        offsets = self._sparse.offsets
        return slice(int(offsets[sample]), int(offsets[sample + 1]))

    def _out(self, tensor: Tensor):
        return tensor.detach().cpu().numpy() if self._numpy else tensor

    def spike_counts(self):
        """How many entries each sample has, `(B,)` int64 (an int for a `(T, N)` input): with `values` and the
        `(t, neuron)` columns of `coordinates`, what a dataset shard needs to store the map."""
        counts = self._sparse.offsets.diff()
        return int(counts[0]) if not self._batched else self._out(counts)

    def values(self, sample: int | None = None):
        """The scores at the spikes, `(S,)`, in the order of `coordinates` (`sample=`: one sample's)."""
        values = self._sparse.values
        return self._out(values if sample is None else values[self._range(self._sample(sample))])

    def coordinates(self, sample: int | None = None):
        """Where each score of `values` is: `(S, 3)` int64 `(sample, t, neuron)` rows for a batch, `(S, 2)`
        `(t, neuron)` rows for one sample (`sample=`, or a `(T, N)` input); in increasing order."""
        return self._out(self._coordinates(sample))

    def _coordinates(self, sample: int | None) -> Tensor:
        n_inputs = self._sparse.shape[2]
        if sample is not None or not self._batched:
            flat = self._sparse.flat[self._range(0 if sample is None else self._sample(sample))].long()
            return torch.stack([flat // n_inputs, flat % n_inputs], dim=1)
        flat = self._sparse.flat.long()
        samples = torch.repeat_interleave(torch.arange(self.batch_size, device=flat.device),
                                          self._sparse.offsets.diff())
        return torch.stack([samples, flat // n_inputs, flat % n_inputs], dim=1)

    # -- dense views ---------------------------------------------------------------------------------------------
    def _dense(self, start: int, stop: int) -> Tensor:
        """Samples `start:stop` as a dense `(stop - start, T, N)` map (zeros off the spikes)."""
        _, n_steps, n_inputs = self._sparse.shape
        values = self._sparse.values
        dense = torch.zeros((stop - start, n_steps * n_inputs), dtype=values.dtype, device=values.device)
        first, last = int(self._sparse.offsets[start]), int(self._sparse.offsets[stop])
        counts = self._sparse.offsets[start:stop + 1].diff()
        rows = torch.repeat_interleave(torch.arange(stop - start, device=values.device), counts)
        dense[rows, self._sparse.flat[first:last].long()] = values[first:last]
        return dense.reshape(stop - start, n_steps, n_inputs)

    def _blocks(self):
        """Sample ranges of bounded size, each of at least two samples (or the whole batch): torch reduces a
        block with one output differently from a block with several, so this keeps sums equal to the dense
        result's."""
        n_samples, n_steps, n_inputs = self._sparse.shape
        rows = max(2, SPARSE_BLOCK // (n_steps * n_inputs))
        starts = list(range(0, n_samples, rows))
        if len(starts) > 1 and n_samples - starts[-1] < 2:
            starts.pop()
        return zip(starts, [*starts[1:], n_samples], strict=True)

    def _reduced(self, reduce) -> Tensor:
        return torch.cat([reduce(self._dense(start, stop)) for start, stop in self._blocks()])

    def to_dense(self) -> AttributionResult:
        """The dense `AttributionResult` (allocates the whole `(B, T, N)` map)."""
        result = AttributionResult(self._dense(0, self.batch_size), self._output_neuron, batched=self._batched,
                                   numpy=self._numpy)
        result.method, result.options, result.engine = self.method, dict(self.options), self.engine
        return result

    def attribution_map(self):
        """The dense signed map `(T, N)` (`(B, T, N)` for a batch): allocates it; see `values` for the spikes."""
        return give_back(self._dense(0, self.batch_size), self._batched, self._numpy)

    def to_sparse_coo(self) -> Tensor:
        """The map as a coalesced torch sparse COO tensor of `shape` (a torch tensor, whatever the input)."""
        return torch.sparse_coo_tensor(self._coordinates(None).T, self._sparse.values, self.shape, is_coalesced=True,
                                       check_invariants=False)  # valid by construction

    # -- the shared vocabulary -----------------------------------------------------------------------------------
    def top_k(self, k: int, sample: int | None = None) -> TopK | list[TopK]:
        """As `AttributionResult.top_k`: the `k` highest-`|score|` entries as `(t, neuron, score)`, ties by
        `(t, neuron)`; for a batch and `sample=None`, one list per sample."""
        k = as_positive_int(k, "k")
        if sample is None:
            ranked = [self._top_k(b, k) for b in range(self.batch_size)]
            return ranked if self._batched else ranked[0]
        return self._top_k(self._sample(sample), k)

    def _top_k(self, sample: int, k: int) -> TopK:
        part = self._range(sample)
        values = self._sparse.values[part]
        if k > int((values != 0).sum()):  # zeros off the spikes rank too: rank the densified sample
            return rank_by_magnitude(self._dense(sample, sample + 1)[0], k)
        # The entries are in (t, neuron) order, so a stable sort breaks ties as the dense ranking does.
        order = torch.sort(values.abs(), descending=True, stable=True).indices[:k]
        flat = self._sparse.flat[part][order].long()
        n_inputs = self._sparse.shape[2]
        return [(t, n, s) for t, n, s in zip((flat // n_inputs).tolist(), (flat % n_inputs).tolist(),
                                              values[order].tolist(), strict=True)]

    def temporal_profile(self, absolute: bool = False):
        """Score summed over neurons, per timestep: `(T,)` (`(B, T)` for a batch), as the dense result's."""
        return give_back(self._reduced(lambda block: (block.abs() if absolute else block).sum(dim=2)),
                         self._batched, self._numpy)

    def spatial_importance(self, absolute: bool = False):
        """Score summed over time, per input neuron: `(N,)` (`(B, N)` for a batch), as the dense result's."""
        return give_back(self._reduced(lambda block: (block.abs() if absolute else block).sum(dim=1)),
                         self._batched, self._numpy)

    @property
    def total(self):
        totals = self._reduced(lambda block: block.sum(dim=(1, 2)))
        return float(totals[0]) if not self._batched else give_back(totals, True, self._numpy)

    @property
    def output_neuron(self):
        return int(self._output_neuron[0]) if not self._batched else give_back(self._output_neuron, True,
                                                                                 self._numpy)

    def _main(self) -> Any:
        return self.values()

    def _fields(self) -> dict[str, Any]:
        return {"values": self.values(), "coordinates": self.coordinates(), "shape": torch.tensor(self.shape),
                "total": self.total, "output_neuron": self.output_neuron}
