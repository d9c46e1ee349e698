"""What an explainer keeps between calls, and when it must not: the front end it wraps a bare model in, the
traced graph and its check. Kept while the model is unchanged (no forward of the model on a second call);
built again, and equal to brute force through the framework's own forward, after any change a forward
depends on: an in-place weight update, a replaced submodule or parameter tuple, a changed setting, a
replaced `run_fn`."""

from __future__ import annotations

import copy

import pytest
import torch
from brute_force import saliency_loop
from conftest import require_module
from torch import nn
from zoo.common import snntorch_sequential_forward
from zoo.models_norse import norse_forward
from zoo.models_spikingjelly import sj_forward

from sc_neurocore.adapters import from_norse, from_spikingjelly
from sc_neurocore.adapters.hooked import module_fingerprint
from sc_neurocore.explain import TemporalSaliency


def _forwards(module: nn.Module) -> list[int]:
    calls: list[int] = []
    module.register_forward_hook(lambda *args: calls.append(1))
    return calls


def _saliency(explainer: TemporalSaliency, spikes: torch.Tensor, target: int) -> torch.Tensor:
    return torch.as_tensor(explainer.explain(spikes, output_neuron=target).saliency_map()).double()


def _brute(forward, spikes: torch.Tensor, target: int) -> torch.Tensor:
    return saliency_loop(lambda one: forward(one[None])[0], spikes, target)


def _snntorch_stack(seed: int) -> nn.Sequential:
    require_module("snntorch", "snntorch")
    import snntorch as snn

    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(30, 12), snn.Leaky(beta=0.9, init_hidden=True),
                        nn.Linear(12, 3), snn.Leaky(beta=0.9, init_hidden=True, output=True))
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[2].weight.abs_().mul_(2.0)  # excitatory output weights: every output neuron fires
    return net


def test_a_bare_model_is_wrapped_once_and_again_after_every_change():
    net = _snntorch_stack(5)
    calls = _forwards(net)
    spikes = (torch.rand(2, 15, 30, generator=torch.Generator().manual_seed(6)) < 0.3).float()
    explainer = TemporalSaliency(net)  # the bare Sequential: the explainer wraps it in from_snntorch
    forward = snntorch_sequential_forward(net, (30,))
    target = int(forward(spikes).sum(0).argmax())
    first = _saliency(explainer, spikes[0], target)
    assert calls, "the first call checks the traced graph against the model's own forward"
    torch.testing.assert_close(first, _brute(forward, spikes[0], target))
    calls.clear()
    again = _saliency(explainer, spikes[1], target)
    assert calls == [], "unchanged: the wrapped model, its graph and its check are reused"
    torch.testing.assert_close(again, _brute(forward, spikes[1], target))

    def changed(change, what: str) -> None:
        before = _saliency(explainer, spikes[1], target)
        change()
        calls.clear()
        after = _saliency(explainer, spikes[1], target)
        assert calls, f"{what}: checked again"
        brute = _brute(snntorch_sequential_forward(explainer.run_fn, (30,)), spikes[1], target)
        torch.testing.assert_close(after, brute)
        assert not torch.equal(after, before), f"{what} must change the saliency for the test to mean anything"

    def update_in_place() -> None:
        with torch.no_grad():
            net[0].weight.mul_(1.7)

    def replace_neurons() -> None:
        import snntorch as snn

        net[1] = snn.Leaky(beta=0.5, threshold=0.6, init_hidden=True)

    def replace_model() -> None:
        other = _snntorch_stack(7)
        other.register_forward_hook(lambda *args: calls.append(1))
        explainer.run_fn = other

    changed(update_in_place, "an in-place weight update")
    changed(replace_neurons, "a replaced neuron layer")
    changed(lambda: setattr(explainer.run_fn[1], "reset_delay", False), "a plain setting")
    changed(replace_model, "a replaced run_fn")


def test_copies_of_an_explainer_build_their_own_front_end():
    net = _snntorch_stack(8)
    spikes = (torch.rand(1, 12, 30, generator=torch.Generator().manual_seed(9)) < 0.3).float()
    explainer = TemporalSaliency(net)
    expected = _saliency(explainer, spikes[0], 1)
    assert explainer._front_end is not None
    for twin in (copy.copy(explainer), copy.deepcopy(explainer)):  # snnTorch's surrogates do not pickle
        assert twin._front_end is None, "a copy never shares the original's wrap"
        assert torch.equal(_saliency(twin, spikes[0], 1), expected)
        assert twin._front_end is not None and twin._front_end[2] is not explainer._front_end[2]
        assert twin._front_end[2].module is twin.run_fn


def test_a_replaced_norse_parameter_tuple_is_never_served_stale():
    require_module("norse", "norse")
    import norse.torch as norse

    torch.manual_seed(10)
    net = norse.SequentialState(nn.Linear(20, 10, bias=False), norse.LIFBoxCell(),
                                nn.Linear(10, 3, bias=False), norse.LIFBoxCell())
    with torch.no_grad():
        net[0].weight.mul_(40.0)
        net[2].weight.mul_(60.0)
    spikes = (torch.rand(1, 30, 20, generator=torch.Generator().manual_seed(11)) < 0.3).float()
    model = from_norse(net)
    _, outputs = model.check_graph(spikes, reuse=True)
    assert outputs is not None
    _, outputs = model.check_graph(spikes, reuse=True)
    assert outputs is None, "unchanged: the check is reused"
    before = model.run(spikes)
    fingerprint = module_fingerprint(net)
    net[1].p = net[1].p._replace(v_th=torch.as_tensor(0.3))  # Norse keeps a cell's parameters in a NamedTuple
    assert module_fingerprint(net) != fingerprint
    graph, outputs = model.check_graph(spikes, reuse=True)
    assert outputs is not None, "the parameters changed: the model runs again"
    assert not torch.equal(outputs, before), "the change must matter for the test to mean anything"
    assert graph is not None and torch.equal(graph.run(spikes), outputs)
    forward = norse_forward(net, "step", (20,), integrator=False)
    target = int(outputs[0].argmax())
    torch.testing.assert_close(_saliency(TemporalSaliency(model), spikes[0], target), _brute(forward, spikes[0], target))


def _spikingjelly_stack(seed: int) -> nn.Sequential:
    require_module("spikingjelly", "spikingjelly")
    from spikingjelly.activation_based import layer, neuron

    torch.manual_seed(seed)
    net = nn.Sequential(layer.Linear(30, 12), neuron.LIFNode(tau=2.0), layer.Linear(12, 3), neuron.IFNode())
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[2].weight.mul_(3.0)
    return net.eval()


def test_a_plain_spikingjelly_stack_is_checked_once_per_shape_and_settings():
    net = _spikingjelly_stack(12)
    model = from_spikingjelly(net)
    assert model.fixed_structure
    calls = _forwards(net)
    spikes = (torch.rand(2, 15, 30, generator=torch.Generator().manual_seed(13)) < 0.3).float()
    explainer = TemporalSaliency(model)
    forward = sj_forward(net, "s", (30,))
    target = int(forward(spikes).sum(0).argmax())
    torch.testing.assert_close(_saliency(explainer, spikes[0], target), _brute(forward, spikes[0], target))
    calls.clear()
    again = _saliency(explainer, spikes[1], target)
    assert calls == [], "a plain stack verified on this shape is not run again"
    torch.testing.assert_close(again, _brute(forward, spikes[1], target))
    before = _saliency(explainer, spikes[1], target)
    net[1].v_threshold = 0.7  # a plain float setting of a SpikingJelly node
    calls.clear()
    after = _saliency(explainer, spikes[1], target)
    assert calls, "a setting changed: checked again"
    torch.testing.assert_close(after, _brute(forward, spikes[1], target))
    assert not torch.equal(after, before), "the change must matter for the test to mean anything"


class _OwnForward(nn.Sequential):
    """A Sequential subclass, as a user might write one: its forward may branch on the spikes."""


def test_a_spikingjelly_network_that_may_branch_is_checked_on_every_call():
    net = _spikingjelly_stack(14)
    assert from_spikingjelly(copy.deepcopy(net).train()).fixed_structure  # every call runs in evaluation mode
    assert not from_spikingjelly(_OwnForward(*copy.deepcopy(net))).fixed_structure
    model = from_spikingjelly(_OwnForward(*net))
    spikes = (torch.rand(1, 10, 30, generator=torch.Generator().manual_seed(15)) < 0.3).float()
    for _ in range(2):
        _, outputs = model.check_graph(spikes, reuse=True)
        assert outputs is not None


@pytest.mark.parametrize("reassigned", [False, True])
def test_fingerprint_sees_a_replaced_or_updated_tensor_setting(reassigned):
    class Scaled(nn.Module):  # a tensor setting that is neither a parameter nor a buffer
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.tensor([1.0, 2.0])

    module = Scaled()
    before = module_fingerprint(module)
    assert module_fingerprint(module) == before
    if reassigned:
        module.scale = torch.tensor([1.0, 2.0])
    else:
        module.scale.mul_(2.0)
    assert module_fingerprint(module) != before


def test_a_nir_graph_is_read_once_and_again_after_an_edit(monkeypatch):
    require_module("nir", "nir")
    import numpy as np
    import nir

    from sc_neurocore.adapters import nir as nir_adapter

    rng = np.random.default_rng(16)

    def lif(n: int):
        return nir.LIF(tau=np.full(n, 1e-3, np.float32), r=np.ones(n, np.float32), v_leak=np.zeros(n, np.float32),
                       v_threshold=np.full(n, 0.5, np.float32), v_reset=np.zeros(n, np.float32))

    graph = nir.NIRGraph.from_list(nir.Linear(weight=rng.normal(0.0, 8.0, (12, 30)).astype(np.float32)), lif(12),
                                   nir.Linear(weight=np.abs(rng.normal(0.0, 2.0, (3, 12))).astype(np.float32)), lif(3))
    reads = []
    real = nir_adapter.from_nir
    monkeypatch.setattr(nir_adapter, "from_nir", lambda *args, **kwargs: reads.append(1) or real(*args, **kwargs))
    spikes = (torch.rand(2, 20, 30, generator=torch.Generator().manual_seed(17)) < 0.3).float()
    explainer = TemporalSaliency(graph)
    target = int(real(graph).run(spikes).sum(0).argmax())
    for sample in spikes:
        got = _saliency(explainer, sample, target)
        torch.testing.assert_close(got, _brute(real(graph).run, sample, target))
    assert len(reads) == 1, "unchanged: the graph is read once"
    before = got
    first_linear = next(node for node in graph.nodes.values() if isinstance(node, nir.Linear))
    first_linear.weight *= 1.5  # an in-place edit of the user's array
    after = _saliency(explainer, spikes[-1], target)
    assert len(reads) == 2, "edited: read again"
    torch.testing.assert_close(after, _brute(real(graph).run, spikes[-1], target))
    assert not torch.equal(after, before), "the edit must change the saliency for the test to mean anything"
