"""`NetworkExplainer`: the whole LIF network on chip, classifying and explaining a streamed spike train.

The arithmetic is exactly `sc_neurocore.fpga.network_reference.run_network`; one `NetworkSpec` and one
`QuantizedNetwork` drive the gateware, the reference and the tests.

Datapath: `L` lanes, each with one signed `16 x 16` multiplier whose inputs and product are registers:
written as plain registers that yosys packs into an `SB_MAC16` with `A_REG = B_REG = 1` and its output
register (`TOPOUTPUT_SELECT = BOTOUTPUT_SELECT = 1`), so every DSP port is a register port and nextpnr
times every path into and out of it against the clock (the build reads the netlist and reports whether
this held). The multiplier is shared in time by four kinds
of operation, all issued in lock step to every lane by one controller:

* `TRACE`: `x <- min(D_int (x + 2**F s) >> k, 2**W - 1)` for input `m L + l`;
* `LEAK`: `acc <- (beta_int v) >> kb - r theta` for neuron `g L + l` of a layer (`r` its last spike; a
  zero reset loads `0` instead when `r`). Norse's same-step zero reset (`reset_delay=False`) runs on the
  same datapath: storing `0` at a spike and leaking it next step, or storing the membrane and loading
  `0` next step, give the next membrane `I_{t+1}` either way, so every spike, count and importance is
  the same (only the unobservable stored membrane differs);
* `SYN`: `acc <- acc + w s` for one presynaptic input (the spike `s` is broadcast, the weight is the
  lane's); after the last input the membrane is written back and the spike decided;
* `IMP`: `x[i] * q(W_eff)[i, c]` for the predicted class `c`, recomputed once per top-k pass.

Memories per lane: a weight ROM (synapses of the lane's neurons, then its inputs' `W_eff` rows; block
RAM, initialised in the bitstream) and a state RAM (traces, then membranes; block RAM). One results RAM
(32-bit, block RAM) holds the top-k, the spike counts and the importance for the host to read.

Timestep `t` arrives as one beat of `sink` (`N` bits, bit `i` = input `i`); there is no spike RAM: a
beat is consumed before the next one is accepted, and a beat that arrives outside a run is dropped and
flags `stream_error`. After `n_steps` beats the core takes the argmax of the output spike counts (the
first maximum), computes the importance, ranks it (`top_k` selection passes over `|importance|`, ties
to the lower input) and raises `done` (an `EventManager` event).

Requires the `fpga` extra (`pip install 'spikexplain[fpga]'`).
"""

from __future__ import annotations

from ..extras import missing_extra
from .network_reference import QuantizedNetwork, check_saturation
from .network_spec import NetworkSpec
# DSP_KINDS and SB_MAC16_PARAMETERS are re-exported: the lane multiplier is sc_neurocore.fpga.dsp's.
from .dsp import DSP_KINDS, SB_MAC16_PARAMETERS, check_dsp_kind, registered_multiplier  # noqa: F401

try:
    from litex.gen import LiteXModule
    from litex.soc.integration.doc import ModuleDoc
    from litex.soc.interconnect import stream
    from litex.soc.interconnect.csr import CSRField, CSRStatus, CSRStorage
    from litex.soc.interconnect.csr_eventmanager import EventManager, EventSourcePulse
    from migen import FSM, Array, Case, Cat, If, Memory, Mux, NextState, NextValue, Signal
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise missing_extra("sc_neurocore.fpga.network_core needs migen and litex", "fpga") from error

#: Cycles from an operation's issue until its write-back is visible (RAM read, DSP input registers, DSP
#: output register, write-back from the registered result): the drain between dependent phases.
PIPELINE_DEPTH = 4
#: Extra cycles of the top-k path (lane select, then magnitude, each registered).
RANK_DEPTH = 2
#: Lanes at most: one SB_MAC16 each, and the UP5K has 8.
MAX_LANES = 8
#: The default lane count: the shipped 64-32-10 network then fits 60% of the UP5K's logic cells and still
#: takes a timestep faster than 3 Mbaud can deliver one.
DEFAULT_LANES = 5
TRACE, LEAK, SYN, IMP, CLEAR = 0, 1, 2, 3, 4


def _bits(n: int) -> int:
    """Bits to hold `0 .. n` (at least 1)."""
    return max(1, int(n).bit_length())


def _per_layer(layer, values):
    """`values[layer]` as nested `Mux`es (see the comment where it is used)."""
    expression = values[-1]
    for k in range(len(values) - 2, -1, -1):
        expression = Mux(layer == k, values[k], expression)
    return expression


def _groups(n: int, lanes: int) -> int:
    return -(-n // lanes)


def layout(spec: NetworkSpec, lanes: int) -> dict:
    """Sizes and base addresses of the lane memories and the results window.

    Example:
        >>> layout(NetworkSpec(layers=(64, 32, 10), n_steps=25), 8)["weight_depth"]
        403
    """
    groups = [_groups(n, lanes) for n in spec.layers[1:]]
    words = _groups(spec.n_inputs, lanes)
    weight_bases, base = [], 0
    for n_in, g in zip(spec.layers[:-1], groups, strict=True):
        weight_bases.append(base)
        base += g * n_in
    membrane_bases, state = [], words
    for g in groups:
        membrane_bases.append(state)
        state += g
    k, c, n = spec.top_k, spec.n_outputs, spec.n_inputs
    constants = base + c * words  # D_int, then beta_int per layer: the A operand always comes from the ROM
    return {"groups": groups, "words": words, "weight_bases": weight_bases, "effective_base": base,
            "constants": constants, "weight_depth": constants + 1 + len(groups),
            "membrane_bases": membrane_bases, "state_depth": state,
            "top_index": 0, "top_score": k, "counts": 2 * k, "importance": 2 * k + c,
            "results_depth": 2 * k + c + n, "window_words": 1 + 2 * k + c + n}


def cycles_per_step(spec: NetworkSpec, lanes: int) -> int:
    """Cycles from accepting a timestep's beat to being ready for the next one.

    Example:
        >>> cycles_per_step(NetworkSpec(layers=(64, 32, 10), n_steps=25), 8)
        343
    """
    sizes = layout(spec, lanes)
    synapses = sum(g * (n_in + 1) for g, n_in in zip(sizes["groups"], spec.layers[:-1], strict=True))
    return 1 + sizes["words"] + synapses + PIPELINE_DEPTH * len(sizes["groups"])


def cycles_to_done(spec: NetworkSpec, lanes: int) -> int:
    """Cycles from the last timestep's end to `done`: the argmax, `top_k` passes and the `done` cycle.

    Example:
        >>> cycles_to_done(NetworkSpec(layers=(64, 32, 10), n_steps=25), 8)
        731
    """
    return spec.n_outputs + spec.top_k * (spec.n_inputs + PIPELINE_DEPTH + RANK_DEPTH + 2) + 1


def lane_weight_words(network: QuantizedNetwork, lanes: int) -> list[list[int]]:
    """The weight ROM image of every lane (16-bit two's complement words; see the module docstring)."""
    spec = network.spec
    sizes = layout(spec, lanes)
    images = []
    for lane in range(lanes):
        words: list[int] = []
        for weight, groups in zip(network.weights, sizes["groups"], strict=True):
            n_in, n_out = weight.shape
            for g in range(groups):
                neuron = g * lanes + lane
                column = weight[:, neuron].tolist() if neuron < n_out else [0] * n_in
                words += column
        for c in range(spec.n_outputs):
            for m in range(sizes["words"]):
                i = m * lanes + lane
                words.append(int(network.effective[i, c]) if i < spec.n_inputs else 0)
        words += [spec.trace.decay_int, *spec.beta_int]
        images.append([w & 0xFFFF for w in words])
    return images


def check_core(network, lanes) -> None:
    """Validate the arguments of `NetworkExplainer` (shared with the build's fit check)."""
    if not isinstance(network, QuantizedNetwork):
        raise TypeError(f"network: expected a QuantizedNetwork (see quantize_network), got {type(network).__name__}")
    if not isinstance(lanes, int) or isinstance(lanes, bool) or not 1 <= lanes <= MAX_LANES:
        raise ValueError(f"lanes: expected an int in [1, {MAX_LANES}], got {lanes!r}")
    if network.spec.trace.weight_bits > 16:
        raise ValueError("network: W_eff weights must fit the 16-bit weight ROM")
    check_saturation(network)


class _NetworkExplainerDoc(ModuleDoc):
    """Network explainer: a LIF network classifies and explains a streamed spike train on chip

    The network's weights are in the bitstream. Per sample the host:

    1. writes ``control.start`` = 1 (clears membranes, traces, counts and the error bits);
    2. streams ``n_steps`` timesteps into the spike window (one ``N``-bit beat per timestep, as
       ``ceil(N / 32)`` 32-bit words, input ``i`` in bit ``i mod 32`` of word ``i div 32``);
    3. waits for ``done`` (``ev_pending``, or bit 0 of window word 0);
    4. reads window word 0 (status and class), words ``1 .. 2k`` (top-k inputs, then their signed
       importance) and, if wanted, the whole importance vector, each in one burst.

    Window words (32 bits): 0 status (``[0]`` done, ``[1]`` busy, ``[2]`` read_error: a read past the
    window, ``[3]`` stream_error: a beat outside a run, ``[15:8]`` class, ``[31:16]`` timesteps received);
    ``1 + p`` top-k input ``p``; ``1 + k + p`` its importance; ``1 + 2k + c`` spike count of class ``c``;
    ``1 + 2k + C + i`` importance of input ``i``. A read past the last word returns 0 and sets read_error.
    """


class NetworkExplainer(LiteXModule):
    """The network core (see the module docstring and its `ModuleDoc` for the protocol).

    Args:
        network: the `QuantizedNetwork` (its weights become the lanes' ROMs).
        lanes: parallel lanes `L` (1 to 8), one `SB_MAC16` each.
        dsp: `"sb_mac16"` instantiates each multiplier as an iCE40 `SB_MAC16` (what the bitstream and the
            exported Verilog hold; synthesise without yosys' `-dsp`, whose `ice40_dsp` pass rewrites the
            registers of instantiated `SB_MAC16`s in yosys 0.23); `"behavioral"` writes the same register
            stages in Migen, for Migen's simulator (which cannot run an instance).

    Attributes:
        sink: `stream.Endpoint([("data", N)])`, one timestep per beat.
        read_address, read_strobe, read_data: the results window read port (data one cycle after the address).
        computing: 1 from the last timestep's beat to `done`.

    Example:
        >>> from sc_neurocore.data import pretrained_network
        >>> from sc_neurocore.fpga.network_reference import quantize_network
        >>> core = NetworkExplainer(quantize_network(pretrained_network(8), n_steps=25), lanes=8)
        >>> core.cycles_per_step, core.window_words
        (343, 95)
    """

    def __init__(self, network: QuantizedNetwork, lanes: int = DEFAULT_LANES, dsp: str = "behavioral") -> None:
        check_core(network, lanes)
        self.dsp = check_dsp_kind(dsp)
        spec = network.spec
        self.network, self.spec, self.lanes = network, spec, lanes
        sizes = layout(spec, lanes)
        self.layout = sizes
        self.cycles_per_step = cycles_per_step(spec, lanes)
        self.cycles_to_done = cycles_to_done(spec, lanes)
        self.window_words = sizes["window_words"]
        n_in, n_out, top_k = spec.n_inputs, spec.n_outputs, spec.top_k
        words, groups = sizes["words"], sizes["groups"]
        n_layers = len(groups)
        trace = spec.trace

        self.doc = _NetworkExplainerDoc()
        self.sink = stream.Endpoint([("data", n_in)])
        window_bits = _bits(self.window_words)
        self.read_address = Signal(window_bits)
        self.read_data = Signal(32)
        self.read_strobe = Signal()
        self.computing = Signal()

        self.control = CSRStorage(fields=[CSRField("start", size=1, pulse=True, description=(
            "Write 1 to start a sample: clears the state, then ``n_steps`` beats are accepted."))],
            description="Run control.")
        self.geometry = CSRStatus(fields=[
            CSRField("n_inputs", size=12, description="Input neurons ``N``."),
            CSRField("n_outputs", size=8, description="Classes ``C``."),
            CSRField("top_k", size=8, description="Ranked inputs ``k``."),
            CSRField("lanes", size=4, description="Lanes ``L``."),
        ], description="Sizes (constant).")
        self.timing = CSRStatus(fields=[
            CSRField("n_steps", size=16, description="Timesteps per sample."),
            CSRField("cycles_per_step", size=16, description="Cycles one timestep takes."),
        ], description="Timesteps and cycles (constant).")
        self.cycles = CSRStatus(32, description="Clock cycles from ``start`` to ``done`` of the last sample.")
        self.ev = EventManager()
        self.ev.done = EventSourcePulse(description="A sample finished: class, top-k and importance are valid.")
        self.ev.finalize()
        self.comb += [
            self.geometry.fields.n_inputs.eq(n_in), self.geometry.fields.n_outputs.eq(n_out),
            self.geometry.fields.top_k.eq(top_k), self.geometry.fields.lanes.eq(lanes),
            self.timing.fields.n_steps.eq(spec.n_steps),
            self.timing.fields.cycles_per_step.eq(self.cycles_per_step),
        ]

        # Memories.
        images = lane_weight_words(network, lanes)
        roms = [Memory(16, max(2, sizes["weight_depth"]), init=image, name=f"weight_rom{lane}")
                for lane, image in enumerate(images)]
        states = [Memory(16, max(2, sizes["state_depth"]), name=f"state_ram{lane}") for lane in range(lanes)]
        results = Memory(32, sizes["results_depth"], name="results_ram")
        rom_ports = [rom.get_port() for rom in roms]
        state_reads = [ram.get_port() for ram in states]
        state_writes = [ram.get_port(write_capable=True) for ram in states]
        results_write = results.get_port(write_capable=True)
        results_read = results.get_port()
        self.specials += (*roms, *rom_ports, *states, *state_reads, *state_writes, results, results_write,
                          results_read)

        # Run state.
        running, done, read_error, stream_error = Signal(), Signal(), Signal(), Signal()
        steps_seen = Signal(16)
        spikes = self.sink.data  # held by the window until the step's last cycle takes the beat
        previous_output = Signal(n_out)  # the output layer's spikes of the last step (its reset bits)
        hidden = [Signal(n, name=f"hidden{k}") for k, n in enumerate(spec.layers[1:-1])]
        counts = [Signal(spec.count_bits, name=f"count{c}") for c in range(n_out)]
        predicted = Signal(_bits(max(n_out - 1, 1)))
        cycle_count = Signal(24)
        done_pulse = Signal()
        self.comb += self.ev.done.trigger.eq(done_pulse)

        # Issue stage (driven by the controller below).
        kind_bits, layer_bits = 3, _bits(max(n_layers - 1, 1))
        issue = {"valid": Signal(), "kind": Signal(kind_bits), "last": Signal(), "layer": Signal(layer_bits),
                 "group": Signal(_bits(max(max(groups) - 1, 1))), "state": Signal(_bits(sizes["state_depth"])),
                 "rom": Signal(_bits(sizes["weight_depth"])), "bit": Signal(_bits(max(*spec.layers[:-1], words))),
                 "lane": Signal(_bits(max(lanes - 1, 1))), "index": Signal(_bits(n_in))}
        for port in rom_ports:
            self.comb += port.adr.eq(issue["rom"])
        for port in state_reads:
            self.comb += port.adr.eq(issue["state"])

        def delayed(stage_in, name):
            # Only `valid` needs a reset: the other fields are ignored while it is 0.
            stage = {key: Signal.like(value, name=f"{name}_{key}", reset_less=key != "valid")
                     for key, value in stage_in.items()}
            self.sync += [stage[key].eq(value) for key, value in stage_in.items()]
            return stage

        s1 = delayed(issue, "s1")
        s2 = delayed(s1, "s2")
        s3 = delayed(s2, "s3")
        s4 = delayed({key: s3[key] for key in ("valid", "kind", "last", "layer", "group", "state")}, "s4")

        # Stage 1: operands. The layer input bit is the same for every lane.
        layer_inputs = [spikes] + hidden
        syn_bit = Signal()
        self.comb += Case(s1["layer"], {k: syn_bit.eq(Array([layer_inputs[k][i] for i in range(len(layer_inputs[k]))])
                                                      [s1["bit"]]) for k in range(n_layers)})
        thresholds = [t if spec.reset == "subtract" else 0 for t in spec.threshold_int]
        products = []
        accumulators = []
        acc_bits = spec.membrane_bits + 2
        for lane in range(lanes):
            trace_value = Signal(16, name=f"trace_value{lane}")
            self.comb += trace_value.eq(state_reads[lane].dat_r)
            lane_bits = [spikes[m * lanes + lane] if m * lanes + lane < n_in else 0 for m in range(words)]
            trace_spike = Signal(name=f"trace_spike{lane}")
            self.comb += trace_spike.eq(Array(lane_bits)[s1["bit"]])
            weight = Signal((16, True), name=f"weight{lane}")
            self.comb += weight.eq(rom_ports[lane].dat_r)
            # The lane's multiplier: registered operands and a registered product. A is always a ROM word
            # (weight, W_eff, D_int or beta_int), so a_reg is a plain register that yosys packs as A_REG.
            a_reg = Signal((16, True), reset_less=True, name=f"mac_a{lane}")
            b_reg = Signal((16, True), reset_less=True, name=f"mac_b{lane}")
            p_reg = Signal((32, True), reset_less=True, name=f"mac_p{lane}")
            b_next = Signal((16, True), name=f"b_next{lane}")
            is_trace = Signal(name=f"is_trace{lane}")
            self.comb += [
                is_trace.eq(s1["kind"] == TRACE),
                # TRACE: x + 2**F s; LEAK: v; IMP: x (the state word); SYN: the broadcast input spike.
                b_next.eq(Mux(s1["kind"] == SYN, syn_bit,
                              trace_value + ((trace_spike & is_trace) << trace.frac_bits))),
            ]
            self._multiplier(weight, b_next, a_reg, b_reg, p_reg, s2["valid"])
            products.append(p_reg)

            # Stage 3: results.
            acc = Signal((acc_bits, True), name=f"acc{lane}", reset_less=True)
            accumulators.append(acc)
            # Per-layer constants as a Mux chain (a continuous assignment): an always @(*) block of constants
            # whose selector never changes is never run by an event-driven simulator such as iverilog.
            theta = Signal((16, True), name=f"theta{lane}")
            self.comb += theta.eq(_per_layer(s3["layer"], thresholds))
            spike_threshold = Signal((16, True), name=f"fire_threshold{lane}")
            self.comb += spike_threshold.eq(_per_layer(s4["layer"], spec.threshold_int))
            # D_int (x + 2**F) < 2**(15 + 15): the shifted product has at most 16 bits. The build refuses a
            # spec whose trace can saturate (check_saturation), so the reference's clamp never acts here.
            decayed = Signal(16, name=f"decayed{lane}")
            self.comb += decayed.eq(p_reg >> trace.decay_bits)
            # The reset bit r = H(v[t-1] - theta) is the neuron's spike of the last step, still in its register
            # (LEAK of a group comes before the write of that group's new spikes).
            reset_bit = Signal(name=f"reset_bit{lane}")
            previous = {}
            for k in range(n_layers):
                source = hidden[k] if k < n_layers - 1 else previous_output
                bits = [source[g * lanes + lane] if g * lanes + lane < spec.layers[k + 1] else 0
                        for g in range(groups[k])]
                previous[k] = reset_bit.eq(Array(bits)[s3["group"]])
            self.comb += Case(s3["layer"], previous)
            # One adder: LEAK loads floor(beta v / 2**kb) - r theta (a zero reset: r ? 0 : floor(beta v / 2**kb)),
            # SYN adds w s to it.
            leak = s3["kind"] == LEAK
            total = Signal((acc_bits, True), name=f"total{lane}")
            if spec.reset == "zero":
                self.comb += total.eq(Mux(leak, Mux(reset_bit, 0, p_reg >> spec.beta_bits), acc + p_reg))
            else:
                self.comb += total.eq(Mux(leak, -Mux(reset_bit, theta, 0), acc)
                                      + Mux(leak, p_reg >> spec.beta_bits, p_reg))
            # acc holds the stage's result for the write-back at stage 4: the new trace, the membrane, or 0.
            self.sync += If(s3["valid"], Case(s3["kind"], {
                LEAK: acc.eq(total), SYN: acc.eq(total), TRACE: acc.eq(decayed), CLEAR: acc.eq(0)}))

            # Stage 4: write back, and decide the spike from the registered membrane.
            fired = Signal(name=f"fired{lane}")
            self.comb += fired.eq(acc > spike_threshold)
            write = state_writes[lane]
            self.comb += [write.adr.eq(s4["state"]), write.dat_w.eq(acc),
                          write.we.eq(s4["valid"] & ((s4["kind"] == TRACE) | (s4["kind"] == CLEAR)
                                                     | ((s4["kind"] == SYN) & s4["last"])))]
            # The layer's output: a hidden spike bit, or an output spike count.
            for k in range(n_layers):
                for g in range(groups[k]):
                    neuron = g * lanes + lane
                    if neuron >= spec.layers[k + 1]:
                        continue
                    hit = s4["valid"] & (s4["kind"] == SYN) & s4["last"] & (s4["layer"] == k) & (s4["group"] == g)
                    if k < n_layers - 1:
                        self.sync += If(hit, hidden[k][neuron].eq(fired))
                    else:
                        self.sync += If(hit, previous_output[neuron].eq(fired),
                                        If(fired, counts[neuron].eq(counts[neuron] + 1)))

        # Importance and top-k after stage 3 of IMP operations: the selected lane's product (stage 5), its
        # magnitude (stage 6), then the comparison, each registered so that no path chains them.
        imp_bits = trace.trace_bits + 16
        index_bits = _bits(n_in)
        value5, index5, valid5 = Signal((imp_bits, True), reset_less=True), Signal(index_bits, reset_less=True), Signal()
        key6, sign6, valid6 = Signal(imp_bits + index_bits, reset_less=True), Signal(reset_less=True), Signal()
        self.sync += [
            value5.eq(Array(products)[s3["lane"]]), index5.eq(s3["index"]),
            valid5.eq(s3["valid"] & (s3["kind"] == IMP)),
            # The rank key: |importance| first, then the lower index (inverted, so a larger key ranks first).
            key6.eq(Cat(~index5, Mux(value5 < 0, -value5, value5))), sign6.eq(value5 < 0), valid6.eq(valid5),
        ]
        top_pass = Signal(_bits(top_k))
        best_key, best_sign, have = Signal(imp_bits + index_bits, reset_less=True), Signal(reset_less=True), Signal()
        previous_key = Signal(imp_bits + index_bits)
        best_index, best_magnitude = Signal(index_bits), Signal(imp_bits)
        self.comb += [best_index.eq(~best_key[:index_bits]), best_magnitude.eq(best_key[index_bits:])]
        best_value = Signal((imp_bits + 1, True))
        self.comb += best_value.eq(Mux(best_sign, -best_magnitude, best_magnitude))
        eligible = Signal()
        self.comb += eligible.eq((top_pass == 0) | (key6 < previous_key))
        self.sync += If(valid6 & eligible & (~have | (key6 > best_key)),
                        have.eq(1), best_key.eq(key6), best_sign.eq(sign6))

        # The controller.
        fsm = FSM(reset_state="IDLE")
        self.fsm = fsm
        counter = Signal(_bits(max(*spec.layers, sizes["state_depth"] + PIPELINE_DEPTH, PIPELINE_DEPTH + RANK_DEPTH)))
        group = Signal.like(issue["group"])
        rom_address = Signal.like(issue["rom"])
        word, lane_select, index = Signal(_bits(words)), Signal.like(issue["lane"]), Signal(_bits(n_in))
        start = self.control.fields.start
        best_count = Signal(spec.count_bits)
        count_value = Signal(spec.count_bits)
        self.comb += count_value.eq(Array(counts)[counter[:_bits(max(n_out - 1, 1))]])

        def begin_run():
            return [NextValue(running, 1), NextValue(done, 0), NextValue(read_error, 0), NextValue(stream_error, 0),
                    NextValue(steps_seen, 0), NextValue(cycle_count, 0), NextValue(counter, 0),
                    *[NextValue(c, 0) for c in counts], *[NextValue(h, 0) for h in hidden], NextValue(previous_output, 0),
                    NextState("CLEAR")]

        self.sync += If(running, cycle_count.eq(cycle_count + 1))
        self.comb += self.computing.eq(running & (steps_seen == spec.n_steps))
        fsm.act("IDLE",
            self.sink.ready.eq(1),  # a beat outside a run is dropped (and flagged)
            If(self.sink.valid, NextValue(stream_error, 1)),
            If(start, *begin_run()),
        )
        clear_end = sizes["state_depth"] + PIPELINE_DEPTH
        fsm.act("CLEAR",
            issue["valid"].eq(counter < sizes["state_depth"]), issue["kind"].eq(CLEAR), issue["state"].eq(counter),
            NextValue(counter, counter + 1),
            If(counter == clear_end - 1, NextState("WAIT_BEAT")),
        )
        fsm.act("WAIT_BEAT",
            If(start, *begin_run()).Elif(self.sink.valid,
                NextValue(steps_seen, steps_seen + 1),
                NextValue(counter, 0), NextValue(rom_address, 0), NextState("TRACE")),
        )
        fsm.act("TRACE",
            issue["valid"].eq(1), issue["kind"].eq(TRACE), issue["state"].eq(counter), issue["bit"].eq(counter),
            issue["rom"].eq(sizes["constants"]),
            NextValue(counter, counter + 1),
            If(counter == words - 1, NextValue(counter, 0), NextValue(group, 0), NextState("L0_LEAK")),
        )
        for k in range(n_layers):
            n_pre = spec.layers[k]
            fsm.act(f"L{k}_LEAK",
                issue["valid"].eq(1), issue["kind"].eq(LEAK), issue["layer"].eq(k), issue["group"].eq(group),
                issue["state"].eq(sizes["membrane_bases"][k] + group), issue["rom"].eq(sizes["constants"] + 1 + k),
                NextValue(counter, 0), NextState(f"L{k}_SYN"),
            )
            last_group = group == groups[k] - 1
            fsm.act(f"L{k}_SYN",
                issue["valid"].eq(1), issue["kind"].eq(SYN), issue["layer"].eq(k), issue["group"].eq(group),
                issue["state"].eq(sizes["membrane_bases"][k] + group), issue["rom"].eq(rom_address),
                issue["bit"].eq(counter), issue["last"].eq(counter == n_pre - 1),
                NextValue(counter, counter + 1), NextValue(rom_address, rom_address + 1),
                If(counter == n_pre - 1,
                    NextValue(counter, 0), NextValue(group, group + 1),
                    If(last_group, NextValue(group, 0), NextState(f"L{k}_DRAIN")).Else(NextState(f"L{k}_LEAK"))),
            )
            if k < n_layers - 1:
                after = [NextState(f"L{k + 1}_LEAK")]
            else:
                after = [If(steps_seen == spec.n_steps, NextState("ARGMAX")).Else(NextState("WAIT_BEAT"))]
            fsm.act(f"L{k}_DRAIN",
                NextValue(counter, counter + 1),
                # The step's last cycle takes the beat (the window held it, and its reads, until now).
                *([self.sink.ready.eq(counter == PIPELINE_DEPTH - 1)] if k == n_layers - 1 else []),
                If(counter == PIPELINE_DEPTH - 1, NextValue(counter, 0), NextValue(best_count, 0),
                   NextValue(predicted, 0), *after),
            )
        fsm.act("ARGMAX",
            results_write.adr.eq(sizes["counts"] + counter), results_write.dat_w.eq(count_value),
            results_write.we.eq(1),
            If(count_value > best_count, NextValue(best_count, count_value), NextValue(predicted, counter)),
            NextValue(counter, counter + 1),
            If(counter == n_out - 1,
                NextValue(counter, 0), NextValue(word, 0), NextValue(lane_select, 0), NextValue(index, 0),
                NextValue(top_pass, 0), NextValue(have, 0), NextState("IMP")),
        )
        effective_address = Signal.like(issue["rom"])
        self.comb += effective_address.eq(sizes["effective_base"] + predicted * words + word)
        fsm.act("IMP",
            issue["valid"].eq(1), issue["kind"].eq(IMP), issue["state"].eq(word), issue["rom"].eq(effective_address),
            issue["lane"].eq(lane_select), issue["index"].eq(index),
            NextValue(index, index + 1), NextValue(lane_select, lane_select + 1),
            If(lane_select == lanes - 1, NextValue(lane_select, 0), NextValue(word, word + 1)),
            If(index == n_in - 1, NextValue(counter, 0), NextState("IMP_DRAIN")),
        )
        fsm.act("IMP_DRAIN",
            NextValue(counter, counter + 1),
            If(counter == PIPELINE_DEPTH + RANK_DEPTH - 1, NextState("TOP_INDEX")),
        )
        fsm.act("TOP_INDEX",
            results_write.adr.eq(sizes["top_index"] + top_pass), results_write.dat_w.eq(best_index),
            results_write.we.eq(1), NextState("TOP_SCORE"),
        )
        fsm.act("TOP_SCORE",
            results_write.adr.eq(sizes["top_score"] + top_pass), results_write.dat_w.eq(best_value),
            results_write.we.eq(1),
            NextValue(previous_key, best_key), NextValue(have, 0),
            NextValue(top_pass, top_pass + 1), NextValue(word, 0), NextValue(lane_select, 0), NextValue(index, 0),
            If(top_pass == top_k - 1, NextState("DONE")).Else(NextState("IMP")),
        )
        fsm.act("DONE",
            done_pulse.eq(1), NextValue(done, 1), NextValue(running, 0), NextState("IDLE"),
        )
        # Pass 0 also writes every importance into the results RAM (stage 5; no controller write then).
        self.comb += If(valid5 & (top_pass == 0),
                        results_write.adr.eq(sizes["importance"] + index5), results_write.dat_w.eq(value5),
                        results_write.we.eq(1))
        self.sync += If(self.fsm.ongoing("DONE"), self.cycles.status.eq(cycle_count + 1))

        # The results window read port.
        selected_status, out_of_range = Signal(), Signal()
        status_word = Signal(32)
        self.comb += [
            results_read.adr.eq(self.read_address - 1),
            status_word.eq(Cat(done, running, read_error, stream_error, Signal(4), predicted,
                               *([Signal(8 - len(predicted))] if len(predicted) < 8 else []), steps_seen)),
            self.read_data.eq(Mux(selected_status, status_word, Mux(out_of_range, 0, results_read.dat_r))),
        ]
        self.sync += If(self.read_strobe,
                        selected_status.eq(self.read_address == 0),
                        out_of_range.eq(self.read_address >= self.window_words),
                        If(self.read_address >= self.window_words, read_error.eq(1)))

    def _multiplier(self, a_next, b_next, a_reg, b_reg, product, enable) -> None:
        """`a_reg <= a_next; b_reg <= b_next; if (enable) product <= a_reg * b_reg` (signed 16 x 16 -> 32)."""
        registered_multiplier(self, self.dsp, a_next, b_next, a_reg, b_reg, product, enable, signed=True)
