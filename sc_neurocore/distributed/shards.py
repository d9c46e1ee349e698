"""Shards and their receipts: one block of consecutive samples per file, written atomically, checked on resume.

A shard ``shard-00000.npz`` (or ``.safetensors``) holds the arrays of ``shard_size`` consecutive samples;
its receipt ``shard-00000.json`` is written after it and is the proof of completion: the sample range, the
file's SHA-256, the key of the run that wrote it (see `sc_neurocore.distributed.key`) and the digest of
the input samples it was computed from.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..atomic import atomic_path, atomic_write
from ..extras import missing_extra


class Shard(NamedTuple):
    """Samples ``start .. stop - 1`` of the dataset, in the files ``name + suffix`` and ``name + ".json"``."""

    index: int  # type: ignore[assignment]  # the shard's number, shadowing tuple.index
    start: int
    stop: int
    name: str  # file name without suffix


class Verdict(NamedTuple):
    """What a shard left in the folder by an earlier run is worth to this one.

    Attributes:
        state: ``"kept"`` (complete, verified), ``"missing"``, ``"partial"`` (no valid receipt),
            ``"corrupt"`` (checksum mismatch) or ``"foreign"`` (written with other settings).
        receipt: the parsed receipt (``None`` when missing or partial).
        changed: for ``"foreign"``, the names of the key fields that differ.
    """

    state: str
    receipt: dict | None
    changed: tuple[str, ...] = ()


def plan_shards(n_samples: int, shard_size: int) -> list[Shard]:
    """The shards of a dataset of ``n_samples``: ``shard_size`` samples each, the last one shorter.

    Example:
        >>> [(s.start, s.stop, s.name) for s in plan_shards(5, 2)]
        [(0, 2, 'shard-00000'), (2, 4, 'shard-00001'), (4, 5, 'shard-00002')]
    """
    n_shards = -(-n_samples // shard_size)
    width = max(5, len(str(n_shards - 1)))
    return [Shard(k, k * shard_size, min((k + 1) * shard_size, n_samples), f"shard-{k:0{width}d}")
            for k in range(n_shards)]


def require_safetensors(what: str):
    try:
        import safetensors.torch
    except ImportError as error:
        raise missing_extra(f"{what} needs safetensors", "data") from error
    return safetensors.torch


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_npz(path: Path, arrays: Mapping[str, Tensor]) -> None:
    """An ``.npz`` that ``numpy.load`` reads, with fixed member timestamps so equal arrays give equal bytes
    (``numpy.savez`` stamps the current time, which would make checksums differ between identical runs)."""
    with atomic_path(path) as temporary, zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(arrays):
            member = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(member, "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, arrays[name].numpy(), allow_pickle=False)


def write_shard(out_dir: Path, shard: Shard, suffix: str, arrays: dict[str, Tensor], key: dict, run_id: str,
                content: str, rank: int) -> dict:
    """Write the shard, then its receipt (both atomically); the receipt is the proof of completion."""
    path = out_dir / (shard.name + suffix)
    if suffix == ".npz":
        _write_npz(path, arrays)
    else:
        save_file = require_safetensors("shard_format='safetensors'").save_file
        with atomic_path(path) as temporary:
            save_file(arrays, str(temporary))
    receipt = {"run_key": key["run_key"], "key": key["fields"], "run_id": run_id, "content_sha256": content,
               "shard": shard.index, "rank": rank, "file": path.name, "start": shard.start, "stop": shard.stop,
               "sha256": sha256_file(path), "bytes": path.stat().st_size,
               "arrays": {name: {"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape[1:])}
                          for name, t in sorted(arrays.items())}}
    with atomic_write(out_dir / (shard.name + ".json")) as handle:
        json.dump(receipt, handle, indent=1, sort_keys=True)
    return receipt


def read_shard(path: Path) -> dict[str, Tensor]:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            return {name: torch.from_numpy(archive[name]) for name in archive.files}
    return require_safetensors("reading .safetensors shards").load_file(str(path))


def read_receipt(path: Path) -> dict | None:
    """The receipt at ``path``, or ``None`` when it is absent or unreadable (a partial shard)."""
    try:
        receipt = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return receipt if isinstance(receipt, dict) else None


def check_shard(out_dir: Path, shard: Shard, suffix: str, key: dict) -> Verdict:
    """What the files of ``shard`` left in ``out_dir`` are worth to a run with ``key`` (see `Verdict`).

    The content digest of the input samples is compared separately (it needs the dataset, see
    `sc_neurocore.distributed.dataset.content_digest`)."""
    path = out_dir / (shard.name + suffix)
    receipt_path = out_dir / (shard.name + ".json")
    for leftover in out_dir.glob(f".{shard.name}{suffix}.*.tmp"):  # what a killed writer left behind
        leftover.unlink(missing_ok=True)
    if not receipt_path.is_file():
        return Verdict("partial" if path.exists() else "missing", None)
    receipt = read_receipt(receipt_path)
    if receipt is None:
        return Verdict("partial", None)
    if receipt.get("run_key") != key["run_key"]:
        found = receipt.get("key")
        old: dict = found if isinstance(found, dict) else {}
        changed = tuple(sorted(name for name in set(old) | set(key["fields"])
                               if old.get(name) != key["fields"].get(name))) or ("format_version",)
        return Verdict("foreign", receipt, changed)
    if (receipt.get("file"), receipt.get("start"), receipt.get("stop")) != (path.name, shard.start, shard.stop):
        return Verdict("foreign", receipt, ("shard_size",))
    if not path.is_file() or sha256_file(path) != receipt.get("sha256"):
        return Verdict("corrupt", None)
    return Verdict("kept", receipt)
