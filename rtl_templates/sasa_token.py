"""SASA's token mode: one image of Q buffered, per channel a count over its tokens, the
attention LIF, then Q replayed gated (rtl_templates.sasa.SASA is the block; docs/arithmetic.md).
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, ResetSignal, Signal
from amaranth.hdl import unsigned
from amaranth.lib.memory import Memory

from rtl_templates.common import Resources, bits_for
from rtl_templates.timing import BlockModel


def elaborate_token(sasa, m: Module) -> None:
    """Token mode's Q memory, counters and replay into `m` (SASA's docstring states its timing)."""
    D, T, N = sasa.dim, sasa.time_steps, sasa.tokens
    NT = N * T
    m.submodules.qbuf = qbuf = Memory(shape=unsigned(D), depth=NT, init=[],
                                      attrs={"no_rw_check": 1})
    wr, rd = qbuf.write_port(), qbuf.read_port(domain="sync")
    q, k = sasa.i.payload[:D], sasa.i.payload[D:]

    # Replay: the read port's data register is the output register.
    pending, active = Signal(), Signal()  # an image waits for replay / is being replayed
    rptr = Signal(range(NT))
    raddr = Signal(range(NT))
    advance, issue = Signal(), Signal()
    g = [Signal(D, name=f"g{t}", reset_less=True) for t in range(T)]
    g_next = [Signal(D, name=f"g_next{t}", reset_less=True) for t in range(T)]
    m.d.comb += [
        advance.eq(~sasa.o.valid | sasa.o.ready),
        issue.eq(advance & (active | pending)),
        raddr.eq(Mux(active, rptr, 0)),
        rd.addr.eq(raddr), rd.en.eq(advance),
        sasa.o.payload.eq(rd.data & g[0]),
    ]
    with m.If(advance):
        m.d.sync += sasa.o.valid.eq(issue)
    with m.If(issue):
        with m.If(raddr == NT - 1):
            m.d.sync += [active.eq(0), rptr.eq(0)]
        with m.Else():
            m.d.sync += [active.eq(1), rptr.eq(raddr + 1)]
    with m.If(issue & ~active):  # a replay starts: its gates become current
        m.d.sync += [pending.eq(0)] + [a.eq(b) for a, b in zip(g, g_next, strict=True)]
    with m.Elif(sasa.o.valid & sasa.o.ready):
        m.d.sync += [a.eq(b) for a, b in zip(g, g[1:] + g[:1], strict=True)]

    # Intake: beat k may overwrite address k once the replay has read it (in an earlier
    # cycle, so a word is never read and written at once).
    win = Signal(range(NT))
    t_in, n_in = Signal(range(T)), Signal(range(N))
    fire = Signal()
    m.d.comb += [
        sasa.i.ready.eq((~pending & ~active) | (active & (rptr != win))),
        fire.eq(sasa.i.valid & sasa.i.ready),
        wr.addr.eq(win), wr.data.eq(q), wr.en.eq(fire),
    ]
    last_token = n_in == N - 1
    cw = 1 if sasa.saturate else bits_for(N + 1)
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
        m.d.comb += total[c].eq(head | both[c] if sasa.saturate else head + both[c])
        spikes.append(sasa.neuron(m, total[c], N, sasa.vth[c], t_in == 0,
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


def token_resources(sasa, states: int) -> Resources:
    """Token mode's LUTs, flip-flops and Q memory (SASA.resources states the calibration)."""
    D, T, N = sasa.dim, sasa.time_steps, sasa.tokens
    NT = N * T
    cw = 1 if sasa.saturate else bits_for(N + 1)
    control = 3 * bits_for(NT) + bits_for(N) + bits_for(T) + 10
    # Per channel: the count increment (an OR when saturated), the LIF adder and
    # threshold, its membrane update, the g copy/rotate mux per step, the output AND.
    per_channel = 1 if sasa.saturate else (
        cw + 2 + sum(sasa.lif_luts(v, N) for v in sasa.vth) / D)
    lut = round(D * (per_channel + T + 1)) + control
    ff = (T * D * cw + 2 * T * D + states + 2 * bits_for(NT) + bits_for(T) + bits_for(N)
          + 3)
    return Resources(lut=lut, ff=ff, memories=((NT, D),))


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
