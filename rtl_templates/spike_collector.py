"""A LIF over an engine's tile-major values whose spikes are collected into an image's spike
memory and then streamed token-major: the bridge from a weight-streaming engine
(`LinearEngine`, `ConvEngine`: for tile g: for token: for t) to the blocks that read whole
spike words per position (SASA, the DWC, the next engine).

Golden function: `quant.golden.lif` per channel over t.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.hdl import unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl_templates.common import (
    Resources,
    bits_for,
    check_divides,
    check_int,
    spike_signature,
    values_signature,
)
from rtl_templates.lif_array import check_vth, lane_luts, lif_lanes, membranes, threshold_table
from rtl_templates.timing import BlockModel

# The collector's LIF lanes take 0.9 of `lane_luts`' lane arithmetic (calibrated on
# `LIFArray`, whose lanes also select their input and stored state), and its threshold table
# next to nothing: Yosys 0.70 on ECP5, 8 lanes x 11 bits over 2 groups and 32 x 15 over 4
# (bench/bench_blocks.py, kind "spike collector").
COLLECTOR_LANE_SHARE = 0.9


class SpikeCollector(wiring.Component):
    """Parameters: ``channels`` (C), ``lanes`` (the engine's pe: divides C), ``tokens`` (N),
    ``time_steps`` (T), ``in_width`` (signed width of the values), ``vth`` [C],
    ``input_shift``, ``state_bits`` (the LIF, docs/arithmetic.md). Or, instead of the last
    three, ``segments``: [(channels, vth, input_shift, state_bits)], LIFs of consecutive
    channel ranges (each a multiple of ``lanes``; e.g. q_lif and k_lif behind one engine
    computing q and k, whose Q|K words then feed SASA).

    Ports: sink ``i`` (values, ``lanes`` lanes, tile-major: for g in C/lanes: for n: for t;
    an image's ``C/lanes * N*T`` beats); source ``o`` (spikes ``unsigned(C)``, token-major,
    time-minor: N*T beats an image).

    Timing: the LIF takes a beat a cycle (``i.ready`` high) while the image's beats arrive,
    each tile's spikes written ``lanes`` bits at a time into the memory row of its
    position; after the last beat the memory is read out, a word a cycle (``o.valid`` is
    the read register's), and the next image's first beat is taken in the cycle after the
    last word leaves. Memory: ``N*T`` x ``C`` (write granularity ``lanes``), one buffer.
    """

    def __init__(self, *, channels: int, lanes: int, tokens: int, time_steps: int,
                 in_width: int, vth=None, input_shift: int = 0, state_bits: int = 0,
                 segments=None):
        self.channels, self.lanes = check_int("channels", channels), check_int("lanes", lanes)
        check_divides("lanes", lanes, channels)
        self.tokens, self.time_steps = check_int("tokens", tokens), check_int("time_steps", time_steps)
        self.in_width = check_int("in_width", in_width, 2)
        if segments is None:
            segments = [(channels, vth, input_shift, state_bits)]
        self.segments = []
        for n, v, sh, sb in segments:
            check_divides("lanes", lanes, check_int("segment channels", n))
            sb = check_int("state_bits", sb, 2)
            self.segments.append((n, check_vth(v, n, sb), check_int("input_shift", sh, 0), sb))
        if sum(n for n, *_ in self.segments) != channels:
            raise ValueError(f"the segments' channels must add up to {channels}, not "
                             f"{sum(n for n, *_ in self.segments)}")
        super().__init__({"i": In(values_signature(in_width, lanes)),
                          "o": Out(spike_signature(channels))})

    @property
    def positions(self) -> int:
        return self.tokens * self.time_steps

    @property
    def groups(self) -> int:
        return self.channels // self.lanes

    def elaborate(self, platform):
        m = Module()
        P, G, T, L = self.positions, self.groups, self.time_steps, self.lanes
        m.submodules.mem = mem = Memory(shape=unsigned(self.channels), depth=P, init=[],
                                        attrs={"ram_style": "block", "no_rw_check": 1})
        wp = mem.write_port(granularity=L) if G > 1 else mem.write_port()
        rd = mem.read_port(domain="sync")
        full = Signal()
        p, g, t = Signal(range(max(P, 2))), Signal(range(max(G, 2))), Signal(range(max(T, 2)))
        fire = Signal()
        m.d.comb += [self.i.ready.eq(~full), fire.eq(self.i.valid & ~full)]
        xs, spikes, first = [self.i.payload[j] for j in range(L)], None, 0
        for n, vth, shift, state_bits in self.segments:  # group range [first, first + n/L)
            here = (g >= first // L) & (g < (first + n) // L) if len(self.segments) > 1 else 1
            v = membranes(L, state_bits)
            th = threshold_table(m, g - first // L, vth, L, state_bits)
            seg = Cat(*lif_lanes(m, xs, v, th, first=t == 0, step=fire & here,
                                 input_shift=shift))
            spikes = seg if spikes is None else Mux(here, seg, spikes)
            first += n
        m.d.comb += [wp.addr.eq(p), wp.data.eq(spikes.replicate(G))]
        m.d.comb += wp.en.eq(Mux(fire, Const(1, G) << g, 0) if G > 1 else fire)
        with m.If(fire):
            m.d.sync += [p.eq(Mux(p == P - 1, 0, p + 1)), t.eq(Mux(t == T - 1, 0, t + 1))]
            with m.If(p == P - 1):
                m.d.sync += g.eq(Mux(g == G - 1, 0, g + 1))
                with m.If(g == G - 1):
                    m.d.sync += full.eq(1)
        # -- read-out: the read register is the output register.
        q = Signal(range(P + 1))
        advance, issue = Signal(), Signal()
        m.d.comb += [advance.eq(~self.o.valid | self.o.ready),
                     issue.eq(advance & full & (q != P)),
                     rd.addr.eq(q), rd.en.eq(issue), self.o.payload.eq(rd.data)]
        with m.If(advance):
            m.d.sync += self.o.valid.eq(issue)
        with m.If(issue):
            m.d.sync += q.eq(q + 1)
        with m.If(advance & full & (q == P)):
            m.d.sync += [full.eq(0), q.eq(0)]
        return m

    def model(self) -> SpikeCollectorModel:
        return SpikeCollectorModel(self.positions, self.groups)

    def cycles_per_image(self) -> int:
        """Busy cycles of one image: its beats in (one a cycle), then its words out."""
        return self.positions * self.groups + self.positions

    def resources(self, family: str) -> Resources:
        """Estimate: each segment's LIF lanes with their membranes (`lane_luts` without a
        table, times `COLLECTOR_LANE_SHARE`), the position/group/step counters, the spike
        memory (``N*T`` x C, block RAM) and its read-out counter."""
        P, G, L = self.positions, self.groups, self.lanes
        lut = COLLECTOR_LANE_SHARE * sum(lane_luts(L, 1, sb, family)
                                         for _, _, _, sb in self.segments)
        ff = sum(L * sb for _, _, _, sb in self.segments)
        counters = 2 * bits_for(P) + bits_for(G) + bits_for(self.time_steps) + 2
        return Resources(lut=round(lut) + 2 * counters + L * max(0, len(self.segments) - 1),
                         ff=ff + counters, memories=((P, self.channels),),
                         memory_kinds=("block",))


class SpikeCollectorModel(BlockModel):
    """Control mirror of `SpikeCollector`: input count, the full flag, the read counter."""

    def __init__(self, positions: int, groups: int):
        self.P, self.beats = positions, positions * groups
        self.count, self.full, self.q, self.o_valid = 0, False, 0, False

    def valid(self, port):
        return self.o_valid

    def ready(self, port):
        return not self.full

    def tick(self, fired):
        advance = not self.o_valid or fired["o"]
        issue = advance and self.full and self.q != self.P
        done = advance and self.full and self.q == self.P
        if fired["i"]:
            self.count += 1
            if self.count == self.beats:
                self.count, self.full = 0, True
        if advance:
            self.o_valid = issue
        if issue:
            self.q += 1
        if done:
            self.full, self.q = False, 0

    def quiet(self):
        return 1 if self.full else 1 << 30

    def skip(self, cycles):
        pass
