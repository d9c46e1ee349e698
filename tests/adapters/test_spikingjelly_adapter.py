"""from_spikingjelly on real SpikingJelly networks: the dynamics bit for bit with SpikingJelly's neurons, the
traced graph exact on the zoo, fresh state on every call, and the user's model left as it was."""

from __future__ import annotations

import itertools

import pytest
import torch
from conftest import require_module
from torch import nn
from zoo.models_spikingjelly import MODELS

from sc_neurocore.adapters import from_module, from_spikingjelly
from sc_neurocore.dynamics import IntegrateFireParameters, integrate_fire_initial_state, integrate_fire_step
from sc_neurocore.explain import TemporalSaliency


@pytest.fixture(autouse=True)
def _spikingjelly():
    require_module("spikingjelly", "spikingjelly")


def _node(kind: str, v_reset: float | None, decay_input: bool, mode: str, dtype: torch.dtype):
    """A SpikingJelly neuron and the parameters our step function should take for it."""
    from spikingjelly.activation_based import neuron

    if kind == "if":
        return neuron.IFNode(v_threshold=0.8, v_reset=v_reset, step_mode=mode), IntegrateFireParameters(0.8, v_reset)
    if kind == "lif":
        node = neuron.LIFNode(tau=3.0, decay_input=decay_input, v_threshold=0.8, v_reset=v_reset, step_mode=mode)
        return node, IntegrateFireParameters(0.8, v_reset, tau=3.0, decay_input=decay_input)
    node = neuron.ParametricLIFNode(init_tau=2.7, decay_input=decay_input, v_threshold=0.8, v_reset=v_reset,
                                    step_mode=mode).to(dtype)
    with torch.no_grad():
        node.w.add_(0.1234)  # a learned w, not the initial one
    return node, IntegrateFireParameters(0.8, v_reset, decay=node.w.detach().sigmoid(), decay_input=decay_input)


@pytest.mark.parametrize(("kind", "v_reset", "decay_input", "mode", "dtype"),
                         [case for case in itertools.product(["if", "lif", "plif"], [0.0, None, -0.3], [True, False],
                                                             ["s", "m"], [torch.float32, torch.float64])
                          if case[0] != "if" or case[2]])
def test_integrate_fire_step_equals_spikingjelly_bit_for_bit(kind, v_reset, decay_input, mode, dtype):
    node, params = _node(kind, v_reset, decay_input, mode, dtype)
    currents = (torch.randn(30, 4, 7, generator=torch.Generator().manual_seed(0)) * 1.3).to(dtype)
    with torch.no_grad():
        expected = node(currents) if mode == "m" else torch.stack([node(x) for x in currents])
    state = integrate_fire_initial_state(currents[0], params)
    spikes = []
    for current in currents:
        out, state = integrate_fire_step(current, state, params)
        spikes.append(out)
    assert expected.sum() > 0 and (expected == 0).any()
    assert torch.equal(torch.stack(spikes), expected) and torch.stack(spikes).dtype == expected.dtype
    assert torch.equal(state.membrane, node.v)


def test_plif_decay_is_sigmoid_of_w_as_spikingjelly_computes_tau():
    from spikingjelly.activation_based import neuron

    from sc_neurocore.adapters.spikingjelly import neuron_node

    plif = neuron.ParametricLIFNode(init_tau=3.0)
    with torch.no_grad():
        plif.w.add_(0.5)
    node = neuron_node("plif", plif, (5,))
    assert torch.equal(node.params.decay, plif.w.detach().sigmoid())
    assert torch.equal(1.0 / node.params.decay, 1.0 / plif.w.detach().sigmoid())  # SpikingJelly's tau
    assert node.kind == "plif" and node.shape == (5,)


@pytest.mark.parametrize("entry", MODELS, ids=lambda entry: entry.name)
def test_zoo_model_equals_spikingjelly_forward_and_graph_is_exact(entry):
    built = entry.build()
    expected = built.raw_forward(built.spikes)
    recording = built.model.record(built.spikes)
    assert all(layer.spikes.sum() > 0 for layer in recording.layers), "every layer must fire for the test to mean anything"
    assert torch.equal(built.model.run(built.spikes), expected)
    assert torch.equal(recording.outputs, expected)
    graph = built.model.graph_for(built.spikes)
    if entry.engine == "generic":
        assert graph is None and "QIFNode" in built.model.graph_reason
        return
    assert graph is not None, built.model.graph_reason
    assert torch.equal(graph.run(built.spikes), expected)
    assert graph.neuron_layers == built.model.neuron_layers
    traced = graph.record(built.spikes)
    for ours, theirs in zip(traced.layers, recording.layers, strict=True):
        assert ours.name == theirs.name
        assert torch.equal(ours.spikes, theirs.spikes)
        assert torch.equal(ours.membrane, theirs.membrane)


def test_weight_chain_is_read_from_the_traced_graph():
    by_name = {entry.name: entry for entry in MODELS}
    for name in ("spikingjelly-multi-step-mlp", "spikingjelly-plif-seq-to-ann"):
        built = by_name[name].build()
        linears = [m for m in built.model.module.modules() if isinstance(m, nn.Linear)]
        chain = built.model.linear_weights()
        assert chain is not None and len(chain) == len(linears) == 2
        assert all(torch.equal(w, linear.weight.T) for w, linear in zip(chain, linears, strict=True))
    for name in ("spikingjelly-multi-step-csnn", "spikingjelly-qif-generic"):
        assert by_name[name].build().model.linear_weights() is None
    for entry in MODELS:  # a model the attributor refuses has no weight chain (nor a traced graph)
        if entry.refused is not None:
            assert entry.build().model.linear_weights() is None


def _memories(net: nn.Module) -> list[tuple[nn.Module, str, object]]:
    from spikingjelly.activation_based import base

    return [(m, key, value) for m in net.modules() if isinstance(m, base.MemoryModule)
            for key, value in m._memories.items()]


def _net(mode: str) -> nn.Module:
    from spikingjelly.activation_based import functional, layer, neuron

    torch.manual_seed(0)
    net = nn.Sequential(layer.Linear(8, 6), neuron.LIFNode(), layer.Linear(6, 3), neuron.ParametricLIFNode())
    functional.set_step_mode(net, mode)
    with torch.no_grad():
        net[0].weight.mul_(6.0)
        net[2].weight.mul_(8.0)
    return net


@pytest.mark.parametrize("mode", ["s", "m"])
def test_result_does_not_depend_on_the_previous_call(mode):
    """SpikingJelly keeps `v` on its modules until `reset_net`; on main the adapters never reset it, so the
    same spikes gave another answer after any other call (this test failed there)."""
    net = _net(mode)
    first = (torch.rand(2, 12, 8, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    other = torch.ones(2, 12, 8)
    model = from_spikingjelly(net)
    before = model.run(first)
    assert before.sum() > 0
    model.run(other)
    assert torch.equal(model.run(first), before)
    if mode == "m":  # a module called once on the whole sequence (test_spikingjelly_history.py)
        generic = from_module(net, time_first=True, neuron_layers=["1", "3"], readout="rate")
        generic.run(other)
        assert torch.equal(generic.run(first), before)


def test_explainer_on_a_bare_spikingjelly_sequential_uses_its_front_end():
    """On main a bare SpikingJelly Sequential was called on `(B, T, N)` as if it were one timestep."""
    net = _net("s")
    spikes = (torch.rand(2, 12, 8, generator=torch.Generator().manual_seed(2)) < 0.5).float()
    bare = TemporalSaliency(net).explain(spikes, output_neuron=0).saliency_map()
    wrapped = TemporalSaliency(from_spikingjelly(net)).explain(spikes, output_neuron=0).saliency_map()
    assert torch.equal(bare, wrapped)


def test_a_module_with_its_own_time_loop_is_pointed_to_from_module():
    from zoo.models_spikingjelly import OwnLoop

    from sc_neurocore.adapters import as_spiking_model

    with pytest.raises(ValueError, match="from_module\\(model, time_first=True\\)"):
        as_spiking_model(OwnLoop(), batched=None, n_inputs=64, numpy_io=False)


@pytest.mark.parametrize("mode", ["s", "m"])
def test_user_model_is_left_as_it_was_and_still_trains(mode):
    from spikingjelly.activation_based import functional

    net = _net(mode)
    net.train()
    x = (torch.rand(12, 2, 8, generator=torch.Generator().manual_seed(3)) < 0.5).float()

    def own_forward():
        return net(x) if mode == "m" else torch.stack([net(x_t) for x_t in x])

    own_forward()  # the user's own state: tensors from a training-mode forward
    before = [(m, key, value, value.clone() if isinstance(value, torch.Tensor) else value)
              for m, key, value in _memories(net)]
    assert any(isinstance(value, torch.Tensor) for _, _, value, _ in before)
    model = from_spikingjelly(net)
    spikes = x.transpose(0, 1)
    model.run(spikes)
    model.record(spikes)
    model(spikes).sum().backward()
    model.graph_for(spikes)
    assert net.training and all(m.training for m in net.modules())
    after = _memories(net)
    assert len(after) == len(before)
    for (module, key, value, copy), (module_after, key_after, value_after) in zip(before, after, strict=True):
        assert module is module_after and key == key_after and value_after is value
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, copy) and not value.is_inference()
    assert all(not (isinstance(v, torch.Tensor) and v.is_inference()) for m in net.modules()
               for v in vars(m).values())
    functional.reset_net(net)  # raised "Inplace update to inference tensor" if the adapter left one
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    optimizer.zero_grad()
    own_forward().mean().backward()
    optimizer.step()
    functional.reset_net(net)


@pytest.mark.parametrize("mode", ["s", "m"])
def test_forward_is_differentiable_through_spikingjelly_surrogates(mode):
    spikes = (torch.rand(2, 12, 8, generator=torch.Generator().manual_seed(5)) < 0.5).float().requires_grad_()
    model = from_spikingjelly(_net(mode))
    model(spikes)[:, 2].sum().backward()
    assert spikes.grad is not None and spikes.grad.abs().sum() > 0


def test_step_mode_is_read_from_the_model_and_a_mix_or_a_mismatch_is_refused():
    from spikingjelly.activation_based import layer, neuron

    assert from_spikingjelly(_net("m")).step_mode == "m"
    assert from_spikingjelly(_net("s"), step_mode="s").step_mode == "s"
    with pytest.raises(ValueError, match="set_step_mode"):
        from_spikingjelly(_net("s"), step_mode="m")
    with pytest.raises(ValueError, match="step_mode"):
        from_spikingjelly(_net("s"), step_mode="multi")
    mixed = nn.Sequential(layer.Linear(8, 4, step_mode="m"), neuron.IFNode(step_mode="s"))
    with pytest.raises(ValueError, match="mix single-step"):
        from_spikingjelly(mixed)
    with pytest.raises(ValueError, match="no SpikingJelly spiking neuron"):
        from_spikingjelly(nn.Sequential(layer.Linear(8, 4)))
    with pytest.raises(ValueError, match="last neuron layer"):
        from_spikingjelly(nn.Sequential(layer.Linear(8, 4), neuron.IFNode(), layer.Linear(4, 2)))
    with pytest.raises(TypeError, match="model"):
        from_spikingjelly("not a model")


def test_unsupported_neuron_settings_run_generically_with_a_reason():
    from spikingjelly.activation_based import layer, neuron, surrogate

    spikes = (torch.rand(2, 6, 8, generator=torch.Generator().manual_seed(4)) < 0.5).float()
    continuous = nn.Sequential(layer.Linear(8, 4), neuron.IFNode(surrogate_function=surrogate.Sigmoid(spiking=False)))
    model = from_spikingjelly(continuous)
    assert model.graph_for(spikes) is None and "non-spiking" in model.graph_reason


@pytest.mark.parametrize("name", ["sc_neurocore.dynamics.integrate_fire", "sc_neurocore.adapters.spikingjelly"])
def test_docstring_examples_run(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("mode", ["s", "m"])
@pytest.mark.parametrize("readout", ["final_membrane", "max_membrane"])
def test_membrane_readouts_are_spikingjelly_voltages(mode, readout):
    from spikingjelly.activation_based import functional

    net = _net(mode)
    spikes = (torch.rand(2, 12, 8, generator=torch.Generator().manual_seed(6)) < 0.5).float()
    model = from_spikingjelly(net, readout=readout)
    voltages = []
    with torch.no_grad():
        functional.reset_net(net)
        if mode == "s":  # SpikingJelly's own output-layer voltage after each step's reset
            for x_t in spikes.transpose(0, 1):
                net(x_t)
                voltages.append(net[3].v)
        else:
            net[3].store_v_seq = True
            net(spikes.transpose(0, 1))
            voltages = list(net[3].v_seq)
            net[3].store_v_seq = False
        functional.reset_net(net)
    voltage = torch.stack(voltages)
    expected = voltage[-1] if readout == "final_membrane" else voltage.amax(0)
    assert torch.equal(model.run(spikes), expected)
    graph = model.graph_for(spikes)
    assert graph is not None and torch.equal(graph.run(spikes), expected)


def test_multi_step_container_around_single_step_neurons():
    from spikingjelly.activation_based import layer, neuron

    torch.manual_seed(7)
    net = nn.Sequential(layer.SeqToANNContainer(nn.Linear(8, 6)), layer.MultiStepContainer(neuron.LIFNode()),
                        layer.SeqToANNContainer(nn.Linear(6, 3)), neuron.IFNode(step_mode="m"))
    with torch.no_grad():
        net[0][0].weight.mul_(6.0)
        net[2][0].weight.mul_(6.0)
    model = from_spikingjelly(net)
    assert model.step_mode == "m" and model.neuron_layers == {"1.0": 6, "3": 3}
    spikes = (torch.rand(2, 12, 8, generator=torch.Generator().manual_seed(8)) < 0.5).float()
    from zoo.models_spikingjelly import sj_forward

    expected = sj_forward(net, "m", (8,))(spikes)
    assert expected.sum() > 0 and torch.equal(model.run(spikes), expected)
    graph = model.graph_for(spikes)
    assert graph is not None, model.graph_reason
    assert torch.equal(graph.run(spikes), expected)


@pytest.mark.parametrize("mode", ["s", "m"])
def test_batch_sizes_do_not_leak_and_a_raising_forward_restores_everything(mode):
    net = _net(mode)
    model = from_spikingjelly(net)
    spikes = (torch.rand(3, 10, 8, generator=torch.Generator().manual_seed(9)) < 0.5).float()
    fresh = model.run(spikes)
    model.run(torch.ones(1, 10, 8))
    assert torch.equal(model.run(spikes), fresh) and torch.equal(model.run(spikes[1:2]), fresh[1:2])
    assert torch.equal(model(spikes), fresh)
    before = [(m, key, value) for m, key, value in _memories(net)]
    calls = []

    def explode(module, args):
        calls.append(1)
        if len(calls) == (2 if mode == "s" else 1):  # in the middle of the time loop, or the one call
            raise RuntimeError("boom")

    handle = net[2].register_forward_pre_hook(explode)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            model.record(spikes, silence={"1": torch.ones(3, 6, dtype=torch.bool)})
    finally:
        handle.remove()
    assert all(not m._forward_hooks for m in net.modules())
    after = _memories(net)
    assert len(after) == len(before)
    assert all(m is m_after and key == key_after and value is value_after
               for (m, key, value), (m_after, key_after, value_after) in zip(before, after, strict=True))
    assert torch.equal(model.run(spikes), fresh)


def test_without_spikingjelly_the_error_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "spikingjelly.activation_based.base", None)
    with pytest.raises(ImportError, match=r"spikexplain\[spikingjelly\]"):
        from_spikingjelly(nn.Linear(2, 2))
