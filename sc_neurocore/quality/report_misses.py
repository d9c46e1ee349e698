"""The report's section "Why a target is missed": measured reasons and the variants considered, per network.

For every network where `mode="auto"` does not beat a rival (`targets.misses`), `diagnose` measures the
diagnostics of `sc_neurocore.quality.diagnostics` on the held-out digits and the variants of
`sc_neurocore.quality.variants`; `misses_section` writes them out. Every number is measured by the run.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .diagnostics import (
    SPLIT,
    Segments,
    Silent,
    ZeroCredit,
    segments,
    silent_neurons,
    silent_path_share,
    where_text,
    zero_credit,
)
from .evaluate import NetworkResult, by_name
from .rivals import AUTO
from .targets import Miss, beaten, misses
from .variants import VariantRow, measure_variants

METRIC_WORDS = {"deletion": "deletion AUC", "insertion": "insertion AUC"}


class Explained(NamedTuple):
    """One miss with what was measured about it.

    Attributes:
        miss: the rival not beaten and the paired difference.
        zeros: input spikes auto gives exactly 0 and the rival not (`None`: not measured).
        where: the curve split into its first segment and the rest (`None`: no per-sample curves).
    """

    miss: Miss
    zeros: ZeroCredit | None
    where: Segments | None


class Diagnosis(NamedTuple):
    """The measured reasons on one network.

    Attributes:
        network: the network's name.
        silent: silent hidden neurons per layer.
        silent_paths: the share of the linear rule's path weight through first-layer neurons silent from the
            spike on (`diagnostics.silent_path_share`; `None` without a dense weight chain).
        explained: every miss with its diagnostics.
        variants: the variants of the spike rule, against auto and the rivals not beaten.
    """

    network: str
    silent: list[Silent]
    silent_paths: float | None
    explained: list[Explained]
    variants: list[VariantRow]


def diagnose(result: NetworkResult, *, n_points: int = 21, tune_points: int = 11, seed: int = 0) -> Diagnosis | None:
    """The measured reasons of every miss on `result`'s network (`None` when auto beats every rival).

    Example:
        >>> from sc_neurocore.quality.evaluate import quick_result
        >>> found = diagnose(quick_result(), n_points=3, tune_points=3)
        >>> [(e.miss.metric, e.miss.rival) for e in found.explained], len(found.variants)
        ([('deletion', 'SpikeAttributor linear'), ('insertion', 'SpikeAttributor linear')], 4)
    """
    found = misses(result, "deletion", seed) + misses(result, "insertion", seed)
    if not found:
        return None
    network = result.network
    spikes, targets = network.held_out
    methods = by_name(result)
    auto = methods[AUTO]
    auto_scores = auto.tuned.method.build(network, auto.tuned.setting)(spikes, targets)
    fractions = torch.linspace(0, 1, n_points, dtype=torch.float64)
    scores: dict[str, torch.Tensor] = {}
    explained = []
    for miss in found:
        rival = methods[miss.rival]
        n_run = spikes.shape[0] if rival.n_run is None else rival.n_run
        if miss.rival not in scores:
            scores[miss.rival] = rival.tuned.method.build(network, rival.tuned.setting)(spikes[:n_run],
                                                                                         targets[:n_run])
        zeros = zero_credit(auto_scores[:n_run], scores[miss.rival], spikes[:n_run])
        where = None
        if auto.curves is not None and rival.curves is not None and n_points > 2:
            inner = fractions[1:-1]  # the curve's point nearest SPLIT, short of its ends
            split = float(inner[torch.argmin((inner - SPLIT).abs())])
            where = segments(auto.curves[miss.metric], rival.curves[miss.metric], fractions, split, seed=seed)
        explained.append(Explained(miss, zeros, where))
    pairs = list(dict.fromkeys((miss.metric, miss.rival) for miss in found))
    variants = measure_variants(result, pairs, n_points=n_points, tune_points=tune_points, seed=seed)
    return Diagnosis(network.spec.name, silent_neurons(network.model, spikes),
                     silent_path_share(network.model, spikes, targets), explained, variants)


def _share(value: float) -> str:
    """A share as a percentage, with three significant digits below 1% (so a small share is not shown as 0)."""
    percent = 100 * value
    return f"{percent:.1f}%" if percent == 0 or percent >= 1 else f"{percent:.3g}%"


def _best_variant(diagnosis: Diagnosis, metric: str) -> VariantRow | None:
    """The variant that improves `metric` most on the selection set (`None`: none improves it)."""
    sign = 1.0 if metric == "deletion" else -1.0  # deletion: lower is better
    better = [row for row in diagnosis.variants if sign * row.selection[metric] < 0]
    return min(better, key=lambda row: sign * row.selection[metric]) if better else None


def miss_lines(diagnosis: Diagnosis) -> list[str]:
    """The text of one network's measured reasons (see `misses_section`).

    Example:
        >>> from sc_neurocore.quality.evaluate import quick_result
        >>> miss_lines(diagnose(quick_result(), n_points=3, tune_points=3))[0]
        '### shipped 64-32-10 count'
    """
    layers = "; ".join(f"hidden layer `{s.layer}`: {_share(s.never)} of its {s.size} neurons fire on no "
                       f"held-out digit, {_share(s.per_sample)} are silent within a digit on average"
                       for s in diagnosis.silent)
    lines = [f"### {diagnosis.network}", "",
             (f"Silent hidden neurons ({layers or 'no hidden layer'}). The spike rule of `mode=\"auto\"` passes "
              "no credit through a neuron after its last recorded spike; the linear rule credits every weight "
              "path, silent neurons included."
              + ("" if diagnosis.silent_paths is None or math.isnan(diagnosis.silent_paths) else
                 f" Of the linear rule's path weight over the input spikes ($\\sum |W_1[i, j]\\, p_j|$, $p = W_2 "
                 f"\\cdots W_L e_k$), {_share(diagnosis.silent_paths)} runs through first-layer neurons that do "
                 "not fire at or after the spike's step.")), ""]
    for item in diagnosis.explained:
        miss = item.miss
        text = (f"- {METRIC_WORDS[miss.metric]}: {miss.rival} is not beaten (auto minus it "
                f"{miss.difference.text()}).")
        if item.zeros is not None and item.zeros.n_spikes:
            text += (f" Input spikes `mode=\"auto\"` gives exactly 0 and {miss.rival} does not: "
                     f"{_share(item.zeros.only_first)} of {item.zeros.n_spikes} (the converse: "
                     f"{_share(item.zeros.only_second)}).")
        if item.where is not None:
            text += (f" Auto minus it over the first {item.where.split:.0%} of the curve "
                     f"{item.where.first.text()}, over the rest {item.where.rest.text()}: "
                     f"{where_text(item.where, miss.metric)}.")
        best = _best_variant(diagnosis, miss.metric)
        if best is None:
            text += f" No variant below improves the {METRIC_WORDS[miss.metric]} on the selection set."
        else:
            versus = best.versus[(miss.metric, miss.rival)]
            outcome = "beats it" if beaten(miss.metric, versus) else "does not beat it either"
            text += (f" The variant best on the selection set, \"{best.name}\", minus {miss.rival} on the held-out "
                     f"digits: {versus.text()} ({outcome}).")
        lines.append(text)
    pairs = list(dict.fromkeys((e.miss.metric, e.miss.rival) for e in diagnosis.explained))
    lines += ["", ("Variants of the spike rule considered (`sc_neurocore.quality.variants`; selection set: mean "
                   "difference from auto; held-out: paired 95% CI):"), "",
              "| variant | selection deletion minus auto | selection insertion minus auto | held-out deletion minus "
              "auto | held-out insertion minus auto | "
              + " | ".join(f"held-out {METRIC_WORDS[m]} minus {r}" for m, r in pairs) + " |",
              "|---|" + "---:|" * (4 + len(pairs))]
    for row in diagnosis.variants:
        lines.append(f"| {row.name} | {row.selection['deletion']:+.3f} | {row.selection['insertion']:+.3f} | "
                     f"{row.held_out['deletion'].text()} | {row.held_out['insertion'].text()} | "
                     + " | ".join(row.versus[pair].text() for pair in pairs) + " |")
    return lines + [""]


def misses_section(diagnoses: list[Diagnosis]) -> list[str]:
    """The section "Why a target is missed" (empty when nothing is missed).

    Example:
        >>> misses_section([])
        []
    """
    if not diagnoses:
        return []
    lines = ["## Why a target is missed", "",
             ("Measured on the held-out digits of each network where `mode=\"auto\"` does not beat a rival. "
              "Negative deletion and positive insertion differences favour the first method named. The variants "
              "change one assumption of the spike rule each (equations in `sc_neurocore.quality.variants`); none "
              "is chosen for the report's tables, which keep the rule of `mode=\"auto\"`."), ""]
    for diagnosis in diagnoses:
        lines += miss_lines(diagnosis)
    return lines
