r"""The linear attribution map at the memory floor: written once, into a buffer the caller may reuse, or kept
sparse (only the spikes) for dataset runs.

`SpikeAttributor` in linear mode computes, for spikes $x$ `(B, T, N)`, time weights $w_t = d^{T-t}$ and each
sample's effective weight path $p_b$ `(B, N)`,

$$ A[b, t, i] = (x[b, t, i] \, w_t) \, p_b[i] $$

in that order of multiplication. The naive expression `x * w[None, :, None] * p[:, None, :]` allocates a
temporary of the map's size for `x * w`, then the result, then the caller clones it: three fresh writes of
`B x T x N` values where one suffices. These kernels write the same bits once:

- `linear_attribution(x, w, p, out=)`: one multiplication into `out` (allocated if `None`, else reused:
  its pages are already mapped, which on Linux makes the write several times cheaper than into fresh pages),
  the second in place;
- `sparse_linear_attribution(x, w, p)`: the values at the spikes only, `O(spikes)` memory, as a
  `SparseAttribution` that densifies on request.

How `SpikeAttributor` uses them (attribution.py): `scores = linear_attribution(x, time_weights, path, out=out)`
in `_scores`, with `out` from an `out=` argument of `attribute` (or a buffer kept between chunks of a dataset
run), and no clone when `out` is given; and `sparse=True` returning `sparse_linear_attribution(...)`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


def linear_attribution(spikes: Tensor, time_weights: Tensor, path: Tensor, *, out: Tensor | None = None) -> Tensor:
    """``(spikes * time_weights[None, :, None]) * path[:, None, :]``, written once into ``out``.

    Args:
        spikes: ``(B, T, N)`` in the compute dtype.
        time_weights: ``(T,)``.
        path: ``(B, N)``.
        out: a ``(B, T, N)`` tensor of the same dtype and device to write into (reused), or ``None``.

    Returns:
        ``out`` (or a new tensor): bit for bit the naive expression.

    Example:
        >>> import torch
        >>> x = torch.ones(1, 2, 3)
        >>> linear_attribution(x, torch.tensor([0.5, 1.0]), torch.tensor([[1.0, 2.0, 3.0]]))[0, 0].tolist()
        [0.5, 1.0, 1.5]
    """
    if spikes.ndim != 3 or time_weights.shape != (spikes.shape[1],) or path.shape != (spikes.shape[0], spikes.shape[2]):
        raise ValueError(f"spikes, time_weights, path: expected (B, T, N), (T,), (B, N), got {tuple(spikes.shape)}, "
                         f"{tuple(time_weights.shape)}, {tuple(path.shape)}")
    if out is not None and (out.shape != spikes.shape or out.dtype != spikes.dtype or out.device != spikes.device):
        raise ValueError(f"out: expected a {spikes.dtype} tensor of shape {tuple(spikes.shape)} on {spikes.device}, "
                         f"got {out.dtype} {tuple(out.shape)} on {out.device}")
    if out is None:
        out = torch.empty_like(spikes)
    torch.mul(spikes, time_weights[None, :, None], out=out)
    return out.mul_(path[:, None, :])


class SparseAttribution(NamedTuple):
    """An attribution map kept at the spikes only.

    Attributes:
        sample, timestep, neuron: ``(S,)`` int64 coordinates of the spikes.
        value: ``(S,)`` the attribution there.
        shape: ``(B, T, N)`` of the dense map.
    """

    sample: Tensor
    timestep: Tensor
    neuron: Tensor
    value: Tensor
    shape: tuple[int, int, int]

    def to_dense(self, out: Tensor | None = None) -> Tensor:
        """The dense ``(B, T, N)`` map (zeros off the spikes), written into ``out`` if given."""
        dense = torch.zeros(self.shape, dtype=self.value.dtype, device=self.value.device) if out is None \
            else out.zero_()
        dense[self.sample, self.timestep, self.neuron] = self.value
        return dense


def sparse_linear_attribution(spikes: Tensor, time_weights: Tensor, path: Tensor) -> SparseAttribution:
    """The linear attribution at the non-zero entries of ``spikes`` only (the map is 0 elsewhere).

    Example:
        >>> import torch
        >>> x = torch.zeros(1, 2, 3); x[0, 1, 2] = 1
        >>> sparse = sparse_linear_attribution(x, torch.tensor([0.5, 1.0]), torch.tensor([[1.0, 2.0, 3.0]]))
        >>> sparse.value.tolist(), torch.equal(sparse.to_dense(), linear_attribution(x, torch.tensor([0.5, 1.0]),
        ...                                                                          torch.tensor([[1.0, 2.0, 3.0]])))
        ([3.0], True)
    """
    sample, timestep, neuron = torch.nonzero(spikes, as_tuple=True)
    value = (spikes[sample, timestep, neuron] * time_weights[timestep]) * path[sample, neuron]
    return SparseAttribution(sample, timestep, neuron, value, tuple(spikes.shape))  # type: ignore[arg-type]


def write_floor_seconds(shape: tuple[int, ...], dtype: torch.dtype = torch.float32, chunks: int = 1) -> float:
    """Seconds to write a map of ``shape`` once into fresh memory, ``chunks`` pieces (the memory-write floor
    an attribution of that size cannot beat; measured, not modelled).

    Example:
        >>> write_floor_seconds((4, 5, 6)) >= 0
        True
    """
    import time

    rows = max(1, shape[0] // chunks)
    start = time.perf_counter()
    kept = []
    for first in range(0, shape[0], rows):
        kept.append(torch.empty((min(rows, shape[0] - first), *shape[1:]), dtype=dtype).fill_(1.0))
    return time.perf_counter() - start
