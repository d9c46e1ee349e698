"""The Markdown report of `sc-neurocore quality`: every table generated from measured results."""

from __future__ import annotations

import math
from typing import Any

import torch

from .evaluate import METRICS, NetworkResult, by_name
from .report_misses import Diagnosis, misses_section
from .rivals import AUTO, GATED, LINEAR, ONE_PASS
from .stats import defined_mean, paired_bootstrap
from .targets import Target, format_targets, versus
from .timing_run import TIMING_NETWORK, TIMING_OPTIONS, TimingRun

METRIC_TITLES = {"deletion": "deletion AUC", "insertion": "insertion AUC", "deletion_p": "deletion AUC (softmax p)",
                 "insertion_p": "insertion AUC (softmax p)"}


def _number(value: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _mean_cell(values: Any) -> str:
    mean, undefined = defined_mean(values)
    return _number(mean) + (f" ({undefined} undef.)" if undefined else "")


def _partial_notes(result: NetworkResult) -> list[str]:
    """A note for each method run on only the first held-out digits, with its measured time per digit."""
    n_eval = result.network.held_out[0].shape[0]
    notes = []
    for item in result.methods:
        if item.n_run is None or item.n_run >= n_eval:
            continue
        per_digit = item.seconds / item.n_run
        notes += [f"{item.tuned.method.name} explained the first {item.n_run} of the {n_eval} held-out digits only: "
                  f"{per_digit:.1f} s per digit here (one forward pass per input spike, on the "
                  f"`{item.executor}` executor that `execute` picked), about {per_digit * n_eval:.0f} s for all "
                  f"{n_eval}. Its cells count the other {n_eval - item.n_run} digits as not run, not as undefined; "
                  "its paired differences use the digits it explained.", ""]
    return notes


def network_section(result: NetworkResult, seed: int = 0) -> list[str]:
    """The tables of one network: settings chosen, held-out means, and auto's paired differences.

    Example:
        >>> from sc_neurocore.quality.evaluate import quick_result
        >>> result = quick_result()
        >>> network_section(result)[0].startswith("## shipped 64-32-10 count")
        True
    """
    network = result.network
    spec = network.spec
    layers = spec.layers
    spikes, _ = network.held_out
    lines = [f"## {spec.name}", "",
             f"{layers} LIF (beta {spec.beta}, threshold {spec.threshold}, subtractive reset), readout "
             f"`{spec.readout}`, {spec.size}x{spec.size} rate-coded digits, T={spikes.shape[1]}; test accuracy "
             f"{network.test_accuracy:.3f}; weights: {network.source}"
             + (f" ({network.seconds:.0f} s of training)" if network.source == "trained" else "") + ". "
             f"Selection set: {network.select[0].shape[0]} test digits; held-out set: the next {spikes.shape[0]} "
             f"({int((spikes != 0).sum())} input spikes). Each digit explained for its predicted class.", "",
             *([f"Not run on this network: {'; '.join(f'{k} ({v})' for k, v in result.skipped.items())}.", ""]
               if result.skipped else []),
             *_partial_notes(result),
             "Settings chosen on the selection set (mean deletion AUC of each setting tried):", "",
             "| method | chosen | selection deletion AUC per setting |", "|---|---|---|"]
    for item in result.methods:
        tried = "; ".join(f"{k}: {v:.3f}" for k, v in item.tuned.selection_auc.items()) or "nothing to choose"
        chosen = ", ".join(f"{k} {v}" for k, v in item.tuned.setting.items() if k != "seed") or "-"
        lines.append(f"| {item.tuned.method.name} | {chosen} | {tried} |")
    sensitivity = [f"sensitivity-n {share:g}" for share in result.fractions]
    lines += ["", "Held-out means (samples where a metric is undefined are counted, not averaged):", "",
              "| method | " + " | ".join(METRIC_TITLES[m] for m, _ in METRICS) + " | " + " | ".join(sensitivity)
              + " | occlusion agreement | seconds |",
              "|---|" + "---:|" * (len(METRICS) + len(sensitivity) + 2)]
    for item in result.methods:
        run = slice(None) if item.n_run is None else slice(0, item.n_run)  # digits not run are not undefined
        cells = [_mean_cell(item.per_sample[m][run]) for m, _ in METRICS]
        cells += [_mean_cell(item.per_sample[f"sensitivity_{share:g}"][run]) for share in result.fractions]
        cells += [_mean_cell(item.per_sample["occlusion"][run]),
                  _number(item.seconds) + ("" if item.n_run is None or item.n_run >= spikes.shape[0]
                                           else f" ({item.n_run} digits)")]
        lines.append(f"| {item.tuned.method.name} | " + " | ".join(cells) + " |")
    lines += ["", ("`mode=\"auto\"` minus each rival, per held-out sample (mean and paired bootstrap 95% CI; "
              "negative deletion and positive insertion differences favour auto):"), "",
              "| rival | " + " | ".join(METRIC_TITLES[m] for m, _ in METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
    for item in result.methods:
        name = item.tuned.method.name
        if name != AUTO:
            lines.append(f"| {name} | " + " | ".join(versus(result, m, AUTO, name, seed).text() for m, _ in METRICS)
                         + " |")
    return lines + [""]


def gated_section(results: list[NetworkResult], linear_at_gated: dict[str, Any], seed: int = 0) -> list[str]:
    """Does gating earn its place? Gated minus linear at gated's own chosen decay, and auto minus gated."""
    lines = ["## Gated rule: does gating earn its place?", "",
             ("Deletion AUC, per held-out sample, paired bootstrap 95% CI. Gated minus linear is taken at the decay "
             "gated chose on the selection set (the linear rule recomputed at that decay)."), "",
             "| network | gated decay | gated minus linear (same decay) | auto minus gated |", "|---|---:|---:|---:|"]
    for result in results:
        methods = by_name(result)
        name = result.network.spec.name
        if GATED not in methods:
            continue
        gated = methods[GATED].per_sample["deletion"]
        same = paired_bootstrap(gated, linear_at_gated[name], seed=seed)
        lines.append(f"| {name} | {methods[GATED].tuned.setting.get('decay')} | {same.text()} | "
                     f"{versus(result, 'deletion', AUTO, GATED, seed).text()} |")
    return lines + [""]


def timing_section(run: TimingRun) -> list[str]:
    """The timing-task table."""
    options = TIMING_OPTIONS
    lines = ["## Timing task: only spike timing decides the class", "",
             (f"{options['n_classes']} classes; {options['n_pattern']} pattern neurons, paired up differently by each "
             "class: in a sample, the two neurons of each of its class's pairs fire together at a random time (the "
             f"planted spikes), and every pattern neuron also fires {options['n_distractors']} distractor spikes at "
             f"other random times; {options['n_noise']} more inputs carry noise at rate {options['noise_rate']}, "
             f"T={options['n_steps']}. Every pattern neuron fires as often in every class, so only which spikes "
             f"coincide decides. A {options['n_pattern'] + options['n_noise']}-{TIMING_NETWORK['hidden']}-"
             f"{options['n_classes']} LIF network (beta {TIMING_NETWORK['beta']}) trained here on {run.n_train} "
             f"samples ({run.seconds:.0f} s; "
             f"held-out accuracy {run.accuracy:.3f}); {run.n_eval} held-out samples explained for their true class, "
             f"settings chosen on {run.n_select} others. Score: the share of (planted, distractor) pairs of spikes "
             "on the same neuron in which the planted spike scores higher (ties one half; chance 0.5)."), "",
             "| method | chosen setting | separation | undefined samples |", "|---|---|---:|---:|"]
    lines += [f"| {row.method} | {row.setting} | {_number(row.separation)} | {row.n_undefined} |" for row in run.rows]
    return lines + [""]


def crosscheck_section(check: dict[str, Any]) -> list[str]:
    """The deletion curve against Captum's `infidelity`, on one case."""
    return ["## Cross-check against Captum", "",
            (f"On held-out digit 0 of the {check['network']} network, with `mode=\"auto\"` scores: Captum's "
            "`captum.metrics.infidelity` with zero attributions and a perturbation that removes the first $k_j$ "
            "spikes of the deletion order (re-derived there by an independent sort) measures $(f_k(x) - D_j)^2$ "
            f"through Captum's own forward calls. Largest difference from our curve's $(f_k(x) - D_j)^2$ over its "
            f"{check['points']} points: {check['max_difference']:.3g} (output units squared; the curve's largest "
            f"value {check['largest']:.3g})."), ""]


def summary_section(results: list[NetworkResult]) -> list[str]:
    """What each method is good for, read off this run."""
    lines = ["## What each method is good for", "",
             ("- `SpikeAttributor(mode=\"auto\")`: one recorded forward pass, no gradients, no setting to tune; it "
             "follows the model's own decays, resets and readout. The recommended ranking of spikes for a known "
             "LIF model."),
             ("- `SpikeAttributor(mode=\"linear\", decay=...)`: weights only, no model run; the tutorial's formula "
             "and what the FPGA core computes. Its decay must match the readout (see the tuned decays above)."),
             ("- `TemporalSaliency`: the exact effect of removing each spike alone. It answers \"what does this one "
             "spike change?\" exactly; removing many spikes together is a different question, so its deletion "
             "curve is no measure of its correctness (a count readout leaves most single spikes with effect 0, "
             "hence the ties)."),
             ("- Captum's gradient methods: they need a differentiable twin and a surrogate gradient, and their "
             "ranking depends on that choice (tuned above)."),
             ("- TSA: a literature baseline that multiplies per-timestep spike scores; hidden spikes enter at the "
             "same timestep only.")]
    return lines + [""]


def one_pass_note() -> str:
    """Which methods the sensitivity-n target compares."""
    return f"One-pass methods (one forward pass, no gradient, no perturbation): {', '.join(ONE_PASS)}."


def assemble(header: list[str], results: list[NetworkResult], linear_at_gated: dict[str, Any], timing: TimingRun,
             check: dict[str, Any], targets: list[Target], diagnoses: list[Diagnosis], seed: int = 0) -> str:
    """The whole report."""
    lines = list(header)
    for result in results:
        lines += network_section(result, seed)
    lines += gated_section(results, linear_at_gated, seed)
    lines += timing_section(timing)
    lines += crosscheck_section(check)
    lines += summary_section(results)
    lines += ["## Targets", "", one_pass_note(), "", format_targets(targets), ""]
    lines += misses_section(diagnoses)
    return "\n".join(lines)


def linear_at(result: NetworkResult, decay: float, n_points: int, seed: int = 0) -> torch.Tensor:
    """The linear rule's held-out deletion AUC per sample at `decay` (reusing the run when it chose that decay)."""
    from ..explain import SpikeAttributor
    from ..explain.metrics import deletion_curve

    linear = by_name(result)[LINEAR]
    if linear.tuned.setting.get("decay") == decay:
        return linear.per_sample["deletion"]
    spikes, targets = result.network.held_out
    scores = SpikeAttributor(decay).attribute(spikes, result.network.model, targets).attribution_map()
    return deletion_curve(result.network.model, spikes, scores, targets, n_points=n_points, tie_seed=seed).auc
