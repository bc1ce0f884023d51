"""Spike Aggregated Self-Attention core: Q AND K, popcount, attention LIF, gate (docs/arithmetic.md).

Channel mode streams (a pipelined per-head popcount tree, one beat per cycle);
token mode buffers one image of Q, counts over its tokens, then replays Q gated.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, ResetSignal, Signal
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
    check_ints,
    spike_signature,
)
from rtl_templates.timing import BlockModel

MODES = ("channel", "token")
FAMILIES = ("ice40", "ecp5")
# Channel-mode popcount tree: the first register stage sums GROUP ANDed pairs, every later
# one at most FAN partial sums, so each stage is a few LUT levels plus one short carry chain.
GROUP = 8
FAN = 4


def _signed_width(hi: int) -> int:
    """Signed width holding 0 .. hi."""
    return max(hi, 0).bit_length() + 1


class SASA(wiring.Component):
    """The SASA aggregation and gate of one block, in ``channel`` or ``token`` mode.

    Parameters: ``dim`` (channels D), ``heads`` (divides ``dim``), ``time_steps``
    (T), ``tokens`` (N per image), ``mode`` (``"channel"`` or ``"token"``),
    ``agg_vth`` (integer thresholds >= 1 of the attention LIF: one per head in
    channel mode, one per channel in token mode), ``agg_input_shift`` (>= 0),
    ``agg_state_bits`` (the declared signed state width; checked to hold
    ``count << agg_input_shift`` and ``agg_vth - 1``. The datapath itself uses
    the exact unsigned ranges, which are never wider).

    Ports: sink ``i`` (spikes, ``2*dim`` bits: Q in bits ``0 .. D-1``, K in
    ``D .. 2D-1``; T beats per token), source ``o`` (spikes Y, ``dim`` bits,
    T beats per token, same order).

    The attention LIF is the integer LIF of docs/arithmetic.md computed as
    ``S = (count << shift) + V >= 2*vth`` and ``V = S ? 0 : ((count << shift) + V) >> 1``
    (the same as ``H >= vth`` on ``H = floor(.../2)``), ``V = 0`` at ``t = 0``
    of every token (channel) or image (token). When ``agg_input_shift >= 1``
    and every threshold is 1 (the model's own neuron), ``S = count >= 1`` with
    ``V`` always 0, so the count saturates at 1: the popcount becomes an OR.

    Channel mode: ``a[t,h] = LIF(popcount over head h of Q & K)``,
    ``Y[t,c] = a[t,head(c)] & K[t,c]``. A pipeline of ``latency`` register
    stages: ``tree_stages`` popcount stages (groups of ``GROUP`` ANDed pairs,
    then sums of at most ``FAN`` partials: ``1 + ceil(log_FAN(ceil(head_dim /
    GROUP)))``), then the LIF and the gate into the output register (the gate
    is the output flip-flops' synchronous reset). No memory. Every stage
    advances together when ``o`` is empty or taken, so ``i.ready = ~o.valid |
    o.ready`` (ready passes through). Latency: ``tree_stages + 1`` cycles from
    a beat's input to its output (2 for head_dim <= 8, 3 up to 32, 4 up to
    128). Throughput: one beat per cycle, one token per T cycles, no gap
    between images: ``images * N * T + latency`` cycles in free flow.

    Token mode: ``g[t,c] = LIF over t of (popcount over the N tokens of Q & K)``,
    ``Y[t,c,n] = g[t,c] & Q[t,c,n]``. Memory: Q of one image, ``N*T`` words of
    ``D`` bits, address ``n*T + t`` (one write and one synchronous read port;
    a word is never read in the cycle it is written, so no read-during-write
    logic). Counts are ``T`` rotating registers of ``D`` counters; ``g`` is
    computed beat by beat as the image's last token arrives, into ``g_next``
    (``T*D`` bits), and copied to ``g`` when the replay starts, the cycle after
    the image's last beat. The replay reads one word per cycle (the read
    port's register is the output register; ``o.payload = word & g[t]``). The
    next image streams in while the current one is replayed, one word behind:
    input beat ``k`` is taken once the replay has read address ``k`` in an
    earlier cycle. ``i.ready`` depends only on the block's state. Free flow:
    image ``j`` (from 0) enters in cycles ``j*(N*T+1) + 1 .. j*(N*T+1) + N*T``
    and leaves in cycles ``(j+1)*(N*T+1) + 1 .. (j+1)*(N*T+1) + N*T``: one
    image per ``N*T + 1`` cycles, and ``N*T + 1`` cycles from an image's last
    input beat to its last output beat.
    """

    def __init__(self, *, dim: int, heads: int, time_steps: int, tokens: int, mode,
                 agg_vth, agg_input_shift: int, agg_state_bits: int):
        self.dim = check_int("dim", dim)
        self.heads = check_int("heads", heads)
        check_divides("heads", heads, dim)
        self.time_steps = check_int("time_steps", time_steps)
        self.tokens = check_int("tokens", tokens)
        check_choice("mode", mode, MODES)
        self.mode = MODES[MODES.index(mode)]
        self.input_shift = check_int("agg_input_shift", agg_input_shift, 0)
        self.state_bits = check_int("agg_state_bits", agg_state_bits, 2)
        neurons = heads if self.mode == "channel" else dim
        self.vth = check_ints("agg_vth", agg_vth, neurons)
        if min(self.vth) < 1:
            raise ValueError(f"agg_vth must be >= 1 everywhere, not {min(self.vth)!r}")
        needed = _signed_width(max(self.count_max << self.input_shift, max(self.vth) - 1))
        if self.state_bits < needed:
            raise ValueError(f"agg_state_bits must be >= {needed} (it holds count << "
                             f"agg_input_shift and agg_vth - 1), not {agg_state_bits!r}")
        super().__init__({"i": In(spike_signature(2 * dim)), "o": Out(spike_signature(dim))})

    # -- derived sizes -------------------------------------------------------
    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def count_max(self) -> int:
        """Largest count the attention neuron reads: head_dim (channel) or tokens (token)."""
        return self.head_dim if self.mode == "channel" else self.tokens

    @property
    def saturate(self) -> bool:
        """The neuron fires iff count >= 1 and never keeps a membrane: an OR replaces the popcount."""
        return self.input_shift >= 1 and max(self.vth) == 1

    @property
    def tree_stages(self) -> int:
        """Register stages of the channel-mode popcount tree."""
        parts, stages = -(-self.head_dim // GROUP), 1
        while parts > 1:
            parts, stages = -(-parts // FAN), stages + 1
        return stages

    @property
    def latency(self) -> int:
        """Channel mode: cycles from a beat's input to its output. Token mode: from an
        image's last input beat to its last output beat, in free flow."""
        if self.mode == "channel":
            return self.tree_stages + 1
        return self.tokens * self.time_steps + 1

    def _state_width(self, vth: int) -> int:
        """Unsigned width of a membrane V in [0, vth - 1] (0: the neuron keeps no state)."""
        return 0 if self.saturate or self.time_steps == 1 else (vth - 1).bit_length()

    def _neuron(self, m: Module, count, count_hi: int, vth: int, first, step, name: str):
        """Spike of one attention neuron for `count`; updates its membrane when `step` (a
        beat passes), starting from 0 when `first`."""
        if self.saturate:
            return count
        x = count << self.input_shift
        x_bits = max((count_hi << self.input_shift).bit_length(), 1)
        vw = self._state_width(vth)
        spike = Signal(name=f"s_{name}")
        if vw == 0:
            m.d.comb += spike.eq(_at_least(x[:x_bits], 2 * vth))
            return spike
        # V < vth <= 2^vw, so 2*vth <= 2^(vw+1) = 2^low: an input with a bit set above
        # `low` fires whatever V is, and otherwise only its low bits meet V. The membrane
        # adder shrinks to low + 1 bits, with no carry chain across the whole count.
        low = vw + 1
        v = Signal(vw, name=f"v_{name}")
        small = Signal(low + 1, name=f"h2_{name}")
        above = x[low:x_bits].any() if x_bits > low else 0
        m.d.comb += [small.eq(x[:min(low, x_bits)] + Mux(first, 0, v)),
                     spike.eq(above | _at_least(small, 2 * vth))]
        with m.If(step):
            # Not firing means count << shift + V = small < 2*vth, so small >> 1 fits vw bits.
            m.d.sync += v.eq(Mux(spike, 0, small[1:]))
        return spike

    # -- hardware ------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        if self.mode == "channel":
            self._elaborate_channel(m)
        else:
            self._elaborate_token(m)
        return m

    def _elaborate_channel(self, m: Module) -> None:
        D, hd, T = self.dim, self.head_dim, self.time_steps
        advance = Signal()
        m.d.comb += [advance.eq(~self.o.valid | self.o.ready), self.i.ready.eq(advance)]
        q, k = self.i.payload[:D], self.i.payload[D:]
        # Per head: the current list of (partial count, its largest value).
        parts = [[(q[c] & k[c], 1) for c in range(h * hd, (h + 1) * hd)]
                 for h in range(self.heads)]
        k_d, valid = k, self.i.valid
        for stage in range(self.tree_stages):
            group = GROUP if stage == 0 else FAN
            reduced = []
            for h, head_parts in enumerate(parts):
                out = []
                for j in range(0, len(head_parts), group):
                    chunk = head_parts[j:j + group]
                    name = f"p{stage}_h{h}_{j // group}"
                    if self.saturate:
                        hi, value = 1, Cat(*(v for v, _ in chunk)).any()
                    else:
                        hi, value = sum(b for _, b in chunk), sum(v for v, _ in chunk)
                    r = Signal(range(hi + 1), name=name, reset_less=True)
                    with m.If(advance):
                        m.d.sync += r.eq(value)
                    out.append((r, hi))
                reduced.append(out)
            k_r, v_r = Signal(D, name=f"k{stage}", reset_less=True), Signal(name=f"valid{stage}")
            with m.If(advance):
                m.d.sync += [k_r.eq(k_d), v_r.eq(valid)]
            parts, k_d, valid = reduced, k_r, v_r

        step = advance & valid
        first = Signal(init=1)  # the beat entering the LIF is step 0 of its token
        if T > 1 and any(self._state_width(v) for v in self.vth):
            t = Signal(range(T))
            with m.If(step):
                m.d.sync += [t.eq(Mux(t == T - 1, 0, t + 1)), first.eq(t == T - 1)]
        spikes = [self._neuron(m, count, hd, self.vth[h], first, step, f"h{h}")
                  for h, [(count, _)] in enumerate(parts)]
        # Data registers have no reset (valid bits say what they hold), so the gate maps onto
        # the flip-flops' synchronous reset: per head one signal, no LUT per channel.
        y = Signal(D, reset_less=True)
        m.d.comb += self.o.payload.eq(y)
        with m.If(advance):
            m.d.sync += self.o.valid.eq(valid)
            for h, spike in enumerate(spikes):
                lo = h * hd
                m.d.sync += y[lo:lo + hd].eq(Mux(spike, k_d[lo:lo + hd], 0))

    def _elaborate_token(self, m: Module) -> None:
        D, T, N = self.dim, self.time_steps, self.tokens
        NT = N * T
        m.submodules.qbuf = qbuf = Memory(shape=unsigned(D), depth=NT, init=[],
                                          attrs={"no_rw_check": 1})
        wr, rd = qbuf.write_port(), qbuf.read_port(domain="sync")
        q, k = self.i.payload[:D], self.i.payload[D:]

        # Replay: the read port's data register is the output register.
        pending, active = Signal(), Signal()  # an image waits for replay / is being replayed
        rptr = Signal(range(NT))
        raddr = Signal(range(NT))
        advance, issue = Signal(), Signal()
        g = [Signal(D, name=f"g{t}", reset_less=True) for t in range(T)]
        g_next = [Signal(D, name=f"g_next{t}", reset_less=True) for t in range(T)]
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            issue.eq(advance & (active | pending)),
            raddr.eq(Mux(active, rptr, 0)),
            rd.addr.eq(raddr), rd.en.eq(advance),
            self.o.payload.eq(rd.data & g[0]),
        ]
        with m.If(advance):
            m.d.sync += self.o.valid.eq(issue)
        with m.If(issue):
            with m.If(raddr == NT - 1):
                m.d.sync += [active.eq(0), rptr.eq(0)]
            with m.Else():
                m.d.sync += [active.eq(1), rptr.eq(raddr + 1)]
        with m.If(issue & ~active):  # a replay starts: its gates become current
            m.d.sync += [pending.eq(0)] + [a.eq(b) for a, b in zip(g, g_next, strict=True)]
        with m.Elif(self.o.valid & self.o.ready):
            m.d.sync += [a.eq(b) for a, b in zip(g, g[1:] + g[:1], strict=True)]

        # Intake: beat k may overwrite address k once the replay has read it (in an earlier
        # cycle, so a word is never read and written at once).
        win = Signal(range(NT))
        t_in, n_in = Signal(range(T)), Signal(range(N))
        fire = Signal()
        m.d.comb += [
            self.i.ready.eq((~pending & ~active) | (active & (rptr != win))),
            fire.eq(self.i.valid & self.i.ready),
            wr.addr.eq(win), wr.data.eq(q), wr.en.eq(fire),
        ]
        last_token = n_in == N - 1
        cw = 1 if self.saturate else bits_for(N + 1)
        # The count that re-enters the rotation is zeroed by reset and after an image's last
        # token through one shared synchronous reset (no LUT per counter bit).
        cnt = [Signal(D * cw, name=f"cnt{t}") for t in range(T - 1)]
        cnt.append(Signal(D * cw, name=f"cnt{T - 1}", reset_less=True))
        clear = Signal()
        m.d.comb += clear.eq(ResetSignal() | (fire & last_token))
        both = q & k
        total = [Signal(cw, name=f"count{c}") for c in range(D)]
        spikes = []
        for c in range(D):
            head = cnt[0][c * cw:(c + 1) * cw]
            m.d.comb += total[c].eq(head | both[c] if self.saturate else head + both[c])
            spikes.append(self._neuron(m, total[c], N, self.vth[c], t_in == 0,
                                       fire & last_token, f"c{c}"))
        with m.If(fire):
            m.d.sync += [win.eq(Mux(win == NT - 1, 0, win + 1)),
                         t_in.eq(Mux(t_in == T - 1, 0, t_in + 1))]
            m.d.sync += [a.eq(b) for a, b in zip(cnt, cnt[1:], strict=False)]
            with m.If(t_in == T - 1):
                m.d.sync += n_in.eq(Mux(last_token, 0, n_in + 1))
            with m.If(last_token):
                m.d.sync += g_next[-1].eq(Cat(*spikes))
                m.d.sync += [a.eq(b) for a, b in zip(g_next, g_next[1:], strict=False)]
                with m.If(t_in == T - 1):
                    m.d.sync += pending.eq(1)
        with m.If(clear):
            m.d.sync += cnt[-1].eq(0)
        with m.Elif(fire):
            m.d.sync += cnt[-1].eq(Cat(*total))

    # -- estimates -----------------------------------------------------------
    def model(self) -> BlockModel:
        if self.mode == "channel":
            return SASAChannelModel(self.latency)
        return SASATokenModel(self.tokens * self.time_steps)

    def cycles_per_image(self) -> int:
        """Cycles between images in free flow: tokens * T (channel), tokens * T + 1 (token)."""
        return self.tokens * self.time_steps + (self.mode == "token")

    def cycles(self, images: int) -> int:
        """Cycle in which the last output beat of `images` back-to-back images fires, in free flow."""
        check_int("images", images)
        if self.mode == "channel":
            return images * self.cycles_per_image() + self.latency
        return images * self.cycles_per_image() + self.tokens * self.time_steps

    def resources(self, family: str) -> Resources:
        """Estimate (Yosys 0.70 LUT4s, flip-flops, the Q memory). Flip-flops follow the
        structure (Yosys may drop a constant membrane bit); LUTs too, calibrated against
        Yosys on both families: channel mode within ~6 % from dim 32 up (the popcount tree
        about 2.7 LUT4 per ANDed pair, its OR form about 0.7), token mode within ~12 %."""
        check_choice("family", family, FAMILIES)
        states = sum(self._state_width(v) for v in self.vth)
        if self.mode == "channel":
            return self._channel_resources(states)
        D, T, N = self.dim, self.time_steps, self.tokens
        NT = N * T
        cw = 1 if self.saturate else bits_for(N + 1)
        control = 3 * bits_for(NT) + bits_for(N) + bits_for(T) + 10
        # Per channel: the count increment (an OR when saturated), the LIF adder and
        # threshold, its membrane update, the g copy/rotate mux per step, the output AND.
        per_channel = 1 if self.saturate else (
            cw + 2 + sum(self._lif_luts(v, N) for v in self.vth) / D)
        lut = round(D * (per_channel + T + 1)) + control
        ff = (T * D * cw + 2 * T * D + states + 2 * bits_for(NT) + bits_for(T) + bits_for(N)
              + 3)
        return Resources(lut=lut, ff=ff, memories=((NT, D),))

    def _lif_luts(self, vth: int, count_hi: int) -> int:
        """LUT4s of one attention neuron (see _neuron): the low adder and threshold, the OR
        of the bits above, the membrane update."""
        x_bits = max((count_hi << self.input_shift).bit_length(), 1)
        vw = self._state_width(vth)
        if vw == 0:
            return -(-x_bits // 3)
        return max(1, 3 * vw - 1 + -(-max(x_bits - vw - 1, 0) // 3))

    def _tree(self) -> list[list[int]]:
        """Channel mode: per register stage, the largest value of each partial count of one head."""
        his, stages = [1] * self.head_dim, []
        for stage in range(self.tree_stages):
            group = GROUP if stage == 0 else FAN
            his = [1 if self.saturate else sum(his[j:j + group])
                   for j in range(0, len(his), group)]
            stages.append(his)
        return stages

    def _channel_resources(self, states: int) -> Resources:
        D, H, T = self.dim, self.heads, self.time_steps
        tree = self._tree()
        n_stages = len(tree)
        prev, lut = [1] * self.head_dim, 0.0
        for stage, his in enumerate(tree):
            group = GROUP if stage == 0 else FAN
            for j in range(len(his)):
                ins = prev[j * group:(j + 1) * group]
                if self.saturate:  # AND-OR of two pairs per LUT, then an OR tree
                    leaves = -(-len(ins) // 2) if stage == 0 else len(ins)
                    lut += (leaves if stage == 0 else 0) + -(-(leaves - 1) // 3)
                elif stage == 0:
                    lut += 2 * len(ins)  # AND + popcount of a group
                else:
                    lut += 1.4 * (len(ins) - 1) * (max(ins).bit_length() + 1)
            prev = his
        lut *= H
        has_state = T > 1 and states > 0
        if not self.saturate:
            lut += sum(self._lif_luts(v, self.head_dim) for v in self.vth)
        lut += 3 + 3 * has_state
        ff = (D * (n_stages + 1) + n_stages + 1 + states
              + H * sum(hi.bit_length() for his in tree for hi in his)
              + (bits_for(T) + 1 if has_state else 0))
        return Resources(lut=round(lut), ff=ff)


def _at_least(value, const: int):
    """``value >= const`` for a constant, as AND/OR logic over the bits (it maps to a few
    LUT levels; Yosys makes a generic comparator a second carry chain after the adder)."""
    if const <= 0:
        return 1
    if const >= 1 << len(value):
        return 0
    ge = 1  # the empty suffix compares equal
    for i in range(len(value)):
        ge = value[i] & ge if (const >> i) & 1 else value[i] | ge
    return ge


class SASAChannelModel(BlockModel):
    """Control mirror of the channel-mode pipeline: `depth` valid bits that shift together."""

    def __init__(self, depth: int):
        self.v = [False] * depth

    def valid(self, port):
        return self.v[-1]

    def ready(self, port):
        return not self.v[-1] or self.out_ready("o")

    def tick(self, fired):
        if not self.v[-1] or fired["o"]:
            self.v = [fired["i"]] + self.v[:-1]

    def quiet(self):
        # Frozen when the output is stalled; otherwise still only while the pipeline is empty.
        return 1 << 30 if self.v[-1] or not any(self.v) else 1

    def skip(self, cycles):
        pass


class SASATokenModel(BlockModel):
    """Control mirror of token mode: intake pointer, pending/active replay, output register."""

    def __init__(self, beats: int):
        self.nt = beats
        self.win = 0
        self.rptr = 0
        self.pending = self.active = self.out_valid = False

    def valid(self, port):
        return self.out_valid

    def ready(self, port):
        return (not self.pending and not self.active) or (self.active and self.rptr != self.win)

    def tick(self, fired):
        advance = not self.out_valid or fired["o"]
        issue = advance and (self.active or self.pending)
        if issue:
            raddr = self.rptr if self.active else 0
            self.pending = False
            self.active, self.rptr = (False, 0) if raddr == self.nt - 1 else (True, raddr + 1)
        if advance:
            self.out_valid = issue
        if fired["i"]:
            self.win += 1
            if self.win == self.nt:
                self.win, self.pending = 0, True

    def quiet(self):
        return 1 if (self.active or self.pending) and not self.out_valid else 1 << 30

    def skip(self, cycles):
        pass
