"""Board tops: what a board build wraps the accelerator in.

"uart" is hwgen.targets.board_top.BoardTop (UART link, self-test, LEDs); "bare" is
`stand_in_top`, the accelerator alone fed by an LFSR, for its own resources and Fmax. An
external-weight accelerator (its body reading weights through a memory port) gets
hwgen.targets.dram.accelerator_top.ULX3SExternalTop: the UART link with the weight loader,
the SDRAM controller on the port.
"""

from __future__ import annotations

from amaranth import Elaboratable, Module, Mux, Signal, Value
from amaranth.lib import io

from hwgen.compiler.top import Accelerator
from hwgen.errors import HwgenError
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


def board_graph(plan, model):
    """The graph a board build elaborates: the plan's, with an external-weight body's memory
    port leaving the accelerator for the board's controller (not the memory-port model)."""
    if plan.body is None:
        return plan.graph(model)
    from hwgen.targets.dram.accelerator_top import board_body

    return board_body(plan).graph(model)


def check_top(external: bool, board: Board, top: str) -> None:
    """Refuse (HwgenError) a top that cannot carry an `external`-weight accelerator on
    `board` (the build calls it before it writes anything): it needs the board's memory and
    its controller, which the bare top does not have."""
    if not external:
        return
    if top == "bare":
        raise HwgenError("--top bare has no memory controller for the external-weight "
                         "body; use the default top")
    if board.memory is None:
        raise HwgenError(f"{board.name} has no external memory for the weights")


def make_top(graph, board: Board, top: str = "auto"):
    """The board's top: "uart" is hwgen.targets.board_top.BoardTop (UART link, self-test, LEDs);
    "bare" is `stand_in_top` (the accelerator alone, for its resources and Fmax); "auto"
    is "uart". A graph whose body has a memory port (`board_graph` of an external-weight
    plan) gets the external-weight top with the board's SDRAM controller."""
    if top not in TOPS:
        raise ValueError(f"top must be one of {', '.join(TOPS)}, not {top!r}")
    if graph.memory_users():
        check_top(True, board, top)
        from hwgen.targets.dram.accelerator_top import ULX3SExternalTop
        from hwgen.targets.dram.litedram_core import generate

        return ULX3SExternalTop(graph, generate())
    if top == "bare":
        return stand_in_top(graph)
    return BoardTop(graph, clock_hz=board.clock_mhz * 1e6)
