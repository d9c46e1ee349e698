"""Hardware explanations on an iCE40 FPGA: the whole LIF network on chip, and the trace explainer.

The whole network (`sc-neurocore fpga build --model digits8`):

* `network_spec` -- `NetworkSpec`, the integer format of an on-chip LIF network;
* `network_reference` -- `quantize_network` and `run_network`, its bit-exact integer reference
  (`network_norse`: Norse `LIFBoxCell` stacks; `network_credit`: the auto rule in integers);
* `network_core` / `stream_window` / `network_top` -- `NetworkExplainer`, the core, its spike/results
  window and the SoC-facing wrapper (need the `fpga` extra); `dsp` -- the registered `SB_MAC16` both
  cores multiply in;
* `network_build` -- checks, bitstream and JSON report; `network_driver` -- `NetworkChip`, the host side.

The trace explainer (the tutorial's `export_fpga`):

* `spec` -- `FixedPointSpec`, the one fixed-point format of traces and importance;
* `reference` -- the integer reference, bit-exact with the hardware;
* `core` -- `TraceExplainer`, the Migen/LiteX core (needs the `fpga` extra);
* `export` -- standalone synthesizable Verilog of the core;
* `driver` -- `FpgaExplainer`, the host driver of a board running the core.

The spec and the reference need only torch; names from the gateware modules are imported on first use,
so ``import sc_neurocore.fpga`` works without migen/litex installed.
"""

from __future__ import annotations

import importlib
from typing import Any

from .reference import fixed_trace_step, hardware_importance, hardware_traces, spike_contributions
from .network_credit import integer_credit
from .network_reference import quantize_network, run_network
from .network_spec import NetworkSpec
from .spec import FixedPointSpec

# Public names that live in modules needing the optional ``fpga`` extra: name -> submodule.
_LAZY = {
    "TraceExplainer": "core",
    "export_verilog": "export",
    "TARGETS": "export",
    "FpgaExplainer": "driver",
    "HardwareError": "driver",
    "NetworkExplainer": "network_core",
    "NetworkChip": "network_driver",
    "build_network_bitstream": "network_build",
}

__all__ = ["FixedPointSpec", "NetworkSpec", "fixed_trace_step", "hardware_traces", "hardware_importance",
           "spike_contributions", "quantize_network", "run_network", "integer_credit", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
