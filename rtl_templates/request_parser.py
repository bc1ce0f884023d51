"""Request frames of the board's UART link, in hardware (docs/protocol.md): the receive side.

`RequestParser` checks request frames byte by byte and releases a verified image (or its
built-in self-test image) into the accelerator. The send side is `response_builder`;
the shared byte format is `frame_format`.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, Value
from amaranth.hdl import unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl_templates.common import check_int
from rtl_templates.frame_format import (
    CLASSIFY,
    ERR_CHECKSUM,
    ERR_COMMAND,
    ERR_LENGTH,
    ERR_RANGE,
    ERR_SYNC,
    ERR_TIMEOUT,
    ERR_UART,
    OK,
    PING,
    SELFTEST,
    SYNC_REQUEST,
    control_layout,
    crc8_next,
)

MIN_GAP = 2  # cycles of quiet line that end a drain / time a frame out


def _replay(m: Module, mem: Memory, o, left: Signal, start: Value, base: Value,
            count: int) -> Value:
    """Stream `count` words of `mem` from address `base` on `o`; `start` (a strobe, only
    while `left == 0`) begins it. The read port's data register is the output register,
    as in StreamFIFO. Returns the strobe of the last word leaving."""
    rd = mem.read_port(domain="sync")
    rp = Signal(range(mem.depth))
    advance = Signal()
    m.d.comb += [
        advance.eq(~o.valid | o.ready),
        rd.addr.eq(rp), rd.en.eq(advance & (left != 0)),
        o.payload.eq(rd.data),
    ]
    with m.If(advance):
        m.d.sync += o.valid.eq(left != 0)
        with m.If(left != 0):
            m.d.sync += [rp.eq(rp + 1), left.eq(left - 1)]
    with m.If(start):
        m.d.sync += [rp.eq(base), left.eq(count)]
    last = Signal()
    m.d.comb += last.eq(o.valid & o.ready & (left == 0))
    return last


def _check_pixels(pixels, channels, pixel_bits) -> None:
    check_int("pixels", pixels)
    check_int("channels", channels)
    if channels > 255:
        raise ValueError(f"channels must be at most 255, not {channels!r}")
    if not isinstance(pixel_bits, int) or isinstance(pixel_bits, bool) or not 1 <= pixel_bits <= 8:
        raise TypeError(f"pixel_bits must be an integer in 1..8, not {pixel_bits!r}")
    if pixels * channels > 0xFFFF:
        raise ValueError(f"pixels * channels must be at most 65535, not {pixels * channels!r}")


class RequestParser(wiring.Component):
    """Checks request frames and releases each verified image as pixel beats.

    Parameters: ``pixels`` (N, beats per image), ``channels`` (C, bytes per pixel),
    ``pixel_bits`` (1..8; a byte with bits set above them is a range error), ``gap``
    (cycles of quiet line, >= 2, that time out an unfinished frame and end a drain;
    choose several byte times), ``builtin`` (optional: the N pixel words of a built-in
    image, the self-test's).

    Ports: sink ``i`` (bytes from a UartRx); ``frame_error``, ``overrun`` (the UartRx's
    pulses: bytes were lost); source ``req`` (`control_layout`: one beat per frame, OK or
    an error code); source ``o`` (pixels, ``unsigned(C * pixel_bits)``, channel c in bits
    ``[c*pixel_bits, (c+1)*pixel_bits)``, N beats after each OK CLASSIFY ``req`` beat);
    ``replay`` (strobe: release the built-in image; ignored while ``releasing`` or
    without ``builtin``); ``releasing`` (words of an image are still to leave ``o``).

    Frame checks, in order: sync byte, command, length (the command's own), then per
    payload byte the range, then the CRC-8. A bad sync, command or length, a UART error
    or a lost byte starts a drain: bytes are discarded until the line has been quiet for
    ``gap`` cycles, then the error goes out on ``req``, so a burst of garbage earns one
    error and the next frame starts clean. A frame that stops for ``gap`` cycles is
    answered ERR_TIMEOUT; a bad checksum (or range) is answered at once.

    Buffering: the payload goes into a memory of N words of ``C * pixel_bits`` bits;
    only after the CRC matched are the words released, so a corrupt frame never
    reaches ``o``. The built-in image is the memory's upper half (initialised, never
    written): one block RAM holds both, and both leave through the same ``o``.

    Backpressure and latency: ``i`` is ready from the first byte of a frame to its last
    (one byte per cycle; a UartRx delivers one per ``10 * divisor``), so nothing is
    lost while the host follows the protocol. From the ``req`` beat to the end of an
    image's release, ``i`` is not ready: bytes the host sends meanwhile are lost in
    the UartRx (an overrun, answered ERR_UART after the frame). ``req`` is offered the
    cycle after the checksum byte (or the drain's end), once no image is releasing,
    and held until taken; ``o`` offers the first word two cycles after the ``req`` beat
    (or ``replay``), three with ``registered_start``, and then one word per cycle that
    ``o`` is ready.

    ``registered_start``: the release starts from a register set by the ``req`` beat (or
    ``replay``), not in the same cycle, so the path from the taker's ``req.ready`` (and
    ``replay``) ends at that register instead of running on into the read address (the
    critical path of a cifar-mid board build at 66.9 MHz, 85 % routing).
    """

    def __init__(self, *, pixels: int, channels: int, pixel_bits: int, gap: int,
                 builtin=None, registered_start: bool = False):
        self.registered_start = bool(registered_start)
        _check_pixels(pixels, channels, pixel_bits)
        self.pixels, self.channels, self.pixel_bits = pixels, channels, pixel_bits
        self.gap = check_int("gap", gap, MIN_GAP)
        if builtin is not None:
            builtin = list(builtin)
            width = channels * pixel_bits
            if len(builtin) != pixels:
                raise ValueError(f"builtin must have {pixels} words, not {len(builtin)}")
            bad = [w for w in builtin if not isinstance(w, int) or not 0 <= w < 1 << width]
            if bad:
                raise ValueError(f"builtin words must be integers in 0..{(1 << width) - 1}, "
                                 f"not {bad[0]!r}")
        self.builtin = builtin
        super().__init__({
            "replay": In(1), "releasing": Out(1),
            "i": In(stream.Signature(unsigned(8))),
            "frame_error": In(1), "overrun": In(1),
            "req": Out(stream.Signature(control_layout())),
            "o": Out(stream.Signature(unsigned(channels * pixel_bits))),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        n, c, pb = self.pixels, self.channels, self.pixel_bits
        init = [] if self.builtin is None else [0] * n + self.builtin
        m.submodules.buffer = mem = Memory(shape=unsigned(c * pb), depth=len(init) or n,
                                           init=init)
        wr = mem.write_port()

        byte = self.i.payload
        got = Signal()
        m.d.comb += got.eq(self.i.valid & self.i.ready)
        crc = Signal(8)
        crc_next = crc8_next(crc, byte)
        cmd = Signal(8)
        status = Signal(8)
        len_lo = Signal(8)
        chan = Signal(range(c))
        addr = Signal(range(n))
        word = Signal(c * pb)
        range_bad = Signal()
        lost = Signal()  # a byte was dropped by the UartRx (overrun) since the last check

        # Cycles since the line last showed a byte or a framing error.
        quiet = Signal(range(self.gap + 1))
        restart = Signal()
        quiet_done = Signal()
        m.d.comb += quiet_done.eq(quiet == self.gap)
        with m.If(got | self.frame_error | restart):
            m.d.sync += quiet.eq(0)
        with m.Elif(~quiet_done):
            m.d.sync += quiet.eq(quiet + 1)

        m.d.comb += [
            self.req.payload.cmd.eq(cmd), self.req.payload.status.eq(status),
            wr.addr.eq(addr),
        ]
        if c > 1:
            m.d.comb += wr.data.eq(Cat(word[:(c - 1) * pb], byte[:pb]))
        else:
            m.d.comb += wr.data.eq(byte[:pb])

        left = Signal(range(n + 1))
        start_frame = Signal()
        start_builtin = Signal()
        pending = Signal()  # registered_start: a release starts next cycle
        m.d.comb += [
            self.releasing.eq((left != 0) | self.o.valid | pending),
            start_frame.eq(self.req.valid & self.req.ready & (status == OK) & (cmd == CLASSIFY)),
        ]
        if self.builtin is not None:
            m.d.comb += start_builtin.eq(self.replay & ~self.releasing & ~start_frame)
        start, base = start_frame | start_builtin, Mux(start_builtin, n, 0)
        if self.registered_start:
            base_r = Signal.like(base)
            m.d.sync += [pending.eq(start), base_r.eq(base)]
            start, base = pending, base_r
        released = _replay(m, mem, self.o, left, start, base, n)

        def fail(code: int, next_state: str = "DRAIN") -> None:
            m.d.sync += status.eq(code)
            m.d.comb += restart.eq(1)
            m.next = next_state

        def receiving(state_body) -> None:
            """Common to states inside a frame: UART errors drain, quiet times out."""
            with m.If(lost | self.frame_error):
                fail(ERR_UART)
            with m.Elif(got):
                m.d.sync += crc.eq(crc_next)
                state_body()
            with m.Elif(quiet_done):
                fail(ERR_TIMEOUT, "EMIT")

        with m.FSM(init="IDLE"):
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                m.d.sync += cmd.eq(0)
                with m.If(lost | self.frame_error):
                    fail(ERR_UART)
                with m.Elif(got):
                    m.d.sync += crc.eq(crc_next)  # crc is 0 in IDLE: cleared on the way in
                    with m.If(byte == SYNC_REQUEST):
                        m.next = "CMD"
                    with m.Else():
                        fail(ERR_SYNC)

            with m.State("CMD"):
                m.d.comb += self.i.ready.eq(1)

                def on_cmd():
                    m.d.sync += cmd.eq(byte)
                    with m.If((byte == CLASSIFY) | (byte == SELFTEST) | (byte == PING)):
                        m.next = "LEN0"
                    with m.Else():
                        fail(ERR_COMMAND)
                receiving(on_cmd)

            with m.State("LEN0"):
                m.d.comb += self.i.ready.eq(1)

                def on_len0():
                    m.d.sync += len_lo.eq(byte)
                    m.next = "LEN1"
                receiving(on_len0)

            with m.State("LEN1"):
                m.d.comb += self.i.ready.eq(1)

                def on_len1():
                    length = Cat(len_lo, byte)
                    with m.If(cmd == CLASSIFY):
                        with m.If(length == n * c):
                            m.d.sync += [chan.eq(0), addr.eq(0), range_bad.eq(0)]
                            m.next = "PAYLOAD"
                        with m.Else():
                            fail(ERR_LENGTH)
                    with m.Elif(length == 0):
                        m.d.sync += range_bad.eq(0)
                        m.next = "CHECK"
                    with m.Else():
                        fail(ERR_LENGTH)
                receiving(on_len1)

            with m.State("PAYLOAD"):
                m.d.comb += self.i.ready.eq(1)

                def on_payload():
                    if pb < 8:
                        with m.If(byte[pb:] != 0):
                            m.d.sync += range_bad.eq(1)
                    with m.If(chan == c - 1):
                        m.d.comb += wr.en.eq(1)
                        m.d.sync += [chan.eq(0), addr.eq(addr + 1)]
                        with m.If(addr == n - 1):
                            m.next = "CHECK"
                    if c > 1:
                        with m.Else():
                            m.d.sync += [word.word_select(chan, pb).eq(byte[:pb]),
                                         chan.eq(chan + 1)]
                receiving(on_payload)

            with m.State("CHECK"):
                m.d.comb += self.i.ready.eq(1)

                def on_check():
                    # `crc` is the CRC of every byte before this one (it is not updated
                    # with the check byte: receiving() registers crc_next, unused from here).
                    with m.If(byte != crc):
                        m.d.sync += status.eq(ERR_CHECKSUM)
                    with m.Elif(range_bad):
                        m.d.sync += status.eq(ERR_RANGE)
                    with m.Else():
                        m.d.sync += status.eq(OK)
                    m.next = "EMIT"
                receiving(on_check)

            with m.State("DRAIN"):
                m.d.comb += self.i.ready.eq(1)
                m.d.sync += lost.eq(0)
                with m.If(quiet_done & ~got):
                    m.next = "EMIT"

            with m.State("EMIT"):
                # A CLASSIFY's release must not start while the built-in image leaves.
                m.d.comb += self.req.valid.eq(~self.releasing)
                with m.If(self.req.valid & self.req.ready):
                    m.d.sync += crc.eq(0)
                    with m.If((status == OK) & (cmd == CLASSIFY)):
                        m.next = "RELEASE"
                    with m.Else():
                        m.next = "IDLE"

            with m.State("RELEASE"):
                with m.If(released):
                    m.next = "IDLE"

        # Checked (and cleared) in IDLE and inside frames; an overrun always sets it.
        with m.If(self.overrun):
            m.d.sync += lost.eq(1)
        with m.Elif(self.i.ready & (lost | self.frame_error)):
            m.d.sync += lost.eq(0)
        return m
