"""SpikeAttributor(sparse=True): in every mode, equal to the dense result at the spikes and zero elsewhere, with
the dense result's accessors giving the dense result's values (to the bit), per sample, and after pickling."""

import pickle

import numpy as np
import pytest
import torch

import sc_neurocore.engine.attribution_out as attribution_out
import sc_neurocore.explain.sparse_results as sparse_results
from sc_neurocore.engine.attribution_out import scores_at_spikes, sparse_scores
from sc_neurocore.explain import SpikeAttributor
from sc_neurocore.explain.sparse_results import SparseAttributionResult
from tests.conftest import require_module
from tests.explain.test_attribution_out import CASES, _case, _network, _spikes
from tests.toy_models import snntorch_conv

pytestmark = pytest.mark.filterwarnings("ignore:mode='gated' is deprecated:DeprecationWarning")


def _graded(shape=(7, 12, 16), seed=4):
    """Spikes with graded and negative values and one silent sample: every corner the sparse layout has."""
    x = _spikes(shape, seed=seed)
    x[0, 3, 5], x[2, 0, 0], x[4] = 0.5, -2.0, 0.0
    return x


def _same_vocabulary(sparse, dense, n_samples):
    assert torch.equal(torch.as_tensor(sparse.to_dense().attribution_map()), torch.as_tensor(dense.attribution_map()))
    assert torch.equal(torch.as_tensor(sparse.attribution_map()), torch.as_tensor(dense.attribution_map()))
    for absolute in (False, True):
        assert np.array_equal(np.asarray(sparse.spatial_importance(absolute)), np.asarray(dense.spatial_importance(absolute)))
        assert np.array_equal(np.asarray(sparse.temporal_profile(absolute)), np.asarray(dense.temporal_profile(absolute)))
    assert np.array_equal(np.asarray(sparse.total), np.asarray(dense.total))
    assert np.array_equal(np.asarray(sparse.output_neuron), np.asarray(dense.output_neuron))
    for k in (1, 5, 60, 12 * 16 + 3):  # beyond the spikes: the zeros off them rank as the dense ranking does
        assert sparse.top_k(k) == dense.top_k(k)
        if n_samples > 1:
            assert all(sparse.top_k(k, sample=b) == dense.top_k(k, sample=b) for b in range(n_samples))
    assert sparse.method == dense.method and sparse.options == dense.options and sparse.engine == dense.engine


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("batched", [True, False])
def test_equal_to_the_dense_result_at_the_spikes_and_zero_elsewhere(name, batched):
    _, attributor, weights, model = _case(name)
    x = _graded() if name != "fixed point" else _spikes((7, 12, 16), seed=4)  # the hardware takes 0/1 spikes
    if not batched:
        x = x[2]
    targets = torch.tensor([0, 2, 1, 2, 0, 1, 1]) if batched else 1
    dense = attributor.attribute(x, weights, targets, model=model)
    sparse = attributor.attribute(x, weights, targets, model=model, sparse=True)
    assert isinstance(sparse, SparseAttributionResult)
    dense_map = torch.as_tensor(dense.attribution_map())
    spikes = x != 0
    assert sparse.n_spikes == int(spikes.sum()) and sparse.shape == tuple(x.shape)
    assert torch.equal(sparse.coordinates(), torch.nonzero(spikes))  # where, in increasing order
    assert torch.equal(sparse.values(), dense_map[spikes])  # the dense scores there, to the bit
    assert bool((dense_map[~spikes] == 0).all())  # and the dense map is zero everywhere else
    _same_vocabulary(sparse, dense, x.shape[0] if batched else 1)
    coo = sparse.to_sparse_coo()
    assert coo.is_coalesced() and torch.equal(coo.to_dense(), dense_map)


def test_per_sample_access_and_a_silent_sample():
    x = _graded()
    sparse = SpikeAttributor(0.9).attribute(x, _network(), 1, sparse=True)
    dense = SpikeAttributor(0.9).attribute(x, _network(), 1).attribution_map()
    for b in range(x.shape[0]):
        where = torch.nonzero(x[b] != 0)
        assert torch.equal(sparse.coordinates(sample=b), where)
        assert torch.equal(sparse.values(sample=b), dense[b][x[b] != 0])
    assert sparse.spike_counts().tolist() == (x != 0).sum(dim=(1, 2)).tolist()
    assert SpikeAttributor(0.9).attribute(x[1], _network(), 1, sparse=True).spike_counts() == int((x[1] != 0).sum())
    assert sparse.values(sample=4).numel() == 0 and sparse.top_k(3, sample=4) == [(0, 0, 0.0), (0, 1, 0.0), (0, 2, 0.0)]
    for bad in (7, -1, True, 1.0):
        with pytest.raises(ValueError, match="sample: expected an int in \\[0, 7\\)"):
            sparse.values(sample=bad)
    with pytest.raises(ValueError, match="k: "):
        sparse.top_k(0)


def test_numpy_in_numpy_out_and_pickle():
    x = _graded().numpy()
    sparse = SpikeAttributor(0.9).attribute(x, _network(), 2, sparse=True)
    dense = SpikeAttributor(0.9).attribute(x, _network(), 2)
    assert isinstance(sparse.values(), np.ndarray) and isinstance(sparse.coordinates(), np.ndarray)
    assert isinstance(sparse.to_numpy(), np.ndarray) and isinstance(sparse.spatial_importance(), np.ndarray)
    assert np.array_equal(sparse.values(), dense.attribution_map()[x != 0])
    as_dict = sparse.as_dict()
    assert {"method", "engine", "options", "values", "coordinates", "shape", "total", "output_neuron"} <= set(as_dict)
    assert all(isinstance(v, (np.ndarray, int, float, str, dict)) for v in as_dict.values())
    restored = pickle.loads(pickle.dumps(sparse))
    assert np.array_equal(restored.values(), sparse.values()) and restored.top_k(4) == dense.top_k(4)
    _same_vocabulary(restored, dense, x.shape[0])


def test_many_blocks_give_the_same_result(monkeypatch):
    """Blocks of two samples (a lone last sample joins the block before it): the same values and sums."""
    x = _graded((9, 12, 16))
    expected = SpikeAttributor(0.9).attribute(x, _network(), 1, sparse=True)
    dense = SpikeAttributor(0.9).attribute(x, _network(), 1)
    monkeypatch.setattr(attribution_out, "SPARSE_BLOCK", 2 * 12 * 16)
    monkeypatch.setattr(sparse_results, "SPARSE_BLOCK", 2 * 12 * 16)
    blocked = SpikeAttributor(0.9).attribute(x, _network(), 1, sparse=True)
    assert [tuple(b) for b in blocked._blocks()] == [(0, 2), (2, 4), (4, 6), (6, 9)]
    assert torch.equal(blocked._sparse.offsets, expected._sparse.offsets)
    assert torch.equal(blocked.values(), expected.values()) and torch.equal(blocked.coordinates(), expected.coordinates())
    _same_vocabulary(blocked, dense, 9)
    auto = SpikeAttributor(mode="auto")
    assert torch.equal(auto.attribute(x, _network(), 1, sparse=True).values(),
                       auto.attribute(x, _network(), 1).attribution_map()[x != 0])


def test_sums_round_as_the_dense_result_on_threads(monkeypatch):
    """torch reduces a one-sample block on several threads in another order than a batch: a lone last sample
    joins the block before it, so the sums stay equal to the dense result's (maps above torch's grain size)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        generator = torch.Generator().manual_seed(8)
        x = torch.randn(5, 100, 784, generator=generator) * (torch.rand(5, 100, 784, generator=generator) < 0.5)
        weights = [torch.randn(784, 3, generator=generator)]
        dense = SpikeAttributor(0.9).attribute(x, weights, 1)
        monkeypatch.setattr(sparse_results, "SPARSE_BLOCK", 2 * 100 * 784)
        sparse = SpikeAttributor(0.9).attribute(x, weights, 1, sparse=True)
        assert [tuple(b) for b in sparse._blocks()] == [(0, 2), (2, 5)]
        assert torch.equal(sparse.total, dense.total)
        assert torch.equal(sparse.spatial_importance(True), dense.spatial_importance(True))
        assert torch.equal(sparse.temporal_profile(), dense.temporal_profile())
    finally:
        torch.set_num_threads(previous)


def test_through_a_traced_graph():
    require_module("snntorch", "snntorch")
    from sc_neurocore.adapters import from_snntorch

    model = from_snntorch(snntorch_conv(), input_shape=(1, 6, 6))
    x = _spikes((3, 5, 36), seed=3)
    for mode in ("linear", "gated", "auto"):
        attributor = SpikeAttributor(0.9, mode=mode)
        dense = attributor.attribute(x, model, 1)
        sparse = attributor.attribute(x, model, 1, sparse=True)
        assert torch.equal(sparse.values(), dense.attribution_map()[x != 0])
        _same_vocabulary(sparse, dense, 3)


def test_overflowing_paths_are_refused_not_hidden():
    x = _spikes((2, 4, 16))
    huge = [torch.full((16, 16), 1e30), torch.full((16, 3), 1e30)]  # W1 @ W2 overflows float32 to Inf
    with pytest.raises(ValueError, match="weights: expected finite values"):
        SpikeAttributor(0.9).attribute(x, huge, 0, sparse=True)
    scores = torch.zeros(1, 2, 2)
    scores[0, 0, 1] = float("nan")
    with pytest.raises(ValueError, match="sparse: the attribution map is not zero off the input spikes"):
        scores_at_spikes(torch.tensor([[[1.0, 0.0], [0.0, 0.0]]]), scores)


def test_the_sparse_builders_match_the_dense_kernels():
    generator = torch.Generator().manual_seed(5)
    x = _graded((5, 9, 11), seed=6)
    weights = torch.rand(9, generator=generator, dtype=torch.float32)
    for path in (torch.randn(5, 11, generator=generator), torch.randn(5, 9, 11, generator=generator),
                 torch.randn(5, 1, 11, generator=generator)):
        dense = x * weights[None, :, None] * (path[:, None, :] if path.ndim == 2 else path)
        found = sparse_scores(x, weights, path)
        assert found.flat.dtype == torch.int32 and found.offsets.tolist()[-1] == int((x != 0).sum())
        assert torch.equal(found.values, dense[x != 0])
        assert torch.equal(scores_at_spikes(x, dense).values, found.values)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_out_sparse_and_reuse_on_cuda():
    net = _network()
    x = _graded()
    attributor = SpikeAttributor(0.9)
    expected = attributor.attribute(x, net, 1).attribution_map()
    cuda_net, cuda_x = net.to("cuda"), x.to("cuda")
    out = torch.full(x.shape, float("nan"), device="cuda")
    assert attributor.attribute(cuda_x, cuda_net, 1, out=out).attribution_map() is out
    torch.testing.assert_close(out.cpu(), expected)
    first = attributor.attribute(cuda_x, cuda_net, 1)
    held = first.attribution_map().clone()
    attributor.attribute(cuda_x, cuda_net, 2)
    assert torch.equal(first.attribution_map(), held)
    sparse = attributor.attribute(cuda_x, cuda_net, 1, sparse=True)
    assert sparse.values().device.type == "cuda"
    assert torch.equal(sparse.to_dense().attribution_map(), attributor.attribute(cuda_x, cuda_net, 1).attribution_map())
