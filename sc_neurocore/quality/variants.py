r"""Variants of the spike rule of `mode="auto"` the report measures against it (section "Variants considered").

Each variant changes one assumption of the spike rule (`sc_neurocore.explain.credit`) on the plain spiking
layers, $m[u] = \beta^{t_n - u} g[t_n] / \theta$ with $t_n$ the neuron's next recorded spike:

- **every later spike**: a subtractive reset keeps the kick in the membrane, so it is credited through
  every later spike, $m[u] = \sum_{t' \ge u,\ z[t'] = 1} \beta^{t' - u} g[t'] / \theta$;
- **silent kick to the membrane peak**: a kick after the neuron's last spike is credited through the time
  $t^* \ge u$ at which the membrane comes closest to the threshold, as if it fired there,
  $m[u] = \beta^{t^* - u} g[t^*] / \theta$;
- **silent kick linear**: a kick after the last spike is credited as the linear rule credits it, through
  every later step, $m[u] = \sum_{t' \ge u} \beta^{t' - u} g[t'] / \theta$;
- **no leak to the next spike**: $\beta = 1$ in the spike rule.

Each is a `SpikeRule` for `sc_neurocore.explain.credit.auto_scores`; `variant_method` makes a report method
of one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from ..explain.credit import CreditLayer, SpikeRule, accumulate, auto_scores, spike_credit
from ..explain.metrics import deletion_curve, insertion_curve
from .diagnostics import after_last_spike
from .evaluate import NetworkResult, by_name
from .networks import Network
from .rivals import AUTO, Method
from .stats import Paired, paired_bootstrap

ScoreFunction = Callable[[Tensor, Tensor], Tensor]


def _per_neuron(value: object, like: Tensor) -> Tensor:
    return torch.as_tensor(value, dtype=like.dtype, device=like.device).reshape(-1)


def every_later_spike(spikes: Tensor, worth: Tensor, membrane: Tensor, layer: CreditLayer) -> Tensor:
    r"""$m[u] = \sum_{t' \ge u,\ z[t'] = 1} \beta^{t'-u} g[t'] / \theta$, `(B, T, n)`.

    Example:
        >>> import torch
        >>> layer = CreditLayer.dense(torch.ones(1, 1), 0.5)
        >>> z = torch.tensor([[[1.0], [0.0], [1.0]]])
        >>> every_later_spike(z, torch.ones(1, 3, 1), torch.zeros(1, 3, 1), layer)[0, :, 0].tolist()
        [1.25, 0.5, 1.0]
    """
    share = torch.where(spikes != 0, worth / _per_neuron(layer.threshold, worth), torch.zeros_like(worth))
    return accumulate(share, layer.beta)


def silent_to_peak(spikes: Tensor, worth: Tensor, membrane: Tensor, layer: CreditLayer) -> Tensor:
    r"""The spike rule, and after the last spike $m[u] = \beta^{t^*-u} g[t^*] / \theta$ with $t^*$ the (last)
    membrane maximum at or after $u$, `(B, T, n)`.

    Example:
        >>> import torch
        >>> layer = CreditLayer.dense(torch.ones(1, 1), 0.5)
        >>> z, v = torch.tensor([[[1.0], [0.0], [0.0]]]), torch.tensor([[[1.0], [0.2], [0.9]]])
        >>> silent_to_peak(z, torch.ones(1, 3, 1), v, layer)[0, :, 0].tolist()
        [1.0, 0.5, 1.0]
    """
    base = spike_credit(spikes, worth, layer.beta, layer.threshold)
    decay, cost = _per_neuron(layer.beta, worth), _per_neuron(layer.threshold, worth)
    silent = after_last_spike(spikes)
    credit = base.clone()
    best = torch.full_like(membrane[:, 0], -float("inf"))
    carry = torch.zeros_like(worth[:, 0])
    for t in range(worth.shape[1] - 1, -1, -1):
        take = membrane[:, t] >= best
        best = torch.where(take, membrane[:, t], best)
        carry = torch.where(take, worth[:, t] / cost, decay * carry)
        credit[:, t] = torch.where(silent[:, t], carry, base[:, t])
    return credit


def silent_linear(spikes: Tensor, worth: Tensor, membrane: Tensor, layer: CreditLayer) -> Tensor:
    r"""The spike rule, and after the last spike $m[u] = \sum_{t' \ge u} \beta^{t'-u} g[t'] / \theta$.

    Example:
        >>> import torch
        >>> layer = CreditLayer.dense(torch.ones(1, 1), 0.5)
        >>> z = torch.tensor([[[1.0], [0.0], [0.0]]])
        >>> silent_linear(z, torch.ones(1, 3, 1), torch.zeros(1, 3, 1), layer)[0, :, 0].tolist()
        [1.0, 1.5, 1.0]
    """
    base = spike_credit(spikes, worth, layer.beta, layer.threshold)
    every = every_later_spike(torch.ones_like(spikes), worth, membrane, layer)
    return torch.where(after_last_spike(spikes), every, base)


def no_leak(spikes: Tensor, worth: Tensor, membrane: Tensor, layer: CreditLayer) -> Tensor:
    r"""The spike rule with $\beta = 1$: $m[u] = g[t_n] / \theta$.

    Example:
        >>> import torch
        >>> layer = CreditLayer.dense(torch.ones(1, 1), 0.5)
        >>> z = torch.tensor([[[0.0], [0.0], [1.0]]])
        >>> no_leak(z, torch.ones(1, 3, 1), torch.zeros(1, 3, 1), layer)[0, :, 0].tolist()
        [1.0, 1.0, 1.0]
    """
    return spike_credit(spikes, worth, 1.0, layer.threshold)


#: The variants by their name in the report.
VARIANTS: dict[str, SpikeRule] = {"every later spike": every_later_spike,
                                  "silent kick to the membrane peak": silent_to_peak,
                                  "silent kick linear": silent_linear,
                                  "no leak to the next spike": no_leak}


def variant_method(name: str) -> Method:
    """The report method of variant `name` (no setting to choose).

    Example:
        >>> from sc_neurocore.quality.networks import SHIPPED, load_network
        >>> net = load_network(SHIPPED, n_select=1, n_eval=2)
        >>> method = variant_method("no leak to the next spike")
        >>> method.build(net, {})(*net.held_out).shape
        torch.Size([2, 25, 64])
    """
    if name not in VARIANTS:
        raise ValueError(f"name: expected one of {', '.join(VARIANTS)}, got {name!r}")
    rule = VARIANTS[name]

    def build(network: Network, setting: dict) -> ScoreFunction:
        return lambda spikes, targets: auto_scores(network.model, spikes, targets, rule)

    return Method(f"auto, {name}", ({},), build)


class VariantRow(NamedTuple):
    """One variant on one network, against `mode="auto"` and the rivals auto does not beat.

    Attributes:
        name: the variant.
        selection: `{metric: variant's mean minus auto's}` on the selection set (`deletion`, `insertion`).
        held_out: `{metric: Paired variant - auto}` on the held-out set.
        versus: `{(metric, rival): Paired variant - rival}` on the held-out set.
    """

    name: str
    selection: dict[str, float]
    held_out: dict[str, Paired]
    versus: dict[tuple[str, str], Paired]


def _curves(network: Network, function: ScoreFunction, samples: tuple[Tensor, Tensor], n_points: int,
            seed: int) -> dict[str, Tensor]:
    spikes, targets = samples
    scores = function(spikes, targets)
    return {"deletion": deletion_curve(network.model, spikes, scores, targets, n_points=n_points,
                                       tie_seed=seed).auc,
            "insertion": insertion_curve(network.model, spikes, scores, targets, n_points=n_points,
                                         tie_seed=seed).auc}


def measure_variants(result: NetworkResult, missed: list[tuple[str, str]], *, n_points: int = 21,
                     tune_points: int = 11, seed: int = 0) -> list[VariantRow]:
    """Every variant of `VARIANTS` on `result`'s network, on the selection set (at `tune_points`) and the
    held-out set (at `n_points`, as the report's AUCs), against auto and the `(metric, rival)` pairs missed.

    Example:
        >>> from sc_neurocore.quality.evaluate import quick_result
        >>> rows = measure_variants(quick_result(), [("deletion", "SpikeAttributor linear")], n_points=3,
        ...                         tune_points=3)
        >>> [row.name for row in rows][:2], sorted(rows[0].held_out)
        (['every later spike', 'silent kick to the membrane peak'], ['deletion', 'insertion'])
    """
    network = result.network
    methods = by_name(result)
    auto = methods[AUTO]
    auto_select = _curves(network, auto.tuned.method.build(network, {}), network.select, tune_points, seed)
    rows = []
    for name in VARIANTS:
        function = variant_method(name).build(network, {})
        select = _curves(network, function, network.select, tune_points, seed)
        held = _curves(network, function, network.held_out, n_points, seed)
        rows.append(VariantRow(
            name, {metric: float(select[metric].mean() - auto_select[metric].mean()) for metric in select},
            {metric: paired_bootstrap(held[metric], auto.per_sample[metric], seed=seed) for metric in held},
            {(metric, rival): paired_bootstrap(held[metric], methods[rival].per_sample[metric], seed=seed)
             for metric, rival in missed}))
    return rows
