"""8N1 UART transmitter and receiver with stream ports: the board top's link to the host.

One start bit (0), eight data bits LSB first, one stop bit (1); the line idles
high. The bit time is ``divisor`` clock cycles (``baud_divisor`` derives it).
"""

from __future__ import annotations

import math

from amaranth import Cat, Const, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from rtl_templates.common import Resources, bits_for, check_int

FRAME_BITS = 10  # start + 8 data + stop
MIN_DIVISOR = 4  # below this the receiver's mid-bit sample has no room for the synchroniser's jitter
FAMILIES = ("ice40", "ecp5")


def baud_divisor(clock_hz: float, baud: int, tolerance: float = 0.01) -> int:
    """Cycles per bit for `baud` at `clock_hz`; refuses a rounding error above `tolerance`.

    The receiver copes with about +-2 % in total, so the divisor's own
    rounding error must leave most of that budget to the far end's clock.
    """
    if not isinstance(baud, int) or baud <= 0:
        raise TypeError(f"baud must be a positive integer, not {baud!r}")
    if not isinstance(clock_hz, (int, float)) or clock_hz <= 0:
        raise TypeError(f"clock_hz must be a positive number, not {clock_hz!r}")
    divisor = round(clock_hz / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"clock_hz / baud must be >= {MIN_DIVISOR}, not {clock_hz / baud:.3g}")
    error = abs(clock_hz / divisor - baud) / baud
    if error > tolerance:
        raise ValueError(f"baud {baud} at {clock_hz / 1e6:g} MHz is off by {error:.2%} "
                         f"(divisor {divisor}); must be within {tolerance:.0%}")
    return divisor


def _check_divisor(divisor) -> int:
    return check_int("divisor", divisor, MIN_DIVISOR)


def _check_family(family) -> str:
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, not {family!r}")
    return family


def _counter_luts(bits: int, family: str) -> int:
    """LUT4s of a down-counter with reload and zero test: about 2 per bit (sum and
    reload mux); on ECP5 the carry chain's CCU2Cs count 2 LUT4 per 2 bits whether
    used or not, hence the larger factor. Calibrated against Yosys 0.70 for
    divisors 4 .. 5000 (the whole block within ~10 %)."""
    return math.ceil((2.0 if family == "ice40" else 2.6) * bits)


class UartTx(wiring.Component):
    """8N1 transmitter: bytes from stream ``i`` go out on pin ``tx``.

    Parameters: ``divisor`` clock cycles per bit (int >= 4).

    Ports: ``i`` stream sink, payload ``unsigned(8)``; ``tx`` output pin,
    high when idle, driven straight from a flip-flop (no glitches).

    Latency: ``tx`` falls (start bit) on the clock edge that accepts ``i``;
    the frame lasts ``10 * divisor`` cycles.
    Throughput: one byte per ``10 * divisor`` cycles; the next byte is accepted
    in the last cycle of the stop bit, so back-to-back bytes leave no idle gap.
    Backpressure: ``i.ready`` is high when idle and in the stop bit's last
    cycle (it does not depend on ``i.valid``); it is low while a frame is sent.
    """

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__({"i": In(stream.Signature(unsigned(8))), "tx": Out(1, init=1)})

    def resources(self, family: str) -> Resources:
        """Estimate: 9-bit shift register (its bit 0 is the pin), 4-bit bit counter,
        baud counter, busy flag. See `_counter_luts` for the LUT figure."""
        _check_family(family)
        baud = bits_for(self.divisor)
        # ~20 LUTs: the shift register's load/shift muxes, bit counter, handshake.
        return Resources(lut=20 + _counter_luts(baud, family), ff=9 + 4 + baud + 1)

    def elaborate(self, platform) -> Module:
        m = Module()
        d = self.divisor
        # Start bit and data; shifting 1s in from the top makes the stop bit and
        # then keeps the line high, so bit 0 of the register is the pin itself.
        shreg = Signal(FRAME_BITS - 1, init=(1 << (FRAME_BITS - 1)) - 1)
        baud = Signal(range(d), init=0)
        left = Signal(range(FRAME_BITS))  # bits still to send after the current one
        busy = Signal()
        last_cycle = Signal()

        m.d.comb += [
            self.tx.eq(shreg[0]),
            last_cycle.eq(busy & (baud == 0) & (left == 0)),
            self.i.ready.eq(~busy | last_cycle),
        ]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                shreg.eq(Cat(Const(0, 1), self.i.payload)),
                baud.eq(d - 1),
                left.eq(FRAME_BITS - 1),
                busy.eq(1),
            ]
        with m.Elif(busy):
            with m.If(baud == 0):
                m.d.sync += [shreg.eq(Cat(shreg[1:], Const(1, 1))), baud.eq(d - 1)]
                with m.If(left == 0):
                    m.d.sync += busy.eq(0)
                with m.Else():
                    m.d.sync += left.eq(left - 1)
            with m.Else():
                m.d.sync += baud.eq(baud - 1)
        return m


class UartRx(wiring.Component):
    """8N1 receiver: frames on pin ``rx`` become bytes on stream ``o``.

    Parameters: ``divisor`` clock cycles per bit (int >= 4).

    Ports: ``rx`` input pin (asynchronous; passes a 2-flip-flop synchroniser);
    ``o`` stream source, payload ``unsigned(8)``; ``frame_error`` and
    ``overrun``, one-cycle pulses from flip-flops, on the cycle a frame ends.

    Sampling: a falling edge on the idle line starts a frame; the start bit is
    checked half a bit later (a shorter low pulse is a glitch and ignored),
    then each data bit and the stop bit are sampled one bit time apart, i.e.
    mid-bit. The receiver resynchronises on every start bit and returns to
    idle at the middle of the stop bit, so a sender whose clock is off by up
    to +-2 % is received correctly (tested at divisor 7; the edge is seen up to
    a cycle late, so the margin grows with the divisor, towards about +-4.5 %).

    Errors: a stop bit sampled low pulses ``frame_error``; that frame is
    dropped, and the receiver waits for the line to go high before it looks
    for the next start bit (a held-low line gives one error, not a stream of
    zero bytes). If a good frame ends while ``o`` still holds an unaccepted
    byte, the new byte is dropped and ``overrun`` pulses; the held byte is
    never changed.

    Latency: ``o.valid`` rises about 9.5 bit times plus 3-4 cycles
    (synchroniser, edge detect, output register) after the start edge.
    Throughput: the line rate, one byte per ``10 * divisor`` cycles.
    Backpressure: ``o`` holds one byte; the consumer has until the next frame
    ends (at least ``10 * divisor`` cycles at full line rate) to accept it.
    """

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(unsigned(8))),
                          "frame_error": Out(1), "overrun": Out(1)})

    def resources(self, family: str) -> Resources:
        """Estimate: synchroniser, 8-bit shift and output registers, valid, 3-bit
        state, 3-bit bit counter, baud counter, two pulse flags. See
        `_counter_luts` for the LUT figure."""
        _check_family(family)
        baud = bits_for(self.divisor)
        ff = 2 + 8 + 8 + 1 + 3 + 3 + baud + 2
        # ~22-25 LUTs: state decode, bit counter, output handshake and load enables.
        return Resources(lut={"ice40": 25, "ecp5": 22}[family] + _counter_luts(baud, family), ff=ff)

    def elaborate(self, platform) -> Module:
        m = Module()
        d = self.divisor
        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, rx, init=1, stages=2)

        baud = Signal(range(d))
        bit = Signal(range(8))
        shreg = Signal(8)
        tick = Signal()
        m.d.comb += tick.eq(baud == 0)
        # Pulses: low unless set below in this cycle.
        m.d.sync += [self.frame_error.eq(0), self.overrun.eq(0)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.FSM(init="idle"):
            with m.State("idle"):
                with m.If(~rx):
                    # The synchronised edge is seen 0-1 cycles after the true
                    # one; waiting divisor // 2 more puts later samples mid-bit.
                    m.d.sync += baud.eq(d // 2 - 1)
                    m.next = "start"
            with m.State("start"):
                with m.If(~tick):
                    m.d.sync += baud.eq(baud - 1)
                with m.Elif(rx):
                    m.next = "idle"  # high again at mid-start-bit: a glitch, not a frame
                with m.Else():
                    m.d.sync += [baud.eq(d - 1), bit.eq(0)]
                    m.next = "data"
            with m.State("data"):
                with m.If(~tick):
                    m.d.sync += baud.eq(baud - 1)
                with m.Else():
                    m.d.sync += [shreg.eq(Cat(shreg[1:], rx)), baud.eq(d - 1), bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "stop"
            with m.State("stop"):
                with m.If(~tick):
                    m.d.sync += baud.eq(baud - 1)
                with m.Elif(~rx):
                    m.d.sync += self.frame_error.eq(1)
                    m.next = "wait_high"
                with m.Else():
                    # Back to idle mid-stop-bit: a fast sender's next start
                    # edge may come as early as ~0.3 bit from here.
                    m.next = "idle"
                    with m.If(self.o.valid & ~self.o.ready):
                        m.d.sync += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
            with m.State("wait_high"):
                with m.If(rx):
                    m.next = "idle"
        return m
