"""What a dataset run reads: spike files, map-style datasets and their batches, and a digest of their content.

`SpikeFileDataset` reads spikes from a ``.safetensors`` file (memory-mapped, one sample at a time) or an
``.npz`` file (into memory, with the decompressed size capped so that a small file cannot expand into
gigabytes). `content_digest` hashes the input samples of a shard as they are batched, so that a rerun
notices a dataset whose samples changed.
"""

from __future__ import annotations

import functools
import hashlib
import math
import numbers
import os
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset, default_collate

from ..extras import missing_extra

#: The most bytes an ``.npz`` spike file may decompress to by default (its compressed members' declared
#: sizes; stored members are bounded by the file itself).
MAX_NPZ_BYTES = 1 << 30


class SpikeFileDataset(Dataset):
    """Spikes ``(n_samples, T, N)`` and optional ``labels`` ``(n_samples,)`` from a ``.safetensors`` or ``.npz`` file.

    Both formats load without executing anything from the file. A ``.safetensors`` file, and the
    uncompressed ``spikes`` of an ``.npz`` (``numpy.savez``), are memory-mapped and read one sample at a
    time; a compressed ``.npz`` (``numpy.savez_compressed``) is read into memory once, after checking that
    its compressed members do not expand past ``max_bytes`` (a decompression bomb is refused before
    anything is decompressed).

    Args:
        path: the file, holding an array ``spikes`` and optionally an integer array ``labels``.
        max_bytes: the most bytes the compressed members of an ``.npz`` may expand to (default 1 GiB);
            for bigger data, store it uncompressed (``numpy.savez``) or as ``.safetensors``.

    Example:
        >>> import torch, safetensors.torch, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "spikes.safetensors")
        >>> safetensors.torch.save_file({"spikes": torch.zeros(4, 10, 3)}, path)
        >>> dataset = SpikeFileDataset(path)
        >>> len(dataset), dataset[0].shape
        (4, torch.Size([10, 3]))
    """

    def __init__(self, path: str | os.PathLike, max_bytes: int = MAX_NPZ_BYTES) -> None:
        from ..inputs import as_positive_int

        self.path = Path(path)
        max_bytes = as_positive_int(max_bytes, "max_bytes")
        if not self.path.is_file():
            raise FileNotFoundError(f"dataset: no such file {str(self.path)!r}")
        if self.path.suffix == ".safetensors":
            try:
                from safetensors import safe_open
            except ImportError as error:
                raise missing_extra("dataset: reading .safetensors needs safetensors", "data") from error
            try:
                with safe_open(str(self.path), framework="pt") as handle:
                    names = set(handle.keys())
                    shapes = {name: tuple(handle.get_slice(name).get_shape()) for name in names}
                    labels = handle.get_tensor("labels") if "labels" in names else None
            except Exception as error:  # safetensors raises its own SafetensorError on a damaged file
                raise ValueError(f"dataset: {str(self.path)!r} is not a readable .safetensors file "
                                 f"({error.__class__.__name__}: {error})") from error
            self._spikes = None  # opened on first access, in the process that reads
            self._mapped = None
        elif self.path.suffix == ".npz":
            arrays, names, self._mapped = _read_npz(self.path, max_bytes)
            shapes = {name: array.shape for name, array in arrays.items()}
            if self._mapped is not None:
                shapes["spikes"] = self._mapped[2]
            labels = torch.from_numpy(arrays["labels"]) if "labels" in arrays else None
            self._spikes = torch.from_numpy(arrays["spikes"]) if "spikes" in arrays else None
        else:
            raise ValueError(f"dataset: expected a .safetensors or .npz file, got {str(self.path)!r}")
        if "spikes" not in names:
            raise ValueError(f"dataset: {str(self.path)!r} has no array named 'spikes' (it has {sorted(names)})")
        if len(shapes["spikes"]) != 3:
            raise ValueError(f"dataset: expected 'spikes' of shape (n_samples, T, N), got {shapes['spikes']}")
        self._length = shapes["spikes"][0]
        if labels is not None:
            if labels.ndim != 1 or labels.shape[0] != self._length:
                raise ValueError(f"dataset: expected 'labels' of shape ({self._length},), got {tuple(labels.shape)}")
            if labels.dtype.is_floating_point or labels.dtype == torch.bool:
                raise TypeError(f"dataset: expected integer 'labels', got dtype {labels.dtype}")
        self.labels = labels

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int):
        if isinstance(index, Tensor) and index.ndim == 0 and not index.dtype.is_floating_point:
            index = int(index)
        if not isinstance(index, numbers.Integral) or isinstance(index, bool):
            raise TypeError(f"index: expected an int sample index, got {type(index).__name__}")
        index = int(index)
        if not 0 <= index < self._length:
            raise IndexError(f"index {index} out of range for {self._length} samples")
        if self._spikes is None:
            if self._mapped is not None:
                offset, dtype, shape, fortran = self._mapped
                self._spikes = np.memmap(self.path, dtype=np.dtype(dtype), mode="r", offset=offset, shape=shape,
                                         order="F" if fortran else "C")
            else:
                from safetensors import safe_open

                self._spikes = safe_open(str(self.path), framework="pt").get_slice("spikes")
        spikes = self._spikes[index]
        if isinstance(spikes, np.ndarray):  # one sample of the memory map, copied out of it
            spikes = torch.from_numpy(np.array(spikes))
        return spikes if self.labels is None else (spikes, self.labels[index])

    def __getstate__(self) -> dict:
        # A memory map does not cross into DataLoader worker processes: each worker reopens the file.
        state = dict(self.__dict__)
        if self.path.suffix == ".safetensors" or self._mapped is not None:
            state["_spikes"] = None
        return state


def _read_npz(path: Path, max_bytes: int) -> tuple[dict[str, np.ndarray], set[str], tuple | None]:
    """The ``spikes`` and ``labels`` arrays of an ``.npz``, the names it holds, and where uncompressed spikes
    lie in the file (``(offset, dtype, shape, fortran_order)``, then not read here); every failure a named
    ``ValueError``: a damaged zip, a member that is not ``.npy``, pickled objects, too big when inflated."""
    where = f"dataset: {str(path)!r}"
    try:
        with zipfile.ZipFile(path, "r") as archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ValueError(f"{where} is not a readable .npz file ({error.__class__.__name__}: {error}); "
                         "write it with numpy.savez") from error
    wanted = {name: info for name, info in members.items() if name in ("spikes", "labels")}
    for info in wanted.values():
        if not info.filename.endswith(".npy"):
            raise ValueError(f"{where}: the member {info.filename!r} is not a .npy array; write the file with "
                             "numpy.savez")
    inflated = sum(info.file_size for info in wanted.values() if info.compress_type != zipfile.ZIP_STORED)
    if inflated > max_bytes:
        raise ValueError(f"{where} decompresses to {inflated} bytes, more than max_bytes={max_bytes}; store it "
                         "uncompressed (numpy.savez) or as .safetensors (read lazily), or raise max_bytes")
    mapped = _stored_array(path, wanted["spikes"]) if "spikes" in wanted else None
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in wanted if not (name == "spikes" and mapped is not None)}
    except ValueError as error:  # NumPy refuses pickled (object) arrays without running them
        text = str(error)
        if "pickle" in text:
            raise ValueError(f"{where} holds pickled objects, which are never loaded (only plain numeric "
                             f"arrays 'spikes' and 'labels' are; allow_pickle=False): {text}") from error
        raise ValueError(f"{where} holds a damaged .npy member: {text}") from error
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ValueError(f"{where} is not a readable .npz file ({error.__class__.__name__}: {error})") from error
    for name, array in arrays.items():
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
            raise ValueError(f"{where}: expected a numeric array {name!r}, got "
                             f"{getattr(array, 'dtype', type(array).__name__)}")
    return arrays, set(members), mapped


def _stored_array(path: Path, info: zipfile.ZipInfo) -> tuple | None:
    """``(offset, dtype, shape, fortran_order)`` of an uncompressed ``.npy`` member, to memory-map it; ``None``
    when it is compressed or has a header this does not parse (version 3), which then is read normally."""
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        local = handle.read(30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            return None
        name_length, extra_length = struct.unpack("<HH", local[26:30])
        start = info.header_offset + 30 + name_length + extra_length
        handle.seek(start)
        try:
            version = np.lib.format.read_magic(handle)
            reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in reader:
                return None
            shape, fortran, dtype = reader[version](handle)
        except ValueError:
            return None  # np.load reports it, by name
        offset = handle.tell()
    if dtype.hasobject or dtype.kind not in "biuf" or offset + dtype.itemsize * math.prod(shape) > start + info.file_size:
        return None  # pickled objects or a size that does not fit: np.load refuses it, by name
    return offset, dtype.str, tuple(shape), bool(fortran)


def as_dataset(dataset: Any) -> tuple[Dataset, dict]:
    """The map-style dataset and the loading settings to reuse (from a ``DataLoader``)."""
    settings: dict = {}
    if isinstance(dataset, DataLoader):
        settings = {"batch_size": dataset.batch_size, "num_workers": dataset.num_workers,
                    "collate_fn": dataset.collate_fn, "pin_memory": dataset.pin_memory,
                    "worker_init_fn": dataset.worker_init_fn}
        dataset = dataset.dataset
    if isinstance(dataset, IterableDataset):
        raise TypeError("dataset: expected a map-style Dataset (with __len__ and __getitem__), got an "
                        "IterableDataset, which cannot be split into resumable shards by index")
    if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
        raise TypeError(f"dataset: expected a map-style Dataset or a DataLoader over one, got {type(dataset).__name__}")
    if len(dataset) == 0:
        raise ValueError("dataset: expected at least one sample, got an empty dataset")
    return dataset, settings


def checked_collate(collate, items: list) -> Any:
    """``collate(items)``; items that cannot be batched (spikes of different ``T``) give a ``ValueError``
    naming the dataset instead of torch's ``stack expects each tensor to be equal size``."""
    try:
        return collate(items)
    except RuntimeError as error:
        shapes = sorted({tuple(getattr(split_item(item), "shape", ())) for item in items})
        raise ValueError(f"dataset: items of one batch cannot be collated ({error}); every item's spikes must "
                         f"have the same shape (T, N), got {shapes}") from error


def collate_for(loader_settings: dict):
    """The collate function of a run: the ``DataLoader``'s or torch's default, with named errors."""
    return functools.partial(checked_collate, loader_settings.get("collate_fn") or default_collate)


def split_item(item: Any) -> Any:
    """The spikes of one dataset item (for error messages)."""
    if isinstance(item, Mapping):
        return item.get("spikes")
    if isinstance(item, (list, tuple)) and item:
        return item[0]
    return item


def check_first_sample(dataset: Dataset, collate, targets: Any, model: Any) -> int:
    """Validate the shape of sample 0 (on every rank, so all ranks agree) and return ``N``."""
    spikes, labels = split_batch(collate([dataset[0]]))
    n_inputs = spikes.shape[2]
    expected = getattr(model, "n_inputs", None)
    if isinstance(expected, int) and expected != n_inputs:
        raise ValueError(f"dataset: samples have {n_inputs} input neurons but the model takes {expected}")
    if targets == "labels" and labels is None:
        raise ValueError("targets: 'labels' needs a dataset whose items are (spikes, label) or carry 'labels'")
    return n_inputs


def split_batch(batch: Any) -> tuple[Tensor, Tensor | None]:
    """A collated batch -> ``(spikes (B, T, N), labels (B,) or None)``."""
    labels = None
    if isinstance(batch, Mapping):
        if "spikes" not in batch:
            raise ValueError(f"dataset: items that are mappings need a 'spikes' entry, got keys {sorted(batch)}")
        spikes, labels = batch["spikes"], batch.get("labels", batch.get("label"))
    elif isinstance(batch, (list, tuple)):
        if not 1 <= len(batch) <= 2:
            raise ValueError(f"dataset: expected items spikes or (spikes, label), got tuples of {len(batch)}")
        spikes = batch[0]
        labels = batch[1] if len(batch) == 2 else None
    else:
        spikes = batch
    if not isinstance(spikes, Tensor) or spikes.ndim != 3:
        shape = tuple(spikes.shape[1:]) if isinstance(spikes, Tensor) else type(spikes).__name__
        raise ValueError(f"dataset: expected spikes of shape (T, N) per item, got {shape}")
    if labels is not None:
        labels = torch.as_tensor(labels)
        if labels.shape != (spikes.shape[0],) or labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise ValueError(f"dataset: expected one integer label per item, got {labels.dtype} {tuple(labels.shape)}")
    return spikes, labels


class ContentDigest:
    """SHA-256 of the input samples of one shard, fed batch by batch.

    The bytes of consecutive samples are hashed as one stream, so the digest depends on the samples
    (values, dtype, per-sample shape, labels) and not on how they were batched.

    Example:
        >>> spikes = torch.zeros(4, 3, 2)
        >>> whole, halves = ContentDigest(), ContentDigest()
        >>> whole.update(spikes, None)
        >>> halves.update(spikes[:2], None); halves.update(spikes[2:], None)
        >>> whole.hexdigest() == halves.hexdigest()
        True
    """

    def __init__(self) -> None:
        self._spikes = hashlib.sha256()
        self._labels = hashlib.sha256()
        self._layout: set[str] = set()

    def update(self, spikes: Tensor, labels: Tensor | None) -> None:
        self._layout.add(f"{spikes.dtype}|{tuple(spikes.shape[1:])}|{None if labels is None else labels.dtype}")
        self._spikes.update(_bytes(spikes))
        if labels is not None:
            self._labels.update(_bytes(labels))

    def hexdigest(self) -> str:
        final = hashlib.sha256("/".join(sorted(self._layout)).encode())
        final.update(self._spikes.digest())
        final.update(self._labels.digest())
        return final.hexdigest()

    @staticmethod
    def combine(digests: list[str]) -> str:
        """One digest of the whole dataset from its shards' digests, in shard order."""
        return hashlib.sha256("|".join(digests).encode()).hexdigest()


def _bytes(tensor: Tensor) -> bytes | memoryview:
    tensor = tensor.detach()
    if tensor.layout != torch.strided:
        tensor = tensor.to_dense()
    flat = tensor.cpu().contiguous().reshape(-1)
    array = flat.view(torch.uint8).numpy() if flat.dtype != torch.bool else flat.numpy()
    return memoryview(array)  # type: ignore[arg-type]  # a contiguous array is a buffer


def content_digests(dataset: Dataset, loader_settings: dict, collate, shards: list, batch_size: int) -> dict[int, str]:
    """``{shard index: ContentDigest}`` of the input samples of ``shards``, read in batches as a run reads them
    (the ``DataLoader``'s workers are used)."""
    if not shards:
        return {}
    plan = [(shard, range(start, min(start + batch_size, shard.stop)))
            for shard in shards for start in range(shard.start, shard.stop, batch_size)]
    settings = {key: value for key, value in loader_settings.items() if value is not None and key != "pin_memory"}
    settings["collate_fn"] = collate
    loader = DataLoader(dataset, batch_sampler=[list(indices) for _, indices in plan], **settings)
    digests: dict[int, ContentDigest] = {}
    for (shard, _), batch in zip(plan, loader, strict=True):
        spikes, labels = split_batch(batch)
        digests.setdefault(shard.index, ContentDigest()).update(spikes, labels)
    return {index: digest.hexdigest() for index, digest in digests.items()}
