"""SpikingJelly keeps each neuron's membrane `v` on the module until `functional.reset_net(net)`. Before
the SpikingJelly front end, no adapter reset it, so an explanation depended on whatever the model had
run before whenever a call had the batch shape of the one before it (SpikingJelly re-creates a state of
another shape): `test_the_same_spikes_give_the_same_outputs_whatever_ran_before` failed on main at
5775f2b. Only APIs that existed then are used here."""

from __future__ import annotations

import pytest
import torch
from brute_force import saliency_loop
from conftest import require_module
from torch import nn

from sc_neurocore.adapters import from_module
from sc_neurocore.explain import TemporalSaliency


@pytest.fixture(autouse=True)
def _spikingjelly():
    require_module("spikingjelly", "spikingjelly")


def _multi_step_net() -> nn.Module:
    from spikingjelly.activation_based import functional, layer, neuron

    torch.manual_seed(0)
    net = nn.Sequential(layer.Linear(8, 6), neuron.LIFNode(), layer.Linear(6, 3), neuron.ParametricLIFNode())
    functional.set_step_mode(net, "m")
    with torch.no_grad():
        net[0].weight.mul_(6.0)
        net[2].weight.mul_(8.0)
    return net


def _spikes(seed: int) -> torch.Tensor:
    return (torch.rand(2, 12, 8, generator=torch.Generator().manual_seed(seed)) < 0.5).float()


def test_the_same_spikes_give_the_same_outputs_whatever_ran_before():
    model = from_module(_multi_step_net(), time_first=True, neuron_layers=["1", "3"], readout="rate")
    first = model.run(_spikes(1))
    assert first.sum() > 0
    model.run(torch.ones(2, 12, 8))
    assert torch.equal(model.run(_spikes(1)), first)


def test_saliency_equals_spikingjelly_forward_with_reset_net_between_samples():
    from spikingjelly.activation_based import functional

    net = _multi_step_net()
    spikes = _spikes(2)

    def forward(sample: torch.Tensor) -> torch.Tensor:  # SpikingJelly's own: reset, run, mean rate
        with torch.no_grad():
            functional.reset_net(net)
            out = net(sample[:, None]).mean(0)[0]
            functional.reset_net(net)
        return out

    model = from_module(net, time_first=True, neuron_layers=["1", "3"], readout="rate")
    explainer = TemporalSaliency(model)
    expected = saliency_loop(forward, spikes[0], target=2)
    assert expected.abs().sum() > 0
    for _ in range(2):  # the second explanation runs batches of the same shapes as the first
        saliency = explainer.explain(spikes[:1], output_neuron=2).saliency_map()
        torch.testing.assert_close(saliency[0].double(), expected)
