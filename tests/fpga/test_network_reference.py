"""The integer LIF network reference: against a scalar brute-force loop, the float network, and its guards."""

from __future__ import annotations

import pytest
import torch

from sc_neurocore.data import load_digits, model_config, pretrained_network
from sc_neurocore.dynamics import LIFParameters, LIFState, lif_step
from sc_neurocore.fpga import FixedPointSpec
from sc_neurocore.fpga.network_reference import (
    check_saturation,
    fixed_lif_step,
    integer_accuracy,
    membrane_bounds,
    quantize_network,
    run_network,
)
from sc_neurocore.fpga.network_spec import NetworkSpec
from sc_neurocore.models import LIFNetwork


def brute_force(network, train):
    """One sample, one neuron at a time, in plain Python ints: the chip's arithmetic written out."""
    spec = network.spec
    n_steps, n_inputs = train.shape
    weights = [w.tolist() for w in network.weights]
    membranes = [[0] * len(w[0]) for w in weights]
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
    return counts, predicted, importance, order


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
        counts, predicted, importance, order = brute_force(network, trains[b])
        assert result.counts[b].tolist() == counts
        assert int(result.predicted[b]) == predicted
        assert result.importance[b].tolist() == importance
        assert result.top_indices[b].tolist() == order
        assert result.top_scores[b].tolist() == [importance[i] for i in order]


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
