"""The accelerator's port to external memory, and an on-chip memory behind it for simulation.

`MemPortSignature` is the one interface between the compute engine and whatever
holds the weights (LiteDRAM on the ULX3S, `MemPortRAM` in the fast regressions),
so the controller can be swapped (docs/hardware.md, "The memory port").
`MemPortRAM` has parameterised latency, beat interval and refresh gaps, and an
exact cycle model (`MemPortRAMModel`) for the planner.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth import Module, Mux, Signal
from amaranth.hdl import unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl_templates.common import bits_for, check_int
from rtl_templates.timing import BlockModel, Network


def request_layout(addr_width: int, max_burst: int) -> data.StructLayout:
    """A burst request: word address, beats - 1 (as AXI's LEN) and the direction."""
    return data.StructLayout({
        "addr": unsigned(addr_width),
        "count": unsigned(bits_for(max_burst)),
        "write": unsigned(1),
    })


def pack_request(addr: int, beats: int, write: bool, addr_width: int, max_burst: int) -> int:
    """The payload word of a request (field order of `request_layout`, addr in the low bits)."""
    if not 1 <= beats <= max_burst:
        raise ValueError(f"beats must be 1 .. {max_burst}, not {beats!r}")
    if not 0 <= addr < (1 << addr_width):
        raise ValueError(f"addr must fit {addr_width} bits, not {addr!r}")
    count_bits = bits_for(max_burst)
    return addr | ((beats - 1) << addr_width) | (int(write) << (addr_width + count_bits))


def unpack_request(word: int, addr_width: int, max_burst: int) -> tuple[int, int, bool]:
    """(addr, beats, write) of a request payload word."""
    count_bits = bits_for(max_burst)
    addr = word & ((1 << addr_width) - 1)
    beats = ((word >> addr_width) & ((1 << count_bits) - 1)) + 1
    return addr, beats, bool((word >> (addr_width + count_bits)) & 1)


class MemPortSignature(wiring.Signature):
    """The memory port, seen from the accelerator (the initiator).

    Members: ``req`` (out: burst requests, `request_layout`), ``w`` (out: write
    beats, ``unsigned(data_width)``), ``r`` (in: read beats, ``unsigned(data_width)``).
    All three are `amaranth.lib.stream` interfaces with valid/ready. The memory side
    of the port is ``MemPortSignature(...).flip()``.

    Parameters: ``addr_width`` (bits of a word address), ``data_width`` (bits of a
    beat), ``max_burst`` (beats of the longest burst; a power of two >= 2).
    Contract (docs/hardware.md, "The memory port"): requests are served in order;
    a read of ``count + 1`` beats returns words ``addr, addr + 1, ...`` on ``r`` in
    that order; a write takes ``count + 1`` beats from ``w`` for the same addresses;
    a read accepted after a write sees the written data.
    """

    def __init__(self, *, addr_width: int, data_width: int, max_burst: int):
        self.addr_width = check_int("addr_width", addr_width)
        self.data_width = check_int("data_width", data_width)
        self.max_burst = check_int("max_burst", max_burst, 2)
        if max_burst & (max_burst - 1):
            raise ValueError(f"max_burst must be a power of two, not {max_burst!r}")
        super().__init__({
            "req": Out(stream.Signature(request_layout(addr_width, max_burst))),
            "w": Out(stream.Signature(unsigned(data_width))),
            "r": In(stream.Signature(unsigned(data_width))),
        })

    def __eq__(self, other):
        return (isinstance(other, MemPortSignature) and self.addr_width == other.addr_width
                and self.data_width == other.data_width and self.max_burst == other.max_burst)

    def __hash__(self):
        return hash((MemPortSignature, self.addr_width, self.data_width, self.max_burst))

    def __repr__(self):
        return (f"MemPortSignature(addr_width={self.addr_width}, data_width={self.data_width}, "
                f"max_burst={self.max_burst})")


class MemPortRAM(wiring.Component):
    """An on-chip memory behind a memory port, with the timing of an external one.

    Parameters: ``data_width``, ``depth`` (words, a power of two; the port's
    ``addr_width`` is log2 of it), ``max_burst``, ``latency`` (>= 2: a read's first
    beat is offered ``latency`` cycles after the cycle its request fired), ``interval``
    (>= 1: at most one beat, read or write, every ``interval`` cycles), ``refresh_period``
    and ``refresh_cycles`` (0 for none: the last ``refresh_cycles`` cycles of every
    ``refresh_period`` the memory accepts no request and moves no beat, as an SDRAM
    refreshing), ``init`` (initial words).

    Ports: the memory side of a `MemPortSignature`: ``req``, ``w`` (sinks), ``r`` (source).

    Latency: ``latency`` cycles from request to first read beat; writes are taken from
    the cycle after their request. Throughput: one beat per ``interval`` cycles within
    a burst; the next request is taken in the cycle after the previous burst's last
    read was issued or last write taken, so back-to-back reads pay ``latency - 1``
    cycles between bursts. Backpressure: ``r.valid`` is a register holding its beat
    until it fires; while ``r`` stalls no further word is read, so nothing is lost.
    ``req.ready`` and ``w.ready`` depend only on the memory's state.
    """

    def __init__(self, *, data_width: int, depth: int, max_burst: int = 64, latency: int = 2,
                 interval: int = 1, refresh_period: int = 0, refresh_cycles: int = 0,
                 init=()):
        _set_timing(self, data_width=data_width, depth=depth, max_burst=max_burst,
                    latency=latency, min_latency=2, interval=interval,
                    refresh_period=refresh_period, refresh_cycles=refresh_cycles, init=init)
        super().__init__(self.port_signature.flip())

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=unsigned(self.data_width), depth=self.depth,
                                        init=self.init)
        wr = mem.write_port()
        rd = mem.read_port(domain="sync")
        remaining = Signal(range(self.max_burst + 1))
        writing = Signal()
        addr = Signal(self.port_signature.addr_width)
        delay = Signal(range(max(self.latency, self.interval)))
        busy = Signal()
        if self.refresh_period:
            # Phase of the refresh period; its last refresh_cycles cycles are busy.
            phase = Signal(range(self.refresh_period))
            m.d.sync += phase.eq(_wrap_inc(phase, self.refresh_period))
            m.d.comb += busy.eq(phase >= self.refresh_period - self.refresh_cycles)

        advance = ~self.r.valid | self.r.ready
        issue = Signal()
        take = Signal()
        start = Signal()
        m.d.comb += [
            self.req.ready.eq((remaining == 0) & ~busy),
            start.eq(self.req.valid & self.req.ready),
            issue.eq(~writing & (remaining != 0) & (delay == 0) & advance & ~busy),
            self.w.ready.eq(writing & (remaining != 0) & (delay == 0) & ~busy),
            take.eq(self.w.valid & self.w.ready),
            rd.addr.eq(addr), rd.en.eq(issue),
            wr.addr.eq(addr), wr.data.eq(self.w.payload), wr.en.eq(take),
            self.r.payload.eq(rd.data),
        ]
        with m.If(advance):
            m.d.sync += self.r.valid.eq(issue)
        with m.If(start):
            m.d.sync += [
                addr.eq(self.req.payload.addr),
                remaining.eq(self.req.payload.count + 1),
                writing.eq(self.req.payload.write),
                delay.eq(0),
            ]
            with m.If(~self.req.payload.write):
                m.d.sync += delay.eq(self.latency - 2)
        with m.Elif(issue | take):
            m.d.sync += [addr.eq(addr + 1), remaining.eq(remaining - 1),
                         delay.eq(self.interval - 1)]
        with m.Elif(delay != 0):
            m.d.sync += delay.eq(delay - 1)
        return m

    def model(self) -> MemPortRAMModel:
        return MemPortRAMModel(self)


def _set_timing(ram, *, data_width, depth, max_burst, latency, min_latency, interval,
                refresh_period, refresh_cycles, init) -> None:
    """Check and set the parameters the on-chip memory-port models share."""
    check_int("depth", depth, 2)
    if depth & (depth - 1):
        raise ValueError(f"depth must be a power of two, not {depth!r}")
    ram.depth = depth
    ram.latency = check_int("latency", latency, min_latency)
    ram.interval = check_int("interval", interval, 1)
    ram.refresh_period = check_int("refresh_period", refresh_period, 0)
    ram.refresh_cycles = check_int("refresh_cycles", refresh_cycles, 0)
    if refresh_period and not 0 < refresh_cycles < refresh_period:
        raise ValueError(f"refresh_cycles must be 1 .. refresh_period - 1 "
                         f"({refresh_period - 1}), not {refresh_cycles!r}")
    if not refresh_period and refresh_cycles:
        raise ValueError("refresh_cycles needs a refresh_period")
    ram.init = [int(v) for v in init]
    if len(ram.init) > depth:
        raise ValueError(f"init has {len(ram.init)} words, more than depth {depth}")
    ram.port_signature = MemPortSignature(addr_width=bits_for(depth), data_width=data_width,
                                          max_burst=max_burst)
    ram.data_width = ram.port_signature.data_width
    ram.max_burst = ram.port_signature.max_burst


def _wrap_inc(counter: Signal, modulus: int):
    """counter + 1 modulo `modulus` (a plain increment wraps when it is a power of two)."""
    if modulus & (modulus - 1) == 0:
        return (counter + 1)[:len(counter)]
    return Mux(counter == modulus - 1, 0, counter + 1)


class MemPortRAMModel(BlockModel):
    """Cycle-exact control mirror of `MemPortRAM`. Needs the request words (``in_words``
    of ``req``): a request's length and direction decide the timing."""

    inputs = ("req", "w")
    outputs = ("r",)

    def __init__(self, ram: MemPortRAM):
        self.addr_width = ram.port_signature.addr_width
        self.max_burst = ram.max_burst
        self.latency, self.interval = ram.latency, ram.interval
        self.period, self.refresh = ram.refresh_period, ram.refresh_cycles
        self.remaining = 0
        self.writing = False
        self.delay = 0
        self.r_valid = False
        self._offered: tuple[int, int, bool] | None = None

    def busy(self, cycle: int | None = None) -> bool:
        # The RTL's phase counter leaves reset at 0 and has counted once by cycle 1.
        if not self.period:
            return False
        phase = (self.cycle if cycle is None else cycle) % self.period
        return phase >= self.period - self.refresh

    def valid(self, port):
        return self.r_valid

    def ready(self, port):
        if port == "req":
            ready = self.remaining == 0 and not self.busy()
            if ready and self.in_valid("req"):
                self._offered = unpack_request(self.in_word("req"), self.addr_width,
                                               self.max_burst)
            return ready
        if port == "w":
            return (self.writing and self.remaining != 0 and self.delay == 0
                    and not self.busy())
        raise KeyError(f"model {self.name!r} has no input port {port!r}")

    def tick(self, fired):
        busy = self.busy()
        advance = not self.r_valid or fired["r"]
        issue = (not self.writing and self.remaining != 0 and self.delay == 0 and advance
                 and not busy)
        if advance:
            self.r_valid = issue
        if fired["req"]:
            _, beats, write = self._offered
            self.remaining, self.writing = beats, write
            self.delay = 0 if write else self.latency - 2
        elif issue or fired["w"]:
            self.remaining -= 1
            self.delay = self.interval - 1
        elif self.delay:
            self.delay -= 1

    def quiet(self):
        if self.remaining:
            return 1
        if not self.period:
            return 1 << 30
        # Idle: only req.ready changes, at the next refresh boundary.
        now, n = self.busy(), 1
        while n < self.period and self.busy(self.cycle + n) == now:
            n += 1
        return n

    def skip(self, cycles):
        self.delay = max(0, self.delay - cycles)


# ------------------------------------------------------------------- a block with its memory

class CyclicWords(Sequence):
    """`words` repeated without end (an engine repeats its requests for every image)."""

    def __init__(self, words: Sequence[int]):
        self.words = list(words)

    def __getitem__(self, k):
        return self.words[k % len(self.words)]

    def __len__(self):
        return 1 << 40


def request_words(component) -> list[int]:
    """The packed read requests (`pack_request`) of one image of `component`."""
    sig = component.mem.signature
    return [pack_request(a, n, False, sig.addr_width, sig.max_burst)
            for a, n in component.requests()]


class WithMemory(wiring.Component):
    """`block` with a memory component `memory` (the memory side of a `MemPortSignature`,
    e.g. `MemPortRAM`) on its ``mem`` port; the other ports of `block` are this top's.

    Timing: the block's model next to the memory's (`model_network`), the memory's
    request words being the block's `requests()` image after image."""

    def __init__(self, block, memory):
        self.block, self.memory = block, memory
        members = {k: v for k, v in block.signature.members.items() if k != "mem"}
        super().__init__(wiring.Signature(members))

    def elaborate(self, platform):
        m = Module()
        m.submodules.block, m.submodules.memory = self.block, self.memory
        wiring.connect(m, self.block.mem, self.memory)
        pass_through(m, self, self.block)
        return m

    def model_network(self, net: Network, inputs: dict, prefix: str = "dut") -> dict:
        """Add the block's model (``{prefix}.block``) and the memory's (``{prefix}.memory``)
        to `net`, joined on the memory port; returns where this top's stream ports are.
        The block's timing must not depend on its input words (dense)."""
        blk, mem = f"{prefix}.block", f"{prefix}.memory"
        net.add(blk, self.block.model())
        net.add(mem, self.memory.model())
        net.connect((blk, "req"), (mem, "req"), words=CyclicWords(request_words(self.block)))
        net.connect((blk, "w"), (mem, "w"))
        net.connect((mem, "r"), (blk, "r"))
        return {name: (blk, name) for name in self.signature.members}


def pass_through(m: Module, outer: wiring.Component, inner: wiring.Component) -> None:
    """Wire every member of `outer`'s signature to the same-named member of `inner` (a
    wrapper's ports are its submodule's)."""
    for name, member in outer.signature.members.items():
        o, i = getattr(outer, name), getattr(inner, name)
        if member.is_port:  # a plain signal (e.g. a UartRx's error pulse)
            m.d.comb += (i.eq(o) if member.flow == wiring.In else o.eq(i))
        elif member.flow == wiring.In:
            wiring.connect(m, wiring.flipped(o), i)
        else:
            wiring.connect(m, i, wiring.flipped(o))
