"""Determinism: the same call gives bit-identical results every time, with or without a progress bar,
and the engine uses no operation torch flags as nondeterministic (checked with
``torch.use_deterministic_algorithms(True)``, on CUDA too when a GPU is present)."""

from __future__ import annotations

import os

import pytest
import torch

from conftest import require_module
from sc_neurocore.explain import CausalImportance, SpikeAttributor, TemporalSaliency

from .zoo import ZOO, ZOO_IDS, explanations, lif, snntorch_adapter, spikes


@pytest.mark.parametrize("entry", ZOO, ids=ZOO_IDS)
def test_repeated_calls_are_identical(entry):
    for module, extra in entry.needs:
        require_module(module, extra)
    model = entry.build()
    if isinstance(model, torch.nn.Module):
        model.train()  # dropout and friends must not make explanations random
    batch = spikes(3, seed=8)
    targets = torch.tensor([2, 1, 0])
    first = explanations(entry, model, batch, targets)
    second = explanations(entry, model, batch, targets)
    for name in first:
        assert torch.equal(first[name], second[name]), name


def test_progress_bar_does_not_change_results():
    model, batch = lif(), spikes(2, seed=9)
    plain = TemporalSaliency(model).explain(batch).saliency_map()
    shown = TemporalSaliency(model, progress=True).explain(batch).saliency_map()
    assert torch.equal(plain, shown)


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("build", ["lif", "snntorch"])
def test_no_nondeterministic_operation(device, build):
    if build == "snntorch":
        require_module("snntorch", "snntorch")
    # cuBLAS needs a fixed workspace to be deterministic; without it torch refuses matmuls in this mode.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    model = (lif() if build == "lif" else snntorch_adapter()).to(device)
    batch = spikes(3, seed=10).to(device)
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        runs = []
        for _ in range(2):
            run = [TemporalSaliency(model).explain(batch, output_neuron=1).saliency_map(),
                   CausalImportance(model).explain(batch, output_neuron=1, layer=list(model.neuron_layers)[0])
                   .importance_map()]
            if build == "lif":  # the attributions need the weight chain, which the LIF network exposes
                run += [SpikeAttributor().attribute(batch, model, 1).attribution_map(),
                        SpikeAttributor(mode="gated").attribute(batch, model, 1).attribution_map()]
            runs.append(run)
    finally:
        torch.use_deterministic_algorithms(previous)
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))
