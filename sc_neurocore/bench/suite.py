"""The benchmark suite: every contender checked against ours, then timed, side by side in one run.

Each section runs ours and its contenders on the same model and inputs. Before anything is timed, every
contender's numbers are compared with ours (exact methods must agree exactly; a gradient method, which
computes something else, is checked to run on the same network). Then each is run ``runs`` times and the
median wall time is kept, with the peak resident memory the run added (Linux: ``VmHWM`` after resetting
it through ``/proc/self/clear_refs``; "n/a" elsewhere). Ratios are contender time / our time.

All contenders run under the same torch thread setting (the suite sets one thread: on a shared 2-core
machine every contender is faster so, and the comparison stays like for like).
"""

from __future__ import annotations

import ctypes
import functools
import gc
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..dynamics import decay_weights
from ..engine import execute, run_plan
from ..engine.attribution_kernels import linear_attribution, write_floor_seconds
from ..engine.event_kernels import numba_available
from ..engine.plans import remove_each_spike
from ..explain import CausalImportance, SpikeAttributor, TemporalSaliency
from ..explain.attribution import linear_paths
from ..extras import install_hint
from . import contenders
from .paths import paths_section
from .targets import Target, issue_targets
from .workloads import (
    FRAMEWORK_WORKLOADS,
    WORKLOADS,
    FrameworkWorkload,
    Workload,
    framework_network,
    framework_spikes,
    input_spikes,
    lif_network,
    snntorch_network,
)

#: Captum FeatureAblation's ``perturbations_per_eval`` values tried; the fastest is reported.
PERTURBATIONS_PER_EVAL = (64, 256, 1024)


class Settings(NamedTuple):
    """What to run.

    Attributes:
        runs: timed runs per contender (the median is reported).
        scale: workload size factor (1.0: the real workloads; the smoke test shrinks them).
        attribution_samples: samples for the SpikeAttributor-vs-Saliency section.
        attribution_chunk: samples per call in that section (both contenders get the same chunks).
        memory_perturbations: perturbations in the peak-memory section.
        memory_budgets: ``max_memory`` values (bytes) tried there.
        rates: input rates of the time-vs-spikes section (R-MNIST).
        workloads: workload names.
        framework_workloads: names of the one-framework workloads (`FRAMEWORK_WORKLOADS`: exact saliency).
    """

    runs: int = 5
    scale: float = 1.0
    attribution_samples: int = 10_000
    attribution_chunk: int = 1_000
    memory_perturbations: int = 100_000
    memory_budgets: tuple[int, ...] = (64 * 2**20, 256 * 2**20)
    rates: tuple[float, ...] = (0.025, 0.05, 0.1, 0.2)
    workloads: tuple[str, ...] = tuple(WORKLOADS)
    framework_workloads: tuple[str, ...] = tuple(FRAMEWORK_WORKLOADS)


QUICK = Settings(runs=1, scale=0.15, attribution_samples=64, attribution_chunk=32, memory_perturbations=3_000,
                 memory_budgets=(4 * 2**20,), rates=(0.05, 0.1))


class Row(NamedTuple):
    """One timed contender.

    Attributes:
        section: which comparison.
        case: workload and model, e.g. ``"R-MNIST / snnTorch"``.
        contender: who ran.
        seconds: median wall time.
        runs: how many timed runs.
        peak_mib: peak resident memory the run added (MiB), or ``None`` where it cannot be measured.
        agreement: how its numbers compared with ours, checked before timing.
        ratio: contender time / our time (1.0 for ours).
    """

    section: str
    case: str
    contender: str
    seconds: float
    runs: int
    peak_mib: float | None
    agreement: str
    ratio: float


# -- measuring ---------------------------------------------------------------------------------------------------

def _release_free_memory() -> None:
    gc.collect()
    try:  # glibc keeps freed pages; give them back so the next peak is the next run's own
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _resident_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def measure_peak(function: Callable[[], Any]) -> tuple[Any, float | None, float]:
    """Run ``function`` once; returns ``(its result, peak resident memory it added in MiB or None, seconds)``."""
    _release_free_memory()
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # resets VmHWM to the current resident size
        before = _resident_kib("VmRSS")
    except OSError:
        before = None
    start = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - start
    peak = _resident_kib("VmHWM")
    if before is None or peak is None:
        return result, None, seconds
    return result, max(0, peak - before) / 1024, seconds


#: A contender whose ``runs`` take less than this in all is run again, up to this long in all (at most
#: `MAX_RUNS` times): on a shared machine the median of a few runs of a 10 ms call is mostly noise.
MIN_SECONDS = 1.0
MAX_RUNS = 50


def timed(function: Callable[[], Any], runs: int) -> tuple[float, float | None, Any]:
    """``(median seconds over the runs, peak MiB of the first run, the first run's result)``: ``runs`` runs,
    more for a fast contender when ``runs > 1`` (`MIN_SECONDS`)."""
    seconds: list[float] = []
    peak = result = None
    index = 0
    while index < runs or (runs > 1 and sum(seconds) < MIN_SECONDS and index < MAX_RUNS):
        if index == 0:
            result, peak, first = measure_peak(function)
            seconds.append(first)
        else:
            start = time.perf_counter()
            function()
            seconds.append(time.perf_counter() - start)
        index += 1
    return statistics.median(seconds), peak, result


def _agreement(ours: Tensor, theirs: Tensor) -> str:
    ours, theirs = ours.double().cpu(), theirs.double().cpu()
    if torch.equal(ours, theirs):
        return "identical"
    difference = float((ours - theirs).abs().max())
    mismatches = int((ours != theirs).sum())
    return f"DIFFERS: {mismatches} entries, max |diff| {difference:.3g}"


# -- the models of a case -----------------------------------------------------------------------------------------

class Case(NamedTuple):
    """A workload as one model kind: what ours explains, and how the contenders call it."""

    label: str
    model: Any  # what our explainers get: an LIFNetwork or an snnTorch adapter
    run: Callable[[Tensor], Tensor]  # the batched forward the naive loops and Captum call
    hidden_loop: Callable[[Tensor, int], Tensor]  # the per-neuron hidden silencing loop
    hidden_layer: str  # the first hidden layer's name in model.neuron_layers


def cases(workload: Workload) -> list[Case]:
    """The workload as an ``LIFNetwork`` and as the equivalent snnTorch model (when snnTorch is installed)."""
    network = lif_network(workload)
    result = [Case(f"{workload.name} / LIFNetwork", network, network.run,
                   lambda spikes, target: contenders.lif_loop_hidden_importance(network, "0", spikes, target), "0")]
    try:
        sequential = snntorch_network(workload)
    except ImportError:
        return result
    from ..adapters import from_snntorch

    adapter = from_snntorch(sequential)
    first_hidden = next(iter(adapter.neuron_layers))
    layer_module = dict(sequential.named_modules())[first_hidden]
    n_hidden = adapter.neuron_layers[first_hidden]
    result.append(Case(f"{workload.name} / snnTorch", adapter, adapter.run,
                       lambda spikes, target: contenders.hook_loop_hidden_importance(
                           sequential, layer_module, n_hidden, spikes, target), first_hidden))
    return result


def framework_case(workload: FrameworkWorkload) -> Case | None:
    """A one-framework workload as a case (``None`` without that framework); no hidden-layer loop is timed on it."""
    try:
        module = framework_network(workload)
    except ImportError:
        return None
    from ..adapters import from_norse, from_snntorch, from_spikingjelly

    if workload.framework == "Norse":
        adapter = from_norse(module)
    elif workload.framework == "SpikingJelly":
        adapter = from_spikingjelly(module)
    else:
        adapter = from_snntorch(module, input_shape=(1, 28, 28)) if workload.name == "CSNN-7" else \
            from_snntorch(module)

    def no_hidden_loop(spikes: Tensor, target: int) -> Tensor:
        raise NotImplementedError("the one-framework workloads time exact saliency only")

    return Case(f"{workload.name} / {workload.framework}", adapter, adapter.run, no_hidden_loop,
                next(iter(adapter.neuron_layers)))


def check_twins(workload: Workload, spikes: Tensor) -> str:
    """That the snnTorch twin gives the LIFNetwork's spike counts (else the comparison is meaningless)."""
    both = cases(workload)
    if len(both) < 2:
        return "snnTorch not installed: LIFNetwork only"
    counts = [case.run(spikes) for case in both]
    raw = contenders.snntorch_counts(snntorch_network(workload), spikes)
    if not (torch.equal(counts[0], counts[1]) and torch.equal(counts[1], raw)):
        raise RuntimeError(f"{workload.name}: the snnTorch twin's spike counts differ from the LIFNetwork's")
    return "snnTorch twin = LIFNetwork spike counts: identical"


def predicted(run: Callable[[Tensor], Tensor], spikes: Tensor) -> int:
    """The explained output of a single sample: its most active output (ties to the lowest index)."""
    with torch.inference_mode():
        return int(run(spikes)[0].argmax())


def executor_note(model, spikes: Tensor) -> str:
    """Which executor ``execute`` picks for the saliency plan of ``spikes``, why, and its tie rows."""
    plan = remove_each_spike(spikes)
    graph_for = getattr(model, "graph_for", None)  # what the explainers run: the verified traced graph
    graph = graph_for(spikes) if callable(graph_for) else None
    with torch.inference_mode():
        _, info = execute(model if graph is None else graph, spikes, plan, return_info=True)
    ties = "" if info.tie_mask is None else f", {int(info.tie_mask.sum())} of {len(plan)} rows inside the " \
        "loose rounding bound (the tie mask)"
    if info.recomputed is not None:
        ties += f", {int(info.recomputed.sum())} replayed from their first such layer (inside the tight bound too, " \
            "or inside the loose one on a layer without the tight test)"
    kernels = f" ({info.kernels} kernels)" if info.kernels else ""
    return f"executor {info.engine}{kernels}: {info.reason}{ties}"


# -- sections ------------------------------------------------------------------------------------------------------

def saliency_section(case: Case, spikes: Tensor, runs: int) -> list[Row]:
    """Exact saliency of one sample: ours, the naive loop, Captum FeatureAblation at its best setting.

    Agreement is checked on each contender's first run, before its time is taken into account (a
    contender that disagrees is reported as such, never silently timed as if it agreed).
    """
    target = predicted(case.run, spikes)
    explainer = TemporalSaliency(case.model)
    explainer.explain(spikes[0], output_neuron=target)  # warm-up (compile check, allocator), untimed
    section, rows = "Exact saliency, one sample", []
    ours_s, ours_peak, result = timed(lambda: explainer.explain(spikes[0], output_neuron=target), runs)
    ours_map = torch.as_tensor(result.saliency_map())
    spikes_n = int((spikes != 0).sum())
    rows.append(Row(section, case.label, f"ours ({spikes_n} spikes)", ours_s, runs, ours_peak, "reference", 1.0))
    naive_s, naive_peak, naive_map = timed(lambda: contenders.naive_saliency(case.run, spikes, target), runs)
    rows.append(Row(section, case.label, "naive per-spike loop", naive_s, runs, naive_peak,
                    _agreement(ours_map, naive_map), naive_s / ours_s))
    rows.append(_best_captum(section, case, ours_s, runs, ours_map, lambda ppe: contenders.captum_ablation_saliency(
        case.run, spikes, target, ppe)))
    return rows


def _best_captum(section: str, case: Case, ours_s: float, runs: int, ours: Tensor,
                 call: Callable[[int], Tensor]) -> Row:
    """Each ``perturbations_per_eval`` once (checked against ours), then the fastest ``runs`` times."""
    trials = []
    for ppe in PERTURBATIONS_PER_EVAL:
        seconds, peak, result = timed(functools.partial(call, ppe), 1)
        trials.append((seconds, ppe, _agreement(ours, result), peak))
    _, ppe, agreement, _ = min(trials)
    agreement = next((a for *_, a, _ in trials if a != "identical"), agreement)  # any disagreement is shown
    seconds, peak, _ = timed(lambda: call(ppe), runs)
    return Row(section, case.label, f"Captum FeatureAblation (best perturbations_per_eval={ppe})", seconds, runs,
               peak, agreement, seconds / ours_s)


def causal_section(case: Case, spikes: Tensor, runs: int) -> list[Row]:
    """Causal importance of every input neuron and every first-hidden-layer neuron of one sample."""
    target = predicted(case.run, spikes)
    explainer = CausalImportance(case.model)
    rows = []
    section = "Causal importance, all input neurons"
    explainer.explain(spikes[0], output_neuron=target, layer="input")  # warm-up, untimed
    ours_s, peak, result = timed(lambda: explainer.explain(spikes[0], output_neuron=target, layer="input"), runs)
    ours_input = torch.as_tensor(result.importance_map())
    rows.append(Row(section, case.label, f"ours ({spikes.shape[2]} neurons)", ours_s, runs, peak, "reference", 1.0))
    seconds, peak, theirs = timed(lambda: contenders.naive_input_importance(case.run, spikes, target), runs)
    rows.append(Row(section, case.label, "naive per-neuron loop", seconds, runs, peak, _agreement(ours_input, theirs),
                    seconds / ours_s))
    rows.append(_best_captum(section, case, ours_s, runs, ours_input,
                             lambda ppe: contenders.captum_ablation_input_importance(case.run, spikes, target, ppe)))
    section = "Causal importance, all first-hidden-layer neurons"
    layer = case.hidden_layer
    ours_s, peak, result = timed(lambda: explainer.explain(spikes[0], output_neuron=target, layer=layer), runs)
    ours_hidden = torch.as_tensor(result.importance_map())
    n_hidden = case.model.neuron_layers[layer]
    rows.append(Row(section, case.label, f"ours ({n_hidden} neurons)", ours_s, runs, peak, "reference", 1.0))
    seconds, peak, theirs = timed(lambda: case.hidden_loop(spikes, target), runs)
    name = "per-neuron forward-hook loop" if "snnTorch" in case.label else "per-neuron silence= loop"
    rows.append(Row(section, case.label, name, seconds, runs, peak, _agreement(ours_hidden, theirs), seconds / ours_s))
    return rows


def attribution_section(workload: Workload, settings: Settings) -> list[Row]:
    """SpikeAttributor over many samples with per-sample targets vs Captum Saliency on the wrapped model."""
    section = f"Attribution, {settings.attribution_samples} samples, per-sample targets"
    try:
        from ..adapters import from_snntorch

        adapter = from_snntorch(snntorch_network(workload))
    except ImportError:
        return []
    network = lif_network(workload)
    spikes = input_spikes(workload, batch=settings.attribution_samples, seed=7)
    chunk = settings.attribution_chunk
    with torch.no_grad():  # not inference mode: Captum's backward must be able to use the targets
        targets = torch.cat([network.run(spikes[s:s + chunk]).argmax(dim=1) for s in range(0, len(spikes), chunk)])
    attributor = SpikeAttributor(decay=0.9)

    def ours():
        return [attributor.attribute(spikes[s:s + chunk], adapter, output_neuron=targets[s:s + chunk]).attribution_map()
                for s in range(0, len(spikes), chunk)]

    def theirs():
        return contenders.captum_saliency(adapter, spikes, targets, chunk)

    first_ours = torch.as_tensor(ours()[0])
    first_theirs = theirs()[:chunk]
    same_model = torch.equal(adapter.run(spikes[:chunk]), network.run(spikes[:chunk]))
    if first_ours.shape != first_theirs.shape or not bool(torch.isfinite(first_theirs).all()) or not same_model:
        raise RuntimeError("attribution section: the contenders do not run on the same model and inputs")
    note = "different method (gradient): same model, same (B, T, N) maps, finite"
    ours_s, ours_peak, _ = timed(ours, settings.runs)
    case = f"{workload.name} / snnTorch adapter"
    rows = [Row(section, case, "ours: SpikeAttributor (linear)", ours_s, settings.runs, ours_peak, "reference", 1.0)]
    seconds, peak, _ = timed(theirs, settings.runs)
    rows.append(Row(section, case, "Captum Saliency (surrogate gradient)", seconds, settings.runs, peak, note,
                    seconds / ours_s))
    # The floor: writing maps of the same size once into fresh memory, chunk by chunk, kept (as ours are).
    shape = tuple(spikes.shape)
    floor_s, floor_peak, _ = timed(lambda: write_floor_seconds(shape, chunks=max(1, len(spikes) // chunk)),
                                   settings.runs)
    rows.append(Row(section, case, "memory-write floor (fill fresh (B, T, N) maps)", floor_s, settings.runs,
                    floor_peak, "-", floor_s / ours_s))
    # What the engine's kernel does for the same maps (one write each, the buffer reused between chunks).
    paths = torch.cat([linear_paths(network.linear_weights(), targets[s:s + chunk]) for s in range(0, len(spikes), chunk)])
    time_weights = decay_weights(spikes.shape[1], 0.9)

    def kernel():
        buffer = None
        for s in range(0, len(spikes), chunk):
            rows_ = spikes[s:s + chunk]
            if buffer is None or buffer.shape != rows_.shape:
                buffer = torch.empty_like(rows_)
            linear_attribution(rows_, time_weights, paths[s:s + chunk], out=buffer)
        return buffer

    check = linear_attribution(spikes[:chunk], time_weights, paths[:chunk])
    # Checked against the attributor on the LIFNetwork twin, whose weight chain the kernel's paths come from.
    twin = torch.as_tensor(attributor.attribute(spikes[:chunk], network, output_neuron=targets[:chunk])
                           .attribution_map())
    agreement = _agreement(check, twin.to(check.dtype))
    kernel_s, kernel_peak, _ = timed(kernel, settings.runs)
    rows.append(Row(section, case, "engine kernel: linear_attribution into a reused buffer (LIFNetwork twin's paths)",
                    kernel_s, settings.runs,
                    kernel_peak, agreement, kernel_s / ours_s))
    return rows


def linearity_section(workload: Workload, settings: Settings) -> tuple[list[Row], float]:
    """Our exact saliency time against the number of spikes; returns rows and the R^2 of a straight-line
    fit ``time = fixed + per_spike * spikes`` (1.0: exactly linear)."""
    network = lif_network(workload)
    explainer = TemporalSaliency(network)
    rows, points = [], []
    section = "Time vs number of spikes (ours, exact saliency, one sample)"
    for rate in settings.rates:
        spikes = input_spikes(workload, rate=rate, seed=11)
        target = predicted(network.run, spikes)
        explainer.explain(spikes[0], output_neuron=target)  # warm-up, untimed
        seconds, peak, _ = timed(functools.partial(explainer.explain, spikes[0], output_neuron=target), settings.runs)
        n_spikes = int((spikes != 0).sum())
        points.append((n_spikes, seconds))
        rows.append(Row(section, f"{workload.name} / LIFNetwork, rate {rate:.1%}", f"ours ({n_spikes} spikes)",
                        seconds, settings.runs, peak, "-", 1.0))
    x = torch.tensor([p[0] for p in points], dtype=torch.float64)
    y = torch.tensor([p[1] for p in points], dtype=torch.float64)
    design = torch.stack([torch.ones_like(x), x], dim=1)
    coefficients = torch.linalg.lstsq(design, y[:, None]).solution[:, 0]
    residual = float(((design @ coefficients - y) ** 2).sum())
    total = float(((y - y.mean()) ** 2).sum())
    r_squared = 1.0 - residual / total if total > 0 else 1.0
    rows.append(Row(section, f"{workload.name} / LIFNetwork, straight-line fit",
                    f"fixed {1e3 * float(coefficients[0]):.1f} ms + {1e6 * float(coefficients[1]):.1f} us per spike, "
                    f"R^2 = {r_squared:.3f}", float("nan"), settings.runs, None, "-", 1.0))  # a fit, not a time
    return rows, r_squared


def memory_section(workload: Workload, settings: Settings) -> tuple[list[Row], list[tuple[int, float | None]]]:
    """Peak memory of the engine running ``memory_perturbations`` spike removals under each budget."""
    network = lif_network(workload)
    per_sample = max(1, int(workload.rate * workload.steps * workload.sizes[0]))
    batch = max(1, math.ceil(settings.memory_perturbations / per_sample))
    spikes = input_spikes(workload, batch=batch, seed=13)
    plan = remove_each_spike(spikes)
    rows, peaks = [], []
    section = f"Peak memory, {len(plan)} perturbations"
    reference = None
    for budget in settings.memory_budgets:
        with torch.inference_mode():
            outputs = execute(network, spikes, plan, max_memory=budget)
            if reference is None:
                reference = run_plan(network, spikes, plan, max_memory=budget)
        agreement = _agreement(outputs, reference)
        with torch.inference_mode():
            seconds, peak, _ = timed(functools.partial(execute, network, spikes, plan, max_memory=budget),
                                     max(1, settings.runs // 2))
        peaks.append((budget, peak))
        share = "n/a" if peak is None else f"{peak / (budget / 2**20):.0%} of max_memory"
        rows.append(Row(section, f"{workload.name} / LIFNetwork, max_memory {budget // 2**20} MiB",
                        f"ours (peak {share})", seconds, max(1, settings.runs // 2), peak,
                        f"vs generic path: {agreement}", 1.0))
    return rows, peaks


# -- the whole run -------------------------------------------------------------------------------------------------

class Report(NamedTuple):
    """Everything one benchmark run measured."""

    rows: list[Row]
    targets: list[Target]
    notes: list[str]
    environment: dict[str, str]


def run_suite(settings: Settings | None = None, progress: Callable[[str], None] = lambda message: None) -> Report:
    """Run every section; see the module docstring.

    Args:
        settings: what to run (`QUICK` for a smoke run).
        progress: called with a line of text as each section starts.

    Returns:
        A `Report`.

    Example:
        >>> report = run_suite(QUICK._replace(workloads=("R-seed",)))  # doctest: +SKIP
    """
    settings = Settings() if settings is None else settings
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    load_start = _load()
    started = time.perf_counter()
    rows: list[Row] = []
    notes: list[str] = []
    targets: list[Target] = []
    try:
        workloads = {name: WORKLOADS[name] if settings.scale == 1.0 else WORKLOADS[name].scaled(settings.scale)
                     for name in settings.workloads}
        for name, workload in workloads.items():
            spikes = input_spikes(workload)
            notes.append(f"{name}: {check_twins(workload, spikes)}")
            for case in cases(workload):
                progress(f"saliency: {case.label}")
                rows += saliency_section(case, spikes, settings.runs)
                notes.append(f"{case.label}: {executor_note(case.model, spikes)}")
        for name in settings.framework_workloads:
            framework = FRAMEWORK_WORKLOADS[name]
            framework = framework if settings.scale == 1.0 else framework.scaled(settings.scale)
            framework_model = framework_case(framework)
            if framework_model is None:
                notes.append(f"{name}: {framework.framework} not installed")
                continue
            progress(f"saliency: {framework_model.label}")
            spikes = framework_spikes(framework)
            rows += saliency_section(framework_model, spikes, settings.runs)
            notes.append(f"{framework_model.label} ({framework.why}): {executor_note(framework_model.model, spikes)}")
        mnist = workloads.get("R-MNIST")
        if mnist is not None:
            spikes = input_spikes(mnist)
            for case in cases(mnist):
                progress(f"causal importance: {case.label}")
                rows += causal_section(case, spikes, settings.runs)
            progress("attribution")
            rows += attribution_section(mnist, settings)
            progress("time vs spikes")
            linear_rows, r_squared = linearity_section(mnist, settings)
            rows += linear_rows
            progress("inner loop paths")
            rows += paths_section(mnist, settings.runs, timed, Row, _agreement, compile_step=settings.scale == 1.0)
            progress("peak memory")
            memory_rows, peaks = memory_section(mnist, settings)
            rows += memory_rows
            # Targets are ratios on the real workloads; on shrunken ones they mean nothing.
            targets = issue_targets(rows, r_squared, peaks) if settings.scale == 1.0 else []
    finally:
        torch.set_num_threads(previous_threads)
    environment = {
        "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
        "cpu cores": str(os.cpu_count()), "torch threads": "1 (all contenders)",
        "load average at start / end": f"{load_start} / {_load()}",
        "wall time of the run": f"{time.perf_counter() - started:.0f} s",
        "runs per contender": f"{settings.runs}" + ("" if settings.runs == 1 else
                                                     f" (more for a fast one: until {MIN_SECONDS:g} s of runs, "
                                                     f"at most {MAX_RUNS})"),
        "event engine inner loop": _kernel_path(),
    }
    return Report(rows, targets, notes, environment)


def _kernel_path() -> str:
    if not numba_available():
        return f"plain Python (numba not installed: {install_hint('fast')})"
    import numba

    return f"numba {numba.__version__} (compiled)"


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "n/a"
