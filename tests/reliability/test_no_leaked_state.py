"""No leaked state: a sample's explanation depends only on that sample and the model -- not on what was
explained before (other batch sizes, other lengths, other targets) nor on the rest of its batch -- for
every kind of model the explainers take."""

from __future__ import annotations

import pytest
import torch

from conftest import require_module

from .zoo import ZOO, ZOO_IDS, explanations, spikes


def _same(name: str, a: torch.Tensor, b: torch.Tensor) -> None:
    if name.startswith("attribution[gated]"):
        # Gated paths pass through float32 matrix products whose rounding depends on a row's place in
        # memory (see test_properties.py); every other result is exact.
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    else:
        assert torch.equal(a, b), name


def _needs(entry) -> None:
    for module, extra in entry.needs:
        require_module(module, extra)


@pytest.mark.parametrize("entry", ZOO, ids=ZOO_IDS)
def test_result_does_not_depend_on_what_ran_before(entry):
    _needs(entry)
    model = entry.build()
    sample = spikes(1, seed=1)[0]
    first = explanations(entry, model, sample, 2)
    # In between: other batch sizes, another number of timesteps, per-sample targets.
    explanations(entry, model, spikes(3, seed=2), torch.tensor([1, 0, 2]))
    explanations(entry, model, spikes(2, steps=7, seed=3))
    explanations(entry, model, spikes(1, steps=20, seed=4, rate=0.9)[0], 1)
    again = explanations(entry, model, sample, 2)
    fresh = explanations(entry, entry.build(), sample, 2)
    assert first.keys() == again.keys() == fresh.keys()
    for name in first:
        _same(name, again[name], first[name])
        _same(name, fresh[name], first[name])


@pytest.mark.parametrize("entry", ZOO, ids=ZOO_IDS)
def test_result_does_not_depend_on_the_rest_of_the_batch(entry):
    _needs(entry)
    model = entry.build()
    batch = spikes(3, seed=6)
    other = batch.clone()
    other[1:] = spikes(2, seed=7, rate=0.6)
    targets = torch.tensor([1, 0, 2])
    in_batch = explanations(entry, model, batch, targets)
    in_other = explanations(entry, model, other, targets)
    alone = explanations(entry, model, batch[0], 1)
    for name in in_batch:
        _same(name, in_other[name][0], in_batch[name][0])
        _same(name, alone[name], in_batch[name][0])
