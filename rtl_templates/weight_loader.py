"""Weights into external memory over the board's UART: LOAD_WEIGHTS and READ_WEIGHTS frames
in hardware.

`WeightLoader` takes the bytes of LOAD_WEIGHTS request frames (docs/protocol.md, "Loading
weights"), checks each frame, writes its words through a memory port (`MemPortSignature`,
the initiator: burst writes) and answers every frame with a status reply; a READ_WEIGHTS
frame reads words back (burst reads) into its reply, so the host can check what landed.
The byte format (sync bytes, status codes, CRC-8) is `frame_format`'s; the host side is
`hwgen.host.protocol` (`load_weights_frames`, `read_weights_request`, `decode_load_weights`).
Like the other link blocks (`RequestParser`, the UARTs) it has no cycle model: it sits
outside the accelerator's timing; its write-out cost is stated below.
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
    READ_WEIGHTS,
    SYNC_REQUEST,
    SYNC_RESPONSE,
    crc8_next,
)
from rtl_templates.memport import MemPortSignature

ADDR_BYTES = 4  # the frame's start address: a 32-bit word address, little-endian
READ_PAYLOAD = ADDR_BYTES + 2  # READ_WEIGHTS: the address, then the word count (LE16)
MIN_GAP = 2
REPLY_BYTES = 6  # a reply without payload: sync, command, status, length (2 bytes), CRC-8


def word_bytes(data_width: int) -> int:
    """Bytes of one word in a LOAD_WEIGHTS frame: ceil(data_width / 8), little-endian."""
    return -(-check_int("data_width", data_width) // 8)


class WeightLoader(wiring.Component):
    """Checks LOAD_WEIGHTS frames and writes their words to memory in bursts; READ_WEIGHTS
    frames read words back into the reply.

    Parameters: ``addr_width``, ``data_width``, ``max_burst`` (those of the memory port),
    ``frame_words`` (the most words one frame may carry: the size of the frame buffer),
    ``gap`` (cycles of quiet line, >= 2, that time out an unfinished frame and end a
    drain; choose several byte times).

    Ports: sink ``i`` (bytes from a UartRx); ``frame_error``, ``overrun`` (the UartRx's
    pulses: bytes were lost); source ``o`` (reply bytes, for a UartTx); ``mem`` (a
    `MemPortSignature` initiator).

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
    afterwards sees the words (the port's contract). From the checksum byte to the
    reply's first byte: ``k + 2 * ceil(k / max_burst) + 2`` cycles for ``k`` words with a
    memory that is always ready.

    Backpressure and latency: ``i`` is ready from the first byte of a frame to its last
    (one byte per cycle); while a frame is written and answered it is not, so straight
    behind a UartRx the host must wait for the reply (a byte sent meanwhile is lost in the
    UartRx: an overrun, answered ERR_UART), and with a receive FIFO in front
    (`hwgen.targets.dram.uart_loader.LoaderCore`) it may send one frame ahead. Any stall
    on ``req``, ``w``, ``r`` or ``o`` only delays. Every frame, good or bad, earns exactly
    one reply; all but an OK READ_WEIGHTS's are 6 bytes, ``5A cmd status 00 00 crc8`` (the
    command byte is the one received, 0 if none).

    READ_WEIGHTS (``A5 52 06 00 addr(LE32) count(LE16) crc8``): ``count`` words from
    ``addr`` (1 <= count <= 65535 // word_bytes, within the memory, else ERR_RANGE; a
    length other than 6 is ERR_LENGTH) are read in bursts of ``min(max_burst, left)`` and
    sent as the reply's payload, ``5A 52 00 len(LE16) words crc8`` with each word
    little-endian in ``word_bytes`` bytes. A read beat is taken with its last byte, so a
    slow line stalls ``mem.r`` (the port's contract allows it; the engine is idle).
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
        self.max_read = 0xFFFF // self.word_bytes  # words of a READ_WEIGHTS reply
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
        words = Signal(range(k_max + 1))  # words received
        count = Signal(16)  # READ_WEIGHTS: words asked for
        reading = Signal()  # the frame is a READ_WEIGHTS
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

        # Bursts: `todo` words from memory address `waddr`; a write's words come from the
        # buffer (from `rp`), a read's go out on `o` byte by byte.
        req, w, r = self.mem.req, self.mem.w, self.mem.r
        todo = Signal(16)
        waddr = Signal(aw)
        rp = Signal(range(k_max))
        fetch = Signal(range(self.max_burst + 1))  # beats of this write still to read
        sent = Signal(range(self.max_burst + 1))  # beats of this burst still to move
        beats = Signal(range(self.max_burst + 1))
        m.d.comb += [
            beats.eq(Mux(todo > self.max_burst, self.max_burst, todo)),
            req.payload.addr.eq(waddr), req.payload.count.eq(beats - 1),
            req.payload.write.eq(~reading),
            w.payload.eq(rd.data),
            rd.addr.eq(rp),
        ]
        advance = ~w.valid | w.ready
        m.d.comb += rd.en.eq(advance & (fetch != 0))
        with m.If(advance):
            m.d.sync += w.valid.eq(fetch != 0)
            with m.If(fetch != 0):
                m.d.sync += [rp.eq(rp + 1), fetch.eq(fetch - 1)]
        w_fire = w.valid & w.ready

        # The reply: 5A cmd status len(LE16) [words] crc; its CRC follows every byte sent.
        out_k = Signal(range(5))
        out_crc = Signal(8)
        reply_len = Signal(16)
        o_fire = self.o.valid & self.o.ready
        with m.If(o_fire):
            m.d.sync += out_crc.eq(crc8_next(out_crc, self.o.payload))
        r_bytes = Signal(8 * wb)
        m.d.comb += r_bytes.eq(r.payload)

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
                fail(ERR_TIMEOUT, "HEAD")

        with m.FSM(init="IDLE"):
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                m.d.sync += [cmd.eq(0), reading.eq(0), reply_len.eq(0)]
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
                    m.d.sync += [cmd.eq(byte), reading.eq(byte == READ_WEIGHTS)]
                    with m.If((byte == LOAD_WEIGHTS) | (byte == READ_WEIGHTS)):
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
                    bad = Mux(reading, length != READ_PAYLOAD,
                              (length < ADDR_BYTES + wb) | (length > ADDR_BYTES + k_max * wb))
                    with m.If(bad):
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
                    with m.If((hdr == ADDR_BYTES - 1) & reading):
                        m.next = "COUNT"
                    with m.Elif(hdr == ADDR_BYTES - 1):
                        m.next = "DATA"
                receiving(on_addr)

            with m.State("COUNT"):
                m.d.comb += self.i.ready.eq(1)

                def on_count():
                    m.d.sync += [count.eq(Cat(count[8:], byte)), left.eq(left - 1)]
                    with m.If(left == 1):
                        m.next = "CHECK"
                receiving(on_count)

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
                    n = Mux(reading, count, words)
                    out_of_range = (addr[:aw] + n > (1 << aw)) | (n == 0)
                    if aw < 8 * ADDR_BYTES:
                        out_of_range = out_of_range | (addr[aw:] != 0)
                    m.d.sync += [todo.eq(n), waddr.eq(addr[:aw]), rp.eq(0)]
                    with m.If(byte != crc):
                        m.d.sync += status.eq(ERR_CHECKSUM)
                        m.next = "HEAD"
                    with m.Elif(lane != 0):
                        m.d.sync += status.eq(ERR_LENGTH)
                        m.next = "HEAD"
                    with m.Elif(range_bad | out_of_range | (reading & (count > self.max_read))):
                        m.d.sync += status.eq(ERR_RANGE)
                        m.next = "HEAD"
                    with m.Elif(reading):
                        m.d.sync += [status.eq(OK), reply_len.eq(count * wb)]
                        m.next = "HEAD"
                    with m.Else():
                        m.d.sync += status.eq(OK)
                        m.next = "REQ"
                receiving(on_check)

            with m.State("DRAIN"):
                m.d.comb += self.i.ready.eq(1)
                m.d.sync += lost.eq(0)
                with m.If(quiet_done & ~got):
                    m.next = "HEAD"

            with m.State("REQ"):
                m.d.comb += req.valid.eq(1)
                with m.If(req.ready):
                    m.d.sync += [sent.eq(beats), todo.eq(todo - beats), waddr.eq(waddr + beats),
                                 lane.eq(0)]
                    with m.If(~reading):
                        m.d.sync += fetch.eq(beats)
                    m.next = "BEATS"

            with m.State("BEATS"):
                last = Signal()
                with m.If(reading):
                    # One word out as `wb` bytes, least significant first; the beat is
                    # taken with its last byte.
                    m.d.comb += [self.o.valid.eq(r.valid),
                                 self.o.payload.eq(r_bytes.word_select(lane, 8)),
                                 r.ready.eq(self.o.ready & (lane == wb - 1))]
                    with m.If(o_fire):
                        m.d.sync += lane.eq(Mux(lane == wb - 1, 0, lane + 1))
                    m.d.comb += last.eq(o_fire & (lane == wb - 1))
                with m.Else():
                    m.d.comb += last.eq(w_fire)
                with m.If(last):
                    m.d.sync += sent.eq(sent - 1)
                    with m.If((sent == 1) & (todo == 0)):
                        m.next = "DONE"
                    with m.Elif(sent == 1):
                        m.next = "REQ"

            with m.State("DONE"):
                # Writes: the words are in memory, now the reply; reads: the words are
                # out, now the CRC.
                with m.If(reading):
                    m.next = "TAIL"
                with m.Else():
                    m.next = "HEAD"

            with m.State("HEAD"):
                m.d.comb += self.o.valid.eq(1)
                with m.Switch(out_k):
                    with m.Case(0):
                        m.d.comb += self.o.payload.eq(SYNC_RESPONSE)
                    with m.Case(1):
                        m.d.comb += self.o.payload.eq(cmd)
                    with m.Case(2):
                        m.d.comb += self.o.payload.eq(status)
                    with m.Case(3):
                        m.d.comb += self.o.payload.eq(reply_len[:8])
                    with m.Default():
                        m.d.comb += self.o.payload.eq(reply_len[8:])
                with m.If(self.o.ready):
                    m.d.sync += out_k.eq(out_k + 1)
                    with m.If(out_k == 4):
                        m.d.sync += out_k.eq(0)
                        with m.If(reply_len != 0):
                            m.next = "REQ"
                        with m.Else():
                            m.next = "TAIL"

            with m.State("TAIL"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(out_crc)]
                with m.If(self.o.ready):
                    m.d.sync += [out_crc.eq(0), crc.eq(0)]
                    m.next = "IDLE"

        # Checked (and cleared) in IDLE and inside frames; an overrun always sets it, and so
        # does a framing error while no byte is taken (the loader writes or answers: with a
        # receive FIFO in front, the bytes of the next frame are arriving).
        with m.If(self.overrun | (self.frame_error & ~self.i.ready)):
            m.d.sync += lost.eq(1)
        with m.Elif(self.i.ready & (lost | self.frame_error)):
            m.d.sync += lost.eq(0)
        return m
