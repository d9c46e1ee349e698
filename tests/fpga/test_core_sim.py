"""The Migen core in Migen's simulator, driven through its CSR bank, against the integer reference.

The runs use Migen's evaluator with event-driven scheduling (`tests/migen_event_sim.py`); one program
also runs in Migen's stock simulator, which must read exactly the same.
"""

from __future__ import annotations

import pytest
import torch
from fpga_bus import (CSR_MAP, assert_reads_match, explain_program, random_trains, random_weights,
                         run_migen)
from conftest import require_module

from sc_neurocore.fpga import FixedPointSpec

# (N, C, T, L, spec, trains): one lane; lanes not dividing N (padding); as many lanes as inputs (M = 1, so
# every timestep has pipeline bubbles); a narrow trace that saturates at decay 1.
CONFIGS = [
    pytest.param(7, 2, 5, 1, FixedPointSpec(decay=0.8), 4, id="one-lane"),
    pytest.param(10, 2, 4, 3, FixedPointSpec(decay=0.95, weight_bits=12, weight_frac_bits=8), 4, id="padded-lanes"),
    pytest.param(8, 1, 6, 8, FixedPointSpec(decay=0.5), 4, id="eight-lanes-bubbles"),
    pytest.param(5, 2, 12, 2, FixedPointSpec(decay=1.0, trace_bits=6, frac_bits=3, decay_bits=4, weight_bits=4,
                                             weight_frac_bits=1), 4, id="saturating"),
]


@pytest.mark.parametrize("n_inputs, n_outputs, n_steps, lanes, spec, n_trains", CONFIGS)
def test_core_matches_reference(n_inputs, n_outputs, n_steps, lanes, spec, n_trains):
    require_module("migen", "fpga")
    from sc_neurocore.fpga.core import StandaloneTraceExplainer, cycles_per_run

    generator = torch.Generator().manual_seed(n_inputs * 1000 + lanes)
    trains = random_trains(generator, n_trains, n_steps, n_inputs)
    weights = [random_weights(generator, n_inputs, n_outputs, spec) for _ in range(2)]
    program = explain_program(trains, weights, spec, lanes, cycles_per_run(n_inputs, n_steps, lanes))
    top = StandaloneTraceExplainer(n_inputs, n_outputs, n_steps, lanes, spec)
    assert_reads_match(program, run_migen(program, top))


def test_event_scheduler_reads_what_migens_simulator_reads():
    require_module("migen", "fpga")
    from sc_neurocore.fpga.core import StandaloneTraceExplainer, cycles_per_run

    n_inputs, n_outputs, n_steps, lanes, spec, n_trains = CONFIGS[1].values
    generator = torch.Generator().manual_seed(5)
    trains = random_trains(generator, n_trains, n_steps, n_inputs)
    weights = [random_weights(generator, n_inputs, n_outputs, spec)]
    program = explain_program(trains, weights, spec, lanes, cycles_per_run(n_inputs, n_steps, lanes))
    runs = [run_migen(program, StandaloneTraceExplainer(n_inputs, n_outputs, n_steps, lanes, spec), scheduler=kind)
            for kind in ("migen", "event")]
    assert runs[0] == runs[1]
    assert_reads_match(program, runs[1])


def test_saturating_config_saturates():
    # The "saturating" case above must really reach the ceiling, or it tests nothing.
    from sc_neurocore.fpga.reference import hardware_traces

    spec = CONFIGS[3].values[4]
    assert int(hardware_traces(torch.ones(12, 5, dtype=torch.int64), spec).max()) == spec.trace_max


def test_csr_map_and_docs():
    require_module("litex", "fpga")
    from sc_neurocore.fpga.core import CSR_MAP as CORE_CSR_MAP
    from sc_neurocore.fpga.core import TraceExplainer

    core = TraceExplainer(784, 10, 25, 8, FixedPointSpec(decay=0.95))
    registers = core.get_csrs()
    assert tuple(register.name for register in registers) == CORE_CSR_MAP == CSR_MAP
    assert all(register.description for register in registers)
    for register in registers:
        for csr_field in getattr(getattr(register, "fields", None), "fields", []):
            assert csr_field.description, f"{register.name}.{csr_field.name} has no description"
    documents = core.get_module_documentation()
    assert any("How software drives it" in document.body() for document in documents)
    assert core.words_per_lane == 98 and core.cycles_per_run == 25 * 98 + 4


@pytest.mark.parametrize("arguments, error, match", [
    ((0, 10, 25, 8), ValueError, "n_inputs"),
    ((784, 256, 25, 8), ValueError, "n_outputs"),
    ((784, 10, 0, 8), ValueError, "n_steps"),
    ((784, 10, 25, 9), ValueError, "lanes"),
    ((784, 10, 25, 2.0), TypeError, "lanes"),
])
def test_bad_sizes(arguments, error, match):
    require_module("litex", "fpga")
    from sc_neurocore.fpga.core import TraceExplainer

    with pytest.raises(error, match=match):
        TraceExplainer(*arguments, FixedPointSpec(decay=0.9))
    with pytest.raises(TypeError, match="spec"):
        TraceExplainer(784, 10, 25, 8, spec=0.9)


def test_control_corner_cases():
    """Readout wraps after the last input; a start or a load while busy is ignored; a readout selected during a
    run never turns ready until selected again."""
    require_module("migen", "fpga")
    from fpga_bus import DONE, READY, BusProgram, load_weights

    from sc_neurocore.fpga.core import StandaloneTraceExplainer, cycles_per_run
    from sc_neurocore.fpga.reference import hardware_importance, spike_memory_words

    n_inputs, n_outputs, n_steps, lanes = 5, 2, 30, 2
    spec = FixedPointSpec(decay=0.9)
    generator = torch.Generator().manual_seed(4)
    train = random_trains(generator, 3, n_steps, n_inputs)[2]
    weights = random_weights(generator, n_inputs, n_outputs, spec)
    importance = hardware_importance(train, weights, spec)
    program = BusProgram()
    load_weights(program, weights, spec)
    program.write("load_target", 0)
    program.write("load_address", 0)
    for word in spike_memory_words(train, lanes).tolist():
        program.write("load_data", word)
    program.write("control", 1)
    program.read("status", 1, "busy right after start")
    program.write("readout", 1)  # selected mid-run: must not become ready
    program.write("load_address", 0)
    program.write("load_data", 0)  # ignored: busy
    program.write("control", 1)  # ignored: busy (the run is not restarted)
    program.poll("status", DONE)
    program.read("cycles", cycles_per_run(n_inputs, n_steps, lanes), "one run, not restarted")
    program.read("status", DONE, "done, the mid-run readout is not ready")
    program.write("readout", 1)
    for i in [*range(n_inputs), 0]:  # the last advance wraps to input 0
        program.poll("status", READY)
        program.read("readout_index", i)
        program.read("importance", int(importance[i, 1]), f"input {i}")
        program.write("advance", 1)
    program.n_trains = 1
    top = StandaloneTraceExplainer(n_inputs, n_outputs, n_steps, lanes, spec)
    assert_reads_match(program, run_migen(program, top))
