"""Guards against silently wrong answers: each case here was explained wrongly (or refused) before the
traced graph; now it is explained exactly or refused with a message saying why and what to do."""

from __future__ import annotations

import warnings

import pytest
import torch
from conftest import require_module
from torch import nn
from toy_models import random_spikes, snntorch_mlp

from sc_neurocore.adapters import from_module, from_snntorch
from sc_neurocore.explain import CausalImportance, TemporalSaliency


@pytest.fixture(autouse=True)
def _snntorch():
    require_module("snntorch", "snntorch")


def _stateful_stack():
    import snntorch as snn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 6), snn.Leaky(beta=0.9, init_hidden=True), nn.Linear(6, 3),
                        snn.Leaky(beta=0.9, init_hidden=True, output=True))
    with torch.no_grad():
        for layer in (net[0], net[2]):
            layer.weight.mul_(4)
    return net


def test_a_step_wise_stack_fed_the_whole_sequence_is_refused():
    """`from_module(snntorch_sequential, time_first=True)` fed (T, B, N) to each Leaky as one step."""
    with pytest.raises(ValueError, match="step-wise neuron is being fed the whole sequence"):
        from_module(_stateful_stack(), time_first=True)


class _KeepsState(nn.Module):
    """A user model whose membrane survives between calls (as SpikingJelly's does until reset_net)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.fc = nn.Linear(8, 3)
        self.v = None

    def forward(self, x):
        out = []
        for step in x:
            current = self.fc(step) * 3
            self.v = current if self.v is None or self.v.shape != current.shape else 0.9 * self.v + current
            spikes = (self.v > 1).float()
            self.v = self.v - spikes
            out.append(spikes)
        return torch.stack(out)


def test_a_model_whose_output_depends_on_earlier_calls_is_refused():
    with pytest.raises(ValueError, match="keeps state between calls"):
        from_module(_KeepsState(), time_first=True, neuron_layers=[])


def test_a_loop_over_a_fixed_number_of_steps_is_wrapped_and_explained():
    """The tutorials' `for step in range(num_steps)` failed at wrap time (the probe used T=3)."""

    net = _FixedSteps(gain_in_forward=False)
    spikes = random_spikes(2, _FixedSteps.num_steps, 8, seed=3)
    model = from_snntorch(net)
    assert torch.equal(model.run(spikes), net(spikes.transpose(0, 1)).sum(0))
    assert model.neuron_layers == {"lif1": 6, "lif2": 3}
    saliency = TemporalSaliency(net).explain(spikes, output_neuron=0)
    assert saliency.engine == "graph", saliency.engine_reason
    with pytest.raises(ValueError, match="n_steps"):
        from_snntorch(net, n_steps=3)


def test_an_op_between_modules_that_no_hook_sees_keeps_the_model_on_its_own_forward():
    """`self.lif1(self.fc1(x) * 4)`: the graph cannot see the `* 4`, so it is not used; still exact."""
    net = _FixedSteps(gain_in_forward=True)
    spikes = random_spikes(1, _FixedSteps.num_steps, 8, seed=3)
    saliency = TemporalSaliency(net).explain(spikes, output_neuron=0)
    assert saliency.engine == "model" and "no module hook sees" in saliency.engine_reason
    base = net(spikes.transpose(0, 1)).sum(0)[0, 0]
    for t, i in torch.nonzero(spikes[0]).tolist()[:20]:
        perturbed = spikes.clone()
        perturbed[0, t, i] = 0
        assert saliency.saliency_map()[0, t, i] == base - net(perturbed.transpose(0, 1)).sum(0)[0, 0]


class _FixedSteps(nn.Module):
    """The tutorials' loop over a global `num_steps`, whatever the input's length."""

    num_steps = 14

    def __init__(self, gain_in_forward: bool):
        import snntorch as snn

        super().__init__()
        torch.manual_seed(2)
        self.fc1, self.lif1 = nn.Linear(8, 6), snn.Leaky(beta=0.9)
        self.fc2, self.lif2 = nn.Linear(6, 3), snn.Leaky(beta=0.9)
        self.gain = 4.0 if gain_in_forward else 1.0
        if not gain_in_forward:
            with torch.no_grad():
                self.fc1.weight.mul_(4)
                self.fc2.weight.mul_(4)

    def forward(self, x):
        mem1, mem2, record = self.lif1.init_leaky(), self.lif2.init_leaky(), []
        for step in range(self.num_steps):
            current = self.fc1(x[step])
            spk1, mem1 = self.lif1(current * self.gain if self.gain != 1 else current, mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1) * self.gain if self.gain != 1 else self.fc2(spk1), mem2)
            record.append(spk2)
        return torch.stack(record)


def test_time_first_spikes_are_accepted_by_every_perturbation_explainer():
    net = snntorch_mlp([8, 6, 3], seed=0)
    spikes = random_spikes(3, 12, 8, seed=5)
    for explain in (lambda x, **kw: TemporalSaliency(net).explain(x, output_neuron=1, **kw).saliency_map(),
                    lambda x, **kw: CausalImportance(net).explain(x, output_neuron=1, **kw).importance_map()):
        assert torch.equal(explain(spikes.transpose(0, 1), time_first=True), explain(spikes))


def test_time_first_looking_spikes_are_warned_about():
    """`snntorch.spikegen.rate` returns (T, B, N); passed batch-first to a model that runs T steps, it
    would be read as T samples of B timesteps."""
    model = from_snntorch(snntorch_mlp([8, 6, 3], seed=0), n_steps=25)
    spikes = random_spikes(4, 25, 8, seed=6).transpose(0, 1).contiguous()  # (25, 4, 8), time-first
    with pytest.warns(UserWarning, match="time_first=True"):
        TemporalSaliency(model).explain(spikes, output_neuron=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TemporalSaliency(model).explain(spikes, output_neuron=0, time_first=True)


def test_image_shaped_spikes_are_accepted():
    import snntorch as snn

    torch.manual_seed(4)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.MaxPool2d(2), snn.Leaky(beta=0.8, init_hidden=True), nn.Flatten(),
                        nn.Linear(3 * 3 * 3, 4), snn.Leaky(beta=0.8, init_hidden=True, output=True))
    with torch.no_grad():
        net[0].weight.mul_(5)
        net[4].weight.mul_(5)
    spikes = (torch.rand(2, 10, 1, 8, 8) < 0.4).float()
    result = TemporalSaliency(net).explain(spikes, output_neuron=0)
    assert result.engine == "graph"
    assert result.feature_shape == (1, 8, 8)
    flat = from_snntorch(net, input_shape=(1, 8, 8))
    assert torch.equal(result.saliency_map(), TemporalSaliency(flat).explain(spikes.reshape(2, 10, 64),
                                                                            output_neuron=0).saliency_map())


def test_the_users_model_is_left_as_it_was():
    """No inference-mode tensor left in snnTorch's state, and its own reset still works afterwards."""
    import snntorch.utils

    net = _stateful_stack()
    spikes = random_spikes(2, 10, 8, seed=7)
    TemporalSaliency(net).explain(spikes, output_neuron=0)
    for module in net.modules():
        for name in ("mem", "spk", "syn"):
            state = getattr(module, name, None)
            if isinstance(state, torch.Tensor):
                assert not state.is_inference(), f"{name} of {type(module).__name__} is an inference tensor"
    snntorch.utils.reset(net)
    out = net(spikes[:, 0])
    (out[0].sum() if isinstance(out, tuple) else out.sum()).backward()  # the user can still train it
