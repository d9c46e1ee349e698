"""Perturbation plans: which copies of which samples to run, described by index tensors.

A plan never holds the perturbed inputs themselves: those are materialised chunk by chunk by an
executor, so a plan of 10^6 perturbations costs a few index tensors. Row ``p`` of a plan is one
perturbed copy of input sample ``plan.sample[p]``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class SpikeRemovals(NamedTuple):
    """Each row removes one input spike: entry ``(timestep[p], neuron[p])`` of sample ``sample[p]`` is set to 0."""

    sample: Tensor
    timestep: Tensor
    neuron: Tensor

    def __len__(self) -> int:
        return self.sample.shape[0]

    def rows(self, start: int, stop: int) -> SpikeRemovals:
        return SpikeRemovals(self.sample[start:stop], self.timestep[start:stop], self.neuron[start:stop])


class Silencing(NamedTuple):
    """Each row silences, in ``layer`` and at every timestep, the neurons whose ``rank`` lies in
    ``[start[p], stop[p])``.

    With ``rank = arange(n)`` and ``stop = start + 1`` a row silences one neuron; with ``rank`` the
    position of each neuron in an ordering and ``start = 0`` a row silences the first ``stop[p]``
    neurons of that ordering (a cumulative prefix). ``rank`` is either ``(n,)``, shared by all rows, or
    ``(B, n)``, one ordering per input sample.
    """

    layer: str
    sample: Tensor
    rank: Tensor
    start: Tensor
    stop: Tensor

    def __len__(self) -> int:
        return self.sample.shape[0]

    def rows(self, start: int, stop: int) -> Silencing:
        return Silencing(self.layer, self.sample[start:stop], self.rank, self.start[start:stop],
                         self.stop[start:stop])

    def masks(self) -> Tensor:
        """``(P, n)`` bool: which neurons each row silences."""
        rank = self.rank if self.rank.ndim == 1 else self.rank[self.sample]
        return (rank >= self.start[:, None]) & (rank < self.stop[:, None])


def remove_each_spike(spikes: Tensor) -> SpikeRemovals:
    """One row per non-zero entry of ``spikes`` ``(B, T, N)``, in ``(sample, timestep, neuron)`` order."""
    sample, timestep, neuron = torch.nonzero(spikes, as_tuple=True)
    return SpikeRemovals(sample, timestep, neuron)


def silence_each_neuron(layer: str, n_neurons: int, n_samples: int, device: torch.device) -> Silencing:
    """One row per ``(sample, neuron)`` pair, sample-major: row ``b * n + j`` silences neuron ``j`` of sample ``b``."""
    neuron = torch.arange(n_neurons, device=device).repeat(n_samples)
    sample = torch.arange(n_samples, device=device).repeat_interleave(n_neurons)
    return Silencing(layer, sample, torch.arange(n_neurons, device=device), neuron, neuron + 1)


def silence_prefixes(layer: str, order: Tensor, n_samples: int) -> Silencing:
    """Rows ``b * (n + 1) + k`` silence the first ``k`` neurons of ``order`` for sample ``b``, ``k = 0 .. n``.

    ``order`` is ``(n,)`` (one ordering for all samples) or ``(B, n)`` (one per sample).
    """
    n_neurons = order.shape[-1]
    device = order.device
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(n_neurons, device=device).expand_as(order))
    k = torch.arange(n_neurons + 1, device=device).repeat(n_samples)
    sample = torch.arange(n_samples, device=device).repeat_interleave(n_neurons + 1)
    return Silencing(layer, sample, rank, torch.zeros_like(k), k)
