"""3x3 convolution on spikes (the RPE conv and the stem's later convs): no multipliers.

Each output is the bias plus the sum of the weights whose window bit is 1
(golden: quant.golden.conv3x3 on spikes, docs/arithmetic.md "Layer rules").
"""

from __future__ import annotations

import numpy as np
from amaranth import Mux
from amaranth.hdl import unsigned

from rtl_templates.common import Resources, bits_for, check_divides, check_int
from rtl_templates.window import TAPS, WindowGeometry
from rtl_templates.window_block import WindowBlock, check_accumulator, int_array
from rtl_templates.window_resources import check_family, window_resources


def conv_weight_shape(weight) -> tuple[int, int]:
    """(out, in) of a [out][in][3][3] weight, or ValueError."""
    shape = tuple(np.shape(weight))
    if len(shape) != 4 or shape[2:] != (3, 3) or 0 in shape:
        raise ValueError(f"weight must have shape [out, in, 3, 3], not {list(shape)}")
    return shape[0], shape[1]


class SpikeConv3x3(WindowBlock):
    """3x3 convolution, zero padding 1, stride 1, on a spike stream: ``out`` values per token.

    Parameters: ``weight`` ([out][in][3][3] ints, signed ``weight_bits``), ``bias``
    ([out] ints), ``height``/``width`` (the grid), ``time_steps`` (T), ``weight_bits``,
    ``acc_bits`` (signed width of the outputs; must hold every partial sum, which
    the constructor checks: docs/arithmetic.md "Widths"), ``pe`` (output lanes,
    divides ``out``), ``simd`` (input channels per cycle, divides ``in``).

    Ports: sink ``i`` (spikes, ``unsigned(in)``, T beats per token, tokens in
    raster order, images back to back); source ``o`` (values,
    ``ArrayLayout(signed(acc_bits), pe)``: per token, for g in range(out/pe): for t:
    one beat, lane j = channel g*pe + j).

    Datapath: one step per cycle reads one tap's spike word (from the line
    buffer) and one weight row, and each of the ``pe`` accumulators adds the
    AND-gated sum of ``simd`` weights (a balanced adder tree). A beat (g, t) takes
    ``9 * in/simd`` steps: taps k = 0..8, then slices s of ``simd`` channels.

    Throughput: ``9 * (in/simd) * (out/pe) * T`` cycles per token. Latency and
    cycles of whole images: `cycles` (``WindowGeometry.cycles``: start-up
    ``T * (W + 2)`` cycles for a grid with H, W > 1, then one step per cycle,
    the last result two cycles after the last step). Backpressure: ``i.ready``
    depends only on state; a result waits in the accumulators until taken, and
    the next beat's first step waits for that (``o.ready`` -> ``i``: no path).

    Memories (`memory_shapes`): line buffer ``P * T`` x ``in``, P = 2W + 4 rounded
    up to a power of two (token q's step t at row ``(q mod P)*T + t``); weights ``(out/pe) * 9 * (in/simd)`` rows x
    ``pe * simd * weight_bits``: row ``(g*9 + k)*(in/simd) + s``, lane j's element e
    at bits ``[(j*simd + e)*weight_bits, ...)`` = ``weight[g*pe + j][s*simd + e][k//3][k%3]``.
    The bias is a table of constants selected by the group counter.
    """

    def __init__(self, weight, bias, *, height: int, width: int, time_steps: int,
                 weight_bits: int, acc_bits: int, pe: int = 1, simd: int = 1,
                 weight_style: str = "block", pipelined: bool = False, mode: str = "dense"):
        weight_bits = check_int("weight_bits", weight_bits, 2)
        acc_bits = check_int("acc_bits", acc_bits, 2)
        out_ch, in_ch = conv_weight_shape(weight)
        w = int_array("weight", weight, (out_ch, in_ch, 3, 3), weight_bits)
        b = int_array("bias", bias, (out_ch,))
        self.pe, self.simd = check_int("pe", pe), check_int("simd", simd)
        check_divides("pe", pe, out_ch)
        check_divides("simd", simd, in_ch)
        check_accumulator(acc_bits, b, w, 1)
        self.out_channels, self.in_channels = out_ch, in_ch
        geo = WindowGeometry(check_int("height", height), check_int("width", width),
                             check_int("time_steps", time_steps), out_ch // pe, in_ch // simd)
        rows = [[w[g * pe + j, s * simd + e, k // 3, k % 3] for j in range(pe) for e in range(simd)]
                for g in range(geo.groups) for k in range(TAPS) for s in range(geo.slices)]
        super().__init__(geometry=geo, in_shape=unsigned(in_ch), word_width=in_ch, lanes=pe,
                         elems=simd, weight_bits=weight_bits, acc_bits=acc_bits, bias=b, rows=rows,
                         weight_style=weight_style, pipelined=pipelined,
                         mode=mode, unit_width=simd)

    def terms(self, word, row, tap_valid, sel_s, sel_g) -> list[list]:
        bits = word if self.geometry.slices == 1 else word.word_select(sel_s, self.simd)
        on = [bits[e] & tap_valid for e in range(self.simd)]
        return [[Mux(on[e], self.weight(row, j, e), 0) for e in range(self.simd)]
                for j in range(self.pe)]

    @property
    def term_width(self) -> int:
        return self.weight_bits

    def resources(self, family: str) -> Resources:
        """Estimate (window_resources.window_resources): per lane ``simd`` AND-gated weights and
        an adder tree of ``simd - 1`` adders; an ``in``-bit word cut into ``in/simd`` slices."""
        check_family(family)
        e, wb = self.simd, self.weight_bits
        return window_resources(self, family, lane_lut=e * wb + (e - 1) * (wb + bits_for(e)),
                                select_lut=e * (self.geometry.slices - 1))
