"""Norse models in integers: `LIFBoxCell`, `LIFCell` and `LIF` stacks quantise to the integer network.

Against Norse's own float forward (through `from_norse`, which drives the Norse module itself): bit for bit
on a network whose float arithmetic is exact, and the classification agreement on the digits test set
for the shipped weights in a Norse stack.
"""

from __future__ import annotations

import pytest
import torch
from conftest import require_module

from sc_neurocore.data import load_digits, model_config, pretrained_network
from sc_neurocore.fpga.network_reference import integer_accuracy, quantize_network, run_network
from sc_neurocore.fpga.placement import norse_twin


def _stack(weights, cell):
    """`SequentialState(Linear, cell(), ...)` with `weights[k]` `(n_in, n_out)`: a fresh cell per layer."""
    norse = require_module("norse.torch", "norse")
    layers = []
    for weight in weights:
        linear = torch.nn.Linear(*weight.shape, bias=False)
        with torch.no_grad():
            linear.weight.copy_(weight.T)
        layers += [linear, cell()]
    return norse.SequentialState(*layers)


def box_stack(weights, tau_mem_inv=100.0, v_th=1.0, **box):
    """`SequentialState(Linear, LIFBoxCell, ...)` with `weights[k]` `(n_in, n_out)`."""
    norse = require_module("norse.torch", "norse")
    parameters = norse.LIFBoxParameters(tau_mem_inv=torch.tensor(tau_mem_inv), v_th=torch.tensor(v_th), **box)
    return _stack(weights, lambda: norse.LIFBoxCell(parameters))


def norse_counts(stack, spikes):
    from sc_neurocore.adapters.norse import from_norse

    return from_norse(stack, readout="count").run(spikes.to(torch.float32))


def test_box_stack_with_exact_float_arithmetic_equals_norse_bit_for_bit():
    """dt * tau_mem_inv = 0.5 and weights on the 2^-2 grid: Norse's float32 membranes stay on a 2^-(2+T)
    grid, which the integer network holds exactly (weight_frac_bits=12, T=6), so every count is equal."""
    generator = torch.Generator().manual_seed(3)
    weights = [torch.round((torch.rand(9, 6, generator=generator) - 0.35) * 8) / 4,
               torch.round((torch.rand(6, 4, generator=generator) - 0.35) * 8) / 4]
    stack = box_stack(weights, tau_mem_inv=500.0, v_th=0.75)
    network = quantize_network(stack, n_steps=6, weight_frac_bits=12, top_k=3)
    spec = network.spec
    assert (spec.reset, spec.reset_delay, spec.beta_int) == ("zero", False, (2**13, 2**13))
    assert all(torch.equal(q, torch.round(0.5 * w * 2**12).long()) for q, w in zip(network.weights, weights, strict=True))
    trains = (torch.rand(200, 6, 9, generator=generator) < torch.rand(200, 1, 1, generator=generator)).long()
    counts = run_network(network, trains).counts
    assert torch.equal(counts, norse_counts(stack, trains).to(torch.int64))
    assert int(counts.sum()) > 100 and len(set(counts.argmax(1).tolist())) > 1  # it fires, several classes win


@pytest.mark.parametrize("cell, alpha_int", [("LIFBoxCell", (None, None)), ("LIFCell", (13107, 13107))])
def test_shipped_weights_in_a_norse_stack_keep_their_accuracy(cell, alpha_int):
    """The digits8 weights in a Norse stack (`norse_twin`: dt * tau_mem_inv = 0.1, so beta = 0.9; the box
    cell's weights 10 W_digits8, Norse's default current-based LIFCell's, with dt * tau_syn_inv = 0.2 so
    alpha = 0.8, 2 W_digits8, so that a W / (1 - alpha) is W_digits8): the integer network's accuracy is
    within one point of Norse's own float forward."""
    stack = norse_twin(pretrained_network(8), cell)
    config = model_config(8)
    test = load_digits("test", 8, config["n_steps"], config["encoding"], seed=0)
    scores = integer_accuracy(stack, config["n_steps"], test.spikes, test.labels)
    assert abs(scores["loss_points"]) <= 1.0 and scores["agreement"] >= 0.98, scores
    assert scores["float"] > 0.9
    spec = quantize_network(stack, config["n_steps"]).spec
    assert spec.beta_int == (14746, 14746) and spec.threshold_int == (256, 256) and spec.alpha_int == alpha_int


def current_stack(weights, cell="LIFCell", dt=0.001, **parameters):
    """`SequentialState(Linear, LIFCell or LIF, ...)` with `weights[k]` `(n_in, n_out)`."""
    norse = require_module("norse.torch", "norse")
    p = norse.LIFParameters(**{k: torch.as_tensor(v) for k, v in parameters.items()})
    return _stack(weights, lambda: getattr(norse, cell)(p, dt=dt))


def exact_weights(seed):
    generator = torch.Generator().manual_seed(seed)
    return [torch.round((torch.rand(9, 6, generator=generator) - 0.3) * 8) / 4,
            torch.round((torch.rand(6, 4, generator=generator) - 0.3) * 8) / 4]


def test_current_based_stack_with_exact_float_arithmetic_equals_norse_bit_for_bit():
    """Norse's LIFCell with dt = 2^-10, dt * tau_mem_inv = dt * tau_syn_inv = 0.5 and weights on the 2^-2
    grid: Norse's float32 membranes and currents stay on a 2^-(3+T) grid, which the integer network holds
    exactly (weight_frac_bits=10, T=6). Every spike count, every final membrane `v` and every final current
    (as `a i`, the integer layer's units) equals Norse's own state after its own forward, step by step."""
    weights = exact_weights(5)
    stack = current_stack(weights, dt=2**-10, tau_mem_inv=512.0, tau_syn_inv=512.0, v_th=0.75)
    network = quantize_network(stack, n_steps=6, weight_frac_bits=10, top_k=3)
    spec = network.spec
    assert (spec.current_based, spec.alpha_int, spec.beta_int, spec.reset) == ((0, 1), (2**13, 2**13), (2**13, 2**13),
                                                                               "zero")
    generator = torch.Generator().manual_seed(6)
    trains = (torch.rand(200, 6, 9, generator=generator) < torch.rand(200, 1, 1, generator=generator)).long()
    result = run_network(network, trains)
    state, counts = None, torch.zeros(200, 4)
    for t in range(6):  # Norse's own forward, one cell step per timestep
        out, state = stack(trains[:, t].to(torch.float32), state)
        counts += out
    assert torch.equal(result.counts, counts.to(torch.int64))
    for k, layer_state in enumerate(state[1::2]):
        assert torch.equal(result.membranes[k], (layer_state.v.double() * 2**10).to(torch.int64))
        assert torch.equal(result.currents[k], (0.5 * layer_state.i.double() * 2**10).to(torch.int64))
    assert int(result.counts.sum()) > 100 and len(set(result.counts.argmax(1).tolist())) > 1
    assert any(bool((c != 0).any()) for c in result.currents)  # the currents carry something
    sequence = current_stack(weights, cell="LIF", dt=2**-10, tau_mem_inv=512.0, tau_syn_inv=512.0, v_th=0.75)
    assert torch.equal(run_network(quantize_network(sequence, n_steps=6, weight_frac_bits=10), trains).counts,
                       norse_counts(sequence, trains).to(torch.int64))


def test_recurrent_and_bad_current_based_norse_lifs_are_refused():
    norse = require_module("norse.torch", "norse")
    recurrent = norse.SequentialState(torch.nn.Linear(4, 2, bias=False), norse.LIFRecurrentCell(2, 2))
    with pytest.raises(ValueError, match=r"layer 0 is Norse's LIFRecurrentCell.*use norse.LIFCell"):
        quantize_network(recurrent, n_steps=3)
    weights = [torch.ones(4, 2)]
    with pytest.raises(ValueError, match="tau_syn_inv"):
        quantize_network(current_stack(weights, tau_syn_inv=2000.0), n_steps=3)
    with pytest.raises(ValueError, match="v_reset"):
        quantize_network(current_stack(weights, v_reset=-0.2), n_steps=3)
    with pytest.raises(ValueError, match="per neuron"):
        quantize_network(current_stack(weights, tau_syn_inv=[200.0, 100.0]), n_steps=3)
    with pytest.raises(ValueError, match="current_bits: layer 0"):  # a current-based net is checked when quantised
        quantize_network(current_stack(weights), n_steps=25, current_bits=9)


def test_box_parameters_the_chip_cannot_run_are_refused():
    norse = require_module("norse.torch", "norse")
    from norse.torch.functional.reset import reset_subtract

    weights = [torch.ones(4, 2)]
    with pytest.raises(ValueError, match="reset_subtract"):
        quantize_network(box_stack(weights, reset_method=reset_subtract), n_steps=3)
    with pytest.raises(ValueError, match="v_leak"):
        quantize_network(box_stack(weights, v_leak=torch.tensor(0.1)), n_steps=3)
    with pytest.raises(ValueError, match="v_reset"):
        quantize_network(box_stack(weights, v_reset=torch.tensor(-0.2)), n_steps=3)
    with pytest.raises(ValueError, match="per neuron"):
        quantize_network(box_stack(weights, v_th=[1.0, 0.5]), n_steps=3)
    with pytest.raises(ValueError, match="tau_mem_inv"):
        quantize_network(box_stack(weights, tau_mem_inv=2000.0), n_steps=3)
    with pytest.raises(TypeError, match="LIFBoxCell"):
        quantize_network(norse.SequentialState(torch.nn.Linear(4, 2, bias=False), norse.LIBoxCell()), n_steps=3)
    biased = box_stack(weights)
    biased[0].bias = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match="bias"):
        quantize_network(biased, n_steps=3)
