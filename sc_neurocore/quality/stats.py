r"""Paired bootstrap confidence intervals for the differences the report claims.

For per-sample values $a_b$ and $b_b$ of two methods on the same samples, the difference $d_b = a_b - b_b$ is
resampled with replacement $R$ times (seeded); the 95% interval is the 2.5% and 97.5% percentiles of the
resampled means. Samples where either value is undefined (`NaN`) are left out of that difference and
counted (`Paired.n_undefined`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor


class Paired(NamedTuple):
    """A paired difference `a - b`.

    Attributes:
        mean: the mean difference over the samples where both are defined.
        low, high: its paired-bootstrap 95% interval.
        n: samples used.
        n_undefined: samples left out because a value was undefined.
    """

    mean: float
    low: float
    high: float
    n: int
    n_undefined: int

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies strictly on one side of 0."""
        return self.n > 0 and (self.low > 0 or self.high < 0)

    def text(self, digits: int = 3) -> str:
        """`mean [low, high]`, or `n/a` with no defined sample."""
        if self.n == 0:
            return "n/a"
        return f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def paired_bootstrap(a: Tensor, b: Tensor, *, n_resamples: int = 2000, seed: int = 0) -> Paired:
    """The mean of `a - b` with a paired-bootstrap 95% interval (see the module docstring).

    Example:
        >>> import torch
        >>> result = paired_bootstrap(torch.tensor([1.0, 2.0, 3.0, float("nan")]), torch.zeros(4))
        >>> result.mean, result.n, result.n_undefined, result.excludes_zero
        (2.0, 3, 1, True)
    """
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a, b: expected two (B,) per-sample vectors, got {tuple(a.shape)} and {tuple(b.shape)}")
    defined = ~(torch.isnan(a) | torch.isnan(b))
    difference = (a - b)[defined]
    n = int(difference.numel())
    if n == 0:
        return Paired(math.nan, math.nan, math.nan, 0, int(a.numel()))
    generator = torch.Generator().manual_seed(int(seed))
    draws = torch.randint(0, n, (n_resamples, n), generator=generator)
    means = difference[draws].mean(dim=1)
    low, high = torch.quantile(means, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return Paired(float(difference.mean()), low, high, n, int(a.numel()) - n)


def defined_mean(values: Tensor) -> tuple[float, int]:
    """The mean over defined values and the number of undefined ones.

    Example:
        >>> import torch
        >>> defined_mean(torch.tensor([1.0, float("nan"), 3.0]))
        (2.0, 1)
    """
    values = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    finite = values[~torch.isnan(values)]
    return (float(finite.mean()) if finite.numel() else math.nan), int(values.numel() - finite.numel())
