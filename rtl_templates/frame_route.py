"""Two request handlers on one UART: `FrameDemux` sends each request frame to the handler its
command byte names, `ReplyMux` merges their replies back into one byte stream, whole replies
at a time, and `MemPortShare` lets two memory-port initiators take turns at one memory.

The external-weight board top (hwgen.targets.dram.accelerator_top) uses them to put the
classifier's `RequestParser` and the `WeightLoader` behind one UART and one SDRAM. Frames
and replies are those of docs/protocol.md: a request is ``A5 cmd len(LE16) payload crc8``
(``len + 5`` bytes), a reply ``5A cmd status len(LE16) payload crc8`` (``len + 6`` bytes).
Like the other link blocks they have no cycle model: they sit outside the accelerator's
timing.
"""

from __future__ import annotations

from collections.abc import Iterable

from amaranth import Module, Mux, Signal
from amaranth.hdl import unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from rtl_templates.common import bits_for, check_int
from rtl_templates.frame_format import SYNC_REQUEST
from rtl_templates.memport import MemPortSignature

_BYTE = stream.Signature(unsigned(8))


class FrameDemux(wiring.Component):
    """Routes whole request frames to ``a`` or ``b`` by their command byte.

    Parameters: ``b_commands`` (the command bytes that go to ``b``; every other frame, and
    every byte that does not start a frame, goes to ``a``), ``gap`` (cycles without a byte
    waiting that end a frame early: the handlers' own timeout, so an unfinished or
    over-long frame does not shift the routing of the next one).

    Ports: sink ``i`` (bytes); sources ``a``, ``b``; ``b_allowed`` (in: while low, a frame
    for ``b`` waits at its command byte, taking nothing); ``b_frame`` (out: a one-cycle
    pulse when a frame starts towards ``b``); ``frame_error``, ``overrun`` (in: a UartRx's
    pulses) and ``a_frame_error``, ``a_overrun``, ``b_frame_error``, ``b_overrun`` (out:
    those pulses, to the handler receiving at the time; ``a`` between frames).

    Behaviour: the sync byte ``A5`` is held until the command byte is seen, then passed on
    followed by the frame's bytes, ``len + 5`` in all (``len`` from bytes 2 and 3), to one
    handler. A byte that is not ``A5`` where a frame should start goes to ``a``, and so do
    all bytes after it until the line has been quiet for ``gap`` cycles (``a`` drains and
    answers such bytes). Nothing is dropped or duplicated: every byte taken is passed to
    exactly one output, in order; stalls on either output only delay.
    """

    def __init__(self, *, b_commands: Iterable[int], gap: int):
        self.b_commands = tuple(sorted({check_int("command", c, 0) for c in b_commands}))
        if any(c > 0xFF for c in self.b_commands):
            raise ValueError(f"commands are bytes, not {self.b_commands!r}")
        self.gap = check_int("gap", gap, 2)
        super().__init__({
            "i": In(_BYTE), "a": Out(_BYTE), "b": Out(_BYTE),
            "b_allowed": In(1), "b_frame": Out(1),
            "frame_error": In(1), "overrun": In(1),
            "a_frame_error": Out(1), "a_overrun": Out(1),
            "b_frame_error": Out(1), "b_overrun": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        i, a, b = self.i, self.a, self.b
        to_b = Signal()  # the target of the frame being passed on
        count = Signal(17)  # bytes of the frame passed on so far (the sync byte included)
        length = Signal(16)
        quiet = Signal(range(self.gap + 1))
        with m.If(i.valid):
            m.d.sync += quiet.eq(0)
        with m.Elif(quiet != self.gap):
            m.d.sync += quiet.eq(quiet + 1)
        timed_out = quiet == self.gap

        is_b = Signal()
        m.d.comb += is_b.eq(0)
        for c in self.b_commands:
            with m.If(i.payload == c):
                m.d.comb += is_b.eq(1)
        m.d.comb += [a.payload.eq(i.payload), b.payload.eq(i.payload)]
        m.d.comb += [self.a_frame_error.eq(self.frame_error & ~to_b),
                     self.a_overrun.eq(self.overrun & ~to_b),
                     self.b_frame_error.eq(self.frame_error & to_b),
                     self.b_overrun.eq(self.overrun & to_b)]

        def forward():
            m.d.comb += [a.valid.eq(i.valid & ~to_b), b.valid.eq(i.valid & to_b),
                         i.ready.eq(Mux(to_b, b.ready, a.ready))]

        with m.FSM():
            with m.State("idle"):
                m.d.comb += i.ready.eq(i.payload == SYNC_REQUEST)
                with m.If(i.valid):
                    with m.If(i.payload == SYNC_REQUEST):
                        m.next = "command"
                    with m.Else():
                        m.d.sync += to_b.eq(0)
                        m.next = "drain"
            with m.State("command"):  # the sync byte is held; look at the command byte
                with m.If(i.valid & is_b & self.b_allowed):
                    m.d.sync += [to_b.eq(1), count.eq(1)]
                    m.d.comb += self.b_frame.eq(1)
                    m.next = "sync"
                with m.Elif(i.valid & ~is_b):
                    m.d.sync += [to_b.eq(0), count.eq(1)]
                    m.next = "sync"
                with m.Elif(~i.valid & timed_out):  # a lone sync byte: a times it out
                    m.d.sync += [to_b.eq(0), count.eq(1)]
                    m.next = "sync"
            with m.State("sync"):  # pass the held sync byte on
                m.d.comb += [a.payload.eq(SYNC_REQUEST), b.payload.eq(SYNC_REQUEST),
                             a.valid.eq(~to_b), b.valid.eq(to_b)]
                with m.If(Mux(to_b, b.ready, a.ready)):
                    m.next = "frame"
            with m.State("frame"):
                forward()
                with m.If(i.valid & i.ready):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == 2):
                        m.d.sync += length[:8].eq(i.payload)
                    with m.If(count == 3):
                        m.d.sync += length[8:].eq(i.payload)
                    with m.If((count >= 4) & (count == length + 4)):
                        m.d.sync += to_b.eq(0)
                        m.next = "idle"
                with m.Elif(timed_out):
                    m.d.sync += to_b.eq(0)
                    m.next = "idle"
            with m.State("drain"):  # not a frame: a drains it until the line is quiet
                forward()
                with m.If(~i.valid & timed_out):
                    m.next = "idle"
        return m


class ReplyMux(wiring.Component):
    """Merges the reply bytes of ``a`` and ``b`` into ``o``, one whole reply at a time.

    Ports: sinks ``a``, ``b`` (reply byte streams), source ``o``; ``b_done`` (out: a
    one-cycle pulse with the last byte of a reply from ``b``).

    A reply is ``len + 6`` bytes (``len`` from its bytes 3 and 4). Between replies ``a``
    goes first when both have a byte; once a reply has started, only its source is passed
    on until its last byte, however long the source pauses between bytes.
    """

    def __init__(self):
        super().__init__({"a": In(_BYTE), "b": In(_BYTE), "o": Out(_BYTE), "b_done": Out(1)})

    def elaborate(self, platform):
        m = Module()
        a, b, o = self.a, self.b, self.o
        from_b = Signal()
        busy = Signal()
        count = Signal(17)
        length = Signal(16)
        sel_b = Signal()
        m.d.comb += sel_b.eq(Mux(busy, from_b, ~a.valid & b.valid))
        m.d.comb += [o.payload.eq(Mux(sel_b, b.payload, a.payload)),
                     o.valid.eq(Mux(sel_b, b.valid, a.valid)),
                     a.ready.eq(~sel_b & o.ready), b.ready.eq(sel_b & o.ready)]
        with m.If(o.valid & o.ready):
            m.d.sync += [busy.eq(1), from_b.eq(sel_b), count.eq(count + 1)]
            with m.If(count == 3):
                m.d.sync += length[:8].eq(o.payload)
            with m.If(count == 4):
                m.d.sync += length[8:].eq(o.payload)
            with m.If((count >= 5) & (count == length + 5)):
                m.d.sync += [busy.eq(0), count.eq(0)]
                m.d.comb += self.b_done.eq(sel_b)
        return m


class MemPortShare(wiring.Component):
    """Two memory-port initiators taking turns at one memory: ``a`` while ``use_b`` is low,
    ``b`` while it is high.

    Parameters: those of the `MemPortSignature` (all three ports have it); ``pending``
    (the most beats one initiator may have requested and not yet moved; default 1024).

    Ports: ``a``, ``b`` (the memory side of the port: connect the initiators), ``mem`` (the
    initiator side: connect the memory), ``use_b`` (in).

    Switching: a request of ``a`` is passed on only while ``use_b`` is low and ``b`` has no
    beat outstanding (requested, not yet read or written), one of ``b`` only while
    ``use_b`` is high and ``a`` has none. Read beats go to the initiator that has beats
    outstanding (requests are served in order, so at most one has); beats still owed to
    ``a`` after ``use_b`` rose are read and dropped (``a`` is expected to be held in
    reset meanwhile, so it may not take them).
    """

    def __init__(self, *, addr_width: int, data_width: int, max_burst: int,
                 pending: int = 1024):
        self.port_signature = MemPortSignature(addr_width=addr_width, data_width=data_width,
                                               max_burst=max_burst)
        self.pending = check_int("pending", pending, max_burst)
        super().__init__({"a": In(self.port_signature), "b": In(self.port_signature),
                          "mem": Out(self.port_signature), "use_b": In(1)})

    def elaborate(self, platform):
        m = Module()
        a, b, mem = self.a, self.b, self.mem
        width = bits_for(self.pending + self.port_signature.max_burst)
        owed_a, owed_b = Signal(width), Signal(width)
        grant_a = Signal()
        grant_b = Signal()
        m.d.comb += [grant_a.eq(~self.use_b & (owed_b == 0)),
                     grant_b.eq(self.use_b & (owed_a == 0))]
        req = Mux(grant_b, b.req.payload.as_value(), a.req.payload.as_value())
        m.d.comb += [
            mem.req.payload.as_value().eq(req),
            mem.req.valid.eq((grant_a & a.req.valid) | (grant_b & b.req.valid)),
            a.req.ready.eq(grant_a & mem.req.ready), b.req.ready.eq(grant_b & mem.req.ready),
            mem.w.payload.eq(Mux(grant_b, b.w.payload, a.w.payload)),
            mem.w.valid.eq(Mux(grant_b, b.w.valid, grant_a & a.w.valid)),
            a.w.ready.eq(grant_a & mem.w.ready), b.w.ready.eq(grant_b & mem.w.ready),
            a.r.payload.eq(mem.r.payload), b.r.payload.eq(mem.r.payload),
        ]
        drop = self.use_b  # beats owed to a after the switch are read and dropped
        with m.If(owed_a != 0):
            m.d.comb += [a.r.valid.eq(mem.r.valid & ~drop), mem.r.ready.eq(drop | a.r.ready)]
        with m.Else():
            m.d.comb += [b.r.valid.eq(mem.r.valid), mem.r.ready.eq(b.r.ready)]

        beats = mem.req.payload.count + 1
        moved_a = (mem.r.valid & mem.r.ready & (owed_a != 0)) | (a.w.valid & a.w.ready)
        moved_b = (mem.r.valid & mem.r.ready & (owed_a == 0)) | (b.w.valid & b.w.ready)
        fired = mem.req.valid & mem.req.ready
        m.d.sync += [
            owed_a.eq(owed_a + Mux(fired & grant_a, beats, 0) - moved_a),
            owed_b.eq(owed_b + Mux(fired & grant_b, beats, 0) - moved_b),
        ]
        return m
