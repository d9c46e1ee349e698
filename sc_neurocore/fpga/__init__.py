"""Hardware explanations: the fixed-point trace explainer on an iCE40 FPGA.

* `spec` -- `FixedPointSpec`, the one fixed-point format;
* `reference` -- the integer reference, bit-exact with the hardware;
* `core` -- `TraceExplainer`, the Migen/LiteX core (needs the ``fpga`` extra);
* `export` -- standalone synthesizable Verilog of the core;
* `driver` -- `FpgaExplainer`, the host driver of a board running the core.

The spec and the reference need only torch; names from the gateware modules are imported on first use,
so ``import sc_neurocore.fpga`` works without migen/litex installed.
"""

from __future__ import annotations

import importlib
from typing import Any

from .reference import fixed_trace_step, hardware_importance, hardware_traces, spike_contributions
from .spec import FixedPointSpec

# Public names that live in modules needing the optional ``fpga`` extra: name -> submodule.
_LAZY = {
    "TraceExplainer": "core",
    "export_verilog": "export",
    "TARGETS": "export",
    "FpgaExplainer": "driver",
    "HardwareError": "driver",
}

__all__ = ["FixedPointSpec", "fixed_trace_step", "hardware_traces", "hardware_importance", "spike_contributions",
           *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
