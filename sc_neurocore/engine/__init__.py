"""The perturbation engine: plans as index tensors, chunking under a memory budget, executors."""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from ..protocol import INPUT_LAYER, SpikingModel
from .batched import run_plan
from .budget import bytes_per_row, default_max_memory
from .incremental import minimum_memory, run_incremental
from .plans import Silencing, SpikeRemovals, remove_each_spike, silence_each_neuron, silence_prefixes

logger = logging.getLogger(__name__)

__all__ = ["execute", "run_plan", "run_incremental", "SpikeRemovals", "Silencing", "remove_each_spike", "silence_each_neuron",
           "silence_prefixes"]


#: Below this many multiply-adds in the plan's forward passes (rows x T x sum of n_in x n_out), the generic
#: batched path takes a few milliseconds on one core: less than the incremental executor's fixed cost (its
#: compile check, baseline cache and per-step replay loop). Measured on the shipped 8x8 digits network,
#: saliency of one digit (555 removals, 3.3e7 multiply-adds): generic 4 ms, incremental 12 ms; on the
#: 28x28 one (3548 removals, 2.3e9): generic 262 ms, incremental 14 ms.
SMALL_PLAN_MACS = 2 * 10**8


def execute(model: SpikingModel, spikes: Tensor, plan: SpikeRemovals | Silencing | None, *,
            max_memory: int | None = None, n_outputs: int | None = None, progress: bool = False) -> Tensor:
    """Outputs ``(P, C)`` of every row of ``plan`` (``None``: the unperturbed samples), by the best executor
    available for ``model``.

    On the CPU, a model that compiles to a feed-forward `Stack`
    (and whose compiled form reproduces its forward bit for bit on ``spikes``) runs through the
    incremental executor. Anything else runs through the generic batched path `run_plan`: the
    unperturbed baseline; a plan small enough (`SMALL_PLAN_MACS`) that its batched forward costs
    less than the incremental executor's fixed overhead; and every plan on a GPU, where the replay's many
    small per-step kernels were 2 to 10 times slower than one large batched forward on an H200
    (``benchmarks/gpu_check.py``, ``docs/benchmarks-gpu.md``; `run_incremental` itself runs on any
    device). Both give the same outputs; both size their chunks from ``max_memory``.

    Args:
        model: any `SpikingModel`.
        spikes: the samples ``(B, T, N)`` the plan refers to.
        plan: the perturbations, or ``None`` for the baseline.
        max_memory: peak bytes per chunk (``None``: automatic, see `sc_neurocore.engine.budget`).
        n_outputs: the expected ``C``, if known.
        progress: show a progress bar over rows.

    Returns:
        ``(P, C)``, row ``p`` the outputs of plan row ``p``.

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> net = LIFNetwork([torch.randn(8, 4), torch.randn(4, 2)])
        >>> spikes = (torch.rand(1, 20, 8) < 0.3).float()
        >>> execute(net, spikes, remove_each_spike(spikes)).shape[1]
        2
    """
    if plan is not None and len(plan) > 0 and spikes.device.type == "cpu" and not _many_inputs_per_row(plan) \
            and _plan_macs(model, spikes, plan) >= SMALL_PLAN_MACS:
        # Imported here: the compilers live with the adapters, which sit beside the engine, not below it.
        from ..adapters.compile import verified

        budget = default_max_memory(spikes.device) if max_memory is None else max_memory
        try:
            # Record the compiled check's forward when all samples' baselines fit in one chunk: the
            # incremental executor then starts from it instead of running the same forward again.
            record = _fits_one_chunk(model, spikes, budget)
            stack, baseline = verified(model, spikes, record=record, max_memory=budget)
            # The baseline cache needs more memory than a plain forward: under a budget too small for it the
            # generic path still runs (a budget is a ceiling, never a reason to fail).
            if stack is not None and (n_outputs is None or n_outputs == stack.n_outputs) and \
                    (max_memory is None or max_memory >= minimum_memory(stack, spikes, plan)):
                outputs = run_incremental(stack, spikes, plan, max_memory=max_memory, progress=progress,
                                          baseline=baseline)
                return outputs
        except torch.cuda.OutOfMemoryError:
            # The incremental engine halves its replay chunks itself; what still does not fit (its baseline
            # cache, the compiled check) falls back to the generic path, which needs less and halves too.
            logger.warning("CUDA out of memory in the incremental engine; running the generic batched path")
            torch.cuda.empty_cache()
    return run_plan(model, spikes, plan, max_memory=max_memory, n_outputs=n_outputs, progress=progress)


def _plan_macs(model: SpikingModel, spikes: Tensor, plan: SpikeRemovals | Silencing) -> int:
    """Multiply-adds of running every row of ``plan`` as a full forward pass through the model's layers."""
    sizes = [spikes.shape[2], *model.neuron_layers.values()]
    return len(plan) * spikes.shape[1] * sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def _fits_one_chunk(model: SpikingModel, spikes: Tensor, budget: int) -> bool:
    """Whether recording every sample's baseline stays well inside the budget (a cheap upper estimate)."""
    sizes = list(model.neuron_layers.values())
    if not sizes:
        return False
    batch, steps, n_inputs = spikes.shape
    return 4 * batch * bytes_per_row(steps, n_inputs, sizes, spikes.element_size()) <= budget


def _many_inputs_per_row(plan: SpikeRemovals | Silencing) -> bool:
    """Rows silencing several input neurons at once (robustness-curve prefixes): their changed current is
    a full input matrix product at every step, which the generic path computes in fewer, larger calls."""
    return isinstance(plan, Silencing) and plan.layer == INPUT_LAYER and bool((plan.stop - plan.start > 1).any())
