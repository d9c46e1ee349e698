"""Every result shares one vocabulary, pickles, and says how it was computed."""

import pickle

import numpy as np
import pytest
import torch

from sc_neurocore.explain import CausalImportance, SpikeAttributor, TemporalSaliency
from sc_neurocore.models import LIFNetwork


@pytest.fixture(scope="module")
def network_and_spikes():
    generator = torch.Generator().manual_seed(0)
    network = LIFNetwork(
        [torch.randn(16, 12, generator=generator) * 0.6, torch.randn(12, 4, generator=generator)], threshold=0.5
    )
    spikes = (torch.rand(3, 20, 16, generator=generator) < 0.3).float()
    return network, spikes


def results(network, spikes):
    return {
        "attribution": SpikeAttributor(decay=0.9, mode="gated").attribute(spikes, network, 0),
        "saliency": TemporalSaliency(network).explain(spikes, 0),
        "causal": CausalImportance(network).explain(spikes, output_neuron=0, layer="0"),
        "causal, labelled": CausalImportance(network).explain(spikes, labels=torch.tensor([0, 1, 2])),
    }


def test_shared_accessors(network_and_spikes):
    network, spikes = network_and_spikes
    for name, result in results(network, spikes).items():
        for accessor in ("top_k", "spatial_importance", "to_numpy", "as_dict"):
            assert callable(getattr(result, accessor)), (name, accessor)
        assert isinstance(result.to_numpy(), np.ndarray)
        as_dict = result.as_dict()
        assert {"method", "engine", "options"} <= set(as_dict)
        assert all(isinstance(v, (np.ndarray, int, float, str, dict)) for v in as_dict.values()), name
    maps = results(network, spikes)
    for name in ("attribution", "saliency"):  # a time axis: a temporal profile too
        assert maps[name].temporal_profile().shape == (3, 20)
        np.testing.assert_array_equal(maps[name].to_numpy(), maps[name].as_dict()[f"{name}_map"])


def test_causal_top_k_and_spatial_importance_match_the_map(network_and_spikes):
    network, spikes = network_and_spikes
    causal = CausalImportance(network).explain(spikes, output_neuron=0, layer="0")
    importance = causal.importance_map()
    assert torch.equal(causal.spatial_importance(), importance)
    for sample, ranked in enumerate(causal.top_k(4)):
        expected = torch.sort(importance[sample].abs(), descending=True, stable=True).indices[:4].tolist()
        assert [neuron for neuron, _ in ranked] == expected
        assert [value for _, value in ranked] == importance[sample, expected].tolist()
    assert causal.top_k(2, sample=1) == causal.top_k(2)[1]
    labelled = CausalImportance(network).explain(spikes, labels=torch.tensor([0, 1, 2]))
    assert len(labelled.top_k(3)) == 3 and isinstance(labelled.top_k(3)[0], tuple)
    with pytest.raises(ValueError, match="sample"):
        labelled.top_k(3, sample=0)
    with pytest.raises(ValueError, match="sample"):
        causal.top_k(3, sample=7)


def test_every_result_pickles(network_and_spikes):
    network, spikes = network_and_spikes
    for name, result in results(network, spikes).items():
        copy = pickle.loads(pickle.dumps(result))
        np.testing.assert_array_equal(copy.to_numpy(), result.to_numpy())
        assert (copy.method, copy.engine, copy.options) == (result.method, result.engine, result.options)
        if hasattr(result, "robustness_curve"):  # evaluated before pickling: the network does not travel
            assert torch.equal(copy.robustness_curve(), result.robustness_curve()), name
            assert (
                copy.robustness_count() == result.robustness_count()
                if name == "causal, labelled"
                else torch.equal(copy.robustness_count(), result.robustness_count())
            )


def test_results_say_how_they_were_computed(network_and_spikes):
    network, spikes = network_and_spikes
    found = results(network, spikes)
    assert found["attribution"].method == "SpikeAttributor"
    assert found["attribution"].options == {"decay": 0.9, "mode": "gated", "fixed_point": None}
    assert found["saliency"].method == "TemporalSaliency" and found["saliency"].options["significance"] > 0
    assert found["causal"].method == "CausalImportance"
    assert found["attribution"].engine == "generic"  # one pass, no executor choice
    # The perturbation explainers say which executor ran (sc_neurocore.explain.perturbation.described).
    assert {found[name].engine for name in ("saliency", "causal", "causal, labelled")} <= {"graph", "model"}
    assert all(isinstance(result.engine, str) for result in found.values())
