"""The shipped trained networks: accuracy, the weight file, and the exact snnTorch twin."""

import pytest
import torch

from conftest import require_module
from sc_neurocore.data import (load_digits, model_config, pretrained_network, pretrained_snntorch,
                               pretrained_weights, snntorch_spike_counts, to_snntorch)
from sc_neurocore.data.pretrained import WEIGHT_FRACTION_BITS, _model_file
from sc_neurocore.loading import load_state_dict
from sc_neurocore.models import LIFNetwork


@pytest.mark.parametrize("size", [8, 28])
def test_shipped_model_reaches_90_percent_and_matches_its_record(size):
    config = model_config(size)
    network = pretrained_network(size)
    test = load_digits("test", size=size, n_steps=config["n_steps"], encoding=config["encoding"], seed=0)
    accuracy = float((network(test.spikes).argmax(dim=1) == test.labels).to(torch.float64).mean())
    assert accuracy >= 0.90
    # The training script measured it the same way; the shipped record cannot drift from the weights.
    assert accuracy == pytest.approx(config["test_accuracy"], abs=1e-6)
    assert list(network.neuron_layers.values()) == config["layers"][1:]
    assert network.n_inputs == size * size == config["layers"][0]


@pytest.mark.parametrize("size", [8, 28])
def test_weight_file_is_the_network_state_dict_on_the_grid(size):
    import safetensors  # noqa: F401  (the file format: fails loudly if the extra is missing)

    with __import__("importlib").resources.as_file(_model_file(size, ".safetensors")) as path:
        assert path.stat().st_size < 200_000  # small enough to ship
        state = load_state_dict(path)
    assert sorted(state) == ["weights.0", "weights.1"]
    weights = pretrained_weights(size)
    for index, weight in enumerate(weights):
        assert torch.equal(weight, state[f"weights.{index}"])
        scaled = weight * 2**WEIGHT_FRACTION_BITS
        assert torch.equal(scaled, torch.round(scaled))
    weights[0].zero_()  # fresh copies: the next load is unaffected
    assert pretrained_weights(size)[0].abs().sum() > 0
    # The file holds the weights; the neuron parameters (buffers beta, threshold) come from the .json, and a
    # weights-only state dict loads into the network keeping them.
    network = pretrained_network(size)
    assert set(network.state_dict()) == set(state) | {"beta", "threshold"}
    network.load_state_dict(state)


def test_snntorch_model_structure():
    snn = require_module("snntorch", "snntorch")
    state = torch.get_rng_state()
    model = pretrained_snntorch(8)
    assert torch.equal(state, torch.get_rng_state())  # building it draws no random numbers
    kinds = [type(module) for module in model]
    assert kinds == [torch.nn.Linear, snn.Leaky, torch.nn.Linear, snn.Leaky]
    assert all(module.init_hidden for module in model[1::2])
    assert [module.output for module in model[1::2]] == [False, True]
    assert model[0].bias is None
    assert torch.equal(model[0].weight, pretrained_weights(8)[0].T)


@pytest.mark.parametrize("size", [8, 28])
def test_snntorch_model_reproduces_the_lif_network_exactly(size):
    require_module("snntorch", "snntorch")
    network, model = pretrained_network(size), pretrained_snntorch(size)
    spikes = load_digits("test", size=size).spikes[:120]
    recording = network.record(spikes)
    # Step the snnTorch model by hand and compare every layer's spikes and membranes at every step.
    from sc_neurocore.data.pretrained import reset_snntorch

    reset_snntorch(model)
    hidden_spikes, hidden_membrane, out_spikes, out_membrane = [], [], [], []
    with torch.no_grad():
        for t in range(spikes.shape[1]):
            hidden = model[1](model[0](spikes[:, t]))
            hidden_spikes.append(hidden)
            hidden_membrane.append(model[1].mem.clone())
            s, v = model[3](model[2](hidden))
            out_spikes.append(s)
            out_membrane.append(v.clone())
    assert torch.equal(torch.stack(hidden_spikes, 1), recording.layers[0].spikes)
    assert torch.equal(torch.stack(hidden_membrane, 1), recording.layers[0].membrane)
    assert torch.equal(torch.stack(out_spikes, 1), recording.layers[1].spikes)
    assert torch.equal(torch.stack(out_membrane, 1), recording.layers[1].membrane)
    with torch.no_grad():
        assert torch.equal(snntorch_spike_counts(model, spikes), network(spikes))
        # Reset between calls: a second run on other data does not inherit state.
        assert torch.equal(snntorch_spike_counts(model, spikes[:7]), network(spikes[:7]))


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_to_snntorch_matches_every_reset_mechanism_with_biases(reset):
    require_module("snntorch", "snntorch")
    generator = torch.Generator().manual_seed(0)
    grid = lambda *shape, scale: torch.round(torch.randn(*shape, generator=generator) * scale * 256) / 256  # noqa: E731
    network = LIFNetwork([grid(20, 12, scale=0.5), grid(12, 6, scale=0.6), grid(6, 3, scale=0.8)],
                         beta=[0.9, 0.8, 0.95], threshold=[1.0, 0.75, 1.25], reset=reset,
                         biases=[grid(12, scale=0.1), None, grid(3, scale=0.1)])
    spikes = (torch.rand(30, 40, 20, generator=generator) < 0.3).to(torch.float32)
    with torch.no_grad():
        counts = snntorch_spike_counts(to_snntorch(network), spikes)
    assert torch.equal(counts, network(spikes))
    assert counts.sum() > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="size"):
        pretrained_network(16)
    with pytest.raises(TypeError, match="network"):
        to_snntorch(torch.nn.Linear(3, 2))
    with pytest.raises(ValueError, match="spikes"):
        snntorch_spike_counts(torch.nn.Sequential(), torch.zeros(3, 4))
    require_module("snntorch", "snntorch")
    from sc_neurocore.data import snntorch_sequential

    with pytest.raises(ValueError, match="weights"):
        snntorch_sequential([torch.zeros(4, 3), torch.zeros(5, 2)])
    with pytest.raises(ValueError, match="reset"):
        snntorch_sequential([torch.zeros(4, 3)], reset="soft")
    with pytest.raises(ValueError, match="beta"):
        snntorch_sequential([torch.zeros(4, 3), torch.zeros(3, 2)], beta=[0.9])


def test_snntorch_spike_counts_carries_surrogate_gradients():
    require_module("snntorch", "snntorch")
    spikes = load_digits("test").spikes[:5].clone().requires_grad_(True)
    counts = snntorch_spike_counts(pretrained_snntorch(8), spikes)
    assert torch.equal(counts.detach(), pretrained_network(8)(spikes.detach()))
    counts[torch.arange(5), counts.argmax(dim=1)].sum().backward()
    assert spikes.grad is not None and spikes.grad.abs().sum() > 0  # the training script's BPTT relies on it
