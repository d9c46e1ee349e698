"""The network core behind its bus interfaces: what the SoC maps, and the standalone top the tests export.

* `StreamingNetworkExplainer` -- `NetworkExplainer` plus its `SpikeWindow`: one Wishbone region
  (`bus`, `bus_size`) and the core's CSRs; `sc_neurocore.fpga.soc.make_soc` maps it as `explainer`.
* `StandaloneNetworkExplainer` -- the same behind its own LiteX CSR bank, with the CSR bus and the
  Wishbone bus as ports (`export_network_verilog` writes it as one Verilog file).

Requires the `fpga` extra (`pip install 'spikexplain[fpga]'`).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..atomic import atomic_write
from ..extras import missing_extra
from .network_core import DEFAULT_LANES, NetworkExplainer
from .stream_window import SpikeWindow

try:
    from litex.gen import LiteXModule
    from litex.soc.interconnect import csr_bus
    from migen import Module
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise missing_extra("sc_neurocore.fpga.network_top needs migen and litex", "fpga") from error

#: CSR registers of the core in address order (word `n` at byte `4 n` of the core's CSR base).
NETWORK_CSR_MAP = ("control", "geometry", "timing", "cycles", "ev_status", "ev_pending", "ev_enable")
CSR_ADDRESS_BITS = 14
#: Byte address of the spike/results window in the SoC (the CSRs sit at 0).
WINDOW_ORIGIN = 0x1000_0000


class StreamingNetworkExplainer(LiteXModule):
    """`NetworkExplainer` with its `SpikeWindow` (see the module docstring).

    Args:
        network: the `QuantizedNetwork`.
        lanes: MAC lanes (1 to 8).
        dsp: `"sb_mac16"` (hardware) or `"behavioral"` (Migen's simulator); see `NetworkExplainer`.

    Example:
        >>> from sc_neurocore.data import pretrained_network
        >>> from sc_neurocore.fpga.network_reference import quantize_network
        >>> top = StreamingNetworkExplainer(quantize_network(pretrained_network(8), n_steps=25))
        >>> top.bus_size
        512
    """

    def __init__(self, network, lanes: int = DEFAULT_LANES, dsp: str = "sb_mac16") -> None:
        self.core = NetworkExplainer(network, lanes, dsp)
        self.window = SpikeWindow(network.spec.n_inputs, self.core.window_words)
        self.bus, self.bus_size = self.window.bus, self.window.bus_size
        self.bus_origin = WINDOW_ORIGIN
        core, window = self.core, self.window
        self.comb += [
            window.source.connect(core.sink),
            core.read_address.eq(window.read_address), core.read_strobe.eq(window.read_strobe),
            window.read_data.eq(core.read_data), window.hold.eq(core.computing),
        ]


class StandaloneNetworkExplainer(Module):
    """`StreamingNetworkExplainer` behind a CSR bank: ports `csr` (LiteX CSR bus) and `wishbone`.

    Example:
        >>> from sc_neurocore.data import pretrained_network
        >>> from sc_neurocore.fpga.network_reference import quantize_network
        >>> top = StandaloneNetworkExplainer(quantize_network(pretrained_network(8), n_steps=25), lanes=2)
        >>> len(top.csr.adr), len(top.wishbone.dat_r)
        (14, 32)
    """

    def __init__(self, network, lanes: int = DEFAULT_LANES, dsp: str = "sb_mac16") -> None:
        self.submodules.explainer = StreamingNetworkExplainer(network, lanes, dsp)
        self.wishbone = self.explainer.bus
        self.csr = csr_bus.Interface(data_width=32, address_width=CSR_ADDRESS_BITS)
        registers = self.explainer.get_csrs()
        self.submodules.bank = csr_bus.CSRBank(registers, address=0, bus=self.csr)
        names = tuple(register.name.replace("core_", "", 1) for register in registers)
        if names != NETWORK_CSR_MAP:
            raise RuntimeError(f"the CSR bank {names} does not match NETWORK_CSR_MAP {NETWORK_CSR_MAP}")


def export_network_verilog(path: str | os.PathLike, network, lanes: int = DEFAULT_LANES,
                           module_name: str = "network_explainer", dsp: str = "sb_mac16") -> Path:
    """Write `StandaloneNetworkExplainer` as one synthesizable Verilog file (weights inlined).

    Ports: `sys_clk`, `sys_rst`; the CSR bus `csr_adr[13:0]`, `csr_we`, `csr_re`, `csr_dat_w`, `csr_dat_r`
    (register `n` of `NETWORK_CSR_MAP` at word `n`); the Wishbone slave `bus_*` (word addresses).

    Args:
        path: the `.v` file (written atomically).
        network: the `QuantizedNetwork`.
        lanes: MAC lanes.
        module_name: the Verilog module name.
        dsp: `"sb_mac16"` (instances of the iCE40 DSP: simulate with yosys' `ice40/cells_sim.v`, synthesise
            with `synth_ice40` without `-dsp`) or `"behavioral"` (plain Verilog multipliers).

    Returns:
        The written path.

    Example:
        >>> import tempfile, pathlib
        >>> from sc_neurocore.data import pretrained_network
        >>> from sc_neurocore.fpga.network_reference import quantize_network
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> net = quantize_network(pretrained_network(8), n_steps=25)
        >>> export_network_verilog(folder / "net.v", net, lanes=2).name
        'net.v'
    """
    from litex.gen.fhdl.verilog import convert
    from migen import ClockDomain

    from .export import _inline_memory_init

    top = StandaloneNetworkExplainer(network, lanes, dsp)
    top.clock_domains.cd_sys = ClockDomain("sys")
    bus, wb = top.csr, top.wishbone
    ios = {bus.adr, bus.we, bus.re, bus.dat_w, bus.dat_r, wb.adr, wb.dat_w, wb.dat_r, wb.cyc, wb.stb, wb.we,
           wb.ack, wb.sel, top.cd_sys.clk, top.cd_sys.rst}
    converted = convert(top, ios=ios, name=module_name)
    body = converted.main_source
    for filename, content in converted.data_files.items():
        body = _inline_memory_init(body, filename, content)
    spec = network.spec
    header = (f"// {module_name}: sc-neurocore LIF network explainer, layers {list(spec.layers)}, "
              f"T={spec.n_steps}, {lanes} lanes, top-{spec.top_k}.\n"
              f"// CSR map (word address: name): "
              + ", ".join(f"{n}: {name}" for n, name in enumerate(NETWORK_CSR_MAP)) + "\n\n")
    with atomic_write(path) as handle:
        handle.write(header + body)
    return Path(path)
