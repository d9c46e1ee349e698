"""One recorded forward per explainer call: the baseline call records, the plan call starts from it, and the
compiled check runs once per model and input shape (again when a parameter changes)."""

from __future__ import annotations

import importlib

import torch

from sc_neurocore.engine import execute, run_plan
from sc_neurocore.engine.plans import remove_each_spike
from sc_neurocore.explain import TemporalSaliency
from sc_neurocore.models import LIFNetwork

recorded_module = importlib.import_module("sc_neurocore.engine.recorded")  # the module (the package exports a function)


def counting(net: LIFNetwork, monkeypatch):
    calls = []
    real = LIFNetwork.run
    monkeypatch.setattr(net, "run", lambda spikes, silence=None: calls.append(len(spikes)) or real(net, spikes, silence))
    forwards = []
    real_forward = recorded_module.stack_forward
    monkeypatch.setattr(recorded_module, "stack_forward", lambda *a, **k: forwards.append(1) or real_forward(*a, **k))
    return calls, forwards


def test_baseline_and_plan_share_one_recorded_forward(monkeypatch):
    recorded_module.forget()
    generator = torch.Generator().manual_seed(1)
    net = LIFNetwork([torch.randn(40, 16, generator=generator), torch.randn(16, 3, generator=generator)])
    spikes = (torch.rand(1, 20, 40, generator=generator) < 0.3).float()
    calls, forwards = counting(net, monkeypatch)
    baseline, info = execute(net, spikes, None, return_info=True)
    assert calls == [1] and forwards == [1]  # the check: the model's forward and the recorded stack forward
    outputs = execute(net, spikes, remove_each_spike(spikes), engine="event")
    assert calls == [1] and forwards == [1]  # the plan started from the recording
    assert torch.equal(baseline, net.run(spikes)) and info.reason.startswith("the compiled stack's recorded")
    calls.clear()
    other = (torch.rand(1, 20, 40, generator=generator) < 0.3).float()
    assert torch.equal(execute(net, other, None), LIFNetwork.run(net, other))
    assert calls == [] and forwards == [1, 1]  # same shape: the check is cached, one recorded forward
    assert torch.equal(outputs, run_plan(net, spikes, remove_each_spike(spikes)))


def test_a_changed_parameter_or_tensor_is_never_served_stale(monkeypatch):
    recorded_module.forget()
    generator = torch.Generator().manual_seed(2)
    net = LIFNetwork([torch.randn(12, 6, generator=generator), torch.randn(6, 2, generator=generator)])
    spikes = (torch.rand(1, 10, 12, generator=generator) < 0.4).float()
    calls, _ = counting(net, monkeypatch)
    first = execute(net, spikes, None)
    spikes[0, 0] = 1 - spikes[0, 0]  # in place: a new version of the same tensor
    assert torch.equal(execute(net, spikes, None), LIFNetwork.run(net, spikes))
    with torch.no_grad():
        net.weights[0].mul_(2.0)
    calls.clear()
    assert torch.equal(execute(net, spikes, None), LIFNetwork.run(net, spikes))
    assert calls == [1]  # the parameter changed: checked again
    assert first.shape == (1, 2)


def test_explainer_call_runs_the_model_once(monkeypatch):
    recorded_module.forget()
    generator = torch.Generator().manual_seed(3)
    net = LIFNetwork([torch.randn(64, 24, generator=generator), torch.randn(24, 4, generator=generator)])
    spikes = (torch.rand(30, 64, generator=generator) < 0.2).float()
    calls, forwards = counting(net, monkeypatch)
    TemporalSaliency(net).explain(spikes, output_neuron=0)
    n_spikes = int(spikes.sum())
    unperturbed = [rows for rows in calls if rows != n_spikes]  # the batched executor's own calls aside
    assert unperturbed == [1] and len(forwards) <= 1


def test_a_known_snntorch_stack_is_checked_once_per_shape_and_parameters():
    from conftest import require_module

    require_module("snntorch", "snntorch")
    import snntorch as snn

    from sc_neurocore.adapters import from_snntorch
    from sc_neurocore.bench.contenders import naive_saliency

    recorded_module.forget()
    torch.manual_seed(4)
    sequential = torch.nn.Sequential(torch.nn.Linear(30, 12), snn.Leaky(beta=0.9, init_hidden=True),
                                     torch.nn.Linear(12, 3), snn.Leaky(beta=0.9, init_hidden=True, output=True))
    with torch.no_grad():
        sequential[0].weight.mul_(3.0)
    model = from_snntorch(sequential)
    calls = []
    sequential.register_forward_hook(lambda *args: calls.append(1))
    spikes = (torch.rand(1, 15, 30) < 0.3).float()
    explainer = TemporalSaliency(model)
    first = explainer.explain(spikes[0], output_neuron=0)
    assert calls  # the first call checks the traced graph against the model's own forward
    calls.clear()
    other = (torch.rand(1, 15, 30) < 0.3).float()
    second = explainer.explain(other[0], output_neuron=0)
    assert calls == []  # same shape and parameters: the graph's check is reused
    assert torch.equal(torch.as_tensor(second.saliency_map()).double(), naive_saliency(model.run, other, 0).double())
    with torch.no_grad():
        sequential[2].weight.mul_(1.5)
    explainer.explain(other[0], output_neuron=0)
    assert calls  # a parameter changed: checked again
    assert first.executor == second.executor
    # A setting that is no tensor changes the forward too: the reset, or when it acts.
    for name, value in (("reset_delay", False), ("_reset_mechanism", "zero")):
        explainer.explain(other[0], output_neuron=0)
        calls.clear()
        setattr(sequential[1], name, value)
        if name == "_reset_mechanism":
            sequential[1].reset_mechanism_val = torch.tensor(1)  # snnTorch's own setter sets both
        changed = explainer.explain(other[0], output_neuron=0)
        assert calls, f"{name} changed: checked again"
        assert torch.equal(torch.as_tensor(changed.saliency_map()).double(),
                           naive_saliency(model.run, other, 0).double())
