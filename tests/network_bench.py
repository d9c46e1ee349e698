"""One bus program, three simulators: the shared test bench of the network core.

A `NetworkProgram` is a list of CSR-bus and Wishbone operations (the host's side of a sample: start,
stream the beats, wait for done, read the results window) plus the value the integer reference
predicts for every read. The same program runs in Migen's simulator (`run_migen`), in iverilog on the
exported Verilog and on the yosys gate-level netlist (`run_iverilog`); `assert_reads_match` compares.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import torch
from fpga_bus import random_trains  # noqa: F401 - the benches share their train generator

from sc_neurocore.fpga.network_reference import QuantizedNetwork, run_network

CSR_WRITE, WB_WRITE, WB_READ, WB_POLL = 1, 2, 3, 4
MAX_POLLS = 100_000


@dataclass
class NetworkProgram:
    operations: list[tuple[int, int, int]] = field(default_factory=list)
    expected: list[int | None] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    n_trains: int = 0

    def csr_write(self, address: int, value: int) -> None:
        self.operations.append((CSR_WRITE, address, int(value) & 0xFFFFFFFF))

    def wb_write(self, address: int, value: int) -> None:
        self.operations.append((WB_WRITE, address, int(value) & 0xFFFFFFFF))

    def wb_read(self, address: int, expected: int | None, label: str) -> None:
        self.operations.append((WB_READ, address, 0))
        self.expected.append(None if expected is None else int(expected) & 0xFFFFFFFF)
        self.labels.append(label)

    def wb_poll(self, address: int, mask: int) -> None:
        self.operations.append((WB_POLL, address, mask))


def spike_words(train: torch.Tensor) -> list[int]:
    """`(T, N)` 0/1 -> `T * ceil(N / 32)` words, input `i` in bit `i mod 32` of word `i div 32`."""
    n_steps, n_inputs = train.shape
    words = -(-n_inputs // 32)
    padded = torch.zeros(n_steps, words * 32, dtype=torch.int64)
    padded[:, :n_inputs] = train
    powers = torch.ones(32, dtype=torch.int64) << torch.arange(32)
    return (padded.reshape(n_steps, words, 32) * powers).sum(-1).reshape(-1).tolist()


def explain_program(network: QuantizedNetwork, trains: torch.Tensor, full: bool = True) -> NetworkProgram:
    """The host's program for `trains` and the reads the reference predicts (every window word if `full`)."""
    spec = network.spec
    expected = run_network(network, trains)
    k, c = spec.top_k, spec.n_outputs
    program = NetworkProgram()
    for b in range(trains.shape[0]):
        program.csr_write(0, 1)  # control.start
        for word in spike_words(trains[b]):
            program.wb_write(0, word)
        program.wb_poll(0, 1)
        status = 1 | int(expected.predicted[b]) << 8 | spec.n_steps << 16
        program.wb_read(0, status, f"train {b} status")
        for p in range(k):
            program.wb_read(1 + p, int(expected.top_indices[b, p]), f"train {b} top {p} index")
        for p in range(k):
            program.wb_read(1 + k + p, int(expected.top_scores[b, p]), f"train {b} top {p} score")
        if full:
            for cls in range(c):
                program.wb_read(1 + 2 * k + cls, int(expected.counts[b, cls]), f"train {b} count {cls}")
            for i in range(spec.n_inputs):
                program.wb_read(1 + 2 * k + c + i, int(expected.importance[b, i]), f"train {b} importance {i}")
        program.n_trains += 1
    return program


def run_migen(program: NetworkProgram, top, scheduler: str = "event") -> list[int]:
    """Run `program` against a `StandaloneNetworkExplainer` in Migen's simulator; returns the reads.

    `scheduler="event"` runs Migen's evaluator with event-driven scheduling (`migen_event_sim`),
    `"migen"` Migen's stock `run_simulation`.
    """
    if scheduler == "event":
        from migen_event_sim import run_event_simulation as run_simulation
    elif scheduler == "migen":
        from migen.sim import run_simulation
    else:
        raise ValueError(f"scheduler: expected 'event' or 'migen', got {scheduler!r}")

    csr, wb = top.csr, top.wishbone
    reads: list[int] = []

    def wb_cycle(address, data=None):
        yield wb.adr.eq(address)
        yield wb.cyc.eq(1)
        yield wb.stb.eq(1)
        yield wb.we.eq(data is not None)
        if data is not None:
            yield wb.dat_w.eq(data)
        yield
        while not (yield wb.ack):
            yield
        value = yield wb.dat_r
        yield wb.cyc.eq(0)
        yield wb.stb.eq(0)
        yield wb.we.eq(0)
        yield
        return value

    def host():
        for operation, address, data in program.operations:
            if operation == CSR_WRITE:
                yield csr.adr.eq(address)
                yield csr.dat_w.eq(data)
                yield csr.we.eq(1)
                yield
                yield csr.we.eq(0)
            elif operation == WB_WRITE:
                yield from wb_cycle(address, data)
            elif operation == WB_READ:
                reads.append((yield from wb_cycle(address)))
            else:
                for _ in range(MAX_POLLS):
                    if (yield from wb_cycle(address)) & data:
                        break
                else:
                    raise AssertionError("poll never succeeded")

    run_simulation(top, host())
    return reads


TESTBENCH = """`timescale 1ns / 1ps
module bench;
    reg clk = 0;
    reg rst = 1;
    reg [13:0] csr_adr = 0;
    reg csr_we = 0;
    reg [31:0] csr_dat_w = 0;
    wire [31:0] csr_dat_r;
    reg [29:0] wb_adr = 0;
    reg [31:0] wb_dat_w = 0;
    wire [31:0] wb_dat_r;
    reg wb_cyc = 0, wb_stb = 0, wb_we = 0;
    wire wb_ack;
    reg [63:0] commands [0:{depth}];
    integer pc, out, polls;
    {module} dut (.csr_adr(csr_adr), .csr_dat_r(csr_dat_r), .csr_dat_w(csr_dat_w), .csr_re(1'b0), .csr_we(csr_we),
                  .bus_adr(wb_adr), .bus_dat_w(wb_dat_w), .bus_dat_r(wb_dat_r),
                  .bus_cyc(wb_cyc), .bus_stb(wb_stb), .bus_we(wb_we), .bus_ack(wb_ack),
                  .bus_sel(4'hf), .sys_clk(clk), .sys_rst(rst));
    always #5 clk = ~clk;
    task wb_cycle;
        input write;
        begin
            wb_cyc = 1; wb_stb = 1; wb_we = write; @(negedge clk);
            while (!wb_ack) @(negedge clk);
            wb_cyc = 0; wb_stb = 0; wb_we = 0;
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
            if (commands[pc][63:60] == 1) begin
                csr_adr = commands[pc][45:32]; csr_dat_w = commands[pc][31:0]; csr_we = 1; @(negedge clk); csr_we = 0;
            end else begin
                wb_adr = commands[pc][59:32];
                wb_dat_w = commands[pc][31:0];
                if (commands[pc][63:60] == 2) begin
                    wb_cycle(1);
                end else if (commands[pc][63:60] == 3) begin
                    wb_cycle(0); $fdisplay(out, "%08h", wb_dat_r);
                end else begin
                    polls = 0;
                    wb_cycle(0);
                    while ((wb_dat_r & commands[pc][31:0]) == 0 && polls < {max_polls}) begin
                        wb_cycle(0); polls = polls + 1;
                    end
                    if (polls == {max_polls}) begin
                        $fdisplay(out, "POLL TIMEOUT at %0d", pc); $fclose(out); $finish;
                    end
                end
            end
            @(negedge clk);
            pc = pc + 1;
        end
        $fclose(out);
        $finish;
    end
endmodule
"""


def cell_models() -> Path:
    """yosys' iCE40 simulation models (`SB_MAC16`, block RAM), beside the installed yosys."""
    import shutil

    models = Path(shutil.which("yosys")).resolve().parent.parent / "share" / "yosys" / "ice40" / "cells_sim.v"
    assert models.is_file(), f"yosys' iCE40 cell models are not at {models}"
    return models


def run_iverilog_with_cells(program: NetworkProgram, sources: list[Path], folder: Path,
                            module: str = "network_explainer") -> list[int]:
    """`run_iverilog` with yosys' iCE40 cell models (for Verilog holding SB_MAC16 instances or a netlist)."""
    import shutil

    shutil.copy(cell_models(), folder / "cells_sim.v")
    return run_iverilog(program, [*sources, folder / "cells_sim.v"], folder, module,
                        defines=("NO_ICE40_DEFAULT_ASSIGNMENTS",))


def run_iverilog(program: NetworkProgram, sources: list[Path], folder: Path, module: str = "network_explainer",
                 defines: tuple[str, ...] = ()) -> list[int]:
    """Run `program` in iverilog on `sources` (the exported Verilog, or a netlist plus cell models)."""
    lines = [f"{op:x}{address:07x}{data:08x}" for op, address, data in program.operations]
    (folder / "program.hex").write_text("\n".join(lines + ["0" * 16]) + "\n")
    (folder / "bench.v").write_text(TESTBENCH.format(depth=len(lines), module=module, max_polls=MAX_POLLS))
    command = ["iverilog", "-g2012", "-o", "bench.vvp", *[f"-D{d}" for d in defines], "bench.v",
               *[str(source) for source in sources]]
    subprocess.run(command, cwd=folder, check=True, capture_output=True, text=True)
    subprocess.run(["vvp", "-n", "bench.vvp"], cwd=folder, check=True, capture_output=True, text=True)
    text = (folder / "reads.txt").read_text().split()
    if any(not all(ch in "0123456789abcdefABCDEF" for ch in item) for item in text):
        raise AssertionError(f"the simulation stopped: {' '.join(text[-6:])}")
    return [int(item, 16) for item in text]


def assert_reads_match(program: NetworkProgram, reads: list[int]) -> None:
    assert len(reads) == len(program.expected), (len(reads), len(program.expected))
    mismatches = [(label, f"{got:08x}", f"{want:08x}") for label, got, want in
                  zip(program.labels, reads, program.expected, strict=True) if want is not None and got != want]
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:5]}"
