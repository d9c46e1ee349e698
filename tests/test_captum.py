"""Captum interop: our methods as Captum attributions, and Captum's methods on the adapters."""

from __future__ import annotations

import pytest
import torch
from conftest import require_module
from toy_models import hidden_importance_loop, norse_mlp, random_spikes, snntorch_counts, snntorch_mlp

from sc_neurocore.adapters import from_norse, from_snntorch
from sc_neurocore.captum import CausalImportanceAttr, SpikeAttributorAttr, TemporalSaliencyAttr
from sc_neurocore.explain import CausalImportance, SpikeAttributor, TemporalSaliency


def snntorch_model():
    require_module("snntorch", "snntorch")
    return from_snntorch(snntorch_mlp([8, 6, 3]))


def norse_model():
    require_module("norse", "norse")
    return from_norse(norse_mlp([8, 6, 3], hidden="lif_cell", output="lif"))


MODELS = [snntorch_model, norse_model]


@pytest.mark.parametrize("build", MODELS)
def test_feature_ablation_equals_our_saliency_on_every_spike(build):
    from captum.attr import FeatureAblation

    model = build()
    spikes = random_spikes(2, 10, 8, seed=1)
    targets = torch.tensor([0, 1])
    ours = TemporalSaliencyAttr(model).attribute(spikes, target=targets)
    theirs = FeatureAblation(model).attribute(spikes, target=targets, baselines=0.0)
    assert ours.shape == spikes.shape and ours.abs().sum() > 0
    # FeatureAblation also "removes" the zeros (no change): equal everywhere, not only on spikes.
    torch.testing.assert_close(ours, theirs.to(ours.dtype))
    assert torch.equal(ours, TemporalSaliency(model).explain(spikes, output_neuron=targets).saliency_map())


@pytest.mark.parametrize("build", MODELS)
def test_causal_importance_attr_equals_grouped_feature_ablation(build):
    from captum.attr import FeatureAblation

    model = build()
    spikes = random_spikes(2, 10, 8, seed=2)
    ours = CausalImportanceAttr(model).attribute(spikes, target=0)
    neuron_groups = torch.arange(8).expand(1, 10, 8)  # one feature group per input neuron, all timesteps
    theirs = FeatureAblation(model).attribute(spikes, target=0, baselines=0.0, feature_mask=neuron_groups)
    assert ours.abs().sum() > 0
    torch.testing.assert_close(ours, theirs.to(ours.dtype))
    per_neuron = CausalImportance(model).explain(spikes, output_neuron=0).importance_map()
    assert torch.equal(ours[:, 0], per_neuron) and torch.equal(ours[:, -1], per_neuron)


def test_spike_attributor_attr_matches_the_explainer_and_takes_tuples():
    model = snntorch_model()
    spikes = random_spikes(2, 10, 8, seed=3)
    ours = SpikeAttributorAttr(model, decay=0.8).attribute((spikes,), target=torch.tensor([2, 0]))
    assert isinstance(ours, tuple) and len(ours) == 1
    expected = SpikeAttributor(decay=0.8).attribute(spikes, model, output_neuron=torch.tensor([2, 0]))
    assert torch.equal(ours[0], expected.attribution_map())


@pytest.mark.parametrize("build", MODELS)
def test_captum_methods_run_on_adapters_through_surrogate_gradients(build):
    from captum.attr import IntegratedGradients, Occlusion, Saliency

    model = build()
    spikes = random_spikes(2, 10, 8, seed=4)
    gradients = Saliency(model).attribute(spikes, target=0, abs=False)
    assert gradients.shape == spikes.shape and gradients.abs().sum() > 0  # surrogate gradients flowed
    integrated = IntegratedGradients(model).attribute(spikes, target=0, n_steps=8)
    assert integrated.shape == spikes.shape and torch.isfinite(integrated).all()
    occlusion = Occlusion(model).attribute(spikes, target=0, sliding_window_shapes=(2, 1), strides=(2, 1))
    assert occlusion.shape == spikes.shape and occlusion.abs().sum() > 0


def test_captum_metrics_run_on_our_attributions():
    from captum.metrics import infidelity, sensitivity_max

    model = snntorch_model()
    spikes = random_spikes(2, 10, 8, seed=5)
    saliency = TemporalSaliencyAttr(model)
    attribution = saliency.attribute(spikes, target=0)

    def drop_spikes(inputs):
        generator = torch.Generator().manual_seed(0)
        drop = (torch.rand(inputs.shape, generator=generator) < 0.2).to(inputs.dtype) * inputs
        return drop, inputs - drop

    value = infidelity(model, drop_spikes, spikes, attribution, target=0, n_perturb_samples=4)
    assert value.shape == (2,) and torch.isfinite(value).all()
    for method in (saliency, CausalImportanceAttr(model)):
        sensitivity = sensitivity_max(method.attribute, spikes, target=0, n_perturb_samples=2,
                                      perturb_radius=0.01)
        assert sensitivity.shape == (2,) and torch.isfinite(sensitivity).all()


def test_targets_are_an_int_or_one_per_sample():
    model = snntorch_model()
    spikes = random_spikes(2, 10, 8, seed=6)
    for bad in ([0, 1], (0,), torch.tensor([[0], [1]]), torch.tensor([0.0, 1.0]), None):
        with pytest.raises(TypeError, match="target"):
            TemporalSaliencyAttr(model).attribute(spikes, target=bad)
    with pytest.raises(ValueError, match="output_neuron"):
        CausalImportanceAttr(model).attribute(spikes, target=7)
    with pytest.raises(ValueError, match="inputs"):
        TemporalSaliencyAttr(model).attribute(spikes[0], target=0)


def test_layer_feature_ablation_is_wrong_on_spiking_hidden_layers():
    from captum.attr import LayerFeatureAblation

    require_module("snntorch", "snntorch")
    net = snntorch_mlp([8, 6, 3])
    spikes = random_spikes(2, 15, 8, seed=5)
    ours = CausalImportance(from_snntorch(net)).explain(spikes, output_neuron=0, layer="1").importance_map()
    truth = hidden_importance_loop(lambda hooks: snntorch_counts(net, spikes, hooks), net[1], 6, target=0)
    torch.testing.assert_close(ours, truth)
    # Captum's layer methods record a layer's output with a forward hook that keeps only its *last*
    # call -- here the hidden spikes of the final timestep -- and then ablate by replaying that one
    # (ablated) tensor as the layer's output at *every* timestep (captum#1236, #1050). So it neither
    # silences a neuron over time nor keeps the others' real activity: its scores are not the causal
    # effect of silencing a hidden neuron, and they differ from the brute-force truth.
    captum_scores = LayerFeatureAblation(from_snntorch(net), net[1]).attribute(spikes, target=0)
    assert captum_scores.shape == truth.shape
    assert not torch.allclose(captum_scores.to(truth.dtype), truth)
