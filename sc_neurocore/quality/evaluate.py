"""Measure every method on one network: tune on the selection set, then every metric on the held-out set.

Per held-out sample and method: deletion and insertion AUC on the raw target output and on its softmax
probability (ties in a seeded random order), sensitivity-n at each subset size, and the Spearman agreement
with whole-input-neuron occlusion (`sc_neurocore.explain.metrics`). The model's side of sensitivity-n and
occlusion is measured once per network and shared by every method. Exact saliency on a CSNN explains only
the first held-out digits (`digits_run`); the others get `NaN` and are reported as not run.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..explain.metrics import (
    deletion_curve,
    insertion_curve,
    occlusion_agreement,
    occlusion_drops,
    sensitivity_n,
    subset_drops,
)
from .networks import Network
from .rivals import SALIENCY, TSA_NS, TSA_S, Method, Tuned, tune

#: Per-sample metrics, in table order (name, higher is better).
METRICS = (("deletion", False), ("insertion", True), ("deletion_p", False), ("insertion_p", True))


class MethodResult(NamedTuple):
    """One method on one network's held-out samples.

    Attributes:
        tuned: the method and the setting it chose on the selection set.
        per_sample: `{metric: (B,) values}`: `deletion`, `insertion` (raw AUC), `deletion_p`, `insertion_p`
            (softmax-probability AUC), `occlusion` and `sensitivity_<share>` (`NaN` where undefined).
        seconds: wall-clock time of the held-out explanations themselves.
        deletion_curve, insertion_curve: mean raw curves `(M,)` (for plots).
        curves: per-sample raw curves `{"deletion": (B, M), "insertion": (B, M)}` (for the diagnostics of a
            missed target), `None` when not kept.
        n_run: how many held-out digits (the first ones) the method explained; the others' values are `NaN`
            (`None`: all).
        executor: the executor the perturbations ran on, for a method that perturbs (`None` otherwise).
    """

    tuned: Tuned
    per_sample: dict[str, Tensor]
    seconds: float
    deletion_curve: Tensor
    insertion_curve: Tensor
    curves: dict[str, Tensor] | None = None
    n_run: int | None = None
    executor: str | None = None


class NetworkResult(NamedTuple):
    """Every method on one network, and the methods not run on it with the reason."""

    network: Network
    methods: list[MethodResult]
    fractions: tuple[float, ...]
    skipped: dict[str, str]


#: Methods that attribute through a chain of weight matrices (`model.linear_weights()`); the linear and
#: gated rules also run on a traced graph's adjoints, TSA does not.
WEIGHT_CHAIN = (TSA_S, TSA_NS)


def not_run(method: Method, network: Network) -> str:
    """Why `method` is not run on `network` (`""`: it is).

    Example:
        >>> from sc_neurocore.quality.networks import SHIPPED, load_network
        >>> from sc_neurocore.quality.rivals import methods
        >>> not_run(methods(captum=False)[1], load_network(SHIPPED, n_select=1, n_eval=1))
        ''
    """
    if method.name in WEIGHT_CHAIN and network.model.linear_weights() is None:
        return "it attributes through a chain of weight matrices, and a convolution is none"
    return ""


def digits_run(method: Method, network: Network, saliency_digits: int) -> int:
    """How many held-out digits `method` explains on `network`: all of them, but exact saliency on a CSNN
    (one forward pass per input spike, and the convolution runs on the batched executor only) explains the
    first `saliency_digits`.

    Example:
        >>> from sc_neurocore.quality.networks import SHIPPED, load_network
        >>> from sc_neurocore.quality.rivals import methods
        >>> digits_run(methods(captum=False)[5], load_network(SHIPPED, n_select=1, n_eval=3), 1)
        3
    """
    n_eval = network.held_out[0].shape[0]
    if method.name == SALIENCY and network.spec.conv is not None:
        return min(n_eval, saliency_digits)
    return n_eval


def _padded(values: Tensor, size: int) -> Tensor:
    """`values` `(n, ...)` with `NaN` rows up to `size` (held-out digits a method did not explain)."""
    if values.shape[0] == size:
        return values
    pad = torch.full((size - values.shape[0], *values.shape[1:]), float("nan"), dtype=torch.float64)
    return torch.cat([values.to(torch.float64), pad])


def evaluate_method(method: Method, network: Network, drops: Any, occlusion: Tensor, *, n_points: int = 21,
                    tune_points: int = 11, seed: int = 0, n_run: int | None = None) -> MethodResult:
    """Tune `method` on the selection set, then measure it on the held-out set (its first `n_run` digits;
    the others get `NaN`, and `MethodResult.n_run` says how many were explained)."""
    tuned = tune(method, network, n_points=tune_points, tie_seed=seed)
    spikes, targets = network.held_out
    n_eval = spikes.shape[0]
    n_run = n_eval if n_run is None else n_run
    if n_run < n_eval:
        spikes, targets, occlusion = spikes[:n_run], targets[:n_run], occlusion[:n_run]
        drops = drops._replace(sizes=drops.sizes[:n_run], order=drops.order[:n_run], drops=drops.drops[:n_run])
    function = method.build(network, tuned.setting)
    start = time.perf_counter()
    scores = function(spikes, targets)
    seconds = time.perf_counter() - start
    deletion = deletion_curve(network.model, spikes, scores, targets, n_points=n_points, tie_seed=seed)
    insertion = insertion_curve(network.model, spikes, scores, targets, n_points=n_points, tie_seed=seed)
    assert deletion.probability_auc is not None and insertion.probability_auc is not None  # always measured
    per_sample = {"deletion": deletion.auc, "insertion": insertion.auc, "deletion_p": deletion.probability_auc,
                  "insertion_p": insertion.probability_auc, "occlusion": occlusion_agreement(scores, occlusion)}
    sensitivity = sensitivity_n(scores, drops)
    for index, share in enumerate(drops.fractions.tolist()):
        per_sample[f"sensitivity_{share:g}"] = sensitivity[:, index]
    per_sample = {key: _padded(value, n_eval) for key, value in per_sample.items()}
    return MethodResult(tuned, per_sample, seconds, deletion.values.mean(dim=0), insertion.values.mean(dim=0),
                        {"deletion": _padded(deletion.values, n_eval), "insertion": _padded(insertion.values, n_eval)},
                        n_run, getattr(function, "executor", None))


def evaluate_network(network: Network, methods: list[Method], *, n_points: int = 21, tune_points: int = 11,
                     fractions: tuple[float, ...] = (0.01, 0.05, 0.2, 0.5), n_subsets: int = 16, seed: int = 0,
                     saliency_digits: int = 8, log: Any = None) -> NetworkResult:
    """Every method on `network` (see the module docstring).

    Example:
        >>> sorted(quick_result().methods[0].per_sample)
        ['deletion', 'deletion_p', 'insertion', 'insertion_p', 'occlusion', 'sensitivity_0.5']
    """
    spikes, targets = network.held_out
    drops = subset_drops(network.model, spikes, targets, fractions=fractions, n_subsets=n_subsets, seed=seed)
    occlusion = occlusion_drops(network.model, spikes, targets)
    results, skipped = [], {}
    for method in methods:
        reason = not_run(method, network)
        if reason:
            skipped[method.name] = reason
            continue
        start = time.perf_counter()
        results.append(evaluate_method(method, network, drops, occlusion, n_points=n_points,
                                       tune_points=tune_points, seed=seed,
                                       n_run=digits_run(method, network, saliency_digits)))
        if log is not None:
            log(f"  {network.spec.name}: {method.name} ({time.perf_counter() - start:.1f} s)")
    return NetworkResult(network, results, tuple(fractions), skipped)


def by_name(result: NetworkResult) -> dict[str, MethodResult]:
    """`{method name: its result}`."""
    return {item.tuned.method.name: item for item in result.methods}


def quick_result(n_select: int = 2, n_eval: int = 4) -> NetworkResult:
    """A small evaluation (shipped network, `mode="auto"` and the linear rule, few points) for examples and tests.

    Example:
        >>> [item.tuned.method.name for item in quick_result().methods]
        ['SpikeAttributor auto', 'SpikeAttributor linear']
    """
    from .networks import SHIPPED, load_network
    from .rivals import methods

    network = load_network(SHIPPED, n_select=n_select, n_eval=n_eval)
    return evaluate_network(network, methods(captum=False, decays=(1.0,))[:2], n_points=3, tune_points=3,
                            fractions=(0.5,), n_subsets=4)

