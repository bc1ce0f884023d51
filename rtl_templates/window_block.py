"""What the 3x3 window blocks (spike conv, DWC, pixel conv) share around their line buffer:
the weight memory read in step with it, the bias and the accumulators (`WindowBlock`), the
parameter checks, and the estimates every window block answers the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from amaranth import Cat, Module, Mux, Signal
from amaranth.hdl import signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl_templates.common import check_choice, values_signature
from rtl_templates.line_buffer import LineBuffer
from rtl_templates.window import WindowGeometry, WindowModel

# Where the weights go (Yosys' ram_style): block RAM, or LUTs and flip-flops (small ROMs).
WEIGHT_STYLES = ("block", "logic")


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

