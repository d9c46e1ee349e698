r"""Measured reasons for a missed target: what the data say about why a rival is not beaten.

For a network where `mode="auto"` does not beat a rival, the report measures, on the held-out digits:

- **silent hidden neurons** (`silent_neurons`): per hidden layer, the share of neurons that never fire on
  any held-out digit, and the mean share silent within a digit. The spike rule credits a kick only through
  a later recorded spike, so a silent neuron passes no credit; the linear rule credits every weight path;
- **zero credit** (`zero_credit`): the share of input spikes to which `mode="auto"` gives exactly 0 while the
  rival does not (and the converse);
- **the linear rule's paths through silent neurons** (`silent_path_share`): of the linear rule's path weight
  over the input spikes, $\sum |W_1[i, j]\, p_j|$ with $p = W_2 \cdots W_L e_k$, the share that runs through
  first-layer hidden neurons $j$ that do not fire at or after the spike's step (a dense chain only);
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


def after_last_spike(spikes: Tensor) -> Tensor:
    """`(B, T, n)` bool: no spike at or after the step.

    Example:
        >>> import torch
        >>> after_last_spike(torch.tensor([[[1.0], [0.0], [1.0], [0.0]]]))[0, :, 0].tolist()
        [False, False, False, True]
    """
    return torch.flip(torch.cumsum(torch.flip((spikes != 0).to(torch.int32), [1]), 1), [1]) == 0


def silent_path_share(model: Any, spikes: Tensor, targets: Tensor) -> float | None:
    r"""The share of the linear rule's path weight over the input spikes that runs through first-layer hidden
    neurons silent from the spike's step on (the module docstring); `None` without a dense weight chain or
    hidden layer.

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> net = LIFNetwork([torch.tensor([[2.0, 0.0], [0.0, 0.05]]), torch.ones(2, 1)])
        >>> round(silent_path_share(net, torch.ones(1, 4, 2), torch.tensor([0])), 4)  # 0.05 of 2.05 a spike
        0.0244
    """
    chain = model.linear_weights() if callable(getattr(model, "linear_weights", None)) else None
    if chain is None or len(chain) < 2:
        return None
    graph = model_graph(model, spikes)
    dtype = graph._dtype()
    x = spikes.to(dtype)
    hidden = graph.record(x).layers[0].spikes
    weights = [torch.as_tensor(w, dtype=dtype) for w in chain]
    path = torch.zeros(x.shape[0], weights[-1].shape[1], dtype=dtype)
    path[torch.arange(x.shape[0]), targets] = 1.0
    for weight in reversed(weights[1:]):
        path = path @ weight.T  # (B, n_1) at the end: p = W_2 ... W_L e_k
    per_neuron = (x @ weights[0].abs()) * path.abs()[:, None, :]  # (B, T, n_1): sum over spikes of |W_1 p|
    total = float(per_neuron.sum())
    if total == 0:
        return float("nan")
    return float((per_neuron * after_last_spike(hidden)).sum()) / total


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
