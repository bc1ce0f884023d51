"""PixelConv3x3 against the golden conv on pixels (quant.golden.conv3x3), under gaps and
backpressure, images back to back, with its cycle model checked beat by beat and its
closed-form cycle count checked in free flow."""

import pytest
import torch

from quant.golden import conv3x3
from quant.ir import signed_bits
from rtl_templates.common import pack_values
from rtl_templates.pixel_conv import PixelConv3x3, pack_pixels
from rtl_templates.window import raster_tokens
from sim.block_sim import verify_block


def _case(H, W, cin, cout, pe, simd, images, seed, pixel_bits=8, weight_bits=8, edge=False,
          pipelined=False):
    g = torch.Generator().manual_seed(seed)
    q, pmax = (1 << (weight_bits - 1)) - 1, (1 << pixel_bits) - 1
    if edge:  # extreme weights; black, white and random images
        w = torch.where(torch.rand(cout, cin, 3, 3, generator=g) < 0.5, q, -q - 1)
        x = torch.stack([torch.zeros(1, cin, H, W, dtype=torch.int64),
                         torch.full((1, cin, H, W), pmax, dtype=torch.int64),
                         torch.randint(0, pmax + 1, (1, cin, H, W), generator=g)])
    else:
        w = torch.randint(-q, q + 1, (cout, cin, 3, 3), generator=g)
        x = torch.randint(0, pmax + 1, (images, 1, cin, H, W), generator=g)
    b = torch.randint(-1000, 1001, (cout,), generator=g)
    flat = w.reshape(cout, -1)
    acc = signed_bits(min(int((b + pmax * flat.clamp(max=0).sum(1)).min()), 0),
                      max(int((b + pmax * flat.clamp(min=0).sum(1)).max()), 0))
    block = PixelConv3x3(w.tolist(), b.tolist(), height=H, width=W, pixel_bits=pixel_bits,
                         weight_bits=weight_bits, acc_bits=acc, pe=pe, simd=simd,
                         pipelined=pipelined)
    y = conv3x3(x, w, b)  # [images, 1, cout, H, W]: steps = 1
    words = pack_pixels(raster_tokens(x)[:, 0, :], pixel_bits)
    return block, words, pack_values(raster_tokens(y), acc, pe)


@pytest.mark.sim
@pytest.mark.parametrize("H,W,cin,cout,pe,simd,images,gap,bp", [
    (8, 8, 1, 8, 2, 1, 2, 0.3, 0.3),   # digits-tiny stem conv 1 -> 8
    (3, 5, 3, 4, 1, 1, 3, 0.4, 0.2),   # RGB: three slices of one channel, 4 groups
])
def test_pixel_conv_random(verilator, H, W, cin, cout, pe, simd, images, gap, bp):
    block, words, expected = _case(H, W, cin, cout, pe, simd, images, seed=H + cin)
    verify_block(block, {"i": words}, {"o": expected}, simulator=verilator, seed=cin,
                 gap=gap, backpressure=bp, tag="pixel_conv")
    run = verify_block(block, {"i": words}, {"o": expected}, simulator=verilator,
                       tag="pixel_conv")
    assert run.cycles == block.cycles(images)


@pytest.mark.sim
def test_pixel_conv_edge_cases_icarus(simulator):
    """Black (0), white (255) and random images through extreme weights, all of an RGB
    pixel per cycle (simd = 3) and every output at once (pe = 2), on both simulators."""
    block, words, expected = _case(4, 3, 3, 2, 2, 3, 3, seed=6, edge=True)
    run = verify_block(block, {"i": words}, {"o": expected}, simulator=simulator,
                       tag="pixel_conv")
    # One word per pixel: the first window waits for pixels 0 .. W+1; then 9 cycles each.
    assert run.cycles == block.cycles(3) == (3 + 2) + 3 * 12 * 9 + 2
    verify_block(block, {"i": words}, {"o": expected}, simulator=simulator, seed=4,
                 gap=0.5, backpressure=0.5, tag="pixel_conv")


@pytest.mark.sim
def test_pixel_conv_pipelined(verilator):
    """Registered reads, products and tree (ECP5 timing): black, white, random RGB images
    through extreme weights, simd 3 (two tree levels: one register), gaps and backpressure."""
    block, words, expected = _case(4, 3, 3, 2, 2, 3, 3, seed=7, edge=True, pipelined=True)
    assert block.geometry.stages == 4
    verify_block(block, {"i": words}, {"o": expected}, simulator=verilator, seed=2,
                 gap=0.4, backpressure=0.4, tag="pixel_conv_pipe")
    run = verify_block(block, {"i": words}, {"o": expected}, simulator=verilator,
                       tag="pixel_conv_pipe")
    assert run.cycles == block.cycles(3) == (3 + 2) + 3 * 12 * 9 + 1 + 4


def test_pack_pixels():
    assert pack_pixels([[1, 2, 3], [255, 0, 16]], 8) == [0x030201, 0x1000FF]
    with pytest.raises(ValueError, match=r"pixels must be in \[0, 15\], not \[0, 16\]"):
        pack_pixels([[0, 16]], 4)


def test_pixel_conv_figures():
    block = PixelConv3x3([[[[1] * 3] * 3] * 3] * 16, [0] * 16, height=32, width=32,
                         pixel_bits=8, weight_bits=8, acc_bits=14, pe=4, simd=3)
    assert block.cycles_per_token() == 9 * 1 * 4
    assert block.geometry.time_steps == 1
    assert block.memory_shapes() == {"lines": (128, 24), "weights": (4 * 9, 4 * 3 * 8)}
    res = block.resources("ice40")
    assert res.dsp == 12 and res.bram("ice40") == 2 + 6


def test_pixel_conv_rejects_bad_parameters():
    w, b = [[[[1] * 3] * 3] * 3] * 4, [0] * 4
    kw = dict(height=2, width=2, pixel_bits=8, weight_bits=8, acc_bits=16)
    with pytest.raises(ValueError, match=r"simd \(2\) must divide 3"):
        PixelConv3x3(w, b, simd=2, **kw)
    with pytest.raises(ValueError, match="acc_bits must be >= 14 to hold"):
        PixelConv3x3(w, b, **{**kw, "acc_bits": 13})
    with pytest.raises(TypeError, match="pixel_bits must be an integer >= 1, not 0"):
        PixelConv3x3(w, b, **{**kw, "pixel_bits": 0})
