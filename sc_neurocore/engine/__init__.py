"""The perturbation engine: plans as index tensors, chunking under a memory budget, three executors and the
cost model that picks one."""

from __future__ import annotations

import itertools
import logging
import os
from typing import Any, Literal, NamedTuple, overload

import torch
from torch import Tensor

from ..inputs import as_choice
from ..protocol import INPUT_LAYER, SpikingModel
from .batched import run_plan
from .budget import BudgetWarning, bytes_per_row, default_max_memory, workable_budget
from .cost import cheapest
from .event import select
from .event_tables import MEMBRANE_READOUTS
from .incremental import run_incremental
from .plans import Silencing, SpikeRemovals, remove_each_spike, silence_each_neuron, silence_prefixes
from .recorded import compiled_stack, recorded
from .suffix import SUFFIX_NOTE, StateLayoutError, run_suffix, suffix_reason

logger = logging.getLogger(__name__)

__all__ = [
    "ENGINES",
    "BudgetWarning",
    "Execution",
    "Silencing",
    "SpikeRemovals",
    "execute",
    "remove_each_spike",
    "run_incremental",
    "run_plan",
    "silence_each_neuron",
    "silence_prefixes",
]


#: Plans below this many multiply-adds (rows x T x sum of n_in x n_out) take the batched path without asking
#: the cost model. 0: the cost model decides every plan (it replaced the old single threshold, 2e8, which
#: kept R-seed-sized plans from ever reaching the compiled executors).
SMALL_PLAN_MACS = 0


class Execution(NamedTuple):
    """Which executor ran a call of `execute`, and why.

    Attributes:
        engine: ``"event"``, ``"incremental"`` or ``"batched"``.
        reason: why that one (the cost model's estimates, a forced choice, or what ruled the others out).
        tie_mask: ``(P,)`` bool, the rows whose outputs sit within rounding of a spike threshold, where
            executors (and batch sizes) may legitimately differ; ``None`` when the executor reports none (the
            generic path is the model's own forward; the incremental engine replays near-ties exactly).
        kernels: ``"numba"`` or ``"python"`` for the event engine's inner loop, else ``None``.
        recomputed: ``(P,)`` bool, the event engine's rows decided inside even its tight bound and so replayed
            from their first such layer (in the naive loop's call shapes where the stack's ops are the model's
            own, else by the model's batched forward); a subset of ``tie_mask``. ``None`` for the others.
    """

    engine: str
    reason: str
    tie_mask: Tensor | None = None
    kernels: str | None = None
    recomputed: Tensor | None = None


ENGINES = ("auto", "event", "incremental", "batched")
#: Environment variable naming the executor ``engine="auto"`` prefers wherever it can run (tests and
#: benchmarks use it; unset: the cost model decides).
ENGINE_ENV = "SC_NEUROCORE_ENGINE"
#: How much slower (estimated) the event engine may be than the cheapest executor and still be the one
#: ``engine="auto"`` runs: its decisions rest on a rigorous rounding bound, where the incremental executor's
#: near-tie margin is measured and the batched path relies on the model's ops being batch-invariant.
EXACT_PREFERENCE = 1.5
#: Why ``engine="auto"`` then runs the event engine.
EXACT_NOTE = (f"the event engine, within {EXACT_PREFERENCE}x of the cheapest: its spike decisions rest on a rigorous "
              "rounding bound (the others' on a measured margin or on batch invariance)")
#: Why ``engine="auto"`` runs a membrane readout on the event engine even where another executor is cheaper.
MEMBRANE_NOTE = ("the event engine, the one executor that gives a membrane readout the one-copy loop's bits (it "
                 "replays the output layer in that loop's call shapes; the others' products may round it by batch "
                 "shape)")


@overload
def execute(model: SpikingModel, spikes: Tensor, plan: SpikeRemovals | Silencing | None, *,
            max_memory: int | None = ..., n_outputs: int | None = ..., progress: bool = ..., engine: str = ...,
            return_info: Literal[False] = ..., columns: Tensor | None = ...) -> Tensor: ...


@overload
def execute(model: SpikingModel, spikes: Tensor, plan: SpikeRemovals | Silencing | None, *,
            max_memory: int | None = ..., n_outputs: int | None = ..., progress: bool = ..., engine: str = ...,
            return_info: Literal[True], columns: Tensor | None = ...) -> tuple[Tensor, Execution]: ...


def execute(model: SpikingModel, spikes: Tensor, plan: SpikeRemovals | Silencing | None, *,
            max_memory: int | None = None, n_outputs: int | None = None, progress: bool = False,
            engine: str = "auto", return_info: bool = False,
            columns: Tensor | None = None) -> Tensor | tuple[Tensor, Execution]:
    """Outputs ``(P, C)`` of every row of ``plan`` (``None``: the unperturbed samples), by the best executor
    available for ``model``.

    Three executors give the same outputs (outside a reported tie mask):

    * ``"batched"`` (`run_plan`): the model's own forward on perturbed copies; any model, any device.
      Under ``engine="auto"`` on the CPU, spike removals through a traced `sc_neurocore.graph.ModelGraph` run as a
      suffix replay (`sc_neurocore.engine.suffix.run_suffix`): each row only from its removed spike's step,
      with the graph's own per-step ops, each op only on the rows whose input there differs from the
      unperturbed sample's (``engine="batched"`` forced stays the full forward).
    * ``"incremental"`` (`run_incremental`): suffix replays of a compiled stack.
    * ``"event"`` (`sc_neurocore.engine.event.run_events`): spike-change events through a compiled
      LIF stack, its inner loop compiled by numba (the ``fast`` extra). Where the stack's membranes match
      the model's own (`sc_neurocore.engine.recorded.Recording.same_ops`) every row, tie rows included,
      is the naive loop's bit for bit (the rows inside its tight bound are replayed in the naive loop's
      call shapes, `Execution.recomputed`), and membrane readouts run too (the output layer replayed).

    The compiled executors run only when the model compiles (`sc_neurocore.engine.compile.compile_model`)
    and the compiled form reproduces the model's forward bit for bit (checked once per model and input
    shape; `sc_neurocore.engine.recorded`). ``engine="auto"`` picks by the cost model of
    `sc_neurocore.engine.cost` on the CPU (the environment variable ``SC_NEUROCORE_ENGINE`` names an
    executor to prefer wherever it can run); plans below `SMALL_PLAN_MACS` and every plan on a GPU
    (where one large batched forward beat the replay's small kernels, ``docs/benchmarks-gpu.md``) take the
    batched path. The baseline call (``plan=None``) of a compiled model records its forward, and the next
    call on the same spikes tensor starts from that recording: one forward per explainer call.

    Args:
        model: any `SpikingModel`.
        spikes: the samples ``(B, T, N)`` the plan refers to.
        plan: the perturbations, or ``None`` for the baseline.
        max_memory: peak bytes per chunk (``None``: automatic, see `sc_neurocore.engine.budget`).
        n_outputs: the expected ``C``, if known.
        progress: show a progress bar over rows (the batched and incremental executors).
        engine: ``"auto"``, or the executor to run (a ``ValueError`` says why if it cannot).
        return_info: also return an `Execution`.
        columns: ``(P,)`` integer tensor, if the caller reads one output column per row (a target class):
            ``outputs[p, columns[p]]`` is computed and every other entry is NaN. The event engine then scans
            only that output neuron of each row, and its tie mask covers only what that column depends on.

    Returns:
        ``(P, C)``, row ``p`` the outputs of plan row ``p``; with ``return_info``, ``(outputs, Execution)``.

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> net = LIFNetwork([torch.randn(8, 4), torch.randn(4, 2)])
        >>> spikes = (torch.rand(1, 20, 8) < 0.3).float()
        >>> execute(net, spikes, remove_each_spike(spikes)).shape[1]
        2
        >>> execute(net, spikes, remove_each_spike(spikes), engine="batched", return_info=True)[1].engine
        'batched'
    """
    choice = as_choice(engine, ENGINES, "engine")
    preferred = None
    if choice == "auto" and os.environ.get(ENGINE_ENV, "").strip():
        preferred = as_choice(os.environ[ENGINE_ENV].strip(), ENGINES, ENGINE_ENV)
    columns = _checked_columns(columns, plan)
    outputs, info = _execute(model, spikes, plan, max_memory, n_outputs, progress, choice, preferred, columns)
    if columns is not None:
        from .event import only_columns

        if outputs.shape[1:] and bool((columns >= outputs.shape[1]).any()):
            raise ValueError(f"columns: expected output columns below the model's {outputs.shape[1]} outputs, got "
                             f"up to {int(columns.max())}")
        outputs = only_columns(outputs, columns.to(outputs.device))
    return (outputs, info) if return_info else outputs


def _checked_columns(columns: Any, plan: SpikeRemovals | Silencing | None) -> Tensor | None:
    """``columns`` as a CPU LongTensor of one entry per plan row, or a `TypeError` / `ValueError` naming it."""
    if columns is None:
        return None
    if plan is None:
        raise ValueError("columns: only a plan's rows have columns to pick; pass columns=None for the baseline")
    if not isinstance(columns, Tensor) or columns.dtype.is_floating_point or columns.dtype == torch.bool or \
            columns.is_complex():
        raise TypeError(f"columns: expected an integer tensor of one output column per plan row, got "
                        f"{type(columns).__name__}{'' if not isinstance(columns, Tensor) else ' ' + str(columns.dtype)}")
    if columns.shape != (len(plan),):
        raise ValueError(f"columns: expected shape ({len(plan)},), one column per plan row, got {tuple(columns.shape)}")
    if len(columns) and int(columns.min()) < 0:
        raise ValueError(f"columns: expected output columns >= 0, got {int(columns.min())}")
    return columns.to(device="cpu", dtype=torch.long)


def _execute(model, spikes, plan, max_memory, n_outputs, progress, choice,
             preferred: str | None = None, columns: Tensor | None = None) -> tuple[Tensor, Execution]:
    budget = default_max_memory(spikes.device) if max_memory is None else max_memory

    def generic(reason: str) -> tuple[Tensor, Execution]:
        if choice == "auto" and not progress and spikes.device.type == "cpu" and suffix_reason(model, plan) is None:
            try:
                outputs = run_suffix(model, spikes, plan, max_memory=max_memory, n_outputs=n_outputs)
                return outputs, Execution("batched", f"{reason}; {SUFFIX_NOTE}")
            except StateLayoutError as error:
                logger.info("%s; running the model's full forward", error)
            except torch.cuda.OutOfMemoryError:
                logger.warning("CUDA out of memory in the suffix replay; running the model's full forward")
                torch.cuda.empty_cache()
        outputs = run_plan(model, spikes, plan, max_memory=max_memory, n_outputs=n_outputs, progress=progress)
        return outputs, Execution("batched", reason)

    if choice == "batched":
        return generic("forced (engine='batched')")
    refused = _refusal(model, spikes, plan, choice)
    if refused is not None:
        if choice != "auto":
            raise ValueError(f"engine: {choice!r} cannot run this call: {refused}; pass engine='auto' or 'batched'")
        return generic(refused)
    stack = compiled_stack(model)
    if stack is None or stack.layers[0].weight.device != spikes.device or \
            (n_outputs is not None and n_outputs != stack.n_outputs):
        return _refuse(choice, "the model does not compile to a feed-forward stack", generic)
    if columns is not None and len(columns) and int(columns.max()) >= stack.n_outputs:
        raise ValueError(f"columns: expected output columns below the model's {stack.n_outputs} outputs, got up to "
                         f"{int(columns.max())}")
    fits = _fits_one_chunk(model, spikes, budget)
    if plan is None and not fits:
        return generic("too many samples to record at once: the model's own forward, in chunks")
    try:
        recording = recorded(model, spikes, stack, fits, max_memory)
    except torch.cuda.OutOfMemoryError:
        logger.warning("CUDA out of memory in the compiled check; running the generic batched path")
        torch.cuda.empty_cache()
        return _refuse(choice, "CUDA out of memory in the compiled check", generic)
    if recording is None:
        return _refuse(choice, "the compiled stack does not reproduce the model's forward bit for bit", generic)
    if plan is None:
        if recording.outputs is None:
            return generic("too many samples to record at once: the model's own forward, in chunks")
        return recording.outputs, Execution("incremental", "the compiled stack's recorded forward (verified)")
    options = _options(model, spikes, plan, stack, max_memory, recording.same_ops, columns is not None)
    if choice != "auto":
        if options.get(choice) is None:
            raise ValueError(f"engine: {choice!r} cannot run this call: {options.get(choice + ' refused')}; "
                             "pass engine='auto' or 'batched'")
        name, reason = choice, f"forced (engine={choice!r})"
    elif preferred not in (None, "auto") and options.get(preferred) is not None:
        name, reason = preferred, f"preferred by {ENGINE_ENV}={preferred}"
    else:
        estimates = {key: value for key, value in options.items() if isinstance(value, float)}
        if "event" in estimates and len(estimates) > 1 and max_memory is not None and \
                max_memory < _event_minimum(stack, spikes):
            del estimates["event"]  # below its workable minimum (forced, it would raise the budget): another fits
        name, reason = cheapest(estimates)
        if name != "event" and "event" in estimates:
            if stack.readout in MEMBRANE_READOUTS:
                # A membrane readout is a float: the other executors' products round it by their batch shape
                # (1-2 ulps from the one-copy loop where the framework's products are not batch-invariant), unmarked.
                name, reason = "event", f"{reason}; {MEMBRANE_NOTE}"
            elif estimates["event"] <= EXACT_PREFERENCE * estimates[name]:
                name, reason = "event", f"{reason}; {EXACT_NOTE}"

    if name == "batched":
        return generic(reason)
    try:
        if name == "event":
            from .event import run_events
            from .event_kernels import numba_available

            def recompute(rows: Tensor) -> Tensor:
                return run_plan(model, spikes, select(plan, rows), max_memory=max_memory, n_outputs=n_outputs)

            replayed = torch.zeros(len(plan), dtype=torch.bool)
            outputs, tie = run_events(stack, spikes, plan, baseline=recording.baseline,
                                      max_memory=_event_budget(stack, spikes, max_memory), recompute=recompute,
                                      tight=recording.same_ops, recomputed=replayed, progress=progress,
                                      columns=columns)
            return outputs, Execution("event", reason, tie, "numba" if numba_available() else "python", replayed)
        outputs = run_incremental(stack, spikes, plan, max_memory=max_memory, progress=progress,
                                  baseline=recording.baseline)
        return outputs, Execution("incremental", reason)
    except torch.cuda.OutOfMemoryError:
        # The incremental engine halves its replay chunks itself; what still does not fit (its baseline
        # cache, the compiled check) falls back to the generic path, which needs less and halves too.
        logger.warning("CUDA out of memory in the %s engine; running the generic batched path", name)
        torch.cuda.empty_cache()
        return generic(f"CUDA out of memory in the {name} engine")


def _event_minimum(stack, spikes: Tensor) -> int:
    """The event engine's workable minimum: two samples' recorded forward and tables (it gives half its budget
    to a chunk of samples)."""
    from .event import minimum_memory as event_minimum_memory

    return 2 * event_minimum_memory(stack, spikes.shape[1])


def _event_budget(stack, spikes: Tensor, max_memory: int | None) -> int | None:
    """``max_memory``, raised to `_event_minimum` with a `BudgetWarning` when below it."""
    if max_memory is None:
        return None
    return workable_budget(max_memory, _event_minimum(stack, spikes), "the event engine (one sample's tables per chunk)")


def _refuse(choice: str, reason: str, generic):
    if choice != "auto":
        raise ValueError(f"engine: {choice!r} cannot run this call: {reason}; pass engine='auto' or 'batched'")
    return generic(reason)


def _refusal(model: SpikingModel, spikes: Tensor, plan, choice: str) -> str | None:
    """Why no compiled executor is tried (``None``: try them)."""
    if plan is not None and len(plan) == 0:
        return "an empty plan"
    if choice == "auto" and spikes.device.type != "cpu":
        return "on a GPU one batched forward beats the compiled executors' small kernels"
    if choice == "auto" and plan is not None and _plan_macs(model, spikes, plan) < SMALL_PLAN_MACS and \
            os.environ.get(ENGINE_ENV, "").strip() in ("", "auto", "batched"):
        return "a small plan (below SMALL_PLAN_MACS multiply-adds)"
    return None


def _options(model, spikes: Tensor, plan, stack, max_memory: int | None, same_ops: bool = False,
             one_column: bool = False) -> dict:
    """Each executor's estimated seconds, or why it cannot run (``'<name> refused'``)."""
    from .cost import Shape, batched_seconds, event_seconds, incremental_seconds
    from .event import MEMBRANE_READOUTS, unsupported
    from .event_kernels import numba_available

    events = 1.0
    if isinstance(plan, Silencing) and plan.layer == INPUT_LAYER:  # a silenced input neuron: its spikes
        events = float((spikes != 0).sum()) / max(1, spikes.shape[0] * spikes.shape[2])
    membrane = stack.readout in MEMBRANE_READOUTS
    shape = Shape(spikes.shape[0], len(plan), spikes.shape[1], spikes.shape[2], tuple(stack.sizes), events,
                  one_column and not membrane, membrane)
    options: dict = {"batched": batched_seconds(shape)}
    if _many_inputs_per_row(plan):
        options["incremental refused"] = "rows silence many input neurons (a full product per step)"
    else:
        options["incremental"] = incremental_seconds(shape)
    why = unsupported(stack, tight=same_ops) if spikes.device.type == "cpu" else "it runs on the CPU only"
    if why is None and stack.readout in MEMBRANE_READOUTS and isinstance(plan, Silencing) and \
            plan.layer == stack.names[-1]:
        why = "silenced output neurons of a membrane readout"
    if why is None and _many_inputs_per_row(plan):
        why = "rows silence many input neurons (every one of their spikes an event)"
    if why is None:
        options["event"] = event_seconds(shape, compiled=numba_available())
    else:
        options["event refused"] = why
    return options


def _plan_macs(model: SpikingModel, spikes: Tensor, plan: SpikeRemovals | Silencing) -> int:
    """Multiply-adds of running every row of ``plan`` as a full forward pass through the model's layers."""
    sizes = [spikes.shape[2], *model.neuron_layers.values()]
    return len(plan) * spikes.shape[1] * sum(a * b for a, b in itertools.pairwise(sizes))


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
