"""Norse models on the chip: `LIFBoxCell` stacks quantise to the integer network; current-based LIF is refused.

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


def box_stack(weights, tau_mem_inv=100.0, v_th=1.0, **box):
    """`SequentialState(Linear, LIFBoxCell, ...)` with `weights[k]` `(n_in, n_out)`."""
    norse = require_module("norse.torch", "norse")
    layers = []
    for weight in weights:
        linear = torch.nn.Linear(*weight.shape, bias=False)
        with torch.no_grad():
            linear.weight.copy_(weight.T)
        parameters = norse.LIFBoxParameters(tau_mem_inv=torch.tensor(tau_mem_inv), v_th=torch.tensor(v_th), **box)
        layers += [linear, norse.LIFBoxCell(parameters)]
    return norse.SequentialState(*layers)


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


def test_shipped_weights_in_a_norse_stack_keep_their_accuracy_on_chip():
    """The digits8 weights in a Norse LIFBoxCell stack (dt * tau_mem_inv = 0.1, so beta = 0.9 and the input
    weights 10 W_digits8 * 0.1): the integer network's accuracy is within one point of Norse's own."""
    net = pretrained_network(8)
    stack = box_stack([10 * w for w in net.linear_weights()])
    config = model_config(8)
    test = load_digits("test", 8, config["n_steps"], config["encoding"], seed=0)
    scores = integer_accuracy(stack, config["n_steps"], test.spikes, test.labels)
    assert abs(scores["loss_points"]) <= 1.0 and scores["agreement"] >= 0.98, scores
    assert scores["float"] > 0.9
    network = quantize_network(stack, config["n_steps"])
    assert network.spec.beta_int == (14746, 14746) and network.spec.threshold_int == (256, 256)


def test_current_based_norse_lif_is_refused_with_what_to_use():
    norse = require_module("norse.torch", "norse")
    for cell in (norse.LIFCell(), norse.LIF()):
        stack = norse.SequentialState(torch.nn.Linear(4, 2, bias=False), cell)
        with pytest.raises(ValueError, match=r"current-based .*synaptic current.*use norse.LIFBoxCell"):
            quantize_network(stack, n_steps=3)


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
