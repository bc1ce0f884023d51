"""Event-driven window scheduling for the spike 3x3 blocks (spike conv, DWC): visit only the set taps.

`EventLineBuffer` has `line_buffer.LineBuffer`'s memory, input side and step interface, but
its scheduler keeps a nonzero flag per stored word *unit* (a slice of ``simd`` channels for
the spike conv, a group of ``lanes`` channels for the DWC) and, per output beat, steps only
through the in-grid taps whose unit holds a spike, lowest first (the priority encoder of
`spike_linear`). `EventWindowModel` is its cycle-exact mirror (it reads the input words);
`window_ops` counts a beat's steps from spike arrays, for closed-form cycles.
"""

from __future__ import annotations

import numpy as np
from amaranth import Array, Cat, Module, Mux, Signal
from amaranth.hdl import unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from rtl_templates.common import check_int, tree_sum
from rtl_templates.line_buffer import window_members
from rtl_templates.spike_linear import _lowest_set_bit
from rtl_templates.window import TAPS, WindowGeometry, WindowModel


def _pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


class EventLineBuffer(wiring.Component):
    """LineBuffer (same parameters, ports and memory layout) that skips empty taps.

    ``by_group``: False (spike conv): a unit is one of the ``slices`` slices of the word,
    and beat (g, t) steps through the (tap, slice) pairs whose slice has a spike; True
    (DWC, ``slices = 1``): a unit is one of the ``groups`` groups of the word, and beat
    (g, t) steps through the taps whose group g has a spike. Taps outside the grid are
    never visited. A beat with nothing to visit takes one step with ``tap_valid`` low
    (it emits the bias). So a beat costs ``max(1, visits)`` steps (`window_ops`).

    Flags: one register of ``units`` bits per memory row (``slots * time_steps`` rows),
    written with the word. Per beat the scheduler reads the 9 taps' flags (a multiplexer
    over the rows each), masks them with the grid, and a priority encoder walks the set
    bits (``pending`` holds the rest). Timing: the encoder's step is registered ("stage
    A") before the address adders and the memories, so a step reaches stage B two cycles
    after it was chosen: ``stages`` counts from stage B as in LineBuffer, and a beat's
    result is offered ``stages + 2`` cycles after its last step was chosen.
    Backpressure: as LineBuffer (``advance`` also holds stage A and the encoder), except
    that ``i.ready`` is also low while stage A holds a token's last visit (that visit may
    read the slot the token has just released).
    """

    def __init__(self, *, height: int, width: int, word_width: int, time_steps: int,
                 groups: int, slices: int, stages: int = 1, by_group: bool = False):
        self.geometry = WindowGeometry(
            check_int("height", height), check_int("width", width),
            check_int("time_steps", time_steps), check_int("groups", groups),
            check_int("slices", slices), check_int("stages", stages))
        self.word_width = check_int("word_width", word_width)
        if by_group and slices != 1:
            raise ValueError(f"slices must be 1 with by_group, not {slices!r}")
        self.by_group = by_group
        self.units = groups if by_group else slices
        if word_width % self.units:
            raise ValueError(f"word_width ({word_width}) must be a multiple of {self.units}")
        super().__init__(window_members(word_width, groups, slices, stages))

    def elaborate(self, platform):
        m = Module()
        geo = self.geometry
        H, W, T, G, S, P = geo.height, geo.width, geo.time_steps, geo.groups, geo.slices, geo.slots
        U, uw = self.units, self.word_width // self.units
        m.submodules.mem = mem = Memory(shape=unsigned(self.word_width), depth=geo.depth, init=[],
                                        attrs={"ram_style": "block", "no_rw_check": 1})
        wr = mem.write_port()
        rd = mem.read_port(domain="sync")

        def row(slot, t):  # slot * T + t without a multiplier (as LineBuffer)
            if T & (T - 1) == 0:
                return slot if T == 1 else Cat(t[:(T - 1).bit_length()], slot)
            return tree_sum([slot << i for i in range(T.bit_length()) if T >> i & 1]) + t

        # -- input: as LineBuffer, plus each row's unit flags.
        lead = Signal(range(P + 1))
        w_slot, in_t = Signal(range(P)), Signal(range(T))
        oy, ox = Signal(range(H)), Signal(range(W))
        behind, ahead = Signal(range(W + 2)), Signal(range(W + 2))
        token_in = Signal()
        # A token's last visit reads its row in stage A, a cycle after the token released
        # its oldest slot: no input is written while stage A holds such a visit.
        reading_last = Signal()
        m.d.comb += [
            behind.eq(Mux(oy != 0, W + (ox != 0), ox if H > 1 else (ox != 0))),
            ahead.eq(Mux(oy != H - 1, W, 0) + (ox != W - 1)),
            self.i.ready.eq((lead + behind < P) & ~reading_last),
            wr.addr.eq(row(w_slot, in_t)), wr.data.eq(self.i.payload),
            wr.en.eq(self.i.valid & self.i.ready),
            token_in.eq(wr.en & (in_t == T - 1)),
        ]
        with m.If(token_in):
            m.d.sync += w_slot.eq(w_slot + 1)
        if T > 1:
            with m.If(wr.en):
                m.d.sync += in_t.eq(Mux(in_t == T - 1, 0, in_t + 1))
        flags = Array(Signal(U, name=f"nz{r}") for r in range(geo.depth))
        with m.If(wr.en):
            m.d.sync += flags[wr.addr].eq(
                Cat(*[self.i.payload[u * uw:(u + 1) * uw].any() for u in range(U)]))

        # -- choose (the encoder): the beat's visits, lowest first.
        g, t = Signal(range(G)), Signal(range(T))
        gbase = Signal(range(G * TAPS * S))  # g * 9S: the group's first weight row
        busy, fresh = Signal(), Signal(init=1)
        c_slot = Signal(range(P))
        per_tap = 1 if self.by_group else _pow2(S)
        pending = Signal(TAPS * per_tap)
        mask, cur = Signal(TAPS * per_tap), Signal(TAPS * per_tap)
        ky_ok = [oy != 0, 1, oy != H - 1]
        kx_ok = [ox != 0, 1, ox != W - 1]
        # Pick step t (and for the DWC group g) of every slot once, then each tap's slot:
        # the 9 taps share those multiplexers.
        per_slot = []
        for sl in range(P):
            unit = Array(flags[sl * T + tt] for tt in range(T))[t] if T > 1 else flags[sl]
            per_slot.append(unit.bit_select(g, 1) if self.by_group and G > 1 else unit)
        per_slot = Array(per_slot)
        for k in range(TAPS):
            bits = per_slot[(c_slot + geo.tap_offset(k) % P)[:len(c_slot)]]
            in_grid = ky_ok[k // 3] & kx_ok[k % 3]
            m.d.comb += mask[k * per_tap:k * per_tap + len(bits)].eq(
                Mux(in_grid, bits, 0))
        m.d.comb += cur.eq(Mux(fresh, mask, pending))
        rest, idx, beat_end = _lowest_set_bit(m, cur)
        stall, go, token_end = Signal(), Signal(), Signal()
        final = [self.valid, self.first, self.last]
        if geo.stages > 1:
            pipe = [[Signal(name=f"{n}_p{i}") for n in ("valid", "first", "last")]
                    for i in range(2, geo.stages + 1)]
            final = pipe[-1]
            m.d.comb += [self.f_valid.eq(final[0]), self.f_first.eq(final[1])]
        m.d.comb += [
            stall.eq(final[0] & final[1] & self.o_valid & ~self.o_ready),
            self.advance.eq(~stall),
            go.eq(self.advance & (busy | (lead > ahead))),
            token_end.eq(beat_end & (t == T - 1) & (g == G - 1)),
        ]
        m.d.sync += lead.eq(lead + token_in - (go & token_end))
        with m.If(go):
            m.d.sync += [pending.eq(rest), fresh.eq(beat_end), busy.eq(~token_end)]
            with m.If(beat_end & (t != T - 1)):
                m.d.sync += t.eq(t + 1)
            with m.Elif(beat_end):
                m.d.sync += [t.eq(0), g.eq(Mux(g == G - 1, 0, g + 1)),
                             gbase.eq(Mux(g == G - 1, 0, gbase + TAPS * S))]
            with m.If(token_end):
                m.d.sync += c_slot.eq(c_slot + 1)
                with m.If(ox == W - 1):
                    m.d.sync += [ox.eq(0), oy.eq(Mux(oy == H - 1, 0, oy + 1))]
                with m.Else():
                    m.d.sync += ox.eq(ox + 1)

        # -- stage A: the chosen visit, registered; its rows.
        shift = (per_tap - 1).bit_length()
        a = {"valid": Signal(name="valid_a"), "first": Signal(name="first_a"),
             "last": Signal(name="last_a"), "tap": Signal(name="tap_a"),
             "k": Signal(range(TAPS), name="k_a"), "s": Signal(range(S), name="s_a"),
             "g": Signal(range(G), name="g_a"), "t": Signal(range(T), name="t_a"),
             "slot": Signal(range(P), name="slot_a"), "gbase": Signal.like(gbase, name="gbase_a"),
             "end": Signal(name="end_a")}
        m.d.comb += reading_last.eq(a["valid"] & a["end"])
        with m.If(self.advance):
            m.d.sync += [a["valid"].eq(go), a["first"].eq(fresh), a["last"].eq(beat_end),
                         a["end"].eq(token_end),
                         a["tap"].eq(cur.any()), a["k"].eq(idx[shift:]), a["g"].eq(g),
                         a["t"].eq(t), a["slot"].eq(c_slot), a["gbase"].eq(gbase)]
            if S > 1:
                m.d.sync += a["s"].eq(idx[:shift])
        offset, k_rows = Signal(range(P)), Signal(range(TAPS * S))
        with m.Switch(a["k"]):
            for kk in range(TAPS):
                with m.Case(kk):
                    m.d.comb += [offset.eq(geo.tap_offset(kk) % P), k_rows.eq(kk * S)]
        tap_slot = Signal(range(P))
        m.d.comb += [tap_slot.eq(a["slot"] + offset),
                     rd.addr.eq(row(tap_slot, a["t"])), rd.en.eq(self.advance),
                     self.w_row.eq(a["gbase"] + k_rows + a["s"])]

        # -- stage B and the final stage: as LineBuffer.
        m.d.comb += self.word.eq(rd.data)
        with m.If(self.advance):
            m.d.sync += [self.valid.eq(a["valid"]), self.first.eq(a["first"]),
                         self.last.eq(a["last"]), self.tap_valid.eq(a["tap"]),
                         self.sel_s.eq(a["s"]), self.sel_g.eq(a["g"])]
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


def unit_flags(word: int, units: int, unit_width: int) -> list[bool]:
    """Which units of an input word hold a spike."""
    mask = (1 << unit_width) - 1
    return [bool(word >> (u * unit_width) & mask) for u in range(units)]


class EventWindowModel(WindowModel):
    """Control mirror of an EventLineBuffer-based block: WindowModel's state plus the stored
    words' unit flags (read from the input stream's words as they are offered) and the
    steps of the current beat; the pipeline has stage A in front of stage B."""

    def __init__(self, geometry: WindowGeometry, *, units: int, unit_width: int,
                 by_group: bool):
        super().__init__(geometry)
        self.units, self.unit_width, self.by_group = units, unit_width, by_group
        self.pipe = [None] * (geometry.stages + 1)
        self.flags: dict[tuple[int, int], list[bool]] = {}
        self.w_slot = self.c_slot = 0
        self.g = self.t = self.op = 0
        self.beat_ops = 1
        self._offered: list[bool] = []

    def ready(self, port):
        a = self.pipe[0]
        ready = super().ready(port) and not (a is not None and a[2])
        if ready and self.in_valid("i"):
            self._offered = unit_flags(self.in_word("i"), self.units, self.unit_width)
        return ready

    def _visits(self) -> int:
        geo, n = self.geo, 0
        for k in range(TAPS):
            ky, kx = divmod(k, 3)
            y, x = self.oy + ky - 1, self.ox + kx - 1
            if not (0 <= y < geo.height and 0 <= x < geo.width):
                continue
            unit = self.flags[((self.c_slot + geo.tap_offset(k)) % geo.slots, self.t)]
            n += unit[self.g] if self.by_group else sum(unit)
        return max(1, n)

    def tick(self, fired):
        geo = self.geo
        stalled = self._stalled() and not fired["o"]
        issue = self._can_issue(stalled)
        final = self.pipe[-1]
        if not stalled and final is not None and final[1]:
            self.o_valid = True
        elif fired["o"]:
            self.o_valid = False
        token_end = False
        item = None
        if issue:
            if self.op == 0:
                self.beat_ops = self._visits()
            first, last = self.op == 0, self.op == self.beat_ops - 1
            self.op += 1
            self.step = 1  # inside a token (busy)
            if self.op == self.beat_ops:
                self.op = 0
                if self.t != geo.time_steps - 1:
                    self.t += 1
                else:
                    self.t, self.g = 0, (self.g + 1) % geo.groups
                    if self.g == 0:
                        token_end, self.step = True, 0
                        self.c_slot = (self.c_slot + 1) % geo.slots
                        if self.ox == geo.width - 1:
                            self.ox, self.oy = 0, (self.oy + 1) % geo.height
                        else:
                            self.ox += 1
        if issue:
            item = (first, last, token_end)  # (first, last, the token's last visit)
        if not stalled:
            self.pipe = [item] + self.pipe[:-1]
        if fired["i"]:
            self.flags[(self.w_slot, self.in_t)] = self._offered
            self.in_t += 1
            if self.in_t == geo.time_steps:
                self.in_t = 0
                self.lead += 1
                self.w_slot = (self.w_slot + 1) % geo.slots
        if token_end:
            self.lead -= 1

    def quiet(self):
        if self._stalled():
            return 1 << 30
        if not self._can_issue(False) and all(p is None for p in self.pipe):
            return 1 << 30
        return 1

    def skip(self, cycles):
        self.tick(self._nothing)  # only frozen stretches are skipped (see quiet)


def window_ops(spikes, geometry: WindowGeometry, *, unit_width: int, by_group: bool) -> np.ndarray:
    """Steps of every output beat of an event-driven window block: `spikes` [images, T, C,
    H, W] of 0/1 -> int array [images, H*W, groups, T] (the stream's beat order), each
    ``max(1, visits)`` (EventLineBuffer)."""
    s = np.asarray(spikes).astype(bool)
    if s.ndim != 5:
        raise ValueError(f"spikes must be [images, T, C, H, W], not shape {list(s.shape)}")
    n, T, C, H, W = s.shape
    geo = geometry
    if (geo.time_steps, geo.height, geo.width) != (T, H, W) or C % unit_width:
        raise ValueError(f"spikes of shape {list(s.shape)} do not match the block")
    units = s.reshape(n, T, C // unit_width, unit_width, H, W).any(axis=3)  # [n, T, U, H, W]
    padded = np.zeros((n, T, units.shape[2], H + 2, W + 2), dtype=np.int64)
    padded[:, :, :, 1:H + 1, 1:W + 1] = units
    # visits[n, T, U, y, x]: the window's set units, per unit
    visits = sum(padded[:, :, :, ky:ky + H, kx:kx + W] for ky in range(3) for kx in range(3))
    if by_group:  # [n, T, G, H, W]: unit g serves group g
        per_beat = visits
    else:  # every group visits all slices
        per_beat = np.repeat(visits.sum(axis=2, keepdims=True), geo.groups, axis=2)
    ops = np.maximum(per_beat, 1)
    return ops.transpose(0, 3, 4, 2, 1).reshape(n, H * W, geo.groups, T)
