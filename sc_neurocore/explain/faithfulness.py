r"""Two more faithfulness metrics: sensitivity-n and agreement with whole-input-neuron occlusion.

Both ask the model what removing spikes does, once per network and samples, and then score any number of
explanations against those drops without running the model again.

**Sensitivity-n** (Ancona, Ceolini, Oztireli and Gross, ICLR 2018). For a sample $x$ with target $k$, draw
$R$ random subsets $S_r$ of $n$ of its spikes; an explanation $A$ is sensitive-n when the summed scores of a
subset predict the output drop when the subset is removed:

$$\rho_n = \mathrm{corr}_r\Bigl(\sum_{(t, i) \in S_r} A[t, i],\; f_k(x) - f_k(x \setminus S_r)\Bigr)$$

(Pearson over the $R$ subsets, per sample; `NaN` where either side is constant over them, e.g. when no
subset moves the output). Here $n$ is a share of each sample's spikes. The subsets are drawn from a seed
and are the same for every method.

**Occlusion agreement.** Removing all spikes of input neuron $i$ drops the target by
$o_i = f_k(x) - f_k(x \text{ without neuron } i)$; an explanation's neuron score is $\sum_t A[t, i]$; the
agreement is the Spearman correlation of the two over the neurons that spike in the sample (`NaN` where
either is constant).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..adapters import as_spiking_model
from ..engine import execute
from ..engine.plans import Silencing
from ..inputs import as_positive_int, as_spikes, as_targets
from ..protocol import INPUT_LAYER
from .perturbation import target_column


class SubsetDrops(NamedTuple):
    """The model's side of sensitivity-n (see the module docstring).

    Attributes:
        fractions: `(S,)` the subset sizes as shares of each sample's spikes.
        sizes: `(B, S)` the subset sizes in spikes (at least 1 where the sample has a spike).
        order: `(B, R, L)` flat positions `t * N + i` of each sample's spikes in a random order per subset
            (padded with 0 beyond the sample's spike count); subset `(r, s)` is the first `sizes[b, s]`.
        drops: `(B, S, R)` the target's output drop when each subset is removed.
    """

    fractions: Tensor
    sizes: Tensor
    order: Tensor
    drops: Tensor


def _run_rows(model: Any, rows: Tensor, chunk: int) -> Tensor:
    with torch.inference_mode():
        return torch.cat([model.run(rows[start:start + chunk]) for start in range(0, rows.shape[0], chunk)])


def subset_drops(model: Any, input_spikes: Any, output_neuron: Any = 0, *,
                 fractions: Sequence[float] = (0.01, 0.05, 0.2, 0.5), n_subsets: int = 16, seed: int = 0,
                 chunk: int = 256) -> SubsetDrops:
    """Draw the random spike subsets of sensitivity-n and measure each one's output drop.

    Args:
        model: a `SpikingModel` (or anything the explainers accept), batched.
        input_spikes: `(B, T, N)` (or `(T, N)`).
        output_neuron: an int or `(B,)` targets.
        fractions: subset sizes, as shares of each sample's spikes in `(0, 1]`.
        n_subsets: `R`, subsets per size.
        seed: seeds the subsets.
        chunk: rows per forward pass.

    Returns:
        A `SubsetDrops`.

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> net = LIFNetwork([torch.randn(12, 3) * 2], threshold=0.5)
        >>> spikes = (torch.rand(2, 10, 12) < 0.3).float()
        >>> subset_drops(net, spikes, 0, fractions=(0.1, 0.5), n_subsets=4).drops.shape
        torch.Size([2, 2, 4])
    """
    spikes = as_spikes(input_spikes).spikes
    n_samples, n_steps, n_inputs = spikes.shape
    spiking = as_spiking_model(model, batched=True, n_inputs=n_inputs, numpy_io=False, name="model")
    n_subsets, chunk = as_positive_int(n_subsets, "n_subsets"), as_positive_int(chunk, "chunk")
    shares = torch.as_tensor(list(fractions), dtype=torch.float64)
    if shares.ndim != 1 or not len(shares) or bool(((shares <= 0) | (shares > 1)).any()):
        raise ValueError(f"fractions: expected shares in (0, 1], got {list(fractions)!r}")
    flat = (spikes != 0).reshape(n_samples, -1)
    n_spikes = flat.sum(dim=1)
    sizes = torch.clamp(torch.round(shares[None, :] * n_spikes[:, None]).long(), min=1)
    sizes = torch.minimum(sizes, n_spikes[:, None])
    generator = torch.Generator().manual_seed(int(seed))
    keys = torch.rand(n_samples, n_subsets, flat.shape[1], generator=generator, dtype=torch.float64)
    keys = keys.masked_fill(~flat[:, None, :].cpu(), 2.0)  # entries without a spike sort last
    length = max(int(n_spikes.max()), 1)
    order = torch.argsort(keys, dim=2)[:, :, :length].to(spikes.device)
    baseline = _run_rows(spiking, spikes, chunk)
    targets = as_targets(output_neuron, n_samples, baseline.shape[1], spikes.device)
    base = target_column(baseline, targets).to(torch.float64)
    rows, index = [], []
    for b in range(n_samples):
        for s in range(len(shares)):
            for r in range(n_subsets):
                removed = order[b, r, :sizes[b, s]]
                row = spikes[b].reshape(-1).clone()
                row[removed] = 0
                rows.append(row.reshape(n_steps, n_inputs))
                index.append(b)
    perturbed = _run_rows(spiking, torch.stack(rows), chunk)
    values = target_column(perturbed, targets[torch.tensor(index, device=spikes.device)]).to(torch.float64)
    drops = base[:, None, None] - values.reshape(n_samples, len(shares), n_subsets)
    return SubsetDrops(shares, sizes, order, drops)


def _pearson(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation along the last dimension; `NaN` where either side is constant."""
    da, db = a - a.mean(dim=-1, keepdim=True), b - b.mean(dim=-1, keepdim=True)
    spread = torch.sqrt((da * da).sum(dim=-1) * (db * db).sum(dim=-1))
    cov = (da * db).sum(dim=-1)
    # Relative tolerance: sums of float scores that are equal in exact arithmetic may differ in the last bits.
    scale = torch.sqrt((a * a).sum(dim=-1) * (b * b).sum(dim=-1))
    return torch.where(spread > 1e-12 * scale.clamp(min=1e-300), cov / spread, torch.full_like(cov, float("nan")))


def sensitivity_n(scores: Any, drops: SubsetDrops) -> Tensor:
    """Sensitivity-n of an explanation: `(B, S)` correlations, `NaN` where undefined.

    Args:
        scores: the explanation `(B, T, N)` (a tensor or a result of ours).
        drops: what `subset_drops` measured on the same spikes.

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> net = LIFNetwork([torch.randn(12, 3) * 2], threshold=0.5)
        >>> spikes = (torch.rand(2, 10, 12) < 0.3).float()
        >>> drops = subset_drops(net, spikes, 0, fractions=(0.5,), n_subsets=6)
        >>> sensitivity_n(torch.rand(2, 10, 12), drops).shape
        torch.Size([2, 1])
    """
    from .metrics import as_scores

    n_samples, _n_sizes, n_subsets = drops.drops.shape
    flat = as_scores(scores, _shape_of(scores)).reshape(n_samples, -1)
    ordered = flat.to(torch.float64).to(drops.order.device)[:, None, :].expand(-1, n_subsets, -1)
    summed = torch.cumsum(ordered.gather(2, drops.order), dim=2)  # (B, R, L): prefix sums along each order
    picked = summed.gather(2, (drops.sizes - 1).clamp(min=0)[:, None, :].expand(-1, n_subsets, -1))  # (B, R, S)
    return _pearson(picked.permute(0, 2, 1), drops.drops)


def _shape_of(scores: Any) -> tuple[int, ...]:
    for accessor in ("attribution_map", "saliency_map"):
        if hasattr(scores, accessor):
            scores = getattr(scores, accessor)()
            break
    shape = tuple(torch.as_tensor(scores).shape)
    return shape if len(shape) == 3 else (1, *shape)


def occlusion_drops(model: Any, input_spikes: Any, output_neuron: Any = 0, *,
                    max_memory: int | None = None) -> Tensor:
    """The target's output drop when each input neuron's whole spike train is removed: `(B, N)` float64,
    `NaN` for a neuron without spikes in that sample.

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> net = LIFNetwork([torch.randn(6, 2) * 2], threshold=0.5)
        >>> spikes = (torch.rand(1, 8, 6) < 0.4).float()
        >>> occlusion_drops(net, spikes, 1).shape
        torch.Size([1, 6])
    """
    spikes = as_spikes(input_spikes).spikes
    n_samples, _, n_inputs = spikes.shape
    spiking = as_spiking_model(model, batched=True, n_inputs=n_inputs, numpy_io=False, name="model")
    active = (spikes != 0).any(dim=1)  # (B, N)
    sample, neuron = torch.nonzero(active, as_tuple=True)
    with torch.inference_mode():
        baseline = execute(spiking, spikes, None, max_memory=max_memory)
        targets = as_targets(output_neuron, n_samples, baseline.shape[1], spikes.device)
        plan = Silencing(INPUT_LAYER, sample, torch.arange(n_inputs, device=spikes.device), neuron, neuron + 1)
        outputs = execute(spiking, spikes, plan, max_memory=max_memory, n_outputs=baseline.shape[1])
    base = target_column(baseline, targets).to(torch.float64)
    result = torch.full((n_samples, n_inputs), float("nan"), dtype=torch.float64, device=spikes.device)
    result[sample, neuron] = base[sample] - target_column(outputs, targets[sample]).to(torch.float64)
    return result


def occlusion_agreement(scores: Any, drops: Tensor) -> Tensor:
    """Spearman correlation, per sample, of an explanation's neuron scores `sum_t A[t, i]` with the
    occlusion drops of `occlusion_drops`, over the neurons that spike: `(B,)`, `NaN` where undefined.

    Example:
        >>> import torch
        >>> drops = torch.tensor([[3.0, 1.0, float("nan"), 2.0]])
        >>> float(occlusion_agreement(torch.tensor([[[3.0, 0.0, 9.0, 1.0]]]), drops)[0])
        1.0
    """
    from .metrics import _tie_averaged_ranks, as_scores

    _n_samples, n_inputs = drops.shape
    shape = _shape_of(scores)
    neuron_scores = as_scores(scores, shape).to(torch.float64).sum(dim=1).to(drops.device)
    if neuron_scores.shape != drops.shape:
        raise ValueError(f"scores: expected {n_inputs} input neurons per sample like drops, got "
                         f"{tuple(neuron_scores.shape)}")
    mask = ~torch.isnan(drops)
    ranks_a = _tie_averaged_ranks(neuron_scores.masked_fill(~mask, float("inf")))
    ranks_b = _tie_averaged_ranks(drops.masked_fill(~mask, float("inf")))
    weight = mask.to(torch.float64)
    n = weight.sum(dim=1).clamp(min=1)
    da = (ranks_a - (ranks_a * weight).sum(dim=1, keepdim=True) / n[:, None]) * weight
    db = (ranks_b - (ranks_b * weight).sum(dim=1, keepdim=True) / n[:, None]) * weight
    spread = torch.sqrt((da * da).sum(dim=1) * (db * db).sum(dim=1))
    cov = (da * db).sum(dim=1)
    return torch.where(spread > 0, cov / spread, torch.full_like(cov, float("nan")))
