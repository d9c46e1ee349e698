"""Every explanation method of the report, each with the settings it may choose from on the selection set.

A method is a `Method`: a name, a grid of settings (decays, Integrated Gradients steps, surrogate gradients)
and a builder `build(network, setting) -> f(spikes (B, T, N), targets (B,)) -> scores (B, T, N)`. Every
method with more than one setting gets the one with the lowest mean deletion AUC on the selection set
(`tune`); `mode="auto"` and exact saliency have no setting to choose.

Captum's methods differentiate a twin of the network (same weights, same spikes, same readout) through
snnTorch's surrogate spike function; which surrogate is one of their settings.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..explain import SpikeAttributor, TemporalSaliency
from ..explain.metrics import deletion_curve
from ..explain.tsa import TemporalSpikeAttribution
from .networks import Network

ScoreFunction = Callable[[Tensor, Tensor], Tensor]

AUTO = "SpikeAttributor auto"
LINEAR = "SpikeAttributor linear"
GATED = "SpikeAttributor gated"
TSA_S = "TSA-S"
TSA_NS = "TSA-NS"
SALIENCY = "TemporalSaliency (exact)"
CAPTUM_SALIENCY = "Captum Saliency"
CAPTUM_IG = "Captum IntegratedGradients"
CAPTUM_IXG = "Captum InputXGradient"
RANDOM = "random order"

#: Methods that explain from one forward pass, without gradients or perturbations.
ONE_PASS = (AUTO, LINEAR, GATED, TSA_S, TSA_NS)
DECAYS = (0.8, 0.9, 0.95, 1.0)
SURROGATES = ("atan", "fast_sigmoid")
IG_STEPS = (8, 32)


class Method(NamedTuple):
    """An explanation method and the settings it chooses from.

    Attributes:
        name: the method's name in the report.
        grid: the settings (dicts) it may use; one entry when nothing is tuned.
        build: `build(network, setting) -> ScoreFunction`.
    """

    name: str
    grid: tuple[dict[str, Any], ...]
    build: Callable[[Network, dict[str, Any]], ScoreFunction]


def surrogate(name: str) -> Any:
    """The snnTorch surrogate gradient called `name` (`"atan"` or `"fast_sigmoid"`).

    Example:
        >>> callable(surrogate("atan"))
        True
    """
    from snntorch import surrogate as surrogates

    if name == "atan":
        return surrogates.atan()
    if name == "fast_sigmoid":
        return surrogates.fast_sigmoid(slope=25)
    raise ValueError(f"surrogate: expected one of {SURROGATES}, got {name!r}")


def _captum(kind: str) -> Callable[[Network, dict[str, Any]], ScoreFunction]:
    def build(network: Network, setting: dict[str, Any]) -> ScoreFunction:
        from captum.attr import InputXGradient, IntegratedGradients, Saliency

        twin = network.twin(surrogate(setting["surrogate"]))
        method = {"saliency": Saliency, "ig": IntegratedGradients, "ixg": InputXGradient}[kind](twin)
        options = {"baselines": 0.0, "n_steps": setting["steps"]} if kind == "ig" else {}

        def scores(spikes: Tensor, targets: Tensor) -> Tensor:
            # Fresh tensors: inputs made under inference mode cannot enter an autograd graph.
            inputs = spikes.detach().clone().requires_grad_(True)
            return method.attribute(inputs, target=targets.detach().clone(), **options).detach()

        return scores

    return build


def _attributor(mode: str) -> Callable[[Network, dict[str, Any]], ScoreFunction]:
    def build(network: Network, setting: dict[str, Any]) -> ScoreFunction:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # gated is measured here, not recommended
            attributor = SpikeAttributor(setting.get("decay", 0.9), mode=mode)
        return lambda s, k: attributor.attribute(s, network.model, k).attribution_map()

    return build


def _tsa(absent: bool) -> Callable[[Network, dict[str, Any]], ScoreFunction]:
    def build(network: Network, setting: dict[str, Any]) -> ScoreFunction:
        tsa = TemporalSpikeAttribution(setting["decay"], absent_spikes=absent)
        return lambda s, k: tsa.attribute(s, network.model, k).attribution_map()

    return build


def _saliency(network: Network, setting: dict[str, Any]) -> ScoreFunction:
    def scores(spikes: Tensor, targets: Tensor) -> Tensor:
        result = TemporalSaliency(network.model).explain(spikes, targets)
        scores.executor = result.executor  # type: ignore[attr-defined]  # which executor `execute` picked
        return result.saliency_map()

    return scores


def _random(network: Network, setting: dict[str, Any]) -> ScoreFunction:
    generator = torch.Generator().manual_seed(setting["seed"])
    return lambda s, k: torch.rand(s.shape, generator=generator, dtype=torch.float64).to(s.device)


def methods(*, captum: bool = True, decays: tuple[float, ...] = DECAYS, ig_steps: tuple[int, ...] = IG_STEPS,
            surrogates: tuple[str, ...] = SURROGATES, seed: int = 0) -> list[Method]:
    """Every method of the report with its grid, ours first.

    Example:
        >>> [m.name for m in methods(captum=False)][:3]
        ['SpikeAttributor auto', 'SpikeAttributor linear', 'SpikeAttributor gated']
    """
    decay_grid = tuple({"decay": d} for d in decays)
    found = [Method(AUTO, ({},), _attributor("auto")), Method(LINEAR, decay_grid, _attributor("linear")),
             Method(GATED, decay_grid, _attributor("gated")), Method(TSA_S, decay_grid, _tsa(False)),
             Method(TSA_NS, decay_grid, _tsa(True)), Method(SALIENCY, ({},), _saliency)]
    if captum:
        by_surrogate = tuple({"surrogate": s} for s in surrogates)
        found += [Method(CAPTUM_SALIENCY, by_surrogate, _captum("saliency")),
                  Method(CAPTUM_IG, tuple({"surrogate": s, "steps": n} for s in surrogates for n in ig_steps),
                         _captum("ig")),
                  Method(CAPTUM_IXG, by_surrogate, _captum("ixg"))]
    found.append(Method(RANDOM, ({"seed": seed},), _random))
    return found


def describe(setting: dict[str, Any]) -> str:
    """A setting as report text.

    Example:
        >>> describe({"surrogate": "atan", "steps": 8})
        'surrogate atan, steps 8'
    """
    return ", ".join(f"{key} {value}" for key, value in setting.items() if key != "seed") or "none"


class Tuned(NamedTuple):
    """The setting a method chose on the selection set.

    Attributes:
        method: the method.
        setting: the chosen setting.
        selection_auc: `{describe(setting): mean deletion AUC on the selection set}` for every setting tried.
    """

    method: Method
    setting: dict[str, Any]
    selection_auc: dict[str, float]


def tune(method: Method, network: Network, *, n_points: int = 11, tie_seed: int = 0) -> Tuned:
    """Choose `method`'s setting with the lowest mean deletion AUC on `network`'s selection set.

    Example:
        >>> from sc_neurocore.quality.networks import SHIPPED, load_network
        >>> net = load_network(SHIPPED, n_select=2, n_eval=1)
        >>> tuned = tune(methods(captum=False, decays=(0.9, 1.0))[1], net, n_points=3)
        >>> sorted(tuned.selection_auc)
        ['decay 0.9', 'decay 1.0']
    """
    spikes, targets = network.select
    if len(method.grid) == 1:
        return Tuned(method, method.grid[0], {})
    results = {}
    for setting in method.grid:
        scores = method.build(network, setting)(spikes, targets)
        curve = deletion_curve(network.model, spikes, scores, targets, n_points=n_points, tie_seed=tie_seed)
        results[describe(setting)] = float(curve.auc.mean())
    best = min(method.grid, key=lambda setting: results[describe(setting)])
    return Tuned(method, best, results)
