"""The line buffer and step scheduler shared by the 3x3 window blocks (spike conv, DWC, pixel conv).

Keeps the last rows of a token stream in one memory, decides when an output
token's whole window has arrived and when an input beat may overwrite a slot,
and walks the window's taps one memory read per step; `WindowModel` is its
cycle-exact mirror and `WindowGeometry` its closed-form timing.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from amaranth import Cat, Module, Mux, Signal
from amaranth.hdl import signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl_templates.common import (
    _BRAM_SHAPES,
    Resources,
    check_choice,
    check_int,
    values_signature,
)
from rtl_templates.timing import BlockModel

TAPS = 9  # tap k = 3*ky + kx reads input (y + ky - 1, x + kx - 1), zero outside the grid
# Where the weights go (Yosys' ram_style): block RAM, or LUTs and flip-flops (small ROMs).
WEIGHT_STYLES = ("block", "logic")


@dataclass(frozen=True)
class WindowGeometry:
    """Shape of a window block's work: an H x W grid, ``time_steps`` words per token
    (and per output group), ``groups`` output groups per token, ``slices`` steps per tap.

    One *step* (one cycle of the engine) reads one word of one tap and feeds one
    slice of it to the datapath. A *beat* is ``9 * slices`` steps; a token is
    ``groups * time_steps`` beats.
    """

    height: int
    width: int
    time_steps: int
    groups: int
    slices: int

    @property
    def tokens(self) -> int:
        return self.height * self.width

    @property
    def slots(self) -> int:
        """Tokens the buffer holds: a window spans 2W+3 tokens, one more lets the next
        token arrive while the current one is computed; rounded up to a power of two,
        so slot numbers wrap for free."""
        return 1 << (2 * self.width + 3).bit_length()

    @property
    def depth(self) -> int:
        return self.slots * self.time_steps

    def address(self, slot: int, t: int) -> int:
        """Memory row of step t of the token in `slot`."""
        return slot * self.time_steps + t

    @property
    def steps_per_beat(self) -> int:
        return TAPS * self.slices

    @property
    def steps_per_token(self) -> int:
        return self.steps_per_beat * self.groups * self.time_steps

    def ahead(self, y: int, x: int) -> int:
        """How many tokens after (y, x) its window reads (the newest is (y+1, x+1), clipped)."""
        return (self.width if y < self.height - 1 else 0) + (1 if x < self.width - 1 else 0)

    def behind(self, y: int, x: int) -> int:
        """How many tokens before (y, x) must stay: the oldest its window or a later window
        of the image reads. That is (y-1, x-1), clipped, except in row 0, all of which
        row 1's windows still read."""
        if y == 0 and self.height > 1:
            return x
        return (self.width if y > 0 else 0) + (1 if x > 0 else 0)

    def tap_offset(self, k: int) -> int:
        """Token distance from the centre to tap k (meaningful only when the tap is in the grid)."""
        ky, kx = divmod(k, 3)
        return (ky - 1) * self.width + (kx - 1)

    @property
    def startup_cycles(self) -> int:
        """Cycle of the engine's first step minus one: the first window's inputs arriving."""
        return self.time_steps * (self.ahead(0, 0) + 1)

    def cycles(self, images: int = 1) -> int:
        """Cycle in which the last output beat of `images` back-to-back images fires,
        the input always valid and the output always ready (docs/hardware.md numbering).

        The input always runs ahead of the engine (a token takes ``time_steps``
        cycles in, ``steps_per_token`` >= 9 * ``time_steps`` to compute), so after
        the start-up the engine steps every cycle, across image boundaries too;
        the last result leaves two cycles after the last step (read, accumulate).
        """
        check_int("images", images)
        return self.startup_cycles + images * self.tokens * self.steps_per_token + 2

    def first_output_cycle(self) -> int:
        return self.startup_cycles + self.steps_per_beat + 2


class LineBuffer(wiring.Component):
    """Window storage and step scheduler of a 3x3 (padding 1, stride 1) block.

    Parameters: ``height``, ``width`` (grid), ``word_width`` (bits of one input
    beat), ``time_steps`` (input beats per token, read back as steps ``t``),
    ``groups`` (output groups per token), ``slices`` (steps per tap).

    Ports: sink ``i`` (the block's input stream: token-major, ``time_steps``
    beats per token, images back to back); ``o_ready`` in and ``o_valid`` out
    (the block's output handshake; the block's accumulator is the output
    register). Step interface, in the cycle after a step was issued ("stage B"):
    ``valid``, ``first``/``last`` (first and last step of an output beat),
    ``word`` (the tap's input word, from the memory's read register),
    ``tap_valid`` (0 when the tap falls outside the grid: the block masks the
    word), ``sel_s`` (slice of this step), ``sel_g`` (group of this step). In the
    issue cycle: ``w_row`` (weight row of this step, ``(g*9 + k)*slices + s``) and
    ``advance`` (enable of the block's weight read port and accumulator).

    Schedule: per output token, for g: for t: for k in 0..8: for s: one step.
    Output token (y, x) starts when the ``ahead(y, x) + 1`` tokens from it on
    have fully arrived; an input beat is accepted while its token's slot is not
    read by the current or any later window (``slots``: 2*width + 4 tokens rounded
    up to a power of two).

    Memory: ``slots * time_steps`` x ``word_width``, one write port and one
    synchronous read port (block RAM); token q's step t at row
    ``(q mod slots)*time_steps + t``.

    Latency: a step's word and weight reach stage B one cycle after issue; a
    beat's result is offered two cycles after its last step. Backpressure:
    ``i.ready`` depends only on state; the pipeline stalls (``advance`` low) only
    when a beat's first step is in stage B while the previous result is still
    offered and not taken (``advance`` depends on ``o_ready`` in the same cycle).
    """

    def __init__(self, *, height: int, width: int, word_width: int, time_steps: int,
                 groups: int, slices: int):
        self.geometry = WindowGeometry(
            check_int("height", height), check_int("width", width),
            check_int("time_steps", time_steps), check_int("groups", groups),
            check_int("slices", slices))
        self.word_width = check_int("word_width", word_width)
        rows = TAPS * groups * slices
        super().__init__({
            "i": In(stream.Signature(unsigned(word_width))),
            "o_ready": In(1), "o_valid": Out(1),
            "advance": Out(1), "w_row": Out(range(rows)),
            "valid": Out(1), "first": Out(1), "last": Out(1), "tap_valid": Out(1),
            "word": Out(word_width), "sel_s": Out(range(slices)), "sel_g": Out(range(groups)),
        })

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
        behind, ahead = Signal(range(W + 2)), Signal(range(W + 2))
        token_in = Signal()
        m.d.comb += [
            behind.eq(Mux(oy != 0, W + (ox != 0), ox if H > 1 else (ox != 0))),
            ahead.eq(Mux(oy != H - 1, W, 0) + (ox != W - 1)),
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
        beat_end, token_end = Signal(), Signal()
        m.d.comb += [
            stall.eq(self.valid & self.first & self.o_valid & ~self.o_ready),
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

        # -- stage B: the read word and this step's controls.
        m.d.comb += self.word.eq(rd.data)
        with m.If(self.advance):
            m.d.sync += [self.valid.eq(issue), self.first.eq((k == 0) & (s == 0)),
                         self.last.eq(beat_end), self.tap_valid.eq(in_grid),
                         self.sel_s.eq(s), self.sel_g.eq(g)]
        # A result is complete after its last step; the first step of the next beat
        # waits in stage B until the result has been taken (see `stall`).
        with m.If(self.advance & self.valid & self.last):
            m.d.sync += self.o_valid.eq(1)
        with m.Elif(self.o_ready):
            m.d.sync += self.o_valid.eq(0)
        return m


class WindowModel(BlockModel):
    """Control mirror of a LineBuffer-based block (one input ``i``, one output ``o``)."""

    def __init__(self, geometry: WindowGeometry):
        self.geo = geometry
        self.lead = 0
        self.in_t = 0
        self.oy = self.ox = 0
        self.step = 0  # next step of the current token, 0 .. steps_per_token - 1
        self.b_valid = self.b_first = self.b_last = False
        self.o_valid = False

    def _can_issue(self, stalled: bool) -> bool:
        return not stalled and (self.step != 0 or self.lead > self.geo.ahead(self.oy, self.ox))

    def valid(self, port):
        return self.o_valid

    def ready(self, port):
        return self.lead + self.geo.behind(self.oy, self.ox) < self.geo.slots

    def tick(self, fired):
        geo = self.geo
        stalled = self.b_valid and self.b_first and self.o_valid and not fired["o"]
        issue = self._can_issue(stalled)
        if not stalled and self.b_valid and self.b_last:
            self.o_valid = True
        elif fired["o"]:
            self.o_valid = False
        token_end = False
        if not stalled:
            in_beat = self.step % geo.steps_per_beat
            self.b_valid = issue
            self.b_first = in_beat == 0
            self.b_last = in_beat == geo.steps_per_beat - 1
        if issue:
            self.step += 1
            if self.step == geo.steps_per_token:
                self.step, token_end = 0, True
                if self.ox == geo.width - 1:
                    self.ox, self.oy = 0, (self.oy + 1) % geo.height
                else:
                    self.ox += 1
        if fired["i"]:
            self.in_t += 1
            if self.in_t == geo.time_steps:
                self.in_t = 0
                self.lead += 1
        if token_end:
            self.lead -= 1

    def quiet(self):
        stalled = self.b_valid and self.b_first and self.o_valid
        if stalled:
            return 1 << 30  # frozen until the result is taken
        if not self._can_issue(False):
            # Waiting for input: frozen once stage B has drained.
            return 1 if self.b_valid else 1 << 30
        if self.o_valid or (self.b_valid and self.b_last):
            return 1
        # Stepping inside a beat: nothing visible changes before its last step issues.
        return max(1, self.geo.steps_per_beat - 1 - self.step % self.geo.steps_per_beat)

    def skip(self, cycles):
        frozen = (self.b_valid and self.b_first and self.o_valid) or not self._can_issue(False)
        if frozen or cycles == 1:
            self.tick(self._nothing)  # a frozen state is a fixed point after one tick
            return
        self.step += cycles  # never reaches a beat's last step (see quiet)
        self.b_valid, self.b_last = True, False
        self.b_first = (self.step - 1) % self.geo.steps_per_beat == 0


def raster_tokens(grid) -> np.ndarray:
    """Software twin of the stream order: [images, steps, C, H, W] -> [images*H*W, steps, C]
    (tokens in raster order, images back to back), ready for pack_spikes/pack_values."""
    a = np.asarray(grid)
    if a.ndim != 5:
        raise ValueError(f"grid must be [images, steps, C, H, W], not shape {list(a.shape)}")
    i, t, c, h, w = a.shape
    return a.transpose(0, 3, 4, 1, 2).reshape(i * h * w, t, c)


# --------------------------------------------------------------------------- the blocks' common part

def int_array(name: str, value, shape: tuple[int, ...], bits: int | None = None) -> np.ndarray:
    """`value` (nested lists, numpy or anything with __array__) as an object array of
    Python ints of exactly `shape`, each fitting signed `bits` when given."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu" and not (arr.dtype == object and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in arr.flat)):
        raise TypeError(f"{name} must hold integers, not {arr.dtype} values")
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {list(shape)}, not {list(arr.shape)}")
    out = np.vectorize(int, otypes=[object])(arr) if arr.size else arr.astype(object)
    if bits is not None and out.size:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        bad = [v for v in out.flat if not lo <= v <= hi]
        if bad:
            raise ValueError(f"{name} must fit signed {bits} bits, not {bad[0]!r}")
    return out


def check_accumulator(acc_bits: int, bias: np.ndarray, weights: np.ndarray, xmax: int) -> None:
    """Raise unless every partial sum fits signed `acc_bits` (docs/arithmetic.md "Widths"):
    per output channel o, bias[o] + sum of weights[o, ...] * x with 0 <= x <= xmax."""
    flat = weights.reshape(weights.shape[0], -1)
    pairs = list(zip(bias, flat, strict=True))
    lo = min(int(b) + xmax * sum(min(int(w), 0) for w in row) for b, row in pairs)
    hi = max(int(b) + xmax * sum(max(int(w), 0) for w in row) for b, row in pairs)
    need = 1 + max(hi.bit_length() if hi > 0 else 0, (-lo - 1).bit_length() if lo < 0 else 0)
    if need > acc_bits:
        raise ValueError(f"acc_bits must be >= {need} to hold [{lo}, {hi}], not {acc_bits!r}")


def tree_sum(values: list):
    """Balanced adder tree (Python's sum would chain the adders)."""
    while len(values) > 1:
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


class WindowBlock(wiring.Component, ABC):
    """What the three window blocks share: a LineBuffer, a weight memory read in step
    with it, the bias, and ``lanes`` accumulators that are also the output register.

    A subclass validates its parameters, passes the weight rows (row ``(g*9 + k)*slices
    + s``: ``lanes * elems`` signed ``weight_bits`` values, lane-major, lane j's
    element e at bits ``[(j*elems + e)*weight_bits, ...)``) and implements
    `contributions` (what each lane adds in one step).
    """

    def __init__(self, *, geometry: WindowGeometry, in_shape, word_width: int, lanes: int,
                 elems: int, weight_bits: int, acc_bits: int, bias, rows, weight_style: str):
        check_choice("weight_style", weight_style, WEIGHT_STYLES)
        self.weight_style = weight_style
        self.geometry = geometry
        self.word_width, self.lanes, self.elems = word_width, lanes, elems
        self.weight_bits, self.acc_bits = weight_bits, acc_bits
        self.bias = [int(b) for b in bias]
        mask = (1 << weight_bits) - 1
        self.weight_rows = [sum((int(v) & mask) << (n * weight_bits) for n, v in enumerate(row))
                            for row in rows]
        super().__init__({"i": In(stream.Signature(in_shape)),
                          "o": Out(values_signature(acc_bits, lanes))})

    @abstractmethod
    def contributions(self, m: Module, lines: LineBuffer, row) -> list:
        """Per lane, the value a stage-B step adds (``row``: its weight row); each conv
        (`DWConv3x3`, `SpikeConv3x3`, `PixelConv3x3`) defines its own."""

    def weight(self, row, lane: int, elem: int):
        """Signed weight `elem` of `lane` in a weight-row value."""
        return row.word_select(lane * self.elems + elem, self.weight_bits).as_signed()

    def elaborate(self, platform):
        m = Module()
        geo = self.geometry
        m.submodules.lines = lines = LineBuffer(
            height=geo.height, width=geo.width, word_width=self.word_width,
            time_steps=geo.time_steps, groups=geo.groups, slices=geo.slices)
        wiring.connect(m, wiring.flipped(self.i), lines.i)
        m.submodules.weights = weights = Memory(
            shape=unsigned(self.lanes * self.elems * self.weight_bits),
            depth=len(self.weight_rows), init=self.weight_rows,
            attrs={"ram_style": self.weight_style})
        w_rd = weights.read_port(domain="sync")
        m.d.comb += [w_rd.addr.eq(lines.w_row), w_rd.en.eq(lines.advance),
                     lines.o_ready.eq(self.o.ready), self.o.valid.eq(lines.o_valid)]

        adds = self.contributions(m, lines, w_rd.data)
        # The accumulators hold each result until it is taken. (Plain signals, not the
        # payload's fields: Yosys' ABC9 mis-renames a wire "x[0]" beside a wire "x".)
        acc = [Signal(signed(self.acc_bits), name=f"acc{j}") for j in range(self.lanes)]
        m.d.comb += self.o.payload.eq(Cat(*acc))
        bias = [Signal(signed(self.acc_bits), name=f"bias{j}") for j in range(self.lanes)]
        with m.Switch(lines.sel_g):
            for gi in range(geo.groups):
                with m.Case(gi):
                    m.d.comb += [bias[j].eq(self.bias[gi * self.lanes + j])
                                 for j in range(self.lanes)]
        with m.If(lines.advance & lines.valid):
            for j in range(self.lanes):
                m.d.sync += acc[j].eq(Mux(lines.first, bias[j], acc[j]) + adds[j])
        return m

    # -- the estimates every window block shares -------------------------------
    def model(self) -> WindowModel:
        return WindowModel(self.geometry)

    def cycles_per_token(self) -> int:
        """Engine cycles per token (steady state): 9 * slices * groups * steps."""
        return self.geometry.steps_per_token

    def cycles_per_image(self) -> int:
        """Steady-state cycles between images (back to back): tokens * cycles_per_token."""
        return self.geometry.tokens * self.geometry.steps_per_token

    def cycles(self, images: int = 1) -> int:
        """Exact cycle count of `images` back-to-back images in free flow (WindowGeometry.cycles)."""
        return self.geometry.cycles(images)

    def memory_shapes(self) -> dict[str, tuple[int, int]]:
        """(depth, width) of each memory: the line buffer and the weights."""
        return {"lines": (self.geometry.depth, self.word_width),
                "weights": (len(self.weight_rows), self.lanes * self.elems * self.weight_bits)}


# --------------------------------------------------------------------------- resource estimate
#
# LUT4 counts modelled per structure and calibrated against Yosys 0.70 (synth_ice40 -dsp,
# synth_ecp5 -nowidelut) on 17 window blocks (pixel conv 1->8 .. 3->16 on 8x8 .. 32x32,
# spike conv 4->6 .. 32->128, DWC 32 .. 128, pe 1..32, simd 1..8, T 1..4): total LUTs
# within -12 .. +22 %, flip-flops exact but for ROM-style weights (+9 %), block RAMs
# exact or up to two high on ECP5 (Yosys mixes aspect ratios there), DSP blocks exact.

FAMILIES = ("ice40", "ecp5")
_CONTROL_LUT = {"ice40": (45, 2.2), "ecp5": (40, 2.9)}  # constant + per control register bit
_ACC_LUT = 2.0  # per accumulator bit: the bias/accumulator mux and the adder
_LANE_LUT = 1.3  # per gated weight bit and adder bit of a lane's datapath


def check_family(family) -> str:
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, not {family!r}")
    return family


def _nbits(n: int) -> int:
    """Width of Signal(range(n))."""
    return (n - 1).bit_length()


def function_luts(inputs: int) -> int:
    """LUT4s of an arbitrary function (a ROM bit) of `inputs` inputs: 1, then two
    halves and a 2:1 mux per extra input."""
    return 1 if inputs <= 4 else (1 << (inputs - 3)) - 1


def rom_bit_luts(rows: int) -> int:
    """LUT4s of one output bit of a weight ROM in soft logic: a LUT4 per 16 rows, then a
    2:1 multiplexer per further leaf. Only the rows that exist cost: a 72-row ROM takes 9,
    not the 15 of an arbitrary 7-input function (fitted to Yosys 0.70 on 8 ROM-style
    window blocks with random weights, 9 .. 144 rows: total LUTs within -14 .. +17 %)."""
    leaves = math.ceil(rows / 16)
    return 2 * leaves - 1


def _memory_logic(depth: int, width: int, family: str) -> tuple[int, int]:
    """(LUTs, FFs) around a block-RAM memory: the read-data mux across RAMs stacked in
    depth (the aspect ratio that needs the fewest RAMs) and its registered select."""
    shapes = _BRAM_SHAPES[family]
    d = min(shapes, key=lambda s: math.ceil(depth / s[0]) * math.ceil(width / s[1]))[0]
    stacked = math.ceil(depth / d)
    return width * (stacked - 1), _nbits(stacked)


def control_bits(geo: WindowGeometry, rows: int) -> int:
    """Bits of the scheduler's registers that carry arithmetic (slots, lead, weight row,
    grid position, group / step / slice counters)."""
    return (_nbits(geo.slots) + _nbits(geo.slots + 1) + _nbits(rows) + _nbits(geo.height)
            + _nbits(geo.width) + _nbits(geo.groups) + _nbits(geo.time_steps)
            + _nbits(geo.slices))


def control_ff(geo: WindowGeometry, rows: int) -> int:
    """Flip-flops of the LineBuffer, exactly as elaborated: write and centre slots, lead,
    input step, grid position, g/t/k/s counters, busy, weight row, stage-B controls."""
    P, T, G, S = geo.slots, geo.time_steps, geo.groups, geo.slices
    return (2 * _nbits(P) + _nbits(P + 1) + 2 * _nbits(T) + 2 * _nbits(G) + _nbits(TAPS)
            + 2 * _nbits(S) + _nbits(geo.height) + _nbits(geo.width) + _nbits(rows) + 6)


def window_resources(block: WindowBlock, family: str, *, lane_lut: int, select_lut: int,
                     dsp: int = 0) -> Resources:
    """Estimate of a window block: scheduler, accumulators with their bias table, the
    block's per-lane datapath (`lane_lut` gated weight and adder bits per lane) and word
    selection (`select_lut`), the memories' read muxes; weights in block RAM, or, with
    ``weight_style="logic"``, as a ROM in LUTs (`rom_bit_luts` per bit) with its output
    register."""
    check_family(family)
    geo = block.geometry
    rows, row_bits = len(block.weight_rows), block.lanes * block.elems * block.weight_bits
    base, per_bit = _CONTROL_LUT[family]
    acc = block.lanes * block.acc_bits
    bias = acc * function_luts(_nbits(geo.groups)) if geo.groups > 1 else 0
    lut = base + per_bit * control_bits(geo, rows) + _ACC_LUT * acc + bias + select_lut
    lut += _LANE_LUT * block.lanes * lane_lut
    ff = control_ff(geo, rows) + acc
    lines_lut, lines_ff = _memory_logic(geo.depth, block.word_width, family)
    memories = [(geo.depth, block.word_width)]
    if block.weight_style == "block":
        w_lut, w_ff = _memory_logic(rows, row_bits, family)
        memories.append((rows, row_bits))
    else:
        w_lut, w_ff = row_bits * rom_bit_luts(rows), row_bits
    return Resources(lut=round(lut + lines_lut + w_lut), ff=ff + lines_ff + w_ff, dsp=dsp,
                     memories=tuple(memories), memory_kinds=("block",) * len(memories))
