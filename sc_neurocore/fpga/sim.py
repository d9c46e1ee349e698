"""The whole SoC in Verilator, reachable over TCP exactly as a board is reachable over its UART.

`build_simulation` compiles the same `make_soc` SoC the bitstream
contains, with two changes: the clock comes from the simulator and the UART's physical layer is LiteX's
``serial2tcp`` module (bytes in, bytes out, over a TCP socket). `Simulation` starts the compiled
model and a ``litex_server`` bridged to it, so a host program -- `FpgaExplainer`,
``litex_cli``, a ``RemoteClient`` -- drives the simulated chip as it drives a real one:

    >>> from sc_neurocore.fpga.sim import build_simulation, Simulation  # doctest: +SKIP
    >>> build = build_simulation(core, "build/sim")                      # doctest: +SKIP
    >>> with Simulation(build) as simulation:                            # doctest: +SKIP
    ...     explainer = FpgaExplainer(url=simulation.url, csr_csv=build.csr_csv)

LiteX's own ``litex_sim`` command is not used: it imports LiteDRAM and LiteEth, which are not on PyPI.

Two properties of the simulated link are handled here rather than in the driver: ``serial2tcp`` listens
on every interface, so this module only ever connects to ``localhost`` and picks free ports; and the
UART bridge resets a half-received command after 100 ms of *simulated* time, which the simulation can
spend while waiting for the next TCP segment, so the simulated bridge's timeout is computed from a
clock ``BRIDGE_CLK_SCALE`` times faster than the simulated one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..atomic import atomic_write
from ..extras import missing_tool
from .soc import make_soc, quiet_litex, require_litex

#: The simulated system clock (it only scales the bridge's timeout; the model runs as fast as it can).
SIM_CLK_FREQ = 1_000_000
#: The bridge's 100 ms idle timeout then lasts this many times longer in simulated cycles.
BRIDGE_CLK_SCALE = 1000

def _sim_io():
    """The simulator's pins: a clock and a byte stream each way for ``serial2tcp``."""
    from litex.build.generic_platform import Pins, Subsignal
    return [
        ("sys_clk", 0, Pins(1)),
        ("sys_rst", 0, Pins(1)),
        ("serial", 0,
            Subsignal("source_valid", Pins(1)), Subsignal("source_ready", Pins(1)), Subsignal("source_data", Pins(8)),
            Subsignal("sink_valid", Pins(1)), Subsignal("sink_ready", Pins(1)), Subsignal("sink_data", Pins(8))),
    ]


def sim_soc(core):
    """The SoC of `make_soc` on LiteX's ``SimPlatform``: ``(soc, platform)``."""
    require_litex()
    from litex.build.sim import SimPlatform
    from litex.soc.cores.uart import RS232PHYModel
    from migen.genlib.io import CRG

    platform = SimPlatform("SIM", _sim_io())
    crg = CRG(platform.request("sys_clk"))
    phy = RS232PHYModel(platform.request("serial"))
    soc = make_soc(platform, crg, phy, core, SIM_CLK_FREQ, bridge_clk_freq=SIM_CLK_FREQ * BRIDGE_CLK_SCALE)
    return soc, platform


@dataclass(frozen=True)
class SimulationBuild:
    """A compiled simulation.

    Attributes:
        directory: where the model lives (``obj_dir/Vsim`` and the ``serial2tcp`` module under it).
        csr_csv: the SoC's register map, for ``FpgaExplainer(csr_csv=...)``.
    """

    directory: Path
    csr_csv: Path

    @property
    def executable(self) -> Path:
        return self.directory / "obj_dir" / "Vsim"


def build_simulation(core, out_dir: str | os.PathLike, *, opt_level: str = "O1", jobs: int = 2,
                     verbose: bool = False) -> SimulationBuild:
    """Generate the SoC's Verilog and compile it with Verilator (minutes; do it once per session).

    Args:
        core: the explainer core to put in the SoC.
        out_dir: the build folder (created; its ``gateware/`` is the toolchain's scratch space).
        opt_level: the C++ optimisation level of the model (``O1`` compiles fast and runs well).
        jobs: parallel compiler jobs.
        verbose: print LiteX's log and the compiler's output.

    Returns:
        A `SimulationBuild`.

    Raises:
        ValueError: a core whose multipliers are `SB_MAC16` instances (Verilator has no model of them).
    """
    require_litex()
    inner = getattr(core, "core", core)  # a StreamingNetworkExplainer wraps its NetworkExplainer
    if getattr(inner, "dsp", "behavioral") == "sb_mac16":
        raise ValueError("core: Verilator cannot run SB_MAC16 instances; build the core with dsp='behavioral' (the "
                         "same register stages in plain logic)")
    for tool in ("verilator", "make"):
        if shutil.which(tool) is None:
            raise missing_tool(tool)
    from litex.build.sim.config import SimConfig
    from litex.soc.integration.builder import Builder

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with quiet_litex(verbose):
        soc, _ = sim_soc(core)
    sim_config = SimConfig()
    sim_config.add_clocker("sys_clk", freq_hz=SIM_CLK_FREQ)
    # The port is a placeholder: Simulation writes a free one into sim_config.js before each start.
    sim_config.add_module("serial2tcp", "serial", args={"port": 1})
    builder = Builder(soc, output_dir=str(out), compile_software=False, csr_csv=str(out / "csr.csv"))
    # run=False writes the Verilog, the C++ harness and the build script without running the model;
    # the script is then run here so that a failure raises with the compiler's own message.
    with quiet_litex(verbose):
        builder.build(sim_config=sim_config, run=False, opt_level=opt_level, jobs=jobs, interactive=False)
    gateware = Path(builder.gateware_dir)
    result = subprocess.run(["bash", "build_sim.sh"], cwd=gateware, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if verbose:
        print(result.stdout)
    if result.returncode != 0:
        errors = [line for line in result.stdout.splitlines() if "error" in line.lower()]
        raise RuntimeError("the Verilator build failed:\n" + "\n".join(errors[-30:] or result.stdout.splitlines()[-30:]))
    return SimulationBuild(gateware, out / "csr.csv")


def free_port() -> int:
    """A TCP port free on every interface (``serial2tcp`` binds to all of them)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    """Whether some process listens on TCP ``port``, read from the kernel's table without connecting
    (a probe connection would take ``serial2tcp``'s only session)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            with open(table) as entries:
                next(entries)
                for entry in entries:
                    fields = entry.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        return True
    return False


def _wait_listening(port: int, process: subprocess.Popen, what: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not _listening(port):
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} before listening on port {port}; "
                               f"its log:\n{log.read_text(errors='replace')[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not listen on port {port} within {timeout} s")
        time.sleep(0.05)


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when its parent dies, so a killed test run does not
    leave a simulator spinning (``close()`` is the normal way out; this covers SIGKILL of the parent)."""
    with contextlib.suppress(Exception):
        import ctypes
        import signal
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


_CHILD_SETUP = _die_with_parent if sys.platform.startswith("linux") else None


def _stop(process: subprocess.Popen | None) -> None:
    """End a process this module started: politely, then for good."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


class Simulation:
    """A running simulated SoC and a ``litex_server`` in front of it (a context manager).

    Args:
        build: a `SimulationBuild`.
        with_server: also start ``litex_server`` in front of the model (``False``: only the model, for a
            client that speaks the UART bridge protocol itself, such as ``FpgaExplainer(uart_port=...)``).
        start_timeout: seconds to wait for each process to listen.

    Attributes:
        url: ``"localhost:PORT"`` of the ``litex_server``, for ``FpgaExplainer(url=...)`` (empty without one).
        uart_port: ``"socket://localhost:PORT"`` of the simulated UART itself, for tools that speak the
            bridge protocol directly (only one client at a time: the server holds it while running).

    Example:
        >>> with Simulation(build) as simulation:  # doctest: +SKIP
        ...     print(simulation.url)
    """

    def __init__(self, build: SimulationBuild, with_server: bool = True, start_timeout: float = 60.0) -> None:
        self.build = build
        self.with_server = with_server
        self.start_timeout = start_timeout
        self._model: subprocess.Popen | None = None
        self._server: subprocess.Popen | None = None
        self._logs: list = []
        self.url = ""
        self.uart_port = ""

    def __enter__(self) -> "Simulation":
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _start(self) -> None:
        directory = self.build.directory
        if not self.build.executable.exists():
            raise FileNotFoundError(f"build: {self.build.executable} does not exist; run build_simulation first")
        uart_port, self._model = self._launch("the Verilator model", directory / "model.log",
                                              lambda port: self._model_command(port))
        self.uart_port = f"socket://localhost:{uart_port}"
        if not self.with_server:
            return
        server_port, self._server = self._launch("litex_server", directory / "litex_server.log", lambda port: [
            sys.executable, "-u", "-m", "litex.tools.litex_server", "--uart", "--uart-port", self.uart_port,
            "--bind-ip", "localhost", "--bind-port", str(port)])
        self.url = f"localhost:{server_port}"

    def _model_command(self, port: int) -> list[str]:
        """Write ``port`` into the model's ``sim_config.js`` (read at start-up) and return its command."""
        config_path = self.build.directory / "sim_config.js"
        modules = json.loads(config_path.read_text())
        for module in modules:
            if module.get("module") == "serial2tcp":
                module["args"]["port"] = port
        with atomic_write(config_path) as handle:
            json.dump(modules, handle, indent=4)
        return [str(self.build.executable)]

    def _launch(self, what: str, log_path: Path, command, attempts: int = 3) -> tuple[int, subprocess.Popen]:
        """Start ``command(port)`` on a free port until it listens; another program may take the port between
        the probe and the bind, so a failed bind is retried on a new port."""
        for attempt in range(attempts):
            port = free_port()
            log = open(log_path, "w")
            self._logs.append(log)
            process = subprocess.Popen(command(port), cwd=self.build.directory, stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT, preexec_fn=_CHILD_SETUP)
            try:
                _wait_listening(port, process, what, log_path, self.start_timeout)
                return port, process
            except RuntimeError:
                _stop(process)
                if attempt == attempts - 1:
                    raise
            except BaseException:
                _stop(process)
                raise
        raise AssertionError("unreachable")  # the loop returns or raises

    def close(self) -> None:
        """Stop the server, then the model; close the logs. Safe to call twice."""
        _stop(self._server)
        _stop(self._model)
        self._server = self._model = None
        for log in self._logs:
            log.close()
        self._logs = []
