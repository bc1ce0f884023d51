"""From the memory port (burst requests) to LiteDRAM's native user port (one command per word).

LiteDRAM's native port has no backpressure on read data (``rdata.valid`` comes a fixed
time after the command, whatever ``rdata.ready`` says) and takes write data when its
controller wants it, without looking at ``wdata.valid``. `NativeToMemPort` makes a
stream port of it: reads are issued only against free room in a read buffer (credits),
and a write command is issued only with its data offered; the word is taken with
the command and held until the controller asks for it.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl_templates.common import check_int
from rtl_templates.memport import MemPortSignature
from rtl_templates.plumbing import StreamFIFO


def native_signature(addr_width: int, data_width: int) -> wiring.Signature:
    """LiteDRAM's native user port seen from its user (the generated core's port names)."""
    return wiring.Signature({
        "cmd_valid": Out(1), "cmd_ready": In(1), "cmd_we": Out(1), "cmd_addr": Out(addr_width),
        "wdata_valid": Out(1), "wdata_ready": In(1), "wdata_we": Out(data_width // 8),
        "wdata_data": Out(data_width),
        "rdata_valid": In(1), "rdata_ready": Out(1), "rdata_data": In(data_width),
    })


class NativeToMemPort(wiring.Component):
    """Serves a memory port (``port``, memory side) from a LiteDRAM native port (``native``).

    Parameters: ``addr_width``, ``data_width`` (those of the native port; the memory port
    has the same), ``max_burst``, ``read_buffer`` (beats of read data it can hold: at
    least the controller's read round trip in cycles, for full-rate bursts).

    Latency: a read's first beat leaves two cycles after the controller returns it
    (the read buffer). Throughput: reads, one word command per cycle while the buffer
    has room (``read_buffer`` beats issued and not yet taken from ``r``); writes, one
    word at a time (the next command waits until the controller took the previous
    word: writes load weights, not the hot path). Backpressure: a stalled ``r`` fills
    the buffer and then stops read commands; no beat is lost. ``req`` is taken when
    the previous burst's commands are all issued (and its last write word taken).
    """

    def __init__(self, *, addr_width: int, data_width: int, max_burst: int = 64,
                 read_buffer: int = 32):
        if data_width % 8:
            raise ValueError(f"data_width must be a multiple of 8, not {data_width!r}")
        self.read_buffer = check_int("read_buffer", read_buffer, 2)
        self.port_signature = MemPortSignature(addr_width=addr_width, data_width=data_width,
                                               max_burst=max_burst)
        super().__init__({
            "port": In(self.port_signature),
            "native": Out(native_signature(addr_width, data_width)),
        })

    def elaborate(self, platform):
        m = Module()
        sig = self.port_signature
        port, nat = self.port, self.native
        m.submodules.rbuf = rbuf = StreamFIFO(sig.data_width, self.read_buffer)
        remaining = Signal(range(sig.max_burst + 1))
        writing = Signal()
        addr = Signal(sig.addr_width)
        wpending = Signal()  # a write command was taken; its word (in wword) not yet
        wword = Signal(sig.data_width)
        outstanding = Signal(range(self.read_buffer + 1))  # reads issued, beats not yet out

        read_cmd = ~writing & (remaining != 0) & (outstanding != self.read_buffer)
        write_cmd = writing & (remaining != 0) & ~wpending & port.w.valid
        cmd_fire = nat.cmd_valid & nat.cmd_ready
        r_fire = port.r.valid & port.r.ready
        issued = cmd_fire & ~writing
        m.d.comb += [
            port.req.ready.eq((remaining == 0) & ~wpending),
            nat.cmd_valid.eq(read_cmd | write_cmd),
            nat.cmd_we.eq(writing),
            nat.cmd_addr.eq(addr),
            nat.wdata_valid.eq(wpending),
            nat.wdata_data.eq(wword),
            nat.wdata_we.eq(-1),
            # The word is taken with its command and held until the controller wants it.
            port.w.ready.eq(writing & (remaining != 0) & ~wpending & nat.cmd_ready),
            nat.rdata_ready.eq(1),  # room is guaranteed by the credits
            rbuf.i.valid.eq(nat.rdata_valid),
            rbuf.i.payload.eq(nat.rdata_data),
        ]
        wiring.connect(m, rbuf.o, wiring.flipped(port.r))
        with m.If(port.req.valid & port.req.ready):
            m.d.sync += [addr.eq(port.req.payload.addr),
                         remaining.eq(port.req.payload.count + 1),
                         writing.eq(port.req.payload.write)]
        with m.Elif(cmd_fire):
            m.d.sync += [addr.eq(addr + 1), remaining.eq(remaining - 1)]
        with m.If(cmd_fire & writing):
            m.d.sync += [wpending.eq(1), wword.eq(port.w.payload)]
        with m.Elif(nat.wdata_ready):
            m.d.sync += wpending.eq(0)
        m.d.sync += outstanding.eq(outstanding + issued - r_fire)
        return m
