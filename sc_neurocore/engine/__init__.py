"""The perturbation engine: plans as index tensors, chunking under a memory budget, executors."""

from __future__ import annotations

from torch import Tensor

from ..protocol import SpikingModel
from .batched import run_plan
from .plans import Silencing, SpikeRemovals, remove_each_spike, silence_each_neuron, silence_prefixes

__all__ = ["execute", "run_plan", "SpikeRemovals", "Silencing", "remove_each_spike", "silence_each_neuron",
           "silence_prefixes"]


def execute(model: SpikingModel, spikes: Tensor, plan: SpikeRemovals | Silencing | None, *,
            max_memory: int | None = None, n_outputs: int | None = None, progress: bool = False) -> Tensor:
    """Outputs ``(P, C)`` of every row of ``plan`` (``None``: the unperturbed samples), by the best executor
    available for ``model``."""
    return run_plan(model, spikes, plan, max_memory=max_memory, n_outputs=n_outputs, progress=progress)
