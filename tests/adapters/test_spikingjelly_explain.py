"""Explainers on the SpikingJelly zoo equal brute-force loops through SpikingJelly's own forward, with
`functional.reset_net` between samples (`raw_forward`)."""

from __future__ import annotations

import pytest
import torch
from brute_force import input_causal_loop, saliency_loop
from conftest import require_module
from zoo.models_spikingjelly import MODELS

from sc_neurocore.explain import CausalImportance, TemporalSaliency

N_SAMPLES = 2


@pytest.fixture(autouse=True)
def _spikingjelly():
    require_module("spikingjelly", "spikingjelly")


def _one_sample(raw_forward):
    return lambda spikes: raw_forward(spikes[None])[0]


def _target(built) -> int:
    """The output neuron that fires most on the zoo spikes (so that the maps are not all zero)."""
    return int(built.raw_forward(built.spikes).sum(0).argmax())


@pytest.mark.parametrize("entry", MODELS, ids=lambda entry: entry.name)
def test_saliency_and_input_importance_equal_brute_force(entry):
    built = entry.build()
    spikes = built.spikes[:N_SAMPLES]
    target = _target(built)
    saliency = TemporalSaliency(built.model).explain(spikes, output_neuron=target).saliency_map()
    importance = CausalImportance(built.model).explain(spikes, output_neuron=target).importance_map()
    forward = _one_sample(built.raw_forward)
    moved = 0.0
    for b in range(N_SAMPLES):
        expected = saliency_loop(forward, spikes[b], target)
        moved += float(expected.abs().sum())
        torch.testing.assert_close(saliency[b].double(), expected)
        torch.testing.assert_close(importance[b].double(), input_causal_loop(forward, spikes[b], target))
    assert moved > 0, "removing a spike must change the output somewhere for the test to mean anything"
    graph = built.model.graph_for(spikes)
    assert (graph is None) == (entry.engine == "generic")
    if graph is not None:  # the traced graph, explained on its own, gives the very same maps
        assert torch.equal(TemporalSaliency(graph).explain(spikes, output_neuron=target).saliency_map(), saliency)
        assert torch.equal(CausalImportance(graph).explain(spikes, output_neuron=target).importance_map(), importance)


@pytest.mark.parametrize("entry", MODELS, ids=lambda entry: entry.name)
def test_hidden_importance_equals_silencing_in_spikingjelly_forward(entry):
    built = entry.build()
    spikes = built.spikes[:N_SAMPLES]
    target = _target(built)
    for name, (module, size) in built.hidden.items():
        result = CausalImportance(built.model).explain(spikes, output_neuron=target, layer=name).importance_map()
        base = built.raw_forward(spikes)[:, target]
        expected = torch.zeros(N_SAMPLES, size)
        for neuron in range(size):
            handle = module.register_forward_hook(built.silence_hook(module, neuron))
            try:
                expected[:, neuron] = base - built.raw_forward(spikes)[:, target]
            finally:
                handle.remove()
        assert expected.abs().sum() > 0
        torch.testing.assert_close(result, expected)
        graph = built.model.graph_for(spikes)
        if graph is not None:
            on_graph = CausalImportance(graph).explain(spikes, output_neuron=target, layer=name).importance_map()
            assert torch.equal(on_graph, result)
