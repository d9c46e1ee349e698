"""TemporalSaliency: exactly the brute-force loop, for every run_fn form, batch, chunk size and dtype."""

import numpy as np
import pytest
import torch

from brute_force import one_sample, saliency_loop
from sc_neurocore.engine.budget import bytes_per_row
from sc_neurocore.explain import TemporalSaliency
from toy_models import lif_network, spike_train


def _net(seed=0, sizes=(20, 12, 6)):
    return lif_network(seed, sizes)


def _spikes(shape, seed=1, rate=0.25):
    return spike_train(shape, seed, rate)


def test_equals_brute_force_on_lif_network():
    net, spikes = _net(), _spikes((40, 20))
    result = TemporalSaliency(net).explain(spikes, output_neuron=3)
    expected = saliency_loop(one_sample(net), spikes, 3)
    assert torch.equal(result.saliency_map().double(), expected)
    assert expected.abs().sum() > 0  # spike removals really change the counts


def test_equals_brute_force_on_plain_callables():
    g = torch.Generator().manual_seed(2)
    projection = torch.randn(20, 4, generator=g, dtype=torch.float64)
    decay = 0.9 ** torch.arange(30, 0, -1, dtype=torch.float64)

    def unbatched(spikes):  # the tutorial's form: numpy (T, N) -> (C,)
        return np.tanh((decay.numpy()[:, None] * spikes).sum(0) @ projection.numpy())

    def batched(spikes):  # (B, T, N) -> (B, C)
        return torch.tanh(torch.einsum("btn,t->bn", spikes.double(), decay) @ projection)

    spikes = _spikes((30, 20), seed=3).double()
    expected = saliency_loop(lambda s: torch.from_numpy(unbatched(s.numpy())), spikes, 1)
    got_unbatched = TemporalSaliency(unbatched).explain(spikes.numpy(), output_neuron=1).saliency_map()
    got_batched = TemporalSaliency(batched, batched=True).explain(spikes, output_neuron=1).saliency_map()
    np.testing.assert_allclose(got_unbatched, expected.numpy(), rtol=0, atol=1e-12)
    torch.testing.assert_close(got_batched, expected, rtol=0, atol=1e-12)


def test_batch_equals_per_sample_with_per_sample_targets():
    net, spikes = _net(seed=4), _spikes((3, 25, 20), seed=5)
    targets = torch.tensor([0, 5, 2])
    batch = TemporalSaliency(net).explain(spikes, output_neuron=targets)
    assert batch.saliency_map().shape == (3, 25, 20)
    for b in range(3):
        single = TemporalSaliency(net).explain(spikes[b], output_neuron=int(targets[b]))
        assert torch.equal(batch.saliency_map()[b], single.saliency_map())
        assert batch.baseline[b] == single.baseline


@pytest.mark.parametrize("rows", [1, 7, None])
def test_independent_of_chunk_size(rows, chunks_of_any_size):
    net, spikes = _net(seed=6), _spikes((2, 30, 20), seed=7)
    reference = TemporalSaliency(net).explain(spikes, output_neuron=1).saliency_map()
    max_memory = None if rows is None else rows * bytes_per_row(30, 20, [12, 6], 4)
    chunked = TemporalSaliency(net, max_memory=max_memory).explain(spikes, output_neuron=1).saliency_map()
    assert torch.equal(chunked, reference)


def test_chunking_really_splits_the_forward_passes(chunks_of_any_size):
    net, spikes = _net(seed=6), _spikes((30, 20), seed=7)
    calls = []

    class Counting(torch.nn.Module):
        def forward(self, x):
            calls.append(x.shape[0])
            return net(x)

    n_spikes = int(spikes.sum())
    TemporalSaliency(Counting(), max_memory=7 * bytes_per_row(30, 20, [], 4)).explain(spikes)
    assert calls[0] == 1  # the baseline, once
    assert max(calls[1:]) == 7 and sum(calls[1:]) == n_spikes


def test_zero_where_no_spike_and_non_binary_inputs_removed_entirely():
    net, spikes = _net(seed=8), _spikes((30, 20), seed=9)
    graded = spikes * torch.rand(spikes.shape, generator=torch.Generator().manual_seed(3)) * 2
    result = TemporalSaliency(net).explain(graded, output_neuron=0)
    assert torch.all(result.saliency_map()[graded == 0] == 0)
    expected = saliency_loop(one_sample(net), graded, 0)
    assert torch.equal(result.saliency_map().double(), expected)
    assert torch.equal(result.tested_mask(), graded != 0)


def test_numpy_in_numpy_out_and_torch_in_torch_out():
    net, spikes = _net(seed=10), _spikes((20, 20), seed=11)
    from_numpy = TemporalSaliency(net).explain(spikes.numpy(), output_neuron=2)
    from_torch = TemporalSaliency(net).explain(spikes, output_neuron=2)
    assert isinstance(from_numpy.saliency_map(), np.ndarray)
    assert isinstance(from_torch.saliency_map(), torch.Tensor)
    np.testing.assert_array_equal(from_numpy.saliency_map(), from_torch.saliency_map().numpy())
    np.testing.assert_array_equal(from_numpy.saliency_map(absolute=True), np.abs(from_numpy.saliency_map()))


def test_summary_in_the_tutorial_form():
    net, spikes = _net(seed=12), _spikes((40, 20), seed=13)
    result = TemporalSaliency(net, significance=1.0).explain(spikes, output_neuron=1)
    saliency = result.saliency_map()
    tested = spikes != 0
    n_tested, n_sig = int(tested.sum()), int((saliency.abs() >= 1.0).sum())
    flat = int(saliency.abs().argmax())
    t, n = divmod(flat, 20)
    lines = result.summary().splitlines()
    assert lines[0] == f"Total spikes tested: {n_tested}"
    assert lines[1] == f"Significant spikes: {n_sig} ({100 * n_sig / n_tested:.1f}%)"
    assert lines[2] == f"Max saliency: {float(saliency[t, n]):.3f} at (t={t}, neuron={n})"
    assert lines[3] == f"Mean saliency: {float(saliency.abs()[tested].mean()):.3f}"


def test_all_zero_input_has_nothing_to_test():
    net = _net()
    result = TemporalSaliency(net).explain(torch.zeros(10, 20))
    assert result.summary().splitlines()[0] == "Total spikes tested: 0"
    assert torch.equal(result.saliency_map(), torch.zeros(10, 20))


def test_inputs_and_model_not_mutated():
    net, spikes = _net(seed=14), _spikes((2, 20, 20), seed=15)
    before_x, before_w = spikes.clone(), [w.clone() for w in net.weights]
    TemporalSaliency(net).explain(spikes, output_neuron=0)
    assert torch.equal(spikes, before_x)
    assert all(torch.equal(a, b) for a, b in zip(net.weights, before_w, strict=True))


def test_progress_bar_on_unbatched(capsys):
    spikes = _spikes((10, 20), seed=16)
    TemporalSaliency(lambda s: s.sum(0)[:3], progress=True).explain(spikes)
    assert "perturbation" in capsys.readouterr().err


@pytest.mark.parametrize("run_fn, kwargs, match", [
    (lambda s: np.zeros((2, 3)), {}, "run_fn: an unbatched run_fn must return shape"),
    (lambda s: torch.zeros(s.shape[0] + 1, 3), {"batched": True}, r"run_fn: expected outputs of shape"),
    (lambda s: torch.full((s.shape[0], 3), float("nan")), {"batched": True}, "non-finite"),
    (lambda s: "no", {}, "run_fn"),
    ("not callable", {}, "run_fn"),
    (lambda s: np.zeros(3), {"batched": "yes"}, "batched"),
    (lambda s: np.zeros(3), {"max_memory": 1.5}, "max_memory"),
    (lambda s: np.zeros(3), {"max_memory": -1}, "max_memory"),
    (lambda s: np.zeros(3), {"significance": -1.0}, "significance"),
])
def test_bad_run_fn_and_options(run_fn, kwargs, match):
    spikes = _spikes((10, 20), seed=17)
    with pytest.raises((ValueError, TypeError), match=match):
        TemporalSaliency(run_fn, **kwargs).explain(spikes)


def test_run_fn_changing_shape_between_calls(chunks_of_any_size):
    spikes = _spikes((10, 20), seed=18)
    sizes = iter([3, 3, 4, 4, 4] * 100)

    def unstable(s):
        return torch.zeros(s.shape[0], next(sizes))

    with pytest.raises(ValueError, match="run_fn: expected outputs of shape"):
        TemporalSaliency(unstable, batched=True, max_memory=bytes_per_row(10, 20, [], 4)).explain(spikes)


def test_bad_targets_and_devices():
    net, spikes = _net(), _spikes((10, 20))
    with pytest.raises(ValueError, match="output_neuron"):
        TemporalSaliency(net).explain(spikes, output_neuron=6)
    with pytest.raises(ValueError, match="input_spikes: the model takes 20"):
        TemporalSaliency(net).explain(spikes[:, :5])
    with pytest.raises(ValueError, match="input_spikes.*meta"):
        TemporalSaliency(net).explain(spikes.to("meta"))
