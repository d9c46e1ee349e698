"""LIFNetwork: the step functions composed, silencing, recording, and no aliasing of the caller's weights."""

import numpy as np
import pytest
import torch

from sc_neurocore.dynamics import LIFParameters, LIFState, lif_step
from sc_neurocore.models import LIFNetwork


def _network(seed=0, sizes=(12, 8, 4), **kwargs):
    g = torch.Generator().manual_seed(seed)
    weights = [torch.randn(a, b, generator=g) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
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
    (dict(beta=1.5), "beta"),
    (dict(threshold=[1.0]), "threshold"),
    (dict(reset="bogus"), "reset"),
    (dict(biases=[None]), "biases"),
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
