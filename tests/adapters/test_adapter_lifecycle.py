"""What every adapter promises around a call: fresh state, no leaks, hooks always removed, model untouched."""

from __future__ import annotations

import pytest
import torch
from conftest import require_module
from toy_models import SnnTorchLoop, norse_mlp, random_spikes, snntorch_mlp

from sc_neurocore.adapters import as_spiking_model, from_module, from_norse, from_snntorch
from sc_neurocore.adapters.function import FunctionModel
from sc_neurocore.explain import CausalImportance, TemporalSaliency


@pytest.fixture(autouse=True)
def _frameworks():
    require_module("snntorch", "snntorch")
    require_module("norse", "norse")


def adapters():
    return [from_snntorch(snntorch_mlp([8, 6, 3], neuron="synaptic")), from_snntorch(SnnTorchLoop([8, 6, 3])),
            from_norse(norse_mlp([8, 6, 3], hidden="lif_cell", output="li"))]


@pytest.mark.parametrize("index", range(3))
def test_no_state_leaks_between_calls_of_different_batch_sizes(index):
    model = adapters()[index]
    spikes = random_spikes(3, 15, 8, seed=1)
    fresh = model.run(spikes)
    assert fresh.abs().sum() > 0
    model.run(spikes[:1] * 0 + 1)  # a different batch size, with saturating input
    model.run(spikes[[2, 0, 1]])  # the same batch size, other samples: snnTorch would reuse this state
    assert torch.equal(model.run(spikes), fresh)
    assert torch.equal(model.run(spikes[1:2]), fresh[1:2])
    assert torch.equal(model(spikes), fresh)  # the differentiable path resets state too


def test_model_state_training_flags_and_hooks_are_restored():
    net = snntorch_mlp([8, 6, 3], dropout=0.5)
    model = from_snntorch(net)
    net.train()
    user_state = torch.full((5, 6), 7.0)
    net[1].mem = user_state
    spikes = random_spikes(2, 10, 8, seed=2)
    first = model.run(spikes, silence={"1": torch.eye(2, 6, dtype=torch.bool)})
    model.record(spikes)
    assert net[1].mem is user_state  # the user's tensors are put back, untouched
    assert all(module.training for module in net.modules())
    assert all(not module._forward_hooks for module in net.modules())
    # Dropout is off during the call (evaluation semantics): repeated calls agree.
    assert torch.equal(model.run(spikes, silence={"1": torch.eye(2, 6, dtype=torch.bool)}), first)


@pytest.mark.parametrize("index", range(3))
def test_hooks_are_removed_when_the_forward_raises(index):
    model = adapters()[index]
    calls = []

    def explode(module, args):
        calls.append(1)
        if len(calls) == 3:  # fail in the middle of the time loop
            raise RuntimeError("boom")

    linear = next(m for m in model.module.modules() if isinstance(m, torch.nn.Linear))
    handle = linear.register_forward_pre_hook(explode)
    name = next(iter(model.neuron_layers))
    try:
        with pytest.raises(RuntimeError, match="boom"):
            model.run(random_spikes(2, 10, 8), silence={name: torch.ones(2, 6, dtype=torch.bool)})
    finally:
        handle.remove()
    assert all(not module._forward_hooks for module in model.module.modules())
    assert model.module.training  # restored to the flag it had (nn.Module's default: training)


def test_explainers_accept_adapters_and_wrap_bare_stacks():
    net = snntorch_mlp([8, 6, 3])
    spikes = random_spikes(1, 12, 8, seed=3)[0]
    explicit = TemporalSaliency(from_snntorch(net)).explain(spikes, output_neuron=0).saliency_map()
    bare = TemporalSaliency(net).explain(spikes, output_neuron=0).saliency_map()
    assert torch.equal(explicit, bare)
    # The tutorial's keyword form takes an adapter as its run_fn.
    keyword = TemporalSaliency(run_fn=from_snntorch(net)).explain(spikes, output_neuron=0).saliency_map()
    assert torch.equal(keyword, explicit) and explicit.abs().sum() > 0
    importance = CausalImportance(run_fn=from_snntorch(net)).explain(spikes, output_neuron=0, layer="1")
    assert importance.importance_map().shape == (6,)
    norse_net = norse_mlp([8, 6, 3])
    assert isinstance(as_spiking_model(norse_net, batched=None, n_inputs=8, numpy_io=False).module, type(norse_net))
    assert CausalImportance(norse_net).explain(spikes, layer="1").importance_map().shape == (6,)


def test_a_bare_framework_module_gets_its_framework_front_end():
    """A module built from snnTorch neurons is wrapped by from_snntorch (snnTorch is time-first); one that
    says it is batched itself stays a plain callable."""
    from sc_neurocore.adapters import ModuleModel

    loop = SnnTorchLoop([8, 6, 3])
    model = as_spiking_model(loop, batched=None, n_inputs=8, numpy_io=False)
    assert isinstance(model, ModuleModel) and model.time_first
    spikes = random_spikes(2, 10, 8, seed=3)
    assert torch.equal(model.run(spikes), from_snntorch(loop).run(spikes))
    assert isinstance(as_spiking_model(loop, batched=True, n_inputs=8, numpy_io=False), FunctionModel)


class BatchFirstRate(torch.nn.Module):
    """A non-framework model: batch-first, its own threshold units, returns a (B, T, C) spike record."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(8, 4)
        self.units = torch.nn.ReLU()

    def forward(self, x):
        return (self.units(self.fc(x)) > 0.2).float()


def test_from_module_batch_first_with_named_neuron_layers():
    net = BatchFirstRate()
    spikes = random_spikes(3, 12, 8, seed=4)
    model = from_module(net, time_first=False, neuron_layers=["units"])
    assert model.neuron_layers == {"units": 4}
    assert torch.equal(model.run(spikes), net(spikes).sum(1))
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[:, 1] = True
    silenced = model.run(spikes, silence={"units": mask})
    assert torch.equal(silenced[:, 1], torch.zeros(3)) and torch.equal(silenced[:, [0, 2, 3]],
                                                                      net(spikes).sum(1)[:, [0, 2, 3]])
    recording = model.record(spikes)
    assert recording.layers[0].membrane.isnan().all()  # not observable: NaN, never a made-up value
    with pytest.raises(ValueError, match="neuron_layers"):
        from_module(net, time_first=False, neuron_layers=["missing"])
    with pytest.raises(TypeError, match="time_first"):
        from_module(net, time_first="yes")
    summed = SummedOverTime()
    assert torch.equal(from_module(summed, time_first=True).run(spikes), summed(spikes.transpose(0, 1)))
    with pytest.raises(ValueError, match="readout"):
        from_module(summed, time_first=True, readout="rate")


class SummedOverTime(torch.nn.Module):
    """A model that returns its own (B, C) readout."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(x).sum(0)
