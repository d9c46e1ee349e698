"""The whole network SoC in Verilator, driven by `NetworkChip` over the simulated UART, against the reference.

The SoC is the bitstream's (`make_soc`: UART bridge, CSRs, the spike/results window, the shipped digits
network with its 5 lanes), with the simulator's clock and a `serial2tcp` UART; the DSPs are the
behavioral multipliers (Verilator cannot run yosys' `SB_MAC16` model; the instances are checked in
iverilog and at gate level). The driver speaks the bridge protocol itself on `socket://localhost:PORT`,
as it does on `/dev/ttyUSB1`.
"""

from __future__ import annotations

import pytest
import torch
from conftest import require_module, require_tool
from fpga_bus import require_sim_libraries
from network_bench import random_trains

from sc_neurocore.data import load_digits
from sc_neurocore.fpga.network_reference import quantize_network, run_network

N_TRAINS = 24


@pytest.fixture(scope="module")
def digits_soc(tmp_path_factory):
    require_tool("verilator", "make", "g++")
    require_module("litex", "fpga")
    require_sim_libraries(tmp_path_factory.mktemp("probe"))
    from sc_neurocore.data import pretrained_network
    from sc_neurocore.fpga.network_top import StreamingNetworkExplainer
    from sc_neurocore.fpga.sim import build_simulation

    network = quantize_network(pretrained_network(8), n_steps=25)
    top = StreamingNetworkExplainer(network, dsp="behavioral")
    return network, top, build_simulation(top, tmp_path_factory.mktemp("network_soc"))


@pytest.mark.toolchain
@pytest.mark.slow
def test_soc_explains_streamed_samples_exactly_over_the_uart(digits_soc):
    from sc_neurocore.fpga.network_core import cycles_per_step, cycles_to_done
    from sc_neurocore.fpga.network_driver import NetworkChip
    from sc_neurocore.fpga.sim import Simulation

    network, top, build = digits_soc
    spec = network.spec
    generator = torch.Generator().manual_seed(4)
    trains = torch.cat([load_digits("test").spikes[:N_TRAINS - 4].to(torch.int64),
                        random_trains(generator, 4, spec.n_steps, spec.n_inputs)])
    expected = run_network(network, trains)
    with Simulation(build, with_server=False) as simulation, \
            NetworkChip(simulation.uart_port, csr_csv=build.csr_csv, spec=spec) as chip:
        assert chip.lanes == top.core.lanes and chip.cycles_per_step == cycles_per_step(spec, chip.lanes)
        for b in range(trains.shape[0]):
            full = b % 4 == 0  # the whole importance vector in one burst on every fourth sample
            got = chip.explain(trains[b], full=full)
            assert got.predicted == int(expected.predicted[b]), b
            assert got.top_indices.tolist() == expected.top_indices[b].tolist(), b
            assert got.top_scores.tolist() == expected.top_scores[b].tolist(), b
            if full:
                assert torch.equal(got.importance, expected.importance[b])
                assert torch.equal(got.counts, expected.counts[b])
            # The chip's own cycle counter: at least the schedule, plus the time the UART took.
            assert chip.cycles_last_sample >= spec.n_steps * cycles_per_step(spec, chip.lanes) + \
                cycles_to_done(spec, chip.lanes)
        # A read past the window answers 0 and sets read_error in the status word.
        assert chip.read_window(top.core.window_words + 3) == 0
        assert chip.read_window(0) & 0b100
        with pytest.raises(ValueError, match="spikes"):
            chip.explain(torch.zeros(spec.n_steps + 1, spec.n_inputs))
    assert (expected.predicted[:N_TRAINS - 4] == load_digits("test").labels[:N_TRAINS - 4]).float().mean() > 0.8


def test_driver_checks_its_arguments(tmp_path):
    from sc_neurocore.fpga.network_driver import NetworkChip
    from sc_neurocore.fpga.network_spec import NetworkSpec

    csv = tmp_path / "csr.csv"
    csv.write_text("csr_base,explainer,0x00000000,,\n")
    spec = NetworkSpec(layers=(4, 2), n_steps=3)
    with pytest.raises(ValueError, match="csr_csv"):
        NetworkChip("loop://", csr_csv=csv, spec=spec)
    with pytest.raises(TypeError, match="spec"):
        NetworkChip("loop://", csr_csv=csv, spec="digits8")
    with pytest.raises(ValueError, match="baudrate"):
        NetworkChip("loop://", csr_csv=csv, spec=spec, baudrate=0)
