"""The network core in Migen's simulator: 0 mismatches against the integer reference on 1,000 random trains.

Why these trains, and this simulator:

* Migen's stock `Simulator` runs about a thousand cycles a second on the shipped 64-32-10 core (one
  digits sample is ~14,000 cycles at 5 lanes, so 1,000 samples would take hours). The core is generated
  from its `QuantizedNetwork`, so what Migen must show is that the *generator* is right for every shape
  and format it accepts. So 1,000 random trains run on `N_NETWORKS` random networks from the same
  generator (`NetworkExplainer`): random depth (1-3 weight layers), sizes, weights, thresholds, leaks,
  reset (subtract or zero on the next step as snnTorch, zero in the same step as Norse, none), weight / membrane / leak bit widths, trace format, `T`, `top_k` and lane
  count (lane counts that do not divide the layers included), each network's trains streamed back to
  back through the Wishbone window in one simulation. Two real digits test samples then run on the
  shipped digits8 network at its bitstream's 5 lanes. Every read of the results window is checked:
  status word (class, timesteps), top-k inputs and scores, spike counts and the whole importance vector.
* The scheduler is `tests/migen_event_sim.EventSimulator`: Migen's own evaluator, memory model and
  clocking, with statements run only when a signal they read has changed (8x faster on these cores).
  `test_event_scheduler_reads_what_migens_simulator_reads` runs one program through both and requires
  identical reads, so the speed-up cannot hide a difference.

The exported Verilog runs 1,000 trains too (iverilog, tests/fpga/test_network_sim.py), as does the
gate-level netlist (30) and the Verilator SoC (24).
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import require_module
from network_bench import assert_reads_match, explain_program, random_trains, run_migen

from sc_neurocore.fpga import FixedPointSpec
from sc_neurocore.fpga.network_reference import check_saturation, quantize_network, run_network
from sc_neurocore.models import LIFNetwork

N_NETWORKS = 25
TRAINS_PER_NETWORK = 40  # 1,000 in all


def _randint(generator: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high + 1, (1,), generator=generator))


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(1, generator=generator))


def random_network(seed: int):
    """A random `QuantizedNetwork` and lane count the core accepts (redrawn until the saturation check
    passes, as the build would require); `seed` fixes everything."""
    generator = torch.Generator().manual_seed(1000 + seed)
    for _ in range(100):
        depth = _randint(generator, 1, 3)
        sizes = [_randint(generator, 2, 12)] + [_randint(generator, 1, 8) for _ in range(depth - 1)]
        sizes.append(_randint(generator, 1, 5))
        grid = _randint(generator, 3, 8)  # weight_frac_bits G: the float weights lie on the 2^-G grid
        spread = _uniform(generator, 0.5, 3.0)
        weights = [torch.round((torch.rand(a, b, generator=generator) - _uniform(generator, 0.2, 0.6))
                               * spread * 2**grid) / 2**grid for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        beta = [round(_uniform(generator, 0.0, 0.95), 3) for _ in range(depth)]
        threshold = [round(_uniform(generator, 0.25, 1.5), 3) for _ in range(depth)]
        # snnTorch's subtract and zero resets (next step), Norse's same-step zero reset, and none.
        reset, delay = [("subtract", True), ("subtract", True), ("zero", True), ("zero", False),
                        ("none", True)][_randint(generator, 0, 4)]
        n_steps = _randint(generator, 1, 6)
        trace_bits = _randint(generator, 6, 14)
        decay = round(_uniform(generator, 0.4, 1.0), 3)
        decay_bits = _randint(generator, 4, 14)
        # The largest F whose trace cannot saturate within T steps (the build refuses the others).
        frac_bits = max(f for f in range(trace_bits) if
                        FixedPointSpec(decay=decay, trace_bits=trace_bits, frac_bits=f, decay_bits=decay_bits,
                                       weight_bits=16, weight_frac_bits=0).never_saturates(n_steps)
                        or f == 0)
        options = {"weight_bits": 16, "weight_frac_bits": grid + _randint(generator, 0, 2),
                   "membrane_bits": _randint(generator, 12, 16), "beta_bits": _randint(generator, 4, 14),
                   "top_k": _randint(generator, 1, sizes[0]), "reset_delay": delay}
        try:
            probe = quantize_network(LIFNetwork(weights, beta=beta, threshold=threshold, reset=reset), n_steps,
                                     **options)
            trace = FixedPointSpec(decay=decay, trace_bits=trace_bits, frac_bits=frac_bits, decay_bits=decay_bits,
                                   weight_bits=16, weight_frac_bits=probe.spec.trace.weight_frac_bits)
            network = quantize_network(LIFNetwork(weights, beta=beta, threshold=threshold, reset=reset), n_steps,
                                       trace=trace, **options)
            check_saturation(network)
        except ValueError:
            continue  # a threshold off the membrane range, a saturating trace or membrane: draw again
        lanes = _randint(generator, 1, min(8, max(sizes[1:]) + 1))
        return network, lanes
    raise AssertionError(f"no valid random network for seed {seed}")


@pytest.mark.slow
def test_random_networks_match_the_reference_on_1000_trains():
    require_module("litex", "fpga")
    from sc_neurocore.fpga.network_top import StandaloneNetworkExplainer

    total, shapes, classes = 0, set(), 0
    for seed in range(N_NETWORKS):
        network, lanes = random_network(seed)
        spec = network.spec
        trains = random_trains(torch.Generator().manual_seed(seed), TRAINS_PER_NETWORK, spec.n_steps, spec.n_inputs)
        program = explain_program(network, trains, full=True)
        top = StandaloneNetworkExplainer(network, lanes, dsp="behavioral")
        assert_reads_match(program, run_migen(program, top, scheduler="event"))
        total += program.n_trains
        shapes.add((spec.layers, lanes, (spec.reset, spec.reset_delay)))
        classes += len(set(run_network(network, trains).predicted.tolist())) > 1
    assert total == 1000
    # The draw covers what the generator varies: depths, lane counts, both resets, several classes won.
    assert len(shapes) == N_NETWORKS and {len(s[0]) for s in shapes} == {2, 3, 4}
    assert {s[2] for s in shapes} == {("subtract", True), ("zero", True), ("zero", False), ("none", True)}
    assert len({s[1] for s in shapes}) >= 5
    assert classes >= N_NETWORKS // 2


@pytest.mark.slow
def test_shipped_digits_network_matches_on_test_samples():
    require_module("litex", "fpga")
    from sc_neurocore.data import load_digits, pretrained_network
    from sc_neurocore.fpga.network_core import DEFAULT_LANES
    from sc_neurocore.fpga.network_top import StandaloneNetworkExplainer

    network = quantize_network(pretrained_network(8), n_steps=25)
    trains = load_digits("test").spikes[:2].to(torch.int64)
    program = explain_program(network, trains, full=True)
    top = StandaloneNetworkExplainer(network, DEFAULT_LANES, dsp="behavioral")  # the bitstream's lanes
    assert_reads_match(program, run_migen(program, top, scheduler="event"))


def test_event_scheduler_reads_what_migens_simulator_reads():
    require_module("litex", "fpga")
    from sc_neurocore.fpga.network_top import StandaloneNetworkExplainer

    network, lanes = random_network(3)
    spec = network.spec
    trains = random_trains(torch.Generator().manual_seed(9), 8, spec.n_steps, spec.n_inputs)
    program = explain_program(network, trains, full=True)
    stock = run_migen(program, StandaloneNetworkExplainer(network, lanes, dsp="behavioral"), scheduler="migen")
    event = run_migen(program, StandaloneNetworkExplainer(network, lanes, dsp="behavioral"), scheduler="event")
    assert stock == event
    assert_reads_match(program, event)


def test_random_networks_are_reproducible_and_valid():
    a, lanes_a = random_network(7)
    b, lanes_b = random_network(7)
    assert a.spec == b.spec and lanes_a == lanes_b
    assert all(torch.equal(x, y) for x, y in zip(a.weights, b.weights, strict=True))
    assert 1 <= lanes_a <= 8 and math.isfinite(sum(a.spec.beta))
