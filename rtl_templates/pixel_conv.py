"""The stem's first 3x3 convolution, on multi-bit pixels: the accelerator's only multiplying layer.

Each output is the bias plus the sum of weight x pixel over the zero-padded
window (golden: quant.golden.conv3x3 on pixels), computed once per token:
direct encoding feeds the same image at every step, and the LIF array after
this block repeats the value over T (docs/hardware.md, steps = 1).
"""

from __future__ import annotations

import math

import numpy as np
from amaranth import Mux
from amaranth.hdl import unsigned

from rtl_templates.common import Resources, bits_for, check_divides, check_int
from rtl_templates.spike_conv import conv_weight_shape
from rtl_templates.window import TAPS, WindowGeometry
from rtl_templates.window_block import WindowBlock, check_accumulator, int_array
from rtl_templates.window_resources import check_family, window_resources


def pack_pixels(pixels, pixel_bits: int) -> list[int]:
    """Beat words of a pixel stream. `pixels`: [tokens, C] unsigned ints -> one word per
    token, channel c in bits [c*pixel_bits, (c+1)*pixel_bits) (docs/hardware.md)."""
    p = np.asarray(pixels, dtype=np.int64)
    if p.ndim != 2:
        raise ValueError(f"pixels must be [tokens, C], not shape {list(p.shape)}")
    if p.size and (p.min() < 0 or p.max() >= 1 << pixel_bits):
        raise ValueError(f"pixels must be in [0, {(1 << pixel_bits) - 1}], "
                         f"not [{p.min()}, {p.max()}]")
    return [sum(int(v) << (c * pixel_bits) for c, v in enumerate(row)) for row in p]


class PixelConv3x3(WindowBlock):
    """3x3 convolution, zero padding 1, stride 1, on unsigned pixels: ``out`` values per pixel.

    Parameters: ``weight`` ([out][in][3][3] ints, signed ``weight_bits``), ``bias``
    ([out] ints), ``height``/``width`` (the image), ``pixel_bits`` (unsigned width
    of one channel of a pixel), ``weight_bits``, ``acc_bits`` (signed width of the
    outputs; must hold every partial sum, which the constructor checks),
    ``pe`` (output lanes, divides ``out``), ``simd`` (input channels per cycle,
    divides ``in``). ``pe * simd`` multipliers (signed weight x unsigned pixel;
    Yosys maps them to SB_MAC16 on iCE40 with ``synth_ice40 -dsp``, MULT18X18D on ECP5).

    Ports: sink ``i`` (pixels, ``unsigned(in * pixel_bits)``, channel c in bits
    ``[c*pixel_bits, (c+1)*pixel_bits)``, one beat per pixel in raster order, images
    back to back); source ``o`` (values, ``ArrayLayout(signed(acc_bits), pe)``,
    steps = 1: per pixel, for g in range(out/pe): one beat, lane j = channel g*pe + j).

    Datapath: one step per cycle reads one tap's pixel word (from the line
    buffer) and one weight row; each of the ``pe`` accumulators adds the sum of
    ``simd`` products (a balanced adder tree). A beat takes ``9 * in/simd`` steps.

    Throughput: ``9 * (in/simd) * (out/pe)`` cycles per pixel. Latency and cycles of
    whole images: `cycles` (``WindowGeometry.cycles`` with one word per token:
    start-up ``W + 2`` cycles for an image with H, W > 1, then one step per
    cycle, the last result two cycles after the last step). Backpressure:
    ``i.ready`` depends only on state; a result waits in the accumulators until taken.

    Memories (`memory_shapes`): line buffer ``P`` x ``in * pixel_bits``, P = 2W + 4
    rounded up to a power of two (pixel q at row ``q mod P``); weights ``(out/pe) * 9 * (in/simd)`` rows x ``pe * simd *
    weight_bits``: row ``(g*9 + k)*(in/simd) + s``, lane j's element e at bits
    ``[(j*simd + e)*weight_bits, ...)`` = ``weight[g*pe + j][s*simd + e][k//3][k%3]``.
    The bias is a table of constants selected by the group counter.
    """

    def __init__(self, weight, bias, *, height: int, width: int, pixel_bits: int,
                 weight_bits: int, acc_bits: int, pe: int = 1, simd: int = 1,
                 weight_style: str = "block", pipelined: bool = False):
        self.pixel_bits = check_int("pixel_bits", pixel_bits)
        weight_bits = check_int("weight_bits", weight_bits, 2)
        acc_bits = check_int("acc_bits", acc_bits, 2)
        out_ch, in_ch = conv_weight_shape(weight)
        w = int_array("weight", weight, (out_ch, in_ch, 3, 3), weight_bits)
        b = int_array("bias", bias, (out_ch,))
        self.pe, self.simd = check_int("pe", pe), check_int("simd", simd)
        check_divides("pe", pe, out_ch)
        check_divides("simd", simd, in_ch)
        check_accumulator(acc_bits, b, w, (1 << pixel_bits) - 1)
        self.out_channels, self.in_channels = out_ch, in_ch
        geo = WindowGeometry(check_int("height", height), check_int("width", width), 1,
                             out_ch // pe, in_ch // simd)
        rows = [[w[g * pe + j, s * simd + e, k // 3, k % 3] for j in range(pe) for e in range(simd)]
                for g in range(geo.groups) for k in range(TAPS) for s in range(geo.slices)]
        super().__init__(geometry=geo, in_shape=unsigned(in_ch * pixel_bits),
                         word_width=in_ch * pixel_bits, lanes=pe, elems=simd,
                         weight_bits=weight_bits, acc_bits=acc_bits, bias=b, rows=rows,
                         weight_style=weight_style, pipelined=pipelined)

    def terms(self, word, row, tap_valid, sel_s, sel_g) -> list[list]:
        pb = self.pixel_bits
        px = word if self.geometry.slices == 1 else word.word_select(sel_s, self.simd * pb)
        pixels = [Mux(tap_valid, px[e * pb:(e + 1) * pb], 0) for e in range(self.simd)]
        return [[self.weight(row, j, e) * pixels[e] for e in range(self.simd)]
                for j in range(self.pe)]

    @property
    def term_width(self) -> int:
        """A signed weight times an unsigned pixel."""
        return self.weight_bits + self.pixel_bits + 1

    def resources(self, family: str) -> Resources:
        """Estimate (window_resources.window_resources): ``pe * simd`` multipliers in DSP blocks
        (16 x 16 SB_MAC16 on iCE40, 18 x 18 MULT18X18D on ECP5; wider operands take
        several), per lane an adder tree of ``simd - 1`` adders (in the DSP blocks on
        iCE40); the pixel word cut into
        ``in/simd`` slices and masked at the grid edge."""
        check_family(family)
        e, wb, pb = self.simd, self.weight_bits, self.pixel_bits
        side = 16 if family == "ice40" else 18
        per_product = math.ceil(wb / side) * math.ceil((pb + 1) / side)
        # On iCE40, Yosys packs the adder tree into the SB_MAC16s' own adders.
        tree = 0 if family == "ice40" else (e - 1) * (wb + pb + 1 + bits_for(e))
        return window_resources(
            self, family, lane_lut=tree,
            select_lut=e * pb * self.geometry.slices, dsp=self.pe * e * per_product)
