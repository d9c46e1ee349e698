"""Compiling snnTorch / Norse stacks into our step functions: bit for bit with the framework's forward,
and the incremental executor exact on them; anything else refused (and run by the generic path)."""

from __future__ import annotations

import pytest
import torch

from conftest import require_module
from sc_neurocore.engine.compile import compile_model, compiled_for
from sc_neurocore.dynamics import CurrentLIFParameters, CurrentLIFState, current_lif_step
from sc_neurocore.engine import execute, run_plan
from sc_neurocore.engine.incremental import run_incremental, stack_forward
from sc_neurocore.engine.plans import remove_each_spike, silence_each_neuron, silence_prefixes
from sc_neurocore.models import LIFNetwork
from toy_models import norse_mlp, random_spikes, snntorch_mlp


def plans_for(model, spikes):
    batch, _, n_inputs = spikes.shape
    plans = [remove_each_spike(spikes), silence_each_neuron("input", n_inputs, batch, spikes.device),
             silence_prefixes("input", torch.arange(n_inputs - 1, -1, -1), batch)]
    plans += [silence_each_neuron(name, size, batch, spikes.device) for name, size in model.neuron_layers.items()]
    return plans


def assert_incremental_matches_generic(model, spikes, readout):
    stack = compiled_for(model, spikes)
    assert stack is not None, "the compiled stack must reproduce the framework's forward bit for bit"
    for plan in plans_for(model, spikes):
        generic = run_plan(model, spikes, plan)
        fast = run_incremental(stack, spikes, plan)
        if readout in ("count", "rate"):
            assert torch.equal(fast, generic), (readout, type(plan).__name__, getattr(plan, "layer", None))
        else:  # membranes: same spikes, float round-off of the rank-1 delta
            torch.testing.assert_close(fast, generic, rtol=0, atol=1e-5)
    assert model.run(spikes).abs().sum() > 0


@pytest.mark.parametrize("readout", ["count", "rate", "final_membrane", "max_membrane"])
@pytest.mark.parametrize("sizes", [[12, 10, 4], [20, 16, 8, 3]])
def test_snntorch_leaky_stacks(sizes, readout):
    require_module("snntorch", "snntorch")
    from sc_neurocore.adapters import from_snntorch

    model = from_snntorch(snntorch_mlp(sizes, seed=0), readout=readout)
    spikes = random_spikes(3, 15, sizes[0], seed=1)
    assert torch.equal(stack_forward(compile_model(model), spikes), model.run(spikes))
    assert_incremental_matches_generic(model, spikes, readout)


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_snntorch_reset_mechanisms_and_dropout(reset):
    require_module("snntorch", "snntorch")
    import snntorch as snn
    from sc_neurocore.adapters import from_snntorch

    torch.manual_seed(2)
    first, second = torch.nn.Linear(16, 12), torch.nn.Linear(12, 5)
    with torch.no_grad():
        first.weight.mul_(5.0)
        second.weight.mul_(5.0)
    net = torch.nn.Sequential(first, snn.Leaky(beta=0.8, init_hidden=True, reset_mechanism=reset),
                              torch.nn.Dropout(0.5), second,
                              snn.Leaky(beta=0.8, init_hidden=True, reset_mechanism=reset, output=True))
    model = from_snntorch(net)
    assert_incremental_matches_generic(model, random_spikes(2, 20, 16, seed=3), "count")


def test_snntorch_stacks_we_do_not_know_are_refused():
    require_module("snntorch", "snntorch")
    import snntorch as snn
    from sc_neurocore.adapters import from_snntorch

    spikes = random_spikes(2, 10, 12, seed=1)
    for neuron in ("synaptic", "alpha", "rleaky"):
        model = from_snntorch(snntorch_mlp([12, 10, 4], neuron=neuron))
        assert compile_model(model) is None
        plan = remove_each_spike(spikes)
        assert torch.equal(execute(model, spikes, plan), run_plan(model, spikes, plan))
    graded = snntorch_mlp([12, 10, 4])
    graded[1] = snn.Leaky(beta=0.9, init_hidden=True, graded_spikes_factor=2.0)
    assert compile_model(from_snntorch(graded)) is None
    inhibited = snntorch_mlp([12, 10, 4])
    inhibited[1] = snn.Leaky(beta=0.9, init_hidden=True, inhibition=True)
    assert compile_model(from_snntorch(inhibited)) is None


def test_a_compiled_stack_that_disagrees_is_not_used(monkeypatch):
    require_module("snntorch", "snntorch")
    from sc_neurocore.engine import compile as compiler
    from sc_neurocore.adapters import from_snntorch

    model = from_snntorch(snntorch_mlp([12, 10, 4], seed=0))
    spikes = random_spikes(2, 15, 12, seed=1)
    real = compiler.compile_model

    def wrong_threshold(m):
        stack = real(m)
        first = stack.layers[0]
        params = first.params._replace(threshold=first.params.threshold * 0.75)
        return stack._replace(layers=(first._replace(params=params),) + stack.layers[1:])

    monkeypatch.setattr(compiler, "compile_model", wrong_threshold)
    with torch.no_grad():
        wrong = stack_forward(wrong_threshold(model), spikes)
    assert not torch.equal(wrong, model.run(spikes))  # the sabotage is visible on this input
    assert compiled_for(model, spikes) is None
    plan = remove_each_spike(spikes)
    assert torch.equal(execute(model, spikes, plan), run_plan(model, spikes, plan))


@pytest.mark.parametrize("hidden", ["lif_cell", "lif"])
def test_norse_lif_stacks(hidden):
    require_module("norse", "norse")
    from sc_neurocore.adapters import from_norse

    model = from_norse(norse_mlp([12, 10, 4], seed=0, hidden=hidden, output=hidden))
    spikes = random_spikes(3, 30, 12, seed=1)
    assert_incremental_matches_generic(model, spikes, "count")


def test_norse_leaky_integrator_output_is_refused():
    require_module("norse", "norse")
    from sc_neurocore.adapters import from_norse

    model = from_norse(norse_mlp([12, 10, 4], seed=0, hidden="lif_cell", output="li"))
    assert compile_model(model) is None


def test_current_lif_step_is_norse_bit_for_bit():
    require_module("norse", "norse")
    from norse.torch.functional.lif import LIFFeedForwardState, LIFParameters, lif_feed_forward_step

    generator = torch.Generator().manual_seed(0)
    norse_params = LIFParameters(tau_syn_inv=torch.tensor(180.0), tau_mem_inv=torch.tensor(90.0),
                                 v_leak=torch.tensor(0.1), v_th=torch.tensor(0.8), v_reset=torch.tensor(-0.2))
    ours = CurrentLIFParameters(norse_params.tau_syn_inv, norse_params.tau_mem_inv, norse_params.v_leak,
                                norse_params.v_th, norse_params.v_reset, 0.001)
    state_n = LIFFeedForwardState(v=torch.zeros(64), i=torch.zeros(64))
    state_o = CurrentLIFState(torch.zeros(64), torch.zeros(64))
    fired = 0.0
    for _ in range(50):
        current = torch.rand(64, generator=generator) * 40
        z_n, state_n = lif_feed_forward_step(current, state_n, norse_params)
        z_o, state_o = current_lif_step(current, state_o, ours)
        assert torch.equal(z_n, z_o) and torch.equal(state_n.v, state_o.membrane)
        assert torch.equal(state_n.i, state_o.current)
        fired += float(z_o.sum())
    assert fired > 0


def test_lif_network_compiles_but_a_subclass_does_not():
    weights = [torch.randn(8, 4), torch.randn(4, 2)]

    class Custom(LIFNetwork):
        pass

    assert compile_model(LIFNetwork(weights)) is not None
    assert compile_model(Custom(weights)) is None
    assert compile_model(lambda x: x) is None


def test_spikes_on_another_device_are_not_compiled():
    net = LIFNetwork([torch.randn(8, 4), torch.randn(4, 2)])
    spikes = torch.ones(1, 5, 8, dtype=torch.float32)
    assert compiled_for(net, spikes) is not None
    if torch.cuda.is_available():
        assert compiled_for(net, spikes.cuda()) is None
