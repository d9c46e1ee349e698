"""What the perturbation explainers share: how they take a model, a budget and inputs.

`TemporalSaliency` and `CausalImportance`
both run the model on many perturbed copies of the input. They accept the same ``run_fn`` forms and
options, evaluate the unperturbed baseline once per sample, and hand their plans to the engine, which
runs them in as few forward passes as ``max_memory`` allows.
"""

from __future__ import annotations

import itertools
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ..adapters import as_spiking_model
from ..engine import execute
from ..engine.budget import check_max_memory
from ..engine.plans import Silencing, SpikeRemovals
from ..inputs import SpikeBatch, as_spikes, check_same_device
from ..protocol import SpikingModel


class Prepared(NamedTuple):
    """A validated call: the spikes, the model seen through the protocol and its baseline outputs ``(B, C)``."""

    batch: SpikeBatch
    model: SpikingModel
    baseline: Tensor


class PerturbationExplainer:
    """Base of the explainers that run the model on perturbed copies of the input.

    Args:
        run_fn: a `SpikingModel` (an adapter, an ``LIFNetwork``), an
            ``nn.Module`` or a batched callable ``(B, T, N) -> (B, C)``, or the tutorial's unbatched
            callable ``(T, N) -> (C,)``.
        batched: whether a plain callable is batched. ``None``: modules are batched, other callables are
            not. Never guessed by trial calls.
        max_memory: peak bytes of the perturbed copies and activations in one forward pass; ``None`` picks
            512 MiB on CPU and half the free memory on CUDA.
        progress: show a progress bar (tqdm) while the perturbations run.
    """

    def __init__(self, run_fn: Any, *, batched: bool | None = None, max_memory: int | None = None,
                 progress: bool = False) -> None:
        if not callable(run_fn) and not isinstance(run_fn, SpikingModel):
            raise TypeError(f"run_fn: expected a SpikingModel, an nn.Module or a callable, got "
                            f"{type(run_fn).__name__}")
        if batched is not None and not isinstance(batched, bool):
            raise TypeError(f"batched: expected True, False or None, got {batched!r}")
        self.run_fn = run_fn
        self.batched = batched
        self.max_memory = check_max_memory(max_memory)
        self.progress = bool(progress)

    def _prepare(self, input_spikes: Any) -> Prepared:
        batch = as_spikes(input_spikes)
        model = as_spiking_model(self.run_fn, batched=self.batched, n_inputs=batch.spikes.shape[2],
                                 numpy_io=batch.numpy)
        _check_inputs_fit(model, batch.spikes)
        with torch.inference_mode():
            baseline = execute(model, batch.spikes, None, max_memory=self.max_memory)
        return Prepared(batch, model, baseline)

    def _run(self, prepared: Prepared, plan: SpikeRemovals | Silencing) -> Tensor:
        """Outputs ``(P, C)`` of every row of ``plan``."""
        with torch.inference_mode():
            return execute(prepared.model, prepared.batch.spikes, plan, max_memory=self.max_memory,
                           n_outputs=prepared.baseline.shape[1], progress=self.progress)


def _check_inputs_fit(model: SpikingModel, spikes: Tensor) -> None:
    expected = model.n_inputs
    if expected != spikes.shape[2]:
        raise ValueError(f"input_spikes: the model takes {expected} input neurons, got {spikes.shape[2]}")
    # The module that holds the weights: the model itself, or the nn.Module a plain-callable wrapper calls.
    module = next((m for m in (model, getattr(model, "fn", None), getattr(model, "module", None))
                   if isinstance(m, nn.Module)), None)
    tensor = None if module is None else next(itertools.chain(module.parameters(), module.buffers()), None)
    check_same_device(spikes, None if tensor is None else tensor.device, "input_spikes")


def target_column(outputs: Tensor, targets: Tensor) -> Tensor:
    """``outputs[p, targets[p]]`` for every row: ``(P,)``."""
    return outputs.gather(1, targets[:, None])[:, 0]
