"""One CSR-bus program, three simulators: the shared test bench of the FPGA core.

A :class:`BusProgram` is a list of CSR-bus operations (write, read, poll) plus the value the integer
reference predicts for every read. :func:`explain_program` builds the program a host runs to explain a
batch of spike trains (load weights once, then per train: load spikes, run, read every importance of
every output neuron), so that many trains share one simulation. The same program runs in Migen's
simulator (:func:`run_migen`), in iverilog on the exported Verilog and on the yosys gate-level netlist
(:func:`run_iverilog`); :func:`assert_reads_match` compares what came back with the reference.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import torch
from conftest import _missing

from sc_neurocore.fpga import FixedPointSpec
from sc_neurocore.fpga.reference import (hardware_importance, spike_memory_words, weight_memory_words)

CSR_MAP = ("control", "load_target", "load_address", "load_data", "readout", "advance", "status", "importance",
           "readout_index", "cycles", "geometry", "steps", "format", "decay")
ADDRESS = {name: index for index, name in enumerate(CSR_MAP)}
WRITE, READ, POLL = 1, 2, 3
BUSY, DONE, READY = 1, 2, 4
MAX_POLLS = 10_000


@dataclass
class BusProgram:
    """CSR-bus operations and the reads the reference predicts (``None``: not checked)."""

    operations: list[tuple[int, int, int]] = field(default_factory=list)
    expected: list[int | None] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    n_trains: int = 0

    def write(self, name: str, value: int) -> None:
        self.operations.append((WRITE, ADDRESS[name], int(value) & 0xFFFFFFFF))

    def read(self, name: str, expected: int | None, label: str = "") -> None:
        self.operations.append((READ, ADDRESS[name], 0))
        self.expected.append(None if expected is None else int(expected) & 0xFFFFFFFF)
        self.labels.append(label or name)

    def poll(self, name: str, mask: int) -> None:
        """Read ``name`` until ``value & mask`` is non-zero."""
        self.operations.append((POLL, ADDRESS[name], mask))


def random_trains(generator: torch.Generator, n_trains: int, n_steps: int, n_inputs: int) -> torch.Tensor:
    """0/1 trains ``(B, T, N)`` with a per-train firing rate drawn in ``[0, 1]``; the first train is silent and
    the second fires every step (saturation and the all-zero corner)."""
    rates = torch.rand(n_trains, 1, 1, generator=generator)
    rates[0], rates[min(1, n_trains - 1)] = 0.0, 1.0
    return (torch.rand(n_trains, n_steps, n_inputs, generator=generator) < rates).to(torch.int64)


def random_weights(generator: torch.Generator, n_inputs: int, n_outputs: int, spec: FixedPointSpec) -> torch.Tensor:
    """Quantised weights over the whole signed range, extremes included."""
    weights = torch.randint(spec.weight_min, spec.weight_max + 1, (n_inputs, n_outputs), generator=generator)
    weights.view(-1)[0] = spec.weight_min
    weights.view(-1)[-1] = spec.weight_max
    return weights


def load_weights(program: BusProgram, weights: torch.Tensor, spec: FixedPointSpec) -> None:
    program.write("load_target", 1)
    program.write("load_address", 0)
    for word in weight_memory_words(weights, spec).tolist():
        program.write("load_data", word)


def explain_program(trains: torch.Tensor, weights: list[torch.Tensor], spec: FixedPointSpec, lanes: int,
                    cycles_per_run: int) -> BusProgram:
    """The host's program for ``trains`` ``(B, T, N)``; the weight matrices ``weights`` are loaded in turn,
    each for an equal share of the trains (so reloading weights is tested too)."""
    n_trains, n_steps, n_inputs = trains.shape
    n_outputs = weights[0].shape[1]
    program = BusProgram()
    words = -(-n_inputs // lanes)
    program.read("geometry", n_inputs | n_outputs << 16 | lanes << 24)
    program.read("steps", n_steps | words << 16)
    program.read("format", spec.trace_bits | spec.frac_bits << 5 | spec.decay_bits << 10 | spec.weight_bits << 15
                 | spec.weight_frac_bits << 20)
    program.read("decay", spec.decay_int)
    share = -(-n_trains // len(weights))
    for b in range(n_trains):
        matrix = weights[b // share]
        if b % share == 0:
            load_weights(program, matrix, spec)
        program.write("load_target", 0)
        program.write("load_address", 0)
        for word in spike_memory_words(trains[b], lanes).tolist():
            program.write("load_data", word)
        program.write("control", 1)
        program.poll("status", DONE)
        program.read("cycles", cycles_per_run, f"train {b} cycles")
        importance = hardware_importance(trains[b], matrix, spec)  # (N, C)
        for c in range(n_outputs):
            program.write("readout", c)
            for i in range(n_inputs):
                program.poll("status", READY)
                program.read("importance", int(importance[i, c]), f"train {b} output {c} input {i}")
                program.read("readout_index", i, f"train {b} output {c} index {i}")
                program.write("advance", 1)
        program.n_trains += 1
    return program


def run_migen(program: BusProgram, top, scheduler: str = "event") -> list[int]:
    """Run ``program`` against a ``StandaloneTraceExplainer`` in Migen's simulator; returns the reads.

    ``scheduler="event"``: Migen's evaluator with event-driven scheduling (``migen_event_sim``); ``"migen"``:
    Migen's stock ``run_simulation``.
    """
    if scheduler == "event":
        from migen_event_sim import run_event_simulation as run_simulation
    elif scheduler == "migen":
        from migen.sim import run_simulation
    else:
        raise ValueError(f"scheduler: expected 'event' or 'migen', got {scheduler!r}")

    bus = top.bus
    reads: list[int] = []

    def read(address):
        yield bus.adr.eq(address)
        yield bus.re.eq(1)
        yield
        yield bus.re.eq(0)
        yield
        return (yield bus.dat_r)

    def host():
        for operation, address, data in program.operations:
            if operation == WRITE:
                yield bus.adr.eq(address)
                yield bus.dat_w.eq(data)
                yield bus.we.eq(1)
                yield
                yield bus.we.eq(0)
            elif operation == READ:
                reads.append((yield from read(address)))
            else:
                for _ in range(MAX_POLLS):
                    if (yield from read(address)) & data:
                        break
                else:
                    raise AssertionError(f"poll of CSR {CSR_MAP[address]} for mask {data} never succeeded")

    run_simulation(top, host())
    return reads


TESTBENCH = """`timescale 1ns / 1ps
module bench;
    reg clk = 0;
    reg rst = 1;
    reg [13:0] adr = 0;
    reg we = 0;
    reg re = 0;
    reg [31:0] dat_w = 0;
    wire [31:0] dat_r;
    reg [63:0] commands [0:{depth}];
    integer pc, out, polls;
    {module} dut (.bus_adr(adr), .bus_dat_r(dat_r), .bus_dat_w(dat_w), .bus_re(re), .bus_we(we),
                  .sys_clk(clk), .sys_rst(rst));
    always #5 clk = ~clk;
    // Stimulus changes on the falling edge, the design samples on the rising edge.
    task bus_read;
        begin
            re = 1; @(negedge clk); re = 0; @(negedge clk);
        end
    endtask
    initial begin
        $readmemh("program.hex", commands);
        out = $fopen("reads.txt", "w");
        repeat (3) @(negedge clk);
        rst = 0;
        @(negedge clk);
        pc = 0;
        while (commands[pc][63:60] != 0) begin
            adr = commands[pc][45:32];
            if (commands[pc][63:60] == 1) begin
                dat_w = commands[pc][31:0]; we = 1; @(negedge clk); we = 0;
            end else if (commands[pc][63:60] == 2) begin
                bus_read; $fdisplay(out, "%08h", dat_r);
            end else begin
                polls = 0;
                bus_read;
                while ((dat_r & commands[pc][31:0]) == 0 && polls < {max_polls}) begin
                    bus_read; polls = polls + 1;
                end
                if (polls == {max_polls}) begin
                    $fdisplay(out, "POLL TIMEOUT at %0d", pc); $fclose(out); $finish;
                end
            end
            pc = pc + 1;
        end
        $fclose(out);
        $finish;
    end
endmodule
"""


def run_iverilog(program: BusProgram, sources: list[Path], folder: Path, module: str = "trace_explainer",
                 defines: tuple[str, ...] = ()) -> list[int]:
    """Run ``program`` in iverilog against ``module`` from ``sources``; returns the reads."""
    lines = [f"{operation << 60 | address << 32 | data:016x}" for operation, address, data in program.operations]
    (folder / "program.hex").write_text("\n".join(lines + ["0" * 16]) + "\n")
    (folder / "bench.v").write_text(TESTBENCH.format(depth=len(lines), module=module, max_polls=MAX_POLLS))
    command = ["iverilog", "-g2012", "-o", "bench.vvp", *(f"-D{define}" for define in defines), "-s", "bench",
               "bench.v", *map(str, sources)]
    subprocess.run(command, cwd=folder, check=True, capture_output=True, text=True)
    run = subprocess.run(["vvp", "-n", "bench.vvp"], cwd=folder, check=True, capture_output=True, text=True)
    text = (folder / "reads.txt").read_text().split()
    if any(not all(ch in "0123456789abcdefABCDEFxXzZ" for ch in word) for word in text):
        raise AssertionError(f"simulation failed: {' '.join(text[-8:])}\n{run.stdout[-2000:]}")
    return [int(word, 16) if all(ch not in "xXzZ" for ch in word) else -1 for word in text]


def assert_reads_match(program: BusProgram, reads: list[int]) -> None:
    """Every read equals the reference's prediction; the message names the first mismatch."""
    assert len(reads) == len(program.expected), f"{len(reads)} reads came back, {len(program.expected)} expected"
    mismatches = [(label, got, want) for label, got, want in zip(program.labels, reads, program.expected, strict=True)
                  if want is not None and got != want]
    assert not mismatches, (f"{len(mismatches)} mismatches over {program.n_trains} trains; first: "
                            f"{mismatches[0][0]}: got {mismatches[0][1]:#x}, reference {mismatches[0][2]:#x}")


def require_sim_libraries(tmp_path) -> None:
    """LiteX's Verilator harness includes libevent, json-c and zlib headers: check they compile."""
    probe = tmp_path / "probe.cpp"
    probe.write_text("#include <event2/event.h>\n#include <json-c/json.h>\n#include <zlib.h>\nint main() {}\n")
    result = subprocess.run(["g++", "-fsyntax-only", str(probe)], capture_output=True, text=True)
    if result.returncode != 0:
        _missing("libevent-dev, libjson-c-dev or zlib1g-dev", "sudo bash scripts/install-toolchain.sh")
