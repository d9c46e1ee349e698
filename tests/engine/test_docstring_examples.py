"""The Examples in the engine's and the benchmark's docstrings run and print what they claim."""

import doctest
import importlib

import pytest

MODULES = ["sc_neurocore.engine", "sc_neurocore.engine.event", "sc_neurocore.engine.event_kernels",
           "sc_neurocore.engine.cost", "sc_neurocore.engine.recorded", "sc_neurocore.engine.lower",
           "sc_neurocore.engine.attribution_kernels", "sc_neurocore.engine.threads", "sc_neurocore.engine.incremental",
           "sc_neurocore.bench.targets", "sc_neurocore.engine.replay", "sc_neurocore.engine.lif_loop",
           "sc_neurocore.engine.suffix", "sc_neurocore.engine.suffix_states", "sc_neurocore.engine.cuba",
           "sc_neurocore.engine.cuba_kernels", "sc_neurocore.engine.event_tables",
           "sc_neurocore.engine.synaptic_loop"]


@pytest.mark.parametrize("name", MODULES)
def test_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
