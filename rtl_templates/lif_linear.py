"""A LIF array fused with the dense spike linear that reads it (golden: `quant.golden.lif`, then
`quant.golden.spike_linear`): the spikes are kept once, in one block RAM of two token buffers,
instead of in the LIF's memory and again in the linear's flip-flop slots.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.hdl import unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl_templates.common import Resources, bits_for, check_divides, check_int, values_signature
from rtl_templates.gated_sum import (
    FoldedLinear,
    ceil_log2,
    check_acc_bits,
    check_matrix,
    gated_sum,
    mux_luts,
    rom_luts,
    rom_resources,
    tree_ffs,
    tree_luts,
    tree_stages,
    weight_rows,
)
from rtl_templates.lif_array import WORD, check_vth, lif_lanes, membranes, threshold_table
from rtl_templates.timing import BlockModel

NEVER = 1 << 30  # a model's quiet(): no change until something fires


class LIFLinear(FoldedLinear, wiring.Component):
    """``LIFArray(channels=in, lanes, ...)`` followed by ``SpikeLinear(weight, bias, ...,
    mode="dense")``, as one block.

    Parameters: ``weight`` ([out][in] ints fitting signed ``weight_bits``), ``bias`` ([out]
    ints), ``time_steps`` (T), ``weight_bits``, ``acc_bits`` (as SpikeLinear), ``pe`` (output
    lanes, divides out), ``simd`` (spikes summed per cycle, divides in and 16), ``lanes``
    (LIF lanes: input values per beat, divides in and 16), ``in_width`` (signed width of the
    input values), ``vth`` (per input channel, >= 1), ``input_shift``, ``state_bits`` (as
    LIFArray; docs/arithmetic.md "LIF in integers").

    Ports: sink ``i`` (values, ``lanes`` lanes: per token, for group g of ``in/lanes``: for t:
    one beat); source ``o`` (values, ``pe`` lanes of ``signed(acc_bits)``: per token, for
    group g of ``out/pe``: for t: one beat), exactly as the two blocks' outer ports.

    Spike memory: 16 bits wide (one iCE40 block RAM; four ECP5 DP16KD, one per four bit
    enables), depth ``2*T*R`` with ``R = ceil(in/16)``: two token buffers ("halves"), row
    ``half*T*R + t*R + c//16`` holding channel c of step t in bit ``c % 16``. The LIF writes a
    beat's ``lanes`` spikes with bit write enables; the linear reads the ``simd`` bits of
    operation k (inputs ``k*simd ..``) from row ``half*T*R + t*R + (k*simd)//16``, bits
    ``(k*simd) % 16 ..``, in the same cycle as weight row ``g*(in/simd) + k`` (the SpikeLinear
    layout, `gated_sum.weight_rows`), so both arrive together at the adder tree.

    Schedule: the LIF side takes one input beat per cycle into the free half (``CT =
    (in/lanes) * T`` beats per token) and marks it full after the token's last beat; the
    linear side computes a full half (``OPS = (out/pe) * T * (in/simd)`` operations, one per
    cycle, in SpikeLinear's order) and frees it when it issues the token's last operation.
    So token n+1 is collected while token n is computed. An output beat fires ``latency =
    stages + 1`` cycles after its last operation was issued (``stages = 1 +
    tree_stages(simd)``: the memory reads, then the tree registers; the final stage
    accumulates into the output register). Free flow, N tokens from cycle 1: the last output
    fires in cycle ``CT + OPS + (N-1) * max(CT, OPS) + latency`` (`cycles`), so a token costs
    ``max(CT, OPS)`` cycles (`cycles_per_token`).

    Backpressure: ``i.ready`` is "the write half is not full" (registered state only). The
    output register doubles as the accumulator: the linear side stalls (``advance`` low,
    memory read enables included) while its final stage holds an operation and an unaccepted
    beat sits in the output register; ``advance`` depends on ``o.ready`` in the same cycle.
    The LIF side stalls only while both halves are full.
    """

    def __init__(self, weight, bias, *, time_steps: int, weight_bits: int, acc_bits: int,
                 pe: int = 1, simd: int = 1, lanes: int, in_width: int, vth,
                 input_shift: int = 0, state_bits: int):
        self.weight_bits = check_int("weight_bits", weight_bits, 2)
        self.weight, self.bias = check_matrix(weight, bias, weight_bits)
        self.out_features, self.in_features = len(self.weight), len(self.weight[0])
        self.time_steps = check_int("time_steps", time_steps)
        self.pe = check_int("pe", pe)
        check_divides("pe", pe, self.out_features)
        for name, value in (("simd", simd), ("lanes", lanes)):
            check_int(name, value)
            check_divides(name, value, self.in_features)
            if WORD % value:
                raise ValueError(f"{name} must divide {WORD}, not {value!r}")
        self.simd, self.lanes = simd, lanes
        self.in_width = check_int("in_width", in_width)
        self.input_shift = check_int("input_shift", input_shift, 0)
        self.state_bits = check_int("state_bits", state_bits, 2)
        self.vth = check_vth(vth, self.in_features, state_bits)
        self.acc_bits = check_acc_bits(acc_bits, self.weight, self.bias, 1)
        super().__init__({"i": In(values_signature(in_width, lanes)),
                          "o": Out(values_signature(acc_bits, pe))})

    @property
    def in_groups(self) -> int:
        """Input beats per step (``in/lanes``)."""
        return self.in_features // self.lanes

    @property
    def rows(self) -> int:
        """Spike memory rows per step (R: 16 channels each)."""
        return -(-self.in_features // WORD)

    @property
    def stages(self) -> int:
        return 1 + tree_stages(self.simd)

    def spike_memory_shape(self) -> tuple[int, int]:
        """(depth, width) of the spike memory: two halves of T*R rows."""
        return 2 * self.time_steps * self.rows, WORD

    def elaborate(self, platform):
        m = Module()
        T, G, K, GI, R, L = (self.time_steps, self.groups, self.chunks, self.in_groups,
                             self.rows, self.lanes)
        half = T * R  # rows per token buffer
        m.submodules.spikes = spikes = Memory(shape=unsigned(WORD), depth=2 * half, init=[],
                                              attrs={"ram_style": "block"})
        wr = spikes.write_port(granularity=1)
        srd = spikes.read_port(domain="sync")
        full = Signal(2)  # per half: a whole token is in it and not yet computed

        # -- LIF side: one input beat per cycle into half `wh` --------------------------
        wh = Signal()
        gi, ti = _counter(GI, "g_in"), _counter(T, "t_in")
        wbase = Signal(range(2 * half), name="wbase")  # wh*T*R + t_in*R
        step = Signal()
        m.d.comb += [self.i.ready.eq(~full.bit_select(wh, 1)),
                     step.eq(self.i.valid & self.i.ready)]
        v = membranes(L, self.state_bits)
        vth = threshold_table(m, gi, self.vth, L, self.state_bits)
        fired = lif_lanes(m, [self.i.payload[j] for j in range(L)], v, vth, first=ti == 0,
                          step=step, input_shift=self.input_shift)
        # lanes divides 16: group gi's channels gi*L .. sit in one row, (gi*L)//16 past the
        # step's first row, from bit (gi*L) % 16: both are slices of gi.
        lane_bits = ceil_log2(L)
        first_ch = Cat(Const(0, lane_bits), gi)
        m.d.comb += [wr.addr.eq(wbase + first_ch[4:]),
                     wr.data.eq(Cat(*fired).replicate(WORD // L)),
                     wr.en.eq(Mux(step, Const((1 << L) - 1, WORD) << first_ch[:4], 0))]
        with m.If(step):
            with m.If(ti == T - 1):
                m.d.sync += ti.eq(0)
                with m.If(gi == GI - 1):  # the token is in: the half is full, switch halves
                    m.d.sync += [gi.eq(0), full.bit_select(wh, 1).eq(1), wh.eq(~wh),
                                 wbase.eq(Mux(wh, 0, half))]
                with m.Else():
                    m.d.sync += [gi.eq(gi + 1), wbase.eq(Mux(wh, half, 0))]
            with m.Else():
                m.d.sync += [ti.eq(ti + 1), wbase.eq(wbase + R)]

        # -- linear side: one operation per cycle from half `rh` -------------------------
        depth, width = self.memory_shape()
        m.submodules.weights = weights = Memory(
            shape=unsigned(width), depth=depth,
            init=weight_rows(self.weight, self.pe, self.simd, self.weight_bits))
        wrd = weights.read_port(domain="sync")
        advance, go = Signal(), Signal()
        rh = Signal()
        g, t, k = _counter(G, "g"), _counter(T, "t"), _counter(K, "k")
        base = Signal(range(depth), name="base")  # g*K: the group's first weight row
        rbase = Signal(range(2 * half), name="rbase")  # rh*T*R + t*R
        per_row = ceil_log2(WORD // self.simd)  # k's low bits: which simd bits of the row
        first, last = Signal(), Signal()
        m.d.comb += [go.eq(full.bit_select(rh, 1) & advance),
                     first.eq(k == 0), last.eq(k == K - 1),
                     wrd.addr.eq(base + k), wrd.en.eq(advance),
                     srd.addr.eq(rbase + k[per_row:]), srd.en.eq(go)]
        with m.If(go):
            _wrap_inc(m, k, K)
            with m.If(last):
                with m.If(t == T - 1):
                    m.d.sync += t.eq(0)
                    with m.If(g == G - 1):  # the token's last operation: free the half
                        m.d.sync += [g.eq(0), base.eq(0), full.bit_select(rh, 1).eq(0),
                                     rh.eq(~rh), rbase.eq(Mux(rh, 0, half))]
                    with m.Else():
                        m.d.sync += [g.eq(g + 1), base.eq(base + K), rbase.eq(Mux(rh, half, 0))]
                with m.Else():
                    m.d.sync += [t.eq(t + 1), rbase.eq(rbase + R)]

        # -- both reads arrive: select the simd spikes, gated adder tree -----------------
        tags = {"valid": Signal(name="valid_s1"), "first": Signal(name="first_s1"),
                "last": Signal(name="last_s1"), "g": Signal(len(g), name="g_s1")}
        pos = Signal(max(1, per_row), name="pos_s1")
        with m.If(advance):
            m.d.sync += [tags["valid"].eq(go), tags["first"].eq(first), tags["last"].eq(last),
                         tags["g"].eq(g), pos.eq(k[:per_row] if per_row else 0)]
        gates = srd.data.word_select(pos, self.simd) if per_row else srd.data
        sums, tags = gated_sum(m, words=wrd.data, gates=gates, pe=self.pe, simd=self.simd,
                               weight_bits=self.weight_bits, advance=advance, tags=tags)

        self.accumulate_output(m, sums, tags, advance)
        return m

    # -- estimates ------------------------------------------------------------
    @property
    def collect_cycles(self) -> int:
        """CT: cycles the LIF side takes per token (one input beat each)."""
        return self.in_groups * self.time_steps

    @property
    def compute_cycles(self) -> int:
        """OPS: cycles the linear side takes per token (one operation each)."""
        return self.groups * self.time_steps * self.chunks

    def model(self) -> LIFLinearModel:
        return LIFLinearModel(self.collect_cycles, self.compute_cycles, self.chunks, self.stages)

    def cycles_per_token(self) -> int:
        """Cycles per token in free flow: ``max(CT, OPS)`` (the halves overlap the two sides)."""
        return max(self.collect_cycles, self.compute_cycles)

    def cycles(self, tokens: int) -> int:
        """Cycle in which the last output beat fires when `tokens` tokens flow freely from
        cycle 1: ``CT + OPS + (tokens-1) * max(CT, OPS) + latency``."""
        check_int("tokens", tokens)
        return (self.collect_cycles + self.compute_cycles
                + (tokens - 1) * self.cycles_per_token() + self.latency)

    def resources(self, family: str) -> Resources:
        """LUT4/FF/memory estimate for 'ice40' or 'ecp5', calibrated with Yosys 0.70.

        The two halves of LIFArray (lane arithmetic, threshold table, counters, the bit write
        enable decoder) and SpikeLinear in dense mode without its token buffer and chunk
        multiplexer: the ``simd`` spikes are selected from a 16-bit memory row instead
        (``simd * mux(16/simd)``). Memories: the spike memory (one block RAM on iCE40, four
        on ECP5: see `LIFArray.resources`) and the weight memory as Yosys would place it."""
        T, G, K, pe, L = self.time_steps, self.groups, self.chunks, self.pe, self.lanes
        GI, sb = self.in_groups, self.state_bits
        depth, width = self.memory_shape()
        s_depth = 2 * T * self.rows
        # LIF side
        lane_factor, mux_factor = (3.0, 1.0) if family == "ice40" else (4.2, 1.15)
        lif_counters = bits_for(GI) + bits_for(T) + bits_for(s_depth) + 2  # + wh, full
        lif_ff = L * sb + lif_counters
        lif_lut = round(L * lane_factor * sb + mux_factor * L * sb * rom_luts(GI)
                        + 2 * lif_counters + WORD + bits_for(s_depth))
        # linear side
        counters = 2 * bits_for(T) + bits_for(G) + bits_for(depth) + bits_for(K) \
            + bits_for(s_depth) + 1
        tags = 3 + bits_for(G)
        per_row = ceil_log2(WORD // self.simd)
        ff = (lif_ff + counters + tags + per_row + tags * tree_stages(self.simd)
              + tree_ffs(pe, self.simd, self.weight_bits) + pe * self.acc_bits + 1)
        # What Yosys 0.70 keeps beyond the above, measured (not itemised): about 14 FFs,
        # plus the gated weight word when simd is 1 and about a membrane's width when lanes
        # is 1.
        ff += 14 + (pe * self.weight_bits if self.simd == 1 else 0) + (sb if L == 1 else 0)
        per_bit = 2 if G <= 4 else 2 + rom_luts(G)
        lut = (lif_lut + tree_luts(pe, self.simd, self.weight_bits)
               + pe * self.acc_bits * per_bit + 2 * counters + bits_for(depth)
               + self.simd * mux_luts(WORD // self.simd) + 8)
        memories = ((s_depth, WORD),) if family == "ice40" else ((s_depth, WORD // 4),) * 4
        return (Resources(lut=lut, ff=ff, memories=memories,
                          memory_kinds=("block",) * len(memories))
                + rom_resources(depth, width, family))


def _counter(n: int, name: str) -> Signal:
    return Signal(range(max(n, 2)), name=name)


def _wrap_inc(m: Module, counter: Signal, n: int) -> None:
    with m.If(counter == n - 1):
        m.d.sync += counter.eq(0)
    with m.Else():
        m.d.sync += counter.eq(counter + 1)


class LIFLinearModel(BlockModel):
    """Control mirror of LIFLinear: the two halves' full flags, the LIF side's beat count,
    the linear side's operation count, the pipeline's (valid, last) tags and the output
    register. Long computations are skipped in closed form (`quiet`/`skip`)."""

    def __init__(self, collect: int, ops: int, chunks: int, stages: int):
        self.CT, self.OPS, self.K = collect, ops, chunks
        self.full = [False, False]
        self.wh = self.rh = 0
        self.collected = 0  # input beats of the token being collected
        self.op = 0  # operations issued of the token being computed
        self.pipe: list[bool | None] = [None] * stages  # None: empty; else the op's `last`
        self.out_valid = False

    def valid(self, port):
        return self.out_valid

    def ready(self, port):
        return not self.full[self.wh]

    def _issue(self, count: int = 1) -> None:
        self.op += count
        if self.op == self.OPS:  # the token's last operation frees its half
            self.op, self.full[self.rh], self.rh = 0, False, self.rh ^ 1

    def tick(self, fired):
        final = self.pipe[-1]
        advance = not (final is not None and self.out_valid and not fired["o"])
        if advance and final is not None:
            self.out_valid = final
        elif fired["o"]:
            self.out_valid = False
        if advance:
            item = None
            if self.full[self.rh]:
                item = self.op % self.K == self.K - 1
                self._issue()
            self.pipe = [item] + self.pipe[:-1]
        if fired["i"]:
            self.collected += 1
            if self.collected == self.CT:
                self.collected, self.full[self.wh], self.wh = 0, True, self.wh ^ 1

    def quiet(self):
        if self.out_valid:  # stalled on the output, or (briefly) filling behind it
            return NEVER if self.pipe[-1] is not None else 1
        # The pipeline advances every cycle. o.valid rises once an operation ending a beat
        # leaves it; i.ready can only change when a token's last operation is issued.
        S = len(self.pipe)
        lasts = [i for i, item in enumerate(self.pipe) if item]
        computing = self.full[self.rh]
        if lasts:
            n = S - max(lasts)
        elif computing:
            n = self.K - self.op % self.K + S
        else:
            n = NEVER
        return min(n, self.OPS - self.op) if computing else n

    def skip(self, cycles):
        if self.out_valid:
            return  # stalled: nothing moves until the output fires
        S, n = len(self.pipe), cycles
        issued = min(n, self.OPS - self.op) if self.full[self.rh] else 0

        def entered(j):  # what entered the pipeline at the j-th skipped cycle (1-based)
            return (self.op + j - 1) % self.K == self.K - 1 if j <= issued else None

        leaving = self.pipe[S - n] if n <= S else entered(n - S)
        self.pipe = [entered(n - i) if n - i >= 1 else self.pipe[i - n] for i in range(S)]
        if leaving:  # only the last skipped cycle's leaving operation may end a beat
            self.out_valid = True
        if issued:
            self._issue(issued)
