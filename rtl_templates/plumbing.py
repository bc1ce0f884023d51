"""Stream plumbing the compiler places between blocks: a FIFO (memory + output register) and a fork.

Both work on any payload shape and come with their cycle models.
"""

from __future__ import annotations

from amaranth import Module, Mux, Shape, Signal
from amaranth.hdl import unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl_templates.common import Resources, bits_for, check_choice, check_int
from rtl_templates.timing import BlockModel


class StreamFIFO(wiring.Component):
    """First-in first-out buffer of `depth` beats in a memory, plus an output register.

    Parameters: ``shape`` (payload shape), ``depth`` (>= 2 beats of memory; the
    FIFO holds ``depth + 1`` beats counting its output register), ``style`` (Yosys'
    ``ram_style`` for the memory: None lets Yosys choose by cost, "logic" forces
    flip-flops, which suits a small FIFO on an iCE40 where any RAM would take a whole
    block RAM, "block" forces block RAM).

    Ports: sink ``i``, source ``o``.

    Latency: a beat written into an empty FIFO is offered on ``o`` two cycles
    later. Throughput: one beat per cycle in and out. Backpressure: ``i.ready``
    is high while the memory has room (it depends only on the FIFO's state);
    ``o.valid`` is a register. The memory has one write and one synchronous
    read port, so it maps to block RAM or LUT RAM.
    """

    def __init__(self, shape, depth: int, style: str | None = None):
        self.shape = shape
        self.width = Shape.cast(shape).width
        self.depth = check_int("depth", depth, 2)
        if style is not None:
            check_choice("style", style, ("logic", "block"))
        self.style = style
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        depth = self.depth
        attrs = {"ram_style": self.style} if self.style else None
        m.submodules.mem = mem = Memory(shape=unsigned(self.width), depth=depth, init=[],
                                        attrs=attrs)
        wr = mem.write_port()
        rd = mem.read_port(domain="sync")
        level = Signal(range(depth + 1))
        wp = Signal(range(depth))
        rp = Signal(range(depth))
        push = Signal()
        pop = Signal()
        advance = Signal()

        m.d.comb += [
            self.i.ready.eq(level != depth),
            push.eq(self.i.valid & self.i.ready),
            wr.addr.eq(wp), wr.data.eq(self.i.payload), wr.en.eq(push),
            # The read port's data register is the output register: it may take the
            # next word when it is empty or its word leaves in this cycle.
            advance.eq(~self.o.valid | self.o.ready),
            pop.eq(advance & (level != 0)),
            rd.addr.eq(rp), rd.en.eq(pop),
            self.o.payload.eq(rd.data),
        ]
        with m.If(advance):
            m.d.sync += self.o.valid.eq(level != 0)
        with m.If(push):
            m.d.sync += wp.eq(_wrap_inc(wp, depth))
        with m.If(pop):
            m.d.sync += rp.eq(_wrap_inc(rp, depth))
        m.d.sync += level.eq(level + push - pop)
        return m

    def model(self) -> FIFOModel:
        return FIFOModel(self.depth)

    def resources(self, family: str) -> Resources:
        ctr = bits_for(self.depth + 1)
        # Pointers wrap with a compare unless the depth is a power of two; the level
        # counts up and down (measured with Yosys 0.70: about 10 LUT4s per counter bit).
        lut, ff = 10 * ctr + 12, 3 * ctr + 1 + self.width
        if self.style == "logic":
            # Every entry a register with its write enable, read through a mux tree.
            bits = self.depth * self.width
            return Resources(lut=lut + self.width * (self.depth - 1) // 3 + self.depth,
                             ff=ff + bits)
        kinds = ("block",) if self.style == "block" else ("ram",)
        return Resources(lut=lut, ff=ff, memories=((self.depth, self.width),),
                         memory_kinds=kinds)


def _wrap_inc(counter: Signal, modulus: int):
    """counter + 1 modulo `modulus` (a plain increment wraps when it is a power of two)."""
    if modulus & (modulus - 1) == 0:
        return (counter + 1)[:len(counter)]
    return Mux(counter == modulus - 1, 0, counter + 1)


class FIFOModel(BlockModel):
    def __init__(self, depth: int):
        self.depth = depth
        self.level = 0
        self.out_valid = False

    def valid(self, port):
        return self.out_valid

    def ready(self, port):
        return self.level != self.depth

    def tick(self, fired):
        advance = not self.out_valid or fired["o"]
        pop = advance and self.level != 0
        if advance:
            self.out_valid = self.level != 0
        self.level += int(fired["i"]) - int(pop)

    def quiet(self):
        # Without a fire nothing moves, unless a stored word is about to reach the
        # empty output register.
        return 1 if self.level and not self.out_valid else 1 << 30

    def skip(self, cycles):
        pass


class Fork(wiring.Component):
    """Copies each beat of ``i`` to every output ``o0 .. o{n-1}``.

    Parameters: ``shape`` (payload shape), ``n`` (>= 2 outputs).

    Latency: none (combinational). Throughput: one beat per cycle when every
    output is ready. Backpressure: each output takes the beat once, in the
    cycle it is ready; ``i`` is released when every output has taken it, so a
    slow output delays the others' next beat but never duplicates or drops one.
    """

    def __init__(self, shape, n: int):
        self.shape = shape
        self.n = check_int("n", n, 2)
        members = {"i": In(stream.Signature(shape))}
        members.update({f"o{k}": Out(stream.Signature(shape)) for k in range(n)})
        super().__init__(members)

    def outputs(self) -> list:
        return [getattr(self, f"o{k}") for k in range(self.n)]

    def elaborate(self, platform):
        m = Module()
        done = Signal(self.n)
        outs = self.outputs()
        taken = []
        for k, o in enumerate(outs):
            m.d.comb += [o.payload.eq(self.i.payload), o.valid.eq(self.i.valid & ~done[k])]
            taken.append(done[k] | o.ready)
        m.d.comb += self.i.ready.eq(_and_all(taken))
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += done.eq(0)
        with m.Else():
            for k, o in enumerate(outs):
                with m.If(o.valid & o.ready):
                    m.d.sync += done[k].eq(1)
        return m

    def model(self) -> ForkModel:
        return ForkModel(self.n)

    def resources(self, family: str) -> Resources:
        return Resources(lut=2 * self.n + 1, ff=self.n)


def _and_all(values):
    acc = values[0]
    for v in values[1:]:
        acc = acc & v
    return acc


class ForkModel(BlockModel):
    def __init__(self, n: int):
        self.n = n
        self.outputs = tuple(f"o{k}" for k in range(n))
        self.done = [False] * n

    def valid(self, port):
        return self.in_valid("i") and not self.done[int(port[1:])]

    def ready(self, port):
        return all(d or self.out_ready(f"o{k}") for k, d in enumerate(self.done))

    def tick(self, fired):
        if fired["i"]:
            self.done = [False] * self.n
        else:
            for k in range(self.n):
                self.done[k] = self.done[k] or fired[f"o{k}"]

    def quiet(self):
        return 1 << 30  # state changes only when something fires

    def skip(self, cycles):
        pass
