"""Bitstream build of the whole-network explainer SoC, its checks and its JSON report.

`build_network_bitstream` refuses before the toolchain runs when the design cannot work:

* **fit**: block RAM and DSPs counted from the core's memories and lanes (`estimate_resources`),
  "does not fit: needs 45 of 30 BRAM";
* **saturation**: a membrane that could leave its width or a trace that could saturate
  (`check_saturation`);
* **link**: the core must take a timestep's beat faster than the UART can deliver the next one
  (`check_link`), or the bridge would drop bytes.

Then yosys and nextpnr run through LiteX **timing-strict**, with a progress line every few seconds, and
`out_dir` receives `explainer.bin`, `csr.csv`, `report.json` and `report.md`. The report's numbers come
from nextpnr's JSON report (cells, Fmax), the synthesised netlist (how every `SB_MAC16` is registered),
the core (cycles) and `network_driver.link_model` (host time), never from this file.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..atomic import atomic_write
from .build import (BUILD_NAME, BuildError, _failure_reason, _publish, parse_nextpnr_report, tool_version,
                    write_report_markdown)
from .network_core import DEFAULT_LANES, check_core, cycles_per_step, cycles_to_done, layout
from .network_driver import link_model
from .network_reference import QuantizedNetwork
from .soc import Board, get_board, quiet_litex

#: Bits of one SB_RAM40_4K and its (width, depth) configurations.
BRAM_CONFIGS = ((16, 256), (8, 512), (4, 1024), (2, 2048))
#: The DSP configuration the build verifies in the netlist (every port a register port).
REGISTERED_DSP = {"A_REG": 1, "B_REG": 1, "TOPOUTPUT_SELECT": 1, "BOTOUTPUT_SELECT": 1}  # checked in the netlist


def bram_blocks(width: int, depth: int) -> int:
    """SB_RAM40_4K blocks for a `width x depth` memory (the cheapest configuration).

    Example:
        >>> bram_blocks(16, 400), bram_blocks(32, 94)
        (2, 2)
    """
    return min(-(-width // w) * -(-depth // d) for w, d in BRAM_CONFIGS)


def estimate_resources(network: QuantizedNetwork, lanes: int) -> dict[str, int]:
    """Block RAM and DSPs of `NetworkExplainer(network, lanes)`: weight ROM + state RAM per lane, results RAM.

    Example:
        >>> from sc_neurocore.data import pretrained_network
        >>> from sc_neurocore.fpga.network_reference import quantize_network
        >>> estimate_resources(quantize_network(pretrained_network(8), n_steps=25), 8)
        {'bram': 26, 'dsp': 8}
    """
    sizes = layout(network.spec, lanes)
    per_lane = bram_blocks(16, sizes["weight_depth"]) + bram_blocks(16, sizes["state_depth"])
    return {"bram": lanes * per_lane + bram_blocks(32, sizes["results_depth"]), "dsp": lanes}


def check_fit(network: QuantizedNetwork, lanes: int, board: Board) -> dict[str, int]:
    """Raise `BuildError("does not fit: needs N of M BRAM")` before any tool runs; returns the estimate."""
    needed = estimate_resources(network, lanes)
    for name, label in (("bram", "BRAM"), ("dsp", "DSP")):
        if needed[name] > board.resources[name]:
            raise BuildError(f"does not fit: needs {needed[name]} of {board.resources[name]} {label} on the "
                             f"{board.name} ({board.device}); use fewer lanes or a smaller network")
    return needed


def check_link(network: QuantizedNetwork, lanes: int, sys_clk_freq: float, baudrate: int) -> None:
    """Refuse a baud rate at which the UART could deliver a beat before the core has taken the last one."""
    beat_bits = network.spec.spike_words * 4 * 10  # 8N1: 10 bits per byte
    available = beat_bits * sys_clk_freq / baudrate
    needed = cycles_per_step(network.spec, lanes)
    if needed >= available:
        raise ValueError(f"baudrate: at {baudrate} baud a timestep arrives every {available:.0f} cycles but the core "
                         f"needs {needed}; lower the baud rate, raise the clock or use more lanes")


@dataclass(frozen=True)
class NetworkBuildReport:
    """What a network build measured (see `build_network_bitstream`)."""

    board: str
    device: str
    layers: list
    n_steps: int
    lanes: int
    top_k: int
    spec: dict
    sys_clk_mhz: float
    fmax_mhz: float
    timing_met: bool
    dsp_ports_registered: bool
    timed_paths: str
    logic_cells: int
    logic_cells_available: int
    bram: int
    bram_available: int
    spram: int
    spram_available: int
    dsp: int
    dsp_available: int
    cycles_per_timestep: int
    cycles_to_done: int
    chip_us_per_sample: float
    baudrate: int
    link: dict
    accuracy: dict | None
    seed: int
    yosys: str
    nextpnr: str
    bitstream: str

    def to_json(self) -> str:
        """The report as indented JSON."""
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> NetworkBuildReport:
        """Read back what `to_json` wrote."""
        return cls(**json.loads(text))

    def to_markdown(self) -> str:
        """A table of the measured numbers (what `docs/fpga.md` shows)."""
        def share(used: int, available: int) -> str:
            return f"{used} / {available} ({100.0 * used / available:.0f}%)"

        link = self.link
        rows = [
            ("Board", f"{self.board} ({self.device})"),
            ("Network", f"{'-'.join(str(n) for n in self.layers)} LIF, T={self.n_steps}, {self.lanes} lanes, "
                        f"top-{self.top_k}"),
            ("Logic cells", share(self.logic_cells, self.logic_cells_available)),
            ("Block RAM (4 kbit)", share(self.bram, self.bram_available)),
            ("SPRAM (256 kbit)", share(self.spram, self.spram_available)),
            ("DSP (SB_MAC16)", share(self.dsp, self.dsp_available)),
            ("System clock", f"{self.sys_clk_mhz:.2f} MHz"),
            ("Fmax (nextpnr)", f"{self.fmax_mhz:.2f} MHz ({'met' if self.timing_met else 'MISSED'}, timing-strict)"),
            ("DSP ports", "all registered (A_REG, B_REG, output register): timed by nextpnr"
             if self.dsp_ports_registered else "NOT all registered"),
            ("Cycles per timestep", f"{self.cycles_per_timestep}"),
            ("Cycles from the last timestep to done", f"{self.cycles_to_done}"),
            ("Chip time per sample", f"{self.chip_us_per_sample:.1f} us"),
            ("Host time per explanation (modelled)",
             f"{link['host_ms']:.2f} ms at {self.baudrate} baud: {link['bytes_to_chip']} bytes in, "
             f"{link['bytes_from_chip']} bytes out, {link['round_trips']} round trip at "
             f"{link['latency_ms']:g} ms latency"),
        ]
        if self.accuracy is not None:
            acc = self.accuracy
            rows.append(("Digits test accuracy", f"float {100 * acc['float']:.2f}%, integer "
                                                 f"{100 * acc['integer']:.2f}% ({acc['samples']} samples)"))
        rows.append(("Toolchain", f"{self.yosys}; {self.nextpnr}; nextpnr seed {self.seed}"))
        lines = ["| Quantity | Measured |", "|---|---|"] + [f"| {name} | {value} |" for name, value in rows]
        return "\n".join(lines) + "\n"


def dsp_registration(netlist_json: Path) -> tuple[int, bool]:
    """`(count, all_registered)` of the `SB_MAC16` cells in yosys' JSON netlist."""
    design = json.loads(netlist_json.read_text())
    cells = [cell for module in design.get("modules", {}).values() for cell in module.get("cells", {}).values()
             if cell.get("type") == "SB_MAC16"]

    def value(text) -> int:
        return int(text, 2) if isinstance(text, str) else int(text)

    registered = all(value(cell["parameters"].get(name, "0")) == want
                     for cell in cells for name, want in REGISTERED_DSP.items())
    return len(cells), bool(cells) and registered


class _Progress:
    """Print the running tool and the elapsed time every `interval` seconds (to stderr)."""

    def __init__(self, gateware: Path, interval: float = 10.0, stream=None) -> None:
        self.gateware, self.interval, self.stream = gateware, interval, stream or sys.stderr
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _stage(self) -> str:
        if (self.gateware / f"{BUILD_NAME}.bin").exists():
            return "icepack"
        if (self.gateware / f"{BUILD_NAME}.json").exists():
            return "nextpnr (place and route)"
        return "yosys (synthesis)"

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.wait(self.interval):
            print(f"sc-neurocore fpga build: {self._stage()} running, {time.monotonic() - start:.0f} s",
                  file=self.stream, flush=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


def build_network_bitstream(out_dir: str | Path, network: QuantizedNetwork, *, lanes: int = DEFAULT_LANES,
                            board: str | Board = "icebreaker", sys_clk_freq: float | None = None,
                            baudrate: int = 2_000_000, seed: int = 1, accuracy: dict | None = None,
                            report_md: str | Path | None = None, progress: bool = False,
                            verbose: bool = False) -> NetworkBuildReport:
    """Check, build and report the whole-network explainer SoC for a board.

    Args:
        out_dir: where the bitstream, `csr.csv` and the reports go.
        network: the `QuantizedNetwork` (its weights go into the bitstream).
        lanes: MAC lanes (1 to 8; default 6).
        board: a board name or `Board`.
        sys_clk_freq: the system clock in Hz (default: the board's).
        baudrate: the UART's baud rate.
        seed: nextpnr's placement seed.
        accuracy: optional accuracy figures to put in the report (see `network_reference.integer_accuracy`).
        report_md: also write the markdown table here (between the report markers of a document).
        progress: print the running tool every 10 s.
        verbose: print LiteX's and the tools' logs.

    Returns:
        The `NetworkBuildReport` (also in `out_dir/report.json`).

    Raises:
        BuildError: does not fit, or misses timing.
        ValueError: saturation, or a baud rate the core cannot keep up with.

    Example:
        >>> report = build_network_bitstream("build/net", network)  # doctest: +SKIP
    """
    board = get_board(board) if not isinstance(board, Board) else board
    check_core(network, lanes)  # includes the saturation check
    sys_clk_freq = float(sys_clk_freq or board.sys_clk_freq)
    if not isinstance(baudrate, int) or isinstance(baudrate, bool) or baudrate < 1:
        raise ValueError(f"baudrate: expected a positive int, got {baudrate!r}")
    check_link(network, lanes, sys_clk_freq, baudrate)
    check_fit(network, lanes, board)
    for tool in ("yosys", "nextpnr-ice40", "icepack"):
        if shutil.which(tool) is None:
            raise FileNotFoundError(f"{tool} is not installed; install the toolchain with: "
                                    "sudo bash scripts/install-toolchain.sh")
    from litex.soc.integration.builder import Builder

    from .network_top import StreamingNetworkExplainer
    from .soc import board_soc

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scratch = (out / "build").resolve()
    top = StreamingNetworkExplainer(network, lanes)
    with quiet_litex(verbose):
        soc, platform = board_soc(board, top, sys_clk_freq, baudrate=baudrate)
    gateware = scratch / "gateware"
    report_json, pnr_log = gateware / f"{BUILD_NAME}_report.json", gateware / f"{BUILD_NAME}_nextpnr.log"
    for stale in (report_json, pnr_log, gateware / f"{BUILD_NAME}.json", gateware / f"{BUILD_NAME}.bin"):
        stale.unlink(missing_ok=True)
    platform.toolchain._pnr_opts += f" --report {report_json.name} --log {pnr_log.name}"
    if not verbose:
        platform.toolchain._pnr_opts += " --quiet"
    # The multipliers are SB_MAC16 instances with their registers set; yosys 0.23's -dsp (ice40_dsp)
    # would rewrite them, and nothing else in the SoC multiplies.
    platform.toolchain._synth_opts = platform.toolchain._synth_opts.replace("-dsp", "").strip()
    builder = Builder(soc, output_dir=str(scratch), compile_software=False, csr_csv=str(scratch / "csr.csv"))
    try:
        with quiet_litex(verbose), (_Progress(gateware) if progress else _nothing()):
            builder.build(build_name=BUILD_NAME, timingstrict=True, seed=seed, quiet=not verbose)
    except OSError as error:
        raise BuildError(f"the {board.name} build at {sys_clk_freq / 1e6:.2f} MHz failed:\n"
                         f"{_failure_reason(pnr_log)}") from error
    measured = parse_nextpnr_report(report_json)
    resources = measured["resources"]
    n_dsp, registered = dsp_registration(gateware / f"{BUILD_NAME}.json")
    spec = network.spec
    step, finish = cycles_per_step(spec, lanes), cycles_to_done(spec, lanes)
    chip_cycles = spec.n_steps * step + finish
    report = NetworkBuildReport(
        board=board.name, device=board.device, layers=list(spec.layers), n_steps=spec.n_steps, lanes=lanes,
        top_k=spec.top_k, spec=spec.to_dict(), sys_clk_mhz=round(sys_clk_freq / 1e6, 4),
        fmax_mhz=round(measured["fmax_mhz"], 2), timing_met=measured["fmax_mhz"] >= measured["constraint_mhz"],
        dsp_ports_registered=registered and n_dsp == lanes,
        timed_paths=("every path between registers, block RAM and DSP ports on the sys clock: each SB_MAC16 "
                     "has A_REG = B_REG = 1 and its output register (OUTPUT_SELECT = 1), so none of its ports is "
                     "combinational"
                     if registered else "some SB_MAC16 port is combinational: its path is not timed"),
        logic_cells=resources["logic_cells"][0], logic_cells_available=resources["logic_cells"][1],
        bram=resources["bram"][0], bram_available=resources["bram"][1],
        spram=resources["spram"][0], spram_available=resources["spram"][1],
        dsp=resources["dsp"][0], dsp_available=resources["dsp"][1],
        cycles_per_timestep=step, cycles_to_done=finish,
        chip_us_per_sample=round(chip_cycles / sys_clk_freq * 1e6, 3), baudrate=baudrate,
        link=link_model(spec, baudrate, sys_clk_freq=sys_clk_freq, lanes=lanes), accuracy=accuracy, seed=seed,
        yosys=tool_version(["yosys", "-V"]), nextpnr=tool_version(["nextpnr-ice40", "--version"]),
        bitstream=f"{BUILD_NAME}.bin",
    )
    _publish(gateware / f"{BUILD_NAME}.bin", out / f"{BUILD_NAME}.bin")
    _publish(scratch / "csr.csv", out / "csr.csv")
    with atomic_write(out / "report.json") as handle:
        handle.write(report.to_json())
    write_report_markdown(report, out / "report.md")  # type: ignore[arg-type]
    if report_md is not None:
        write_report_markdown(report, report_md)  # type: ignore[arg-type]
    return report


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        return None
