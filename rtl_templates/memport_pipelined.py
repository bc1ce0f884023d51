"""An on-chip memory behind the memory port that overlaps bursts, as an SDRAM controller does.

`MemPortRAM` waits out its latency before each read burst; the SDRAM path (LiteDRAM +
its adapter) instead takes the next request while earlier words are still in flight,
so back-to-back bursts stream. `PipelinedMemPortRAM` models that: reads are issued at
once into a latency pipeline and a read buffer, against credits, with refresh gaps;
`PipelinedMemPortRAMModel` is its exact cycle model.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.hdl import unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from rtl_templates.common import bits_for, check_int
from rtl_templates.memport import (
    MemPortRAMModel,
    MemPortSignature,
    _set_timing,
    _wrap_inc,
    unpack_request,
)
from rtl_templates.plumbing import FIFOModel, StreamFIFO


class PipelinedMemPortRAM(wiring.Component):
    """An on-chip memory behind a memory port, with pipelined reads.

    Parameters: as `MemPortRAM` (``data_width``, ``depth``, ``max_burst``, ``interval``,
    ``refresh_period``, ``refresh_cycles``, ``init``), with ``latency`` >= 4 and
    ``buffer`` (>= 2 beats of read buffer: reads issued and not yet taken from ``r``
    are at most this many).

    Ports: the memory side of a `MemPortSignature`: ``req``, ``w`` (sinks), ``r`` (source).

    Latency: a read's first beat is offered ``latency`` cycles after its request (an
    empty pipeline, no refresh). Throughput: one word issued per ``interval`` cycles;
    the next request is taken in the cycle the previous burst's last read word is
    issued (after a write burst: the cycle after its last word), so back-to-back read
    bursts stream without gaps while the buffer has credit (``buffer >= latency`` for
    a full rate). Backpressure: ``r`` comes from a FIFO whose
    ``valid`` is a register; a stalled ``r`` uses up the credits and stops issuing.
    Refresh: as `MemPortRAM` (no request, no issue, no write in the busy cycles).
    Row changes: with ``row_words`` (a power of two, 0: none) a read word in another row
    (``addr // row_words``) than the last word read or written is issued ``row_cycles``
    cycles later than it would be (an SDRAM's precharge and activate; the row of
    LiteDRAM's mapping on the ULX3S's chip is one bank's 512 columns).
    """

    def __init__(self, *, data_width: int, depth: int, max_burst: int = 64, latency: int = 4,
                 interval: int = 1, refresh_period: int = 0, refresh_cycles: int = 0,
                 buffer: int = 32, row_words: int = 0, row_cycles: int = 0, init=()):
        _set_timing(self, data_width=data_width, depth=depth, max_burst=max_burst,
                    latency=latency, min_latency=4, interval=interval,
                    refresh_period=refresh_period, refresh_cycles=refresh_cycles, init=init)
        self.buffer = check_int("buffer", buffer, 2)
        self.row_words = check_int("row_words", row_words, 0)
        self.row_cycles = check_int("row_cycles", row_cycles, 0)
        if row_words & (row_words - 1) or (row_words and not 0 < row_words < depth):
            raise ValueError(f"row_words must be 0 or a power of two below depth, not {row_words!r}")
        super().__init__(self.port_signature.flip())

    def elaborate(self, platform):
        m = Module()
        sig: MemPortSignature = self.port_signature
        m.submodules.mem = mem = Memory(shape=unsigned(self.data_width), depth=self.depth,
                                        init=self.init)
        m.submodules.rbuf = rbuf = StreamFIFO(self.data_width, self.buffer)
        wr = mem.write_port()
        rd = mem.read_port(domain="sync")
        remaining = Signal(range(self.max_burst + 1))
        writing = Signal()
        addr = Signal(sig.addr_width)
        delay = Signal(bits_for(self.interval + self.row_cycles))
        outstanding = Signal(range(self.buffer + 1))
        busy = Signal()
        if self.refresh_period:
            phase = Signal(range(self.refresh_period))
            m.d.sync += phase.eq(_wrap_inc(phase, self.refresh_period))
            m.d.comb += busy.eq(phase >= self.refresh_period - self.refresh_cycles)

        issue = Signal()
        take = Signal()
        r_fire = self.r.valid & self.r.ready
        m.d.comb += [
            # The next read request may come in the cycle the last word is issued.
            self.req.ready.eq(((remaining == 0) | ((remaining == 1) & issue)) & ~busy),
            issue.eq(~writing & (remaining != 0) & (delay == 0)
                     & (outstanding != self.buffer) & ~busy),
            self.w.ready.eq(writing & (remaining != 0) & (delay == 0) & ~busy),
            take.eq(self.w.valid & self.w.ready),
            rd.addr.eq(addr), rd.en.eq(issue),
            wr.addr.eq(addr), wr.data.eq(self.w.payload), wr.en.eq(take),
        ]
        # The read word arrives a cycle after its issue; latency - 4 more register stages,
        # then the buffer (2 cycles from its input to its output).
        valid, word = Signal(), rd.data
        m.d.sync += valid.eq(issue)
        for k in range(self.latency - 4):
            v, d = Signal(name=f"stage{k}_valid"), Signal(self.data_width, name=f"stage{k}")
            m.d.sync += [v.eq(valid), d.eq(word)]
            valid, word = v, d
        m.d.comb += [rbuf.i.valid.eq(valid), rbuf.i.payload.eq(word)]
        wiring.connect(m, rbuf.o, wiring.flipped(self.r))
        m.d.sync += outstanding.eq(outstanding + issue - r_fire)
        start_gap, cross_gap = Mux(issue, self.interval - 1, 0), self.interval - 1
        if self.row_words and self.row_cycles:
            shift = self.row_words.bit_length() - 1
            last_row = Signal(sig.addr_width - shift)
            with m.If(issue | take):
                m.d.sync += last_row.eq(addr[shift:])
            prev_row = Mux(issue, addr[shift:], last_row)
            new_row = ~self.req.payload.write & (self.req.payload.addr[shift:] != prev_row)
            start_gap = start_gap + Mux(new_row, self.row_cycles, 0)
            crossing = issue & (addr[:shift] == self.row_words - 1)
            cross_gap = cross_gap + Mux(crossing, self.row_cycles, 0)
        with m.If(self.req.valid & self.req.ready):
            m.d.sync += [addr.eq(self.req.payload.addr),
                         remaining.eq(self.req.payload.count + 1),
                         writing.eq(self.req.payload.write),
                         delay.eq(start_gap)]
        with m.Elif(issue | take):
            m.d.sync += [addr.eq(addr + 1), remaining.eq(remaining - 1),
                         delay.eq(cross_gap)]
        with m.Elif(delay != 0):
            m.d.sync += delay.eq(delay - 1)
        return m

    def model(self) -> PipelinedMemPortRAMModel:
        return PipelinedMemPortRAMModel(self)


class PipelinedMemPortRAMModel(MemPortRAMModel):
    """Cycle-exact control mirror of `PipelinedMemPortRAM` (needs the request words)."""

    def __init__(self, ram: PipelinedMemPortRAM):
        super().__init__(ram)
        self.buffer = ram.buffer
        self.row_words, self.row_cycles = ram.row_words, ram.row_cycles
        self.addr = self.last_row = 0
        self.outstanding = 0
        self.pipe = [False] * (ram.latency - 3)  # the read word's valid, then the stages
        self.fifo = FIFOModel(ram.buffer)

    def valid(self, port):
        return self.fifo.valid("o")

    def _issue(self) -> bool:
        return (not self.writing and self.remaining != 0 and self.delay == 0
                and self.outstanding != self.buffer and not self.busy())

    def ready(self, port):
        if port != "req":
            return super().ready(port)
        ready = (self.remaining == 0 or (self.remaining == 1 and self._issue())) \
            and not self.busy()
        if ready and self.in_valid("req"):
            self._offered = unpack_request(self.in_word("req"), self.addr_width, self.max_burst)
        return ready

    def tick(self, fired):
        issue = self._issue()
        self.fifo.tick({"i": self.pipe[-1], "o": fired["r"]})
        self.pipe = [issue] + self.pipe[:-1]
        self.outstanding += int(issue) - int(fired["r"])
        rows = self.row_words and self.row_cycles
        prev_row = self.addr // self.row_words if rows and issue else self.last_row
        if rows and (issue or fired["w"]):
            self.last_row = self.addr // self.row_words
        if fired["req"]:
            a, beats, write = self._offered
            self.remaining, self.writing = beats, write
            self.delay = self.interval - 1 if issue else 0
            if rows and not write and a // self.row_words != prev_row:
                self.delay += self.row_cycles
            self.addr = a
        elif issue or fired["w"]:
            self.remaining -= 1
            self.delay = self.interval - 1
            if rows and issue and self.addr % self.row_words == self.row_words - 1:
                self.delay += self.row_cycles
            self.addr += 1
        elif self.delay:
            self.delay -= 1

    def quiet(self):
        if self.remaining or any(self.pipe) or self.fifo.level:
            return 1
        return super().quiet()
