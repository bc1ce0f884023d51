"""Weights into external memory over the board's UART: LOAD_WEIGHTS frames in hardware.

`WeightLoader` takes the bytes of LOAD_WEIGHTS request frames (docs/protocol.md, "Loading
weights"), checks each frame, writes its words through a memory port (`MemPortSignature`,
the initiator: burst writes) and answers every frame with a status reply. The byte format
(sync bytes, status codes, CRC-8) is `frame_format`'s; the host side is
`hwgen.host.protocol.load_weights_frames`.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.hdl import unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl_templates.common import check_int
from rtl_templates.frame_format import (
    ERR_CHECKSUM,
    ERR_COMMAND,
    ERR_LENGTH,
    ERR_RANGE,
    ERR_SYNC,
    ERR_TIMEOUT,
    ERR_UART,
    LOAD_WEIGHTS,
    OK,
    SYNC_REQUEST,
    SYNC_RESPONSE,
    crc8_next,
)
from rtl_templates.memport import MemPortSignature

ADDR_BYTES = 4  # the frame's start address: a 32-bit word address, little-endian
MIN_GAP = 2
REPLY_BYTES = 6  # sync, command, status, length (2 bytes, always 0), CRC-8


def word_bytes(data_width: int) -> int:
    """Bytes of one word in a LOAD_WEIGHTS frame: ceil(data_width / 8), little-endian."""
    return -(-check_int("data_width", data_width) // 8)


class WeightLoader(wiring.Component):
    """Checks LOAD_WEIGHTS frames and writes their words to memory in bursts.

    Parameters: ``addr_width``, ``data_width``, ``max_burst`` (those of the memory port),
    ``frame_words`` (the most words one frame may carry: the size of the frame buffer),
    ``gap`` (cycles of quiet line, >= 2, that time out an unfinished frame and end a
    drain; choose several byte times).

    Ports: sink ``i`` (bytes from a UartRx); ``frame_error``, ``overrun`` (the UartRx's
    pulses: bytes were lost); source ``o`` (reply bytes, for a UartTx); ``mem`` (a
    `MemPortSignature` initiator: it only writes, ``mem.r`` is never ready).

    A frame is ``A5 57 len(LE16) addr(LE32) words crc8`` (docs/protocol.md): ``len`` is
    ``4 + k * word_bytes`` for 1 <= k <= ``frame_words``; the words go to word addresses
    ``addr .. addr + k - 1``, which must lie below ``2 ** addr_width``. Checks, in order:
    sync byte, command, length bounds (a bad one drains the line as `RequestParser` does:
    bytes are discarded until the line has been quiet for ``gap`` cycles, then one error
    reply), then at the checksum byte the CRC-8, the length's alignment to whole words,
    and the range (address and every word's unused high bits). A frame that stops for
    ``gap`` cycles is answered ERR_TIMEOUT.

    Buffering: the frame's words are held in a memory of ``frame_words`` words until the
    CRC matched; only then are they written. A corrupt or refused frame writes nothing.
    Writes: bursts of ``min(max_burst, words left)`` beats from ``addr`` upward, each a
    ``req`` beat (write = 1) and then its ``w`` beats, one per cycle that ``w`` is ready
    (the first two cycles after the request fired). The OK reply is offered only after the
    last beat was taken, so once the host has the reply, a read accepted by the memory
    afterwards sees the words (the port's contract).

    Backpressure and latency: ``i`` is ready from the first byte of a frame to its last
    (one byte per cycle); while a frame is written and answered it is not, so the host must
    wait for the reply (a byte sent meanwhile is lost in the UartRx: an overrun, answered
    ERR_UART after the next frame). Any stall on ``req``, ``w`` or ``o`` only delays.
    Every frame, good or bad, earns exactly one 6-byte reply ``5A 57 status 00 00 crc8``
    (the command byte is the one received, 0 if none).
    """

    def __init__(self, *, addr_width: int, data_width: int, max_burst: int,
                 frame_words: int = 256, gap: int):
        self.port_signature = MemPortSignature(addr_width=addr_width, data_width=data_width,
                                               max_burst=max_burst)
        if addr_width > 8 * ADDR_BYTES:
            raise ValueError(f"addr_width must be at most {8 * ADDR_BYTES}, not {addr_width!r}")
        self.addr_width, self.data_width, self.max_burst = addr_width, data_width, max_burst
        self.word_bytes = word_bytes(data_width)
        self.frame_words = check_int("frame_words", frame_words)
        if ADDR_BYTES + frame_words * self.word_bytes > 0xFFFF:
            raise ValueError(f"frame_words * {self.word_bytes} + {ADDR_BYTES} must be at most "
                             f"65535 (the length field), not "
                             f"{ADDR_BYTES + frame_words * self.word_bytes}")
        self.gap = check_int("gap", gap, MIN_GAP)
        super().__init__({
            "i": In(stream.Signature(unsigned(8))),
            "frame_error": In(1), "overrun": In(1),
            "o": Out(stream.Signature(unsigned(8))),
            "mem": Out(self.port_signature),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        aw, dw, wb, k_max = self.addr_width, self.data_width, self.word_bytes, self.frame_words
        m.submodules.buffer = buf = Memory(shape=unsigned(dw), depth=k_max, init=[])
        wr = buf.write_port()
        rd = buf.read_port(domain="sync")

        byte = self.i.payload
        got = Signal()
        m.d.comb += got.eq(self.i.valid & self.i.ready)
        crc = Signal(8)
        crc_next = crc8_next(crc, byte)
        cmd = Signal(8)
        status = Signal(8)
        len_lo = Signal(8)
        left = Signal(16)  # payload bytes still to come
        hdr = Signal(range(ADDR_BYTES))
        addr = Signal(8 * ADDR_BYTES)
        lane = Signal(range(wb))
        word = Signal(8 * wb)
        words = Signal(range(k_max + 1))  # words received (then: words written)
        range_bad = Signal()
        lost = Signal()

        # Cycles since the line last showed a byte or a framing error (as RequestParser).
        quiet = Signal(range(self.gap + 1))
        restart = Signal()
        quiet_done = Signal()
        m.d.comb += quiet_done.eq(quiet == self.gap)
        with m.If(got | self.frame_error | restart):
            m.d.sync += quiet.eq(0)
        with m.Elif(~quiet_done):
            m.d.sync += quiet.eq(quiet + 1)

        full = Cat(word[8:], byte)  # the word with this byte as its most significant
        m.d.comb += [wr.addr.eq(words), wr.data.eq(full[:dw])]

        # The burst writer: `todo` words of the buffer from `rp` to memory address `waddr`.
        req, w = self.mem.req, self.mem.w
        todo = Signal(range(k_max + 1))
        waddr = Signal(aw)
        rp = Signal(range(k_max))
        fetch = Signal(range(self.max_burst + 1))  # beats of this burst still to read
        sent = Signal(range(self.max_burst + 1))  # beats of this burst still to hand over
        beats = Signal(range(self.max_burst + 1))
        m.d.comb += [
            beats.eq(Mux(todo > self.max_burst, self.max_burst, todo)),
            req.payload.addr.eq(waddr), req.payload.count.eq(beats - 1),
            req.payload.write.eq(1),
            w.payload.eq(rd.data),
            rd.addr.eq(rp),
            self.mem.r.ready.eq(0),
        ]
        advance = ~w.valid | w.ready
        m.d.comb += rd.en.eq(advance & (fetch != 0))
        with m.If(advance):
            m.d.sync += w.valid.eq(fetch != 0)
            with m.If(fetch != 0):
                m.d.sync += [rp.eq(rp + 1), fetch.eq(fetch - 1)]
        w_fire = w.valid & w.ready

        # The reply: 5A cmd status 00 00 crc.
        out_k = Signal(range(REPLY_BYTES))
        out_crc = Signal(8)
        reply = Signal(8)
        with m.Switch(out_k):
            with m.Case(0):
                m.d.comb += reply.eq(SYNC_RESPONSE)
            with m.Case(1):
                m.d.comb += reply.eq(cmd)
            with m.Case(2):
                m.d.comb += reply.eq(status)
            with m.Case(3, 4):
                m.d.comb += reply.eq(0)
            with m.Default():
                m.d.comb += reply.eq(out_crc)
        m.d.comb += self.o.payload.eq(reply)

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
                    with m.If(byte == LOAD_WEIGHTS):
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
                    with m.If((length < ADDR_BYTES + wb) | (length > ADDR_BYTES + k_max * wb)):
                        fail(ERR_LENGTH)
                    with m.Else():
                        m.d.sync += [left.eq(length), hdr.eq(0), lane.eq(0), words.eq(0),
                                     range_bad.eq(0)]
                        m.next = "ADDR"
                receiving(on_len1)

            with m.State("ADDR"):
                m.d.comb += self.i.ready.eq(1)

                def on_addr():
                    m.d.sync += [addr.eq(Cat(addr[8:], byte)), hdr.eq(hdr + 1),
                                 left.eq(left - 1)]
                    with m.If(hdr == ADDR_BYTES - 1):
                        m.next = "DATA"
                receiving(on_addr)

            with m.State("DATA"):
                m.d.comb += self.i.ready.eq(1)

                def on_data():
                    m.d.sync += [word.eq(full), left.eq(left - 1)]
                    with m.If(lane == wb - 1):
                        m.d.sync += lane.eq(0)
                        m.d.comb += wr.en.eq(1)
                        m.d.sync += words.eq(words + 1)
                        if 8 * wb > dw:
                            with m.If(full[dw:] != 0):
                                m.d.sync += range_bad.eq(1)
                    with m.Else():
                        m.d.sync += lane.eq(lane + 1)
                    with m.If(left == 1):
                        m.next = "CHECK"
                receiving(on_data)

            with m.State("CHECK"):
                m.d.comb += self.i.ready.eq(1)

                def on_check():
                    # `crc` is the CRC of every byte before this one.
                    out_of_range = addr[:aw] + words > (1 << aw)
                    if aw < 8 * ADDR_BYTES:
                        out_of_range = out_of_range | (addr[aw:] != 0)
                    with m.If(byte != crc):
                        m.d.sync += status.eq(ERR_CHECKSUM)
                        m.next = "EMIT"
                    with m.Elif(lane != 0):
                        m.d.sync += status.eq(ERR_LENGTH)
                        m.next = "EMIT"
                    with m.Elif(range_bad | out_of_range):
                        m.d.sync += status.eq(ERR_RANGE)
                        m.next = "EMIT"
                    with m.Else():
                        m.d.sync += [status.eq(OK), todo.eq(words), waddr.eq(addr[:aw]),
                                     rp.eq(0)]
                        m.next = "REQ"
                receiving(on_check)

            with m.State("DRAIN"):
                m.d.comb += self.i.ready.eq(1)
                m.d.sync += lost.eq(0)
                with m.If(quiet_done & ~got):
                    m.next = "EMIT"

            with m.State("REQ"):
                m.d.comb += req.valid.eq(1)
                with m.If(req.ready):
                    m.d.sync += [fetch.eq(beats), sent.eq(beats), todo.eq(todo - beats),
                                 waddr.eq(waddr + beats)]
                    m.next = "BEATS"

            with m.State("BEATS"):
                with m.If(w_fire):
                    m.d.sync += sent.eq(sent - 1)
                    with m.If((sent == 1) & (todo == 0)):
                        m.next = "EMIT"
                    with m.Elif(sent == 1):
                        m.next = "REQ"

            with m.State("EMIT"):
                m.d.comb += self.o.valid.eq(1)
                with m.If(self.o.ready):
                    m.d.sync += [out_k.eq(out_k + 1), out_crc.eq(crc8_next(out_crc, reply))]
                    with m.If(out_k == REPLY_BYTES - 1):
                        m.d.sync += [out_k.eq(0), out_crc.eq(0), crc.eq(0)]
                        m.next = "IDLE"

        # Checked (and cleared) in IDLE and inside frames; an overrun always sets it.
        with m.If(self.overrun):
            m.d.sync += lost.eq(1)
        with m.Elif(self.i.ready & (lost | self.frame_error)):
            m.d.sync += lost.eq(0)
        return m
