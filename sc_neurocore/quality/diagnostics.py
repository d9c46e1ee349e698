r"""Measured reasons for a missed target: what the data say about why a rival is not beaten.

For a network where `mode="auto"` does not beat a rival, the report measures, on the held-out digits:

- **silent hidden neurons** (`silent_neurons`): per hidden layer, the share of neurons that never fire on
  any held-out digit, and the mean share silent within a digit. The spike rule credits a kick only through
  a later recorded spike, so a silent neuron passes no credit; the linear rule credits every weight path;
- **zero credit** (`zero_credit`): the share of input spikes to which `mode="auto"` gives exactly 0 while the
  rival does not (and the converse);
- **where on the curve** (`segments`): the paired difference of the partial areas under the deletion or
  insertion curve over the first `split` share of spikes removed (inserted) and over the rest; the two sum
  to the AUC difference.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..explain.credit import model_graph
from .stats import Paired, paired_bootstrap

#: The share of spikes that splits a curve into its first segment and the rest.
SPLIT = 0.2


class Silent(NamedTuple):
    """Silent neurons of one hidden layer.

    Attributes:
        layer: the layer's name in the model graph.
        size: its neurons.
        never: the share of neurons that fire on no sample.
        per_sample: the mean, over samples, of the share of neurons silent in that sample.
    """

    layer: str
    size: int
    never: float
    per_sample: float


def silent_neurons(model: Any, spikes: Tensor) -> list[Silent]:
    """Silent neurons of every hidden layer of `model` on `spikes` `(B, T, N)` (its traced graph's recording).

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> net = LIFNetwork([torch.tensor([[2.0, 0.0, 0.0, 0.0]]), torch.ones(4, 1)])
        >>> silent_neurons(net, torch.ones(2, 3, 1))
        [Silent(layer='0', size=4, never=0.75, per_sample=0.75)]
    """
    graph = model_graph(model, spikes)
    recording = graph.record(spikes.to(graph._dtype()))
    found = []
    for record in recording.layers[:-1]:
        counts = (record.spikes != 0).sum(dim=1).reshape(spikes.shape[0], -1)  # (B, n)
        silent = counts == 0
        found.append(Silent(record.name, int(silent.shape[1]), float(silent.all(dim=0).double().mean()),
                            float(silent.double().mean())))
    return found


class ZeroCredit(NamedTuple):
    """Input spikes one method gives exactly 0 and the other not.

    Attributes:
        n_spikes: input spikes compared.
        only_first: the share with the first method's score 0 and the second's not.
        only_second: the converse.
    """

    n_spikes: int
    only_first: float
    only_second: float


def zero_credit(first: Tensor, second: Tensor, spikes: Tensor) -> ZeroCredit:
    """Compare where two explanations `(B, T, N)` of `spikes` are exactly 0, over the input spikes.

    Example:
        >>> import torch
        >>> x = torch.ones(1, 2, 2)
        >>> zero_credit(torch.tensor([[[0.0, 1.0], [0.0, 0.0]]]), torch.ones(1, 2, 2), x)
        ZeroCredit(n_spikes=4, only_first=0.75, only_second=0.0)
    """
    fired = spikes != 0
    n = int(fired.sum())
    if n == 0:
        return ZeroCredit(0, float("nan"), float("nan"))
    zero_a, zero_b = (first == 0) & fired, (second == 0) & fired
    return ZeroCredit(n, float((zero_a & ~zero_b).sum()) / n, float((zero_b & ~zero_a).sum()) / n)


class Segments(NamedTuple):
    """A paired curve-area difference `a - b` split at a share of spikes.

    Attributes:
        split: the share that splits the curve.
        first: the difference of the areas over shares `[0, split]`.
        rest: over `[split, 1]`.
    """

    split: float
    first: Paired
    rest: Paired


def segments(a: Tensor, b: Tensor, fractions: Tensor, split: float = SPLIT, seed: int = 0) -> Segments:
    """Paired differences of the partial trapezoid areas of per-sample curves `a`, `b` `(B, M)` over
    `fractions` `(M,)` (the curve's own points; `split` must be one of them).

    Raises:
        ValueError: `split` is not a point of the curve.

    Example:
        >>> import torch
        >>> f = torch.linspace(0, 1, 6, dtype=torch.float64)
        >>> a, b = torch.ones(3, 6, dtype=torch.float64), torch.zeros(3, 6, dtype=torch.float64)
        >>> found = segments(a, b, f, 0.2)
        >>> round(found.first.mean, 6), round(found.rest.mean, 6)
        (0.2, 0.8)
    """
    fractions = fractions.to(torch.float64)
    at = torch.isclose(fractions, torch.tensor(split, dtype=torch.float64))
    if not bool(at.any()):
        raise ValueError(f"split: expected one of the curve's points {fractions.tolist()}, got {split}")
    cut = int(at.nonzero()[0])

    def area(values: Tensor, lo: int, hi: int) -> Tensor:
        return torch.trapezoid(values[:, lo:hi + 1].to(torch.float64), fractions[lo:hi + 1], dim=1)

    last = fractions.numel() - 1
    return Segments(split, paired_bootstrap(area(a, 0, cut), area(b, 0, cut), seed=seed),
                    paired_bootstrap(area(a, cut, last), area(b, cut, last), seed=seed))


def where_text(found: Segments, metric: str) -> str:
    """Which segment of the curve the rival gains in, read off the paired intervals.

    Example:
        >>> import torch
        >>> f = torch.linspace(0, 1, 6, dtype=torch.float64)
        >>> a = torch.tensor([[1.0, 0, 0, 0, 0, 0], [1.1, 0, 0, 0, 0, 0]], dtype=torch.float64)
        >>> where_text(segments(a, torch.zeros(2, 6, dtype=torch.float64), f), "deletion")
        'the rival is ahead in the first 20% of removals, and neither is ahead in the rest'
    """
    verb = "removals" if metric.startswith("deletion") else "insertions"

    def state(paired: Paired) -> str:
        if not paired.excludes_zero:
            return "neither is ahead"
        auto_ahead = paired.high < 0 if metric.startswith("deletion") else paired.low > 0
        return "auto is ahead" if auto_ahead else "the rival is ahead"

    return f"{state(found.first)} in the first {found.split:.0%} of {verb}, and {state(found.rest)} in the rest"
