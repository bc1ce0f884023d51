"""DWConv3x3 against the golden depthwise conv (quant.golden.dwconv3x3), under gaps and
backpressure, images back to back, with its cycle model checked beat by beat and its
closed-form cycle count checked in free flow."""

import pytest
import torch

from quant.golden import dwconv3x3
from quant.ir import signed_bits
from rtl_templates.common import pack_spikes, pack_values
from rtl_templates.dwconv import DWConv3x3
from rtl_templates.window import raster_tokens
from sim.block_sim import verify_block


def _case(H, W, T, C, lanes, images, seed, weight_bits=8, extreme=False, edge=False,
          pipelined=False, mode="dense", rate=0.5, raw=False):
    g = torch.Generator().manual_seed(seed)
    q = (1 << (weight_bits - 1)) - 1
    if extreme:  # only the two ends of the signed range
        w = torch.where(torch.rand(C, 3, 3, generator=g) < 0.5, q, -q - 1)
    else:
        w = torch.randint(-q, q + 1, (C, 3, 3), generator=g)
    b = torch.randint(-300, 301, (C,), generator=g)
    if edge:  # zeros, ones, then random: the edge cases back to back in one run
        s = torch.stack([torch.zeros(T, C, H, W, dtype=torch.int64),
                         torch.ones(T, C, H, W, dtype=torch.int64),
                         torch.randint(0, 2, (T, C, H, W), generator=g)])
    else:
        s = (torch.rand(images, T, C, H, W, generator=g) < rate).long()
    flat = w.reshape(C, 9)
    acc = signed_bits(min(int((b + flat.clamp(max=0).sum(1)).min()), 0),
                      max(int((b + flat.clamp(min=0).sum(1)).max()), 0))
    block = DWConv3x3(w, b, height=H, width=W, time_steps=T, acc_bits=acc,
                      weight_bits=weight_bits, lanes=lanes, pipelined=pipelined, mode=mode)
    y = dwconv3x3(s, w, b)
    out = block, pack_spikes(raster_tokens(s)), pack_values(raster_tokens(y), acc, lanes)
    return (*out, s.numpy()) if raw else out


@pytest.mark.sim
@pytest.mark.parametrize("H,W,T,C,lanes,images,gap,bp", [
    (2, 2, 4, 12, 3, 3, 0.3, 0.3),   # 2x2 grid: every window touches the edge
    (4, 4, 4, 32, 4, 2, 0.2, 0.4),   # digits-tiny DWC
])
def test_dwconv_random(verilator, H, W, T, C, lanes, images, gap, bp):
    block, words, expected = _case(H, W, T, C, lanes, images, seed=C + lanes)
    verify_block(block, {"i": words}, {"o": expected}, simulator=verilator, seed=lanes,
                 gap=gap, backpressure=bp, tag="dwconv")
    run = verify_block(block, {"i": words}, {"o": expected}, simulator=verilator, tag="dwconv")
    assert run.cycles == block.cycles(images)


@pytest.mark.sim
def test_dwconv_edge_cases_icarus(simulator):
    """All-zero, all-one and random images through extreme 4-bit weights, on a one-row grid
    (1 x W) with T = 1 and one channel per cycle, on both simulators."""
    block, words, expected = _case(1, 6, 1, 5, 1, 3, seed=4, weight_bits=4, extreme=True,
                                   edge=True)
    run = verify_block(block, {"i": words}, {"o": expected}, simulator=simulator,
                       tag="dwconv")
    # One row: the first window waits for (0, 1) only; then 9 cycles per channel.
    assert run.cycles == block.cycles(3) == 1 * 2 + 3 * 6 * (9 * 5) + 2
    verify_block(block, {"i": words}, {"o": expected}, simulator=simulator, seed=8,
                 gap=0.4, backpressure=0.6, tag="dwconv")


@pytest.mark.sim
def test_dwconv_pipelined(verilator):
    """Registered reads and terms (ECP5 timing): edge-case images (zeros, ones, random)
    through extreme weights under gaps and backpressure, then the closed form in free flow."""
    block, words, expected = _case(3, 4, 2, 12, 3, 3, seed=12, weight_bits=5, extreme=True,
                                   edge=True, pipelined=True)
    assert block.geometry.stages == 3
    verify_block(block, {"i": words}, {"o": expected}, simulator=verilator, seed=3,
                 gap=0.3, backpressure=0.5, tag="dwconv_pipe")
    run = verify_block(block, {"i": words}, {"o": expected}, simulator=verilator,
                       tag="dwconv_pipe")
    assert run.cycles == block.cycles(3) == 2 * (4 + 2) + 3 * 12 * 9 * 4 * 2 + 1 + 3


@pytest.mark.sim
@pytest.mark.parametrize("H,W,T,C,lanes,pipelined,rate", [
    (3, 4, 2, 12, 3, False, 0.1),  # 4 groups: a tap is visited if its group has a spike
    (4, 4, 1, 8, 1, True, 0.2),    # one channel per group, T = 1, pipelined
])
def test_dwconv_event(verilator, H, W, T, C, lanes, pipelined, rate):
    """Event mode: only the in-grid taps whose group holds a spike are visited. Sparse
    random images, then all-zero, all-one and random ones through extreme weights;
    bit-exact under gaps and backpressure with the model beat by beat; the closed form
    in free flow."""
    block, words, expected, s = _case(H, W, T, C, lanes, 3, seed=C, pipelined=pipelined,
                                      mode="event", rate=rate, raw=True)
    run = verify_block(block, {"i": words}, {"o": expected}, words=True, simulator=verilator,
                       tag="dwconv_ev")
    assert run.cycles == block.cycles(3, s)
    assert run.cycles < block.geometry.cycles(3)  # fewer steps than every tap
    verify_block(block, {"i": words}, {"o": expected}, words=True, simulator=verilator,
                 seed=lanes, gap=0.3, backpressure=0.5, tag="dwconv_ev")
    edge, e_words, e_expected, e_s = _case(H, W, T, C, lanes, 3, seed=5, weight_bits=4,
                                           extreme=True, edge=True, pipelined=pipelined,
                                           mode="event", raw=True)
    verify_block(edge, {"i": e_words}, {"o": e_expected}, words=True, simulator=verilator,
                 seed=7, gap=0.2, backpressure=0.6, tag="dwconv_ev")
    ops = edge.beat_ops(e_s)
    assert (ops[0] == 1).all() and ops[1].max() == min(H, 3) * min(W, 3)


def test_dwconv_figures():
    block = DWConv3x3([[[1] * 3] * 3] * 128, [0] * 128, height=8, width=8, time_steps=4,
                      acc_bits=5, weight_bits=8, lanes=8)
    assert block.cycles_per_token() == 9 * 16 * 4
    assert block.memory_shapes() == {"lines": (32 * 4, 128), "weights": (16 * 9, 8 * 8)}
    assert block.resources("ecp5").bram("ecp5") == 4 + 2  # 512 x 36 blocks: 4 wide; 2 wide


def test_dwconv_rejects_bad_parameters():
    w, b = [[[1] * 3] * 3] * 6, [0] * 6
    kw = dict(height=2, width=2, time_steps=2, acc_bits=8, weight_bits=8)
    with pytest.raises(ValueError, match=r"lanes \(4\) must divide 6"):
        DWConv3x3(w, b, lanes=4, **kw)
    with pytest.raises(ValueError, match=r"weight must have shape \[C, 3, 3\], not \[6, 3\]"):
        DWConv3x3([[1] * 3] * 6, b, **kw)
    with pytest.raises(ValueError, match="acc_bits must be >= 5 to hold"):
        DWConv3x3(w, b, **{**kw, "acc_bits": 4})
    with pytest.raises(TypeError, match="lanes must be an integer >= 1, not 0"):
        DWConv3x3(w, b, lanes=0, **kw)
    with pytest.raises(TypeError, match="bias must hold integers"):
        DWConv3x3(w, [0.5] * 6, **kw)
