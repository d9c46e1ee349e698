"""from_snntorch on real snnTorch models: every result checked against snnTorch's own forward pass."""

from __future__ import annotations

import pytest
import torch
from brute_force import input_causal_loop, saliency_loop
from conftest import require_module
from toy_models import (SnnTorchLoop, hidden_importance_loop, random_spikes, snntorch_conv, snntorch_counts,
                        snntorch_mlp, snntorch_parallel)

from sc_neurocore.adapters import from_snntorch
from sc_neurocore.explain import CausalImportance, TemporalSaliency

KINDS = ["leaky", "synaptic", "alpha", "rleaky"]


@pytest.fixture(autouse=True)
def _snntorch():
    require_module("snntorch", "snntorch")


def one_sample(net):
    """snnTorch's own forward as the brute-force loops' ``(T, N) -> (C,)`` function."""
    def forward(spikes):
        with torch.no_grad():
            return snntorch_counts(net, spikes[None])[0]
    return forward


@pytest.mark.parametrize("kind", KINDS)
def test_run_equals_snntorch_forward(kind):
    net = snntorch_mlp([8, 6, 3], neuron=kind)
    spikes = random_spikes(3, 20, 8, seed=1)
    model = from_snntorch(net)
    assert model.neuron_layers == {"1": 6, "3": 3}
    expected = snntorch_counts(net, spikes)
    assert expected.sum() > 0, "the toy model must spike for the test to mean anything"
    assert torch.equal(model.run(spikes), expected)


def test_conv_loop_and_parallel_models_equal_snntorch_forward():
    spikes = random_spikes(2, 15, 36, seed=2)
    conv = snntorch_conv()
    model = from_snntorch(conv, input_shape=(1, 6, 6))
    assert model.neuron_layers == {"1": 2 * 36, "4": 3}
    assert model.linear_weights() is None  # a convolution is not a weight chain
    assert torch.equal(model.run(spikes), snntorch_counts(conv, spikes.reshape(2, 15, 1, 6, 6)))
    spikes = random_spikes(3, 15, 8, seed=3)
    for net in (SnnTorchLoop([8, 6, 3]), snntorch_parallel([8, 6, 3])):
        model = from_snntorch(net)
        assert list(model.neuron_layers.values()) == [6, 3]
        assert torch.equal(model.run(spikes), snntorch_counts(net, spikes))


@pytest.mark.parametrize("kind", ["leaky", "rleaky"])
def test_saliency_and_input_importance_equal_brute_force(kind):
    net = snntorch_mlp([8, 6, 3], neuron=kind)
    spikes = random_spikes(2, 12, 8, seed=4)
    model = from_snntorch(net)
    saliency = TemporalSaliency(model).explain(spikes, output_neuron=0).saliency_map()
    importance = CausalImportance(model).explain(spikes, output_neuron=0).importance_map()
    for b in range(2):
        expected = saliency_loop(one_sample(net), spikes[b], target=0)
        assert expected.abs().sum() > 0
        torch.testing.assert_close(saliency[b].double(), expected)
        torch.testing.assert_close(importance[b].double(), input_causal_loop(one_sample(net), spikes[b], target=0))


@pytest.mark.parametrize("kind", KINDS)
def test_hidden_importance_equals_per_step_hook_loop(kind):
    net = snntorch_mlp([8, 6, 3], neuron=kind)
    spikes = random_spikes(2, 15, 8, seed=5)
    result = CausalImportance(from_snntorch(net)).explain(spikes, output_neuron=0, layer="1").importance_map()
    expected = hidden_importance_loop(lambda hooks: snntorch_counts(net, spikes, hooks), net[1], 6, target=0)
    torch.testing.assert_close(result, expected)
    if kind != "rleaky":
        assert expected.abs().sum() > 0


def test_silenced_recurrent_neuron_stops_feeding_its_layer():
    # Independent oracle: silencing hidden neuron j equals cutting every weight that reads it, i.e.
    # column j of the next Linear and of the recurrent matrix (the neuron itself still fires).
    net = snntorch_mlp([8, 6, 3], neuron="rleaky")
    spikes = random_spikes(2, 15, 8, seed=6)
    model = from_snntorch(net)
    for j in range(6):
        cut = snntorch_mlp([8, 6, 3], neuron="rleaky")
        cut.load_state_dict(net.state_dict())
        with torch.no_grad():
            cut[2].weight[:, j] = 0
            cut[1].recurrent.weight[:, j] = 0
        mask = torch.zeros(2, 6, dtype=torch.bool)
        mask[:, j] = True
        assert torch.equal(model.run(spikes, silence={"1": mask}), snntorch_counts(cut, spikes))


def test_silencing_is_per_sample_on_bare_spike_outputs():
    # Hidden init_hidden layers return a bare spike tensor: a hook indexing [0] of it would take the
    # first batch row (neurobench#258). Silencing row 0 must leave row 1 exactly as it was.
    net = snntorch_mlp([8, 6, 3])
    spikes = random_spikes(1, 20, 8, seed=7).expand(2, -1, -1)
    model = from_snntorch(net)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[0] = True
    silenced = model.run(spikes, silence={"1": mask})
    baseline = model.run(spikes)
    assert torch.equal(silenced[1], baseline[1])
    assert not torch.equal(silenced[0], baseline[0])
    assert silenced[0].sum() < baseline[0].sum()


def test_record_matches_snntorch_layers():
    net = snntorch_mlp([8, 6, 3], neuron="synaptic")
    spikes = random_spikes(2, 10, 8, seed=8)
    recording = from_snntorch(net).record(spikes)
    hidden_spikes, hidden_membranes = [], []

    def capture(module, args, output):
        hidden_spikes.append(output)
        hidden_membranes.append(module.mem.clone())

    counts = snntorch_counts(net, spikes, [(net[1], capture)])
    assert [layer.name for layer in recording.layers] == ["1", "3"]
    assert torch.equal(recording.layers[0].spikes, torch.stack(hidden_spikes, dim=1))
    assert torch.equal(recording.layers[0].membrane, torch.stack(hidden_membranes, dim=1))
    assert torch.equal(recording.layers[1].spikes.sum(1), counts)
    assert torch.equal(recording.outputs, counts)


def test_membrane_and_rate_readouts():
    net = snntorch_mlp([8, 6, 3])
    spikes = random_spikes(2, 10, 8, seed=9)
    membranes = torch.stack([net(step)[1] for step in (net[1].reset_mem(), net[3].reset_mem(),
                                                        spikes.transpose(0, 1))[2]])
    assert torch.equal(from_snntorch(net, readout="final_membrane").run(spikes), membranes[-1])
    assert torch.equal(from_snntorch(net, readout="max_membrane").run(spikes), membranes.amax(0))
    assert torch.equal(from_snntorch(net, readout="rate").run(spikes), snntorch_counts(net, spikes) / 10)
    with pytest.raises(ValueError, match="readout"):
        from_snntorch(net, readout="mean")


def test_linear_weights_are_the_linear_layers():
    net = snntorch_mlp([8, 6, 3], dropout=0.5)
    chain = from_snntorch(net).linear_weights()
    assert [w.shape for w in chain] == [(8, 6), (6, 3)]
    assert torch.equal(chain[0], net[0].weight.T) and torch.equal(chain[1], net[3].weight.T)
    assert from_snntorch(snntorch_mlp([8, 6, 3], neuron="rleaky")).linear_weights() is None
    assert [layer.kind for layer in from_snntorch(net).stack] == ["linear", "leaky", "dropout", "linear", "leaky"]


def test_forward_is_differentiable_through_the_surrogate():
    model = from_snntorch(snntorch_mlp([8, 6, 3]))
    spikes = random_spikes(2, 10, 8, seed=10).requires_grad_()
    model(spikes)[:, 0].sum().backward()
    assert spikes.grad is not None and spikes.grad.abs().sum() > 0


def test_invalid_models_and_arguments():
    import snntorch as snn

    with pytest.raises(ValueError, match="init_hidden"):
        from_snntorch(torch.nn.Sequential(torch.nn.Linear(4, 2), snn.Leaky(beta=0.9)))
    with pytest.raises(ValueError, match="output=True"):
        from_snntorch(torch.nn.Sequential(torch.nn.Linear(4, 2), snn.Leaky(beta=0.9, init_hidden=True)))
    with pytest.raises(ValueError, match="last entry"):
        from_snntorch(torch.nn.Sequential(torch.nn.Linear(4, 2), snn.Leaky(beta=0.9, init_hidden=True, output=True),
                                          torch.nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="Sequential is a Sequential"):
        from_snntorch(torch.nn.Sequential(snntorch_mlp([4, 3, 2])))
    with pytest.raises(ValueError, match="input_shape"):
        from_snntorch(snntorch_conv())
    with pytest.raises(TypeError, match="model"):
        from_snntorch(lambda x: x)
    model = from_snntorch(snntorch_mlp([8, 6, 3]))
    with pytest.raises(ValueError, match="spikes"):
        model.run(torch.zeros(2, 10, 7))
    with pytest.raises(ValueError, match="unknown layer"):
        model.run(torch.zeros(2, 10, 8), silence={"0": torch.zeros(2, 6, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"silence\['1'\]"):
        model.run(torch.zeros(2, 10, 8), silence={"1": torch.zeros(2, 5, dtype=torch.bool)})


def test_missing_snntorch_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "snntorch", None)
    with pytest.raises(ImportError, match=r"spikexplain\[snntorch\]"):
        from_snntorch(torch.nn.Sequential())


def flat_neuron_hook(neuron: int):
    """Silence flat neuron index ``neuron`` of a per-step output of any shape (B, ...)."""
    def hook(module, args, output):
        spikes = output.clone()
        spikes.view(spikes.shape[0], -1)[:, neuron] = 0
        return spikes
    return hook


def test_hidden_importance_on_loop_parallel_and_conv_models_equals_hook_loop():
    spikes = random_spikes(2, 12, 8, seed=11)
    loop = SnnTorchLoop([8, 6, 3])
    parallel = snntorch_parallel([8, 6, 3])
    for net, layer, module in ((loop, "lif1", loop.lif1), (parallel, "0", parallel[0])):
        result = CausalImportance(from_snntorch(net)).explain(spikes, output_neuron=0, layer=layer).importance_map()
        expected = hidden_importance_loop(lambda hooks, net=net: snntorch_counts(net, spikes, hooks), module, 6, target=0)
        assert expected.abs().sum() > 0
        torch.testing.assert_close(result, expected)
    conv = snntorch_conv()
    images = random_spikes(1, 12, 36, seed=12)
    result = CausalImportance(from_snntorch(conv, input_shape=(1, 6, 6))).explain(
        images, output_neuron=0, layer="1").importance_map()
    base = snntorch_counts(conv, images.reshape(1, 12, 1, 6, 6))[:, 0]
    expected = torch.stack([base - snntorch_counts(conv, images.reshape(1, 12, 1, 6, 6),
                                                   [(conv[1], flat_neuron_hook(j))])[:, 0] for j in range(72)], dim=1)
    torch.testing.assert_close(result, expected)


def test_leaky_stack_records_and_attributes_as_the_reference_lif_network():
    # snnTorch's Leaky (subtract reset, delayed) is the dynamics our LIFNetwork is written with: the
    # same weights must give the same spikes, membranes and gated attribution.
    from sc_neurocore.explain import SpikeAttributor
    from sc_neurocore.models import LIFNetwork

    net = snntorch_mlp([8, 6, 3])
    reference = LIFNetwork([net[0].weight.detach().T, net[2].weight.detach().T], beta=0.9,
                           biases=[net[0].bias.detach(), net[2].bias.detach()])
    spikes = random_spikes(2, 15, 8, seed=13)
    ours, theirs = from_snntorch(net).record(spikes), reference.record(spikes)
    for mine, expected in zip(ours.layers, theirs.layers, strict=True):
        torch.testing.assert_close(mine.spikes, expected.spikes)
        torch.testing.assert_close(mine.membrane, expected.membrane)
    gated = SpikeAttributor(decay=0.9, mode="gated")
    torch.testing.assert_close(gated.attribute(spikes, from_snntorch(net), output_neuron=1).attribution_map(),
                               gated.attribute(spikes, reference, output_neuron=1).attribution_map())


def test_a_bare_model_that_reshapes_before_its_first_linear_takes_its_input_shape_from_the_spikes():
    # Unflatten and Conv1d come before the Linear: its in_features (8 * 6) is not the model's input size (4 * 8).
    import snntorch as snn
    from torch import nn

    from sc_neurocore.adapters.hooked import infer_input_shape

    torch.manual_seed(3)
    net = nn.Sequential(nn.Unflatten(1, (4, 8)), nn.Conv1d(4, 8, 3), snn.Leaky(beta=0.8, init_hidden=True),
                        nn.Flatten(), nn.Linear(8 * 6, 3), snn.Leaky(beta=0.8, init_hidden=True, output=True))
    with torch.no_grad():
        net[1].weight.mul_(3.0)
        net[4].weight.mul_(3.0)
    with pytest.raises(ValueError, match="input_shape: cannot tell the input size"):
        infer_input_shape(net, None)
    spikes = random_spikes(1, 12, 32, seed=5)
    saliency = TemporalSaliency(net).explain(spikes[0], output_neuron=0).saliency_map()
    expected = saliency_loop(one_sample(net), spikes[0], target=0)
    assert expected.abs().sum() > 0
    torch.testing.assert_close(torch.as_tensor(saliency).double(), expected, rtol=0, atol=0)
