"""TSA against a direct transcription of the paper's per-timestep matrix product (Nguyen et al. 2023)."""

import itertools

import numpy as np
import pytest
import torch
from conftest import require_module

from sc_neurocore.adapters import FunctionModel
from sc_neurocore.explain import AttributionResult
from sc_neurocore.explain.tsa import TemporalSpikeAttribution
from sc_neurocore.models import LIFNetwork


def _net(sizes=(10, 7, 5, 3), seed=0, beta=0.8):
    g = torch.Generator().manual_seed(seed)
    weights = [torch.randn(a, b, generator=g, dtype=torch.float64) for a, b in itertools.pairwise(sizes)]
    return LIFNetwork(weights, beta=beta, threshold=0.6)


def _spikes(shape, seed=1, rate=0.35):
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < rate).double()


def _paper_tsa(net, x, k, beta, absent):
    """For one sample ``x`` (T, N): for each t, diag(N_0) W_0 diag(N_1) W_1 ... W_{L-1} diag(p), column k.

    The spike-time score of each neuron is written as the paper defines it, one neuron at a time."""
    recording = net.record(x[None])
    layers = [x] + [layer.spikes[0] for layer in recording.layers[:-1]]
    probs = torch.softmax(recording.outputs[0], dim=0)
    weights = net.linear_weights()
    n_steps = x.shape[0]
    out = torch.zeros_like(x)
    for t in range(n_steps):
        product = None
        for layer_spikes, weight in zip(layers, weights, strict=False):
            n = layer_spikes.shape[1]
            scores = torch.zeros(n, dtype=torch.float64)
            for i in range(n):
                if layer_spikes[t, i] != 0:
                    scores[i] = beta ** (n_steps - t)
                elif absent:
                    scores[i] = -(1 / n) * beta ** (n_steps - t)
            factor = torch.diag(scores) @ weight
            product = factor if product is None else product @ factor
        out[t] = (product @ torch.diag(probs))[:, k]
    return out


@pytest.mark.parametrize("absent", [False, True])
def test_equals_the_papers_product_for_each_sample(absent):
    net = _net()
    spikes = _spikes((3, 12, 10))
    targets = torch.tensor([2, 0, 1])
    result = TemporalSpikeAttribution(absent_spikes=absent).attribute(spikes, net, targets)
    assert isinstance(result, AttributionResult)
    scores = result.attribution_map()
    for b in range(3):
        expected = _paper_tsa(net, spikes[b], int(targets[b]), 0.8, absent)
        assert torch.allclose(scores[b], expected, rtol=1e-10, atol=1e-12)
    assert scores.abs().sum() > 0
    if absent:  # absent input spikes are scored too, spikes-only TSA leaves them at 0
        assert (scores[spikes == 0] != 0).any()
    else:
        assert (scores[spikes == 0] == 0).all()


def test_decay_defaults_to_the_models_beta_and_can_be_given():
    net = _net(beta=0.7)
    spikes = _spikes((9, 10), seed=3)
    default = TemporalSpikeAttribution().attribute(spikes, net, 1).attribution_map()
    explicit = TemporalSpikeAttribution(decay=0.7).attribute(spikes, net, 1).attribution_map()
    other = TemporalSpikeAttribution(decay=0.95).attribute(spikes, net, 1).attribution_map()
    assert torch.equal(default, explicit) and not torch.equal(default, other)
    assert torch.allclose(other, _paper_tsa(net, spikes, 1, 0.95, False), rtol=1e-10, atol=1e-12)


def test_numpy_in_numpy_out_and_inputs_untouched():
    net = _net()
    spikes = _spikes((8, 10), seed=4).numpy()
    before = spikes.copy()
    result = TemporalSpikeAttribution(absent_spikes=True).attribute(spikes, net, 2)
    assert isinstance(result.attribution_map(), np.ndarray) and result.attribution_map().shape == (8, 10)
    assert np.array_equal(spikes, before)


def test_works_through_the_snntorch_adapter():
    require_module("snntorch", "snntorch")
    from sc_neurocore.adapters import from_snntorch
    from sc_neurocore.data.pretrained import to_snntorch

    net = LIFNetwork([torch.randn(10, 6, generator=torch.Generator().manual_seed(2)),
                      torch.randn(6, 3, generator=torch.Generator().manual_seed(3))], beta=0.9, threshold=0.5)
    spikes = _spikes((2, 10, 10), seed=6).float()
    adapter = from_snntorch(to_snntorch(net))
    if adapter.linear_weights() is None:
        pytest.skip("this adapter exposes no weight chain")
    ours = TemporalSpikeAttribution(decay=0.9).attribute(spikes, net, 1).attribution_map()
    theirs = TemporalSpikeAttribution(decay=0.9).attribute(spikes, adapter, 1).attribution_map()
    assert torch.allclose(ours, theirs, atol=1e-6)


@pytest.mark.parametrize("make, call, error, match", [
    (lambda: TemporalSpikeAttribution(decay=0), None, ValueError, "decay"),
    (lambda: TemporalSpikeAttribution(decay=1.5), None, ValueError, "decay"),
    (lambda: TemporalSpikeAttribution(absent_spikes="yes"), None, TypeError, "absent_spikes"),
    (lambda: TemporalSpikeAttribution(), lambda e, s: e.attribute(s, [torch.ones(10, 3)], 0), TypeError, "model"),
    (lambda: TemporalSpikeAttribution(decay=0.9),
     lambda e, s: e.attribute(s, FunctionModel(lambda x: x.sum(1), batched=True, n_inputs=10), 0), ValueError, "model"),
    (lambda: TemporalSpikeAttribution(), lambda e, s: e.attribute(s[:, :4], _net(), 0), ValueError, "input_spikes"),
    (lambda: TemporalSpikeAttribution(), lambda e, s: e.attribute(s, _net(), 7), ValueError, "output_neuron"),
])
def test_bad_arguments_are_named(make, call, error, match):
    spikes = _spikes((6, 10))
    with pytest.raises(error, match=match):
        explainer = make()
        call(explainer, spikes)
