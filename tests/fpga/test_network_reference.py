"""The integer LIF network reference: against a scalar brute-force loop, the float network, and its guards."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import require_module

from sc_neurocore.data import load_digits, model_config, pretrained_network
from sc_neurocore.dynamics import LIFParameters, LIFState, lif_step
from sc_neurocore.fpga import FixedPointSpec
from sc_neurocore.fpga.network_reference import (
    check_saturation,
    current_bounds,
    fixed_lif_step,
    integer_accuracy,
    membrane_bounds,
    quantize_network,
    run_network,
)
from sc_neurocore.fpga.network_spec import NetworkSpec
from sc_neurocore.models import LIFNetwork


def brute_force(network, train):
    """One sample, one neuron at a time, in plain Python ints: the chip's arithmetic written out (and a
    current-based layer's synaptic current, in Norse's order: jump, integrate, decay)."""
    spec = network.spec
    n_steps, n_inputs = train.shape
    weights = [w.tolist() for w in network.weights]
    membranes = [[0] * len(w[0]) for w in weights]
    synaptic = [[0] * len(w[0]) for w in weights]
    counts = [0] * spec.n_outputs
    traces = [0] * n_inputs
    for t in range(n_steps):
        spikes = [int(s) for s in train[t]]
        for i in range(n_inputs):
            traces[i] = min((spec.trace.decay_int * (traces[i] + spikes[i] * spec.trace.spike_increment))
                            >> spec.trace.decay_bits, spec.trace.trace_max)
        layer_input = spikes
        for k, w in enumerate(weights):
            theta, beta = spec.threshold_int[k], spec.beta_int[k]
            out = []
            for j in range(len(w[0])):
                v = membranes[k][j]
                reset = 1 if v > theta else 0
                current = sum(w[i][j] for i in range(len(w)) if layer_input[i])
                if spec.alpha_int[k] is not None:
                    current += synaptic[k][j]
                    synaptic[k][j] = (spec.alpha_int[k] * current) >> spec.beta_bits
                if spec.reset == "subtract":
                    v = ((beta * v) >> spec.beta_bits) + current - reset * theta
                elif spec.reset == "zero":
                    v = ((beta * (0 if reset else v)) >> spec.beta_bits) + current
                else:
                    v = ((beta * v) >> spec.beta_bits) + current
                fired = 1 if v > theta else 0
                membranes[k][j] = 0 if fired and not spec.reset_delay else v  # Norse: reset in the same step
                out.append(fired)
            layer_input = out
        counts = [c + s for c, s in zip(counts, layer_input, strict=True)]
    predicted = max(range(len(counts)), key=lambda c: (counts[c], -c))
    importance = [traces[i] * int(network.effective[i, predicted]) for i in range(n_inputs)]
    order = sorted(range(n_inputs), key=lambda i: (-abs(importance[i]), i))[:spec.top_k]
    return counts, predicted, importance, order, synaptic


def small_network(seed=0, n_steps=6, top_k=4, reset="subtract", **options):
    generator = torch.Generator().manual_seed(seed)
    weights = [torch.round((torch.rand(9, 5, generator=generator) - 0.4) * 2 * 256) / 256,
               torch.round((torch.rand(5, 3, generator=generator) - 0.4) * 2 * 256) / 256]
    return quantize_network(LIFNetwork(weights, beta=0.8, threshold=0.7, reset=reset), n_steps=n_steps, top_k=top_k,
                            **options)


@pytest.mark.parametrize("reset, delay", [("subtract", True), ("zero", True), ("zero", False), ("none", True)])
def test_run_network_equals_the_brute_force_loop(reset, delay):
    network = small_network(reset=reset, reset_delay=delay)
    generator = torch.Generator().manual_seed(1)
    trains = (torch.rand(40, 6, 9, generator=generator) < torch.rand(40, 1, 1, generator=generator)).long()
    result = run_network(network, trains)
    assert int(result.counts.sum()) > 0
    for b in range(trains.shape[0]):
        counts, predicted, importance, order, _ = brute_force(network, trains[b])
        assert result.counts[b].tolist() == counts
        assert int(result.predicted[b]) == predicted
        assert result.importance[b].tolist() == importance
        assert result.top_indices[b].tolist() == order
        assert result.top_scores[b].tolist() == [importance[i] for i in order]


def current_based(network, alpha, current_bits=16):
    """`network` with a synaptic current of decay `alpha` per layer, checked for saturation."""
    cuba = dataclasses.replace(network, spec=dataclasses.replace(network.spec, alpha=alpha, current_bits=current_bits))
    check_saturation(cuba)
    return cuba


@pytest.mark.parametrize("reset, delay", [("zero", False), ("subtract", True), ("none", True)])
def test_current_based_layers_equal_the_brute_force_loop(reset, delay):
    """A synaptic current in the hidden layer only, then in both: counts, class, importance, top-k and the
    final currents equal the scalar loop; the current changes what the network does."""
    generator = torch.Generator().manual_seed(2)
    trains = (torch.rand(40, 6, 9, generator=generator) < torch.rand(40, 1, 1, generator=generator)).long()
    plain = run_network(small_network(reset=reset, reset_delay=delay), trains)
    for alpha in ((0.75, None), (0.6, 0.3)):
        network = current_based(small_network(reset=reset, reset_delay=delay), alpha, current_bits=14)
        assert network.spec.current_based == tuple(k for k, a in enumerate(alpha) if a is not None)
        result = run_network(network, trains)
        assert int(result.counts.sum()) > 0 and not torch.equal(result.counts, plain.counts)
        assert result.currents[1] is None if alpha[1] is None else result.currents[1] is not None
        for b in range(trains.shape[0]):
            counts, predicted, importance, order, synaptic = brute_force(network, trains[b])
            assert result.counts[b].tolist() == counts and int(result.predicted[b]) == predicted
            assert result.importance[b].tolist() == importance and result.top_indices[b].tolist() == order
            for k, current in enumerate(result.currents):
                assert current is None or current[b].tolist() == synaptic[k]


def test_current_saturation_and_bad_alpha_are_refused():
    """The current bound is reached by a train that drives every excitatory synapse every step, and a
    width below it is refused."""
    network = current_based(small_network(reset="zero", reset_delay=False), (0.9, None))
    (low, high), second = current_bounds(network)
    assert second is None and low < 0 < high
    need = max(high.bit_length(), (-low - 1).bit_length()) + 1
    with pytest.raises(ValueError, match=rf"current_bits: layer 0's synaptic currents can reach \[{low}, {high}\], "
                                         rf"outside {need - 1}-bit signed; needs {need} bits"):
        current_based(small_network(reset="zero", reset_delay=False), (0.9, None), need - 1)
    with pytest.raises(ValueError, match="alpha: the synaptic decay comes from the model"):
        small_network(alpha=0.5)
    excitatory = network.weights[0].clamp(min=0).sum(dim=0)
    neuron = int(excitatory.argmax())
    drive = (network.weights[0][:, neuron] > 0).long().expand(6, -1)  # every excitatory input, every step
    alpha, current = network.spec.alpha_int[0], 0
    for _ in range(6):
        current = ((alpha * current) >> network.spec.beta_bits) + int(excitatory[neuron])
    assert current == high
    assert int(run_network(network, drive[None]).currents[0][0, neuron]) == (alpha * high) >> network.spec.beta_bits
    for bad, error in ((1.5, ValueError), ((0.5, 0.5, 0.5), ValueError), ("0.5", TypeError), (float("nan"), TypeError),
                         ((None, "x"), TypeError)):
        with pytest.raises(error, match="alpha"):
            NetworkSpec(layers=(4, 3, 2), n_steps=3, alpha=bad)
    with pytest.raises(ValueError, match="alpha: alpha_int"):
        NetworkSpec(layers=(4, 2), n_steps=3, alpha=1.0, beta_bits=15)
    with pytest.raises(ValueError, match="current_bits"):
        NetworkSpec(layers=(4, 2), n_steps=3, alpha=0.5, current_bits=17)
    assert NetworkSpec(layers=(4, 2), n_steps=3).to_dict().keys() == NetworkSpec(
        layers=(4, 2), n_steps=3, alpha=(None,)).to_dict().keys()
    assert NetworkSpec(layers=(4, 2), n_steps=3, alpha=0.5).to_dict()["alpha"] == [0.5]


def test_same_step_and_next_step_zero_resets_give_the_same_spikes():
    """Why the chip runs Norse's same-step zero reset on the datapath of the next-step one: a spike's
    membrane stored as 0 and leaked, or stored and leaked as 0 next step, gives the same next membrane."""
    generator = torch.Generator().manual_seed(4)
    trains = (torch.rand(100, 6, 9, generator=generator) < torch.rand(100, 1, 1, generator=generator)).long()
    same = run_network(small_network(reset="zero", reset_delay=False), trains)
    delayed = run_network(small_network(reset="zero", reset_delay=True), trains)
    assert torch.equal(same.counts, delayed.counts) and torch.equal(same.importance, delayed.importance)
    assert not all(torch.equal(a, b) for a, b in zip(same.membranes, delayed.membranes, strict=True))


def test_fixed_lif_step_is_lif_step_with_the_floor_leak():
    membrane = torch.tensor([-700, -2, 0, 254, 256, 258, 9000])  # even: 0.5 v is exact
    current = torch.tensor([3, -5, 300, 0, 1, -2, 7])
    spikes, new = fixed_lif_step(current, membrane, 14746, 14, 256)
    leak = torch.div(14746 * membrane, 2**14, rounding_mode="floor")
    expected = leak + current - (membrane > 256).long() * 256
    assert torch.equal(new, expected) and torch.equal(spikes, (expected > 256).long())
    # With an exact beta (a power-of-two multiplier), it is lif_step itself on the real values.
    float_spikes, state = lif_step(current.double() / 256, LIFState(membrane.double() / 256),
                                   LIFParameters(0.5, 1.0, "subtract"))
    spikes, new = fixed_lif_step(current, membrane, 2**13, 14, 256)
    assert torch.equal(spikes.double(), float_spikes) and torch.equal(new.double() / 256, state.membrane)


def test_shipped_digits_network_integer_accuracy_within_one_point():
    config = model_config(8)
    test = load_digits("test", 8, config["n_steps"], config["encoding"], seed=0)
    scores = integer_accuracy(pretrained_network(8), config["n_steps"], test.spikes, test.labels)
    assert abs(scores["loss_points"]) <= 1.0, scores
    assert scores["float"] == pytest.approx(config["test_accuracy"], abs=1e-6)
    assert scores["agreement"] > 0.98


def test_snntorch_stack_quantises_to_the_same_integers():
    pytest.importorskip("snntorch")
    from sc_neurocore.data import pretrained_snntorch

    a = quantize_network(pretrained_network(8), n_steps=25)
    b = quantize_network(pretrained_snntorch(8), n_steps=25)
    # snnTorch holds beta as a float32 tensor (0.8999999761...): the same integers on chip.
    assert a.spec.beta_int == b.spec.beta_int and a.spec.threshold_int == b.spec.threshold_int
    assert a.spec.layers == b.spec.layers and a.spec.trace == b.spec.trace
    assert all(torch.equal(x, y) for x, y in zip(a.weights, b.weights, strict=True))
    assert torch.equal(a.effective, b.effective)
    spikes = load_digits("test").spikes[:40]
    scores = integer_accuracy(pretrained_snntorch(8), 25, spikes, load_digits("test").labels[:40])
    assert scores["agreement"] >= 0.95


def test_quantising_does_not_touch_the_model():
    net = pretrained_network(8)
    before = [w.clone() for w in net.weights]
    quantize_network(net, n_steps=25)
    assert all(torch.equal(a, b) for a, b in zip(before, net.weights, strict=True))


def test_saturation_is_refused_with_the_width_to_raise():
    network = quantize_network(pretrained_network(8), n_steps=25)
    check_saturation(network)  # the shipped network fits 16-bit membranes
    low, high = membrane_bounds(network)[0]
    assert -2**15 <= low < 0 < high < 2**15
    narrow = quantize_network(pretrained_network(8), n_steps=25, membrane_bits=12)
    with pytest.raises(ValueError, match="membrane_bits: layer 0"):
        check_saturation(narrow)
    hot = quantize_network(pretrained_network(8), n_steps=100,
                           trace=FixedPointSpec(decay=1.0, trace_bits=14, frac_bits=9, decay_bits=14,
                                                weight_bits=16, weight_frac_bits=14))
    with pytest.raises(ValueError, match="trace: a 14-bit trace saturates"):
        check_saturation(hot)


def test_spec_and_model_errors_name_the_argument():
    with pytest.raises(ValueError, match="layers"):
        NetworkSpec(layers=(4,), n_steps=3)
    with pytest.raises(ValueError, match="reset"):
        NetworkSpec(layers=(4, 2), n_steps=3, reset="value")
    with pytest.raises(ValueError, match="reset_delay"):
        NetworkSpec(layers=(4, 2), n_steps=3, reset="subtract", reset_delay=False)
    with pytest.raises(TypeError, match="reset_delay"):
        NetworkSpec(layers=(4, 2), n_steps=3, reset_delay=0)
    with pytest.raises(ValueError, match="trace: trace_bits=15"):
        NetworkSpec(layers=(4, 2), n_steps=3, trace=FixedPointSpec(decay=0.9, trace_bits=15))
    with pytest.raises(ValueError, match="top_k"):
        NetworkSpec(layers=(4, 2), n_steps=3, top_k=5)
    with pytest.raises(ValueError, match="bias"):
        quantize_network(LIFNetwork([torch.ones(3, 2)], biases=[torch.ones(2)]), n_steps=3)
    with pytest.raises(ValueError, match="outside the 16-bit signed range"):
        quantize_network(LIFNetwork([torch.full((3, 2), 200.0)]), n_steps=3)
    with pytest.raises(TypeError, match="model"):
        quantize_network(object(), n_steps=3)
    with pytest.raises(ValueError, match="spikes"):
        run_network(small_network(), torch.zeros(2, 5, 9, dtype=torch.long))


def test_snntorch_reset_delay_is_read_not_assumed():
    """snnTorch's `reset_delay=False` with a zero reset is the chip's same-step zero reset, bit for bit against
    snnTorch's own forward on an exactly representable net; with a subtractive reset it is refused."""
    snntorch = pytest.importorskip("snntorch")
    generator = torch.Generator().manual_seed(6)
    weights = [torch.round((torch.rand(9, 5, generator=generator) - 0.35) * 8) / 4,
               torch.round((torch.rand(5, 3, generator=generator) - 0.35) * 8) / 4]

    def stack(reset):
        layers = []
        for index, weight in enumerate(weights):
            linear = torch.nn.Linear(*weight.shape, bias=False)
            with torch.no_grad():
                linear.weight.copy_(weight.T)
            layers += [linear, snntorch.Leaky(beta=0.5, threshold=0.75, reset_mechanism=reset, reset_delay=False,
                                              init_hidden=True, output=index == len(weights) - 1)]
        return torch.nn.Sequential(*layers)

    network = quantize_network(stack("zero"), n_steps=6, weight_frac_bits=12)
    assert (network.spec.reset, network.spec.reset_delay) == ("zero", False)
    trains = (torch.rand(100, 6, 9, generator=generator) < torch.rand(100, 1, 1, generator=generator)).long()
    from sc_neurocore.adapters.snntorch import from_snntorch

    counts = from_snntorch(stack("zero")).run(trains.to(torch.float32))
    assert torch.equal(run_network(network, trains).counts, counts.to(torch.int64))
    assert int(counts.sum()) > 50
    with pytest.raises(ValueError, match="reset_delay"):
        quantize_network(stack("subtract"), n_steps=6)


@pytest.mark.parametrize("reset", ["subtract", "none"])
def test_snntorch_synaptic_is_a_current_based_layer_bit_for_bit(reset):
    """snnTorch's `Synaptic` (`syn = alpha syn + I`, `mem = beta mem + syn - r theta`) is the current-based
    layer with `J = syn`: bit for bit against snnTorch's own forward on an exactly representable net (a
    Synaptic layer, then a Leaky one); its zero reset, which zeroes the whole next membrane, is refused."""
    snntorch = require_module("snntorch", "snntorch")
    from sc_neurocore.data.pretrained import snntorch_spike_counts

    generator = torch.Generator().manual_seed(7)
    weights = [torch.round((torch.rand(9, 6, generator=generator) - 0.35) * 8) / 4,
               torch.round((torch.rand(6, 4, generator=generator) - 0.35) * 8) / 4]

    def stack(reset):
        first, second = (torch.nn.Linear(9, 6, bias=False), torch.nn.Linear(6, 4, bias=False))
        with torch.no_grad():
            first.weight.copy_(weights[0].T)
            second.weight.copy_(weights[1].T)
        return torch.nn.Sequential(
            first, snntorch.Synaptic(alpha=0.5, beta=0.5, threshold=0.75, reset_mechanism=reset, init_hidden=True),
            second, snntorch.Leaky(beta=0.5, threshold=0.75, reset_mechanism=reset, init_hidden=True, output=True))

    network = quantize_network(stack(reset), n_steps=6, weight_frac_bits=10)
    assert network.spec.alpha_int == (2**13, None) and network.spec.reset == reset
    trains = (torch.rand(200, 6, 9, generator=generator) < torch.rand(200, 1, 1, generator=generator)).long()
    counts = snntorch_spike_counts(stack(reset), trains.to(torch.float32))
    assert torch.equal(run_network(network, trains).counts, counts.to(torch.int64))
    assert int(counts.sum()) > 100 and len(set(counts.argmax(1).tolist())) > 1
    plain = dataclasses.replace(network, spec=dataclasses.replace(network.spec, alpha=None))
    assert not torch.equal(run_network(plain, trains).counts, counts.to(torch.int64))  # the current matters
    with pytest.raises(ValueError, match="layer 0 is an snnTorch Synaptic with a zero reset"):
        quantize_network(stack("zero"), n_steps=6)
