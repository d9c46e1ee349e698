"""The Examples in the FPGA package's docstrings run and print what they claim."""

import doctest
import importlib

import pytest
from conftest import require_module

#: Modules that need only torch; the rest need the fpga extra (migen, LiteX).
PLAIN = ["sc_neurocore.fpga.spec", "sc_neurocore.fpga.reference", "sc_neurocore.fpga.network_spec",
         "sc_neurocore.fpga.network_reference", "sc_neurocore.fpga.network_driver",
         "sc_neurocore.fpga.network_credit", "sc_neurocore.fpga.network_norse"]
GATEWARE = ["sc_neurocore.fpga.network_core", "sc_neurocore.fpga.network_top", "sc_neurocore.fpga.stream_window",
            "sc_neurocore.fpga.network_build", "sc_neurocore.fpga.export", "sc_neurocore.fpga.core",
            "sc_neurocore.fpga.cli", "sc_neurocore.fpga.dsp"]


@pytest.mark.parametrize("name", PLAIN + GATEWARE)
def test_examples(name):
    require_module("sklearn", "data")
    if name in GATEWARE:
        require_module("litex", "fpga")
    if name.endswith("norse"):
        require_module("norse", "norse")
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, result
