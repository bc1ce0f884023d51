"""SpikeMaxPool2x2 against the golden maxpool2x2 (an OR of each 2x2 window), under gaps and
backpressure, several images in a row, with its cycle model checked beat by beat."""

import pytest
import torch

from quant.golden import maxpool2x2
from rtl_templates.common import pack_spikes
from rtl_templates.maxpool import SpikeMaxPool2x2
from sim.block_sim import verify_block


def _case(*, C, H, W, T, images=3, seed=0, density=0.2, fills=()):
    """Block, input words and golden output words: images filled with each of `fills`
    (0 or 1), then `images` random ones."""
    g = torch.Generator().manual_seed(seed)
    parts = [torch.full((T, 1, C, H, W), f, dtype=torch.int64) for f in fills]
    parts.append((torch.rand((T, images, C, H, W), generator=g) < density).to(torch.int64))
    s = torch.cat(parts, 1)  # [T, B, C, H, W], as the golden model holds spikes
    y = maxpool2x2(s)
    block = SpikeMaxPool2x2(channels=C, height=H, width=W, time_steps=T)
    # [T, B, C, H, W] -> per image, tokens in raster order, T beats each: [B*H*W, T, C].
    words = pack_spikes(s.permute(1, 3, 4, 0, 2).reshape(-1, T, C))
    expected = pack_spikes(y.permute(1, 3, 4, 0, 2).reshape(-1, T, C))
    return block, words, expected


@pytest.mark.sim
@pytest.mark.parametrize("C,H,W,T", [
    (8, 4, 6, 3),    # row buffer of 9 words
    (5, 6, 4, 5),    # odd channel count, T = 5
    (3, 2, 2, 1),    # the smallest grid, one step: a one-word row buffer
    (32, 4, 16, 4),  # a row buffer of 32 words of 32 bits
])
def test_maxpool(verilator, C, H, W, T):
    block, words, expected = _case(C=C, H=H, W=W, T=T, seed=C, fills=(0, 1))
    verify_block(block, {"i": words}, {"o": expected}, simulator=verilator, seed=C + T,
                 gap=0.3, backpressure=0.4, tag="maxpool")


@pytest.mark.sim
def test_maxpool_heavy_backpressure_and_free_flow(simulator):
    block, words, expected = _case(C=8, H=4, W=6, T=3, images=4, seed=1)
    verify_block(block, {"i": words}, {"o": expected}, simulator=simulator, seed=5,
                 gap=0.1, backpressure=0.8, tag="maxpool")
    run = verify_block(block, {"i": words}, {"o": expected}, simulator=simulator, tag="maxpool")
    assert run.cycles == block.cycles(4) == 4 * 4 * 6 * 3 + 1


@pytest.mark.sim
def test_maxpool_single_spikes(verilator):
    # One spike per image, walking over every position of the window and every step:
    # each must reach exactly its own output pixel and step.
    C, H, W, T = 8, 4, 6, 3
    images = []
    for pos in range(H * W * T):
        img = torch.zeros(T, 1, C, H, W, dtype=torch.int64)
        y, x, t = pos // (W * T), pos // T % W, pos % T
        img[t, 0, pos % C, y, x] = 1
        images.append(img)
    s = torch.cat(images, 1)
    block = SpikeMaxPool2x2(channels=C, height=H, width=W, time_steps=T)
    words = pack_spikes(s.permute(1, 3, 4, 0, 2).reshape(-1, T, C))
    expected = pack_spikes(maxpool2x2(s).permute(1, 3, 4, 0, 2).reshape(-1, T, C))
    assert sum(1 for w in expected if w) == H * W * T
    verify_block(block, {"i": words}, {"o": expected}, simulator=verilator, seed=2,
                 gap=0.2, backpressure=0.2, tag="maxpool")


def test_maxpool_rejects_bad_parameters():
    kw = dict(channels=4, height=4, width=6, time_steps=2)
    SpikeMaxPool2x2(**kw)
    with pytest.raises(ValueError, match="width must be even, not 5"):
        SpikeMaxPool2x2(**{**kw, "width": 5})
    with pytest.raises(ValueError, match="height must be even, not 3"):
        SpikeMaxPool2x2(**{**kw, "height": 3})
    with pytest.raises(TypeError, match="height must be an integer >= 2, not 0"):
        SpikeMaxPool2x2(**{**kw, "height": 0})
    with pytest.raises(TypeError, match="channels must be an integer >= 1, not 2.0"):
        SpikeMaxPool2x2(**{**kw, "channels": 2.0})
    with pytest.raises(ValueError, match="family must be one of 'ice40', 'ecp5', not 'gw1n'"):
        SpikeMaxPool2x2(**kw).resources("gw1n")


def test_maxpool_sizes():
    block = SpikeMaxPool2x2(channels=16, height=32, width=32, time_steps=4)
    assert block.row_words == 64
    assert block.resources("ecp5").memories == ((64, 16),)
    assert block.cycles(2) == 2 * 32 * 32 * 4 + 1


@pytest.mark.slow
@pytest.mark.parametrize("C,H,W,T", [(8, 8, 8, 4), (32, 16, 16, 4), (64, 8, 8, 4)])
def test_resource_estimate_against_yosys(C, H, W, T):
    # iCE40: the row buffer maps to block RAM, as the estimate assumes (ECP5 puts such
    # small memories in LUT RAM, which the planner's memory mapping accounts for).
    from hwgen.targets.synth import ToolMissing, synth_stats

    block = SpikeMaxPool2x2(channels=C, height=H, width=W, time_steps=T)
    try:
        got = synth_stats(block, "ice40")
    except ToolMissing as e:
        pytest.skip(str(e))
    est = block.resources("ice40")
    print(f"\nmaxpool C{C} {H}x{W} T{T} on ice40: estimate vs Yosys: LUT {est.lut} / {got.lut} "
          f"({100 * (est.lut - got.lut) / got.lut:+.0f} %), FF {est.ff} / {got.ff}, "
          f"BRAM {est.bram('ice40')} / {got.bram}")
    assert got.unmapped == []
    assert est.bram("ice40") == got.bram
    assert est.ff == got.ff
    assert abs(est.lut - got.lut) <= 0.2 * got.lut
