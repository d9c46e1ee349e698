"""from_norse on real Norse models: every result checked against Norse's own forward pass."""

from __future__ import annotations

import pytest
import torch
from brute_force import input_causal_loop, saliency_loop
from conftest import require_module
from toy_models import hidden_importance_loop, norse_mlp, norse_readout, random_spikes

from sc_neurocore.adapters import from_norse
from sc_neurocore.explain import CausalImportance, TemporalSaliency

STACKS = [("lif", "lif"), ("lif", "li"), ("lif_cell", "li_cell"), ("lif_box_cell", "li_linear_cell"),
          ("lif_cell", "li"), ("lif_box_cell", "lif")]


@pytest.fixture(autouse=True)
def _norse():
    require_module("norse", "norse")


@pytest.mark.parametrize(("hidden", "output"), STACKS)
def test_run_equals_norse_forward(hidden, output):
    net = norse_mlp([8, 6, 3], hidden=hidden, output=output)
    spikes = random_spikes(3, 20, 8, seed=1)
    model = from_norse(net)
    assert list(model.neuron_layers.values()) == [6, 3]
    assert model.readout == ("count" if output == "lif" else "max_membrane")
    with torch.no_grad():
        expected = norse_readout(net, spikes)
    assert expected.abs().sum() > 0
    torch.testing.assert_close(model.run(spikes), expected, rtol=0, atol=0)


@pytest.mark.parametrize(("hidden", "output"), [("lif", "lif"), ("lif_cell", "li_cell")])
def test_saliency_and_input_importance_equal_brute_force(hidden, output):
    net = norse_mlp([8, 6, 3], hidden=hidden, output=output)
    spikes = random_spikes(2, 12, 8, seed=2)
    model = from_norse(net)

    def forward(sample):
        with torch.no_grad():
            return norse_readout(net, sample[None])[0]

    saliency = TemporalSaliency(model).explain(spikes, output_neuron=0).saliency_map()
    importance = CausalImportance(model).explain(spikes, output_neuron=0).importance_map()
    expected = torch.stack([saliency_loop(forward, sample, target=0) for sample in spikes])
    assert expected.abs().sum() > 0
    torch.testing.assert_close(saliency.double(), expected)
    expected = torch.stack([input_causal_loop(forward, sample, target=0) for sample in spikes])
    torch.testing.assert_close(importance.double(), expected)


@pytest.mark.parametrize(("hidden", "output"), [("lif", "li"), ("lif_cell", "lif"), ("lif_box_cell", "li_linear_cell")])
def test_hidden_importance_equals_per_step_hook_loop(hidden, output):
    net = norse_mlp([8, 6, 3], hidden=hidden, output=output)
    spikes = random_spikes(2, 15, 8, seed=3)
    result = CausalImportance(from_norse(net)).explain(spikes, output_neuron=0, layer="1").importance_map()
    expected = hidden_importance_loop(lambda hooks: norse_readout(net, spikes, hooks), net[1], 6, target=0)
    assert expected.abs().sum() > 0
    torch.testing.assert_close(result, expected)


def test_record_and_linear_weights():
    net = norse_mlp([8, 6, 3], hidden="lif_cell", output="li_linear_cell")
    spikes = random_spikes(2, 10, 8, seed=4)
    model = from_norse(net)
    voltages = []
    with torch.no_grad():
        norse_readout(net, spikes, [(net[1], lambda module, args, output: voltages.append(output[1].v))])
    recording = model.record(spikes)
    assert [layer.name for layer in recording.layers] == ["1", "2"]
    torch.testing.assert_close(recording.layers[0].membrane, torch.stack(voltages, dim=1).reshape(2, 10, 6))
    assert set(recording.layers[0].spikes.unique().tolist()) <= {0.0, 1.0}
    chain = model.linear_weights()
    assert torch.equal(chain[0], net[0].weight.T) and torch.equal(chain[1], net[2].input_weights.T)
    assert [layer.kind for layer in model.stack] == ["linear", "lif_cell", "li_linear_cell"]
    assert model.stack[1].params["tau_mem_inv"] == net[1].p.tau_mem_inv


def test_leaky_integrator_output_has_no_spike_readout_and_gradients_flow():
    net = norse_mlp([8, 6, 3], hidden="lif", output="li")
    with pytest.raises(ValueError, match="leaky integrator"):
        from_norse(net, readout="count")
    model = from_norse(net, readout="final_membrane")
    spikes = random_spikes(2, 10, 8, seed=5).requires_grad_()
    model(spikes)[:, 0].sum().backward()
    assert spikes.grad.abs().sum() > 0


def test_missing_norse_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "norse.torch", None)
    with pytest.raises(ImportError, match=r"spikexplain\[norse\]"):
        from_norse(torch.nn.Linear(2, 2))


def test_silenced_recurrent_neuron_stops_feeding_its_layer():
    # Norse keeps a recurrent layer's spikes in its state (state.z) for the next step; a silenced
    # neuron must not feed back either. Independent oracle: cut every weight that reads neuron j.
    import norse.torch as norse

    def build():
        torch.manual_seed(0)
        cell = norse.LIFRecurrentCell(8, 6)
        readout = torch.nn.Linear(6, 3)
        with torch.no_grad():
            cell.input_weights.mul_(30)
            cell.recurrent_weights.mul_(10)
            readout.weight.mul_(30)
        return norse.SequentialState(cell, readout, norse.LIFCell())

    net = build()
    spikes = random_spikes(2, 15, 8, seed=6)
    model = from_norse(net)
    assert model.neuron_layers == {"0": 6, "2": 3}
    assert model.linear_weights() is None
    changed = False
    for j in range(6):
        cut = build()
        with torch.no_grad():
            cut[0].recurrent_weights[:, j] = 0
            cut[1].weight[:, j] = 0
        mask = torch.zeros(2, 6, dtype=torch.bool)
        mask[:, j] = True
        with torch.no_grad():
            expected = norse_readout(cut, spikes)
        torch.testing.assert_close(model.run(spikes, silence={"0": mask}), expected, rtol=0, atol=0)
        changed |= not torch.equal(expected, model.run(spikes))
    assert changed
