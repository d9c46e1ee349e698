"""``TraceExplainer``: the on-chip trace-register explainer, a LiteX core.

Each input neuron has a decayed spike trace; after the whole preloaded spike train has run (all ``T``
timesteps without the host), ``trace[i] * weight[i, c]`` is input ``i``'s importance for output neuron
``c``. The arithmetic is exactly `sc_neurocore.fpga.reference.fixed_trace_step`; the same
``FixedPointSpec`` and size arguments drive this gateware, the reference and the tests.

Layout (``N`` inputs, ``L`` lanes, ``M = ceil(N / L)`` words per lane): input ``i`` lives in lane
``i mod L`` at word ``i div L``. Every lane has its own trace RAM (read port + write port) and its own
decay multiplier (``16 x 16`` unsigned, one ``SB_MAC16`` with its A/B input registers and its output
register, so nextpnr times it; `sc_neurocore.fpga.dsp`), so one timestep takes ``max(M, 4)`` cycles.
The spike RAM holds word ``t * M + j`` = the ``L`` spikes of inputs ``j * L .. j * L + L - 1`` at timestep
``t`` (bit ``l`` for lane ``l``). The weight RAM holds ``weight[i, c]`` at address ``i * C + c`` (the
row-major order of an ``(N, C)`` matrix). Spike and weight RAMs are single-port, so yosys can place them
in block RAM or, with ``synth_ice40 -spram``, in the UP5K's SPRAM.

Requires the ``fpga`` extra (``pip install 'spikexplain[fpga]'``).
"""

from __future__ import annotations

import numbers
from typing import cast

from ..extras import missing_extra
from .dsp import check_dsp_kind, registered_multiplier
from .spec import FixedPointSpec

try:
    from litex.gen import LiteXModule
    from litex.soc.integration.doc import ModuleDoc
    from litex.soc.interconnect.csr import CSRField, CSRStatus, CSRStorage
    from litex.soc.interconnect import csr_bus
    from migen import Array, Cat, Constant, If, Memory, Module, Mux, Replicate, Signal
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise missing_extra("sc_neurocore.fpga.core needs migen and litex", "fpga") from error

#: The CSR map: register names in address order (word ``n`` at byte offset ``4 * n`` from the core's CSR
#: base). Every register is one 32-bit word. Tests check the generated bank against it.
CSR_MAP = ("control", "load_target", "load_address", "load_data", "readout", "advance", "status", "importance",
           "readout_index", "cycles", "geometry", "steps", "format", "decay")
#: Width of the standalone module's CSR bus address (LiteX's default: 14 word-address bits).
CSR_ADDRESS_BITS = 14
#: Cycles from a trace read to its write-back; a lane's words are revisited no sooner than this + 1.
PIPELINE_DEPTH = 3
MAX_LANES = 8


def check_geometry(n_inputs, n_outputs, n_steps, lanes, spec) -> None:
    """Validate the plain-Python sizes of a `TraceExplainer` (shared by the core and the exporter).

    Raises:
        TypeError: a size that is not an int, or ``spec`` that is not a ``FixedPointSpec``.
        ValueError: a size out of range (``n_inputs`` 1..65535, ``n_outputs`` 1..255, ``n_steps`` 1..65535,
            ``lanes`` 1..8).
    """
    for name, value, high in (("n_inputs", n_inputs, 65535), ("n_outputs", n_outputs, 255),
                              ("n_steps", n_steps, 65535), ("lanes", lanes, MAX_LANES)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
        if not 1 <= cast(int, value) <= high:
            raise ValueError(f"{name}: expected an int in [1, {high}], got {value}")
    if not isinstance(spec, FixedPointSpec):
        raise TypeError(f"spec: expected a FixedPointSpec, got {type(spec).__name__}")


def words_per_lane(n_inputs: int, lanes: int) -> int:
    """``M = ceil(N / L)``: trace words per lane and spike words per timestep.

    Example:
        >>> words_per_lane(784, 8), words_per_lane(10, 3)
        (98, 4)
    """
    return -(-n_inputs // lanes)


def cycles_per_step(n_inputs: int, lanes: int) -> int:
    """Cycles one timestep takes: ``max(M, PIPELINE_DEPTH + 1)`` (a word is read again only after its write-back).

    Example:
        >>> cycles_per_step(784, 8), cycles_per_step(8, 8)
        (98, 4)
    """
    return max(words_per_lane(n_inputs, lanes), PIPELINE_DEPTH + 1)


def cycles_per_run(n_inputs: int, n_steps: int, lanes: int) -> int:
    """Cycles from ``start`` to ``done`` (what the ``cycles`` CSR reports): issue ``T`` timesteps, drain the
    pipeline after the last word, one cycle to flag ``done``.

    Example:
        >>> cycles_per_run(784, 25, 8)
        2454
    """
    slots, words = cycles_per_step(n_inputs, lanes), words_per_lane(n_inputs, lanes)
    return max(n_steps * slots, (n_steps - 1) * slots + words + PIPELINE_DEPTH) + 1


def _bits(n: int) -> int:
    """Bits to hold ``0 .. n`` (at least 1)."""
    return max(1, int(n).bit_length())


class _TraceExplainerDoc(ModuleDoc):
    """Trace explainer: per-input importance computed on chip

    One decayed spike trace per input neuron, in block RAM, ``L`` lanes updating ``L`` inputs per cycle.
    The whole spike train is preloaded, so a run of all ``T`` timesteps needs no host traffic.

    Fixed point (see ``sc_neurocore.fpga.spec``): ``x[t] = min(floor(D_int * (x[t-1] + 2**F s[t]) / 2**k),
    2**W - 1)`` from ``x = 0``; importance ``= x[i] * w[i, c]``, signed, ``W + B`` bits, sign-extended to 32.

    How software drives it:

    1. Read ``geometry``, ``steps`` and ``format`` and check they match the model.
    2. Load the weights: write ``load_target`` = 1 (weights), ``load_address`` = 0, then write ``load_data``
       ``N * C`` times with ``w[i, c]`` in row-major order (address ``i * C + c``; two's complement, low
       ``B`` bits). Each ``load_data`` write stores one word and advances the address. Weights stay loaded
       across runs.
    3. Load a spike train: ``load_target`` = 0 (spikes), ``load_address`` = 0, then ``T * M`` writes of
       ``load_data``: word ``t * M + j`` has bit ``l`` = spike of input ``j * L + l`` at timestep ``t``
       (0 for padding inputs ``>= N``).
    4. Write ``control.start`` = 1. ``status.busy`` is 1 for ``cycles`` cycles, then ``status.done`` = 1.
       Loads are ignored while busy.
    5. For each output neuron ``c`` of interest: write ``readout`` = ``c``; this selects input 0. Then ``N``
       times: wait for ``status.ready`` = 1 (it takes ``W + 3`` cycles, less than one CSR access over
       UARTBone), read ``importance`` (for input ``readout_index``), write ``advance`` = 1 for the next
       input (after input ``N - 1`` it wraps to 0).

    Loading weights while a readout is pending invalidates it: write ``readout`` again.
    """


class TraceExplainer(LiteXModule):
    """The trace-register explainer core (see the module docstring and the ``ModuleDoc`` for the CSR map).

    Args:
        n_inputs: input neurons ``N`` (1 to 65535).
        n_outputs: output neurons ``C`` whose weights are held (1 to 255).
        n_steps: timesteps ``T`` per spike train (1 to 65535).
        lanes: parallel lanes ``L`` (1 to 8); each owns a trace RAM and a multiplier.
        spec: the `FixedPointSpec` (decay and widths).
        weights: optional initial weight RAM contents, quantised ``w[i, c]`` as ints in row-major order
            (``N * C`` values); ``None`` loads zeros (weights are then written through the CSRs).
        dsp: ``"sb_mac16"`` instantiates each lane's decay multiplier as a registered iCE40 ``SB_MAC16``
            (what the bitstream and the exported Verilog hold; see `sc_neurocore.fpga.dsp`), ``"behavioral"``
            writes the same register stages in Migen (for Migen's simulator and Verilator).

    Example:
        >>> from sc_neurocore.fpga import FixedPointSpec
        >>> core = TraceExplainer(784, 10, 25, 8, FixedPointSpec(decay=0.95))
        >>> core.cycles_per_run
        2454
    """

    def __init__(self, n_inputs: int, n_outputs: int, n_steps: int, lanes: int, spec: FixedPointSpec,
                 weights=None, dsp: str = "behavioral") -> None:
        check_geometry(n_inputs, n_outputs, n_steps, lanes, spec)
        self.dsp = check_dsp_kind(dsp)
        self.n_inputs, self.n_outputs, self.n_steps, self.lanes, self.spec = n_inputs, n_outputs, n_steps, lanes, spec
        words = words_per_lane(n_inputs, lanes)
        slots = cycles_per_step(n_inputs, lanes)
        self.words_per_lane = words
        self.cycles_per_run = cycles_per_run(n_inputs, n_steps, lanes)
        trace_bits, weight_bits = spec.trace_bits, spec.weight_bits
        importance_bits = spec.importance_bits
        spike_depth = n_steps * words
        weight_depth = n_inputs * n_outputs
        if weights is not None:
            weights = [int(w) for w in weights]
            if len(weights) != weight_depth:
                raise ValueError(f"weights: expected {weight_depth} values (n_inputs * n_outputs), got {len(weights)}")
            if any(w < spec.weight_min or w > spec.weight_max for w in weights):
                raise ValueError(f"weights: expected ints in [{spec.weight_min}, {spec.weight_max}]")
            weights = [w & ((1 << weight_bits) - 1) for w in weights]
        address_bits = _bits(max(spike_depth, weight_depth))

        self.doc = _TraceExplainerDoc()

        # CSRs: the register map is the interface contract (documented in the ModuleDoc above).
        self.control = CSRStorage(fields=[
            CSRField("start", size=1, pulse=True, description="Write 1 to run all ``T`` timesteps from zero traces."),
        ], description="Run control.")
        self.load_target = CSRStorage(fields=[
            CSRField("memory", size=1, description="Memory that ``load_data`` writes.",
                     values=[("0", "spikes", "the spike-train RAM"), ("1", "weights", "the weight RAM")]),
        ], description="Selects the memory written by ``load_data``.")
        self.load_address = CSRStorage(address_bits, description="Word address of the next ``load_data`` write; "
                                       "writing it sets the load pointer.")
        self.load_data = CSRStorage(max(lanes, weight_bits), description="Writing stores this word at the load "
                                    "pointer in the selected memory and advances the pointer. Spikes: ``L`` bits; "
                                    "weights: ``B``-bit two's complement.")
        self.readout = CSRStorage(fields=[
            CSRField("output_neuron", size=8, description="Output neuron ``c`` to read (``c >= C`` sets "
                     "``status.readout_error``)."),
        ], description="Writing selects output neuron ``c`` and input 0, and starts computing its importance.")
        self.advance = CSRStorage(fields=[
            CSRField("next", size=1, pulse=True, description="Write 1 to move the readout to the next input."),
        ], description="Steps the readout through the inputs.")
        self.status = CSRStatus(fields=[
            CSRField("busy", size=1, description="A run is in progress."),
            CSRField("done", size=1, description="The last run finished: the traces are valid."),
            CSRField("ready", size=1, description="``importance`` holds the selected input's value."),
            CSRField("readout_error", size=1, description="The last ``readout`` named an output neuron ``>= C``: "
                     "nothing is read out (``ready`` stays 0) until a valid ``readout``."),
            CSRField("load_error", size=1, description="A ``load_data`` write fell past the end of the selected "
                     "memory and was dropped (nothing wraps); cleared by writing ``load_address``."),
        ], description="Core status.")
        self.importance = CSRStatus(32, description="``trace[i] * weight[i, c]`` for ``i = readout_index``, signed, "
                                    "sign-extended to 32 bits; valid while ``status.ready`` is 1.")
        self.readout_index = CSRStatus(16, description="Input neuron ``i`` that ``importance`` belongs to.")
        self.cycles = CSRStatus(32, description="Clock cycles the last run took.")
        self.geometry = CSRStatus(fields=[
            CSRField("n_inputs", size=16, description="Input neurons ``N``."),
            CSRField("n_outputs", size=8, description="Output neurons ``C``."),
            CSRField("lanes", size=8, description="Lanes ``L``."),
        ], description="Sizes the core was built for (constant).")
        self.steps = CSRStatus(fields=[
            CSRField("n_steps", size=16, description="Timesteps ``T`` per spike train."),
            CSRField("words_per_lane", size=16, description="``M = ceil(N / L)``."),
        ], description="Timesteps and spike-RAM stride (constant).")
        self.format = CSRStatus(fields=[
            CSRField("trace_bits", size=5, description="Trace width ``W``."),
            CSRField("frac_bits", size=5, description="Trace fraction bits ``F``."),
            CSRField("decay_bits", size=5, description="Decay fraction bits ``k``."),
            CSRField("weight_bits", size=5, description="Weight width ``B``."),
            CSRField("weight_frac_bits", size=5, description="Weight fraction bits ``G``."),
        ], description="Fixed-point format (constant).")
        self.decay = CSRStatus(17, description="Decay multiplier ``D_int`` (``D = D_int / 2**k``, constant).")

        self.comb += [
            self.geometry.fields.n_inputs.eq(n_inputs), self.geometry.fields.n_outputs.eq(n_outputs),
            self.geometry.fields.lanes.eq(lanes),
            self.steps.fields.n_steps.eq(n_steps), self.steps.fields.words_per_lane.eq(words),
            self.format.fields.trace_bits.eq(trace_bits), self.format.fields.frac_bits.eq(spec.frac_bits),
            self.format.fields.decay_bits.eq(spec.decay_bits), self.format.fields.weight_bits.eq(weight_bits),
            self.format.fields.weight_frac_bits.eq(spec.weight_frac_bits),
            self.decay.status.eq(spec.decay_int),
        ]

        # Memories (Migen needs a depth of at least 2; a spare word is never addressed).
        spike_ram = Memory(lanes, max(spike_depth, 2), name="spike_ram")
        weight_ram = Memory(weight_bits, max(weight_depth, 2), name="weight_ram",
                            init=None if weights is None else weights + [0] * (weight_depth < 2))
        trace_rams = [Memory(trace_bits, max(words, 2), name=f"trace_ram{lane}") for lane in range(lanes)]
        spike_port = spike_ram.get_port(write_capable=True)
        weight_port = weight_ram.get_port(write_capable=True)
        trace_reads = [ram.get_port() for ram in trace_rams]
        trace_writes = [ram.get_port(write_capable=True) for ram in trace_rams]
        self.specials += spike_ram, weight_ram, spike_port, weight_port, *trace_rams, *trace_reads, *trace_writes

        # Run control: issue one word per cycle, ``slots`` cycles per timestep.
        busy = Signal()
        issuing = Signal()
        done = Signal()
        step = Signal(_bits(n_steps - 1))
        slot = Signal(_bits(slots - 1))
        spike_address = Signal(_bits(spike_depth))
        cycles = Signal(32)
        issue_valid = Signal()
        self.comb += issue_valid.eq(issuing & (slot < words))

        # Load pointer, shared by both single-port memories.
        load_pointer = Signal(address_bits)
        load_write = Signal()
        load_spikes = Signal()
        load_weights = Signal()
        self.comb += [
            load_write.eq(self.load_data.re & ~busy),
            # A word past the end of its memory is dropped (and flagged), never written to a wrapped address.
            load_spikes.eq(load_write & (self.load_target.fields.memory == 0) & (load_pointer < spike_depth)),
            load_weights.eq(load_write & (self.load_target.fields.memory == 1) & (load_pointer < weight_depth)),
        ]
        load_error = Signal()
        overflow = load_write & ~load_spikes & ~load_weights
        self.sync += [
            If(self.load_address.re, load_pointer.eq(self.load_address.storage), load_error.eq(0))
            .Elif(load_write, If(overflow, load_error.eq(1)).Else(load_pointer.eq(load_pointer + 1))),
        ]

        # Pipeline registers (stage 1: RAM data out; stage 2: multiplier input; stage 3: product).
        valid = [Signal(name=f"valid{n}") for n in range(1, PIPELINE_DEPTH + 1)]
        word = [Signal(_bits(words - 1), name=f"word{n}") for n in range(1, PIPELINE_DEPTH + 1)]
        first1 = Signal()

        self.sync += [
            valid[0].eq(issue_valid), word[0].eq(slot), first1.eq(step == 0),
            valid[1].eq(valid[0]), word[1].eq(word[0]),
            valid[2].eq(valid[1]), word[2].eq(word[1]),
        ]

        # Readout state (a sequential shift-add multiplier: no ninth SB_MAC16 on a UP5K).
        readout_lane = Signal(_bits(lanes - 1))
        readout_word = Signal(_bits(words - 1))
        readout_index = Signal(16)
        readout_weight = Signal(_bits(weight_depth))
        readout_phase = Signal(2)  # 0 idle, 1 address out, 2 data in, 3 multiplying
        ready = Signal()
        readout_error = Signal()
        multiplicand = Signal((importance_bits, True))
        multiplier = Signal(trace_bits)
        multiply_count = Signal(_bits(trace_bits))
        accumulator = Signal((importance_bits, True))

        self.comb += [
            spike_port.adr.eq(Mux(busy, spike_address, load_pointer)),
            spike_port.dat_w.eq(self.load_data.storage[:lanes]),
            spike_port.we.eq(load_spikes),
            weight_port.adr.eq(Mux(load_weights, load_pointer, readout_weight)),
            weight_port.dat_w.eq(self.load_data.storage[:weight_bits]),
            weight_port.we.eq(load_weights),
        ]

        increment, decay_int, decay_bits, trace_max = spec.spike_increment, spec.decay_int, spec.decay_bits, spec.trace_max
        for lane, (read, write) in enumerate(zip(trace_reads, trace_writes, strict=True)):
            # The lane's SB_MAC16 (sc_neurocore.fpga.dsp): the A input register holds the trace plus the spike
            # increment (stage 1 -> 2), the B input register the constant D_int, the output register the
            # product (stage 2 -> 3). Every DSP port is a register port, so nextpnr times the multiply.
            total_next = Signal(16, name=f"sum_next{lane}")  # x + 2**F s < 2**W + 2**F <= 2**16 (W <= 15)
            total = Signal(16, reset_less=True, name=f"sum{lane}")
            decay_reg = Signal(16, reset_less=True, name=f"decay{lane}")
            product = Signal(32, reset_less=True, name=f"product{lane}")
            shifted = Signal(len(product) - decay_bits, name=f"shifted{lane}")
            self.comb += [
                read.adr.eq(Mux(busy, slot, readout_word)),
                # Trace (0 at the first timestep) plus the spike increment.
                total_next.eq(Mux(first1, 0, read.dat_r) + Mux(spike_port.dat_r[lane], increment, 0)),
            ]
            registered_multiplier(self, dsp, total_next, Constant(decay_int, 16), total, decay_reg, product,
                                  signed=False)
            self.comb += [
                shifted.eq(product[decay_bits:]),  # floor(product / 2**k)
                write.adr.eq(word[2]),
                write.dat_w.eq(Mux(shifted > trace_max, trace_max, shifted)),  # saturate, never wrap
                write.we.eq(valid[2]),
            ]

        self.sync += [
            If(self.control.fields.start & ~busy,
                busy.eq(1), issuing.eq(1), done.eq(0), step.eq(0), slot.eq(0), spike_address.eq(0), cycles.eq(0),
            ).Elif(busy,
                cycles.eq(cycles + 1),
                If(issuing,
                    If(issue_valid, spike_address.eq(spike_address + 1)),
                    If(slot == slots - 1,
                        slot.eq(0),
                        If(step == n_steps - 1, issuing.eq(0)).Else(step.eq(step + 1)),
                    ).Else(slot.eq(slot + 1)),
                ).Elif(~(valid[0] | valid[1] | valid[2]),
                    busy.eq(0), done.eq(1),
                ),
            ),
        ]

        trace_out = Array([read.dat_r for read in trace_reads])[readout_lane]
        weight_signed = Signal((weight_bits, True))
        self.comb += weight_signed.eq(weight_port.dat_r)
        self.sync += [
            If(self.readout.re,
                readout_lane.eq(0), readout_word.eq(0), readout_index.eq(0),
                readout_weight.eq(self.readout.fields.output_neuron), ready.eq(0),
                readout_error.eq(self.readout.fields.output_neuron >= n_outputs),
                readout_phase.eq(Mux(self.readout.fields.output_neuron >= n_outputs, 0, 1)),
            ).Elif(readout_error,
                readout_phase.eq(0), ready.eq(0),
            ).Elif(self.advance.fields.next,
                If(readout_index == n_inputs - 1,
                    readout_lane.eq(0), readout_word.eq(0), readout_index.eq(0),
                    readout_weight.eq(self.readout.fields.output_neuron),
                ).Else(
                    If(readout_lane == lanes - 1,
                        readout_lane.eq(0), readout_word.eq(readout_word + 1),
                    ).Else(readout_lane.eq(readout_lane + 1)),
                    readout_index.eq(readout_index + 1), readout_weight.eq(readout_weight + n_outputs),
                ),
                readout_phase.eq(1), ready.eq(0),
            ).Elif(busy | load_write,
                # A run or a load changes the RAMs under the readout: it must be selected again.
                readout_phase.eq(0), ready.eq(0),
            ).Elif(readout_phase == 1,
                readout_phase.eq(2),
            ).Elif(readout_phase == 2,
                multiplicand.eq(weight_signed), multiplier.eq(trace_out), accumulator.eq(0),
                multiply_count.eq(trace_bits), readout_phase.eq(3),
            ).Elif(readout_phase == 3,
                If(multiplier[0], accumulator.eq(accumulator + multiplicand)),
                multiplicand.eq(multiplicand << 1), multiplier.eq(multiplier >> 1),
                multiply_count.eq(multiply_count - 1),
                If(multiply_count == 1, readout_phase.eq(0), ready.eq(1)),
            ),
        ]

        self.comb += [
            self.importance.status.eq(Cat(accumulator, Replicate(accumulator[-1], 32 - importance_bits))),
            self.readout_index.status.eq(readout_index),
            # A command's strobe comes one cycle after its bus write; a status read in that very cycle must
            # already see the command's effect, so the strobes mask the registered flags.
            self.status.fields.busy.eq(busy | self.control.fields.start),
            self.status.fields.done.eq(done & ~self.control.fields.start),
            self.status.fields.ready.eq(ready & ~self.readout.re & ~self.advance.fields.next),
            self.status.fields.readout_error.eq(Mux(self.readout.re, self.readout.fields.output_neuron >= n_outputs,
                                                    readout_error)),
            self.status.fields.load_error.eq(load_error | overflow),
            self.cycles.status.eq(cycles),
        ]


class StandaloneTraceExplainer(Module):
    """A `TraceExplainer` behind its own LiteX CSR bank: what `export` writes out.

    Ports: the ``sys`` clock and reset, and a LiteX CSR bus ``bus`` (``adr`` 14 bits of word address,
    ``we``, ``re``, ``dat_w`` / ``dat_r`` 32 bits). A write drives ``adr``, ``dat_w`` and ``we = 1`` for one
    cycle; a read drives ``adr`` and finds ``dat_r`` valid on the next cycle. Register ``n`` of
    `CSR_MAP` is at word address ``n``.

    Its arguments are those of `TraceExplainer`.

    Example:
        >>> from sc_neurocore.fpga import FixedPointSpec
        >>> top = StandaloneTraceExplainer(16, 2, 4, 2, FixedPointSpec(decay=0.9))
        >>> len(top.bus.adr), len(top.bus.dat_r)
        (14, 32)
    """

    def __init__(self, n_inputs: int, n_outputs: int, n_steps: int, lanes: int, spec: FixedPointSpec,
                 weights=None, dsp: str = "behavioral") -> None:
        self.submodules.explainer = TraceExplainer(n_inputs, n_outputs, n_steps, lanes, spec, weights, dsp)
        self.bus = csr_bus.Interface(data_width=32, address_width=CSR_ADDRESS_BITS)
        registers = self.explainer.get_csrs()
        self.submodules.bank = csr_bus.CSRBank(registers, address=0, bus=self.bus)
        names = tuple(register.name for register in registers)
        if names != CSR_MAP or len(self.bank.simple_csrs) != len(CSR_MAP):  # the map is the interface contract
            raise RuntimeError(f"the CSR bank {names} does not match CSR_MAP {CSR_MAP} one word per register")
