"""Stream plumbing the compiler places between blocks: a FIFO (memory + output register) and a fork.

Both work on any payload shape and come with their cycle models.
"""

from __future__ import annotations

import math

from amaranth import Module, Mux, Shape, Signal
from amaranth.hdl import unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl_templates.common import (
    _BRAM_SHAPES,
    Resources,
    bits_for,
    bram_count,
    check_choice,
    check_int,
)
from rtl_templates.timing import BlockModel


class StreamFIFO(wiring.Component):
    """First-in first-out buffer of `depth` beats in a memory, plus an output register.

    Parameters: ``shape`` (payload shape), ``depth`` (>= 2 beats of memory; the
    FIFO holds ``depth + 1`` beats counting its output register), ``style`` (Yosys'
    ``ram_style`` for the memory: None lets Yosys choose by cost, "logic" forces
    flip-flops, which suits a small FIFO on an iCE40 where any RAM would take a whole
    block RAM, "block" forces block RAM), ``out_reg`` (a register between the memory's
    read and ``o``, and ``i.ready`` from a register), ``bank_depth`` (with ``out_reg``:
    the memory split by address into block RAMs of that many words, a power of two below
    ``depth``, each read into its own register before the multiplexer that picks the
    word's bank; so a deep FIFO's stacked block RAMs' clock-to-out and the multiplexer are
    not one path).

    Ports: sink ``i``, source ``o``.

    Latency: a beat written into an empty FIFO is offered on ``o`` two cycles
    later, three with ``out_reg``, four with ``bank_depth``. Throughput: one beat per
    cycle in and out. Backpressure: ``i.ready`` is high while the memory has room (it
    depends only on the FIFO's state); ``o.valid`` is a register. The memory has one
    write and one synchronous read port, so it maps to block RAM or LUT RAM.
    """

    def __init__(self, shape, depth: int, style: str | None = None, out_reg: bool = False,
                 bank_depth: int | None = None):
        self.shape = shape
        self.out_reg = bool(out_reg)
        self.width = Shape.cast(shape).width
        self.depth = check_int("depth", depth, 2)
        if style is not None:
            check_choice("style", style, ("logic", "block"))
        self.style = style
        if bank_depth is not None:
            check_int("bank_depth", bank_depth, 2)
            if not _power_of_two(bank_depth) or bank_depth >= depth or not self.out_reg \
                    or style == "logic":
                raise ValueError(f"bank_depth must be a power of two below depth {depth}, "
                                 f"with out_reg and a RAM style; got {bank_depth}")
        self.bank_depth = bank_depth
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    @property
    def banks(self) -> int:
        return 1 if self.bank_depth is None else -(-self.depth // self.bank_depth)

    @property
    def bank_sizes(self) -> list[int]:
        """Words in each bank (the last may be short); [depth] unbanked."""
        if self.bank_depth is None:
            return [self.depth]
        return [min(self.bank_depth, self.depth - k * self.bank_depth) for k in range(self.banks)]

    @property
    def stages(self) -> int:
        """Registers from the memory's read (its own data register) to ``o``."""
        return 1 + self.out_reg + (self.banks > 1)

    def elaborate(self, platform):
        m = Module()
        depth, width = self.depth, self.width
        # no_rw_check: the read and write addresses meet only when the FIFO is empty (no
        # read) or full (no write), so a read never collides with a write and Yosys needs
        # no read-during-write bypass (synthesised alone, Yosys added one; in the
        # flattened board builds it had not: cifar-mid's came out the same).
        attrs = {"no_rw_check": 1} | ({"ram_style": self.style} if self.style else {})
        level = Signal(range(depth + 1))
        wp = Signal(range(depth))
        rp = Signal(range(depth))
        push = Signal()
        pop = Signal()
        if self.out_reg:
            # i.ready from a register, set when the next level has room (so a chain of
            # readies through the blocks before it starts at a flip-flop, not at the level
            # compare); the same cycles as `level != depth`.
            room = Signal(init=1)
            with m.If(push & ~pop):
                m.d.sync += room.eq(level != depth - 1)
            with m.Elif(pop & ~push):
                m.d.sync += room.eq(1)
            m.d.comb += self.i.ready.eq(room)
        else:
            m.d.comb += self.i.ready.eq(level != depth)
        m.d.comb += push.eq(self.i.valid & self.i.ready)

        # The memory (or each bank), written at wp and read at rp; `read` is the data of its
        # read register (stage 0 of the pipeline to o).
        if self.banks == 1:
            m.submodules.mem = mem = Memory(shape=unsigned(width), depth=depth, init=[],
                                            attrs=attrs)
            wr, rd = mem.write_port(), mem.read_port(domain="sync")
            m.d.comb += [wr.addr.eq(wp), wr.data.eq(self.i.payload), wr.en.eq(push),
                         rd.addr.eq(rp), rd.en.eq(pop)]
            read = [rd.data]
        else:
            low = bits_for(self.bank_depth)
            read = []
            for k, words in enumerate(self.bank_sizes):
                mem = Memory(shape=unsigned(width), depth=words, init=[], attrs=attrs)
                m.submodules[f"bank{k}"] = mem
                wr, rd = mem.write_port(), mem.read_port(domain="sync")
                m.d.comb += [wr.addr.eq(wp[:low]), wr.data.eq(self.i.payload),
                             wr.en.eq(push & (wp[low:] == k)),
                             rd.addr.eq(rp[:low]), rd.en.eq(pop)]
                read.append(rd.data)

        # A chain of `stages` registers, each with a valid flag, ending in o; stage j takes
        # stage j-1's word when it is empty or its own word moves on.
        n = self.stages
        full = [Signal(name=f"full{j}") for j in range(n - 1)] + [self.o.valid]
        adv = [Signal(name=f"adv{j}") for j in range(n)]
        m.d.comb += adv[n - 1].eq(~full[n - 1] | self.o.ready)
        for j in range(n - 1):
            m.d.comb += adv[j].eq(~full[j] | adv[j + 1])
        m.d.comb += pop.eq(adv[0] & (level != 0))
        with m.If(adv[0]):
            m.d.sync += full[0].eq(level != 0)
        for j in range(1, n):
            with m.If(adv[j]):
                m.d.sync += full[j].eq(full[j - 1])
        word = read[0]
        if self.banks > 1:
            # Stage 1: every bank's word in its own register, and which bank holds the FIFO's.
            sel = [Signal(range(self.banks), name=f"sel{j}") for j in range(2)]
            regs = [Signal(width, name=f"bank{k}_word") for k in range(self.banks)]
            with m.If(pop):
                m.d.sync += sel[0].eq(rp[low:])
            with m.If(adv[1]):
                m.d.sync += [sel[1].eq(sel[0])] + [r.eq(d) for r, d in zip(regs, read, strict=True)]
            word = Signal(width)
            with m.Switch(sel[1]):
                for k in range(self.banks):
                    with m.Case(k):
                        m.d.comb += word.eq(regs[k])
        if self.out_reg:
            out = Signal(width)
            with m.If(adv[n - 1]):
                m.d.sync += out.eq(word)
            word = out
        m.d.comb += self.o.payload.eq(word)
        with m.If(push):
            m.d.sync += wp.eq(_wrap_inc(wp, depth))
        with m.If(pop):
            m.d.sync += rp.eq(_wrap_inc(rp, depth))
        m.d.sync += level.eq(level + push - pop)
        return m

    def model(self) -> FIFOModel:
        return FIFOModel(self.depth, self.stages)

    def resources(self, family: str) -> Resources:
        """LUT4/FF estimate for 'ice40' or 'ecp5', calibrated with Yosys 0.70 on both
        families (28 FIFOs, depths 4 .. 4096, widths 4 .. 34): flip-flops exact, LUTs
        within 10 % but for a few deep or non-power-of-two RAMs (up to 20 %) and tiny LUT-RAM
        FIFOs (a few LUTs).

        Control: the level and the two pointers, about 6 LUT4s per level bit, plus 2 per
        pointer bit when the depth is not a power of two (the wrap compares). The memory:

        - in block RAM (``style="block"``, or Yosys' cheapest choice: `ram_in_block_ram`):
          nothing more (``no_rw_check``: a read never meets a write, so Yosys adds no
          read-before-write logic; with it a FIFO of 1,024 x 34 on ECP5 took 147 FFs and
          102 LUTs, now 67 and 57). RAMs stacked in depth (`bram_stack`) add a read
          multiplexer of about 0.75 LUT4 a bit per extra RAM (2560 x 34, five deep: 0.77
          on iCE40, 0.64 on ECP5) and its registered select.
        - banked (``bank_depth``): a block RAM per bank, a register per bank and the
          multiplexer, now between flip-flops.
        - in LUT RAM or flip-flops (Yosys' choice): a "ram" memory, whose mapping
          (hwgen.compiler.memmap) adds the read register and the read multiplexer.
        - ``style="logic"``: every entry a register loaded under a decoded write enable (a
          LUT4 per entry), read through a multiplexer of about 0.9 LUT4 per bit and entry.
        """
        check_choice("family", family, FAMILIES)
        depth, width = self.depth, self.width
        level, addr = bits_for(depth + 1), bits_for(depth)
        ff = level + 2 * addr + 1 + (self.width + 2 if self.out_reg else 0)
        lut = 6 * level + (0 if _power_of_two(depth) else 2 * addr) + (3 if self.out_reg else 0)
        if self.style == "logic":
            mux = math.ceil(0.9 * width * (depth - 1))
            return Resources(lut=lut + mux + depth, ff=ff + depth * width + width)
        if self.banks > 1:
            # Every bank's word register, stage 1's flag and the bank select of stages 0
            # and 1; the multiplexer as for stacked RAMs.
            return Resources(lut=lut + round(0.75 * width * (self.banks - 1)),
                             ff=ff + self.banks * width + 1 + 2 * bits_for(self.banks),
                             memories=tuple((d, width) for d in self.bank_sizes),
                             memory_kinds=("block",) * self.banks)
        if self.style == "block" or ram_in_block_ram(depth, width, family):
            stack = bram_stack(depth, width, family)
            select = bits_for(stack) if stack > 1 else 0
            return Resources(lut=lut + round(0.75 * width * (stack - 1)), ff=ff + select,
                             memories=((depth, width),), memory_kinds=("block",))
        return Resources(lut=lut, ff=ff, memories=((depth, width),))


FAMILIES = ("ice40", "ecp5")
# Yosys 0.70's memory_libmap costs (hwgen/memmap.py applies the same rule for the planner):
# soft logic 1 per bit, a block RAM 64 (iCE40) or 128 (ECP5), an ECP5 LUT RAM 4 per 16x4
# slice; a mapping must be strictly cheaper than the ones before it to win.
_BRAM_COST = {"ice40": 64, "ecp5": 128}


def ram_in_block_ram(depth: int, width: int, family: str) -> bool:
    """Whether Yosys maps a RAM with one write and one synchronous read port to block RAM."""
    cost = depth * width  # soft logic
    blocks = bram_count(depth, width, family) * _BRAM_COST[family]
    bram = blocks < cost
    cost = min(cost, blocks)
    if family == "ecp5" and 4 * math.ceil(depth / 16) * math.ceil(width / 4) < cost:
        return False  # LUT RAM
    return bram


def bram_stack(depth: int, width: int, family: str) -> int:
    """Block RAMs stacked in depth (read through a multiplexer) for a depth x width memory."""
    return math.ceil(depth / bram_depth(depth, width, family))


def bram_depth(depth: int, width: int, family: str) -> int:
    """Words per block RAM for a depth x width memory: the aspect ratio needing the fewest
    RAMs, the deepest among equals (as Yosys picks)."""
    def count(shape):
        return math.ceil(depth / shape[0]) * math.ceil(width / shape[1])

    fewest = min(count(s) for s in _BRAM_SHAPES[family])
    return max(d for d, w in _BRAM_SHAPES[family] if count((d, w)) == fewest)


def _power_of_two(n: int) -> bool:
    return n & (n - 1) == 0


def _wrap_inc(counter: Signal, modulus: int):
    """counter + 1 modulo `modulus` (a plain increment wraps when it is a power of two)."""
    if modulus & (modulus - 1) == 0:
        return (counter + 1)[:len(counter)]
    return Mux(counter == modulus - 1, 0, counter + 1)


class FIFOModel(BlockModel):
    """StreamFIFO's cycles: `depth` words of memory, then a chain of `stages` registers
    (the memory's read register first, ``o`` last), each taking the word before it when it
    is empty or its own word moves on."""

    def __init__(self, depth: int, stages: int = 1):
        self.depth = depth
        self.level = 0
        self.full = [False] * stages  # full[-1] is o.valid

    def valid(self, port):
        return self.full[-1]

    def ready(self, port):
        return self.level != self.depth

    def tick(self, fired):
        full = self.full
        adv = [False] * len(full)
        adv[-1] = not full[-1] or fired["o"]
        for j in range(len(full) - 2, -1, -1):
            adv[j] = not full[j] or adv[j + 1]
        for j in range(len(full) - 1, 0, -1):
            if adv[j]:
                full[j] = full[j - 1]
        pop = adv[0] and self.level != 0
        if adv[0]:
            full[0] = self.level != 0
        self.level += int(fired["i"]) - int(pop)

    def quiet(self):
        # Without a fire nothing moves, unless a word is about to move towards an empty
        # register ahead of it.
        full = self.full
        if (self.level and not full[0]) or any(a and not b for a, b in zip(full[:-1], full[1:], strict=True)):
            return 1
        return 1 << 30

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
        """Per output its valid, its taken flag and its done update; ``i.ready`` ANDs the
        flags. Measured with Yosys 0.70 (n = 2 .. 4): 4n LUT4s on iCE40, 2n + 4 on ECP5
        (its mapping merges more of the done updates); the payload is wires only."""
        check_choice("family", family, FAMILIES)
        lut = 4 * self.n if family == "ice40" else 2 * self.n + 4
        return Resources(lut=lut, ff=self.n)


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
