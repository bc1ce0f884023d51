"""What the 3x3 window blocks (spike conv, DWC, pixel conv) share around their line buffer:
the weight memory read in step with it, the bias and the accumulators (`WindowBlock`), the
parameter checks, and the estimates every window block answers the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import replace

import numpy as np
from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.hdl import signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl_templates.common import check_choice, check_int, tree_sum, values_signature
from rtl_templates.event_window import EventLineBuffer, EventWindowModel, window_ops
from rtl_templates.gated_sum import ceil_log2
from rtl_templates.line_buffer import LineBuffer
from rtl_templates.window import WindowGeometry, WindowModel

# Where the weights go (Yosys' ram_style): block RAM, or LUTs and flip-flops (small ROMs).
WEIGHT_STYLES = ("block", "logic")
MODES = ("dense", "event")
# Adder levels between two registers of a pipelined block's tree (ECP5: about 2 ns each).
TREE_LEVELS = 2


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



class WindowBlock(wiring.Component, ABC):
    """What the three window blocks share: a LineBuffer, a weight memory read in step
    with it, the bias, and ``lanes`` accumulators that are also the output register.

    A subclass validates its parameters, passes the weight rows (row ``(g*9 + k)*slices
    + s``: ``lanes * elems`` signed ``weight_bits`` values, lane-major, lane j's
    element e at bits ``[(j*elems + e)*weight_bits, ...)``) and implements `terms`
    (what each lane adds in one step, as ``elems`` values to sum) and `term_width`.

    ``pipelined``: False feeds the memories' read data (stage B) straight through the
    terms' adder tree into the accumulators: one register stage, ``stages = 1``. True
    registers the reads (stage C, so no block RAM output drives logic), then the terms
    (stage D), then the adder tree after every `TREE_LEVELS` levels (the last register
    right before the accumulator); the bias is registered for the final stage. That is
    ``stages = 3 + ceil(ceil(log2 elems) / TREE_LEVELS)`` (window.WindowGeometry): the
    same throughput, ``stages - 1`` more cycles of latency.

    ``mode``: "dense" (every tap and slice, `line_buffer.LineBuffer`) or "event" (only the
    in-grid taps whose unit holds a spike, `event_window.EventLineBuffer`; a unit is
    ``unit_width`` channels: the block's slice, or with ``by_group`` its output group).
    """

    def __init__(self, *, geometry: WindowGeometry, in_shape, word_width: int, lanes: int,
                 elems: int, weight_bits: int, acc_bits: int, bias, rows, weight_style: str,
                 pipelined: bool = False, mode: str = "dense", unit_width: int = 1,
                 by_group: bool = False):
        check_choice("weight_style", weight_style, WEIGHT_STYLES)
        check_choice("mode", mode, MODES)
        self.mode, self.unit_width, self.by_group = mode, unit_width, by_group
        if not isinstance(pipelined, bool):
            raise TypeError(f"pipelined must be a bool, not {pipelined!r}")
        self.weight_style, self.pipelined = weight_style, pipelined
        self.tree_stages = -(-ceil_log2(elems) // TREE_LEVELS) if pipelined else 0
        self.geometry = replace(geometry, stages=3 + self.tree_stages if pipelined else 1)
        self.word_width, self.lanes, self.elems = word_width, lanes, elems
        self.weight_bits, self.acc_bits = weight_bits, acc_bits
        self.bias = [int(b) for b in bias]
        mask = (1 << weight_bits) - 1
        self.weight_rows = [sum((int(v) & mask) << (n * weight_bits) for n, v in enumerate(row))
                            for row in rows]
        super().__init__({"i": In(stream.Signature(in_shape)),
                          "o": Out(values_signature(acc_bits, lanes))})

    @abstractmethod
    def terms(self, word, row, tap_valid, sel_s, sel_g) -> list[list]:
        """Per lane, the ``elems`` values a step adds, from its tap's input `word`, its
        weight `row`, whether the tap is in the grid and its slice and group; each conv
        (`DWConv3x3`, `SpikeConv3x3`, `PixelConv3x3`) defines its own."""

    @property
    @abstractmethod
    def term_width(self) -> int:
        """Signed width of one of `terms`' values."""

    def weight(self, row, lane: int, elem: int):
        """Signed weight `elem` of `lane` in a weight-row value."""
        return row.word_select(lane * self.elems + elem, self.weight_bits).as_signed()

    def elaborate(self, platform):
        m = Module()
        geo = self.geometry
        kind, extra = LineBuffer, {"stages": geo.stages} if self.pipelined else {}
        if self.mode == "event":
            kind, extra = EventLineBuffer, {"stages": geo.stages, "by_group": self.by_group}
        m.submodules.lines = lines = kind(
            height=geo.height, width=geo.width, word_width=self.word_width,
            time_steps=geo.time_steps, groups=geo.groups, slices=geo.slices, **extra)
        wiring.connect(m, wiring.flipped(self.i), lines.i)
        m.submodules.weights = weights = Memory(
            shape=unsigned(self.lanes * self.elems * self.weight_bits),
            depth=len(self.weight_rows), init=self.weight_rows,
            attrs={"ram_style": self.weight_style})
        w_rd = weights.read_port(domain="sync")
        m.d.comb += [w_rd.addr.eq(lines.w_row), w_rd.en.eq(lines.advance),
                     lines.o_ready.eq(self.o.ready), self.o.valid.eq(lines.o_valid)]

        if self.pipelined:
            adds, bias, first, valid = self._pipeline(m, lines, w_rd.data)
        else:
            adds = [tree_sum(lane) for lane in self.terms(
                lines.word, w_rd.data, lines.tap_valid, lines.sel_s, lines.sel_g)]
            bias, first, valid = None, lines.first, lines.valid
        # The accumulators hold each result until it is taken. (Plain signals, not the
        # payload's fields: Yosys' ABC9 mis-renames a wire "x[0]" beside a wire "x".)
        acc = [Signal(signed(self.acc_bits), name=f"acc{j}") for j in range(self.lanes)]
        m.d.comb += self.o.payload.eq(Cat(*acc))
        if bias is None:
            bias = self._bias_table(m, lines.sel_g)
        with m.If(lines.advance & valid):
            for j in range(self.lanes):
                m.d.sync += acc[j].eq(Mux(first, bias[j], acc[j]) + adds[j])
        return m

    def _bias_table(self, m: Module, group) -> list[Signal]:
        bias = [Signal(signed(self.acc_bits), name=f"bias{j}") for j in range(self.lanes)]
        with m.Switch(group):
            for gi in range(self.geometry.groups):
                with m.Case(gi):
                    m.d.comb += [bias[j].eq(self.bias[gi * self.lanes + j])
                                 for j in range(self.lanes)]
        return bias

    def _pipeline(self, m: Module, lines: LineBuffer, row_b):
        """Stages C (registered reads), D (registered terms) and the tree's registers;
        returns the final stage's lane sums, its bias and its valid/first tags."""
        adv = lines.advance

        def reg(value, name):
            r = Signal(value.shape(), name=name)
            with m.If(adv):
                m.d.sync += r.eq(value)
            return r

        word = reg(lines.word, "word_c")
        row = reg(row_b, "row_c")
        tap_valid, sel_s = reg(lines.tap_valid, "tap_valid_c"), reg(lines.sel_s, "sel_s_c")
        group = reg(lines.sel_g, "sel_g_c")
        terms = self.terms(word, row, tap_valid, sel_s, group)
        stage_groups = [group]
        level = [[reg(v, f"term{j}_{e}") for e, v in enumerate(lane)]
                 for j, lane in enumerate(terms)]
        for r in range(self.tree_stages):
            stage_groups.append(reg(stage_groups[-1], f"sel_g_t{r}"))
            for _ in range(TREE_LEVELS):
                level = [[lane[i] + lane[i + 1] if i + 1 < len(lane) else lane[i]
                          for i in range(0, len(lane), 2)] for lane in level]
            level = [[reg(v, f"sum{r}_{j}_{i}") for i, v in enumerate(lane)]
                     for j, lane in enumerate(level)]
        if self.geometry.groups == 1:
            bias = [Const(self.bias[j], signed(self.acc_bits)) for j in range(self.lanes)]
        else:  # looked up one stage early, so that the accumulator's path is mux + add
            table = self._bias_table(m, stage_groups[-1])
            bias = [reg(b, f"bias{j}_f") for j, b in enumerate(table)]
        return [lane[0] for lane in level], bias, lines.f_first, lines.f_valid

    # -- the estimates every window block shares -------------------------------
    def model(self) -> WindowModel:
        if self.mode == "event":
            return EventWindowModel(self.geometry, units=self.word_width // self.unit_width,
                                    unit_width=self.unit_width, by_group=self.by_group)
        return WindowModel(self.geometry)

    def beat_ops(self, spikes):
        """Event mode: the steps of every output beat, [images, H*W, groups, T], from
        `spikes` [images, T, C, H, W] (`event_window.window_ops`)."""
        if self.mode != "event":
            raise ValueError(f"beat_ops needs mode 'event', not {self.mode!r}")
        return window_ops(spikes, self.geometry, unit_width=self.unit_width,
                          by_group=self.by_group)

    def cycles_per_token(self) -> int:
        """Engine cycles per token (steady state, dense): 9 * slices * groups * steps."""
        return self.geometry.steps_per_token

    def cycles_per_image(self, spikes=None) -> int:
        """Steady-state cycles between images (back to back): dense, tokens *
        cycles_per_token; event, the steps of the image's beats (`spikes`: [T, C, H, W])."""
        if self.mode == "event":
            if spikes is None:
                raise ValueError("spikes must be given in event mode, not None")
            return int(self.beat_ops(np.asarray(spikes)[None]).sum())
        return self.geometry.tokens * self.geometry.steps_per_token

    def cycles(self, images: int = 1, spikes=None) -> int:
        """Cycle count of `images` back-to-back images in free flow: dense, exact
        (WindowGeometry.cycles); event (`spikes` [images, T, C, H, W]), the same start-up
        and drain around the beats' steps, plus stage A: exact while the engine never
        waits for input (each token's steps at least the ``T`` cycles its input takes;
        the cycle model is exact always)."""
        if self.mode != "event":
            return self.geometry.cycles(images)
        check_int("images", images)
        ops = self.beat_ops(spikes)
        if ops.shape[0] != images:
            raise ValueError(f"spikes must hold {images} images, not {ops.shape[0]}")
        geo = self.geometry
        return geo.startup_cycles + int(ops.sum()) + 2 + geo.stages

    def memory_shapes(self) -> dict[str, tuple[int, int]]:
        """(depth, width) of each memory: the line buffer and the weights."""
        return {"lines": (self.geometry.depth, self.word_width),
                "weights": (len(self.weight_rows), self.lanes * self.elems * self.weight_bits)}

