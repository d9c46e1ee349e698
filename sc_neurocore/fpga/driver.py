"""Host driver: explanations computed by the FPGA, returned as the same results as ``SpikeAttributor``.

`FpgaExplainer` talks to the explainer SoC's Wishbone bus through LiteX's host tools -- a
``RemoteClient`` connected to a running ``litex_server`` (``url="localhost:1234"``), or LiteX's own UART
bridge client on a serial port (``uart_port="/dev/ttyUSB1"``) -- and follows the register protocol of
`TraceExplainer` (its ``ModuleDoc`` is the contract):

1. read the core's sizes and fixed-point format from its constant registers;
2. load the weights once (quantised with the chip's `FixedPointSpec`);
3. per sample: load the spike train, start a run, wait for ``done``, read ``trace[i] * w[i, c]`` for every
   input ``i`` of the explained output neuron ``c``.

The chip keeps one trace per input, so what it returns is per-input importance. `FpgaExplainer.attribute`
spreads each input's hardware importance over that input's spikes in the exact integer
proportions of `spike_contributions` (computed from the spikes on the
host), and returns an `AttributionResult`: ``spatial_importance()``
is the hardware's importance exactly, and when the chip agrees with the reference the whole map equals
``SpikeAttributor(..., fixed_point=spec)``'s. `FpgaExplainer.importance` gives the raw integers.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import torch
from torch import Tensor

from ..extras import missing_extra
from ..inputs import as_spikes, as_targets, as_weight_chain
from ..explain.results import AttributionResult
from .reference import (as_spike_bits, importance_from_word, quantized_weight_matrix, spike_contributions,
                        spike_memory_words, weight_memory_words)
from .spec import FixedPointSpec

#: The core's register prefix in ``csr.csv`` (the SoC names it ``explainer``).
PREFIX = "explainer_"
#: Bit positions of the ``status`` fields (declaration order of the core's ``CSRField``s).
STATUS_BUSY, STATUS_DONE, STATUS_READY = 1, 2, 4
#: Words written between two read-backs: a read-back waits until the chip has consumed every earlier
#: write, which keeps a fast link (the simulator's socket buffer holds 2 KiB) from overrunning the bridge.
WRITES_PER_BARRIER = 48


class HardwareError(RuntimeError):
    """The chip answered something impossible (a wrong bitstream, or a corrupted link)."""


def _parse_url(url: str) -> tuple[str, int]:
    text = url.split("://", 1)[1] if "://" in url else url
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"url: expected 'HOST:PORT' of a running litex_server, such as 'localhost:1234', got {url!r}")
    return host, int(port)


class FpgaExplainer:
    """Explanations from a trace-explainer SoC (a board, or the Verilator simulation).

    Args:
        uart_port: a serial port with the SoC's UART bridge (``"/dev/ttyUSB1"``, or a pyserial URL such as
            ``"socket://localhost:PORT"``); mutually exclusive with ``url``.
        url: ``"HOST:PORT"`` of a running ``litex_server`` in front of the SoC.
        csr_csv: the register map the build wrote (``csr.csv``).
        spec: the fixed-point format you expect; checked against the one the chip reports (``None``: take
            the chip's, with the decay it applies, ``D_int / 2**k``).

    Attributes:
        spec: the chip's `FixedPointSpec` (``spec`` itself when given).
        n_inputs, n_outputs, n_steps, lanes, words_per_lane: the sizes the chip reports.
        baudrate: the UART's baud rate (``uart_port`` only).
        timeout: seconds to wait for a run or a read before giving up.

    Example:
        >>> with FpgaExplainer(url="localhost:1234", csr_csv="build/ice40/csr.csv") as chip:  # doctest: +SKIP
        ...     chip.load_weights(weights)
        ...     result = chip.attribute(spikes, output_neuron=3)
        ...     result.top_k(5)
    """

    def __init__(self, *, uart_port: str | None = None, url: str | None = None, csr_csv: str | None = None,
                 spec: FixedPointSpec | None = None, baudrate: int = 115200, timeout: float = 30.0) -> None:
        if (uart_port is None) == (url is None):
            raise ValueError("uart_port, url: expected exactly one of uart_port='/dev/ttyUSB1' (a serial port) or "
                             "url='localhost:1234' (a litex_server)")
        if csr_csv is None:
            raise ValueError("csr_csv: expected the csr.csv that `sc-neurocore fpga build` wrote beside the bitstream")
        if spec is not None and not isinstance(spec, FixedPointSpec):
            raise TypeError(f"spec: expected a FixedPointSpec or None, got {type(spec).__name__}")
        address = _parse_url(url) if url is not None else None
        if not os.path.isfile(csr_csv):
            raise FileNotFoundError(f"csr_csv: no such file {str(csr_csv)!r} (the csr.csv that `sc-neurocore fpga "
                                    f"build` wrote beside the bitstream)")
        self.timeout = float(timeout)
        try:
            if address is not None:
                from litex import RemoteClient
                host, port = address
                self._bus = RemoteClient(host=host, port=port, csr_csv=str(csr_csv))
                self._bus.open()
                # Small request/response packets: without this, Nagle's algorithm delays each by ~40 ms;
                # and RemoteClient turns a timed-out read into zeros, so the timeout must outlast any read.
                self._bus.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._bus.socket.settimeout(self.timeout)
            else:
                from litex.tools.remote.comm_uart import CommUART
                self._bus = CommUART(uart_port, baudrate=baudrate, csr_csv=str(csr_csv))
                self._bus.open()
        except ImportError as error:
            raise missing_extra("FpgaExplainer needs LiteX's host tools", "fpga") from error
        self._weights: Tensor | None = None
        try:
            self._addresses = {name[len(PREFIX):]: register.addr for name, register in vars(self._bus.regs).items()
                               if name.startswith(PREFIX)} if hasattr(self._bus, "regs") else {}
            if "load_data" not in self._addresses:
                raise ValueError(f"csr_csv: {str(csr_csv)!r} has no {PREFIX}* registers; is it the explainer SoC's "
                                 "csr.csv?")
            self._read_configuration(spec)
        except BaseException:
            self.close()
            raise

    # Context manager / lifetime.
    def __enter__(self) -> "FpgaExplainer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Release the link (safe to call twice)."""
        bus = getattr(self, "_bus", None)
        if bus is not None:
            bus.close()
            self._bus = None

    # Register access.
    def _read(self, name: str) -> int:
        return int(self._bus.read(self._addresses[name]))

    def _write(self, name: str, value: int) -> None:
        self._bus.write(self._addresses[name], int(value))

    def _write_stream(self, name: str, values: list[int]) -> None:
        """Write ``values`` one after another to the same register, with periodic read-backs."""
        address = self._addresses[name]
        for start in range(0, len(values), WRITES_PER_BARRIER):
            for value in values[start:start + WRITES_PER_BARRIER]:
                self._bus.write(address, int(value))
            self._read("status")  # the barrier: answered only after the writes above

    def _wait_status(self, mask: int, what: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not self._read("status") & mask:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the chip did not report {what} within {self.timeout} s")

    def _read_configuration(self, spec: FixedPointSpec | None) -> None:
        geometry, steps, fmt, decay_int = (self._read(name) for name in ("geometry", "steps", "format", "decay"))
        self.n_inputs, self.n_outputs, self.lanes = geometry & 0xFFFF, (geometry >> 16) & 0xFF, (geometry >> 24) & 0xFF
        self.n_steps, self.words_per_lane = steps & 0xFFFF, (steps >> 16) & 0xFFFF
        widths = [(fmt >> (5 * n)) & 0x1F for n in range(5)]
        if self.n_inputs == 0 or self.lanes == 0 or self.n_steps == 0 or decay_int == 0:
            raise HardwareError(f"the chip reports an empty geometry (N={self.n_inputs}, L={self.lanes}, "
                                f"T={self.n_steps}, D_int={decay_int}): is the explainer bitstream loaded?")
        trace_bits, frac_bits, decay_bits, weight_bits, weight_frac_bits = widths
        chip_spec = FixedPointSpec(decay=decay_int / 2**decay_bits, trace_bits=trace_bits, frac_bits=frac_bits,
                                   decay_bits=decay_bits, weight_bits=weight_bits, weight_frac_bits=weight_frac_bits)
        if chip_spec.decay_int != decay_int:
            raise HardwareError(f"the chip's decay multiplier {decay_int} does not survive a round trip through "
                                "FixedPointSpec: the driver and the bitstream disagree on the format")
        if spec is not None:
            ours = (spec.decay_int, spec.trace_bits, spec.frac_bits, spec.decay_bits, spec.weight_bits,
                    spec.weight_frac_bits)
            theirs = (decay_int, *widths)
            if ours != theirs:
                raise ValueError(f"spec: expected the chip's format (decay_int, trace_bits, frac_bits, decay_bits, "
                                 f"weight_bits, weight_frac_bits) = {theirs}, got {ours}")
        # The caller's spec keeps its float decay (same D_int), so SpikeAttributor(spec.decay, fixed_point=spec)
        # compares directly; without one, the decay is the one the chip applies, D_int / 2**k.
        self.spec = spec if spec is not None else chip_spec

    # Public API.
    @property
    def cycles_last_run(self) -> int:
        """Clock cycles the chip's last run took (its ``cycles`` register)."""
        return self._read("cycles")

    def load_weights(self, weights: Any) -> Tensor:
        """Quantise and load the network's weight paths ``W_eff = W_1 @ ... @ W_L`` (``(N, C)``).

        Args:
            weights: an ``(N, C)`` matrix or a list of matrices that chain to ``(N, C)`` (what
                ``SpikeAttributor.attribute`` takes), numpy or torch.

        Returns:
            The quantised ``int64`` weights now on the chip, ``(N, C)``.

        Raises:
            ValueError: the shape does not match the chip, or a weight is out of the spec's range.
        """
        chain = as_weight_chain(weights, "weights")
        shape = (chain[0].shape[0], chain[-1].shape[1])
        if shape != (self.n_inputs, self.n_outputs):
            raise ValueError(f"weights: the chip holds ({self.n_inputs}, {self.n_outputs}) weight paths, got {shape}")
        # The same quantisation as SpikeAttributor(fixed_point=spec) and the exporter.
        quantised = quantized_weight_matrix(chain, self.spec)
        self._write("load_target", 1)
        self._write("load_address", 0)
        self._write_stream("load_data", weight_memory_words(quantised, self.spec).tolist())
        self._weights = quantised
        return quantised

    def run(self, spikes: Any) -> int:
        """Load one ``(T, N)`` spike train, run it, wait for ``done``; returns the cycles the run took."""
        bits = as_spike_bits(torch.as_tensor(spikes), "input_spikes")
        if tuple(bits.shape) != (self.n_steps, self.n_inputs):
            raise ValueError(f"input_spikes: the chip runs ({self.n_steps}, {self.n_inputs}) spike trains, "
                             f"got {tuple(bits.shape)}")
        self._write("load_target", 0)
        self._write("load_address", 0)
        self._write_stream("load_data", spike_memory_words(bits, self.lanes).tolist())
        self._write("control", 1)
        self._wait_status(STATUS_DONE, "the end of the run")
        return self.cycles_last_run

    def read_importance(self, output_neuron: int) -> Tensor:
        """``trace[i] * w[i, c]`` for every input ``i`` after the last run, as ``int64`` ``(N,)``."""
        if not isinstance(output_neuron, int) or isinstance(output_neuron, bool) or \
                not 0 <= output_neuron < self.n_outputs:
            raise ValueError(f"output_neuron: expected an int in [0, {self.n_outputs}), got {output_neuron!r}")
        addresses = self._addresses
        # When status sits just before importance and readout_index, one burst reads all three, and a
        # ``ready`` seen first guarantees the importance read after it (ready falls only on advance,
        # readout or a run); otherwise poll status, then read the pair.
        one_burst = addresses["importance"] == addresses["status"] + 4 and \
            addresses["readout_index"] == addresses["status"] + 8
        values = []
        self._write("readout", output_neuron)
        for index in range(self.n_inputs):
            if index:
                self._write("advance", 1)
            if one_burst:
                deadline = time.monotonic() + self.timeout
                while True:
                    status, importance, position = self._bus.read(addresses["status"], 3)
                    if status & STATUS_READY:
                        break
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"the chip did not report the importance of input {index} "
                                           f"within {self.timeout} s")
            else:
                self._wait_status(STATUS_READY, f"the importance of input {index}")
                importance, position = self._bus.read(addresses["importance"], 2)
            if position != index:
                raise HardwareError(f"the chip's readout is at input {position}, expected {index}")
            values.append(importance_from_word(importance))
        return torch.tensor(values, dtype=torch.int64)

    def _importance_rows(self, spikes: Tensor, targets: Tensor) -> Tensor:
        """Run every sample of ``spikes`` ``(B, T, N)`` and read its target's importance: ``(B, N)`` ``int64``."""
        if self._weights is None:
            raise ValueError("weights: call load_weights(weights) before asking the chip for importance")
        rows = []
        for sample, target in zip(spikes.cpu(), targets.tolist(), strict=True):  # one run per sample: the chip holds one train
            self.run(sample)
            rows.append(self.read_importance(target))
        return torch.stack(rows)

    def importance(self, input_spikes: Any, output_neuron: Any = 0) -> Tensor:
        """The chip's raw per-input importance ``trace[i] * w[i, c]``.

        Args:
            input_spikes: ``(T, N)`` or ``(B, T, N)`` 0/1 spikes.
            output_neuron: an int, or a ``(B,)`` tensor of per-sample targets.

        Returns:
            ``int64`` ``(N,)`` (``(B, N)`` for a batch); real value ``importance * spec.importance_scale``.
            Needs `load_weights` first.
        """
        batch = as_spikes(input_spikes)
        targets = as_targets(output_neuron, batch.shape[0], self.n_outputs, torch.device("cpu"))
        rows = self._importance_rows(batch.spikes, targets)
        return rows if batch.batched else rows[0]

    def attribute(self, input_spikes: Any, weights: Any = None, output_neuron: Any = 0) -> AttributionResult:
        """Per-spike attribution of ``output_neuron`` computed by the chip (see the module docstring).

        Args:
            input_spikes: ``(T, N)`` or ``(B, T, N)`` 0/1 spikes, numpy or torch.
            weights: weight matrices to load first (``None``: keep the loaded ones).
            output_neuron: an int, or a ``(B,)`` tensor of per-sample targets.

        Returns:
            An `AttributionResult` in real units
            (``importance_scale`` applied); ``spatial_importance()`` is the chip's per-input importance.

        Raises:
            HardwareError: the chip reports importance for an input that did not spike.
        """
        if weights is not None:
            self.load_weights(weights)
        batch = as_spikes(input_spikes)
        targets = as_targets(output_neuron, batch.shape[0], self.n_outputs, torch.device("cpu"))
        hardware = self._importance_rows(batch.spikes, targets)  # (B, N)
        contributions = spike_contributions(batch.spikes.cpu(), self.spec)  # (B, T, N) int64
        traces = contributions.sum(dim=1)  # (B, N): the reference's final traces
        silent = (traces == 0) & (hardware != 0)
        if bool(silent.any()):
            sample, neuron = (int(v) for v in silent.nonzero()[0])
            raise HardwareError(f"the chip reports importance {int(hardware[sample, neuron])} for input {neuron} "
                                f"of sample {sample}, which has no spike: wrong bitstream or corrupted link")
        # |importance * contribution| < 2**47 is exact in float64, and so is its quotient by the trace
        # whenever the chip agrees with the reference (the quotient is then contribution * weight).
        numerator = (contributions * hardware[:, None, :]).to(torch.float64)
        scores = numerator / traces[:, None, :].clamp(min=1).to(torch.float64) * self.spec.importance_scale
        scores = scores.to(batch.spikes.dtype).to(batch.spikes.device)
        return AttributionResult(scores, targets.to(batch.spikes.device), batched=batch.batched, numpy=batch.numpy,
                                 explainer=self, engine="fpga")
