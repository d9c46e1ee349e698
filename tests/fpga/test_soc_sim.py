"""The whole SoC in Verilator, driven by ``FpgaExplainer`` through ``litex_server``, against the reference.

One Verilator build per session (module-scoped fixture, about a minute); every check then talks to the
simulated chip over TCP exactly as the driver talks to a board over its UART: ``serial2tcp`` <->
``litex_server --uart --uart-port socket://localhost:PORT`` <-> ``RemoteClient``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import require_module, require_tool
from fpga_bus import require_sim_libraries

# A small geometry with every corner the layout has: N not a multiple of L (padding inputs), more than one
# word per lane, several output neurons.
N_INPUTS, N_OUTPUTS, N_STEPS, LANES = 19, 3, 7, 4
DECAY = 0.8


@pytest.fixture(scope="module")
def simulation_build(tmp_path_factory):
    require_tool("verilator", "make", "g++")
    require_module("litex", "fpga")
    require_sim_libraries(tmp_path_factory.mktemp("probe"))
    from sc_neurocore.fpga import FixedPointSpec
    from sc_neurocore.fpga.core import TraceExplainer
    from sc_neurocore.fpga.sim import build_simulation

    core = TraceExplainer(N_INPUTS, N_OUTPUTS, N_STEPS, LANES, FixedPointSpec(decay=DECAY))
    build = build_simulation(core, tmp_path_factory.mktemp("soc_sim"))
    return build, core


@pytest.fixture(scope="module")
def chip(simulation_build):
    from sc_neurocore.fpga.driver import FpgaExplainer
    from sc_neurocore.fpga.sim import Simulation

    build, _ = simulation_build
    with Simulation(build) as simulation:
        assert simulation.url.startswith("localhost:")
        with FpgaExplainer(url=simulation.url, csr_csv=str(build.csr_csv)) as explainer:
            yield explainer


def random_weights(seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    # Spread over most of the 16-bit range (|w| < 8 with 12 fraction bits), both signs.
    return (torch.rand(N_INPUTS, N_OUTPUTS, generator=generator, dtype=torch.float64) - 0.5) * 15.0


def random_spikes(seed: int, rate: float) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(N_STEPS, N_INPUTS, generator=generator) < rate).to(torch.float32)


def test_chip_reports_the_geometry_and_format_it_was_built_with(chip, simulation_build):
    _, core = simulation_build
    assert (chip.n_inputs, chip.n_outputs, chip.n_steps, chip.lanes) == (N_INPUTS, N_OUTPUTS, N_STEPS, LANES)
    assert chip.words_per_lane == core.words_per_lane
    assert chip.spec.decay_int == core.spec.decay_int
    assert chip.spec == core.spec.with_decay(chip.spec.decay)  # same widths, decay re-derived from D_int


def test_importance_is_bit_exact_with_the_reference_over_random_spike_trains(chip, simulation_build):
    from sc_neurocore.fpga import hardware_importance

    _, core = simulation_build
    weights = random_weights(0)
    quantised = chip.load_weights(weights)
    assert torch.equal(quantised, core.spec.quantize_weights(weights))
    mismatches = 0
    # Rates from silent to saturating (every input every step drives the trace towards its ceiling).
    for seed, rate in enumerate((0.0, 0.15, 0.5, 0.9, 1.0, 0.3)):
        spikes = random_spikes(100 + seed, rate)
        target = seed % N_OUTPUTS
        got = chip.importance(spikes, output_neuron=target)
        expected = hardware_importance(spikes, quantised, core.spec)[:, target]
        mismatches += int((got != expected).sum())
        assert chip.cycles_last_run == core.cycles_per_run
    assert mismatches == 0


def test_attribute_returns_an_attribution_result_matching_the_reference_split(chip, simulation_build):
    from sc_neurocore.explain import SpikeAttributor
    from sc_neurocore.explain.results import AttributionResult
    from sc_neurocore.fpga import hardware_importance, spike_contributions

    _, core = simulation_build
    weights = random_weights(1)
    spikes = torch.stack([random_spikes(200, 0.4), random_spikes(201, 0.25)]).to(torch.float64)
    targets = torch.tensor([2, 0])
    result = chip.attribute(spikes, weights, output_neuron=targets)
    assert isinstance(result, AttributionResult)
    quantised = core.spec.quantize_weights(weights)
    scale = core.spec.importance_scale
    expected_map = torch.stack([spike_contributions(spikes[b], core.spec) * quantised[:, targets[b]]
                                for b in range(2)]).to(torch.float64) * scale
    assert torch.equal(result.attribution_map(), expected_map)
    # The same result as the software attributor in fixed point: the chip is a drop-in for it.
    software = SpikeAttributor(decay=core.spec.decay, fixed_point=core.spec).attribute(spikes, weights, targets)
    assert torch.equal(result.attribution_map(), software.attribution_map())
    assert result.top_k(5, sample=1) == software.top_k(5, sample=1)
    spatial = torch.stack([hardware_importance(spikes[b], quantised, core.spec)[:, targets[b]] for b in range(2)])
    assert torch.equal(result.spatial_importance(), spatial.to(torch.float64) * scale)
    assert result.output_neuron.tolist() == [2, 0]
    top = result.top_k(3, sample=0)
    assert len(top) == 3 and all(spikes[0, t, n] == 1 for t, n, _ in top)


def test_numpy_single_sample_comes_back_as_numpy(chip, simulation_build):
    _, core = simulation_build
    spikes = random_spikes(300, 0.5).numpy()
    chip.load_weights(random_weights(2).numpy())
    result = chip.attribute(spikes, output_neuron=1)
    assert isinstance(result.attribution_map(), np.ndarray) and result.attribution_map().shape == (N_STEPS, N_INPUTS)
    assert isinstance(result.total, float)


def test_bad_input_is_rejected_before_touching_the_chip(chip):
    with pytest.raises(ValueError, match="input_spikes"):
        chip.importance(torch.zeros(N_STEPS + 1, N_INPUTS), output_neuron=0)
    with pytest.raises(ValueError, match="only 0 and 1"):
        chip.run(torch.full((N_STEPS, N_INPUTS), 0.5))
    with pytest.raises(ValueError, match="weights"):
        chip.load_weights(torch.zeros(N_INPUTS + 1, N_OUTPUTS))
    with pytest.raises(ValueError, match="output_neuron"):
        chip.importance(torch.zeros(N_STEPS, N_INPUTS), output_neuron=N_OUTPUTS)


def test_a_spec_that_differs_from_the_chip_is_refused_and_the_direct_uart_path_works(simulation_build):
    from sc_neurocore.fpga import FixedPointSpec, hardware_importance
    from sc_neurocore.fpga.driver import FpgaExplainer
    from sc_neurocore.fpga.sim import Simulation

    build, core = simulation_build
    # Without litex_server: the driver speaks the UART bridge protocol itself (LiteX's CommUART), as it does
    # on /dev/ttyUSB1 with a board. serial2tcp serves one client at a time, so one FpgaExplainer at a time.
    with Simulation(build, with_server=False) as simulation:
        assert simulation.url == "" and simulation.uart_port.startswith("socket://localhost:")
        with pytest.raises(ValueError, match="spec: expected the chip's format"):
            FpgaExplainer(uart_port=simulation.uart_port, csr_csv=str(build.csr_csv), spec=FixedPointSpec(decay=0.5))
    with Simulation(build, with_server=False) as simulation:
        with FpgaExplainer(uart_port=simulation.uart_port, csr_csv=str(build.csr_csv), spec=core.spec) as chip:
            assert chip.spec is core.spec
            quantised = chip.load_weights(random_weights(3))
            spikes = random_spikes(400, 0.6)
            got = chip.importance(spikes, output_neuron=2)
    assert torch.equal(got, hardware_importance(spikes, quantised, core.spec)[:, 2])


def test_driver_arguments_are_checked():
    from sc_neurocore.fpga.driver import FpgaExplainer

    with pytest.raises(ValueError, match="exactly one of"):
        FpgaExplainer(csr_csv="csr.csv")
    with pytest.raises(ValueError, match="exactly one of"):
        FpgaExplainer(uart_port="/dev/null", url="localhost:1", csr_csv="csr.csv")
    with pytest.raises(ValueError, match="csr_csv"):
        FpgaExplainer(url="localhost:1")


def test_a_core_with_sb_mac16_instances_is_refused_before_verilator_runs(tmp_path):
    require_module("litex", "fpga")
    from sc_neurocore.fpga import FixedPointSpec, TraceExplainer
    from sc_neurocore.fpga.sim import build_simulation

    with pytest.raises(ValueError, match="dsp='behavioral'"):
        build_simulation(TraceExplainer(8, 2, 3, 2, FixedPointSpec(decay=0.9), dsp="sb_mac16"), tmp_path)
    assert list(tmp_path.iterdir()) == []
