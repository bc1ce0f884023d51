"""Spike linear (a linear or 1x1 conv on spike vectors) without multipliers: each output is its
bias plus the weights of the inputs whose spike is 1 (golden: `quant.golden.spike_linear`).

Dense mode sums ``simd`` inputs per cycle through an AND-gated adder tree; event mode lets a
priority encoder visit only the set bits, so its cycles follow the spike count.
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
    check_choice,
    check_divides,
    check_int,
    spike_signature,
    values_signature,
)
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
from rtl_templates.timing import BlockModel, LocalQuiet

MODES = ("dense", "event")


class SpikeLinear(FoldedLinear, wiring.Component):
    """``out[o] = bias[o] + sum of weight[o][i] over the inputs i whose spike is 1``.

    Parameters: ``weight`` ([out][in] ints fitting signed ``weight_bits``), ``bias``
    ([out] ints of any size: they are constants), ``time_steps`` (T), ``weight_bits``,
    ``acc_bits`` (signed width of the outputs; must hold bias + any subset sum of a weight
    row, so no partial sum wraps), ``pe`` (output lanes, divides out), ``simd`` (inputs
    summed per cycle, divides in; must be 1 in event mode), ``mode`` ("dense" or "event"),
    ``pipelined`` (register the memory read before the adder tree and the tree every
    `gated_sum.REGISTERED_LEVELS` levels: the planner's choice on ECP5, for timing).

    Ports: sink ``i`` (spikes, ``unsigned(in)``, T beats per token); source ``o`` (values,
    ``pe`` lanes of ``signed(acc_bits)``: per token, for group g: for t: one beat holding
    outputs ``g*pe .. g*pe+pe-1`` at step t; docs/hardware.md).

    Weight memory: depth ``(out/pe) * (in/simd)``, width ``pe * simd * weight_bits``; row
    ``g*(in/simd) + k`` holds ``weight[g*pe + j][k*simd + s]`` in bits
    ``[(j*simd + s) * weight_bits, +weight_bits)`` (lane-major; `gated_sum.weight_rows`).
    Event mode is the same layout with ``simd = 1``: row ``g*in + i`` is input i's
    ``pe`` weights. One synchronous read port: block RAM, or soft logic where Yosys finds
    that cheaper (small memories; `gated_sum.rom_resources`).

    Token buffer: one register of ``in`` bits per step ("slot"), T slots in all, each with
    a full flag. Slot t of the next token loads as soon as the last group has read step t
    of the current one, so loading overlaps computing and, for ``T >= 2``, the datapath
    never waits for input in free flow (for ``T = 1``, one bubble cycle per token).

    Timing: one operation per cycle, each reading one memory row. Dense: a beat (g, t)
    takes ``in/simd`` operations; event: ``max(1, popcount(spikes[t]))`` operations, one
    per set bit, lowest first (a step without spikes costs one cycle, which emits the
    bias). Free-flow cycles per token: ``(out/pe) * (sum over t of ops(t)) + (T == 1)``.
    Latency: an output beat fires ``latency = stages + 1`` cycles after its last
    operation was issued, ``stages = 1 + tree_stages(simd)`` (memory read, then the
    adder tree's registers; the final stage accumulates into the output register; with
    ``pipelined``: ``2 + tree_stages(simd, True)``, the read register first), plus
    one in event mode (the priority encoder's index is registered before the address
    adder and the memory). The encoder clears the lowest set bit with 16-bit carry chains
    and detects a beat's last spike without one, to keep the loop through it short.

    Backpressure: ``i.ready`` depends only on the slot flags. The output register doubles
    as the accumulator, so the datapath stalls (``advance`` low, including the memory's
    read enable) whenever its final stage holds an operation while an unaccepted beat sits
    in the output register; ``advance`` depends on ``o.ready`` in the same cycle.
    """

    def __init__(self, weight, bias, *, time_steps: int, weight_bits: int, acc_bits: int,
                 pe: int = 1, simd: int = 1, mode: str = "dense", pipelined: bool = False):
        self.weight_bits = check_int("weight_bits", weight_bits, 2)
        self.weight, self.bias = check_matrix(weight, bias, weight_bits)
        self.out_features, self.in_features = len(self.weight), len(self.weight[0])
        self.time_steps = check_int("time_steps", time_steps)
        self.pe = check_int("pe", pe)
        check_divides("pe", pe, self.out_features)
        self.simd = check_int("simd", simd)
        check_divides("simd", simd, self.in_features)
        check_choice("mode", mode, MODES)
        if mode == "event" and simd != 1:
            raise ValueError(f"simd must be 1 in event mode, not {simd!r}")
        self.mode = mode
        if not isinstance(pipelined, bool):
            raise TypeError(f"pipelined must be a bool, not {pipelined!r}")
        self.pipelined = pipelined
        self.acc_bits = check_acc_bits(acc_bits, self.weight, self.bias, 1)
        super().__init__({"i": In(spike_signature(self.in_features)),
                          "o": Out(values_signature(acc_bits, pe))})

    @property
    def stages(self) -> int:
        """Pipeline stages after the issue stage: (event mode: the address register), the
        memory read, then the tree registers."""
        return (1 + self.pipelined + tree_stages(self.simd, self.pipelined)
                + (self.mode == "event"))

    def elaborate(self, platform):
        m = Module()
        T, G, K, IN = self.time_steps, self.groups, self.chunks, self.in_features
        depth, width = self.memory_shape()
        m.submodules.weights = mem = Memory(
            shape=unsigned(width), depth=depth,
            init=weight_rows(self.weight, self.pe, self.simd, self.weight_bits))
        rd = mem.read_port(domain="sync")

        # -- token buffer: T slots, each loaded by one input beat ------------------
        buf = Cat(*[Signal(IN, name=f"slot{t}") for t in range(T)])
        slot_full = Signal(T)
        t_in = _counter(T, "t_in")
        m.d.comb += self.i.ready.eq(~slot_full.bit_select(t_in, 1))
        with m.If(self.i.valid & self.i.ready):
            with m.Switch(t_in):
                for k in range(T):
                    with m.Case(k):
                        m.d.sync += [buf[k * IN:(k + 1) * IN].eq(self.i.payload),
                                     slot_full[k].eq(1)]
            _wrap_inc(m, t_in, T)

        # -- issue stage: one operation (one memory row) per cycle -----------------
        advance = Signal()
        go = Signal()
        g, t = _counter(G, "g"), _counter(T, "t")
        base = Signal(range(depth), name="base")  # g * K: the group's first row
        first, last = Signal(), Signal()
        gates = Signal(self.simd)
        if self.mode == "dense":
            m.d.comb += [go.eq(slot_full.bit_select(t, 1) & advance), rd.en.eq(advance)]
        else:
            m.d.comb += rd.en.eq(advance)
        if self.mode == "dense":
            k = _counter(K, "k")
            c = _counter(T * K, "chunk")  # t*K + k: the group's chunks in issue order
            m.d.comb += [first.eq(k == 0), last.eq(k == K - 1),
                         gates.eq(buf.word_select(c, self.simd)), rd.addr.eq(base + k)]
            with m.If(go):
                _wrap_inc(m, k, K)
                _wrap_inc(m, c, T * K)
            issue = {"valid": go, "first": first, "last": last, "g": g, "gates": gates}
        else:
            # `cur` is a register holding the beat's spikes not yet visited, loaded at the
            # end of the previous beat (from the next beat's slot, or from the input beat
            # arriving for it) or when a waited-for slot loads, so the loop through the
            # lowest-set-bit logic starts at a register, not at the slot multiplexer; and
            # whether an operation is the beat's last comes from registers too (each slot
            # notes when it loads whether it holds at most one spike; each operation whether
            # `cur` holds at most two, so the rest at most one).
            fresh = Signal(init=1)  # the beat's first operation
            cur = Signal(IN)
            cur_ok = Signal()  # cur holds beat (g, t)'s spikes
            cur_le1 = Signal()  # cur has at most one set bit
            slot_le1 = Signal(T)
            t_next = Signal(range(max(T, 2)), init=1 % T, name="t_next")  # (t + 1) mod T
            rest, idx, _ = _lowest_set_bit(m, cur)
            load = self.i.valid & self.i.ready
            in_le1 = Signal()
            m.d.comb += [in_le1.eq(~at_least(self.i.payload, 2)), go.eq(cur_ok & advance),
                         first.eq(fresh), gates.eq(cur.any()), last.eq(cur_le1)]
            with m.If(load):
                with m.Switch(t_in):
                    for k in range(T):
                        with m.Case(k):
                            m.d.sync += slot_le1[k].eq(in_le1)
            bypass = load & (t_in == t_next)  # the next beat's slot loads now
            # With T = 1 the last group's beat end empties the slot the next beat reads.
            kept = slot_full.bit_select(t_next, 1)
            if T == 1:
                kept = kept & (g != G - 1)
            with m.If(go & last):
                m.d.sync += [fresh.eq(1),
                             cur.eq(Mux(bypass, self.i.payload, buf.word_select(t_next, IN))),
                             cur_ok.eq(bypass | kept),
                             cur_le1.eq(Mux(bypass, in_le1, slot_le1.bit_select(t_next, 1)))]
                _wrap_inc(m, t_next, T)
            with m.Elif(go):
                m.d.sync += [fresh.eq(0), cur.eq(rest), cur_le1.eq(~at_least(cur, 3))]
            with m.Elif(~cur_ok & load & (t_in == t)):  # the waited-for slot loads now
                m.d.sync += [cur.eq(self.i.payload), cur_ok.eq(1), cur_le1.eq(in_le1)]
            # The encoder's index gets a register before the address adder and the memory.
            issue = {name: Signal(len(v), name=f"{name}_a") for name, v in
                     (("valid", go), ("first", first), ("last", last), ("g", g), ("gates", gates),
                      ("base", base), ("idx", idx))}
            with m.If(advance):
                m.d.sync += [issue["valid"].eq(go), issue["first"].eq(first),
                             issue["last"].eq(last), issue["g"].eq(g), issue["gates"].eq(gates),
                             issue["base"].eq(base), issue["idx"].eq(idx)]
            m.d.comb += rd.addr.eq(issue["base"] + issue["idx"])
        with m.If(go & last):
            with m.If(g == G - 1):  # the last group is done with this step's slot
                with m.Switch(t):
                    for k in range(T):
                        with m.Case(k):
                            m.d.sync += slot_full[k].eq(0)
            with m.If(t == T - 1):
                m.d.sync += t.eq(0)
                with m.If(g == G - 1):
                    m.d.sync += [g.eq(0), base.eq(0)]
                with m.Else():
                    m.d.sync += [g.eq(g + 1), base.eq(base + K)]
            with m.Else():
                m.d.sync += t.eq(t + 1)

        # -- memory read, gated adder tree --------------------------------------
        tags = {name: Signal(len(issue[name]), name=f"{name}_s1")
                for name in ("valid", "first", "last", "g")}
        gates1 = Signal(self.simd)
        with m.If(advance):
            m.d.sync += [tags[name].eq(issue[name]) for name in tags]
            m.d.sync += gates1.eq(issue["gates"])
        sums, tags = gated_sum(m, words=rd.data, gates=gates1, pe=self.pe, simd=self.simd,
                               weight_bits=self.weight_bits, advance=advance, tags=tags,
                               registered=self.pipelined)

        self.accumulate_output(m, sums, tags, advance)
        return m

    # -- estimates ------------------------------------------------------------
    def model(self) -> SpikeLinearModel:
        return SpikeLinearModel(self.groups, self.time_steps, self.chunks, self.stages,
                                event=self.mode == "event")

    def _ops(self, spike_counts) -> int:
        T = self.time_steps
        if self.mode == "dense":
            return self.groups * T * self.chunks
        if spike_counts is None:
            raise ValueError("spike_counts must be given in event mode, not None")
        counts = [int(c) for c in spike_counts]
        if len(counts) != T or not all(0 <= c <= self.in_features for c in counts):
            raise ValueError(f"spike_counts must be {T} counts in [0, {self.in_features}], "
                             f"not {spike_counts!r}")
        return self.groups * sum(max(1, c) for c in counts)

    def cycles_per_token(self, spike_counts=None) -> int:
        """Cycles per token in free flow (inputs always valid, output always ready).

        Dense: ``(out/pe) * T * (in/simd)``; event: ``(out/pe) * sum_t max(1, spike_counts[t])``
        (`spike_counts`: the token's spike count at each step); plus one when T = 1.
        """
        return self._ops(spike_counts) + (self.time_steps == 1)

    def cycles(self, tokens: int, spike_counts=None) -> int:
        """Cycle in which the last output beat fires when `tokens` tokens flow freely from
        cycle 1 (the testbench's cycle count). Event mode: `spike_counts` [tokens][T]."""
        check_int("tokens", tokens)
        if self.mode == "event":
            if spike_counts is None or len(spike_counts) != tokens:
                raise ValueError(f"spike_counts must list {tokens} tokens, not {spike_counts!r}")
            per_token = [self.cycles_per_token(c) for c in spike_counts]
        else:
            per_token = [self.cycles_per_token()] * tokens
        return 1 + sum(per_token) - (self.time_steps == 1) + self.latency

    def resources(self, family: str) -> Resources:
        """LUT4/FF/memory estimate for 'ice40' or 'ecp5', calibrated with Yosys 0.70.

        FF: token buffer ``T*in`` plus slot flags, counters, pipeline tags, tree registers,
        output register ``pe*acc_bits``; event mode adds the ``in``-bit ``cur`` register, the
        slots' at-most-one flags and the address stage.
        LUT: dense: chunk multiplexer ``simd * mux(T*in/simd)``; event: the next-``cur``
        multiplexer, the clear-lowest-bit chains, the encoders and the two bit-count trees
        (a slot's at most one, ``cur``'s at most two); both: gated
        adder trees (`tree_luts`), per output bit an adder and the bias-or-accumulator
        multiplexer (with the bias table when ``out/pe > 4``), counters. The weight memory
        is a block RAM or soft logic as Yosys would choose (`gated_sum.rom_resources`).
        """
        T, G, K, IN, pe = self.time_steps, self.groups, self.chunks, self.in_features, self.pe
        depth, width = self.memory_shape()
        rom = rom_resources(depth, width, family)
        counters = 2 * bits_for(T) + bits_for(G) + bits_for(depth)
        tags = 3 + bits_for(G)
        ff = (T * IN + T + counters + (tags + self.simd)
              + tags * (tree_stages(self.simd, self.pipelined) + self.pipelined)
              + tree_ffs(pe, self.simd, self.weight_bits, self.pipelined)
              + pe * self.acc_bits + 1)
        per_bit = 2 if G <= 4 else 2 + rom_luts(G)  # a LUT4 holds the mux and a 4-row table
        lut = (tree_luts(pe, self.simd, self.weight_bits) + pe * self.acc_bits * per_bit
               + 2 * counters + bits_for(depth) + T + 8)
        if self.mode == "dense":
            ff += bits_for(K) + bits_for(T * K)
            lut += self.simd * mux_luts(T * K) + 2 * (bits_for(K) + bits_for(T * K))
        else:
            ff += IN + 1 + tags + 1 + bits_for(depth) + bits_for(IN)  # cur, address stage
            # the next-`cur` multiplexer (rest, the next slot, the input), the clear-lowest-
            # bit chains and encoders, and the at-most-one / at-most-two trees
            lut += IN * (mux_luts(T + 1) + 2) + bits_for(IN) * IN // 6 + IN * 13 // 3
        return Resources(lut=lut, ff=ff) + rom


def _lowest_set_bit(m: Module, cur: Signal, chunk: int = 16):
    """(cur without its lowest set bit, that bit's index, cur has at most one set bit).

    Carry chains span `chunk` bits only (the chunk holding the lowest set bit is cleared)
    and the at-most-one flag uses none, so the loop through `pending` stays short.
    """
    n = len(cur)
    parts = [cur[lo:min(lo + chunk, n)] for lo in range(0, n, chunk)]
    nonzero = [p.any() for p in parts]
    rest, firsts, idx_lo = [], [], 0
    for j, p in enumerate(parts):
        first = nonzero[j] & ~Cat(*nonzero[:j]).any() if j else nonzero[0]
        cleared = Signal(len(p), name=f"cleared{j}")
        m.d.comb += cleared.eq(p & (p - 1))
        rest.append(Mux(first, cleared, p))
        firsts.append(first)
        idx_lo = idx_lo | Mux(first, _encode(p & ~cleared), 0)
    idx = Signal(range(max(n, 2)), name="idx")
    m.d.comb += idx.eq(idx_lo if len(parts) == 1 else Cat(idx_lo[:ceil_log2(chunk)],
                                                           _encode(Cat(*firsts))))

    def any_many(bits):  # (any bit set, two or more set), a carry-free tree
        if len(bits) == 1:
            return bits[0], Const(0)
        (a0, m0), (a1, m1) = any_many(bits[:len(bits) // 2]), any_many(bits[len(bits) // 2:])
        return a0 | a1, m0 | m1 | (a0 & a1)

    at_most_one = Signal(name="at_most_one")
    m.d.comb += at_most_one.eq(~any_many(list(cur))[1])
    return Cat(*rest), idx, at_most_one


def at_least(value, n: int):
    """Whether `value` has at least `n` (2 or 3) set bits: a carry-free tree of
    saturating counts (no adder chain)."""
    if n not in (2, 3):
        raise ValueError(f"n must be 2 or 3, not {n!r}")

    def counts(bits):  # (>= 1, >= 2, >= 3) set
        if len(bits) == 1:
            return bits[0], Const(0), Const(0)
        (a1, a2, a3), (b1, b2, b3) = counts(bits[:len(bits) // 2]), counts(bits[len(bits) // 2:])
        return a1 | b1, a2 | b2 | (a1 & b1), a3 | b3 | (a2 & b1) | (a1 & b2)

    return counts([value[i] for i in range(len(value))])[n - 1]


def _encode(one_hot):
    """Binary index of the set bit of a one-hot value."""
    bits = [[one_hot[i] for i in range(len(one_hot)) if i >> b & 1]
            for b in range(max(1, ceil_log2(len(one_hot))))]
    return Cat(*[Cat(*terms).any() if terms else Const(0) for terms in bits])


def _counter(n: int, name: str) -> Signal:
    return Signal(range(max(n, 2)), name=name)


def _wrap_inc(m: Module, counter: Signal, n: int) -> None:
    with m.If(counter == n - 1):
        m.d.sync += counter.eq(0)
    with m.Else():
        m.d.sync += counter.eq(counter + 1)


class SpikeLinearModel(LocalQuiet, BlockModel):
    """Control mirror of SpikeLinear: slot flags, the issue counters, the pipeline's
    (valid, last) tags and the output register. Event mode reads each input beat's
    popcount from the stream's words when the beat fires."""

    def __init__(self, groups: int, time_steps: int, chunks: int, stages: int, *, event: bool):
        self.G, self.T, self.K, self.event = groups, time_steps, chunks, event
        self.slot_full = [False] * time_steps
        self.slot_ops = [0] * time_steps
        self.t_in = self.g = self.t = self.op = 0
        self.pipe: list[bool | None] = [None] * stages  # None: empty; else the op's `last`
        self.out_valid = False
        self._offered_ops = 0

    def valid(self, port):
        return self.out_valid

    def ready(self, port):
        ready = not self.slot_full[self.t_in]
        if ready and self.event and self.in_valid("i"):
            self._offered_ops = max(1, bin(self.in_word("i")).count("1"))
        return ready

    def tick(self, fired):
        final = self.pipe[-1]
        advance = not (final is not None and self.out_valid and not fired["o"])
        if advance and final is not None:
            self.out_valid = final
        elif fired["o"]:
            self.out_valid = False
        if advance:
            item = None
            if self.slot_full[self.t]:
                item = self.op == self.slot_ops[self.t] - 1
                self.op = 0 if item else self.op + 1
                if item:
                    if self.g == self.G - 1:
                        self.slot_full[self.t] = False
                    self.t = (self.t + 1) % self.T
                    if self.t == 0:
                        self.g = (self.g + 1) % self.G
            self.pipe = [item] + self.pipe[:-1]
        if fired["i"]:
            self.slot_full[self.t_in] = True
            self.slot_ops[self.t_in] = self._offered_ops if self.event else self.K
            self.t_in = (self.t_in + 1) % self.T

    _state_attrs = ("slot_full", "slot_ops", "t_in", "g", "t", "op", "pipe", "out_valid")

    def _active(self) -> bool:
        if self.pipe[-1] is not None and self.out_valid:
            return False  # stalled on the output: nothing moves until it fires
        return self.slot_full[self.t] or any(p is not None for p in self.pipe)

    def quiet(self):
        if self.event:  # its ready reads the input's words: not a local handshake
            return 1 if self._active() else 1 << 30
        return LocalQuiet.quiet(self)

    def skip(self, cycles):
        if not self.event:
            LocalQuiet.skip(self, cycles)
