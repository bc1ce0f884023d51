"""Board tops: what a board build wraps the accelerator in.

"uart" is hwgen.targets.board_top.BoardTop (UART link, self-test, LEDs); "bare" is
`stand_in_top`, the accelerator alone fed by an LFSR, for its own resources and Fmax.
"""

from __future__ import annotations

from amaranth import Elaboratable, Module, Mux, Signal, Value
from amaranth.lib import io

from hwgen.compiler.top import Accelerator
from hwgen.targets.board_top import BoardTop
from hwgen.targets.boards import TOPS, Board


def stand_in_top(graph):
    """A board top for builds until the UART top exists: the accelerator fed from a 32-bit
    LFSR, every result bit XOR-folded into a register on LED 0 (so synthesis keeps all of
    it), output backpressure from the LFSR too. It measures the accelerator's resources and
    Fmax; it talks to nothing."""
    class StandInTop(Elaboratable):
        def __init__(self):
            self.accelerator = Accelerator(graph)

        def elaborate(self, platform):
            m = Module()
            m.submodules.accelerator = acc = self.accelerator
            lfsr = Signal(32, init=1)
            # Galois LFSR, taps 32, 22, 2, 1 (maximal length).
            m.d.sync += lfsr.eq((lfsr >> 1) ^ Mux(lfsr[0], 0x80200003, 0))
            width = len(Value.cast(acc.i.payload))
            stim = Value.cast(lfsr)
            while len(stim) < width:
                stim = stim.replicate(2)
            seen = Signal()
            with m.If(acc.o.valid):
                m.d.sync += seen.eq(seen ^ Value.cast(acc.o.payload).xor())
            m.d.comb += [Value.cast(acc.i.payload).eq(stim[:width]), acc.i.valid.eq(1),
                         acc.o.ready.eq(lfsr[0] | lfsr[5])]
            if platform is not None:
                m.submodules.led = led = io.Buffer("o", platform.request("led", 0, dir="-"))
                m.d.comb += led.o.eq(seen)
            return m

    return StandInTop()


def make_top(graph, board: Board, top: str = "auto"):
    """The board's top: "uart" is hwgen.targets.board_top.BoardTop (UART link, self-test, LEDs);
    "bare" is `stand_in_top` (the accelerator alone, for its resources and Fmax); "auto"
    is "uart"."""
    if top not in TOPS:
        raise ValueError(f"top must be one of {', '.join(TOPS)}, not {top!r}")
    if top == "bare":
        return stand_in_top(graph)
    return BoardTop(graph, clock_hz=board.clock_mhz * 1e6)
