"""Explain a whole dataset, on one process or many, with ``torch.distributed``; results as resumable shards.

`explain_dataset` streams a map-style ``Dataset`` (or the dataset of a ``DataLoader``) through one
of the three explainers, in batches on the chosen device, and writes what it finds to a folder:

* ``shard-00000.npz`` (or ``.safetensors``), one per block of ``shard_size`` consecutive samples, holding
  ``scores`` (the attribution, saliency or importance map of each sample), ``targets`` (the explained
  output neuron), ``outputs`` (the model's readout), ``sample_index`` and, when the dataset has them,
  ``labels``;
* ``shard-00000.json`` beside each shard, its receipt: sample range, SHA-256 and the key of the run;
* ``manifest.json``, written by rank 0 once every rank has finished: model, method, parameters, the
  shard list with sample ranges and checksums, and a summary. A folder with a manifest is complete.

Launched by ``torchrun --nproc-per-node N`` (and ``--nnodes M`` on a cluster), every rank takes a
disjoint, deterministic set of shards (the shards still to do, in order, dealt round-robin: on a fresh
folder shard ``k`` goes to rank ``k mod world_size``); the process group uses gloo on CPU and NCCL on
GPUs. Shards and batches do not depend on the number of ranks, so results are bit-identical whatever the
world size. Every file is written atomically (`sc_neurocore.atomic`)
and a shard's receipt only after its shard, so a killed rank loses only the shard it was computing: a
rerun into the same folder keeps every shard whose checksum still matches its receipt and redoes the
others.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import hashlib
import json
import numbers
import os
import sys
import time
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset, default_collate

from .adapters import as_spiking_model
from .atomic import atomic_path, atomic_write
from .engine import execute
from .explain import CausalImportance, SpikeAttributor, TemporalSaliency
from .extras import missing_extra
from .inputs import as_choice, as_positive_int, as_spikes, as_targets
from .explain.perturbation import PerturbationExplainer
from .protocol import INPUT_LAYER

#: Method names, as the CLI and the manifest spell them.
METHODS = {"attribution": SpikeAttributor, "saliency": TemporalSaliency, "causal": CausalImportance}
SHARD_FORMATS = ("npz", "safetensors")
TARGET_MODES = ("predicted", "labels")
MANIFEST = "manifest.json"
#: Bumped when the layout of shards, receipts or the manifest changes.
FORMAT_VERSION = 1
DEFAULT_BATCH_SIZE = 32
#: Shards of this many batches by default: small enough that a killed rank loses little, large enough
#: that files stay few.
DEFAULT_BATCHES_PER_SHARD = 8
#: How long a rank waits for the others at a barrier (torch's default, 10 to 30 minutes, is too short when
#: ranks finish their shards at different times).
GROUP_TIMEOUT = datetime.timedelta(hours=12)


class DatasetSummary(NamedTuple):
    """What `explain_dataset` did, over all ranks.

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
        scores: ``(n_samples, ...)``: ``(T, N)`` maps per sample for attribution and saliency,
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


class SpikeFileDataset(Dataset):
    """Spikes ``(n_samples, T, N)`` and optional ``labels`` ``(n_samples,)`` from a ``.safetensors`` or ``.npz`` file.

    Both formats load without executing anything from the file. A ``.safetensors`` file is read lazily,
    one sample at a time (memory-mapped); an ``.npz`` file is read into memory once.

    Args:
        path: the file, holding an array ``spikes`` and optionally an integer array ``labels``.

    Example:
        >>> import torch, safetensors.torch, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "spikes.safetensors")
        >>> safetensors.torch.save_file({"spikes": torch.zeros(4, 10, 3)}, path)
        >>> dataset = SpikeFileDataset(path)
        >>> len(dataset), dataset[0].shape
        (4, torch.Size([10, 3]))
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
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
        elif self.path.suffix == ".npz":
            try:
                with np.load(self.path, allow_pickle=False) as archive:
                    names = set(archive.files)
                    arrays = {name: archive[name] for name in names & {"spikes", "labels"}}
            except ValueError as error:  # NumPy refuses pickled (object) arrays without running them
                raise ValueError(f"dataset: {str(self.path)!r} holds pickled objects, which are never loaded "
                                 f"(only plain numeric arrays 'spikes' and 'labels' are): {error}") from error
            except (zipfile.BadZipFile, EOFError, OSError) as error:  # truncated or not an archive at all
                raise ValueError(f"dataset: {str(self.path)!r} is not a readable .npz file, truncated or damaged "
                                 f"({error.__class__.__name__}: {error}); write it again") from error
            shapes = {name: array.shape for name, array in arrays.items()}
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
        if not 0 <= index < self._length:
            raise IndexError(f"index {index} out of range for {self._length} samples")
        if self._spikes is None:
            from safetensors import safe_open

            self._spikes = safe_open(str(self.path), framework="pt").get_slice("spikes")
        spikes = self._spikes[index]
        return spikes if self.labels is None else (spikes, self.labels[index])

    def __getstate__(self) -> dict:
        # A memory map does not cross into DataLoader worker processes: each worker reopens the file.
        state = dict(self.__dict__)
        if self.path.suffix == ".safetensors":
            state["_spikes"] = None
        return state


class _Shard(NamedTuple):
    index: int  # type: ignore[assignment]
    start: int
    stop: int
    name: str  # file name without suffix


class _Rank(NamedTuple):
    rank: int
    world_size: int
    device: torch.device


def explain_dataset(explainer: Any, model: Any, dataset: Any, out_dir: str | os.PathLike, *,
                    batch_size: int | None = None, targets: str | int = "predicted", layer: str = INPUT_LAYER,
                    shard_size: int | None = None, device: str | torch.device | None = None,
                    shard_format: str = "npz", num_workers: int | None = None, progress: bool = True,
                    overwrite: bool = False, metadata: Mapping | None = None) -> DatasetSummary:
    """Explain every sample of ``dataset`` and write the results to ``out_dir`` as checksummed shards.

    Run it as it is for one process, or under ``torchrun --nproc-per-node N [--nnodes M]`` to spread the
    shards over N x M ranks (the process group is created from torchrun's environment, gloo on CPU and
    NCCL on GPUs, unless the caller already created one). Every rank must call it with the same arguments.

    Args:
        explainer: ``"attribution"``, ``"saliency"``, ``"causal"`` (default settings), or a configured
            `SpikeAttributor`, `TemporalSaliency`
            or `CausalImportance`; a perturbation explainer must have been built
            on ``model``. It is not modified.
        model: the spiking network (an ``LIFNetwork``, an adapter or a batched ``nn.Module``). It is copied
            to ``device``, never modified.
        dataset: a map-style ``Dataset`` whose items are spikes ``(T, N)``, ``(spikes, label)`` or a mapping
            with ``"spikes"`` and optionally ``"labels"``; or a ``DataLoader`` over one, whose workers,
            ``collate_fn`` and ``pin_memory`` are used (samples are always taken in index order).
        out_dir: the folder of results (created if missing). A rerun into it resumes.
        batch_size: samples per explained batch (default: the ``DataLoader``'s, else 32).
        targets: ``"predicted"`` (the model's argmax output, ties to the lowest index), ``"labels"`` (the
            dataset's labels), or an int output neuron for every sample. Causal importance is the per-sample
            change of that output (never a batch accuracy, which would depend on how samples are batched).
        layer: for causal importance, the layer whose neurons are silenced (default ``"input"``).
        shard_size: samples per shard (default: 8 batches). Batches never straddle two shards.
        device: where to explain (default: ``cuda:LOCAL_RANK`` when CUDA is available, else CPU).
        shard_format: ``"npz"`` (no extra dependency) or ``"safetensors"``.
        num_workers: ``DataLoader`` worker processes (default: the ``DataLoader``'s, else 0).
        progress: show a per-rank progress bar and print the summary on rank 0.
        overwrite: redo shards left in ``out_dir`` by a run with other settings instead of refusing.
        metadata: JSON-serialisable facts recorded in the manifest (e.g. where the weights came from).

    Returns:
        A `DatasetSummary` (the same on every rank).

    Example:
        >>> import torch
        >>> from sc_neurocore import LIFNetwork, explain_dataset
        >>> from torch.utils.data import TensorDataset
        >>> net = LIFNetwork([torch.randn(20, 10), torch.randn(10, 4)], threshold=0.5)
        >>> spikes = (torch.rand(50, 30, 20) < 0.2).float()
        >>> summary = explain_dataset("saliency", net, TensorDataset(spikes), "saliency-out",
        ...                           batch_size=16, progress=False)  # doctest: +SKIP
        >>> load_explanations("saliency-out").scores.shape  # doctest: +SKIP
        torch.Size([50, 30, 20])
    """
    method, explainer = _as_explainer(explainer, model)
    if layer != INPUT_LAYER and method != "causal":
        raise ValueError(f"layer: only causal importance silences a layer; {method} explains input spikes "
                         f"(got layer={layer!r})")
    dataset, loader_settings = _as_dataset(dataset)
    if batch_size is None:
        batch_size = loader_settings.pop("batch_size", None) or DEFAULT_BATCH_SIZE
    loader_settings.pop("batch_size", None)
    batch_size = as_positive_int(batch_size, "batch_size")
    shard_size = (batch_size * DEFAULT_BATCHES_PER_SHARD if shard_size is None
                  else as_positive_int(shard_size, "shard_size"))
    if num_workers is not None:
        if not isinstance(num_workers, numbers.Integral) or isinstance(num_workers, bool) or num_workers < 0:
            raise ValueError(f"num_workers: expected an int >= 0, got {num_workers!r}")
        loader_settings["num_workers"] = int(num_workers)
    as_choice(shard_format, SHARD_FORMATS, "shard_format")
    if shard_format == "safetensors":
        _require_safetensors("shard_format='safetensors'")
    _check_targets(targets)
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise TypeError(f"metadata: expected a mapping, got {type(metadata).__name__}")
        try:
            metadata = json.loads(json.dumps(dict(metadata)))
        except (TypeError, ValueError) as error:
            raise TypeError(f"metadata: expected JSON-serialisable values ({error})") from error
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir: {str(out_dir)!r} exists and is not a folder")

    with _process_group(device) as where:
        return _run(where, method, explainer, model, dataset, loader_settings, out_dir,
                    batch_size=batch_size, targets=targets, layer=layer, shard_size=shard_size,
                    shard_format=shard_format, progress=bool(progress), overwrite=bool(overwrite),
                    metadata=metadata)  # type: ignore[arg-type]


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
    manifest_path = out_dir / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"out_dir: no {MANIFEST} in {str(out_dir)!r} (the run is missing or unfinished)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    parts: dict[str, list[Tensor]] = {}
    for entry in manifest["shards"]:
        path = out_dir / entry["file"]
        if verify and _sha256(path) != entry["sha256"]:
            raise ValueError(f"out_dir: shard {entry['file']} does not match its checksum in the manifest; "
                             "rerun explain_dataset on this folder to redo it")
        for name, tensor in _read_shard(path).items():
            parts.setdefault(name, []).append(tensor)
    merged = {name: torch.cat(tensors) for name, tensors in parts.items()}
    return Explanations(merged["scores"], merged["targets"], merged["outputs"], merged["sample_index"],
                        merged.get("labels"), manifest)


# -- setting up ---------------------------------------------------------------------------------------------
def _as_explainer(explainer: Any, model: Any) -> tuple[str, Any]:
    """``(method name, explainer instance)``; a name gets the explainer's default settings."""
    if isinstance(explainer, str):
        if explainer not in METHODS:
            raise ValueError(f"explainer: expected one of {sorted(METHODS)} or an explainer instance, "
                             f"got {explainer!r}")
        explainer = SpikeAttributor() if explainer == "attribution" else METHODS[explainer](model)
    for method, cls in METHODS.items():  # noqa: B007 (the matching name is returned after the break)
        if isinstance(explainer, cls):
            break
    else:
        raise TypeError(f"explainer: expected a SpikeAttributor, TemporalSaliency or CausalImportance (or their "
                        f"name), got {type(explainer).__name__}")
    if isinstance(explainer, PerturbationExplainer) and explainer.run_fn is not model:
        raise ValueError(f"explainer: this {type(explainer).__name__} runs a different model than `model`; build "
                         f"it on the model you pass, e.g. {type(explainer).__name__}(model)")
    if not isinstance(model, nn.Module) and not callable(model):
        raise TypeError(f"model: expected an nn.Module or a SpikingModel, got {type(model).__name__}")
    return method, explainer


def _parameters(method: str, explainer: Any, layer: str) -> dict:
    """The explainer's settings, as recorded in the manifest and in the run key."""
    if method == "attribution":
        return {"decay": explainer.decay, "mode": explainer.mode}
    parameters = {"max_memory": explainer.max_memory}
    if method == "saliency":
        parameters["significance"] = explainer.significance
    else:
        parameters["layer"] = layer
    return parameters


def _as_dataset(dataset: Any) -> tuple[Dataset, dict]:
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


def _check_targets(targets: Any) -> None:
    if isinstance(targets, str):
        if targets not in TARGET_MODES:
            raise ValueError(f"targets: expected one of {TARGET_MODES} or an int output neuron, got {targets!r}")
    elif not isinstance(targets, numbers.Integral) or isinstance(targets, bool) or targets < 0:
        raise ValueError(f"targets: expected one of {TARGET_MODES} or an int output neuron >= 0, got {targets!r}")


def _resolve_device(device: Any) -> torch.device:
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device: expected a torch device such as 'cpu' or 'cuda:0', got {device!r}") from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: {device} requested but CUDA is not available")
        if device.index is None:  # one GPU per local rank, as torchrun intends
            device = torch.device("cuda", local_rank)
        if device.index >= torch.cuda.device_count():
            raise ValueError(f"device: {device} does not exist ({torch.cuda.device_count()} CUDA device(s)); "
                             "start at most one rank per GPU (torchrun --nproc-per-node <= number of GPUs)")
        torch.cuda.set_device(device)
    return device


@contextlib.contextmanager
def _process_group(device: Any) -> Iterator[_Rank]:
    """Join (or create from torchrun's environment) the process group; destroy it only if created here."""
    import torch.distributed as dist

    device = _resolve_device(device)
    created = False
    if dist.is_available() and not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Ranks wait for each other only at the start and the end, which may be hours apart on a big dataset.
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", timeout=GROUP_TIMEOUT)
        created = True
    try:
        if dist.is_available() and dist.is_initialized():
            yield _Rank(dist.get_rank(), dist.get_world_size(), device)
        else:
            yield _Rank(0, 1, device)
    finally:
        if created:
            dist.destroy_process_group()


def _barrier(where: _Rank) -> None:
    if where.world_size > 1:
        import torch.distributed as dist

        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[where.device.index])
        else:
            dist.barrier()


def _gather(where: _Rank, value: Any) -> list:
    """``value`` of every rank, in rank order (a list of one on a single process)."""
    if where.world_size == 1:
        return [value]
    import torch.distributed as dist

    gathered: list = [None] * where.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def _model_on(model: Any, device: torch.device) -> Any:
    """``model`` on ``device`` in eval mode: a copy when that needs a change (the caller's model is never
    moved or switched to eval), the model itself when it already is."""
    if not isinstance(model, nn.Module):
        return model  # a plain callable runs wherever its own tensors are
    tensor = next(iter(model.parameters()), None)
    if tensor is None:
        tensor = next(iter(model.buffers()), None)  # type: ignore[assignment]
    on_device = tensor is None or tensor.device == device
    if on_device and not any(module.training for module in model.modules()):
        return model
    return copy.deepcopy(model).to(device).eval()


def _fingerprint(model: Any) -> dict:
    """What identifies the model: its class and a SHA-256 over its state dict (names, dtypes, shapes, bytes)."""
    info = {"class": f"{type(model).__module__}.{type(model).__qualname__}"}
    if isinstance(model, nn.Module):
        digest = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            tensor = tensor.detach().cpu().contiguous()
            digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
        info["state_sha256"] = digest.hexdigest()
    return info


def _shards(n_samples: int, shard_size: int) -> list[_Shard]:
    n_shards = -(-n_samples // shard_size)
    width = max(5, len(str(n_shards - 1)))
    return [_Shard(k, k * shard_size, min((k + 1) * shard_size, n_samples), f"shard-{k:0{width}d}")
            for k in range(n_shards)]


# -- the run ------------------------------------------------------------------------------------------------
def _run(where: _Rank, method: str, explainer: Any, model: Any, dataset: Dataset, loader_settings: dict,
         out_dir: Path, *, batch_size: int, targets: Any, layer: str, shard_size: int, shard_format: str,
         progress: bool, overwrite: bool, metadata: dict | None) -> DatasetSummary:
    n_samples = len(dataset)  # type: ignore[arg-type]
    device_model = _model_on(model, where.device)
    if isinstance(explainer, PerturbationExplainer):
        explainer = copy.copy(explainer)  # the caller's explainer keeps its own model
        explainer.run_fn = device_model
    collate = loader_settings.get("collate_fn") or default_collate
    n_inputs = _check_first_sample(dataset, collate, targets, model)
    spiking_model = as_spiking_model(device_model, batched=getattr(explainer, "batched", None), n_inputs=n_inputs,
                                     numpy_io=False, name="model")

    parameters = _parameters(method, explainer, layer)
    settings = {"format_version": FORMAT_VERSION, "method": method, "parameters": parameters,
                "model": _fingerprint(model), "targets": targets, "n_samples": n_samples, "shard_size": shard_size,
                "batch_size": batch_size, "shard_format": shard_format, "device_type": where.device.type}
    run_key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    suffix = "." + shard_format
    shards = _shards(n_samples, shard_size)
    if where.rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    _barrier(where)
    # Every rank verifies a slice of the shards left by earlier runs; then the shards still to do are dealt
    # round-robin, so a resumed run is balanced too. On a fresh folder rank r gets shards r, r + W, ...
    verdicts = [(shard.index, *_check_shard(out_dir, shard, suffix, run_key))
                for shard in shards[where.rank::where.world_size]]
    verdicts = sorted(v for part in _gather(where, verdicts) for v in part)
    refusals = [shards[index].name for index, verdict, _ in verdicts if verdict == "foreign"]
    if refusals and not overwrite:
        raise ValueError(f"out_dir: {str(out_dir)!r} holds shards of a run with other settings ({len(refusals)} "
                         f"shards, e.g. {refusals[0]}); choose another folder or pass overwrite=True (--overwrite on the command line)")
    kept = [receipt for _, verdict, receipt in verdicts if verdict == "kept"]
    redone = sum(verdict in ("corrupt", "partial") for _, verdict, _ in verdicts)
    todo = [shards[index] for index, verdict, _ in verdicts if verdict != "kept"][where.rank::where.world_size]
    _barrier(where)  # nobody writes before every leftover has been checked
    if where.rank == 0:  # a manifest means "complete": take it down until this run completes
        with contextlib.suppress(FileNotFoundError):
            (out_dir / MANIFEST).unlink()
    started = time.perf_counter()

    written = _explain_shards(where, todo, dataset, loader_settings, collate, out_dir, suffix, run_key,
                              spiking_model, method, explainer, targets, layer, batch_size, progress)
    _barrier(where)
    seconds = time.perf_counter() - started
    written = sorted((r for part in _gather(where, written) for r in part), key=lambda r: r["shard"])
    receipts = sorted(kept + written, key=lambda r: r["shard"])  # type: ignore[index, operator]
    explained_samples = sum(r["stop"] - r["start"] for r in written)
    summary = DatasetSummary(
        n_samples=n_samples, n_shards=len(shards), explained_samples=explained_samples,
        explained_shards=len(written), skipped_shards=len(kept), redone_shards=redone,
        world_size=where.world_size, seconds=seconds,
        samples_per_second=explained_samples / seconds if seconds > 0 else 0.0, manifest=out_dir / MANIFEST)
    if where.rank == 0:
        if [r["shard"] for r in receipts] != [s.index for s in shards]:  # type: ignore[index]
            raise RuntimeError("explain_dataset: the ranks did not report every shard exactly once; this is a bug")
        _write_manifest(out_dir, settings, run_key, receipts, summary, metadata)  # type: ignore[arg-type]
        if progress:
            print(summary.describe(), flush=True)
    _barrier(where)  # when any rank returns, the manifest exists
    return summary


def _check_first_sample(dataset: Dataset, collate, targets: Any, model: Any) -> int:
    """Validate the shape of sample 0 (on every rank, so all ranks agree) and return ``N``."""
    spikes, labels = _split_batch(collate([dataset[0]]))
    n_inputs = spikes.shape[2]
    expected = getattr(model, "n_inputs", None)
    if isinstance(expected, int) and expected != n_inputs:
        raise ValueError(f"dataset: samples have {n_inputs} input neurons but the model takes {expected}")
    if targets == "labels" and labels is None:
        raise ValueError("targets: 'labels' needs a dataset whose items are (spikes, label) or carry 'labels'")
    return n_inputs


def _split_batch(batch: Any) -> tuple[Tensor, Tensor | None]:
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


def _explain_shards(where: _Rank, todo: list[_Shard], dataset: Dataset, loader_settings: dict, collate, out_dir: Path,
                    suffix: str, run_key: str, spiking_model, method: str, explainer: Any, targets: Any,
                    layer: str, batch_size: int, progress: bool) -> list[dict]:
    """Explain the shards ``todo`` batch by batch; each shard is written as soon as its last batch is done."""
    from tqdm.auto import tqdm

    # Batches are cut inside each shard, so a batch never straddles two shards and the same sample always
    # lands in the same batch, whatever the number of ranks.
    plan = [(shard, range(start, min(start + batch_size, shard.stop)))
            for shard in todo for start in range(shard.start, shard.stop, batch_size)]
    settings = {key: value for key, value in loader_settings.items() if value is not None}
    settings["collate_fn"] = collate
    settings.setdefault("pin_memory", where.device.type == "cuda")  # lets the copies to the GPU overlap
    loader = DataLoader(dataset, batch_sampler=[indices for _, indices in plan], **settings)  # type: ignore[misc]
    # One line per process of this node: on a cluster, global ranks would push bars off the screen.
    bar = tqdm(total=sum(s.stop - s.start for s in todo), desc=f"rank {where.rank}", unit="sample",
               position=int(os.environ.get("LOCAL_RANK", where.rank)), disable=not progress, file=sys.stderr,
               dynamic_ncols=True)
    written, pending = [], []
    try:
        for (shard, indices), batch in zip(plan, loader, strict=True):
            pending.append(_explain_batch(batch, indices, where.device, spiking_model, method, explainer,
                                          targets, layer))
            bar.update(len(indices))
            if indices.stop == shard.stop:
                arrays = {name: torch.cat([part[name] for part in pending]) for name in pending[0]}
                pending = []
                written.append(_write_shard(out_dir, shard, suffix, arrays, run_key, where.rank))
    finally:
        bar.close()
    return written


def _explain_batch(batch: Any, indices: range, device: torch.device, spiking_model, method: str, explainer: Any,
                   targets: Any, layer: str) -> dict[str, Tensor]:
    spikes, labels = _split_batch(batch)
    if spikes.shape[0] != len(indices):
        raise ValueError(f"dataset: collate_fn returned {spikes.shape[0]} samples for a batch of {len(indices)}")
    spikes = as_spikes(spikes.to(device, non_blocking=True)).spikes
    with torch.inference_mode():
        outputs = execute(spiking_model, spikes, None)
    n_outputs = outputs.shape[1]
    if targets == "predicted":
        chosen = outputs.argmax(dim=1)  # the first maximal output: ties go to the lowest index
    elif targets == "labels":
        chosen = as_targets(labels, len(indices), n_outputs, device, name="labels")
    else:
        chosen = as_targets(int(targets), len(indices), n_outputs, device, name="targets")
    if method == "attribution":
        scores = explainer.attribute(spikes, spiking_model, output_neuron=chosen).attribution_map()
    elif method == "saliency":
        scores = explainer.explain(spikes, output_neuron=chosen).saliency_map()
    else:
        scores = explainer.explain(spikes, output_neuron=chosen, layer=layer).importance_map()
    arrays = {"scores": scores, "targets": chosen, "outputs": outputs,
              "sample_index": torch.arange(indices.start, indices.stop)}
    if labels is not None:
        arrays["labels"] = labels.to(torch.long)
    return {name: tensor.detach().cpu().contiguous() for name, tensor in arrays.items()}


# -- files --------------------------------------------------------------------------------------------------
def _require_safetensors(what: str):
    try:
        import safetensors.torch
    except ImportError as error:
        raise missing_extra(f"{what} needs safetensors", "data") from error
    return safetensors.torch


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_npz(path: Path, arrays: Mapping[str, Tensor]) -> None:
    """An ``.npz`` that ``numpy.load`` reads, with fixed member timestamps so equal arrays give equal bytes
    (``numpy.savez`` stamps the current time, which would make checksums differ between identical runs)."""
    with atomic_path(path) as temporary:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_STORED) as archive:
            for name in sorted(arrays):
                member = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                with archive.open(member, "w", force_zip64=True) as handle:
                    np.lib.format.write_array(handle, arrays[name].numpy(), allow_pickle=False)


def _write_shard(out_dir: Path, shard: _Shard, suffix: str, arrays: dict[str, Tensor], run_key: str,
                 rank: int) -> dict:
    """Write the shard, then its receipt (both atomically); the receipt is the proof of completion."""
    path = out_dir / (shard.name + suffix)
    if suffix == ".npz":
        _write_npz(path, arrays)
    else:
        save_file = _require_safetensors("shard_format='safetensors'").save_file
        with atomic_path(path) as temporary:
            save_file(arrays, str(temporary))
    receipt = {"run_key": run_key, "shard": shard.index, "rank": rank, "file": path.name, "start": shard.start,
               "stop": shard.stop,
               "sha256": _sha256(path), "bytes": path.stat().st_size,
               "arrays": {name: {"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape[1:])}
                          for name, t in sorted(arrays.items())}}
    with atomic_write(out_dir / (shard.name + ".json")) as handle:
        json.dump(receipt, handle, indent=1, sort_keys=True)
    return receipt


def _read_shard(path: Path) -> dict[str, Tensor]:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            return {name: torch.from_numpy(archive[name]) for name in archive.files}
    return _require_safetensors("reading .safetensors shards").load_file(str(path))


def _check_shard(out_dir: Path, shard: _Shard, suffix: str, run_key: str) -> tuple[str, dict | None]:
    """``kept`` (complete and verified), ``missing``, ``partial`` (no valid receipt), ``corrupt`` (checksum
    mismatch) or ``foreign`` (a receipt of a run with other settings)."""
    path = out_dir / (shard.name + suffix)
    receipt_path = out_dir / (shard.name + ".json")
    for leftover in out_dir.glob(f".{shard.name}{suffix}.*.tmp"):  # what a killed writer left behind
        leftover.unlink(missing_ok=True)
    if not receipt_path.is_file():
        return ("partial" if path.exists() else "missing"), None
    try:
        receipt = json.loads(receipt_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "partial", None
    if not isinstance(receipt, dict) or receipt.get("run_key") != run_key:
        return "foreign", None
    if (receipt.get("file"), receipt.get("start"), receipt.get("stop")) != (path.name, shard.start, shard.stop):
        return "foreign", None
    if not path.is_file() or _sha256(path) != receipt.get("sha256"):
        return "corrupt", None
    return "kept", receipt


def _write_manifest(out_dir: Path, settings: dict, run_key: str, receipts: list[dict], summary: DatasetSummary,
                    metadata: dict | None) -> None:
    manifest = {
        "format": "sc-neurocore explanations", "format_version": FORMAT_VERSION, "run_key": run_key,
        "model": settings["model"], "method": settings["method"], "parameters": settings["parameters"],
        "targets": settings["targets"], "n_samples": settings["n_samples"], "shard_size": settings["shard_size"],
        "batch_size": settings["batch_size"], "shard_format": settings["shard_format"],
        "device_type": settings["device_type"], "arrays": receipts[0]["arrays"],
        "shards": [{key: r[key] for key in ("file", "start", "stop", "sha256", "bytes")} for r in receipts],
        "summary": {"world_size": summary.world_size, "explained_samples": summary.explained_samples,
                    "explained_shards": summary.explained_shards, "skipped_shards": summary.skipped_shards,
                    "redone_shards": summary.redone_shards, "seconds": round(summary.seconds, 4),
                    "samples_per_second": round(summary.samples_per_second, 3)},
    }
    if metadata is not None:
        manifest["metadata"] = metadata
    with atomic_write(out_dir / MANIFEST) as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True)


# -- the command --------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``sc-neurocore explain-dataset`` to ``parser``.

    Args:
        parser: the subcommand's parser (`sc_neurocore.cli` builds it).

    Returns:
        None.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_arguments(parser)
        >>> parser.parse_args(["--model", "m:f", "--dataset", "d.npz", "--method", "saliency", "--out", "o"]).targets
        'predicted'
    """
    parser.add_argument("--model", required=True, metavar="PACKAGE.MODULE:FACTORY",
                        help="a callable that builds the network (imported by name, never unpickled)")
    parser.add_argument("--weights", metavar="FILE", help="state dict to load into the built network "
                        "(.safetensors, or .pt/.pth loaded with weights_only=True)")
    parser.add_argument("--dataset", required=True, metavar="FILE|PACKAGE.MODULE:FACTORY",
                        help="a .safetensors/.npz file with 'spikes' (n, T, N) and optional 'labels' (n,), or a "
                             "callable returning a map-style Dataset or a DataLoader")
    parser.add_argument("--method", required=True, choices=sorted(METHODS), help="which explainer to run")
    parser.add_argument("--out", required=True, help="folder of shards and manifest (a rerun resumes)")
    parser.add_argument("--targets", default="predicted",
                        help="'predicted' (argmax output), 'labels' (the dataset's), or an output neuron index")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"samples per batch (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--shard-size", type=int, default=None,
                        help=f"samples per shard (default {DEFAULT_BATCHES_PER_SHARD} batches)")
    parser.add_argument("--format", dest="shard_format", choices=SHARD_FORMATS, default="npz", help="shard file format")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:K (default: cuda:LOCAL_RANK if available)")
    parser.add_argument("--num-workers", type=int, default=None, help="DataLoader worker processes per rank")
    parser.add_argument("--decay", type=float, default=0.9, help="attribution: time decay in (0, 1]")
    parser.add_argument("--mode", choices=("linear", "gated"), default="linear", help="attribution: weight paths")
    parser.add_argument("--significance", type=float, default=None, help="saliency: |saliency| counted significant")
    parser.add_argument("--layer", default=INPUT_LAYER, help="causal: the layer whose neurons are silenced")
    parser.add_argument("--max-memory", type=int, default=None, help="saliency/causal: bytes per forward pass")
    parser.add_argument("--overwrite", action="store_true", help="redo shards left by a run with other settings")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    """``sc-neurocore explain-dataset``: build the model and the dataset by name, then `explain_dataset`.

    The model is built by calling ``--model`` (imported by name) and, with ``--weights``, given the state
    dict read by `sc_neurocore.loading.load_state_dict`; nothing is unpickled.

    Args:
        args: the parsed options (see `add_arguments`).

    Returns:
        0 on success (bad input raises ``ValueError`` / ``TypeError``, which the CLI reports as one line).

    Example:
        >>> from sc_neurocore.cli import main as cli  # doctest: +SKIP
        >>> cli(["explain-dataset", "--model", "mypkg.nets:build", "--weights", "w.safetensors",
        ...      "--dataset", "spikes.npz", "--method", "saliency", "--out", "results"])  # doctest: +SKIP
        0
    """
    from .loading import load_state_dict

    model = _build(args.model, "model")
    if args.weights is not None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: --weights needs {args.model} to build an nn.Module, got {type(model).__name__}")
        try:
            model.load_state_dict(load_state_dict(args.weights))
        except RuntimeError as error:  # missing, unexpected or mis-shaped tensors
            raise ValueError(f"weights: {args.weights} does not fit the network {args.model} builds: {error}") \
                from error
    dataset_path = Path(args.dataset)
    if dataset_path.suffix in (".safetensors", ".npz"):
        dataset: Any = SpikeFileDataset(dataset_path)
    elif ":" in args.dataset:
        dataset = _build(args.dataset, "dataset")
        if isinstance(dataset, tuple) and "spikes" in getattr(dataset, "_fields", ()):  # e.g. sc_neurocore.data:load_digits
            spike_set: Any = dataset
            dataset = TensorDataset(*[t for t in (spike_set.spikes, getattr(spike_set, "labels", None)) if t is not None])
    else:
        raise ValueError(f"dataset: expected a .safetensors/.npz file or 'package.module:factory', "
                         f"got {args.dataset!r}")
    if args.method == "attribution":
        explainer = SpikeAttributor(decay=args.decay, mode=args.mode)
    else:
        options = {"max_memory": args.max_memory}
        if args.method == "saliency" and args.significance is not None:
            options["significance"] = args.significance
        explainer = METHODS[args.method](model, **options)
    targets = int(args.targets) if args.targets.lstrip("-").isdigit() else args.targets
    metadata = {"model_factory": args.model, "dataset": args.dataset}
    if args.weights is not None:
        metadata.update(weights=str(args.weights), weights_sha256=_sha256(Path(args.weights)))
    summary = explain_dataset(explainer, model, dataset, args.out, batch_size=args.batch_size, targets=targets,
                              layer=args.layer, shard_size=args.shard_size, device=args.device,
                              shard_format=args.shard_format, num_workers=args.num_workers,
                              progress=not args.no_progress, overwrite=args.overwrite, metadata=metadata)
    if args.no_progress and int(os.environ.get("RANK", "0")) == 0:  # with progress, explain_dataset printed it
        print(summary.describe(), flush=True)
    return 0


def _build(spec: str, name: str):
    """Call the factory ``package.module:factory``; import problems become a ``ValueError`` naming ``name``."""
    from .loading import import_factory

    try:
        factory = import_factory(spec)
    except ImportError as error:
        raise ValueError(f"{name}: cannot import {spec.split(':')[0]!r} ({error})") from error
    except ValueError as error:  # import_factory names the argument 'model'
        raise ValueError(f"{name}: {str(error).removeprefix('model: ')}") from error
    return factory()
