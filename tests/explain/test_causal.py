"""CausalImportance: brute-force equality for input and hidden layers, accuracy mode, robustness."""

import numpy as np
import pytest
import torch

from brute_force import input_causal_loop, one_sample
from sc_neurocore.engine.budget import bytes_per_row
from sc_neurocore.explain import CausalImportance
from toy_models import lif_network, spike_train


def _net(seed=0, sizes=(20, 12, 6)):
    return lif_network(seed, sizes)


def _spikes(shape, seed=1, rate=0.25):
    return spike_train(shape, seed, rate)


def _hidden_loop(net, spikes, layer, target):
    """Silence one hidden neuron at a time (the definition)."""
    n = net.neuron_layers[layer]
    base = net.run(spikes[None])[0, target]
    importance = torch.zeros(n)
    for j in range(n):
        mask = torch.zeros(1, n, dtype=torch.bool)
        mask[0, j] = True
        importance[j] = base - net.run(spikes[None], silence={layer: mask})[0, target]
    return importance


def test_input_neurons_equal_brute_force():
    net, spikes = _net(), _spikes((40, 20))
    result = CausalImportance(net).explain(spikes, output_neuron=2)
    expected = input_causal_loop(one_sample(net), spikes, 2)
    assert torch.equal(result.importance_map().double(), expected)
    assert expected.abs().sum() > 0


@pytest.mark.parametrize("layer", ["0", "1"])
def test_hidden_and_output_layers_equal_brute_force(layer):
    net, spikes = _net(seed=2), _spikes((40, 20), seed=3)
    result = CausalImportance(net).explain(spikes, output_neuron=4, layer=layer)
    expected = _hidden_loop(net, spikes, layer, 4)
    assert torch.equal(result.importance_map(), expected)
    assert result.layer == layer and expected.abs().sum() > 0


def test_plain_callable_equals_brute_force():
    g = torch.Generator().manual_seed(4)
    projection = torch.randn(20, 3, generator=g, dtype=torch.float64)

    def unbatched(spikes):
        return np.cos(spikes.sum(0) @ projection.numpy())

    spikes = _spikes((15, 20), seed=5).double()
    result = CausalImportance(unbatched).explain(spikes.numpy(), output_neuron=1)
    expected = input_causal_loop(lambda s: torch.from_numpy(unbatched(s.numpy())), spikes, 1)
    np.testing.assert_allclose(result.importance_map(), expected.numpy(), rtol=0, atol=1e-12)


def test_batch_without_labels_is_per_sample():
    net, spikes = _net(seed=6), _spikes((3, 30, 20), seed=7)
    targets = torch.tensor([1, 3, 5])
    batch = CausalImportance(net).explain(spikes, output_neuron=targets, layer="0")
    assert batch.importance_map().shape == (3, 12)
    for b in range(3):
        single = CausalImportance(net).explain(spikes[b], output_neuron=int(targets[b]), layer="0")
        assert torch.equal(batch.importance_map()[b], single.importance_map())
        assert batch.robustness_count(0.1)[b] == single.robustness_count(0.1)


def test_accuracy_drop_with_labels():
    net, spikes = _net(seed=8), _spikes((8, 30, 20), seed=9)
    labels = net(spikes).argmax(1)
    labels[:2] = (labels[:2] + 1) % 6  # two samples wrong: accuracy 0.75
    result = CausalImportance(net).explain(spikes, labels=labels, layer="0")
    assert result.metric == "accuracy" and result.baseline == pytest.approx(0.75)
    expected = torch.zeros(12, dtype=torch.float64)
    for j in range(12):
        mask = torch.zeros(8, 12, dtype=torch.bool)
        mask[:, j] = True
        predictions = net.run(spikes, silence={"0": mask}).argmax(1)
        expected[j] = 0.75 - (predictions == labels).double().mean()
    assert torch.equal(result.importance_map(), expected)


@pytest.mark.parametrize("rows", [1, 7, None])
def test_independent_of_chunk_size(rows, chunks_of_any_size):
    net, spikes = _net(seed=10), _spikes((2, 20, 20), seed=11)
    reference = CausalImportance(net).explain(spikes, output_neuron=0, layer="0").importance_map()
    max_memory = None if rows is None else rows * bytes_per_row(20, 20, [12, 6], 4)
    chunked = CausalImportance(net, max_memory=max_memory).explain(spikes, output_neuron=0, layer="0")
    assert torch.equal(chunked.importance_map(), reference)


def _robustness_by_definition(net, spikes, importance, target, threshold, layer="input"):
    order = np.argsort(importance, kind="stable")
    base = float(net(spikes[None])[0, target])
    best = 0
    for k in range(len(order) + 1):
        x = spikes.clone()
        silence = None
        if layer == "input":
            x[:, order[:k]] = 0
        else:
            mask = torch.zeros(1, len(order), dtype=torch.bool)
            mask[0, order[:k]] = True
            silence = {layer: mask}
        value = float(net.run(x[None], silence=silence)[0, target])
        if base - value <= threshold * abs(base):
            best = k
    return best


@pytest.mark.parametrize("layer", ["input", "0"])
def test_robustness_count_by_definition(layer):
    net, spikes = _net(seed=12), _spikes((40, 20), seed=13)
    result = CausalImportance(net).explain(spikes.numpy(), output_neuron=1, layer=layer)
    importance = result.importance_map()
    for threshold in (0.0, 0.05, 0.3):
        expected = _robustness_by_definition(net, spikes, importance, 1, threshold, layer)
        assert result.robustness_count(threshold) == expected
    curve = result.robustness_curve()
    assert curve.shape == (len(importance) + 1,)
    assert curve[0] == result.baseline


def test_robustness_with_labels_uses_accuracy():
    net, spikes = _net(seed=14), _spikes((6, 25, 20), seed=15)
    labels = net(spikes).argmax(1)
    result = CausalImportance(net).explain(spikes, labels=labels)
    curve = result.robustness_curve()
    assert curve.shape == (21,) and curve[0] == 1.0 and curve[-1] <= curve[0]
    order = torch.sort(result.importance_map(), stable=True).indices
    k = result.robustness_count(0.2)
    x = spikes.clone()
    x[:, :, order[:k]] = 0
    assert (net(x).argmax(1) == labels).double().mean() >= 0.8


def test_numpy_and_torch_outputs():
    net, spikes = _net(seed=16), _spikes((20, 20), seed=17)
    a = CausalImportance(net).explain(spikes.numpy())
    b = CausalImportance(net).explain(spikes)
    assert isinstance(a.importance_map(), np.ndarray) and isinstance(b.importance_map(), torch.Tensor)
    np.testing.assert_array_equal(a.importance_map(), b.importance_map().numpy())
    assert isinstance(a.robustness_count(), int)


def test_inputs_and_model_not_mutated():
    net, spikes = _net(seed=18), _spikes((2, 20, 20), seed=19)
    before_x, before_w = spikes.clone(), [w.clone() for w in net.weights]
    CausalImportance(net).explain(spikes, layer="0").robustness_curve()
    assert torch.equal(spikes, before_x)
    assert all(torch.equal(a, b) for a, b in zip(net.weights, before_w, strict=True))


def test_bad_layers_and_labels():
    net, spikes = _net(), _spikes((2, 10, 20))
    with pytest.raises(ValueError, match="layer: expected 'input' or one of"):
        CausalImportance(net).explain(spikes, layer="fc9")
    with pytest.raises(ValueError, match="labels"):
        CausalImportance(net).explain(spikes, labels=torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="labels"):
        CausalImportance(net).explain(spikes, labels=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="layer: a plain callable exposes no neuron layers"):
        CausalImportance(lambda s: s.sum(1), batched=True).explain(spikes, layer="0")
    with pytest.raises(ValueError, match="threshold"):
        CausalImportance(net).explain(spikes[0]).robustness_count(2.0)
