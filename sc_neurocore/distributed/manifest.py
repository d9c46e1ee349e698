"""The manifest of a finished run, what it summarises, and reading a finished folder back.

``manifest.json`` is written by rank 0 once every rank has finished and the folder has been checked to
hold this run's shards only: model, method, parameters, the key of the run, the shard list with sample
ranges and checksums, and a summary. A folder with a manifest is complete.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from ..atomic import atomic_write
from .shards import read_receipt, read_shard, sha256_file
from .sparse import merge_sparse

MANIFEST = "manifest.json"
#: Bumped when the layout of shards, receipts or the manifest changes (2: receipts carry the key's fields,
#: the run id and the content digest of their input samples).
FORMAT_VERSION = 2


class DatasetSummary(NamedTuple):
    """What `sc_neurocore.distributed.explain_dataset` did, over all ranks.

    Attributes:
        n_samples: samples in the dataset.
        n_shards: shards the dataset is split into.
        explained_samples: samples explained by this run (not counting shards kept from an earlier run).
        explained_shards: shards written by this run.
        skipped_shards: shards kept from an earlier run (complete and verified by checksum).
        redone_shards: shards found partial or failing their checksum, and explained again.
        world_size: number of ranks.
        seconds: wall time of the explaining, from the first to the last barrier.
        samples_per_second: ``explained_samples / seconds``.
        manifest: path of the manifest.
    """

    n_samples: int
    n_shards: int
    explained_samples: int
    explained_shards: int
    skipped_shards: int
    redone_shards: int
    world_size: int
    seconds: float
    samples_per_second: float
    manifest: Path

    def describe(self) -> str:
        """One line for humans: samples, shards, ranks and throughput."""
        return (f"explained {self.explained_samples} of {self.n_samples} samples in {self.explained_shards} of "
                f"{self.n_shards} shards ({self.skipped_shards} kept from an earlier run, {self.redone_shards} "
                f"redone) on {self.world_size} rank(s) in {self.seconds:.2f} s: "
                f"{self.samples_per_second:.1f} samples/s; manifest {self.manifest}")


class Explanations(NamedTuple):
    """A folder written by `explain_dataset`, merged in sample order (see `load_explanations`).

    Attributes:
        scores: ``(n_samples, ...)``: ``(T, N)`` maps per sample for attribution and saliency (a coalesced
            sparse COO tensor for a ``sparse=True`` run: ``scores.to_dense()`` gives the map),
            ``(n_neurons,)`` importances for causal.
        targets: ``(n_samples,)`` the explained output neuron of each sample.
        outputs: ``(n_samples, C)`` the model's readout.
        sample_index: ``(n_samples,)`` the dataset index of each row (``0 .. n_samples - 1``).
        labels: ``(n_samples,)`` the dataset's labels, or ``None`` when it has none.
        manifest: the parsed ``manifest.json``.
    """

    scores: Tensor
    targets: Tensor
    outputs: Tensor
    sample_index: Tensor
    labels: Tensor | None
    manifest: dict


def check_folder_is_ours(out_dir: Path, receipts: list[dict], run_key: str, run_id: str, written: set[int]) -> None:
    """The last check before the manifest: every receipt on disk is still this run's and matches its shard.

    A run that wrote into the folder meanwhile (the lock defeated, e.g. by a file system without working
    locks) is detected here instead of leaving a manifest over another run's shards."""
    for receipt in receipts:
        on_disk = read_receipt(out_dir / Path(receipt["file"]).with_suffix(".json").name)
        expected_id = run_id if receipt["shard"] in written else receipt.get("run_id")
        if (on_disk is None or on_disk.get("run_key") != run_key or on_disk.get("run_id") != expected_id
                or on_disk.get("sha256") != receipt["sha256"]
                or sha256_file(out_dir / receipt["file"]) != receipt["sha256"]):
            raise RuntimeError(f"out_dir: {receipt['file']} in {str(out_dir)!r} was changed by another run while "
                               "this one was writing; no manifest was written. Make sure one run at a time "
                               "writes into a folder, then rerun to redo the changed shards")


def write_manifest(out_dir: Path, settings: dict, key: dict, receipts: list[dict], summary: DatasetSummary,
                   metadata: dict | None, content: str) -> None:
    manifest = {
        "format": "sc-neurocore explanations", "format_version": FORMAT_VERSION, "run_key": key["run_key"],
        "key": key["fields"], "dataset_sha256": content,
        "model": settings["model"], "method": settings["method"], "parameters": settings["parameters"],
        "targets": settings["targets"], "n_samples": settings["n_samples"], "shard_size": settings["shard_size"],
        "batch_size": settings["batch_size"], "shard_format": settings["shard_format"],
        "device_type": settings["device_type"], "sparse": settings["sparse"], "arrays": receipts[0]["arrays"],
        "shards": [{key: r[key] for key in ("file", "start", "stop", "sha256", "bytes")} for r in receipts],
        "summary": {"world_size": summary.world_size, "explained_samples": summary.explained_samples,
                    "explained_shards": summary.explained_shards, "skipped_shards": summary.skipped_shards,
                    "redone_shards": summary.redone_shards, "seconds": round(summary.seconds, 4),
                    "samples_per_second": round(summary.samples_per_second, 3)},
    }
    if metadata is not None:
        manifest["metadata"] = metadata
    with atomic_write(out_dir / MANIFEST) as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True, allow_nan=False)


def _read_manifest(out_dir: Path) -> dict:
    manifest_path = out_dir / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"out_dir: no {MANIFEST} in {str(out_dir)!r} (the run is missing or unfinished)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"out_dir: {MANIFEST} in {str(out_dir)!r} is not valid JSON ({error}); rerun "
                         "explain_dataset on this folder to rewrite it") from error
    shards = manifest.get("shards") if isinstance(manifest, dict) else None
    if not (isinstance(shards, list) and shards and all(
            isinstance(s, dict) and isinstance(s.get("file"), str) and isinstance(s.get("sha256"), str)
            and "/" not in s["file"] and "\\" not in s["file"] and not s["file"].startswith(".") for s in shards)):
        raise ValueError(f"out_dir: {MANIFEST} in {str(out_dir)!r} is not an sc-neurocore manifest (expected a "
                         "'shards' list of {'file', 'sha256', ...} entries); rerun explain_dataset on this folder")
    return manifest


def load_explanations(out_dir: str | os.PathLike, verify: bool = True) -> Explanations:
    """Merge the shards of a finished `explain_dataset` run, in sample order.

    Args:
        out_dir: the folder holding ``manifest.json`` and the shards.
        verify: check every shard against its manifest checksum first (raises ``ValueError`` on a mismatch).

    Returns:
        An `Explanations` of CPU tensors.

    Example:
        >>> explanations = load_explanations("saliency-out")  # doctest: +SKIP
        >>> explanations.sample_index.equal(torch.arange(len(explanations.sample_index)))  # doctest: +SKIP
        True
    """
    out_dir = Path(out_dir)
    manifest = _read_manifest(out_dir)
    parts: dict[str, list[Tensor]] = {}
    for entry in manifest["shards"]:
        path = out_dir / entry["file"]
        if verify and (not path.is_file() or sha256_file(path) != entry["sha256"]):
            raise ValueError(f"out_dir: shard {entry['file']} does not match its checksum in the manifest; "
                             "rerun explain_dataset on this folder to redo it")
        try:
            arrays = read_shard(path)
        except (OSError, ValueError, EOFError) as error:  # only when verify=False lets a damaged shard through
            raise ValueError(f"out_dir: shard {entry['file']} cannot be read ({error})") from error
        for name, tensor in arrays.items():
            parts.setdefault(name, []).append(tensor)
    merged = {name: torch.cat(tensors) for name, tensors in parts.items()}
    if manifest.get("sparse"):
        merged["scores"] = merge_sparse(merged, str(out_dir))
    missing = {"scores", "targets", "outputs", "sample_index"} - set(merged)
    if missing:
        raise ValueError(f"out_dir: the shards in {str(out_dir)!r} lack the arrays {sorted(missing)}")
    return Explanations(merged["scores"], merged["targets"], merged["outputs"], merged["sample_index"],
                        merged.get("labels"), manifest)
