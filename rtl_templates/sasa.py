"""Spike Aggregated Self-Attention core: Q AND K, popcount, attention LIF, gate (docs/arithmetic.md).

Channel mode streams (a pipelined per-head popcount tree, one beat per cycle);
token mode buffers one image of Q, counts over its tokens, then replays Q gated.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl_templates.common import (
    Resources,
    check_choice,
    check_divides,
    check_int,
    check_ints,
    spike_signature,
)
from rtl_templates.sasa_channel import (
    FAN,
    GROUP,
    SASAChannelModel,
    channel_resources,
    elaborate_channel,
)
from rtl_templates.sasa_token import SASATokenModel, elaborate_token, token_resources
from rtl_templates.timing import BlockModel

MODES = ("channel", "token")
FAMILIES = ("ice40", "ecp5")


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

    def state_width(self, vth: int) -> int:
        """Unsigned width of a membrane V in [0, vth - 1] (0: the neuron keeps no state)."""
        return 0 if self.saturate or self.time_steps == 1 else (vth - 1).bit_length()

    def neuron(self, m: Module, count, count_hi: int, vth: int, first, step, name: str):
        """Spike of one attention neuron for `count`; updates its membrane when `step` (a
        beat passes), starting from 0 when `first`."""
        if self.saturate:
            return count
        x = count << self.input_shift
        x_bits = max((count_hi << self.input_shift).bit_length(), 1)
        vw = self.state_width(vth)
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
            elaborate_channel(self, m)
        else:
            elaborate_token(self, m)
        return m

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
        states = sum(self.state_width(v) for v in self.vth)
        if self.mode == "channel":
            return channel_resources(self, states)
        return token_resources(self, states)
    def lif_luts(self, vth: int, count_hi: int) -> int:
        """LUT4s of one attention neuron (see neuron): the low adder and threshold, the OR
        of the bits above, the membrane update."""
        x_bits = max((count_hi << self.input_shift).bit_length(), 1)
        vw = self.state_width(vth)
        if vw == 0:
            return -(-x_bits // 3)
        return max(1, 3 * vw - 1 + -(-max(x_bits - vw - 1, 0) // 3))

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
