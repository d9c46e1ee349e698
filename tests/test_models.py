"""LIFNetwork: the step functions composed, silencing, recording, and no aliasing of the caller's weights."""

import copy
import itertools

import numpy as np
import pytest
import torch

from sc_neurocore.dynamics import LIFParameters, LIFState, lif_step
from sc_neurocore.models import LIFNetwork


def _network(seed=0, sizes=(12, 8, 4), **kwargs):
    g = torch.Generator().manual_seed(seed)
    weights = [torch.randn(a, b, generator=g) for a, b in itertools.pairwise(sizes)]
    return LIFNetwork(weights, beta=0.8, threshold=0.6, **kwargs), weights


def _manual_forward(weights, spikes, beta=0.8, threshold=0.6, silence=None):
    x = spikes
    for index, w in enumerate(weights):
        state = LIFState(torch.zeros(x.shape[0], w.shape[1]))
        out = []
        for t in range(x.shape[1]):
            s, state = lif_step(x[:, t] @ w, state, LIFParameters(beta, threshold))
            if silence is not None and index in silence:
                s = s * (~silence[index]).float()
            out.append(s)
        x = torch.stack(out, 1)
    return x.sum(1)


def test_forward_is_the_step_functions_composed():
    net, weights = _network()
    spikes = (torch.rand(3, 20, 12, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    assert torch.equal(net(spikes), _manual_forward(weights, spikes))
    assert net(spikes).sum() > 0  # the test network actually fires


def test_per_sample_silencing_masks():
    net, weights = _network()
    spikes = (torch.rand(2, 20, 12, generator=torch.Generator().manual_seed(2)) < 0.4).float()
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[0, 3] = True
    mask[1, :4] = True
    expected = _manual_forward(weights, spikes, silence={0: mask})
    assert torch.equal(net.run(spikes, silence={"0": mask}), expected)


def test_record_returns_every_layer():
    net, _ = _network()
    spikes = (torch.rand(2, 15, 12) < 0.4).float()
    recording = net.record(spikes)
    assert [layer.name for layer in recording.layers] == ["0", "1"]
    assert recording.layers[0].spikes.shape == (2, 15, 8)
    assert recording.layers[1].membrane.shape == (2, 15, 4)
    assert torch.equal(recording.outputs, recording.layers[1].spikes.sum(1))
    assert torch.equal(recording.outputs, net(spikes))


def test_weights_are_copied_not_aliased():
    weights = [np.ones((3, 2), dtype=np.float32)]
    net = LIFNetwork(weights)
    net.weights[0].data.fill_(5)
    assert weights[0][0, 0] == 1.0


def test_biases_are_added():
    net = LIFNetwork([torch.zeros(2, 1)], beta=0.0, threshold=0.4, biases=[torch.tensor([1.0])])
    assert net(torch.zeros(1, 4, 2)).item() == 4.0


@pytest.mark.parametrize("kwargs, match", [
    ({"beta": 1.5}, "beta"),
    ({"threshold": [1.0]}, "threshold"),
    ({"reset": "bogus"}, "reset"),
    ({"biases": [None]}, "biases"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        _network(**kwargs)


def test_bad_silence_masks():
    net, _ = _network()
    spikes = torch.zeros(2, 5, 12)
    with pytest.raises(ValueError, match="silence"):
        net.run(spikes, silence={"7": torch.zeros(2, 8, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"silence\['0'\]"):
        net.run(spikes, silence={"0": torch.zeros(3, 8, dtype=torch.bool)})
    with pytest.raises(ValueError, match="spikes"):
        net.run(torch.zeros(5, 12))


# -- an idiomatic nn.Module (issue 16, item 3) --------------------------------------------------------------
def test_everything_the_forward_depends_on_is_in_the_state_dict_or_the_repr():
    net, _ = _network(biases=[None, torch.full((4,), 0.25)])
    state = net.state_dict()
    assert sorted(state) == ["beta", "biases.1", "threshold", "weights.0", "weights.1"]  # biases keyed by layer
    assert state["beta"].tolist() == [0.8, 0.8] and state["threshold"].tolist() == [0.6, 0.6]
    assert net.betas == (0.8, 0.8) and net.thresholds == (0.6, 0.6)  # the exact floats given
    assert net._bias(0) is None and torch.equal(net._bias(1), torch.full((4,), 0.25))
    assert "layers=[12, 8, 4], beta=[0.8, 0.8], threshold=[0.6, 0.6], reset='subtract', biases=[1]" in repr(net)
    assert net.run_key_fields() == {"reset": "subtract"}
    assert "beta=<meta>" in repr(copy.deepcopy(net).to("meta"))  # a network without values still prints

    # A state dict carries the neuron parameters: loading it into a differently built network copies them.
    other, _ = _network(seed=5, biases=[None, torch.zeros(4)])
    other.beta.fill_(0.5)
    other.load_state_dict(state)
    spikes = (torch.rand(3, 20, 12, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    assert torch.equal(other(spikes), net(spikes)) and other.betas == (0.8, 0.8)


def test_a_weights_only_state_dict_loads_and_keeps_the_neuron_parameters():
    net, weights = _network()
    other, _ = _network(seed=9)
    other.load_state_dict({"weights.0": weights[0], "weights.1": weights[1]})  # the shipped files' layout
    spikes = (torch.rand(3, 20, 12, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    assert torch.equal(other(spikes), net(spikes)) and other.thresholds == (0.6, 0.6)


@pytest.mark.parametrize("key, value, match", [
    ("beta", torch.tensor([0.8, 1.5]), r"state_dict\['beta'\]: expected values in \[0.0, 1.0\]"),
    ("threshold", torch.tensor([0.6, float("nan")]), r"state_dict\['threshold'\]: expected finite"),
    ("beta", torch.tensor([0.8]), r"state_dict\['beta'\]: expected a tensor of shape \(2,\)"),
    ("weights.0", torch.full((12, 8), float("nan")), r"state_dict\['weights.0'\]: expected finite"),
])
def test_a_bad_state_dict_is_refused_and_leaves_the_network_unchanged(key, value, match):
    net, _ = _network()
    before = {name: t.clone() for name, t in net.state_dict().items()}
    state = {**net.state_dict(), key: value}
    with pytest.raises((ValueError, TypeError), match=match):  # NaN is a TypeError, as for the constructor
        net.load_state_dict(state)
    assert all(torch.equal(before[name], t) for name, t in net.state_dict().items())


def test_a_direct_call_gets_the_explainers_checks():
    net, _ = _network()
    spikes = torch.zeros(2, 5, 12)
    with pytest.raises(ValueError, match="spikes: expected finite values"):
        net(spikes.masked_fill(torch.rand(2, 5, 12) < 0.5, float("nan")))
    with pytest.raises(TypeError, match=r"silence\['0'\]: expected a \(2, 8\) bool tensor, got list"):
        net.run(spikes, silence={"0": [[False] * 8] * 2})
    with pytest.raises(TypeError, match=r"silence\['0'\]: expected a bool mask .* got torch.float32"):
        net.run(spikes, silence={"0": torch.full((2, 8), 0.5)})
    with pytest.raises(TypeError, match="silence: expected a dict"):
        net.run(spikes, silence=[torch.zeros(2, 8, dtype=torch.bool)])
    with pytest.raises(TypeError, match="spikes: expected a dense tensor, got layout torch.sparse_coo"):
        net(spikes.to_sparse())
    with pytest.raises(ValueError, match=r"biases\[1\]: expected finite values"):
        _network(biases=[None, torch.tensor([0.0, float("nan"), 0.0, 0.0])])


def test_float64_networks_work_and_half_precision_is_refused_naming_the_dtype():
    net, weights = _network()
    spikes = (torch.rand(3, 20, 12, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    double = LIFNetwork([w.double() for w in weights], beta=0.8, threshold=0.6)
    counts = double(spikes)  # float32 spikes into a float64 network
    assert counts.dtype == torch.float64
    assert torch.equal(counts, _manual_forward([w.double() for w in weights], spikes.double()))
    for dtype in (torch.float16, torch.bfloat16):
        with pytest.raises(TypeError, match=f"network: expected float32 or float64 parameters, got {dtype}"):
            net.to(dtype)(spikes)
        # Given to the constructor, half weights are widened to float32, exactly (every half is a float32).
        assert LIFNetwork([w.to(dtype) for w in weights]).weights[0].dtype == torch.float32
