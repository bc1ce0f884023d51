"""Integer LIF neurons over the channels of one token (docs/arithmetic.md, "LIF in integers").

Reads a values stream group by group, keeps membrane state for one group of
lanes across the T steps of a token, and emits the token's T spike vectors.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, Value
from amaranth.hdl import signed, unsigned
from amaranth.lib import enum, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl_templates.common import (
    Resources,
    bits_for,
    check_choice,
    check_divides,
    check_int,
    check_ints,
    spike_signature,
    values_signature,
)
from rtl_templates.gated_sum import rom_resources
from rtl_templates.timing import BlockModel

STORAGES = ("registers", "block")
WORD = 16  # block storage: a 16-bit wide memory (an iCE40 block RAM's widest shape)


class LIFArray(wiring.Component):
    """``channels`` integer LIF neurons, ``lanes`` of them updated per cycle.

    For each input value ``x`` of channel ``c`` at step ``t``:
    ``H = (x << input_shift) + V >> 1`` (arithmetic shift: floor), ``S = H >= vth[c]``,
    ``V = 0 if S else H``, with ``V = 0`` before ``t = 0`` of every token.

    Parameters: ``channels``, ``lanes`` (divides ``channels``), ``time_steps``,
    ``in_width`` (signed width of the input values), ``vth`` (one integer
    threshold >= 1 per channel), ``input_shift`` (>= 0), ``state_bits`` (signed
    width that holds ``x << input_shift``, ``H`` and ``V``: docs/arithmetic.md
    "Widths"), ``repeat`` (the input carries one beat per group instead of one
    per group and step, and that value drives all ``time_steps`` steps: the
    pixel conv's direct encoding), ``pipelined`` (with ``time_steps >= 2`` and more than
    four groups, the thresholds come from registers loaded from a ROM read a cycle ahead
    instead of from a table multiplexer over the group counter; and the membranes are
    cleared after each token's last step instead of read as 0 at its first, which keeps
    the step counter out of the adders: the planner's choice on ECP5, for timing; same
    cycles and results).

    Ports: sink ``i`` (values, ``lanes`` lanes), source ``o`` (spikes, one
    ``channels``-bit beat per step).

    Storage (``storage``): "registers" keeps the token's ``time_steps * channels`` spikes in
    one shift register in (group, step) order; it shifts while collecting and while
    emitting, so each output beat is a fixed strided selection of it (flip-flops only: no
    decoder, no multiplexer). "block" keeps them in a 16-bit wide memory with bit write
    enables (one block RAM: rows ``t * R + r``, ``R = ceil(channels / 16)``, row r holding
    channels ``16r .. 16r+15`` of step t), and assembles each output beat from its R rows
    in a ``16 * R``-bit register: far fewer flip-flops, R + 1 more cycles per beat.

    Timing per token: the input beats are taken one per cycle (with
    ``repeat``, one beat then ``time_steps - 1`` cycles for the other steps),
    ``channels / lanes * time_steps`` cycles in all; then the ``time_steps``
    output beats are offered one per cycle (with "block" storage each beat is read for
    R + 1 cycles first), during which no input is taken. So a token costs
    ``(channels / lanes + 1) * time_steps`` cycles (block: ``(channels / lanes + R + 2) *
    time_steps``) when the neighbours never stall. Backpressure: ``i.ready`` and ``o.valid`` depend
    only on the block's state.
    """

    def __init__(self, *, channels: int, lanes: int, time_steps: int, in_width: int, vth,
                 input_shift: int = 0, state_bits: int, repeat: bool = False,
                 storage: str = "registers", pipelined: bool = False):
        self.channels = check_int("channels", channels)
        self.lanes = check_int("lanes", lanes)
        check_divides("lanes", lanes, channels)
        self.time_steps = check_int("time_steps", time_steps)
        self.in_width = check_int("in_width", in_width)
        self.input_shift = check_int("input_shift", input_shift, 0)
        self.state_bits = check_int("state_bits", state_bits, 2)
        self.vth = check_vth(vth, channels, state_bits)
        self.repeat = bool(repeat)
        check_choice("storage", storage, STORAGES)
        if storage == "block" and (lanes > WORD or WORD % lanes):
            raise ValueError(f"lanes must divide {WORD} with block storage, not {lanes!r}")
        self.storage = storage
        if not isinstance(pipelined, bool):
            raise TypeError(f"pipelined must be a bool, not {pipelined!r}")
        self.pipelined = pipelined
        super().__init__({"i": In(values_signature(in_width, lanes)),
                          "o": Out(spike_signature(channels))})

    @property
    def groups(self) -> int:
        return self.channels // self.lanes

    @property
    def _registered_vth(self) -> bool:
        return self.pipelined and self.time_steps >= 2 and self.groups > 4

    @property
    def rows(self) -> int:
        """Memory rows per step with block storage (16 channels each)."""
        return -(-self.channels // WORD)

    def elaborate(self, platform):
        m = Module()
        T, L, G = self.time_steps, self.lanes, self.groups
        g = Signal(range(G))
        t = Signal(range(T))
        t_out = Signal(range(T))
        # All T*C spikes of a token live in one shift register, entries of `lanes` bits in
        # (group, step) order: entry (g, t) sits at g*T + t once collected. It shifts one
        # entry per collected step and per emitted beat, so step t's channels always sit
        # at the same strided positions: no write decoding and no output multiplexer.
        chain = Signal(T * self.channels) if self.storage == "registers" else None
        v = membranes(L, self.state_bits)
        held = [Signal(signed(self.in_width), name=f"held{j}") for j in range(L)]

        class Phase(enum.Enum):
            COLLECT = 0
            EMIT = 1

        phase = Signal(Phase)
        # With `repeat`, steps t > 0 reuse the value taken at t = 0 instead of a new beat.
        internal_step = Signal()
        if self.repeat:
            m.d.comb += internal_step.eq(t != 0)
        step = Signal()
        m.d.comb += [
            self.i.ready.eq((phase == Phase.COLLECT) & ~internal_step),
            step.eq((phase == Phase.COLLECT) & (internal_step | self.i.valid)),
        ]

        if self._registered_vth:
            # Thresholds from registers (a table over many groups is a deep mux, which sat
            # in front of the comparator): the next group's are read from a ROM a cycle
            # ahead (block RAM or soft logic, as Yosys finds cheaper) and taken when the
            # group advances (never in consecutive cycles, as T >= 2).
            sb = self.state_bits
            g_next = Signal(range(G), init=1, name="g_next")  # (g + 1) mod G
            m.submodules.vth_rom = rom = Memory(
                shape=unsigned(L * sb), depth=G, init=[
                    sum((self.vth[gi * L + j] & ((1 << sb) - 1)) << (j * sb) for j in range(L))
                    for gi in range(G)])
            ahead = rom.read_port(domain="sync")
            m.d.comb += ahead.addr.eq(g_next)
            vth = [Signal(signed(sb), init=self.vth[j], name=f"vth_r{j}") for j in range(L)]
            with m.If(step & (t == T - 1)):
                m.d.sync += [r.eq(ahead.data[j * sb:(j + 1) * sb].as_signed())
                             for j, r in enumerate(vth)]
                m.d.sync += g_next.eq(Mux(g_next == G - 1, 0, g_next + 1))
        else:
            vth = threshold_table(m, g, self.vth, L, self.state_bits)
        xs = [Mux(internal_step, held[j], self.i.payload[j]) if self.repeat else self.i.payload[j]
              for j in range(L)]
        # Pipelined (ECP5): the membranes are cleared after a token's last step instead of
        # read as 0 at its first, which keeps the step counter out of the adders.
        when = {"last": t == T - 1} if self.pipelined else {"first": t == 0}
        fired_bits = lif_lanes(m, xs, v, vth, step=step, input_shift=self.input_shift, **when)
        if self.repeat:
            with m.If(step & ~internal_step):
                m.d.sync += [held[j].eq(self.i.payload[j]) for j in range(L)]

        shift_in = Signal(L)
        m.d.comb += shift_in.eq(Cat(*fired_bits))
        emit = Signal()
        if chain is not None:
            with m.If(step | emit):
                # While emitting, what enters is never read: collecting the next token
                # replaces every entry.
                m.d.sync += chain.eq(Cat(chain[L:], shift_in))
        else:
            m.submodules.spikes = mem = Memory(shape=unsigned(WORD), depth=T * self.rows,
                                               init=[], attrs={"ram_style": "block"})
            wr = mem.write_port(granularity=1)
            rd = mem.read_port(domain="sync")
            first = Signal(range(self.channels))  # first channel of the group
            m.d.comb += [
                first.eq(g * L),
                wr.addr.eq(t * self.rows + (first >> 4)),
                wr.data.eq(shift_in.replicate(WORD // L)),
                wr.en.eq(Mux(step, Const((1 << L) - 1, WORD) << first[:4], 0)),
            ]
        with m.If(step):
            with m.If(t == T - 1):
                m.d.sync += t.eq(0)
                with m.If(g == G - 1):
                    m.d.sync += [g.eq(0), phase.eq(Phase.EMIT)]
                with m.Else():
                    m.d.sync += g.eq(g + 1)
            with m.Else():
                m.d.sync += t.eq(t + 1)

        m.d.comb += emit.eq(self.o.valid & self.o.ready)
        if chain is not None:
            m.d.comb += [self.o.valid.eq(phase == Phase.EMIT),
                         self.o.payload.eq(Cat(*[chain[(g_ * T) * L:(g_ * T + 1) * L]
                                                 for g_ in range(G)]))]
            with m.If(emit):
                with m.If(t_out == T - 1):
                    m.d.sync += [t_out.eq(0), phase.eq(Phase.COLLECT)]
                with m.Else():
                    m.d.sync += t_out.eq(t_out + 1)
            return m
        # Block storage: EMIT reads the beat's R rows (data one cycle after each address)
        # into `beat`, lowest row last-in at the top, then offers it.
        R = self.rows
        r = Signal(range(R + 1))
        beat = Signal(WORD * R)
        loaded = Signal()
        m.d.comb += [rd.addr.eq(t_out * R + r), rd.en.eq((phase == Phase.EMIT) & ~loaded),
                     self.o.valid.eq((phase == Phase.EMIT) & loaded),
                     self.o.payload.eq(beat[:self.channels])]
        with m.If((phase == Phase.EMIT) & ~loaded):
            with m.If(r != 0):
                m.d.sync += beat.eq(Cat(beat[WORD:], rd.data))
            with m.If(r == R):
                m.d.sync += [r.eq(0), loaded.eq(1)]
            with m.Else():
                m.d.sync += r.eq(r + 1)
        with m.If(emit):
            m.d.sync += loaded.eq(0)
            with m.If(t_out == T - 1):
                m.d.sync += [t_out.eq(0), phase.eq(Phase.COLLECT)]
            with m.Else():
                m.d.sync += t_out.eq(t_out + 1)
        return m

    # -- estimates ------------------------------------------------------------
    def model(self) -> LIFArrayModel:
        read = self.rows + 1 if self.storage == "block" else 0
        return LIFArrayModel(self.groups, self.time_steps, self.repeat, read)

    def cycles_per_token(self) -> int:
        """Cycles per token when inputs are always valid and the output always ready."""
        read = self.rows + 1 if self.storage == "block" else 0
        return (self.groups + 1 + read) * self.time_steps

    def resources(self, family: str) -> Resources:
        """Calibrated with Yosys 0.70 (within about 10%): per lane an adder, a
        comparator and the reset mux; the threshold table (a ROM over the groups: with
        ``pipelined``, a registered ROM placed as Yosys would, `gated_sum.rom_resources`);
        counters.
        The spike shift register costs flip-flops only (on an iCE40, a logic cell each).
        Block storage: one block RAM on iCE40, four on ECP5 (bit write enables, below)."""
        L, T, G, C = self.lanes, self.time_steps, self.groups, self.channels
        block = self.storage == "block"
        spikes = WORD * self.rows + bits_for(self.rows + 1) + 1 if block else T * C
        ff = spikes + L * self.state_bits + bits_for(G) + 2 * bits_for(T) + 1
        if self.repeat:
            ff += L * self.in_width
        rom = Resources(lut=0, ff=0)
        if self._registered_vth:  # the thresholds in use, the next group, the ROM
            ff += L * self.state_bits + bits_for(G)
            rom = rom_resources(G, L * self.state_bits, family)
        lanes = lane_luts(L, 1 if self._registered_vth else G, self.state_bits, family,
                          cleared=self.pipelined)
        lut = round(lanes + L * (self.in_width if self.repeat else 0) + 3 * bits_for(G)
                    + 4 * bits_for(T))
        if block:  # write-enable decoder, row address, the read counter
            lut += WORD + 2 * bits_for(T * self.rows) + 2 * bits_for(self.rows + 1)
            depth = T * self.rows
            # One iCE40 block RAM (a write mask bit per data bit). An ECP5 DP16KD has at most
            # four write enables (its 36-bit mode's byte enables), so Yosys spreads the 16
            # bit enables over four block RAMs: listed as four memories of 4 bits.
            memories = ((depth, WORD),) if family == "ice40" else ((depth, WORD // 4),) * 4
            return Resources(lut=lut, ff=ff, memories=memories,
                             memory_kinds=("block",) * len(memories)) + rom
        return Resources(lut=lut, ff=ff) + rom


def lane_luts(lanes: int, groups: int, state_bits: int, family: str, *,
              cleared: bool = False) -> float:
    """LUT4s of `lif_lanes` over ``lanes`` neurons with their `threshold_table` over
    ``groups`` channel groups (calibrated as `LIFArray.resources`): per lane an adder, a
    comparator and the reset mux, and the table's ROM. Their membranes are ``lanes *
    state_bits`` flip-flops. ``cleared``: the membranes are cleared after a token's last
    step (`lif_lanes`'s ``last``), so no multiplexer zeroes them in front of the adder."""
    # ECP5 without wide LUTs spends about 1.4x the LUT4s of an iCE40 on the lane
    # arithmetic (measured), and a little more on the multiplexers. Cleared after the last
    # step, 0.8 LUT4 a state bit less on ECP5 (Yosys 0.70: 0.6 - 0.85 over bench_blocks'
    # LIF arrays, e.g. 32 ch in 16 lanes 718 -> 583); on iCE40 that multiplexer folds into
    # the adder's LUT.
    lane_factor, mux_factor = (3.0, 1.0) if family == "ice40" else (4.2 - 0.8 * cleared, 1.15)
    return lanes * lane_factor * state_bits + mux_factor * lanes * state_bits * _rom_luts(groups)


def check_vth(vth, channels: int, state_bits: int) -> list[int]:
    """One threshold per channel, each >= 1 and fitting signed `state_bits`."""
    out = check_ints("vth", vth, channels)
    if min(out) < 1:
        raise ValueError(f"vth must be >= 1 everywhere, not {min(out)!r}")
    if max(out) > (1 << (state_bits - 1)) - 1:
        raise ValueError(f"vth must fit signed state_bits ({state_bits}), not {max(out)!r}")
    return out


def membranes(lanes: int, state_bits: int) -> list[Signal]:
    """The membrane registers V of `lanes` neurons (state_bits signed each)."""
    return [Signal(signed(state_bits), name=f"v{j}") for j in range(lanes)]


def threshold_table(m: Module, group: Value, vth: list[int], lanes: int,
                    state_bits: int) -> list[Signal]:
    """Per lane, the threshold of channel ``group * lanes + j`` (a constant table over the
    group counter)."""
    out = [Signal(signed(state_bits), name=f"vth{j}") for j in range(lanes)]
    with m.Switch(group):
        for gi in range(len(vth) // lanes):
            with m.Case(gi):
                m.d.comb += [out[j].eq(vth[gi * lanes + j]) for j in range(lanes)]
    return out


def lif_lanes(m: Module, xs: list[Value], v: list[Signal], vth: list[Value], *,
              first: Value | None = None, last: Value | None = None, step: Value,
              input_shift: int) -> list[Signal]:
    """One step of the integer LIF (docs/arithmetic.md) for each lane: with ``V = 0`` when
    `first`, ``H = ((x << input_shift) + V) >> 1``, ``S = H >= vth``; on `step`, ``V`` (the
    registers `v`, see `membranes`) becomes ``0 if S else H``. Returns the spikes S.

    Give exactly one of `first` (the token's first step: V is read as 0) and `last` (its
    last step: V becomes 0 after it, so it is 0 when the next token starts, as the
    registers start at 0). `last` keeps the time step out of the adder's input, so the
    path from the step counter to the membranes is one gate shorter (ECP5 timing); the
    results are the same.

    ``x << input_shift`` plus V is formed one bit wider than the state, whose width holds
    the shifted input, H and V (docs/arithmetic.md, "Widths"), so nothing wraps."""
    if (first is None) == (last is None):
        raise ValueError("give exactly one of first and last")
    state_bits = len(v[0])
    spikes = []
    for j, (x, vj) in enumerate(zip(xs, v, strict=True)):
        total = Signal(signed(max(len(x) + input_shift, state_bits) + 1), name=f"sum{j}")
        h = Signal(signed(state_bits), name=f"h{j}")
        s = Signal(name=f"s{j}")
        m.d.comb += [total.eq((x << input_shift) + (vj if first is None else Mux(first, 0, vj))),
                     h.eq(total >> 1), s.eq(h >= vth[j])]
        with m.If(step):
            m.d.sync += vj.eq(Mux(s if last is None else s | last, 0, h))
        spikes.append(s)
    return spikes


def _rom_luts(entries: int) -> int:
    """LUT4s per output bit of a constant table indexed by a counter of `entries` values: none
    up to four (a function of two select bits folds into the LUT4 of the comparator bit it
    feeds: Yosys 0.70, LIF arrays of 32 channels in 16 lanes and 128 in 32, 718 / 1,947
    LUTs on ECP5 where a LUT a bit made 953 / 2,582)."""
    return 0 if entries <= 4 else max(1, (entries + 15) // 16 + (entries - 1) // 16)


class LIFArrayModel(BlockModel):
    """Control mirror of LIFArray: COLLECT groups*T steps, then EMIT T beats (with block
    storage, each beat first spends `read` cycles being read)."""

    def __init__(self, groups: int, time_steps: int, repeat: bool, read: int = 0):
        self.groups, self.T, self.repeat, self.read = groups, time_steps, repeat, read
        self.collecting = True
        self.step = 0  # steps done in COLLECT (0 .. groups*T)
        self.emitted = 0
        self.reading = 0  # cycles spent reading the current beat (block storage)

    def _internal(self) -> bool:
        return self.repeat and self.step % self.T != 0

    def valid(self, port):
        return not self.collecting and self.reading == self.read

    def ready(self, port):
        return self.collecting and not self._internal()

    def tick(self, fired):
        if self.collecting:
            if self._internal() or fired["i"]:
                self.step += 1
                if self.step == self.groups * self.T:
                    self.step, self.collecting = 0, False
        elif self.reading < self.read:
            self.reading += 1
        elif fired["o"]:
            self.emitted += 1
            self.reading = 0
            if self.emitted == self.T:
                self.emitted, self.collecting = 0, True

    def quiet(self):
        if self._internal() or (not self.collecting and self.reading < self.read):
            return 1
        return 1 << 30

    def skip(self, cycles):
        pass
