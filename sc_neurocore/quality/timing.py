"""A task where only spike timing decides the class, and how well a method finds the spikes that matter.

`timing_task`: `n_pattern` input neurons are paired up differently by each class (class `c` uses the
`c`-th perfect matching of a round-robin schedule). In a sample of class `c`, the two neurons of each of its
pairs fire together at a random time (the **planted** spikes), and every pattern neuron also fires
`n_distractors` **distractor** spikes at other random times; the remaining inputs carry Bernoulli noise.
Every pattern neuron fires the same number of spikes in every class, so which neurons fired says nothing:
only which spikes coincide does.

`separation`: for each pattern neuron of a sample, the share of (planted, distractor) pairs of its own
spikes in which the method scores the planted spike higher (ties count one half); averaged per sample.
Chance is 0.5; a method that finds the coincidences scores near 1. A method that only knows which neurons
matter, or how many spikes they fired, cannot beat chance: planted and distractor spikes share the neuron.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..inputs import as_positive_int


class TimingTask(NamedTuple):
    """Samples of `timing_task`.

    Attributes:
        spikes: `(B, T, N)` float32.
        labels: `(B,)` classes.
        planted: `(B, T, N)` bool, the coincident spikes that decide the class.
        distractor: `(B, T, N)` bool, the other spikes of the pattern neurons.
        n_pattern: the pattern neurons are inputs `0 .. n_pattern - 1`.
    """

    spikes: Tensor
    labels: Tensor
    planted: Tensor
    distractor: Tensor
    n_pattern: int


def matchings(n: int) -> list[list[tuple[int, int]]]:
    """The `n - 1` perfect matchings of a round-robin schedule of `n` (even) players; no pair repeats.

    Example:
        >>> matchings(4)
        [[(3, 0), (1, 2)], [(3, 1), (2, 0)], [(3, 2), (0, 1)]]
    """
    if n < 2 or n % 2:
        raise ValueError(f"n_pattern: expected an even number >= 2, got {n}")
    rounds = []
    for r in range(n - 1):
        pairs = [(n - 1, r)]
        pairs += [((r + k) % (n - 1), (r - k) % (n - 1)) for k in range(1, n // 2)]
        rounds.append(pairs)
    return rounds


def timing_task(n_samples: int, *, n_steps: int = 25, n_pattern: int = 8, n_noise: int = 24, n_classes: int = 4,
                n_distractors: int = 2, noise_rate: float = 0.05, seed: int = 0) -> TimingTask:
    """Samples whose class only the timing of their spikes decides (see the module docstring).

    Example:
        >>> task = timing_task(8, n_steps=12, n_pattern=4, n_noise=4, n_classes=3)
        >>> task.spikes.shape, int(task.planted[0].sum()), int(task.distractor[0].sum())
        (torch.Size([8, 12, 8]), 4, 8)
    """
    n_samples, n_steps = as_positive_int(n_samples, "n_samples"), as_positive_int(n_steps, "n_steps")
    schedule = matchings(n_pattern)
    if not 2 <= n_classes <= len(schedule):
        raise ValueError(f"n_classes: expected 2 to {len(schedule)} for {n_pattern} pattern neurons, got {n_classes}")
    if n_steps < n_pattern // 2 + n_distractors + 1:
        raise ValueError(f"n_steps: too few timesteps ({n_steps}) for the pairs and distractors")
    generator = torch.Generator().manual_seed(int(seed))
    labels = torch.arange(n_samples) % n_classes
    labels = labels[torch.randperm(n_samples, generator=generator)]
    n_inputs = n_pattern + n_noise
    planted = torch.zeros(n_samples, n_steps, n_inputs, dtype=torch.bool)
    distractor = torch.zeros_like(planted)
    for b in range(n_samples):
        pairs = schedule[int(labels[b])]
        times = torch.randperm(n_steps, generator=generator)[:len(pairs)]  # one distinct time per pair
        for (i, j), t in zip(pairs, times.tolist(), strict=False):
            planted[b, t, i] = planted[b, t, j] = True
        for neuron in range(n_pattern):
            free = torch.nonzero(~planted[b, :, neuron])[:, 0]
            chosen = free[torch.randperm(len(free), generator=generator)[:n_distractors]]
            distractor[b, chosen, neuron] = True
    noise = torch.rand(n_samples, n_steps, n_inputs, generator=generator) < noise_rate
    noise[:, :, :n_pattern] = False
    spikes = (planted | distractor | noise).to(torch.float32)
    return TimingTask(spikes, labels, planted, distractor, n_pattern)


def separation(scores: Tensor, task: TimingTask) -> Tensor:
    """Per sample, the share of same-neuron (planted, distractor) pairs where the planted spike scores
    higher (ties one half): `(B,)` float64, `NaN` for a sample without such pairs.

    Example:
        >>> task = timing_task(4, n_steps=12, n_pattern=4, n_noise=4, n_classes=2)
        >>> separation(task.planted.double(), task).tolist()
        [1.0, 1.0, 1.0, 1.0]
    """
    scores = torch.as_tensor(scores, dtype=torch.float64)
    if tuple(scores.shape) != tuple(task.spikes.shape):
        raise ValueError(f"scores: expected the task's shape {tuple(task.spikes.shape)}, got {tuple(scores.shape)}")
    n_samples = scores.shape[0]
    result = torch.full((n_samples,), float("nan"), dtype=torch.float64)
    for b in range(n_samples):
        wins, pairs = 0.0, 0
        for neuron in range(task.n_pattern):
            good = scores[b, task.planted[b, :, neuron], neuron]
            bad = scores[b, task.distractor[b, :, neuron], neuron]
            if good.numel() and bad.numel():
                compare = good[:, None] - bad[None, :]
                wins += float((compare > 0).sum()) + 0.5 * float((compare == 0).sum())
                pairs += compare.numel()
        if pairs:
            result[b] = wins / pairs
    return result
