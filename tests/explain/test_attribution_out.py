"""SpikeAttributor(out=) and its reused buffers: every mode writes the default result's bits into the caller's
tensor, which the result wraps without a copy; bad buffers are refused by name; a held result never changes."""

import copy
import pickle
import threading
import weakref

import numpy as np
import pytest
import torch

from sc_neurocore.engine.attribution_out import SpareBuffer, check_out, shares_memory
from sc_neurocore.explain import SpikeAttributor
from sc_neurocore.models import LIFNetwork
from tests.conftest import require_module
from tests.toy_models import snntorch_conv

pytestmark = pytest.mark.filterwarnings("ignore:mode='gated' is deprecated:DeprecationWarning")


def _network(dtype=torch.float32):
    generator = torch.Generator().manual_seed(0)
    return LIFNetwork([torch.randn(16, 8, generator=generator, dtype=dtype),
                       torch.randn(8, 3, generator=generator, dtype=dtype)], threshold=0.5)


def _spikes(shape=(4, 12, 16), seed=1, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=generator) < 0.3).to(dtype)


def _cases():
    """(name, attributor, weights, model) for every mode and every way of giving weights."""
    net = _network()
    generator = torch.Generator().manual_seed(2)
    matrices = [torch.randn(16, 6, generator=generator), torch.randn(6, 3, generator=generator)]
    from sc_neurocore.fpga.spec import FixedPointSpec

    return [("linear, matrices", SpikeAttributor(0.9), matrices, None),
            ("linear, model", SpikeAttributor(0.8), net, None),
            ("gated, model", SpikeAttributor(0.9, mode="gated"), net, None),
            ("gated, matrices + model", SpikeAttributor(0.9, mode="gated"), [w.clone() for w in net.linear_weights()],
             net),
            ("auto", SpikeAttributor(mode="auto"), net, None),
            ("fixed point", SpikeAttributor(0.875, fixed_point=FixedPointSpec(decay=0.875)), matrices, None)]


CASES = ["linear, matrices", "linear, model", "gated, model", "gated, matrices + model", "auto", "fixed point"]


def _case(name):
    return next(case for case in _cases() if case[0] == name)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("batched", [True, False])
def test_out_holds_the_default_result_and_is_wrapped_without_copy(name, batched):
    _, attributor, weights, model = _case(name)
    x = _spikes() if batched else _spikes()[1]
    targets = torch.tensor([0, 2, 1, 2]) if batched else 2
    default = attributor.attribute(x, weights, targets, model=model)
    expected = default.attribution_map()
    out = torch.full(x.shape, float("nan"), dtype=expected.dtype)
    result = attributor.attribute(x, weights, targets, model=model, out=out)
    assert torch.equal(out, expected)
    assert result.attribution_map().data_ptr() == out.data_ptr()
    if batched:
        assert result.attribution_map() is out
    assert torch.equal(torch.as_tensor(result.total), torch.as_tensor(default.total))


def test_numpy_out_for_numpy_input():
    x = _spikes().numpy()
    attributor = SpikeAttributor(0.9)
    expected = attributor.attribute(x, _network(), 1).attribution_map()
    out = np.full(x.shape, np.nan, dtype=np.float32)
    result = attributor.attribute(x, _network(), 1, out=out)
    assert np.array_equal(out, expected) and np.shares_memory(result.attribution_map(), out)


def test_out_through_a_traced_graph():
    require_module("snntorch", "snntorch")
    from sc_neurocore.adapters import from_snntorch

    model = from_snntorch(snntorch_conv(), input_shape=(1, 6, 6))
    x = _spikes((2, 5, 36), seed=3)
    for mode in ("linear", "gated"):
        attributor = SpikeAttributor(0.9, mode=mode)
        expected = attributor.attribute(x, model, 1).attribution_map()
        out = torch.full_like(x, float("nan"))
        assert attributor.attribute(x, model, 1, out=out).attribution_map() is out and torch.equal(out, expected)


def test_float64_scores_need_a_float64_out():
    x = _spikes()
    with pytest.raises(TypeError, match=r"out: expected dtype torch.float64"):
        SpikeAttributor(0.9).attribute(x, _network(torch.float64), 0, out=torch.empty(x.shape))
    out = torch.empty(x.shape, dtype=torch.float64)
    assert SpikeAttributor(0.9).attribute(x, _network(torch.float64), 0, out=out).attribution_map() is out


def test_bad_out_is_refused_by_name():
    x, net = _spikes(), _network()
    attributor = SpikeAttributor(0.9)
    refusals = [
        (torch.empty(4, 12, 15), ValueError, "out: expected shape \\(4, 12, 16\\)"),
        (torch.empty(4, 12, 16, dtype=torch.float64), TypeError, "out: expected dtype torch.float32"),
        (torch.empty(4, 12, 16, dtype=torch.int64), TypeError, "out: expected dtype torch.float32"),
        (torch.empty(4, 12, 16, device="meta"), ValueError, "out: expected a tensor on cpu"),
        (torch.empty(16, 12, 4).permute(2, 1, 0), ValueError, "out: expected a contiguous tensor"),
        (torch.empty(4, 12, 16, requires_grad=True), ValueError, "out: expected a tensor that does not require"),
        (x, ValueError, "out: shares memory with input_spikes"),
        (np.empty((4, 12, 16), dtype=np.float32), TypeError, "out: expected a torch tensor for torch input"),
        ([[0.0]], TypeError, "out: expected None, a torch tensor or a NumPy array"),
        (torch.empty(4, 12, 16).to_sparse(), TypeError, "out: expected a dense"),
    ]
    for out, error, message in refusals:
        with pytest.raises(error, match=message):
            attributor.attribute(x, net, 0, out=out)
    with pytest.raises(ValueError, match="out: a sparse result"):
        attributor.attribute(x, net, 0, out=torch.empty(x.shape), sparse=True)
    with pytest.raises(TypeError, match="sparse: expected a bool"):
        attributor.attribute(x, net, 0, sparse=1)
    read_only = np.empty((4, 12, 16), dtype=np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="out: expected a writeable array"):
        attributor.attribute(x.numpy(), net, 0, out=read_only)


def test_out_never_overwrites_the_weights_or_the_input():
    x = _spikes()
    weights = [torch.randn(16, 3)]
    big = torch.zeros(2 * x.numel())
    with pytest.raises(ValueError, match="out: shares memory with input_spikes"):  # a view of the input's storage
        x_in_big = big[:x.numel()].view(x.shape).copy_(x)
        SpikeAttributor(0.9).attribute(x_in_big, weights, 0, out=big[x.numel():].view(x.shape))
    storage = torch.zeros(x.numel() + 48)
    held = storage[:48].view(16, 3).copy_(weights[0])
    with pytest.raises(ValueError, match="out: shares memory with weights"):
        SpikeAttributor(0.9).attribute(x, [held], 0, out=storage[48:].view(x.shape))
    class Plain:  # a SpikingModel that is not a torch Module: its weights are found through linear_weights()
        neuron_layers, n_inputs = {"0": 3}, 16

        def run(self, spikes, silence=None):
            raise AssertionError("the linear rule never runs the model")

        def record(self, spikes):
            raise AssertionError("the linear rule never records the model")

        def linear_weights(self):
            return [held]

    with pytest.raises(ValueError, match="out: shares memory with weights"):
        SpikeAttributor(0.9).attribute(x, Plain(), 0, out=storage[48:].view(x.shape))
    net = _network()
    flat = torch.cat([p.reshape(-1) for p in net.parameters()])
    assert not shares_memory(flat, next(net.parameters()))  # a copy is not the model's memory
    before = [t.clone() for t in net.state_dict().values()]
    SpikeAttributor(0.9).attribute(x, net, 0, out=torch.empty(x.shape))
    assert all(torch.equal(a, b) for a, b in zip(before, net.state_dict().values(), strict=True))


def test_out_may_be_a_slice_of_a_preallocated_dataset_map():
    x = _spikes((6, 12, 16))
    attributor = SpikeAttributor(0.9)
    maps = torch.full((6, 12, 16), float("nan"))
    for start in range(0, 6, 2):
        attributor.attribute(x[start:start + 2], _network(), 1, out=maps[start:start + 2])
    assert torch.equal(maps, attributor.attribute(x, _network(), 1).attribution_map())


@pytest.mark.parametrize("holder", ["result", "map", "view", "numpy", "storage", "detached"])
def test_a_held_result_never_changes(holder):
    attributor, net = SpikeAttributor(0.9), _network()
    x = _spikes()
    first = attributor.attribute(x, net, 0)
    expected = first.attribution_map().clone()
    held = {"result": lambda r: r, "map": lambda r: r.attribution_map(), "view": lambda r: r.attribution_map()[1],
            "numpy": lambda r: r.to_numpy(), "storage": lambda r: r.attribution_map().untyped_storage(),
            "detached": lambda r: r.attribution_map().detach()}[holder](first)
    pointer = first.attribution_map().data_ptr()
    del first
    for target in (1, 2, 0, 1):  # later calls with other targets: the held map must keep its values
        later = attributor.attribute(x, net, target)
        assert later.attribution_map().data_ptr() != pointer
        del later
    kept = torch.as_tensor(held.attribution_map() if holder == "result" else
                           held if holder != "storage" else torch.empty(0).set_(held).view(expected.shape))
    assert torch.equal(kept, expected[1] if holder == "view" else expected)


def test_a_dropped_result_is_written_over_in_place():
    attributor, net, x = SpikeAttributor(0.9), _network(), _spikes()
    first = attributor.attribute(x, net, 0)
    buffer = weakref.ref(first._scores)  # a weak reference does not hold it
    del first
    second = attributor.attribute(x, net, 1)
    assert second._scores is buffer()  # the pages are reused
    assert torch.equal(second.attribution_map(), SpikeAttributor(0.9).attribute(x, net, 1).attribution_map())
    del second
    assert attributor.attribute(x[:2], net, 1)._scores is not buffer()  # another shape: a new buffer


def test_concurrent_calls_never_share_a_buffer():
    attributor, net = SpikeAttributor(0.9), _network()
    inputs = [_spikes(seed=s) for s in range(4)]
    expected = [SpikeAttributor(0.9).attribute(x, net, 1).attribution_map() for x in inputs]
    kept, errors = [], []

    def work(index):
        try:
            for _ in range(20):
                result = attributor.attribute(inputs[index], net, 1)
                if not torch.equal(result.attribution_map(), expected[index]):
                    errors.append(index)
            kept.append(result)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(torch.equal(r.attribution_map(), e) for r, e in zip(sorted(kept, key=lambda r: float(r.total[0])),
                                                                   sorted(expected, key=lambda e: float(e[0].sum())),
                                                                   strict=True))


def test_the_attributor_copies_and_pickles_without_its_buffer():
    attributor = SpikeAttributor(0.9)
    result = attributor.attribute(_spikes(), _network(), 0)
    del result
    for clone in (pickle.loads(pickle.dumps(attributor)), copy.copy(attributor), copy.deepcopy(attributor)):
        assert clone._spare._tensor is None and clone.decay == 0.9
        assert torch.equal(clone.attribute(_spikes(), _network(), 0).attribution_map(),
                           attributor.attribute(_spikes(), _network(), 0).attribution_map())
    assert "_spare" not in SpikeAttributor(0.9).attribute(_spikes(), _network(), 0).options


def test_spare_buffer_keeps_only_maps_under_its_limit(monkeypatch):
    import sc_neurocore.engine.attribution_out as attribution_out

    monkeypatch.setattr(attribution_out, "SPARE_LIMIT", 100)
    spare = SpareBuffer()
    spare.keep(torch.empty(10, 10))  # 400 bytes: not kept
    assert spare._tensor is None
    spare.keep(torch.empty(5, 5))
    assert spare._tensor is not None


def test_check_out_wraps_numpy_without_copy():
    array = np.zeros((2, 3))
    out = check_out(array, (2, 3), torch.float64, torch.device("cpu"), avoid={})
    out.fill_(1.0)
    assert array.sum() == 6
