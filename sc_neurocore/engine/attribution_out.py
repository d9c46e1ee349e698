r"""Where an attribution map goes: into the caller's `out=`, into a buffer reused between calls, or kept at the
spikes only (a sparse result for dataset runs).

The linear and gated rules compute, for spikes $x$ `(B, T, N)`, time weights $w_t$ and weight paths $p$
(`(B, N)`, or `(B, T, N)` when the paths change over time),

$$A[b, t, i] = (x[b, t, i] \, w_t) \, p[b, t, i]$$

in that order of multiplication. `write_scores` writes those bits once into a given tensor (the
memory-floor kernel `sc_neurocore.engine.attribution_kernels.linear_attribution` for `(B, N)` paths);
`sparse_scores` computes them at the non-zero entries of $x$ only, in `O(spikes)` memory, block by block
of samples; `scores_at_spikes` keeps a dense map computed elsewhere at the spikes.

A sparse map is stored per sample like the rows of a CSR matrix of shape `(B, T * N)`: `offsets`
`(B + 1,)` (sample `b`'s entries are `offsets[b]:offsets[b + 1]`), `flat` (each entry's `t * N + i`, int32
when `T * N` fits, in increasing order within a sample) and `values`.

`SpareBuffer` keeps the last map an explainer returned and hands it out again only when nobody else holds
it any more (no result, view, NumPy array or other tensor on its memory): a result the user holds never
changes, and a loop that drops each result before the next call writes into pages that are already mapped,
which on Linux is several times cheaper than fresh ones.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from .attribution_kernels import linear_attribution

#: Elements of the dense map handled at once by the sparse builders (their temporaries are a few bytes
#: per element of a block, whatever the size of the batch).
SPARSE_BLOCK = 1 << 22

#: The largest map (bytes) `SpareBuffer` keeps for reuse: what an explainer holds on to between calls.
SPARE_LIMIT = 256 * 2**20


class SparseMap(NamedTuple):
    """An attribution map at the spikes only (see the module docstring).

    Attributes:
        offsets: `(B + 1,)` int64; sample `b`'s entries are `offsets[b]:offsets[b + 1]`.
        flat: `(S,)` `t * N + i` of each entry (int32 when `T * N < 2**31`, else int64).
        values: `(S,)` the scores there.
        shape: `(B, T, N)` of the dense map.
    """

    offsets: Tensor
    flat: Tensor
    values: Tensor
    shape: tuple[int, int, int]


def _memory_range(tensor: Tensor) -> tuple[int, int]:
    storage = tensor.untyped_storage()
    return storage.data_ptr(), storage.data_ptr() + storage.nbytes()


def shares_memory(first: Tensor, second: Tensor) -> bool:
    """Whether the storages under two tensors overlap (conservatively: any byte of either storage).

    Example:
        >>> import torch
        >>> x = torch.zeros(4, 3)
        >>> shares_memory(x[1:], x), shares_memory(x, torch.zeros(4, 3))
        (True, False)
    """
    if first.device != second.device or first.untyped_storage().nbytes() == 0 \
            or second.untyped_storage().nbytes() == 0:
        return False
    start, stop = _memory_range(first)
    other_start, other_stop = _memory_range(second)
    return start < other_stop and other_start < stop


def check_out(out: Any, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, *,
              avoid: dict[str, list[Tensor]], name: str = "out") -> Tensor:
    """Validate a caller's output tensor; returns it as a torch tensor (a NumPy array is wrapped, not copied).

    Args:
        out: a torch tensor, or a NumPy array (CPU).
        shape: the map's shape as its accessor gives it back (`(T, N)` or `(B, T, N)`).
        dtype: the dtype the scores are computed in.
        device: the input's device.
        avoid: tensors `out` must not share memory with, by the argument that holds them
            (writing there would change the caller's input or model).
        name: the argument's name in errors.

    Returns:
        `out` as a tensor sharing its memory.

    Example:
        >>> import torch
        >>> check_out(torch.empty(2, 3), (2, 3), torch.float32, torch.device("cpu"), avoid={}).shape
        torch.Size([2, 3])
        >>> check_out(torch.empty(2, 3), (2, 3), torch.float64, torch.device("cpu"), avoid={})
        Traceback (most recent call last):
        ...
        TypeError: out: expected dtype torch.float64 (the scores' dtype), got torch.float32
    """
    if isinstance(out, np.ndarray):
        if not out.flags.writeable:
            raise ValueError(f"{name}: expected a writeable array, got a read-only one")
        if out.dtype.kind != "f":
            raise TypeError(f"{name}: expected dtype {dtype} (the scores' dtype), got {out.dtype}")
        out = torch.from_numpy(out)
    if not isinstance(out, Tensor):
        raise TypeError(f"{name}: expected None, a torch tensor or a NumPy array, got {type(out).__name__}")
    if out.layout != torch.strided:
        raise TypeError(f"{name}: expected a dense (strided) tensor, got layout {out.layout}")
    if out.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} (the scores' dtype), got {out.dtype}")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)} (the attribution map's), got {tuple(out.shape)}")
    if out.device != device:
        raise ValueError(f"{name}: expected a tensor on {device} (the input's device), got one on {out.device}")
    if not out.is_contiguous():
        raise ValueError(f"{name}: expected a contiguous tensor (it is written in place in memory order); "
                         "pass out.contiguous() or a freshly allocated tensor")
    if out.requires_grad:
        raise ValueError(f"{name}: expected a tensor that does not require grad (it is overwritten in place)")
    for holder, tensors in avoid.items():
        if any(shares_memory(out, tensor) for tensor in tensors if isinstance(tensor, Tensor)):
            raise ValueError(f"{name}: shares memory with {holder}; writing the map there would change it. "
                             "Pass a separate tensor")
    return out


def write_scores(spikes: Tensor, time_weights: Tensor, path: Tensor, out: Tensor) -> Tensor:
    """`(spikes * time_weights[t]) * path` written into `out` `(B, T, N)`; `path` is `(B, N)` or `(B, T, N)`.

    Example:
        >>> import torch
        >>> x, out = torch.ones(1, 2, 2), torch.empty(1, 2, 2)
        >>> write_scores(x, torch.tensor([0.5, 1.0]), torch.tensor([[[1.0, 2.0], [3.0, 4.0]]]), out)[0].tolist()
        [[0.5, 1.0], [3.0, 4.0]]
    """
    path = _squeezed(path)
    if path.ndim == 2:
        # Paths often come as a transposed view (`linear_paths`); read at a stride of B, they made the in-place
        # pass several times slower than the write itself. A (B, N) copy costs nothing next to the map.
        return linear_attribution(spikes, time_weights, path.contiguous(), out=out)
    torch.mul(spikes, time_weights[None, :, None], out=out)
    return out.mul_(path)


def _squeezed(path: Tensor) -> Tensor:
    """`(B, 1, N)` paths (constant over time) as `(B, N)`."""
    return path[:, 0] if path.ndim == 3 and path.shape[1] == 1 else path


def _blocks(n_samples: int, per_sample: int):
    rows = max(1, SPARSE_BLOCK // max(1, per_sample))
    for start in range(0, n_samples, rows):
        yield start, min(n_samples, start + rows)


def _spike_entries(spikes: Tensor, start: int, stop: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Samples `start:stop` flattened, and of their non-zero entries: the index into that, the sample within
    the block and `t * N + i` (1-D `index_select` gathers are several times faster than advanced indexing)."""
    block = spikes[start:stop].reshape(-1)
    found = torch.nonzero(block).squeeze(1)
    per_sample = spikes.shape[1] * spikes.shape[2]
    rows = torch.div(found, per_sample, rounding_mode="floor")
    return block, found, rows, found - rows * per_sample


def _assemble(counts: list[Tensor], flats: list[Tensor], values: list[Tensor], shape: tuple[int, int, int],
              device: torch.device) -> SparseMap:
    offsets = torch.zeros(shape[0] + 1, dtype=torch.long, device=device)
    torch.cumsum(torch.cat(counts), dim=0, out=offsets[1:])
    index_dtype = torch.int32 if shape[1] * shape[2] < 2**31 else torch.long
    flat = torch.cat(flats).to(index_dtype)
    return SparseMap(offsets, flat, torch.cat(values), shape)


def sparse_scores(spikes: Tensor, time_weights: Tensor, path: Tensor) -> SparseMap:
    """The bits `write_scores` would write, at the non-zero entries of `spikes` only.

    Args:
        spikes: `(B, T, N)` in the compute dtype.
        time_weights: `(T,)`.
        path: `(B, N)` or `(B, T, N)`.

    Returns:
        A `SparseMap`.

    Example:
        >>> import torch
        >>> x = torch.zeros(2, 2, 3); x[0, 1, 2] = 1; x[1, 0, 0] = 1
        >>> found = sparse_scores(x, torch.tensor([0.5, 1.0]), torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
        >>> found.offsets.tolist(), found.flat.tolist(), found.values.tolist()
        ([0, 1, 2], [5, 0], [3.0, 2.0])
    """
    path = _squeezed(path)
    n_samples, n_steps, n_inputs = spikes.shape
    counts, flats, values = [], [], []
    for start, stop in _blocks(n_samples, n_steps * n_inputs):
        block, found, rows, flat = _spike_entries(spikes, start, stop)
        timestep = torch.div(flat, n_inputs, rounding_mode="floor")
        weighted = block.index_select(0, found) * time_weights.index_select(0, timestep)
        if path.ndim == 2:
            along = path[start:stop].reshape(-1).index_select(0, rows * n_inputs + flat - timestep * n_inputs)
        else:
            along = path[start:stop].reshape(-1).index_select(0, found)
        counts.append(torch.bincount(rows, minlength=stop - start))
        flats.append(flat)
        values.append(weighted * along)
    return _assemble(counts, flats, values, (n_samples, n_steps, n_inputs), spikes.device)


def scores_at_spikes(spikes: Tensor, scores: Tensor) -> SparseMap:
    """A dense map `scores` `(B, T, N)` kept at the non-zero entries of `spikes` only; a `ValueError` when it
    is not zero everywhere else (a score off the spikes, e.g. a NaN from `0 * Inf`, would be lost).

    Example:
        >>> import torch
        >>> x = torch.tensor([[[0.0, 1.0]]])
        >>> scores_at_spikes(x, torch.tensor([[[0.0, 7.0]]])).values.tolist()
        [7.0]
    """
    n_samples, n_steps, n_inputs = spikes.shape
    counts, flats, values = [], [], []
    for start, stop in _blocks(n_samples, n_steps * n_inputs):
        block, found, rows, flat = _spike_entries(spikes, start, stop)
        kept = scores[start:stop].reshape(-1)
        if bool(((block == 0) & (kept != 0)).any()):
            raise ValueError("sparse: the attribution map is not zero off the input spikes (a non-finite score?), "
                             "so keeping it at the spikes would lose entries; use sparse=False")
        counts.append(torch.bincount(rows, minlength=stop - start))
        flats.append(flat)
        values.append(kept.index_select(0, found))
    return _assemble(counts, flats, values, (n_samples, n_steps, n_inputs), spikes.device)


class SpareBuffer:
    """The last map an explainer returned, handed out again once nobody else holds its memory.

    Thread-safe; copies and pickles of its owner start empty (a buffer never travels).

    Example:
        >>> import torch
        >>> spare = SpareBuffer()
        >>> first = spare.take((2, 3), torch.float32, torch.device("cpu"))
        >>> spare.keep(first)
        >>> address = first.data_ptr(); del first  # the caller lets go of it
        >>> spare.take((2, 3), torch.float32, torch.device("cpu")).data_ptr() == address
        True
        >>> second = spare.take((2, 3), torch.float32, torch.device("cpu"))
        >>> spare.keep(second)
        >>> row = second[0]; del second  # a view still holds its memory
        >>> spare.take((2, 3), torch.float32, torch.device("cpu")).data_ptr() == row.data_ptr()
        False
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tensor: Tensor | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]

    def _free(self) -> bool:
        # No local name for the tensor here: it would be one more reference than the probe's.
        return self._tensor is not None and _FREE is not None and _references(self) == _FREE

    def take(self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
        """The kept buffer when it is free and fits exactly, else a new one (`torch.empty`)."""
        with self._lock:
            if self._free():
                tensor = self._tensor
                assert tensor is not None
                if tuple(tensor.shape) == tuple(shape) and tensor.dtype == dtype and tensor.device == device:
                    self._tensor = None
                    return tensor
            self._tensor = None
        return torch.empty(shape, dtype=dtype, device=device)

    def keep(self, tensor: Tensor) -> None:
        """Remember `tensor` (just returned to a caller) for reuse once the caller lets go of it."""
        if tensor.numel() * tensor.element_size() <= SPARE_LIMIT:
            with self._lock:
                self._tensor = tensor


def _references(spare: SpareBuffer) -> tuple[int, ...] | None:
    """What refers to the kept tensor and its memory: Python references to it, C++ handles on it, handles on
    its storage (views, detached copies and NumPy arrays each add one) and Python references to its storage
    object (one the caller keeps is the same object as here). `None` where torch lacks these counters."""
    try:
        storage = spare._tensor.untyped_storage()  # type: ignore[union-attr]
        return (sys.getrefcount(spare._tensor), spare._tensor._use_count(),  # type: ignore[union-attr]
                torch._C._storage_Use_Count(storage._cdata), sys.getrefcount(storage))
    except AttributeError:
        return None


def _counts_when_free() -> tuple[int, ...] | None:
    """`_references` of a tensor nothing but a `SpareBuffer` holds, measured (not assumed: the counts depend on
    the Python and torch versions); a buffer is reused only when its counts are exactly these."""
    probe = SpareBuffer()
    probe._tensor = torch.empty(1)
    return _references(probe)


_FREE = _counts_when_free()
