"""The batched executor: run a perturbation plan as few forward passes as the memory budget allows.

Perturbed copies are materialised one chunk at a time from the plan's index tensors (a gather plus an
in-place zeroing), each chunk is one call of the model, and the outputs land in one preallocated
``(P, C)`` tensor. There is no Python loop over spikes, neurons or samples; the only loop is over chunks.
On CUDA out-of-memory the chunk is halved and retried (logged); a run never returns partial results.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from ..protocol import INPUT_LAYER, SpikingModel
from .budget import bytes_per_row, default_max_memory, rows_per_chunk, workable_rows
from .cost import Shape, batched_seconds
from .plans import Silencing, SpikeRemovals

logger = logging.getLogger(__name__)

Plan = SpikeRemovals | Silencing


def materialise(spikes: Tensor, plan: Plan | None) -> tuple[Tensor, Mapping[str, Tensor] | None]:
    """The perturbed inputs of ``plan``'s rows and the silencing masks to pass to the model.

    ``plan=None`` means the unperturbed samples themselves (the baseline).
    """
    if plan is None:
        return spikes, None
    rows = spikes[plan.sample]  # advanced indexing copies: the caller's spikes are never touched
    if isinstance(plan, SpikeRemovals):
        rows[torch.arange(len(plan), device=rows.device), plan.timestep, plan.neuron] = 0
        return rows, None
    masks = plan.masks()
    if plan.layer == INPUT_LAYER:
        return rows.masked_fill_(masks[:, None, :], 0), None
    return rows, {plan.layer: masks}


def checked_outputs(outputs, n_rows: int, n_outputs: int | None, device: torch.device,
                    name: str = "run_fn") -> Tensor:
    """A model's outputs as a finite ``(n_rows, C)`` tensor, or a ``ValueError`` naming ``name``."""
    if isinstance(outputs, np.ndarray):
        if outputs.dtype.kind not in "biuf":
            raise TypeError(f"{name}: expected numeric outputs, got dtype {outputs.dtype}")
        outputs = torch.from_numpy(np.ascontiguousarray(outputs))
    if not isinstance(outputs, Tensor):
        raise TypeError(f"{name}: expected it to return a tensor or numpy array of shape (B, C), "
                        f"got {type(outputs).__name__}")
    if outputs.ndim != 2 or outputs.shape[0] != n_rows or (n_outputs is not None and outputs.shape[1] != n_outputs):
        want = f"({n_rows}, {n_outputs if n_outputs is not None else 'C'})"
        raise ValueError(f"{name}: expected outputs of shape {want} for {n_rows} input rows, "
                         f"got {tuple(outputs.shape)}")
    if outputs.is_complex() or not (outputs.dtype.is_floating_point or outputs.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"{name}: expected real numeric outputs, got dtype {outputs.dtype}")
    outputs = outputs.detach().to(device)
    if not bool(torch.isfinite(outputs).all()):
        raise ValueError(f"{name}: returned a non-finite value (NaN or Inf)")
    return outputs


def layer_sizes(model: SpikingModel) -> list[int]:
    return list(model.neuron_layers.values())


def run_plan(model: SpikingModel, spikes: Tensor, plan: Plan | None, *, max_memory: int | None = None,
             n_outputs: int | None = None, progress: bool = False, name: str = "run_fn") -> Tensor:
    """Outputs ``(P, C)`` of every row of ``plan`` (``plan=None``: the ``B`` unperturbed samples).

    Args:
        model: any `SpikingModel`.
        spikes: the samples ``(B, T, N)`` the plan refers to.
        plan: the perturbations, or ``None`` for the baseline.
        max_memory: peak bytes for one chunk's materialised inputs and activations (``None``: automatic).
        n_outputs: the expected ``C`` (checked on every chunk), if known.
        progress: show a progress bar over rows.
        name: the argument name used in error messages about the model.
    """
    n_rows = spikes.shape[0] if plan is None else len(plan)
    _, n_steps, n_inputs = spikes.shape
    budget = default_max_memory(spikes.device) if max_memory is None else max_memory
    row_bytes = bytes_per_row(n_steps, n_inputs, layer_sizes(model), spikes.element_size())
    chunk = rows_per_chunk(budget, row_bytes, max(n_rows, 1), minimum_rows(model, spikes, n_rows))
    # A model that loops over rows itself (an unbatched callable) gains nothing from big chunks; small
    # ones keep the progress bar moving.
    chunk = min(chunk, getattr(model, "max_rows_per_call", None) or chunk)
    outputs: Tensor | None = None
    bar = _progress_bar(n_rows, progress)
    start = 0
    try:
        while start < n_rows:
            stop = min(start + chunk, n_rows)
            try:
                rows, silence = materialise(spikes, None if plan is None else plan.rows(start, stop))
                if plan is None:
                    rows = rows[start:stop]
                result = model.run(rows, silence=silence) if silence else model.run(rows)
                result = checked_outputs(result, stop - start, n_outputs, spikes.device, name)
            except torch.cuda.OutOfMemoryError:
                if chunk == 1:
                    raise
                chunk = max(1, chunk // 2)
                logger.warning("CUDA out of memory: halving the perturbation chunk to %d rows and retrying", chunk)
                torch.cuda.empty_cache()
                continue
            if outputs is None:
                n_outputs = result.shape[1]
                outputs = torch.empty((n_rows, n_outputs), dtype=result.dtype, device=spikes.device)
            outputs[start:stop] = result
            bar.update(stop - start)
            start = stop
    finally:
        bar.close()
    if outputs is None:  # an empty plan: no rows to run
        outputs = torch.empty((0, n_outputs or 0), device=spikes.device)
    return outputs


def minimum_rows(model: SpikingModel, spikes: Tensor, n_rows: int) -> int:
    """The workable minimum of rows per forward pass (see `sc_neurocore.engine.budget`): one forward's
    per-step dispatch is paid per chunk, its multiply-adds and neuron updates per row (the cost model's
    `batched_seconds`). A model without known layers counts as one input-sized layer."""
    if getattr(model, "max_rows_per_call", None):  # a model looping over rows itself: no per-chunk saving
        return 1
    _, n_steps, n_inputs = spikes.shape
    shape = Shape(1, max(n_rows, 1), n_steps, n_inputs, tuple(layer_sizes(model)) or (n_inputs,))
    one, two = batched_seconds(shape, rows=1), batched_seconds(shape, rows=2)
    return workable_rows(chunk_seconds=2 * one - two, row_seconds=two - one, n_rows=max(n_rows, 1))


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="perturbation", leave=False)
