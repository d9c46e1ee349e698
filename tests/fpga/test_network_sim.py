"""The network core against the integer reference in iverilog on the exported Verilog, and its guards.

iverilog runs 1,000 trains in all (four networks: two layers, three layers without reset, Norse's
same-step zero reset with negative membranes, and the shipped digits network on real test samples),
each network in one simulation. The Migen simulation's
1,000 trains are in tests/fpga/test_network_migen_sim.py.
"""

from __future__ import annotations

import pytest
import torch
from conftest import require_module, require_tool
from network_bench import (
    assert_reads_match,
    explain_program,
    random_trains,
    run_iverilog,
    run_iverilog_with_cells,
    spike_words,
)

from sc_neurocore.data import load_digits, pretrained_network
from sc_neurocore.fpga.network_reference import quantize_network, run_network
from sc_neurocore.models import LIFNetwork


def grid_weights(generator, *shapes, spread=2.0):
    return [torch.round((torch.rand(*shape, generator=generator) - 0.4) * spread * 256) / 256 for shape in shapes]


def two_layer(seed=0):
    generator = torch.Generator().manual_seed(seed)
    weights = grid_weights(generator, (10, 6), (6, 3))
    return quantize_network(LIFNetwork(weights, beta=0.8, threshold=0.7), n_steps=5, top_k=3)


def three_layer_no_reset(seed=1):
    generator = torch.Generator().manual_seed(seed)
    weights = grid_weights(generator, (7, 5), (5, 4), (4, 3), spread=1.5)
    return quantize_network(LIFNetwork(weights, beta=[0.75, 0.5, 0.9], threshold=[0.6, 0.4, 0.5], reset="none"),
                            n_steps=4, top_k=7)


def zero_reset_same_step(seed=3):
    """Norse's reset (to zero, in the same step), with inhibitory weights: negative membranes leak too."""
    generator = torch.Generator().manual_seed(seed)
    weights = grid_weights(generator, (8, 6), (6, 4), spread=2.5)
    return quantize_network(LIFNetwork(weights, beta=[0.85, 0.6], threshold=[0.5, 0.8], reset="zero"), n_steps=5,
                            top_k=4, reset_delay=False)


def tiny(seed=2):
    generator = torch.Generator().manual_seed(seed)
    weights = grid_weights(generator, (5, 3), (3, 2), spread=3.0)
    return quantize_network(LIFNetwork(weights, beta=0.7, threshold=0.5), n_steps=3, top_k=2)


CONFIGS = [
    pytest.param(two_layer, 4, 400, id="10-6-3-L4"),
    pytest.param(three_layer_no_reset, 3, 380, id="7-5-4-3-none-L3"),
    pytest.param(zero_reset_same_step, 3, 200, id="8-6-4-zero-same-step-L3"),
]


@pytest.mark.toolchain
@pytest.mark.parametrize("make, lanes, n_trains", CONFIGS)
def test_exported_verilog_matches_the_reference(tmp_path, make, lanes, n_trains):
    require_tool("iverilog", "vvp")
    require_module("litex", "fpga")
    from sc_neurocore.fpga.network_top import export_network_verilog

    network = make()
    spec = network.spec
    trains = random_trains(torch.Generator().manual_seed(lanes), n_trains, spec.n_steps, spec.n_inputs)
    program = explain_program(network, trains, full=True)
    # The Verilog the bitstream is built from: SB_MAC16 instances, simulated with yosys' cell models.
    source = export_network_verilog(tmp_path / "net.v", network, lanes)
    assert "SB_MAC16 #(" in source.read_text()
    reads = run_iverilog_with_cells(program, [source], tmp_path)
    assert program.n_trains == n_trains
    assert_reads_match(program, reads)
    # The reference is not trivial on these trains: several classes, and saturating inputs.
    expected = run_network(network, trains)
    assert len(set(expected.predicted.tolist())) > 1
    assert min(int(v.min()) for v in expected.membranes) < 0  # negative membranes (sign extension) too


@pytest.mark.toolchain
@pytest.mark.slow
def test_shipped_digits_network_in_verilog_matches_on_test_samples(tmp_path):
    require_tool("iverilog", "vvp")
    require_module("litex", "fpga")
    from sc_neurocore.fpga.network_top import export_network_verilog

    network = quantize_network(pretrained_network(8), n_steps=25)
    trains = load_digits("test").spikes[:20].to(torch.int64)
    program = explain_program(network, trains, full=True)
    # Plain Verilog multipliers here (the SB_MAC16 path is covered above and at gate level).
    reads = run_iverilog(program, [export_network_verilog(tmp_path / "digits.v", network, 8, dsp="behavioral")],
                         tmp_path)
    assert_reads_match(program, reads)


def test_guards_read_error_stream_error_and_held_reads():
    """A read past the window returns 0 and sets read_error; a beat outside a run is dropped and sets
    stream_error; start clears both; a read sent before done waits for the result."""
    require_module("litex", "fpga")
    from migen.sim import run_simulation

    from sc_neurocore.fpga.network_top import StandaloneNetworkExplainer

    network = tiny()
    spec = network.spec
    top = StandaloneNetworkExplainer(network, 2, dsp="behavioral")
    words = top.explainer.core.window_words
    train = torch.ones(spec.n_steps, spec.n_inputs, dtype=torch.int64)
    expected = run_network(network, train[None])
    seen = {}

    def cycle(address, data=None):
        wb = top.wishbone
        yield wb.adr.eq(address)
        yield wb.cyc.eq(1)
        yield wb.stb.eq(1)
        yield wb.we.eq(data is not None)
        yield wb.dat_w.eq(data or 0)
        yield
        waited = 0
        while not (yield wb.ack):
            waited += 1
            yield
        value = yield wb.dat_r
        yield wb.cyc.eq(0)
        yield wb.stb.eq(0)
        yield
        return value, waited

    def host():
        seen["stray"] = yield from cycle(0, 0xFFFFFFFF)  # a beat before any start
        seen["status_stray"] = (yield from cycle(0))[0]
        seen["past"] = yield from cycle(words)
        seen["far"] = yield from cycle(top.explainer.bus_size // 4 - 1)  # the last word of the region
        seen["status_past"] = (yield from cycle(0))[0]
        yield top.csr.adr.eq(0)
        yield top.csr.dat_w.eq(1)
        yield top.csr.we.eq(1)
        yield
        yield top.csr.we.eq(0)
        for word in spike_words(train):
            yield from cycle(0, word)
        seen["held"] = yield from cycle(0)  # no poll: the window holds the read until done
        seen["top"] = []
        for p in range(spec.top_k):
            seen["top"].append((yield from cycle(1 + p))[0])

    run_simulation(top, host())
    assert seen["status_stray"] & 0b1000 and not seen["status_stray"] & 1
    assert seen["past"][0] == 0 and seen["far"][0] == 0 and seen["status_past"] & 0b100
    status, waited = seen["held"]
    assert status == 1 | int(expected.predicted[0]) << 8 | spec.n_steps << 16  # errors cleared by start
    assert waited > 10
    assert seen["top"] == expected.top_indices[0].tolist()


def test_core_arguments_are_checked():
    require_module("litex", "fpga")
    from sc_neurocore.fpga.network_core import NetworkExplainer

    with pytest.raises(TypeError, match="network"):
        NetworkExplainer("digits8")
    with pytest.raises(ValueError, match="lanes"):
        NetworkExplainer(tiny(), lanes=9)
    with pytest.raises(ValueError, match="dsp"):
        NetworkExplainer(tiny(), dsp="lut")
    narrow = quantize_network(pretrained_network(8), n_steps=25, membrane_bits=12)
    with pytest.raises(ValueError, match="membrane_bits"):
        NetworkExplainer(narrow)
