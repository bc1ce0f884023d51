"""The line buffer and step scheduler shared by the 3x3 window blocks (spike conv, DWC, pixel conv).

Keeps the last rows of a token stream in one memory, decides when an output
token's whole window has arrived and when an input beat may overwrite a slot,
and walks the window's taps one memory read per step (`window.WindowModel` is
its cycle-exact mirror, `window.WindowGeometry` its closed-form timing).
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.hdl import unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl_templates.common import check_int, tree_sum
from rtl_templates.window import TAPS, WindowGeometry


def window_members(word_width: int, groups: int, slices: int, stages: int) -> dict:
    """The ports of a line buffer (dense or event-driven) as its window block sees them."""
    rows = TAPS * groups * slices
    final = {"f_valid": Out(1), "f_first": Out(1)} if stages > 1 else {}
    return {**final,
            "i": In(stream.Signature(unsigned(word_width))),
            "o_ready": In(1), "o_valid": Out(1),
            "advance": Out(1), "w_row": Out(range(rows)),
            "valid": Out(1), "first": Out(1), "last": Out(1), "tap_valid": Out(1),
            "word": Out(word_width), "sel_s": Out(range(slices)), "sel_g": Out(range(groups))}


class LineBuffer(wiring.Component):
    """Window storage and step scheduler of a 3x3 (padding 1, stride 1) block.

    Parameters: ``height``, ``width`` (grid), ``word_width`` (bits of one input
    beat), ``time_steps`` (input beats per token, read back as steps ``t``),
    ``groups`` (output groups per token), ``slices`` (steps per tap), ``stages``
    (register stages from a step's issue to the block's accumulator; 1: stage B feeds
    it directly, more: the block registers the reads and its datapath in between).

    Ports: sink ``i`` (the block's input stream: token-major, ``time_steps``
    beats per token, images back to back); ``o_ready`` in and ``o_valid`` out
    (the block's output handshake; the block's accumulator is the output
    register). Step interface, in the cycle after a step was issued ("stage B"):
    ``valid``, ``first``/``last`` (first and last step of an output beat),
    ``word`` (the tap's input word, from the memory's read register),
    ``tap_valid`` (0 when the tap falls outside the grid: the block masks the
    word), ``sel_s`` (slice of this step), ``sel_g`` (group of this step). In the
    issue cycle: ``w_row`` (weight row of this step, ``(g*9 + k)*slices + s``) and
    ``advance`` (enable of the block's weight read port, pipeline registers and
    accumulator). With ``stages > 1`` also ``f_valid``/``f_first``: ``valid`` and
    ``first`` of the step in the final stage (the one the accumulator takes).

    Schedule: per output token, for g: for t: for k in 0..8: for s: one step.
    Output token (y, x) starts when the ``ahead(y, x) + 1`` tokens from it on
    have fully arrived; an input beat is accepted while its token's slot is not
    read by the current or any later window (``slots``: 2*width + 4 tokens rounded
    up to a power of two).

    Memory: ``slots * time_steps`` x ``word_width``, one write port and one
    synchronous read port (block RAM); token q's step t at row
    ``(q mod slots)*time_steps + t``.

    Latency: a step's word and weight reach stage B one cycle after issue; a
    beat's result is offered ``stages + 1`` cycles after its last step. Backpressure:
    ``i.ready`` depends only on state; the pipeline stalls (``advance`` low) only
    when a beat's first step is in the final stage while the previous result is still
    offered and not taken (``advance`` depends on ``o_ready`` in the same cycle).
    """

    def __init__(self, *, height: int, width: int, word_width: int, time_steps: int,
                 groups: int, slices: int, stages: int = 1):
        self.geometry = WindowGeometry(
            check_int("height", height), check_int("width", width),
            check_int("time_steps", time_steps), check_int("groups", groups),
            check_int("slices", slices), check_int("stages", stages))
        self.word_width = check_int("word_width", word_width)
        super().__init__(window_members(word_width, groups, slices, stages))

    def elaborate(self, platform):
        m = Module()
        geo = self.geometry
        H, W, T, G, S, P = geo.height, geo.width, geo.time_steps, geo.groups, geo.slices, geo.slots
        # no_rw_check: a slot written in a cycle is in no live window, so a read of the same
        # row in that cycle is never used; Yosys then adds no read-during-write bypass.
        m.submodules.mem = mem = Memory(shape=unsigned(self.word_width), depth=geo.depth, init=[],
                                        attrs={"ram_style": "block", "no_rw_check": 1})
        wr = mem.write_port()
        rd = mem.read_port(domain="sync")

        def row(slot, t):
            # slot * T + t: a concatenation when T is a power of two, else shifts and adds
            # (a `*` would cost a DSP block on ECP5).
            if T & (T - 1) == 0:
                return slot if T == 1 else Cat(t[:(T - 1).bit_length()], slot)
            return tree_sum([slot << i for i in range(T.bit_length()) if T >> i & 1]) + t

        # -- input: beats in arrival order; a token counts once all T beats are in.
        lead = Signal(range(P + 1))  # tokens fully received from the current output token on
        w_slot, in_t = Signal(range(P)), Signal(range(T))
        oy, ox = Signal(range(H)), Signal(range(W))
        # A pipelined block (ECP5) keeps `behind` and `ahead` in registers, set when the
        # output position moves, so the position's compares are not in front of the start
        # test and the `lead` counter (a path of the 84.6 MHz cifar-mid build); same cycles.
        registered = geo.stages > 1
        first_ahead = (W if H > 1 else 0) + (W > 1) if registered else 0  # ahead(0, 0)
        behind, ahead = Signal(range(W + 2)), Signal(range(W + 2), init=first_ahead)

        def bounds(y, x):  # tokens of the current window behind and ahead of output (y, x)
            return (Mux(y != 0, W + (x != 0), x if H > 1 else (x != 0)),
                    Mux(y != H - 1, W, 0) + (x != W - 1))

        token_in = Signal()
        m.d.comb += [] if registered else [
            sig.eq(value) for sig, value in zip((behind, ahead), bounds(oy, ox), strict=True)]
        m.d.comb += [
            self.i.ready.eq(lead + behind < P),
            wr.addr.eq(row(w_slot, in_t)), wr.data.eq(self.i.payload),
            wr.en.eq(self.i.valid & self.i.ready),
            token_in.eq(wr.en & (in_t == T - 1)),
        ]
        with m.If(token_in):
            m.d.sync += w_slot.eq(w_slot + 1)
        if T > 1:
            with m.If(wr.en):
                m.d.sync += in_t.eq(Mux(in_t == T - 1, 0, in_t + 1))

        # -- issue (stage A): step counters and the tap's row.
        g, t = Signal(range(G)), Signal(range(T))
        k, s = Signal(range(TAPS)), Signal(range(S))
        busy = Signal()  # inside a token (its first step issued, its last not yet)
        c_slot = Signal(range(P))  # slot of the current output token
        w_row = self.w_row
        stall, issue = Signal(), Signal()
        # The final stage's tags (stage B's own when stages = 1); stages 2.. are shifted in below.
        final = [self.valid, self.first, self.last]
        if geo.stages > 1:
            pipe = [[Signal(name=f"{n}_p{i}") for n in ("valid", "first", "last")]
                    for i in range(2, geo.stages + 1)]
            final = pipe[-1]
            m.d.comb += [self.f_valid.eq(final[0]), self.f_first.eq(final[1])]
        beat_end, token_end = Signal(), Signal()
        m.d.comb += [
            stall.eq(final[0] & final[1] & self.o_valid & ~self.o_ready),
            self.advance.eq(~stall),
            issue.eq(self.advance & (busy | (lead > ahead))),
            beat_end.eq((k == TAPS - 1) & (s == S - 1)),
            token_end.eq(beat_end & (t == T - 1) & (g == G - 1)),
        ]
        m.d.sync += lead.eq(lead + token_in - (issue & token_end))

        offset, in_grid = Signal(range(P)), Signal()
        ky_ok = [oy != 0, 1, oy != H - 1]
        kx_ok = [ox != 0, 1, ox != W - 1]
        with m.Switch(k):
            for kk in range(TAPS):
                with m.Case(kk):
                    m.d.comb += [offset.eq(geo.tap_offset(kk) % P),
                                 in_grid.eq(ky_ok[kk // 3] & kx_ok[kk % 3])]
        tap_slot = Signal(range(P))
        m.d.comb += [tap_slot.eq(c_slot + offset),  # wraps modulo P
                     rd.addr.eq(row(tap_slot, t)), rd.en.eq(self.advance)]

        with m.If(issue):
            m.d.sync += [s.eq(Mux(s == S - 1, 0, s + 1)), busy.eq(~token_end)]
            with m.If(s == S - 1):
                m.d.sync += k.eq(Mux(k == TAPS - 1, 0, k + 1))
            # Weight rows g*9S .. g*9S + 9S - 1, again for every t of group g.
            with m.If(beat_end & (t != T - 1)):
                m.d.sync += [t.eq(t + 1), w_row.eq(w_row - (TAPS * S - 1))]
            with m.Elif(beat_end):
                m.d.sync += [t.eq(0), g.eq(Mux(g == G - 1, 0, g + 1)),
                             w_row.eq(Mux(g == G - 1, 0, w_row + 1))]
            with m.Else():
                m.d.sync += w_row.eq(w_row + 1)
            with m.If(token_end):
                m.d.sync += c_slot.eq(c_slot + 1)
                with m.If(ox == W - 1):
                    m.d.sync += [ox.eq(0), oy.eq(Mux(oy == H - 1, 0, oy + 1))]
                with m.Else():
                    m.d.sync += ox.eq(ox + 1)
                if registered:
                    nx = Mux(ox == W - 1, 0, ox + 1)
                    ny = Mux(ox == W - 1, Mux(oy == H - 1, 0, oy + 1), oy)
                    m.d.sync += [sig.eq(value) for sig, value
                                 in zip((behind, ahead), bounds(ny, nx), strict=True)]

        # -- stage B: the read word and this step's controls.
        m.d.comb += self.word.eq(rd.data)
        with m.If(self.advance):
            m.d.sync += [self.valid.eq(issue), self.first.eq((k == 0) & (s == 0)),
                         self.last.eq(beat_end), self.tap_valid.eq(in_grid),
                         self.sel_s.eq(s), self.sel_g.eq(g)]
        # A result is complete after its last step; the first step of the next beat
        # waits in the final stage until the result has been taken (see `stall`).
        if geo.stages > 1:
            with m.If(self.advance):
                for prev, regs in zip([[self.valid, self.first, self.last], *pipe[:-1]], pipe,
                                      strict=True):
                    m.d.sync += [r.eq(v) for r, v in zip(regs, prev, strict=True)]
        with m.If(self.advance & final[0] & final[2]):
            m.d.sync += self.o_valid.eq(1)
        with m.Elif(self.o_ready):
            m.d.sync += self.o_valid.eq(0)
        return m

