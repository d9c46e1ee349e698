"""Sparse shards: attribution and saliency maps kept at the input spikes only (``explain_dataset(sparse=True)``).

Both maps are zero wherever the input is, so a shard need only hold, for every non-zero input entry of its
samples in ``(sample, t, neuron)`` order, the score and where it is. The arrays of a sparse shard:

* ``score_values`` ``(S,)``: the scores, in the map's dtype;
* ``score_index`` ``(S,)`` int32 (int64 when ``T x N`` needs it): each score's place ``t * N + neuron``;
* ``score_counts`` ``(n,)`` int64: how many entries each sample has (the rows of a sample are contiguous);
* ``score_shape`` ``(batches, 2)`` int64: the map's ``(T, N)``, once per explained batch.

`merge_sparse` turns the merged arrays of a run back into one coalesced sparse COO tensor ``(n, T, N)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: The arrays a sparse shard holds instead of ``scores``.
SPARSE_ARRAYS = ("score_values", "score_index", "score_counts", "score_shape")


def sparse_arrays(values: Tensor, coordinates: Tensor, counts: Tensor, shape: torch.Size) -> dict[str, Tensor]:
    """The arrays of one batch's sparse scores.

    Args:
        values: ``(S,)`` the scores at the batch's non-zero input entries, in ``(sample, t, neuron)`` order.
        coordinates: ``(S, 2)`` their ``(t, neuron)``.
        counts: ``(B,)`` entries per sample.
        shape: the batch's spikes shape ``(B, T, N)``.

    Example:
        >>> import torch
        >>> arrays = sparse_arrays(torch.tensor([0.5, -1.0]), torch.tensor([[0, 2], [3, 1]]), torch.tensor([1, 1]),
        ...                        torch.Size([2, 4, 3]))
        >>> sorted(arrays), arrays["score_index"].tolist(), arrays["score_shape"].tolist()
        (['score_counts', 'score_index', 'score_shape', 'score_values'], [2, 10], [[4, 3]])
    """
    n_steps, n_inputs = shape[1], shape[2]
    index_dtype = torch.int32 if n_steps * n_inputs <= torch.iinfo(torch.int32).max else torch.int64
    flat = coordinates[:, 0].to(torch.int64) * n_inputs + coordinates[:, 1]
    return {"score_values": values, "score_index": flat.to(index_dtype),
            "score_counts": torch.as_tensor(counts, dtype=torch.int64),
            "score_shape": torch.tensor([list(shape[1:])], dtype=torch.int64)}


def merge_sparse(merged: dict[str, Tensor], where: str) -> Tensor:
    """The scores of a run's merged sparse arrays as a coalesced sparse COO tensor ``(n, T, N)``.

    Args:
        merged: the shards' arrays, concatenated in sample order.
        where: the folder, for error messages.

    Example:
        >>> import torch
        >>> arrays = sparse_arrays(torch.tensor([0.5, -1.0]), torch.tensor([[0, 2], [3, 1]]), torch.tensor([1, 1]),
        ...                        torch.Size([2, 4, 3]))
        >>> scores = merge_sparse(arrays, "out")
        >>> scores.shape, scores.to_dense()[1, 3, 1].item()
        (torch.Size([2, 4, 3]), -1.0)
    """
    missing = [name for name in SPARSE_ARRAYS if name not in merged]
    if missing:
        raise ValueError(f"out_dir: the sparse shards in {where!r} lack the arrays {missing}")
    shapes = merged["score_shape"].reshape(-1, 2).unique(dim=0)
    counts, values, flat = merged["score_counts"], merged["score_values"], merged["score_index"].long()
    if shapes.shape[0] != 1 or int(counts.sum()) != values.numel() or flat.shape != values.shape:
        raise ValueError(f"out_dir: the sparse shards in {where!r} do not fit together (map shapes "
                         f"{shapes.tolist()}, {int(counts.sum())} counted entries, {values.numel()} values)")
    n_steps, n_inputs = (int(v) for v in shapes[0])
    samples = torch.repeat_interleave(torch.arange(counts.numel()), counts)
    indices = torch.stack([samples, flat // n_inputs, flat % n_inputs])
    # Read from files: the invariants (indices inside the shape) are checked, not assumed.
    return torch.sparse_coo_tensor(indices, values, (counts.numel(), n_steps, n_inputs),
                                   check_invariants=True).coalesce()
