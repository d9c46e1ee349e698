"""Explain a whole dataset, on one process or many, with ``torch.distributed``: the run itself.

`explain_dataset` checks its arguments, joins the process group (`sc_neurocore.distributed.ranks`),
takes the folder's writer lock (`sc_neurocore.distributed.lock`), verifies what earlier runs left
(`sc_neurocore.distributed.shards`, keyed by `sc_neurocore.distributed.key` and by the content of the
input samples), explains the shards still to do batch by batch, checks that the folder holds this run's
shards only, and writes the manifest (`sc_neurocore.distributed.manifest`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import numbers
import os
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ..adapters import as_spiking_model
from ..engine import execute
from ..explain import CausalImportance, SpikeAttributor, TemporalSaliency
from ..explain.perturbation import PerturbationExplainer
from ..inputs import as_choice, as_positive_int, as_spikes, as_targets
from ..protocol import INPUT_LAYER
from .dataset import ContentDigest, as_dataset, check_first_sample, collate_for, content_digests, split_batch
from .key import describe_changes, model_fingerprint, run_key
from .lock import FolderBusyError, folder_lock
from .manifest import FORMAT_VERSION, MANIFEST, DatasetSummary, check_folder_is_ours, write_manifest
from .ranks import Rank, barrier, from_rank0, gather, process_group
from .shards import Shard, Verdict, check_shard, plan_shards, require_safetensors, write_shard
from .sparse import sparse_arrays

#: Method names, as the CLI and the manifest spell them.
METHODS = {"attribution": SpikeAttributor, "saliency": TemporalSaliency, "causal": CausalImportance}
SHARD_FORMATS = ("npz", "safetensors")
TARGET_MODES = ("predicted", "labels")
DEFAULT_BATCH_SIZE = 32
#: Shards of this many batches by default: small enough that a killed rank loses little, large enough
#: that files stay few.
DEFAULT_BATCHES_PER_SHARD = 8

logger = logging.getLogger("sc_neurocore.distributed")


def explain_dataset(explainer: Any, model: Any, dataset: Any, out_dir: str | os.PathLike, *,
                    batch_size: int | None = None, targets: str | int = "predicted", layer: str = INPUT_LAYER,
                    shard_size: int | None = None, device: str | torch.device | None = None,
                    shard_format: str = "npz", num_workers: int | None = None, progress: bool = True,
                    overwrite: bool = False, metadata: Mapping | None = None, sparse: bool = False) -> DatasetSummary:
    """Explain every sample of ``dataset`` and write the results to ``out_dir`` as checksummed shards.

    Run it as it is for one process, or under ``torchrun --nproc-per-node N [--nnodes M]`` to spread the
    shards over N x M ranks (the process group is created from torchrun's environment, gloo on CPU and
    NCCL on GPUs, unless the caller already created one). Every rank must call it with the same arguments.

    Args:
        explainer: ``"attribution"`` (`SpikeAttributor` with `mode="auto"`), ``"saliency"``, ``"causal"``
            (default settings), or a configured
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
        overwrite: recompute shards left in ``out_dir`` by a run with other settings (another model,
            dataset content, method, options or targets; see `sc_neurocore.distributed.key`) instead of
            refusing. Shards of the same run are kept either way.
        metadata: JSON-serialisable facts recorded in the manifest (e.g. where the weights came from).
        sparse: keep attribution or saliency maps at the input spikes only (both are zero wherever the input
            is): shards store each entry's value and `(t, neuron)`, and `load_explanations` gives the scores
            as a sparse COO tensor. `O(spikes)` on disk and in memory instead of `O(n T N)`; attribution
            never builds the dense map (`SpikeAttributor.attribute(..., sparse=True)`).

    Returns:
        A `DatasetSummary` (the same on every rank).

    Raises:
        ValueError: bad arguments (named), a folder holding another run's results (saying what changed),
            or a folder another live run is writing (`sc_neurocore.distributed.lock.FolderBusyError`).

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
    if not isinstance(layer, str):
        raise TypeError(f"layer: expected a layer name (a str), got {layer!r}")
    if not isinstance(sparse, bool):
        raise TypeError(f"sparse: expected True or False, got {sparse!r}")
    if sparse and method == "causal":
        raise ValueError("sparse: causal importance gives one score per neuron, not an input map; sparse=True "
                         "applies to attribution and saliency")
    if layer != INPUT_LAYER and method != "causal":
        raise ValueError(f"layer: only causal importance silences a layer; {method} explains input spikes "
                         f"(got layer={layer!r})")
    dataset, loader_settings = as_dataset(dataset)
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
        require_safetensors("shard_format='safetensors'")
    targets = _check_targets(targets)
    if metadata is not None:
        metadata = _check_metadata(metadata)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir: {str(out_dir)!r} exists and is not a folder")
    _check_model_has_values(model)

    with process_group(device) as where:
        return _run(where, method, explainer, model, dataset, loader_settings, out_dir,
                    batch_size=batch_size, targets=targets, layer=layer, shard_size=shard_size,
                    shard_format=shard_format, progress=bool(progress), overwrite=bool(overwrite),
                    metadata=metadata, sparse=sparse)


# -- setting up ---------------------------------------------------------------------------------------------
def _as_explainer(explainer: Any, model: Any) -> tuple[str, Any]:
    """``(method name, explainer instance)``; a name gets the explainer's default settings."""
    if isinstance(explainer, str):
        if explainer not in METHODS:
            raise ValueError(f"explainer: expected one of {sorted(METHODS)} or an explainer instance, "
                             f"got {explainer!r}")
        explainer = SpikeAttributor(mode="auto") if explainer == "attribution" else METHODS[explainer](model)
    for name, cls in METHODS.items():
        if isinstance(explainer, cls):
            method = name
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
    """The explainer's settings, as recorded in the manifest (``max_memory`` included, for the record)."""
    if method == "attribution":  # auto takes its decays from the model: its `decay` changes nothing
        return {"mode": explainer.mode} if explainer.mode == "auto" else {"decay": explainer.decay, "mode": explainer.mode}
    parameters = {"max_memory": explainer.max_memory}
    if method == "saliency":
        parameters["significance"] = explainer.significance
    else:
        parameters["layer"] = layer
    return parameters


def _options(method: str, parameters: dict) -> dict:
    """The settings that change results: `_parameters` without the memory budget, which only chunks."""
    return {name: value for name, value in parameters.items() if name != "max_memory"}


def _check_targets(targets: Any) -> str | int:
    if isinstance(targets, str):
        if targets not in TARGET_MODES:
            raise ValueError(f"targets: expected one of {TARGET_MODES} or an int output neuron, got {targets!r}")
        return targets
    if not isinstance(targets, numbers.Integral) or isinstance(targets, bool) or targets < 0:
        raise ValueError(f"targets: expected one of {TARGET_MODES} or an int output neuron >= 0, got {targets!r}")
    return int(targets)  # a NumPy integer too: it goes into the manifest's JSON


def _check_metadata(metadata: Any) -> dict:
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata: expected a mapping, got {type(metadata).__name__}")
    try:
        return json.loads(json.dumps(dict(metadata), allow_nan=False))
    except TypeError as error:
        raise TypeError(f"metadata: expected JSON-serialisable values ({error})") from error
    except ValueError as error:  # NaN or Inf: json would write a file no JSON reader accepts
        raise ValueError(f"metadata: expected JSON values, and NaN / Inf are not JSON ({error})") from error


def _check_model_has_values(model: Any) -> None:
    if isinstance(model, nn.Module):
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if tensor.device.type == "meta":
                raise ValueError(f"model: {name} is on the 'meta' device (a shape without values); load real "
                                 "weights first, e.g. model.to_empty(device='cpu') then model.load_state_dict(...)")


def _model_on(model: Any, device: torch.device) -> Any:
    """``model`` on ``device`` in eval mode: a copy when that needs a change (the caller's model is never
    moved or switched to eval), the model itself when it already is."""
    if not isinstance(model, nn.Module):
        return model  # a plain callable runs wherever its own tensors are
    tensor: Tensor | None = next(iter(model.parameters()), None)
    if tensor is None:
        tensor = next(iter(model.buffers()), None)
    on_device = tensor is None or tensor.device == device
    if on_device and not any(module.training for module in model.modules()):
        return model
    return copy.deepcopy(model).to(device).eval()


@contextlib.contextmanager
def _one_writer(where: Rank, out_dir: Path) -> Iterator[None]:
    """Rank 0 creates ``out_dir`` and holds its writer lock for every rank of the job; all ranks refuse
    together when another run holds it (or the folder cannot be created)."""
    with contextlib.ExitStack() as stack:
        refusal: Exception | None = None
        if where.rank == 0:
            try:
                out_dir.mkdir(parents=True, exist_ok=True)
                stack.enter_context(folder_lock(out_dir))
            except (FolderBusyError, OSError) as error:
                refusal = error
        told = from_rank0(where, None if refusal is None else str(refusal))
        if refusal is not None:
            raise refusal
        if told is not None:
            raise FolderBusyError(f"rank 0 could not take the folder: {told}")
        yield


# -- the run ------------------------------------------------------------------------------------------------
def _run(where: Rank, method: str, explainer: Any, model: Any, dataset: Dataset, loader_settings: dict,
         out_dir: Path, *, batch_size: int, targets: Any, layer: str, shard_size: int, shard_format: str,
         progress: bool, overwrite: bool, metadata: dict | None, sparse: bool) -> DatasetSummary:
    n_samples = len(dataset)  # type: ignore[arg-type]  # as_dataset checked __len__
    device_model = _model_on(model, where.device)
    if isinstance(explainer, PerturbationExplainer):
        explainer = copy.copy(explainer)  # the caller's explainer keeps its own model
        explainer.run_fn = device_model
    collate = collate_for(loader_settings)
    n_inputs = check_first_sample(dataset, collate, targets, model)
    spiking_model = as_spiking_model(device_model, batched=getattr(explainer, "batched", None), n_inputs=n_inputs,
                                     numpy_io=False, name="model")

    parameters = _parameters(method, explainer, layer)
    fingerprint = model_fingerprint(model)
    fields = {"format_version": FORMAT_VERSION, "method": method, "options": _options(method, parameters),
              "model": fingerprint, "targets": targets, "n_samples": n_samples, "shard_size": shard_size,
              "shard_format": shard_format, "device_type": where.device.type}
    if method == "attribution" and parameters["mode"] in ("gated", "auto"):
        # Both read the model's recorded forward of the whole batch, whose float32 products may round by a
        # row's place in it.
        fields["batch_size"] = batch_size
    if sparse:  # another layout of the shards: a dense folder is never resumed as a sparse one, nor back
        fields["sparse"] = True
    key = run_key(fields)
    settings = {"method": method, "parameters": parameters, "model": fingerprint, "targets": targets,
                "n_samples": n_samples, "shard_size": shard_size, "batch_size": batch_size,
                "shard_format": shard_format, "device_type": where.device.type, "sparse": sparse}
    suffix = "." + shard_format
    shards = plan_shards(n_samples, shard_size)

    with _one_writer(where, out_dir):
        barrier(where)
        # Every rank verifies a slice of the shards left by earlier runs (their files, their key, the content
        # of their input samples); then the shards still to do are dealt round-robin, so a resumed run is
        # balanced too. On a fresh folder rank r gets shards r, r + W, ...
        mine = shards[where.rank::where.world_size]
        verdicts = {shard.index: check_shard(out_dir, shard, suffix, key) for shard in mine}
        kept_here = [shard for shard in mine if verdicts[shard.index].state == "kept"]
        digests = content_digests(dataset, loader_settings, collate, kept_here, batch_size)
        for shard in kept_here:
            receipt = verdicts[shard.index].receipt or {}
            if digests[shard.index] != receipt.get("content_sha256"):
                verdicts[shard.index] = Verdict("foreign", verdicts[shard.index].receipt, ("content",))
        verdicts = dict(sorted(item for part in gather(where, list(verdicts.items())) for item in part))
        foreign = [index for index, verdict in verdicts.items() if verdict.state == "foreign"]
        if foreign:
            changed = sorted({name for index in foreign for name in verdicts[index].changed})
            what = (f"{str(out_dir)!r} holds results of a run with other settings: {describe_changes(changed)} "
                    f"changed ({len(foreign)} of {len(shards)} shards, e.g. {shards[foreign[0]].name})")
            if not overwrite:
                raise ValueError(f"out_dir: {what}; nothing was reused. Pass overwrite=True (sc-neurocore "
                                 "explain-dataset --overwrite) to recompute them, or choose another folder")
            if where.rank == 0:
                logger.warning("explain_dataset: recomputing %d shards: %s (overwrite=True)", len(foreign), what)
        kept = [verdict.receipt for verdict in verdicts.values() if verdict.state == "kept" and verdict.receipt]
        redone = sum(verdict.state in ("corrupt", "partial") for verdict in verdicts.values())
        todo = [shards[index] for index, verdict in verdicts.items()
                if verdict.state != "kept"][where.rank::where.world_size]
        run_id = from_rank0(where, uuid.uuid4().hex)
        barrier(where)  # nobody writes before every leftover has been checked
        if where.rank == 0:  # a manifest means "complete": take it down until this run completes
            with contextlib.suppress(FileNotFoundError):
                (out_dir / MANIFEST).unlink()
        started = time.perf_counter()

        written = _explain_shards(where, todo, dataset, loader_settings, collate, out_dir, suffix, key, run_id,
                                  spiking_model, method, explainer, targets, layer, batch_size, progress, sparse)
        barrier(where)
        seconds = time.perf_counter() - started
        written = sorted((r for part in gather(where, written) for r in part), key=lambda r: r["shard"])
        receipts = sorted(kept + written, key=lambda r: r["shard"])
        explained_samples = sum(r["stop"] - r["start"] for r in written)
        summary = DatasetSummary(
            n_samples=n_samples, n_shards=len(shards), explained_samples=explained_samples,
            explained_shards=len(written), skipped_shards=len(kept), redone_shards=redone,
            world_size=where.world_size, seconds=seconds,
            samples_per_second=explained_samples / seconds if seconds > 0 else 0.0, manifest=out_dir / MANIFEST)
        if where.rank == 0:
            if [r["shard"] for r in receipts] != [s.index for s in shards]:
                raise RuntimeError("explain_dataset: the ranks did not report every shard exactly once; this is a bug")
            check_folder_is_ours(out_dir, receipts, key["run_key"], run_id, {r["shard"] for r in written})
            content = ContentDigest.combine([r["content_sha256"] for r in receipts])
            write_manifest(out_dir, settings, key, receipts, summary, metadata, content)
            if progress:
                print(summary.describe(), flush=True)
        barrier(where)  # when any rank returns, the manifest exists
    return summary


def _explain_shards(where: Rank, todo: list[Shard], dataset: Dataset, loader_settings: dict, collate, out_dir: Path,
                    suffix: str, key: dict, run_id: str, spiking_model, method: str, explainer: Any, targets: Any,
                    layer: str, batch_size: int, progress: bool, sparse: bool) -> list[dict]:
    """Explain the shards ``todo`` batch by batch; each shard is written as soon as its last batch is done."""
    from tqdm.auto import tqdm

    # Batches are cut inside each shard, so a batch never straddles two shards and the same sample always
    # lands in the same batch, whatever the number of ranks.
    plan = [(shard, range(start, min(start + batch_size, shard.stop)))
            for shard in todo for start in range(shard.start, shard.stop, batch_size)]
    settings = {key: value for key, value in loader_settings.items() if value is not None}
    settings["collate_fn"] = collate
    settings.setdefault("pin_memory", where.device.type == "cuda")  # lets the copies to the GPU overlap
    loader = DataLoader(dataset, batch_sampler=[list(indices) for _, indices in plan], **settings)
    # One line per process of this node: on a cluster, global ranks would push bars off the screen.
    bar = tqdm(total=sum(s.stop - s.start for s in todo), desc=f"rank {where.rank}", unit="sample",
               position=int(os.environ.get("LOCAL_RANK", where.rank)), disable=not progress, file=sys.stderr,
               dynamic_ncols=True)
    written: list[dict] = []
    pending: list[dict[str, Tensor]] = []
    content = ContentDigest()
    try:
        for (shard, indices), batch in zip(plan, loader, strict=True):
            spikes, labels = split_batch(batch)
            content.update(spikes, labels)
            pending.append(_explain_batch(spikes, labels, indices, where.device, spiking_model, method, explainer,
                                          targets, layer, sparse))
            bar.update(len(indices))
            if indices.stop == shard.stop:
                arrays = {name: torch.cat([part[name] for part in pending]) for name in pending[0]}
                written.append(write_shard(out_dir, shard, suffix, arrays, key, run_id, content.hexdigest(),
                                           where.rank))
                pending, content = [], ContentDigest()
    finally:
        bar.close()
    return written


def _explain_batch(spikes: Tensor, labels: Tensor | None, indices: range, device: torch.device, spiking_model,
                   method: str, explainer: Any, targets: Any, layer: str, sparse: bool = False) -> dict[str, Tensor]:
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
    if method == "attribution" and sparse:
        result = explainer.attribute(spikes, spiking_model, output_neuron=chosen, sparse=True)
        arrays = sparse_arrays(result.values(), result.coordinates()[:, 1:], result.spike_counts(), spikes.shape)
    elif method == "attribution":
        arrays = {"scores": explainer.attribute(spikes, spiking_model, output_neuron=chosen).attribution_map()}
    elif method == "saliency":
        scores = explainer.explain(spikes, output_neuron=chosen).saliency_map()
        if sparse:  # the same entries as a sparse attribution: the input's non-zero ones, in (t, neuron) order
            at = (spikes != 0).nonzero()
            arrays = sparse_arrays(scores[at[:, 0], at[:, 1], at[:, 2]], at[:, 1:],
                                   torch.bincount(at[:, 0], minlength=spikes.shape[0]), spikes.shape)
        else:
            arrays = {"scores": scores}
    else:
        arrays = {"scores": explainer.explain(spikes, output_neuron=chosen, layer=layer).importance_map()}
    arrays |= {"targets": chosen, "outputs": outputs, "sample_index": torch.arange(indices.start, indices.stop)}
    if labels is not None:
        arrays["labels"] = labels.to(torch.long)
    return {name: tensor.detach().cpu().contiguous() for name, tensor in arrays.items()}
