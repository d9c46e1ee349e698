"""The report's targets, checked against measured results, each met or MISSED with the measured reason."""

from __future__ import annotations

import math
from typing import NamedTuple

from .evaluate import NetworkResult, by_name
from .rivals import AUTO, ONE_PASS
from .stats import Paired, defined_mean, paired_bootstrap

#: The timing-task separation `mode="auto"` must reach.
TIMING_TARGET = 0.8


class Target(NamedTuple):
    """A target and whether this run met it; `detail` holds the measured numbers (the reason when missed)."""

    description: str
    met: bool
    detail: str


def versus(result: NetworkResult, metric: str, name: str, other: str, seed: int = 0) -> Paired:
    """Paired difference `name - other` of a per-sample metric on one network."""
    methods = by_name(result)
    return paired_bootstrap(methods[name].per_sample[metric], methods[other].per_sample[metric], seed=seed)


def sensitivity_score(result: NetworkResult, name: str) -> float:
    """A method's sensitivity-n, averaged over the subset sizes (each a mean over its defined samples)."""
    per_sample = by_name(result)[name].per_sample
    values = [defined_mean(per_sample[f"sensitivity_{share:g}"])[0] for share in result.fractions]
    finite = [value for value in values if not math.isnan(value)]
    return sum(finite) / len(finite) if finite else math.nan


class Miss(NamedTuple):
    """A rival `mode="auto"` does not beat on one metric: the paired difference auto minus it."""

    metric: str
    rival: str
    difference: Paired


def beaten(metric: str, difference: Paired) -> bool:
    """Whether auto beats a rival by `difference` (auto minus rival) on `metric`, the CI excluding 0.

    Example:
        >>> from sc_neurocore.quality.stats import Paired
        >>> beaten("deletion", Paired(-1.0, -1.5, -0.5, 4, 0)), beaten("insertion", Paired(-1.0, -1.5, -0.5, 4, 0))
        (True, False)
    """
    return difference.excludes_zero and (difference.high < 0 if metric.startswith("deletion") else difference.low > 0)


def misses(result: NetworkResult, metric: str, seed: int = 0) -> list[Miss]:
    """The rivals auto does not beat on `metric` (`"deletion"` or `"insertion"`), in the result's order.

    Example:
        >>> from sc_neurocore.quality.evaluate import quick_result
        >>> [miss.rival for miss in misses(quick_result(), "deletion")]  # 4 digits: no CI excludes 0
        ['SpikeAttributor linear']
    """
    rivals = [item.tuned.method.name for item in result.methods if item.tuned.method.name != AUTO]
    found = [Miss(metric, rival, versus(result, metric, AUTO, rival, seed)) for rival in rivals]
    return [miss for miss in found if not beaten(metric, miss.difference)]


def network_targets(result: NetworkResult, seed: int = 0) -> list[Target]:
    """The three per-network targets of `mode="auto"` (deletion, insertion, sensitivity-n).

    Example:
        >>> from sc_neurocore.quality.evaluate import quick_result
        >>> result = quick_result()
        >>> [t.description.split(":")[0] for t in network_targets(result)]
        ['shipped 64-32-10 count', 'shipped 64-32-10 count', 'shipped 64-32-10 count']
    """
    name = result.network.spec.name
    rivals = [item.tuned.method.name for item in result.methods if item.tuned.method.name != AUTO]
    found = []
    for metric, word, better in (("deletion", "lower deletion AUC", "< 0"), ("insertion", "higher insertion AUC", "> 0")):
        missed = misses(result, metric, seed)
        detail = (f"beaten with the CI excluding 0: {len(rivals) - len(missed)} of {len(rivals)}"
                  + (f"; not beaten (auto minus rival, 95% CI): "
                     f"{'; '.join(f'{m.rival} {m.difference.text()}' for m in missed)}" if missed else "")
                  + (f"; not run here: {', '.join(result.skipped)}" if result.skipped else ""))
        found.append(Target(f"{name}: mode='auto' has a {word} than every rival (paired CI {better}, excluding 0)",
                            not missed and bool(rivals), detail))
    scores = {method: sensitivity_score(result, method) for method in ONE_PASS if method in by_name(result)}
    best = max((value for value in scores.values() if not math.isnan(value)), default=math.nan)
    auto = scores.get(AUTO, math.nan)
    listing = ", ".join(f"{method} {value:.3f}" for method, value in scores.items())
    found.append(Target(f"{name}: mode='auto' has the highest sensitivity-n of the one-pass methods",
                        not math.isnan(auto) and auto >= best, listing))
    return found


def timing_target(separations: dict[str, float]) -> Target:
    """The timing-task target: `mode="auto"` separates planted from distractor spikes at >= 0.8.

    Example:
        >>> timing_target({AUTO: 0.9}).met
        True
    """
    value = separations.get(AUTO, math.nan)
    return Target(f"timing task: mode='auto' separates planted from distractor spikes on the same neuron at >= "
                  f"{TIMING_TARGET} (chance 0.5)", value >= TIMING_TARGET, f"{value:.3f}")


def format_targets(targets: list[Target]) -> str:
    """The targets as a Markdown list.

    Example:
        >>> print(format_targets([Target("something", False, "0.1")]))
        - MISSED: something (0.1)
    """
    return "\n".join(f"- {'met' if t.met else 'MISSED'}: {t.description} ({t.detail})" for t in targets)
