"""The membrane residual add: U + branch (+ branch), lane by lane, as a join of values streams."""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.hdl import signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl_templates.common import Resources, check_int, values_signature
from rtl_templates.timing import BlockModel


class ResidualAdd(wiring.Component):
    """Adds two or three values streams of the same fold: ``o = i0 + i1 (+ i2)``.

    Parameters: ``in_widths`` (one signed width per input, 2 or 3 inputs),
    ``out_width`` (the residual stream's width; the compiler derives it from
    worst-case bounds, docs/arithmetic.md, so the sum never wraps), ``lanes``,
    ``skid`` (a second output register that takes a sum while the first one waits, so
    the inputs' ``ready`` does not depend on ``o.ready``: a chain of readies through the
    blocks after the add ends at it; the planner's choice on ECP5, for timing).

    Ports: sinks ``i0``, ``i1`` (and ``i2``), source ``o``; every input carries
    the same channels in the same order (docs/hardware.md).

    Latency: one cycle (registered output). Throughput: one beat per cycle.
    Backpressure: the inputs are taken together, in a cycle where all are valid
    and the output register is empty or emptying (with ``skid``: the skid register is
    empty); ``ready`` of each input depends on the other inputs' ``valid`` (a join).
    """

    def __init__(self, in_widths, out_width: int, lanes: int, skid: bool = False):
        self.in_widths = tuple(check_int("in_widths entry", w) for w in in_widths)
        if len(self.in_widths) not in (2, 3):
            raise ValueError(f"in_widths must name 2 or 3 inputs, not {len(self.in_widths)}")
        self.out_width = check_int("out_width", out_width)
        if self.out_width < max(self.in_widths):
            raise ValueError(f"out_width must be >= every input width, not {out_width!r}")
        self.lanes = check_int("lanes", lanes)
        self.skid = bool(skid)
        members = {f"i{k}": In(values_signature(w, lanes)) for k, w in enumerate(self.in_widths)}
        members["o"] = Out(values_signature(out_width, lanes))
        super().__init__(members)

    @property
    def inputs(self) -> list:
        return [getattr(self, f"i{k}") for k in range(len(self.in_widths))]

    def elaborate(self, platform):
        m = Module()
        ins = self.inputs
        all_valid = ins[0].valid
        for i in ins[1:]:
            all_valid = all_valid & i.valid
        advance = ~self.o.valid | self.o.ready
        totals = []
        for j in range(self.lanes):
            total = ins[0].payload[j]
            for i in ins[1:]:
                total = total + i.payload[j]
            totals.append(total)
        if not self.skid:
            for i in ins:
                m.d.comb += i.ready.eq(all_valid & advance)
            with m.If(advance):
                m.d.sync += self.o.valid.eq(all_valid)
                with m.If(all_valid):
                    m.d.sync += [self.o.payload[j].eq(t) for j, t in enumerate(totals)]
            return m
        # The skid register holds a sum taken while o waited; o takes it first.
        skid_valid = Signal()
        skid = [Signal(signed(self.out_width), name=f"skid{j}") for j in range(self.lanes)]
        push = Signal()
        m.d.comb += push.eq(all_valid & ~skid_valid)
        for i in ins:
            m.d.comb += i.ready.eq(push)
        with m.If(advance):
            with m.If(skid_valid):
                m.d.sync += [self.o.valid.eq(1), skid_valid.eq(0)]
                m.d.sync += [self.o.payload[j].eq(r) for j, r in enumerate(skid)]
            with m.Else():
                m.d.sync += self.o.valid.eq(push)
                with m.If(push):
                    m.d.sync += [self.o.payload[j].eq(t) for j, t in enumerate(totals)]
        with m.Elif(push):
            m.d.sync += [skid_valid.eq(1)] + [r.eq(t) for r, t in zip(skid, totals, strict=True)]
        return m

    def model(self) -> ResidualAddModel:
        return ResidualAddModel(len(self.in_widths), self.skid)

    def cycles_per_beat(self) -> int:
        return 1

    def resources(self, family: str) -> Resources:
        """Calibrated with Yosys 0.70 on both families (widths 8 .. 20, 1 .. 4 lanes: within
        ~5 %). Per output bit: two inputs cost one LUT4 beside the carry chain; three inputs
        Yosys builds as a 3:2 compressor (two LUT4s per bit) feeding one adder, three in
        all. Plus the join's handshake; the flip-flops are the output register and valid."""
        per_bit = 1 if len(self.in_widths) == 2 else 3
        bits = self.lanes * self.out_width
        if self.skid:  # the skid register and its flag, o's multiplexer between it and the sum
            return Resources(lut=(per_bit + 1) * bits + 4, ff=2 * bits + 2)
        return Resources(lut=per_bit * bits + 3, ff=bits + 1)


class ResidualAddModel(BlockModel):
    def __init__(self, n: int, skid: bool = False):
        self.inputs = tuple(f"i{k}" for k in range(n))
        self.skid = skid
        self.out_valid = False
        self.skid_valid = False

    def valid(self, port):
        return self.out_valid

    def ready(self, port):
        if not all(self.in_valid(p) for p in self.inputs):
            return False
        if self.skid:
            return not self.skid_valid
        return not self.out_valid or self.out_ready("o")

    def tick(self, fired):
        if not self.out_valid or fired["o"]:
            if self.skid_valid:
                self.skid_valid = False  # o takes the skid register's sum
            else:
                self.out_valid = fired["i0"]
        elif fired["i0"]:
            self.skid_valid = True

    def quiet(self):
        return 1 << 30  # changes only when a beat fires

    def skip(self, cycles):
        pass
