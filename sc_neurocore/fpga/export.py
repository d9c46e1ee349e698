"""Standalone synthesizable Verilog of the trace explainer core, configured from plain Python values.

`export_verilog` elaborates a `StandaloneTraceExplainer` (the core
behind its own LiteX CSR bank) with the given sizes, fixed-point spec and optional weights, converts it
with LiteX's Verilog backend and writes one self-contained file: weight initial values are inlined (no
``$readmemh`` side files), and a header comment gives the configuration, the ports and the CSR map.
``SpikeAttributor.export_fpga`` is the user-facing entry point.

Requires the ``fpga`` extra (``pip install 'spikexplain[fpga]'``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from torch import Tensor

from ..atomic import atomic_write
from ..inputs import as_choice
from .dsp import check_dsp_kind
from .core import CSR_ADDRESS_BITS, CSR_MAP, StandaloneTraceExplainer, check_geometry, cycles_per_run
from .reference import check_weight_ints
from .spec import FixedPointSpec

#: Supported targets and how to synthesise the exported file for them.
TARGETS = {
    "ice40": "yosys -p 'synth_ice40 -spram -top {module}' (the decay multipliers are registered SB_MAC16 "
             "instances: no -dsp, and simulate with yosys' ice40/cells_sim.v; weights loaded at run time may use "
             "SPRAM, inlined weights need block RAM)",
}

#: What an iCE40UP5K offers (the target of the `"ice40"` export).
UP5K_RESOURCES = {"bram": 30, "spram": 4}

_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def trace_core_resources(n_inputs: int, n_outputs: int, n_steps: int, lanes: int, spec: FixedPointSpec,
                         *, weights_in_bram: bool) -> dict[str, int]:
    """Block RAM and SPRAM of a `TraceExplainer`: the spike RAM and one trace RAM per lane in block RAM, the
    weight RAM in block RAM when its contents are inlined (SPRAM cannot be initialised), else in SPRAM.

    Example:
        >>> trace_core_resources(784, 10, 25, 8, FixedPointSpec(decay=0.9), weights_in_bram=True)
        {'bram': 44, 'spram': 0}
    """
    from .network_build import bram_blocks

    words = -(-n_inputs // lanes)
    bram = bram_blocks(lanes, n_steps * words) + lanes * bram_blocks(spec.trace_bits, words)
    weight_words = n_inputs * n_outputs
    if weights_in_bram:
        return {"bram": bram + bram_blocks(spec.weight_bits, weight_words), "spram": 0}
    return {"bram": bram, "spram": -(-weight_words * spec.weight_bits // (16 * 16384))}


def check_trace_core(n_inputs: int, n_outputs: int, n_steps: int, lanes: int, spec: FixedPointSpec, *,
                     weights_in_bram: bool, allow_saturation: bool = False,
                     available: dict[str, int] | None = None) -> None:
    """The checks before any file or tool: saturation (`never_saturates`) and fit on an iCE40UP5K.

    Raises:
        ValueError: a trace that can saturate within `n_steps` (unless `allow_saturation`), or a design
            that does not fit ("does not fit: needs 44 of 30 BRAM").
    """
    if not allow_saturation and not spec.never_saturates(n_steps):
        raise ValueError(f"spec: a {spec.trace_bits}-bit trace with {spec.frac_bits} fraction bits saturates within "
                         f"{n_steps} steps at decay {spec.decay} (peak {spec._peak_trace(n_steps):.0f} > "
                         f"{spec.trace_max}); widen trace_bits, lower frac_bits, or pass allow_saturation=True")
    available = available or UP5K_RESOURCES
    needed = trace_core_resources(n_inputs, n_outputs, n_steps, lanes, spec, weights_in_bram=weights_in_bram)
    for name, label in (("bram", "BRAM"), ("spram", "SPRAM")):
        if needed[name] > available[name]:
            raise ValueError(f"does not fit: needs {needed[name]} of {available[name]} {label} on an iCE40UP5K "
                             f"({n_inputs} inputs x {n_outputs} outputs x {n_steps} steps, {lanes} lanes)")


def export_verilog(path: str | os.PathLike, n_inputs: int, n_outputs: int, n_steps: int, lanes: int,
                   spec: FixedPointSpec, *, weights: Tensor | None = None, target: str = "ice40",
                   module_name: str = "trace_explainer", allow_saturation: bool = False,
                   dsp: str = "sb_mac16") -> Path:
    """Write the core as one synthesizable Verilog file.

    Args:
        path: the ``.v`` file to write (atomically; its folder must exist).
        n_inputs: input neurons ``N``.
        n_outputs: output neurons ``C``.
        n_steps: timesteps ``T`` per spike train.
        lanes: parallel lanes ``L`` (1 to 8).
        spec: the `FixedPointSpec`.
        weights: quantised integer weights ``(N, C)`` to inline as the weight RAM's initial contents, or
            ``None`` for zeros (weights then go in through the ``load_data`` CSR at run time).
        target: ``"ice40"`` (the only supported FPGA family).
        module_name: the Verilog module name.
        allow_saturation: export even if a trace can saturate within ``n_steps`` (it clamps, bit-exact
            with the reference, but the float error bound no longer holds).
        dsp: ``"sb_mac16"`` (each lane's decay multiplier is a registered iCE40 ``SB_MAC16`` instance, what the
            bitstream holds) or ``"behavioral"`` (plain Verilog registers and multiplier, for any simulator).

    Returns:
        The written path.

    Raises:
        ValueError: an unknown ``target``, bad sizes, weights of the wrong shape or range, a trace that can
            saturate, or a design that does not fit an iCE40UP5K.

    Example:
        >>> import tempfile, pathlib
        >>> from sc_neurocore.fpga import FixedPointSpec
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> export_verilog(folder / "core.v", 16, 2, 4, 2, FixedPointSpec(decay=0.9)).name
        'core.v'
    """
    as_choice(target, TARGETS, "target")
    if not isinstance(module_name, str) or not _MODULE_NAME.match(module_name):
        raise ValueError(f"module_name: expected a Verilog identifier, got {module_name!r}")
    check_geometry(n_inputs, n_outputs, n_steps, lanes, spec)
    check_dsp_kind(dsp)
    init = None
    if weights is not None:
        check_weight_ints(weights, spec)
        if tuple(weights.shape) != (n_inputs, n_outputs):
            raise ValueError(f"weights: expected shape ({n_inputs}, {n_outputs}), got {tuple(weights.shape)}")
        init = weights.reshape(-1).tolist()
    check_trace_core(n_inputs, n_outputs, n_steps, lanes, spec, weights_in_bram=weights is not None,
                     allow_saturation=allow_saturation)
    source = verilog_source(n_inputs, n_outputs, n_steps, lanes, spec, init, target, module_name, dsp)
    with atomic_write(path) as handle:
        handle.write(source)
    return Path(path)


def verilog_source(n_inputs: int, n_outputs: int, n_steps: int, lanes: int, spec: FixedPointSpec,
                   weights: list[int] | None, target: str, module_name: str, dsp: str = "sb_mac16") -> str:
    """The Verilog text `export_verilog` writes (arguments already validated)."""
    from litex.gen.fhdl.verilog import convert
    from migen import ClockDomain

    top = StandaloneTraceExplainer(n_inputs, n_outputs, n_steps, lanes, spec, weights, dsp)
    top.clock_domains.cd_sys = ClockDomain("sys")  # LiteX's converter needs the domain declared
    bus = top.bus
    ios = {bus.adr, bus.we, bus.re, bus.dat_w, bus.dat_r, top.cd_sys.clk, top.cd_sys.rst}
    converted = convert(top, ios=ios, name=module_name)
    body = converted.main_source
    for filename, content in converted.data_files.items():
        body = _inline_memory_init(body, filename, content)
    return _header(top, n_inputs, n_outputs, n_steps, lanes, spec, weights is not None, target, module_name,
                   dsp) + body


def _inline_memory_init(source: str, filename: str, content: str) -> str:
    """Replace ``$readmemh("filename", mem);`` with one assignment per word, so the file stands alone."""
    pattern = re.compile(r'\$readmemh\("' + re.escape(filename) + r'",\s*([A-Za-z_][A-Za-z0-9_]*)\);')
    found = pattern.search(source)
    if found is None:
        raise RuntimeError(f"the converted Verilog has no $readmemh for {filename}")
    memory = found.group(1)
    words = [word for word in content.split() if word]
    assignments = "\n".join(f"\t{memory}[{address}] = 'h{word};" for address, word in enumerate(words))
    return source[:found.start()] + assignments.lstrip("\t") + source[found.end():]


def _header(top, n_inputs, n_outputs, n_steps, lanes, spec, inlined, target, module_name, dsp) -> str:
    core = top.explainer
    lines = [
        f"{module_name}: sc-neurocore trace explainer (standalone core + CSR bank), target {target}.",
        f"Inputs N={n_inputs}, outputs C={n_outputs}, timesteps T={n_steps}, lanes L={lanes}, "
        f"M={core.words_per_lane} words per lane, {cycles_per_run(n_inputs, n_steps, lanes)} cycles per run.",
        f"Fixed point: decay {spec.decay} -> D_int={spec.decay_int}/2^{spec.decay_bits}; trace {spec.trace_bits} bits, "
        f"{spec.frac_bits} fraction bits (spike = {spec.spike_increment}), floor rounding, saturating at "
        f"{spec.trace_max}; weights {spec.weight_bits}-bit signed, {spec.weight_frac_bits} fraction bits; "
        f"importance = trace * weight, {spec.importance_bits} bits signed, sign-extended to 32.",
        "Weights: " + ("inlined as the weight RAM's initial contents (reloadable through load_data)." if inlined
                       else "zero at configuration; load them through load_data before a run."),
        f"Synthesis: {TARGETS[target].format(module=module_name)}." if dsp == "sb_mac16" else
        "Multipliers: behavioral (plain Verilog registers and product; for simulation, not the bitstream's form).",
        "",
        "Ports: sys_clk, sys_rst (active high), and a LiteX CSR bus: bus_adr[" f"{CSR_ADDRESS_BITS - 1}:0] word "
        "address, bus_we, bus_re, bus_dat_w[31:0], bus_dat_r[31:0].",
        "Write: drive bus_adr, bus_dat_w and bus_we=1 for one cycle. Read: drive bus_adr; bus_dat_r is valid "
        "on the next cycle.",
        "",
        "CSR map (word address: name [bits] description):",
    ]
    for address, register in enumerate(core.get_csrs()):
        assert register.name == CSR_MAP[address]
        lines.append(f"  {address:2d}: {register.name} [{register.size}] {_plain(register.description)}")
        for field in getattr(getattr(register, "fields", None), "fields", []):
            high = field.offset + field.size - 1
            lines.append(f"        [{high}:{field.offset}] {field.name}: {_plain(field.description)}")
    lines += ["", "How software drives it:"]
    lines += ["  " + line.strip() for line in type(core.doc).__doc__.split("How software drives it:")[1].splitlines()  # type: ignore[union-attr]
              if line.strip()]
    return "".join(f"// {line}".rstrip() + "\n" for line in lines) + "\n"


def _plain(text) -> str:
    return " ".join(str(text or "").replace("``", "").split())


