"""`SpikeWindow`: the Wishbone window of the network core, spikes in as a stream, results out.

A write anywhere in the window is one 32-bit spike word; every `ceil(N / 32)` words make one `N`-bit
beat on `source` (word `j` holds inputs `32 j .. 32 j + 31`, input `i` in bit `i mod 32`). The host
streams a whole sample with fixed-address burst writes of LiteX's UART bridge: no spike RAM, and a beat
the core has not taken yet holds the bus (the build checks that the core takes a beat faster than the
link can deliver one, so the bridge never waits). A read returns the results word at that address (see
`sc_neurocore.fpga.network_core`), with `ack` one cycle after the request.

Requires the `fpga` extra (`pip install 'spikexplain[fpga]'`).
"""

from __future__ import annotations

from ..extras import missing_extra

try:
    from litex.gen import LiteXModule
    from litex.soc.interconnect import stream, wishbone
    from migen import Cat, If, Signal
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise missing_extra("sc_neurocore.fpga.stream_window needs migen and litex", "fpga") from error

#: Bytes of Wishbone address space the window takes (a power of two, at least the results window).
def window_size(window_words: int) -> int:
    """The region size in bytes: a power of two holding `window_words` words.

    Example:
        >>> window_size(95)
        512
    """
    size = 4
    while size < 4 * window_words:
        size *= 2
    return size


class SpikeWindow(LiteXModule):
    """Wishbone slave: writes become spike beats on `source`, reads come from the core's results port.

    Args:
        n_inputs: bits per beat `N`.
        window_words: words of the results window (reads at or past it are the core's out-of-range reads).

    Attributes:
        bus: the Wishbone slave (32-bit, word addressing).
        source: `stream.Endpoint([("data", N)])`.
        read_address, read_strobe, read_data: connect to the core's results port.
        hold: while 1, reads wait (the core holds it between its last timestep and `done`, so that the
            host's read of the results, sent right after the last spike word, answers with the results).

    Example:
        >>> window = SpikeWindow(64, 95)
        >>> len(window.source.data), window.bus_size
        (64, 512)
    """

    def __init__(self, n_inputs: int, window_words: int) -> None:
        words = -(-n_inputs // 32)
        self.bus_size = window_size(window_words)
        self.bus = wishbone.Interface(data_width=32, address_width=32, addressing="word")
        self.source = stream.Endpoint([("data", n_inputs)])
        address_bits = max(1, int(window_words).bit_length())
        self.read_address = Signal(address_bits)
        self.read_strobe = Signal()
        self.read_data = Signal(32)
        self.hold = Signal()

        bus = self.bus
        request, read_now = Signal(), Signal()
        # A read waits while a beat is pending (the host's read after its last spike word must see that
        # beat's effect) and while the core holds it (from the last beat to done).
        self.comb += [request.eq(bus.cyc & bus.stb & ~bus.ack),
                      read_now.eq(request & ~bus.we & ~self.hold & ~self.source.valid)]
        # Reads: the core's port answers one cycle after the address; an address past the window (inside
        # the region) is clamped to `window_words`, which the core flags as an out-of-range read.
        # The SoC's decoder hands the slave the whole word address: only the bits inside the region count.
        region_bits = max(address_bits, (self.bus_size // 4 - 1).bit_length())
        high = bus.adr[address_bits:region_bits] if region_bits > address_bits else 0
        self.comb += [
            self.read_address.eq(bus.adr[:address_bits]),
            If((high != 0) | (bus.adr[:address_bits] > window_words), self.read_address.eq(window_words)),
            self.read_strobe.eq(read_now),
            bus.dat_r.eq(self.read_data),
        ]
        # Writes: assemble the beat; the last word of a beat waits until the previous beat is taken.
        count = Signal(max(1, (words - 1).bit_length()))
        buffered = Signal(32 * (words - 1)) if words > 1 else None
        last_word = count == words - 1
        free = ~self.source.valid | self.source.ready
        beat = Cat(buffered, bus.dat_w) if buffered is not None else bus.dat_w
        self.sync += [
            If(self.source.valid & self.source.ready, self.source.valid.eq(0)),
            bus.ack.eq(0),
            If(read_now, bus.ack.eq(1)),
            If(request & bus.we,
                If(~last_word,
                    bus.ack.eq(1), count.eq(count + 1),
                    *([buffered.eq(Cat(buffered[32:], bus.dat_w))] if buffered is not None and words > 2 else
                      [buffered.eq(bus.dat_w)] if buffered is not None else []),
                ).Elif(free,
                    bus.ack.eq(1), count.eq(0),
                    self.source.valid.eq(1), self.source.data.eq(beat[:n_inputs]),
                ),
            ),
        ]
