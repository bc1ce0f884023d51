"""SASA's channel mode: per token, a pipelined per-head popcount tree of Q AND K, the
attention LIF and the gate on K (rtl_templates.sasa.SASA is the block; docs/arithmetic.md).
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal

from rtl_templates.common import Resources, bits_for
from rtl_templates.timing import BlockModel

# Channel-mode popcount tree: the first register stage sums GROUP ANDed pairs, every later
# one at most FAN partial sums, so each stage is a few LUT levels plus one short carry chain.
GROUP = 8
FAN = 4


def elaborate_channel(sasa, m: Module) -> None:
    """Channel mode's pipeline into `m` (SASA's docstring states its timing)."""
    D, hd, T = sasa.dim, sasa.head_dim, sasa.time_steps
    advance = Signal()
    m.d.comb += [advance.eq(~sasa.o.valid | sasa.o.ready), sasa.i.ready.eq(advance)]
    q, k = sasa.i.payload[:D], sasa.i.payload[D:]
    # Per head: the current list of (partial count, its largest value).
    parts = [[(q[c] & k[c], 1) for c in range(h * hd, (h + 1) * hd)]
             for h in range(sasa.heads)]
    k_d, valid = k, sasa.i.valid
    for stage in range(sasa.tree_stages):
        group = GROUP if stage == 0 else FAN
        reduced = []
        for h, head_parts in enumerate(parts):
            out = []
            for j in range(0, len(head_parts), group):
                chunk = head_parts[j:j + group]
                name = f"p{stage}_h{h}_{j // group}"
                if sasa.saturate:
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
    if T > 1 and any(sasa.state_width(v) for v in sasa.vth):
        t = Signal(range(T))
        with m.If(step):
            m.d.sync += [t.eq(Mux(t == T - 1, 0, t + 1)), first.eq(t == T - 1)]
    spikes = [sasa.neuron(m, count, hd, sasa.vth[h], first, step, f"h{h}")
              for h, [(count, _)] in enumerate(parts)]
    # Data registers have no reset (valid bits say what they hold), so the gate maps onto
    # the flip-flops' synchronous reset: per head one signal, no LUT per channel.
    y = Signal(D, reset_less=True)
    m.d.comb += sasa.o.payload.eq(y)
    with m.If(advance):
        m.d.sync += sasa.o.valid.eq(valid)
        for h, spike in enumerate(spikes):
            lo = h * hd
            m.d.sync += y[lo:lo + hd].eq(Mux(spike, k_d[lo:lo + hd], 0))


def channel_tree(sasa) -> list[list[int]]:
    """Channel mode: per register stage, the largest value of each partial count of one head."""
    his, stages = [1] * sasa.head_dim, []
    for stage in range(sasa.tree_stages):
        group = GROUP if stage == 0 else FAN
        his = [1 if sasa.saturate else sum(his[j:j + group])
               for j in range(0, len(his), group)]
        stages.append(his)
    return stages


def channel_resources(sasa, states: int) -> Resources:
    """Channel mode's LUTs and flip-flops (SASA.resources states the calibration)."""
    D, H, T = sasa.dim, sasa.heads, sasa.time_steps
    tree = channel_tree(sasa)
    n_stages = len(tree)
    prev, lut = [1] * sasa.head_dim, 0.0
    for stage, his in enumerate(tree):
        group = GROUP if stage == 0 else FAN
        for j in range(len(his)):
            ins = prev[j * group:(j + 1) * group]
            if sasa.saturate:  # AND-OR of two pairs per LUT, then an OR tree
                leaves = -(-len(ins) // 2) if stage == 0 else len(ins)
                lut += (leaves if stage == 0 else 0) + -(-(leaves - 1) // 3)
            elif stage == 0:
                lut += 2 * len(ins)  # AND + popcount of a group
            else:
                lut += 1.4 * (len(ins) - 1) * (max(ins).bit_length() + 1)
        prev = his
    lut *= H
    has_state = T > 1 and states > 0
    if not sasa.saturate:
        lut += sum(sasa.lif_luts(v, sasa.head_dim) for v in sasa.vth)
    lut += 3 + 3 * has_state
    ff = (D * (n_stages + 1) + n_stages + 1 + states
          + H * sum(hi.bit_length() for his in tree for hi in his)
          + (bits_for(T) + 1 if has_state else 0))
    return Resources(lut=round(lut), ff=ff)


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
