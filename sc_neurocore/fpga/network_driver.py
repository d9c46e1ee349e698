r"""Host driver of the whole-network explainer: stream a sample over UART, read back class and top-k.

`NetworkChip` speaks LiteX's UART-to-Wishbone bridge protocol itself (a command byte, a length byte, a
32-bit word address, then 32-bit big-endian words) on any pyserial port: a board's `/dev/ttyUSB1` at a
configurable baud rate, or `socket://localhost:PORT` of the Verilator simulation. One explanation is
one host write and one read back:

1. a CSR write of `control.start`;
2. fixed-address burst writes of the `T * ceil(N / 32)` spike words into the window (the chip streams
   them into the core; there is no spike RAM);
3. one incrementing burst read of window words `0 .. 2k` (status with the class, the top-k inputs and
   their importance) -- or of the whole window with `full=True`, the importance of every input.

The window holds the read until the chip is done, so the three parts go out in one buffer and the
answer comes back in one piece: one round trip per explanation. `link_model` counts the same bytes.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from typing import Self

import torch
from torch import Tensor

from ..extras import missing_extra
from .network_spec import NetworkSpec

CMD_WRITE_INCR, CMD_READ_INCR, CMD_WRITE_FIXED = 0x01, 0x02, 0x03
#: Words per bridge command (its length field is one byte).
MAX_BURST = 255
#: Bits per byte on the wire (8N1).
BITS_PER_BYTE = 10
#: The core's CSR prefix in `csr.csv` (`explainer` in the SoC, `core` in the wrapper).
PREFIX = "explainer_core_"
REGION = "explainer"


def _commands(n_words: int) -> int:
    return -(-n_words // MAX_BURST) if n_words else 0


def link_model(spec: NetworkSpec, baudrate: int, *, sys_clk_freq: float = 24e6, lanes: int = 5,
               latency_s: float = 0.001, full: bool = False) -> dict:
    """The modelled host time of one explanation: bytes on the wire, chip time, one latency per round trip.

    Args:
        spec: the network's `NetworkSpec`.
        baudrate: the UART's baud rate (8N1: 10 bits per byte).
        sys_clk_freq: the chip's clock, for the compute time after the last timestep.
        lanes: the core's lanes.
        latency_s: the USB round-trip latency (an FTDI's latency timer at its 1 ms minimum).
        full: also read the whole importance vector.

    Returns:
        `{"bytes_to_chip", "bytes_from_chip", "round_trips", "wire_ms", "chip_ms", "latency_ms", "host_ms"}`.

    Example:
        >>> spec = NetworkSpec(layers=(64, 32, 10), n_steps=25)
        >>> link_model(spec, 2_000_000)["bytes_to_chip"]
        222
    """
    from .network_core import cycles_per_step, cycles_to_done, layout

    spike_words = spec.n_steps * spec.spike_words
    read_words = 1 + 2 * spec.top_k if not full else layout(spec, lanes)["window_words"]
    to_chip = (6 + 4) + 6 * _commands(spike_words) + 4 * spike_words + 6 * _commands(read_words)
    from_chip = 4 * read_words
    wire = (to_chip + from_chip) * BITS_PER_BYTE / baudrate
    chip = (cycles_per_step(spec, lanes) + cycles_to_done(spec, lanes)) / sys_clk_freq
    host = wire + chip + latency_s
    return {"bytes_to_chip": to_chip, "bytes_from_chip": from_chip, "round_trips": 1,
            "wire_ms": round(wire * 1e3, 4), "chip_ms": round(chip * 1e3, 4), "latency_ms": latency_s * 1e3,
            "host_ms": round(host * 1e3, 4)}


@dataclass(frozen=True)
class ChipExplanation:
    """What the chip returned for one sample.

    Attributes:
        predicted: the class.
        top_indices, top_scores: the top-k inputs by `|importance|` and their signed importance (`int64`).
        counts, importance: the output spike counts and every input's importance (`full=True` only).
        status: the raw status word.
    """

    predicted: int
    top_indices: Tensor
    top_scores: Tensor
    counts: Tensor | None
    importance: Tensor | None
    status: int


class HardwareError(RuntimeError):
    """The chip answered something impossible (a wrong bitstream, or a corrupted link)."""


def _signed(word: int) -> int:
    return word - (1 << 32) if word & (1 << 31) else word


def read_csr_csv(path) -> tuple[dict[str, int], dict[str, int]]:
    """`({register: byte address}, {region: base})` from LiteX's `csr.csv`."""
    registers, regions = {}, {}
    with open(path, newline="") as handle:
        for row in csv.reader(handle):
            if not row or row[0].startswith("#"):
                continue
            if row[0] == "csr_register":
                registers[row[1]] = int(row[2], 0)
            elif row[0] == "memory_region":
                regions[row[1]] = int(row[2], 0)
    return registers, regions


class NetworkChip:
    """A board (or the simulation) running the network explainer SoC.

    Args:
        port: a pyserial port or URL (`"/dev/ttyUSB1"`, `"socket://localhost:PORT"`).
        csr_csv: the `csr.csv` the build wrote.
        spec: the `NetworkSpec` the bitstream was built from (checked against the chip's constants).
        baudrate: the UART's baud rate (the bitstream's; ignored by a socket).
        timeout: seconds to wait for an answer.

    Example:
        >>> with NetworkChip("/dev/ttyUSB1", csr_csv="build/net/csr.csv", spec=spec) as chip:  # doctest: +SKIP
        ...     explanation = chip.explain(spikes)
    """

    def __init__(self, port: str, *, csr_csv, spec: NetworkSpec, baudrate: int = 2_000_000,
                 timeout: float = 5.0) -> None:
        if not isinstance(spec, NetworkSpec):
            raise TypeError(f"spec: expected a NetworkSpec, got {type(spec).__name__}")
        if spec.current_based:
            raise ValueError(f"spec: layer {spec.current_based[0]} is current-based, which no chip runs (the core "
                             "refuses it); run it with network_reference.run_network on the host")
        if not isinstance(baudrate, int) or isinstance(baudrate, bool) or baudrate < 1:
            raise ValueError(f"baudrate: expected a positive int, got {baudrate!r}")
        registers, regions = read_csr_csv(csr_csv)
        if f"{PREFIX}control" not in registers or REGION not in regions:
            raise ValueError(f"csr_csv: {str(csr_csv)!r} is not the network explainer SoC's register map")
        try:
            import serial
        except ImportError as error:
            raise missing_extra("NetworkChip needs pyserial", "fpga") from error
        self.spec, self.baudrate, self.timeout = spec, baudrate, float(timeout)
        self._registers, self._window = registers, regions[REGION]
        self._port = serial.serial_for_url(port, baudrate=baudrate, timeout=self.timeout)
        try:
            self._check_constants()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Release the port (safe to call twice)."""
        port = getattr(self, "_port", None)
        if port is not None:
            port.close()
            self._port = None

    # The bridge protocol.
    @staticmethod
    def _command(cmd: int, address: int, words: list[int] | None = None, length: int | None = None) -> bytes:
        count = len(words) if words is not None else int(length or 0)
        body = bytes([cmd, count]) + (address // 4).to_bytes(4, "big")
        if words is not None:
            body += b"".join((int(w) & 0xFFFFFFFF).to_bytes(4, "big") for w in words)
        return body

    def _receive(self, n_words: int) -> list[int]:
        data = bytearray()
        deadline = time.monotonic() + self.timeout
        while len(data) < 4 * n_words:
            chunk = self._port.read(4 * n_words - len(data))
            data += chunk
            if not chunk and time.monotonic() > deadline:
                raise TimeoutError(f"the chip sent {len(data)} of {4 * n_words} bytes within {self.timeout} s")
        return [int.from_bytes(data[4 * i:4 * i + 4], "big") for i in range(n_words)]

    def _reads(self, address: int, n_words: int) -> bytes:
        return b"".join(self._command(CMD_READ_INCR, address + 4 * start, length=min(MAX_BURST, n_words - start))
                        for start in range(0, n_words, MAX_BURST))

    def read_csr(self, name: str) -> int:
        """One CSR of the core (`name` without the prefix)."""
        self._port.write(self._reads(self._registers[PREFIX + name], 1))
        return self._receive(1)[0]

    def _check_constants(self) -> None:
        spec = self.spec
        geometry, timing = self.read_csr("geometry"), self.read_csr("timing")
        theirs = (geometry & 0xFFF, (geometry >> 12) & 0xFF, (geometry >> 20) & 0xFF, timing & 0xFFFF)
        ours = (spec.n_inputs, spec.n_outputs, spec.top_k, spec.n_steps)
        if theirs != ours:
            raise ValueError(f"spec: the chip runs (n_inputs, n_outputs, top_k, n_steps) = {theirs}, got {ours}")
        self.lanes = (geometry >> 28) & 0xF
        self.cycles_per_step = timing >> 16

    @property
    def cycles_last_sample(self) -> int:
        """Clock cycles from `start` to `done` of the last sample (the `cycles` CSR)."""
        return self.read_csr("cycles")

    def explain(self, spikes, full: bool = False) -> ChipExplanation:
        """Stream one `(T, N)` 0/1 sample and read back the class and the top-k (and all importance if `full`).

        Raises:
            ValueError: the spikes do not have the chip's shape or are not 0/1.
            HardwareError: the chip did not finish, or flagged an error.
        """
        from .reference import as_spike_bits

        spec = self.spec
        bits = as_spike_bits(torch.as_tensor(spikes), "spikes")
        if tuple(bits.shape) != (spec.n_steps, spec.n_inputs):
            raise ValueError(f"spikes: the chip runs ({spec.n_steps}, {spec.n_inputs}) samples, got {tuple(bits.shape)}")
        words = spike_words(bits)
        k, c = spec.top_k, spec.n_outputs
        n_read = 1 + 2 * k + (c + spec.n_inputs if full else 0)
        message = self._command(CMD_WRITE_INCR, self._registers[PREFIX + "control"], [1])
        for start in range(0, len(words), MAX_BURST):
            message += self._command(CMD_WRITE_FIXED, self._window, words[start:start + MAX_BURST])
        message += self._reads(self._window, n_read)
        self._port.write(message)
        window = self._receive(n_read)
        status = window[0]
        if not status & 1 or status & 0b1100 or status >> 16 != spec.n_steps:
            raise HardwareError(f"the chip's status is {status:#010x}: expected done, no error, {spec.n_steps} steps")
        predicted = (status >> 8) & 0xFF
        top_indices = torch.tensor(window[1:1 + k], dtype=torch.int64)
        top_scores = torch.tensor([_signed(w) for w in window[1 + k:1 + 2 * k]], dtype=torch.int64)
        counts = importance = None
        if full:
            counts = torch.tensor(window[1 + 2 * k:1 + 2 * k + c], dtype=torch.int64)
            importance = torch.tensor([_signed(w) for w in window[1 + 2 * k + c:]], dtype=torch.int64)
        return ChipExplanation(predicted, top_indices, top_scores, counts, importance, status)

    def read_window(self, word: int) -> int:
        """One word of the results window (a word past it returns 0 and sets the status' read_error)."""
        self._port.write(self._reads(self._window + 4 * int(word), 1))
        return self._receive(1)[0]


def spike_words(bits: Tensor) -> list[int]:
    """`(T, N)` 0/1 -> the `T * ceil(N / 32)` stream words (input `i` in bit `i mod 32` of word `i div 32`).

    Example:
        >>> spike_words(torch.tensor([[1, 0, 1], [0, 1, 0]]))
        [5, 2]
    """
    n_steps, n_inputs = bits.shape
    per_step = -(-n_inputs // 32)
    padded = torch.zeros(n_steps, per_step * 32, dtype=torch.int64)
    padded[:, :n_inputs] = bits.to(torch.int64)
    powers = torch.ones(32, dtype=torch.int64) << torch.arange(32)
    return (padded.reshape(n_steps, per_step, 32) * powers).sum(-1).reshape(-1).tolist()
