"""SpikeCollector behind a LinearEngine: a random block's q = q_lif(q(attn_lif(U))) from
weights on the memory port, token-major spike words out, and the whole SASA input (one
engine computing q and k, a collector with q_lif and k_lif, then SASA), bit-exact against
the golden model's taps under gaps and backpressure on every stream and the memory port;
the blocks' cycle models joined, beat by beat."""

import pytest
import torch

from quant.config import get_config
from quant.golden import run
from quant.random_model import random_int_model
from rtl_templates.common import pack_spikes
from rtl_templates.engine_chain import EngineChain
from rtl_templates.linear_engine import LinearEngine, memory_image
from rtl_templates.sasa import SASA
from rtl_templates.spike_collector import SpikeCollector
from sim.memory_sim import verify_memory_block


def _tokens(x, b):
    """[T, B, C, H, W] tap -> [tokens][T][C] of image b."""
    return x[:, b].reshape(x.shape[0], x.shape[2], -1).permute(2, 0, 1)


@pytest.mark.sim
@pytest.mark.slow  # the collector is covered by default by the SASA test below
@pytest.mark.parametrize("mode", ["dense", "event"])
def test_q_path_from_the_memory_port(verilator, mode):
    cfg = get_config("digits-tiny").replace(dim=16, heads=2, mlp_ratio=2)
    model = random_int_model(cfg, seed=7)
    px = torch.randint(0, 256, (2, 1, 8, 8), generator=torch.Generator().manual_seed(7))
    taps = run(model, px, check_widths=True)
    blk, T = model.blocks[0], cfg.time_steps
    knobs = dict(pe=4, simd=4) if mode == "dense" else dict(pe=4, simd=1, mode="event")
    eng = LinearEngine(blk.q.weight.tolist(), blk.q.bias.tolist(), tokens=cfg.tokens,
                       time_steps=T, weight_bits=8, acc_bits=blk.q.acc_bits, beat_bits=16,
                       max_burst=8, base_addr=3, addr_bits=10, **knobs)
    col = SpikeCollector(channels=cfg.dim, lanes=eng.pe, tokens=cfg.tokens, time_steps=T,
                         in_width=blk.q.acc_bits, vth=blk.q_lif.vth.tolist(),
                         input_shift=blk.q_lif.input_shift, state_bits=blk.q_lif.state_bits)
    top = EngineChain(eng, col)
    ins, exp = [], []
    for b in range(2):
        ins += pack_spikes(_tokens(taps["blocks.0.attn_lif"], b))
        exp += pack_spikes(_tokens(taps["blocks.0.q_lif"], b))
    assert sum(bin(w).count("1") for w in exp) > 10  # spikes to get right (7.6 % set)
    for kw in ({}, dict(seed=2, gap=0.3, backpressure=0.6, mem_stall=0.3, mem_gap=0.3)):
        verify_memory_block(top, {"i": ins}, {"o": exp}, words=memory_image(eng), latency=4,
                            simulator=verilator, tag=f"collector-{mode}", **kw)


@pytest.mark.sim
@pytest.mark.parametrize("sasa_mode", ["channel", pytest.param("token", marks=pytest.mark.slow)])
def test_q_k_and_sasa_from_the_memory_port(verilator, sasa_mode):
    """One engine over [Wq; Wk] (2D outputs), a collector with q_lif on the first D channels
    and k_lif on the rest (their thresholds and state widths differ: 11 and 12 bits), SASA:
    Y equals the sasa tap, in channel and token mode."""
    cfg = get_config("digits-tiny").replace(dim=16, heads=2, mlp_ratio=2, sasa_mode=sasa_mode)
    model = random_int_model(cfg, seed=9)
    px = torch.randint(0, 256, (2, 1, 8, 8), generator=torch.Generator().manual_seed(9))
    taps = run(model, px, check_widths=True)
    blk, T, D = model.blocks[0], cfg.time_steps, cfg.dim
    acc = max(blk.q.acc_bits, blk.k.acc_bits)
    eng = LinearEngine(blk.q.weight.tolist() + blk.k.weight.tolist(),
                       blk.q.bias.tolist() + blk.k.bias.tolist(), tokens=cfg.tokens,
                       time_steps=T, weight_bits=8, acc_bits=acc, pe=4, simd=1, mode="event",
                       beat_bits=16, max_burst=16, base_addr=0, addr_bits=10)
    lifs = [(D, lif.vth.tolist(), lif.input_shift, lif.state_bits)
            for lif in (blk.q_lif, blk.k_lif)]
    col = SpikeCollector(channels=2 * D, lanes=4, tokens=cfg.tokens, time_steps=T,
                         in_width=acc, segments=lifs)
    agg = blk.agg_lif
    sasa = SASA(dim=D, heads=cfg.heads, time_steps=T, tokens=cfg.tokens, mode=sasa_mode,
                agg_vth=agg.vth.tolist(), agg_input_shift=agg.input_shift,
                agg_state_bits=agg.state_bits)
    ins, exp = [], []
    for b in range(2):
        ins += pack_spikes(_tokens(taps["blocks.0.attn_lif"], b))
        exp += pack_spikes(_tokens(taps["blocks.0.sasa"], b))
    assert sum(bin(w).count("1") for w in exp) > 10
    top = EngineChain(eng, col, sasa)
    for kw in ({}, dict(seed=4, gap=0.3, backpressure=0.5, mem_stall=0.3, mem_gap=0.3)):
        verify_memory_block(top, {"i": ins}, {"o": exp}, words=memory_image(eng), latency=6,
                            simulator=verilator, tag=f"qk-sasa-{sasa_mode}", **kw)
