r"""Is an explanation faithful? Deletion and insertion curves, agreement with exact saliency, planted patterns.

Every metric takes a spike map of scores ``(B, T, N)`` from any method (ours, Captum's, TSA, a random
order) and asks the **model** what those scores are worth; none of them trusts the method's own numbers.

Deletion and insertion (Petsiuk et al., 2018, applied to spikes). Order the input spikes of a sample by
their score, highest first (ties by `(t, neuron)`, or in a seeded random order with `tie_seed`); with $n$
spikes and the curve points $f_j = j / (M-1)$, $k_j = \mathrm{round}(f_j n)$:

$$D_j = f_k\bigl(x \text{ without its first } k_j \text{ spikes}\bigr), \qquad
I_j = f_k\bigl(x \text{ with only its first } k_j \text{ spikes}\bigr),$$

$$\mathrm{AUC} = \sum_{j=1}^{M-1} \tfrac{1}{2}(v_{j-1} + v_j)(f_j - f_{j-1}) \quad \text{(trapezoids on } [0, 1]).$$

Each curve is measured twice from the same forward passes: on the raw target output $f_k$ and on its
softmax probability $\mathrm{softmax}(f(x'))_k$ (`Curve.probability`, `Curve.probability_auc`).

A faithful ranking makes the target output fall fast when spikes are deleted (low deletion AUC) and rise
fast when they are inserted into an empty input (high insertion AUC). Only spikes are removed or added:
an entry where the input has no spike cannot be deleted, whatever its score. All ``B * M`` curve points of
a call are rows of one perturbation plan, run by the engine in as few batched forward passes as the
memory budget allows.

Agreement (Spearman): the Pearson correlation of tie-averaged ranks of two score maps over the entries
where the input has a spike, per sample (``NaN`` where either map is constant on those entries).

Sensitivity-n (Ancona et al., 2018) and agreement with whole-input-neuron occlusion live in
`sc_neurocore.explain.faithfulness` and are re-exported here.

Planted patterns: `planted_pattern_task` hides, in each sample, a class-defining spike pattern in
noise; `precision_at_k` is the share of the ``k`` highest-scored spikes that are planted ones,
``k`` the number of planted spikes.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..adapters import as_spiking_model
from ..engine import execute
from ..engine.budget import check_max_memory
from ..engine.plans import Silencing
from ..inputs import as_fraction, as_positive_int, as_spikes, as_targets, as_tensor
from ..protocol import INPUT_LAYER, Recording, SpikingModel
from .perturbation import _check_inputs_fit, target_column

CURVE_KINDS = ("deletion", "insertion")


class Curve(NamedTuple):
    """A deletion or insertion curve per sample.

    Attributes:
        kind: ``"deletion"`` or ``"insertion"``.
        fractions: ``(M,)`` the share of each sample's spikes removed (deletion) or kept (insertion).
        values: ``(B, M)`` the target output at each point.
        counts: ``(B, M)`` the number of spikes removed or kept at each point.
        auc: ``(B,)`` the trapezoid area under ``values`` over ``fractions`` in ``[0, 1]``.
        probability: ``(B, M)`` the softmax probability of the target at each point.
        probability_auc: ``(B,)`` the area under ``probability``.
    """

    kind: str
    fractions: Tensor
    values: Tensor
    counts: Tensor
    auc: Tensor
    probability: Tensor | None = None
    probability_auc: Tensor | None = None


def as_scores(scores: Any, shape: tuple[int, ...], name: str = "scores") -> Tensor:
    """A score map of the same shape as the spikes (``(T, N)`` for one sample), as a float tensor ``(B, T, N)``.

    Accepts a tensor, an array, or a result of ours (``AttributionResult``, ``SaliencyResult``).

    Args:
        scores: the score map or result.
        shape: the spikes' ``(B, T, N)``.
        name: the argument name for error messages.

    Returns:
        A float32 (float64 kept) tensor ``(B, T, N)``.

    Example:
        >>> import numpy as np
        >>> as_scores(np.ones((4, 3)), (1, 4, 3)).shape
        torch.Size([1, 4, 3])
    """
    for accessor in ("attribution_map", "saliency_map"):
        if hasattr(scores, accessor):
            scores = getattr(scores, accessor)()
            break
    tensor, _ = as_tensor(scores, name)
    tensor = tensor.to(torch.float64) if tensor.dtype == torch.float64 else tensor.float()
    if tensor.ndim == 2:
        tensor = tensor.unsqueeze(0)
    if tuple(tensor.shape) != tuple(shape):
        raise ValueError(f"{name}: expected the shape of input_spikes {tuple(shape)} (or (T, N) for one sample), "
                         f"got {tuple(tensor.shape)}")
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name}: expected finite values, found NaN or Inf")
    return tensor


def spike_ranks(spikes: Tensor, scores: Tensor, tie_seed: int | None = None) -> Tensor:
    """Position of every entry of ``(B, T, N)`` in its sample's ordering, flattened to ``(B, T * N)``.

    Spikes come first, by descending score, ties by flat index ``(t, neuron)`` (or, with ``tie_seed``, in
    a random order drawn from that seed); entries without a spike come after every spike, so a prefix of
    length ``k <= n_spikes`` holds spikes only.

    Args:
        spikes: ``(B, T, N)``.
        scores: ``(B, T, N)`` float.
        tie_seed: ``None`` (ties by index) or an int seeding the order of tied scores.

    Returns:
        ``(B, T * N)`` long: rank of each flat entry ``t * N + neuron``.

    Example:
        >>> import torch
        >>> spike_ranks(torch.tensor([[[1.0, 0.0, 1.0]]]), torch.tensor([[[1.0, 5.0, 2.0]]])).tolist()
        [[1, 2, 0]]
    """
    flat_spikes = spikes.reshape(spikes.shape[0], -1) != 0
    flat_scores = scores.reshape(scores.shape[0], -1).to(torch.float64)
    if tie_seed is None:
        by_score = torch.sort(-flat_scores, dim=1, stable=True).indices
    else:  # a stable sort of a random permutation: ties end up in that random order
        generator = torch.Generator().manual_seed(int(tie_seed))
        shuffle = torch.argsort(torch.rand(flat_scores.shape, generator=generator), dim=1).to(flat_scores.device)
        by_score = shuffle.gather(1, torch.sort(-flat_scores.gather(1, shuffle), dim=1, stable=True).indices)
    # Then a stable sort by spike/no-spike, which keeps the score order within each group.
    spike_first = torch.sort((~flat_spikes).gather(1, by_score).to(torch.int8), dim=1, stable=True).indices
    order = by_score.gather(1, spike_first)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return ranks


class _SpikesAsOneStep:
    """A model seen with its ``T x N`` input entries as ``T * N`` input neurons of a single timestep.

    Removing a set of individual spikes is then silencing a set of input neurons, which the engine's
    `sc_neurocore.engine.plans.Silencing` plans describe with one rank per entry and a
    ``[start, stop)`` window per row: the deletion and insertion curves are exactly such plans.
    """

    def __init__(self, model: SpikingModel, n_steps: int, n_inputs: int) -> None:
        self.model = model
        self.n_steps = n_steps
        self._n_inputs = n_inputs

    @property
    def neuron_layers(self) -> dict[str, int]:
        # Sizes scaled by T so that the engine's per-row memory estimate (for one timestep) still counts
        # every timestep's activations.
        return {name: size * self.n_steps for name, size in self.model.neuron_layers.items()}

    @property
    def n_inputs(self) -> int:
        return self.n_steps * self._n_inputs

    def linear_weights(self) -> None:
        return None

    def record(self, spikes: Tensor) -> Recording:
        raise TypeError("model: the flattened view is for perturbation curves only and does not record")

    def run(self, spikes: Tensor, silence: Mapping[str, Tensor] | None = None) -> Tensor:
        if silence:
            raise ValueError("silence: the flattened view silences input spikes only")
        return self.model.run(spikes.reshape(spikes.shape[0], self.n_steps, self._n_inputs))


def _curve_points(n_points: Any) -> int:
    n_points = as_positive_int(n_points, "n_points")
    if n_points < 2:
        raise ValueError(f"n_points: expected at least 2 (the curve's two ends), got {n_points}")
    return n_points


def perturbation_curve(model: Any, input_spikes: Any, scores: Any, output_neuron: Any = 0, *,
                       kind: str = "deletion", n_points: int = 21, batched: bool | None = None,
                       max_memory: int | None = None, tie_seed: int | None = None) -> Curve:
    """Deletion or insertion curve of ``scores`` (see the module docstring).

    Args:
        model: the model, in any form an explainer accepts (a ``SpikingModel``, an ``nn.Module``, a batched
            or unbatched callable).
        input_spikes: ``(T, N)`` or ``(B, T, N)``.
        scores: the explanation: a map of the same shape, or one of our result objects.
        output_neuron: an int or ``(B,)`` targets.
        kind: ``"deletion"`` (remove the highest-scored spikes first) or ``"insertion"`` (start from no
            spikes and add the highest-scored first).
        n_points: ``M``, the number of curve points (fractions ``0, 1/(M-1), .., 1``).
        batched: whether a plain callable is batched (as for the explainers).
        max_memory: peak bytes per forward pass (``None``: automatic).
        tie_seed: ``None`` (tied scores in index order) or an int: tied scores in a random order from it.

    Returns:
        A `Curve` (tensors on the input's device).

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> from sc_neurocore.explain import TemporalSaliency
        >>> from sc_neurocore.explain.metrics import perturbation_curve
        >>> net = LIFNetwork([torch.randn(16, 8), torch.randn(8, 3)], threshold=0.5)
        >>> spikes = (torch.rand(2, 20, 16) < 0.3).float()
        >>> saliency = TemporalSaliency(net).explain(spikes, output_neuron=0)
        >>> curve = perturbation_curve(net, spikes, saliency, 0, kind="deletion", n_points=11)
        >>> curve.values.shape, curve.auc.shape
        (torch.Size([2, 11]), torch.Size([2]))
    """
    if kind not in CURVE_KINDS:
        raise ValueError(f"kind: expected one of {CURVE_KINDS}, got {kind!r}")
    n_points = _curve_points(n_points)
    max_memory = check_max_memory(max_memory)
    batch = as_spikes(input_spikes)
    spikes = batch.spikes
    scores = as_scores(scores, tuple(spikes.shape)).to(spikes.device)
    n_samples, n_steps, n_inputs = spikes.shape
    spiking = as_spiking_model(model, batched=batched, n_inputs=n_inputs, numpy_io=batch.numpy, name="model")
    _check_inputs_fit(spiking, spikes)
    flat_model = _SpikesAsOneStep(spiking, n_steps, n_inputs)
    flat_spikes = spikes.reshape(n_samples, 1, n_steps * n_inputs)

    fractions = torch.linspace(0, 1, n_points, dtype=torch.float64, device=spikes.device)
    n_spikes = (spikes != 0).reshape(n_samples, -1).sum(dim=1)
    counts = torch.round(fractions[None, :] * n_spikes[:, None]).long()  # (B, M)
    ranks = spike_ranks(spikes, scores, tie_seed)
    sample = torch.arange(n_samples, device=spikes.device).repeat_interleave(n_points)
    k = counts.reshape(-1)
    if kind == "deletion":  # row (b, j) silences ranks [0, k_bj): the first k_bj spikes
        start, stop = torch.zeros_like(k), k
    else:  # row (b, j) silences ranks [k_bj, T * N): everything but the first k_bj spikes
        start, stop = k, torch.full_like(k, n_steps * n_inputs)
    plan = Silencing(INPUT_LAYER, sample, ranks, start, stop)
    with torch.inference_mode():
        # The unperturbed outputs first (B rows): they say C, so bad targets fail before the plan runs.
        n_outputs = execute(flat_model, flat_spikes, None, max_memory=max_memory).shape[1]
        targets = as_targets(output_neuron, n_samples, n_outputs, spikes.device)
        outputs = execute(flat_model, flat_spikes, plan, max_memory=max_memory, n_outputs=n_outputs)
    values = target_column(outputs, targets[sample]).reshape(n_samples, n_points).to(torch.float64)
    auc = torch.trapezoid(values, fractions, dim=1)
    probabilities = torch.softmax(outputs.to(torch.float64).reshape(n_samples * n_points, -1), dim=1)
    probability = target_column(probabilities, targets[sample]).reshape(n_samples, n_points)
    return Curve(kind, fractions.clone(), values.clone(), counts.clone(), auc.clone(), probability.clone(),
                 torch.trapezoid(probability, fractions, dim=1).clone())


def deletion_curve(model: Any, input_spikes: Any, scores: Any, output_neuron: Any = 0, **options) -> Curve:
    """`perturbation_curve` with ``kind="deletion"``: lower AUC is more faithful.

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> from sc_neurocore.explain.metrics import deletion_curve
        >>> net = LIFNetwork([torch.randn(16, 3)], threshold=0.5)
        >>> spikes = (torch.rand(20, 16) < 0.3).float()
        >>> deletion_curve(net, spikes, torch.rand(20, 16), 0, n_points=5).values.shape
        torch.Size([1, 5])
    """
    return perturbation_curve(model, input_spikes, scores, output_neuron, kind="deletion", **options)


def insertion_curve(model: Any, input_spikes: Any, scores: Any, output_neuron: Any = 0, **options) -> Curve:
    """`perturbation_curve` with ``kind="insertion"``: higher AUC is more faithful.

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> from sc_neurocore.explain.metrics import insertion_curve
        >>> net = LIFNetwork([torch.randn(16, 3)], threshold=0.5)
        >>> spikes = (torch.rand(20, 16) < 0.3).float()
        >>> insertion_curve(net, spikes, torch.rand(20, 16), 0, n_points=5).values.shape
        torch.Size([1, 5])
    """
    return perturbation_curve(model, input_spikes, scores, output_neuron, kind="insertion", **options)


def _tie_averaged_ranks(values: Tensor) -> Tensor:
    """Rank of every entry within its row (0-based), ties sharing the mean of their positions."""
    ordered = torch.sort(values, dim=1).values
    first = torch.searchsorted(ordered, values, right=False)
    after = torch.searchsorted(ordered, values, right=True)
    return (first + after - 1).to(torch.float64) / 2


def spearman(scores_a: Any, scores_b: Any, input_spikes: Any) -> Tensor:
    """Spearman rank correlation of two score maps over each sample's spikes: ``(B,)`` float64.

    Args:
        scores_a: a score map ``(T, N)`` / ``(B, T, N)`` or a result of ours.
        scores_b: another, same shape.
        input_spikes: the spikes they explain; only entries with a spike are compared.

    Returns:
        One correlation per sample, ``NaN`` where either map is constant over that sample's spikes
        (a rank correlation is undefined there).

    Example:
        >>> import torch
        >>> from sc_neurocore.explain.metrics import spearman
        >>> spikes = torch.ones(1, 2, 3)
        >>> a = torch.arange(6.0).reshape(1, 2, 3)
        >>> float(spearman(a, a ** 3, spikes)[0])
        1.0
    """
    spikes = as_spikes(input_spikes).spikes
    shape = tuple(spikes.shape)
    a = as_scores(scores_a, shape, "scores_a").to(spikes.device, torch.float64).reshape(shape[0], -1)
    b = as_scores(scores_b, shape, "scores_b").to(spikes.device, torch.float64).reshape(shape[0], -1)
    mask = (spikes != 0).reshape(shape[0], -1)
    # Entries without a spike are pushed above every spike's value, so they leave the spikes' ranks alone.
    ranks_a = _tie_averaged_ranks(a.masked_fill(~mask, float("inf")))
    ranks_b = _tie_averaged_ranks(b.masked_fill(~mask, float("inf")))
    weight = mask.to(torch.float64)
    n = weight.sum(dim=1)
    mean_a = (ranks_a * weight).sum(dim=1) / n
    mean_b = (ranks_b * weight).sum(dim=1) / n
    da = (ranks_a - mean_a[:, None]) * weight
    db = (ranks_b - mean_b[:, None]) * weight
    cov = (da * db).sum(dim=1)
    spread = torch.sqrt((da * da).sum(dim=1) * (db * db).sum(dim=1))
    return torch.where(spread > 0, cov / spread, torch.full_like(cov, float("nan")))


def precision_at_k(scores: Any, planted: Any, input_spikes: Any, k: Any = None) -> Tensor:
    """Share of the ``k`` highest-scored spikes of each sample that are planted: ``(B,)`` float64.

    Args:
        scores: a score map or a result of ours.
        planted: bool ``(B, T, N)`` (or ``(T, N)``), true at the planted spikes.
        input_spikes: the spikes; only entries with a spike are ranked.
        k: an int, or ``None`` for each sample's number of planted spikes.

    Returns:
        Precision per sample.

    Example:
        >>> import torch
        >>> from sc_neurocore.explain.metrics import precision_at_k
        >>> spikes = torch.ones(1, 1, 4)
        >>> planted = torch.tensor([[[True, True, False, False]]])
        >>> float(precision_at_k(torch.tensor([[[3.0, 1.0, 2.0, 0.0]]]), planted, spikes)[0])
        0.5
    """
    spikes = as_spikes(input_spikes).spikes
    shape = tuple(spikes.shape)
    score_map = as_scores(scores, shape).to(spikes.device)
    planted_tensor, _ = as_tensor(planted, "planted")
    if planted_tensor.ndim == 2:
        planted_tensor = planted_tensor.unsqueeze(0)
    if tuple(planted_tensor.shape) != shape:
        raise ValueError(f"planted: expected the shape of input_spikes {shape}, got {tuple(planted_tensor.shape)}")
    planted_flat = (planted_tensor.to(spikes.device) != 0).reshape(shape[0], -1)
    spike_flat = (spikes != 0).reshape(shape[0], -1)
    if bool((planted_flat & ~spike_flat).any()):
        raise ValueError("planted: marks an entry where input_spikes has no spike")
    if k is None:
        k_per_sample = planted_flat.sum(dim=1)
    else:
        k_per_sample = torch.full((shape[0],), as_positive_int(k, "k"), device=spikes.device)
    k_per_sample = torch.minimum(k_per_sample, spike_flat.sum(dim=1))
    top = spike_ranks(spikes, score_map) < k_per_sample[:, None]
    hits = (top & planted_flat).sum(dim=1).to(torch.float64)
    return torch.where(k_per_sample > 0, hits / k_per_sample.clamp(min=1), torch.full_like(hits, float("nan")))


class PlantedTask(NamedTuple):
    """A classification task decided by planted spike patterns (see `planted_pattern_task`).

    Attributes:
        spikes: ``(B, T, N)`` float32 spikes: noise plus the sample's class pattern.
        labels: ``(B,)`` classes.
        planted: ``(B, T, N)`` bool, true at the sample's planted spikes.
        pattern_neurons: ``(C, pattern_size)`` the input neurons each class owns.
        pattern_times: ``(C, pattern_size)`` the timestep at which each of them fires in the pattern.
    """

    spikes: Tensor
    labels: Tensor
    planted: Tensor
    pattern_neurons: Tensor
    pattern_times: Tensor


def planted_pattern_task(n_samples: int, *, n_steps: int = 25, n_inputs: int = 64, n_classes: int = 10,
                         pattern_size: int = 4, noise_rate: float = 0.1, seed: int = 0) -> PlantedTask:
    """Samples whose class is decided by a known spike pattern hidden in noise.

    Each class ``c`` owns ``pattern_size`` input neurons (disjoint between classes) and one firing time
    for each (drawn once from ``seed``). A sample of class ``c`` holds exactly that pattern (one spike on
    each of its class's neurons) and Bernoulli noise at ``noise_rate`` on every input neuron that no class
    owns; the other classes' neurons stay silent. The class is therefore decided by the planted spikes
    alone -- neither the noise nor any absence of noise carries it -- and an explanation of the true class
    should rank the planted spikes above every noise spike.

    Args:
        n_samples: ``B``; classes are assigned round-robin then shuffled.
        n_steps: ``T``.
        n_inputs: ``N`` (at least ``n_classes * pattern_size``).
        n_classes: ``C``.
        pattern_size: planted spikes per sample.
        noise_rate: the probability of a noise spike per entry.
        seed: the seed of patterns, noise and class order.

    Returns:
        A `PlantedTask`.

    Example:
        >>> task = planted_pattern_task(20, n_steps=10, n_inputs=16, n_classes=2, pattern_size=3)
        >>> task.spikes.shape, int(task.planted[0].sum())
        (torch.Size([20, 10, 16]), 3)
    """
    n_samples = as_positive_int(n_samples, "n_samples")
    n_steps = as_positive_int(n_steps, "n_steps")
    n_inputs = as_positive_int(n_inputs, "n_inputs")
    n_classes = as_positive_int(n_classes, "n_classes")
    pattern_size = as_positive_int(pattern_size, "pattern_size")
    noise_rate = as_fraction(noise_rate, "noise_rate")
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
        raise TypeError(f"seed: expected an int, got {seed!r}")
    if n_classes * pattern_size > n_inputs:
        raise ValueError(f"n_inputs: {n_classes} classes x {pattern_size} pattern neurons need at least "
                         f"{n_classes * pattern_size} input neurons, got {n_inputs}")
    generator = torch.Generator().manual_seed(int(seed))
    pattern_neurons = torch.randperm(n_inputs, generator=generator)[:n_classes * pattern_size]
    pattern_neurons = pattern_neurons.reshape(n_classes, pattern_size)
    pattern_times = torch.randint(0, n_steps, (n_classes, pattern_size), generator=generator)
    labels = torch.arange(n_samples) % n_classes
    labels = labels[torch.randperm(n_samples, generator=generator)]

    owned = torch.zeros(n_classes, n_inputs, dtype=torch.bool)
    owned.scatter_(1, pattern_neurons, True)
    noise = torch.rand(n_samples, n_steps, n_inputs, generator=generator) < noise_rate
    # Pattern neurons carry patterns only: noise on them would either mimic a pattern or, by its absence
    # on the true class's neurons, give the class away without the planted spikes.
    noise &= ~owned.any(dim=0)[None, None, :]
    planted = torch.zeros(n_samples, n_steps, n_inputs, dtype=torch.bool)
    rows = torch.arange(n_samples)[:, None].expand(n_samples, pattern_size)
    planted[rows, pattern_times[labels], pattern_neurons[labels]] = True
    spikes = (noise | planted).to(torch.float32)
    return PlantedTask(spikes, labels, planted, pattern_neurons, pattern_times)


# Re-exported: every faithfulness metric is reachable from this module.
from .faithfulness import SubsetDrops, occlusion_agreement, occlusion_drops, sensitivity_n, subset_drops  # noqa: E402

__all__ = ["CURVE_KINDS", "Curve", "PlantedTask", "SubsetDrops", "as_scores", "deletion_curve", "insertion_curve",
           "occlusion_agreement", "occlusion_drops", "perturbation_curve", "planted_pattern_task", "precision_at_k",
           "sensitivity_n", "spearman", "spike_ranks", "subset_drops"]
