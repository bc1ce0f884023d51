"""Depthwise 3x3 convolution on spikes (the DWC branch of every SAFormer block): no multipliers.

Channel c's output is its bias plus the sum of its 9 weights whose window bit is
1 (golden: quant.golden.dwconv3x3, docs/arithmetic.md "Layer rules").
"""

from __future__ import annotations

import numpy as np
from amaranth import Mux
from amaranth.hdl import unsigned

from rtl_templates.common import Resources, check_divides, check_int
from rtl_templates.window import TAPS, WindowGeometry
from rtl_templates.window_block import WindowBlock, check_accumulator, int_array
from rtl_templates.window_resources import check_family, window_resources


class DWConv3x3(WindowBlock):
    """Depthwise 3x3 convolution, zero padding 1, stride 1, on a spike stream of ``C`` channels.

    Parameters: ``weight`` ([C][3][3] ints, signed ``weight_bits``), ``bias`` ([C]
    ints), ``height``/``width`` (the grid), ``time_steps`` (T), ``acc_bits``
    (signed width of the outputs; must hold every partial sum, which the
    constructor checks), ``weight_bits``, ``lanes`` (channels per cycle, divides C).

    Ports: sink ``i`` (spikes, ``unsigned(C)``, T beats per token, tokens in
    raster order, images back to back); source ``o`` (values,
    ``ArrayLayout(signed(acc_bits), lanes)``: per token, for g in range(C/lanes):
    for t: one beat, lane j = channel g*lanes + j).

    Datapath: one tap per cycle: the line buffer's word for (tap k, step t), its
    ``lanes`` bits of group g, each gating its channel's weight into that
    channel's accumulator. A beat takes 9 cycles.

    Throughput: ``9 * (C/lanes) * T`` cycles per token. Latency and cycles of whole
    images: `cycles` (``WindowGeometry.cycles``: start-up ``T * (W + 2)`` cycles
    for a grid with H, W > 1, then one tap per cycle, the last result two cycles
    after the last tap). Backpressure: ``i.ready`` depends only on state; a
    result waits in the accumulators until taken.

    Memories (`memory_shapes`): line buffer ``P * T`` x ``C``, P = 2W + 4 rounded
    up to a power of two (token q's step t at row ``(q mod P)*T + t``); weights ``(C/lanes) * 9`` rows x ``lanes *
    weight_bits``: row ``g*9 + k``, lane j at bits ``[j*weight_bits, ...)`` =
    ``weight[g*lanes + j][k//3][k%3]``. The bias is a table of constants selected by
    the group counter.
    """

    def __init__(self, weight, bias, *, height: int, width: int, time_steps: int,
                 acc_bits: int, weight_bits: int, lanes: int = 1,
                 weight_style: str = "block", pipelined: bool = False, mode: str = "dense"):
        weight_bits = check_int("weight_bits", weight_bits, 2)
        acc_bits = check_int("acc_bits", acc_bits, 2)
        shape = tuple(np.shape(weight))
        if len(shape) != 3 or shape[1:] != (3, 3) or 0 in shape:
            raise ValueError(f"weight must have shape [C, 3, 3], not {list(shape)}")
        channels = shape[0]
        w = int_array("weight", weight, shape, weight_bits)
        b = int_array("bias", bias, (channels,))
        check_int("lanes", lanes)
        check_divides("lanes", lanes, channels)
        check_accumulator(acc_bits, b, w, 1)
        self.channels = channels
        geo = WindowGeometry(check_int("height", height), check_int("width", width),
                             check_int("time_steps", time_steps), channels // lanes, 1)
        rows = [[w[g * lanes + j, k // 3, k % 3] for j in range(lanes)]
                for g in range(geo.groups) for k in range(TAPS)]
        super().__init__(geometry=geo, in_shape=unsigned(channels), word_width=channels,
                         lanes=lanes, elems=1, weight_bits=weight_bits, acc_bits=acc_bits,
                         bias=b, rows=rows, weight_style=weight_style, pipelined=pipelined,
                         mode=mode, unit_width=lanes, by_group=True)

    def terms(self, word, row, tap_valid, sel_s, sel_g) -> list[list]:
        bits = word if self.geometry.groups == 1 else word.word_select(sel_g, self.lanes)
        return [[Mux(bits[j] & tap_valid, self.weight(row, j, 0), 0)]
                for j in range(self.lanes)]

    @property
    def term_width(self) -> int:
        return self.weight_bits

    def resources(self, family: str) -> Resources:
        """Estimate (window_resources.window_resources): per lane one gated weight; the ``C``-bit
        word cut into ``C/lanes`` groups."""
        check_family(family)
        return window_resources(self, family, lane_lut=self.weight_bits,
                                select_lut=self.lanes * (self.geometry.groups - 1))
