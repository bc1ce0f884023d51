"""Spike max-pool 2x2, stride 2: the OR of each window (docs/arithmetic.md), streamed with a row buffer.

The stem uses it to bring the pixel grid down to the token grid.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.hdl import unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl_templates.common import Resources, bits_for, check_choice, check_int, spike_signature
from rtl_templates.timing import BlockModel

FAMILIES = ("ice40", "ecp5")


class SpikeMaxPool2x2(wiring.Component):
    """``out[t, c, y, x] = OR of in[t, c, 2y + dy, 2x + dx]`` over ``dy, dx`` in ``{0, 1}``.

    Parameters: ``channels`` (C), ``height`` and ``width`` (H, W of the input
    grid, both even), ``time_steps`` (T).

    Ports: sink ``i`` (spikes, C bits, T beats per input pixel in raster
    order), source ``o`` (spikes, C bits, T beats per output pixel of the
    ``H/2 x W/2`` grid in raster order). Images follow each other with no gap.

    Datapath: a ``T``-beat delay line holds the left pixel of a pair, so the
    right pixel's beat ``t`` sees the pair's OR. On even rows that OR goes to
    the row buffer; on odd rows it is ORed with the row buffer's word into the
    output register. Memory (row buffer): ``W/2 * T`` words of ``C`` bits,
    address ``(x // 2) * T + t``; one write port, one synchronous read port
    whose address is the next beat's (so the word is ready when the beat is).
    It is written only on even rows and read only on odd rows.

    Latency: an output beat is offered in the cycle after the input beat that
    completes its window. Throughput: one input beat per cycle, so an image
    takes ``H * W * T`` cycles. Backpressure: beats that complete no window
    are always taken; the others need the output register free or emptying,
    so ``i.ready`` depends on ``o.ready`` for them.
    """

    def __init__(self, *, channels: int, height: int, width: int, time_steps: int):
        self.channels = check_int("channels", channels)
        self.height = check_int("height", height, 2)
        self.width = check_int("width", width, 2)
        for name, value in (("height", height), ("width", width)):
            if value % 2:
                raise ValueError(f"{name} must be even, not {value!r}")
        self.time_steps = check_int("time_steps", time_steps)
        super().__init__({"i": In(spike_signature(channels)), "o": Out(spike_signature(channels))})

    @property
    def row_words(self) -> int:
        """Depth of the row buffer: W/2 * T words of C bits."""
        return self.width // 2 * self.time_steps

    def elaborate(self, platform):
        m = Module()
        T, depth = self.time_steps, self.row_words
        # The beat that reads a word comes W*T >= 2 beats after the one that wrote it, so the
        # read (issued one cycle ahead) never races the write: no read-during-write logic.
        m.submodules.rows = rows = Memory(shape=unsigned(self.channels), depth=depth, init=[],
                                          attrs={"no_rw_check": 1})
        wr = rows.write_port()
        rd = rows.read_port(domain="sync")

        t = Signal(range(T))
        x_odd, y_odd = Signal(), Signal()
        addr, base = Signal(range(depth)), Signal(range(depth))  # base = (x // 2) * T
        delay = [Signal(self.channels, name=f"left{k}") for k in range(T)]
        advance, emits, fire = Signal(), Signal(), Signal()
        pair = delay[0] | self.i.payload
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            emits.eq(x_odd & y_odd),
            self.i.ready.eq(~emits | advance),
            fire.eq(self.i.valid & self.i.ready),
            wr.addr.eq(addr), wr.data.eq(pair), wr.en.eq(fire & x_odd & ~y_odd),
        ]

        last_step, last_pair = t == T - 1, addr == depth - 1
        next_addr = Mux(~last_step, addr + 1, Mux(~x_odd, base, Mux(last_pair, 0, addr + 1)))
        m.d.comb += rd.addr.eq(Mux(fire, next_addr, addr))

        with m.If(advance):
            m.d.sync += self.o.valid.eq(fire & emits)
        with m.If(fire & emits):
            m.d.sync += self.o.payload.eq(pair | rd.data)
        with m.If(fire):
            m.d.sync += [a.eq(b) for a, b in zip(delay, delay[1:], strict=False)]
            m.d.sync += [delay[-1].eq(self.i.payload), addr.eq(next_addr),
                         t.eq(Mux(last_step, 0, t + 1))]
            with m.If(last_step):
                m.d.sync += x_odd.eq(~x_odd)
                with m.If(x_odd):
                    m.d.sync += base.eq(Mux(last_pair, 0, addr + 1))
                    with m.If(last_pair):
                        m.d.sync += y_odd.eq(~y_odd)
        return m

    # -- estimates -----------------------------------------------------------
    def model(self) -> MaxPoolModel:
        return MaxPoolModel(self.width, self.time_steps)

    def cycles_per_image(self) -> int:
        """Cycles between images in free flow: one per input beat."""
        return self.height * self.width * self.time_steps

    def cycles(self, images: int) -> int:
        """Cycle in which the last output beat of `images` back-to-back images fires, in free flow."""
        check_int("images", images)
        return images * self.cycles_per_image() + 1

    def resources(self, family: str) -> Resources:
        check_choice("family", family, FAMILIES)
        C, T = self.channels, self.time_steps
        ctr = 2 * bits_for(self.row_words) + bits_for(T)
        # Two ORs per channel (row-buffer word, output word), the counters and address muxes.
        lut = 2 * C + 3 * ctr + 6
        ff = T * C + C + ctr + 3
        return Resources(lut=lut, ff=ff, memories=((self.row_words, C),))


class MaxPoolModel(BlockModel):
    """Control mirror of SpikeMaxPool2x2: position counters and the output register."""

    def __init__(self, width: int, time_steps: int):
        self.width, self.T = width, time_steps
        self.t = self.x = 0
        self.y_odd = False
        self.out_valid = False

    def _emits(self) -> bool:
        return self.y_odd and self.x % 2 == 1

    def valid(self, port):
        return self.out_valid

    def ready(self, port):
        return not self._emits() or not self.out_valid or self.out_ready("o")

    def tick(self, fired):
        if not self.out_valid or fired["o"]:
            self.out_valid = fired["i"] and self._emits()
        if fired["i"]:
            self.t += 1
            if self.t == self.T:
                self.t, self.x = 0, self.x + 1
                if self.x == self.width:
                    self.x, self.y_odd = 0, not self.y_odd

    def quiet(self):
        return 1 << 30  # changes only when a beat fires

    def skip(self, cycles):
        pass
