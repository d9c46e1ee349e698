"""The system-on-chip around the trace explainer: a CPU-less LiteX ``SoCMini`` driven over UART.

There is no processor on the chip. The host talks to the Wishbone bus through LiteX's ``UARTBone``
(a UART-to-Wishbone bridge): it writes weights and spikes into the explainer's registers, starts a run
and reads the importance back (`FpgaExplainer` does all of this). The
same `ExplainerSoC` is built for a board (`board_soc`, here the iCEBreaker's iCE40UP5K) and
for the Verilator simulation (`sc_neurocore.fpga.sim`), so what the simulation checks is what the
bitstream contains: only the clock/reset generator and the UART's physical layer differ.

Boards are described by `Board` entries in `BOARDS`. litex-boards provides the pin-out
(its *platform*); its ready-made *target* for the iCEBreaker cannot be built without a CPU, so the SoC
is assembled here.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from dataclasses import dataclass, field
from typing import Any

from ..extras import missing_extra
from ..inputs import as_choice, as_positive_int

#: Name of the explainer in the SoC: its registers appear in ``csr.csv`` as ``explainer_<name>``.
CORE_NAME = "explainer"


def require_litex():
    """Import migen and LiteX, or fail with the pip extra that provides them."""
    try:
        import litex  # noqa: F401
        import migen  # noqa: F401
    except ImportError as error:
        raise missing_extra("the FPGA tools need migen and LiteX", "fpga") from error


@contextlib.contextmanager
def quiet_litex(verbose: bool):
    """Silence LiteX's INFO logging (the SoC's register map and module tree) unless ``verbose``; the tools'
    own logs are kept in files in the build folder either way."""
    if verbose:
        yield
        return
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(previous)


@dataclass(frozen=True)
class Board:
    """A board the SoC can be built for.

    Attributes:
        name: the ``--board`` name.
        platform: ``"package.module:Class"`` of the litex-boards platform (its pin-out).
        device: the FPGA, in words.
        clock_name: the platform's oscillator pin name; clock_freq: its frequency in Hz.
        sys_clk_freq: the default system clock in Hz (made by the PLL when it differs from the oscillator).
        resources: what the device offers, by the names of the build report (``logic_cells``, ``bram``,
            ``spram``, ``dsp``).
        flash_command: how the bitstream is written to the board's configuration flash.
        synth_options: extra ``synth_ice40`` options (``-spram`` lets yosys put large single-port memories,
            such as the weight RAM, in the UP5K's 256-kbit SPRAM blocks instead of 4-kbit block RAM).
    """

    name: str
    platform: str
    device: str
    clock_name: str
    clock_freq: float
    sys_clk_freq: float
    resources: dict[str, int] = field(default_factory=dict)
    flash_command: str = ""
    synth_options: str = ""

    def make_platform(self):
        """A new litex-boards platform object for this board."""
        require_litex()
        module_name, class_name = self.platform.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise missing_extra(f"board {self.name!r} needs litex-boards", "fpga") from error
        return getattr(module, class_name)()


#: The boards ``sc-neurocore fpga build --board`` accepts.
BOARDS: dict[str, Board] = {
    "icebreaker": Board(
        name="icebreaker",
        platform="litex_boards.platforms.icebreaker:Platform",
        device="Lattice iCE40UP5K-SG48",
        clock_name="clk12",
        clock_freq=12e6,
        sys_clk_freq=24e6,
        # iCE40UP5K data sheet: 5280 logic cells, 30 EBR (4 kbit), 4 SPRAM (256 kbit), 8 SB_MAC16.
        resources={"logic_cells": 5280, "bram": 30, "spram": 4, "dsp": 8},
        flash_command="iceprog {bitstream}",
        synth_options="-spram",
    ),
}


def get_board(name: Any) -> Board:
    """The `Board` called ``name``; an unknown name is a ``ValueError`` listing the known ones."""
    as_choice(name, sorted(BOARDS), "board")
    return BOARDS[name]


def _migen():
    require_litex()
    import migen
    from litex.gen import LiteXModule
    return migen, LiteXModule


def board_crg(platform, board: Board, sys_clk_freq: float):
    """Clock and reset for a board: the oscillator, through the iCE40 PLL when ``sys_clk_freq`` differs,
    held in reset until a power-on counter has run out and the PLL has locked."""
    migen, LiteXModule = _migen()
    from migen.genlib.resetsync import AsyncResetSynchronizer

    class BoardCRG(LiteXModule):  # type: ignore[misc, valid-type]
        def __init__(self):
            self.cd_sys = migen.ClockDomain("sys")
            self.cd_por = migen.ClockDomain("por", reset_less=True)
            oscillator = platform.request(board.clock_name)
            # The iCE40's configuration leaves BRAM unusable for a few microseconds after start-up. The
            # counter runs on the system clock: a PLL's pad input may drive nothing but the PLL.
            por_count = migen.Signal(16, reset=2**16 - 1)
            por_done = migen.Signal()
            self.comb += [self.cd_por.clk.eq(migen.ClockSignal("sys")), por_done.eq(por_count == 0)]
            self.sync.por += migen.If(~por_done, por_count.eq(por_count - 1))
            if sys_clk_freq == board.clock_freq:
                self.comb += self.cd_sys.clk.eq(oscillator)
                self.specials += AsyncResetSynchronizer(self.cd_sys, ~por_done)
            else:
                from litex.soc.cores.clock import iCE40PLL
                self.pll = pll = iCE40PLL(primitive="SB_PLL40_PAD")
                pll.register_clkin(oscillator, board.clock_freq)
                pll.create_clkout(self.cd_sys, sys_clk_freq, with_reset=False)
                self.specials += AsyncResetSynchronizer(self.cd_sys, ~por_done | ~pll.locked)
            platform.add_period_constraint(self.cd_sys.clk, 1e9 / sys_clk_freq)

    return BoardCRG()


def make_soc(platform, crg, uart_phy, core, sys_clk_freq: float, *, bridge_clk_freq: float | None = None,
             ident: str = ""):
    """Assemble the CPU-less SoC: ``crg`` + ``UARTBone`` on ``uart_phy`` + ``core`` as ``explainer``.

    Args:
        platform: a LiteX platform (a board's or the simulator's).
        crg: the module that drives the ``sys`` clock domain.
        uart_phy: the UART's physical layer (``RS232PHY`` on a board, ``RS232PHYModel`` in simulation).
        core: the explainer core (a ``LiteXModule`` with ``AutoCSR``); its registers go on the CSR bus and,
            if it has a Wishbone ``bus`` with a ``bus_size``, that bus is mapped as region ``explainer``.
        sys_clk_freq: the system clock in Hz.
        bridge_clk_freq: the clock the bridge's idle timeout is computed from (it resets a half-received
            command after 100 ms); the simulation passes a larger value because it runs slower than real
            time in bursts. Defaults to ``sys_clk_freq``.
        ident: an identification string readable over the bus (empty saves the logic).

    Returns:
        The SoC (a ``SoCMini``), ready for ``Builder``.
    """
    require_litex()
    from litex.soc.cores.uart import UARTBone
    from litex.soc.integration.soc import SoCRegion
    from litex.soc.integration.soc_core import SoCMini

    class ExplainerSoC(SoCMini):
        def __init__(self):
            SoCMini.__init__(self, platform, sys_clk_freq, ident=ident, ident_version=False)
            self.crg = crg
            self.uartbone_phy = uart_phy
            self.uartbone = UARTBone(uart_phy, bridge_clk_freq or sys_clk_freq,
                                     address_width=self.bus.address_width)
            self.bus.add_master(name="uartbone", master=self.uartbone.wishbone)
            self.add_module(CORE_NAME, core)
            bus = getattr(core, "bus", None)
            if bus is not None and hasattr(core, "bus_size"):
                self.bus.add_slave(CORE_NAME, bus, SoCRegion(size=core.bus_size, cached=False))

    return ExplainerSoC()


def board_soc(board: Board | str, core, sys_clk_freq: float | None = None, baudrate: int = 115200):
    """The SoC for a board, ready for LiteX's ``Builder``.

    Args:
        board: a `Board` or its name (``"icebreaker"``).
        core: the explainer core.
        sys_clk_freq: the system clock in Hz (default: the board's).
        baudrate: the UART's baud rate.

    Returns:
        ``(soc, platform)``.

    Example:
        >>> from sc_neurocore.fpga.soc import board_soc  # doctest: +SKIP
        >>> soc, platform = board_soc("icebreaker", core)  # doctest: +SKIP
    """
    board = get_board(board) if isinstance(board, str) else board
    sys_clk_freq = float(sys_clk_freq or board.sys_clk_freq)
    as_positive_int(baudrate, "baudrate")
    platform = board.make_platform()
    from litex.soc.cores.uart import RS232PHY
    crg = board_crg(platform, board, sys_clk_freq)
    phy = RS232PHY(platform.request("serial"), sys_clk_freq, baudrate)
    return make_soc(platform, crg, phy, core, sys_clk_freq), platform
