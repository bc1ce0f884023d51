"""ConvEngine (a window gather in front of a LinearEngine: a 3x3 spike conv with its weights
from the memory port) against quant.golden.conv3x3, under gaps and backpressure on every
stream and the memory port; the gather's and the engine's cycle models together, beat by
beat; and the gather's software twin against the golden windows."""

import pytest
import torch

from quant.config import get_config
from quant.golden import conv3x3, run, windows3x3
from quant.ir import signed_bits
from quant.random_model import random_int_model
from rtl_templates.common import pack_spikes
from rtl_templates.conv_engine import ConvEngine, conv_as_linear, window_words
from rtl_templates.engine_chain import EngineChain
from rtl_templates.linear_engine import memory_image, pack_engine_values
from rtl_templates.maxpool import SpikeMaxPool2x2
from rtl_templates.memport import MemPortRAM
from rtl_templates.spike_collector import SpikeCollector
from sim.memory_sim import verify_memory_block, verify_with_ram


def _case(out, n_in, H, W, T, seed, images, **knobs):
    g = torch.Generator().manual_seed(seed)
    w = torch.randint(-127, 128, (out, n_in, 3, 3), generator=g)
    b = torch.randint(-3000, 3001, (out,), generator=g)
    flat = w.reshape(out, -1)
    acc = signed_bits(int((b + flat.clamp(max=0).sum(1)).min()),
                      int((b + flat.clamp(min=0).sum(1)).max()))
    e = ConvEngine(w.tolist(), b.tolist(), height=H, width=W, time_steps=T, weight_bits=8,
                   acc_bits=acc, **knobs)
    s = (torch.rand(images, T, n_in, H, W, generator=g) < 0.3).long()
    s[0, :, :, 0, 0] = 1  # a corner token with every spike
    ins, exp = [], []
    for m in range(images):
        tokens = s[m].reshape(T, n_in, -1).permute(2, 0, 1)  # [N][T][C]
        ins += pack_spikes(tokens)
        y = conv3x3(s[m], w, b).reshape(T, out, -1).permute(2, 0, 1)
        exp += pack_engine_values(y.tolist(), e.acc_bits, e.pe)
    return e, w, {"i": ins}, {"o": exp}, s


def _tokens(x, b):
    """[T, B, C, H, W] tap -> [tokens][T][C] of image b."""
    return x[:, b].reshape(x.shape[0], x.shape[2], -1).permute(2, 0, 1)


def test_window_words_are_the_golden_windows():
    """The gather's twin puts tap k of channel c at bit k*C + c: conv_as_linear's order."""
    e, w, _, _, s = _case(4, 3, 3, 4, 2, 1, 1, beat_bits=8)
    img = s[0]  # [T, C, H, W]
    words = window_words(img.reshape(2, 3, -1).permute(2, 0, 1).tolist(), 3, 4)
    win = windows3x3(img)  # [T, C, 9, H, W]
    lin = torch.tensor(conv_as_linear(w.tolist()))
    for y in range(3):
        for x in range(4):
            for t in range(2):
                word = words[(y * 4 + x) * 2 + t]
                bits = torch.tensor([(word >> i) & 1 for i in range(27)])
                assert bits.tolist() == win[t, :, :, y, x].T.reshape(-1).tolist()
                assert (lin @ bits).tolist() == (w.reshape(4, 3, 9) * win[t, :, :, y, x]).sum((1, 2)).tolist()


@pytest.mark.sim
@pytest.mark.parametrize("mode", ["dense", pytest.param("event", marks=pytest.mark.slow)])
def test_conv_engine_bit_exact_and_cycle_exact(verilator, mode):
    """4 x 3 grid, 3 -> 8 channels, T = 2, two images: dense pe 4 simd 3 (tiles of 9 rows),
    and event (one row per set bit of the 27-bit window; slow tier: the engine's event mode
    is covered by default in tests/test_spike_collector.py and test_linear_engine.py)."""
    knobs = dict(pe=4, simd=3, beat_bits=16, max_burst=8) if mode == "dense" else \
        dict(pe=2, simd=1, beat_bits=16, max_burst=8, mode="event")
    e, _, ins, exp, _ = _case(8, 3, 3, 4, 2, 5, 2, base_addr=4, addr_bits=12, **knobs)
    words = memory_image(e.engine)
    for kw in ({}, dict(seed=5, gap=0.3, backpressure=0.5, mem_stall=0.3, mem_gap=0.4)):
        verify_memory_block(e, ins, exp, words=words, latency=5, simulator=verilator,
                            tag=f"convengine-{mode}", **kw)
    if mode == "dense":
        verify_with_ram(e, ins, exp, words=words, ram_class=MemPortRAM, simulator=verilator,
                        seed=3, gap=0.2, backpressure=0.3, latency=6, interval=2,
                        refresh_period=101, refresh_cycles=9, tag="convengine-ram")


@pytest.mark.sim
def test_stem_stage_from_the_memory_port(verilator):
    """A random two-stage stem's second stage, stem.1.pool = pool(lif(conv(stem.0.pool))),
    with the conv's weights on the memory port: ConvEngine (event) -> SpikeCollector ->
    SpikeMaxPool2x2 (EngineChain), equal to the golden tap word for word."""
    cfg = get_config("digits-tiny").replace(stem_channels=(4, 8), stem_pool=(True, True),
                                            dim=16, heads=2)
    model = random_int_model(cfg, seed=6)  # stem.1.lif fires at 18 %
    px = torch.randint(0, 256, (2, 1, 8, 8), generator=torch.Generator().manual_seed(6))
    taps = run(model, px, check_widths=True)
    st, T = model.stem[1], cfg.time_steps
    conv, lif = st.conv, st.lif
    eng = ConvEngine(conv.weight.tolist(), conv.bias.tolist(), height=4, width=4,
                     time_steps=T, weight_bits=8, acc_bits=conv.acc_bits, pe=4, simd=1,
                     mode="event", beat_bits=16, max_burst=16, addr_bits=10)
    col = SpikeCollector(channels=8, lanes=4, tokens=16, time_steps=T, in_width=conv.acc_bits,
                         vth=lif.vth.tolist(), input_shift=lif.input_shift,
                         state_bits=lif.state_bits)
    pool = SpikeMaxPool2x2(channels=8, height=4, width=4, time_steps=T)
    top = EngineChain(eng, col, pool)
    ins, exp = [], []
    for b in range(2):
        ins += pack_spikes(_tokens(taps["stem.0.pool"], b))
        exp += pack_spikes(_tokens(taps["stem.1.pool"], b))
    assert sum(bin(w).count("1") for w in exp) > 10
    for kw in ({}, dict(seed=8, gap=0.3, backpressure=0.5, mem_stall=0.3, mem_gap=0.3)):
        verify_memory_block(top, {"i": ins}, {"o": exp}, words=memory_image(eng.engine),
                            latency=5, simulator=verilator, tag="stem1-engine", **kw)
