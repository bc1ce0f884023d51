"""SpikeConv3x3 against the golden conv (quant.golden.conv3x3 on spikes), under gaps and
backpressure, images back to back, with its cycle model checked beat by beat and its
closed-form cycle count checked in free flow."""

import pytest
import torch

from quant.golden import conv3x3
from quant.ir import signed_bits
from rtl_templates.common import pack_spikes, pack_values
from rtl_templates.spike_conv import SpikeConv3x3
from rtl_templates.window import raster_tokens
from sim.block_sim import verify_block


def _acc_bits(weight: torch.Tensor, bias: torch.Tensor) -> int:
    flat = weight.reshape(weight.shape[0], -1)
    lo = bias + flat.clamp(max=0).sum(1)
    hi = bias + flat.clamp(min=0).sum(1)
    return signed_bits(min(int(lo.min()), 0), max(int(hi.max()), 0))


def _case(H, W, T, cin, cout, pe, simd, images, seed, weight_bits=8, weights="random",
          spikes="random", pipelined=False, mode="dense", rate=0.5, raw=False):
    g = torch.Generator().manual_seed(seed)
    q = (1 << (weight_bits - 1)) - 1
    if weights == "random":
        w = torch.randint(-q, q + 1, (cout, cin, 3, 3), generator=g)
    else:  # "extreme": only the two ends of the signed range
        w = torch.where(torch.rand(cout, cin, 3, 3, generator=g) < 0.5, q, -q - 1)
    b = torch.randint(-300, 301, (cout,), generator=g)
    if spikes == "random":
        s = (torch.rand(images, T, cin, H, W, generator=g) < rate).long()
    else:  # zeros, ones, then random: the edge cases back to back in one run
        s = torch.stack([torch.zeros(T, cin, H, W, dtype=torch.int64),
                         torch.ones(T, cin, H, W, dtype=torch.int64),
                         torch.randint(0, 2, (T, cin, H, W), generator=g)])
    acc = _acc_bits(w, b)
    block = SpikeConv3x3(w.tolist(), b.tolist(), height=H, width=W, time_steps=T,
                         weight_bits=weight_bits, acc_bits=acc, pe=pe, simd=simd,
                         pipelined=pipelined, mode=mode)
    y = conv3x3(s, w, b)
    out = block, pack_spikes(raster_tokens(s)), pack_values(raster_tokens(y), acc, pe)
    return (*out, s.numpy()) if raw else out


@pytest.mark.sim
@pytest.mark.parametrize("H,W,T,cin,cout,pe,simd,images,gap,bp", [
    (3, 5, 3, 4, 6, 2, 2, 3, 0.3, 0.3),    # non-square, T=3, 2 slices, 3 groups
    (4, 4, 4, 8, 32, 4, 8, 2, 0.2, 0.5),   # digits-tiny RPE conv: one slice, 8 groups
])
def test_spike_conv_random(verilator, H, W, T, cin, cout, pe, simd, images, gap, bp):
    block, words, expected = _case(H, W, T, cin, cout, pe, simd, images, seed=H * W + T)
    verify_block(block, {"i": words}, {"o": expected}, simulator=verilator, seed=T,
                 gap=gap, backpressure=bp, tag="spike_conv")
    # The same design in free flow: the closed form is exact.
    run = verify_block(block, {"i": words}, {"o": expected}, simulator=verilator,
                       tag="spike_conv")
    assert run.cycles == block.cycles(images)


@pytest.mark.sim
def test_spike_conv_edge_cases(verilator):
    """All-zero, all-one and random images back to back through extreme (+qmax, -qmax-1)
    4-bit weights, on a one-column grid (H x 1) with T = 5."""
    block, words, expected = _case(5, 1, 5, 3, 4, 1, 3, 3, seed=7, weight_bits=4,
                                   weights="extreme", spikes="edge")
    verify_block(block, {"i": words}, {"o": expected}, simulator=verilator, seed=5,
                 gap=0.25, backpressure=0.25, tag="spike_conv")


@pytest.mark.sim
@pytest.mark.parametrize("H,W,T,cin,cout,pe,simd,stages", [
    (3, 5, 3, 4, 6, 2, 2, 4),   # one tree register (1 level)
    (4, 3, 2, 8, 4, 1, 8, 5),   # 3 levels: two tree registers
])
def test_spike_conv_pipelined(verilator, H, W, T, cin, cout, pe, simd, stages):
    """Registered reads and a pipelined tree (ECP5 timing): bit-exact under gaps and
    backpressure, the model beat by beat, and the closed form in free flow."""
    block, words, expected = _case(H, W, T, cin, cout, pe, simd, 2, seed=simd, pipelined=True)
    assert block.geometry.stages == stages
    verify_block(block, {"i": words}, {"o": expected}, simulator=verilator, seed=simd,
                 gap=0.3, backpressure=0.5, tag="spike_conv_pipe")
    run = verify_block(block, {"i": words}, {"o": expected}, simulator=verilator,
                       tag="spike_conv_pipe")
    assert run.cycles == block.cycles(2)


@pytest.mark.sim
def test_spike_conv_pipelined_edge_cases(verilator):
    """All-zero, all-one, random images through extreme weights, pipelined, T = 1."""
    block, words, expected = _case(2, 3, 1, 4, 2, 2, 4, 3, seed=11, weight_bits=4,
                                   weights="extreme", spikes="edge", pipelined=True)
    verify_block(block, {"i": words}, {"o": expected}, simulator=verilator, seed=6,
                 gap=0.3, backpressure=0.7, tag="spike_conv_pipe")


@pytest.mark.sim
@pytest.mark.parametrize("H,W,T,cin,cout,pe,simd,pipelined,rate", [
    (3, 4, 2, 8, 4, 2, 2, False, 0.15),  # 4 slices per tap: 36 candidate visits per beat
    (4, 3, 1, 6, 4, 1, 2, True, 0.3),    # 3 slices (the encoder pads each tap to 4), T = 1
    (2, 2, 3, 4, 2, 1, 1, False, 0.2),   # one channel per visit: every set bit
])
def test_spike_conv_event(verilator, H, W, T, cin, cout, pe, simd, pipelined, rate):
    """Event mode: only the in-grid (tap, slice) pairs holding a spike are visited. Sparse
    random images, then all-zero, all-one and random ones; bit-exact under gaps and
    backpressure with the model (reading the words) beat by beat; the closed form (from
    the beats' steps) in free flow."""
    block, words, expected, s = _case(H, W, T, cin, cout, pe, simd, 3, seed=cin + simd,
                                      pipelined=pipelined, mode="event", rate=rate, raw=True)
    run = verify_block(block, {"i": words}, {"o": expected}, words=True, simulator=verilator,
                       tag="spike_conv_ev")
    assert run.cycles == block.cycles(3, s)
    assert run.cycles < block.geometry.cycles(3)  # fewer steps than every tap and slice
    verify_block(block, {"i": words}, {"o": expected}, words=True, simulator=verilator,
                 seed=simd, gap=0.3, backpressure=0.5, tag="spike_conv_ev")
    edge, e_words, e_expected, e_s = _case(H, W, T, cin, cout, pe, simd, 3, seed=2,
                                           weight_bits=4, weights="extreme", spikes="edge",
                                           pipelined=pipelined, mode="event", raw=True)
    verify_block(edge, {"i": e_words}, {"o": e_expected}, words=True, simulator=verilator,
                 seed=3, gap=0.2, backpressure=0.6, tag="spike_conv_ev")
    # all-zero image: one step per beat (the bias); all-one: every in-grid (tap, slice)
    ops = edge.beat_ops(e_s)
    assert (ops[0] == 1).all() and ops[1].max() == min(H, 3) * min(W, 3) * (cin // simd)


@pytest.mark.sim
def test_spike_conv_icarus(simulator):
    """The first random design again (its Verilator build is cached), on both simulators."""
    block, words, expected = _case(3, 5, 3, 4, 6, 2, 2, 3, seed=3 * 5 + 3)
    run = verify_block(block, {"i": words}, {"o": expected}, simulator=simulator, seed=9,
                       gap=0.2, backpressure=0.4, tag="spike_conv")
    assert run.cycles > block.cycles(3)


def test_spike_conv_figures():
    block = SpikeConv3x3([[[[1] * 3] * 3] * 16] * 32, [0] * 32, height=8, width=8, time_steps=4,
                         weight_bits=8, acc_bits=9, pe=8, simd=4)
    assert block.cycles_per_token() == 9 * (16 // 4) * (32 // 8) * 4
    assert block.cycles_per_image() == 64 * block.cycles_per_token()
    assert block.cycles(3) == 4 * (8 + 2) + 3 * block.cycles_per_image() + 2
    assert block.memory_shapes() == {"lines": (32 * 4, 16), "weights": (4 * 9 * 4, 8 * 4 * 8)}
    res = block.resources("ice40")
    assert res.memories == ((128, 16), (144, 256)) and res.dsp == 0
    assert res.lut > 0 and res.ff > 8 * 9


def test_spike_conv_rejects_bad_parameters():
    w, b = [[[[1] * 3] * 3] * 4] * 6, [0] * 6
    kw = dict(height=2, width=2, time_steps=2, weight_bits=8, acc_bits=8)
    with pytest.raises(ValueError, match=r"pe \(4\) must divide 6"):
        SpikeConv3x3(w, b, pe=4, **kw)
    with pytest.raises(ValueError, match=r"simd \(3\) must divide 4"):
        SpikeConv3x3(w, b, simd=3, **kw)
    with pytest.raises(ValueError, match=r"weight must have shape \[out, in, 3, 3\], not \[6, 4, 3\]"):
        SpikeConv3x3([[[1] * 3] * 4] * 6, b, **kw)
    with pytest.raises(ValueError, match=r"bias must have shape \[6\], not \[5\]"):
        SpikeConv3x3(w, [0] * 5, **kw)
    with pytest.raises(ValueError, match="weight must fit signed 4 bits, not 8"):
        SpikeConv3x3([[[[8] * 3] * 3] * 4] * 6, b, **{**kw, "weight_bits": 4})
    with pytest.raises(ValueError, match="acc_bits must be >= 7 to hold"):
        SpikeConv3x3(w, b, **{**kw, "acc_bits": 6})
    with pytest.raises(TypeError, match="time_steps must be an integer >= 1, not 0"):
        SpikeConv3x3(w, b, **{**kw, "time_steps": 0})
    with pytest.raises(ValueError, match="weight_style must be one of 'block', 'logic', not 'lut'"):
        SpikeConv3x3(w, b, weight_style="lut", **kw)
    with pytest.raises(TypeError, match="pipelined must be a bool, not 1"):
        SpikeConv3x3(w, b, pipelined=1, **kw)
