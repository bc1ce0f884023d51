"""EngineSequence: one engine over fc1 -> LIF -> fc2 + residual of a random SAFormer block, and over a
three-layer sequence, bit-exact against the golden model under gaps and backpressure on
every stream and the memory port, its cycle model checked beat by beat."""

import pytest
import torch

from quant.config import get_config
from quant.golden import lif, run, spike_linear
from quant.ir import signed_bits
from quant.random_model import random_int_model
from rtl_templates.common import pack_spikes
from rtl_templates.dwconv import DWConv3x3
from rtl_templates.engine_sequence import EngineSequence, sequence_image
from rtl_templates.linear_engine import pack_engine_values
from rtl_templates.memport import MemPortRAM
from rtl_templates.memport_pipelined import PipelinedMemPortRAM
from rtl_templates.sasa import SASA
from sim.memory_sim import verify_memory_block, verify_with_ram


def _tokens(x, b, T):
    """[T, B, C, H, W] tap -> [tokens][T][C] of image b."""
    return x[:, b].reshape(T, x.shape[2], -1).permute(2, 0, 1).tolist()


def _mlp(cfg_changes, seed, images, **engine):
    cfg = get_config("digits-tiny").replace(**cfg_changes)
    model = random_int_model(cfg, seed=seed)
    px = torch.randint(0, 256, (images, 1, 8, 8), generator=torch.Generator().manual_seed(seed))
    taps = run(model, px, check_widths=True)
    blk, T = model.blocks[0], cfg.time_steps
    seq = EngineSequence([(blk.fc1.weight.tolist(), blk.fc1.bias.tolist(), blk.fc1.acc_bits),
                          (blk.fc2.weight.tolist(), blk.fc2.bias.tolist(), blk.fc2.acc_bits)],
                         [(blk.fc1_lif.vth.tolist(), blk.fc1_lif.input_shift,
                           blk.fc1_lif.state_bits)],
                         tokens=cfg.tokens, time_steps=T, weight_bits=8,
                         residual_bits=model.u_bits, input_bits=model.u_bits,
                         input_lif=(blk.mlp_lif.vth.tolist(), blk.mlp_lif.input_shift,
                                    blk.mlp_lif.state_bits), **engine)
    ins, us, exp = [], [], []
    for b in range(images):
        ins += pack_engine_values(_tokens(taps["blocks.0.u_attn"], b, T), model.u_bits, seq.pe)
        us += pack_engine_values(_tokens(taps["blocks.0.u_attn"], b, T), model.u_bits, seq.pe)
        exp += pack_engine_values(_tokens(taps["blocks.0.u_mlp"], b, T), model.u_bits, seq.pe)
    return seq, {"i": ins, "u": us}, {"o": exp}


@pytest.mark.sim
def test_mlp_fc1_lif_fc2_residual(verilator):
    """A random block's MLP: U'' = U' + fc2(fc1_lif(fc1(mlp_lif(U')))), U' read twice (into
    the input LIF and into the residual join)."""
    seq, ins, exp = _mlp(dict(dim=16, heads=2, mlp_ratio=2), 4, 2, pe=4, simd=4, beat_bits=16,
                         max_burst=16, base_addr=8, addr_bits=12)
    words = sequence_image(seq)
    for kw in ({}, dict(seed=5, gap=0.3, backpressure=0.5, mem_stall=0.3, mem_gap=0.4),
               dict(seed=6, gap=0.05, backpressure=0.8, mem_stall=0.7, mem_gap=0.05)):
        verify_memory_block(seq, ins, exp, words=words, latency=7, simulator=verilator,
                            tag="engseq", **kw)
    # MemPortRAM in the top: its latency, interval and refresh in the cycle prediction.
    verify_with_ram(seq, ins, exp, words=words, ram_class=MemPortRAM, simulator=verilator,
                    seed=3, gap=0.2, backpressure=0.3, latency=6, interval=2,
                    refresh_period=101, refresh_cycles=9, tag="engseq-ram")


def _attention(sasa_mode, seed, images, **engine):
    """A random block's attention path on one engine: [Wq; Wk] -> q_lif | k_lif -> SASA -> o."""
    cfg = get_config("digits-tiny").replace(dim=16, heads=2, mlp_ratio=2, sasa_mode=sasa_mode)
    model = random_int_model(cfg, seed=seed)
    px = torch.randint(0, 256, (images, 1, 8, 8), generator=torch.Generator().manual_seed(seed))
    taps = run(model, px, check_widths=True)
    blk, T, D = model.blocks[0], cfg.time_steps, cfg.dim
    agg = blk.agg_lif
    sasa = SASA(dim=D, heads=cfg.heads, time_steps=T, tokens=cfg.tokens, mode=sasa_mode,
                agg_vth=agg.vth.tolist(), agg_input_shift=agg.input_shift,
                agg_state_bits=agg.state_bits)
    seq = EngineSequence(
        [(blk.q.weight.tolist() + blk.k.weight.tolist(), blk.q.bias.tolist() + blk.k.bias.tolist(),
          max(blk.q.acc_bits, blk.k.acc_bits)),
         (blk.o.weight.tolist(), blk.o.bias.tolist(), blk.o.acc_bits)],
        [[(D, x.vth.tolist(), x.input_shift, x.state_bits) for x in (blk.q_lif, blk.k_lif)]],
        tokens=cfg.tokens, time_steps=T, weight_bits=8, sasa=(0, sasa), **engine)
    ins, exp = [], []
    for b in range(images):
        ins += pack_spikes(_tokens(taps["blocks.0.attn_lif"], b, T))
        exp += pack_engine_values(_tokens(taps["blocks.0.o"], b, T), blk.o.acc_bits, seq.pe)
    assert sum(bin(w).count("1") for w in pack_spikes(_tokens(taps["blocks.0.sasa"], 0, T))) > 10
    return seq, {"i": ins}, {"o": exp}


@pytest.mark.sim
@pytest.mark.parametrize("sasa_mode", ["channel", pytest.param("token", marks=pytest.mark.slow)])
def test_attention_q_k_sasa_o(verilator, sasa_mode):
    """O = o(SASA(q_lif(q(S)), k_lif(k(S)))) on one engine: the LIF after [Wq; Wk] runs
    q_lif and k_lif on their channel ranges into a Q|K memory, a pass streams it through
    SASA into o's spike memory; the cycle model includes the pass."""
    seq, ins, exp = _attention(sasa_mode, 9, 2, pe=4, simd=4, beat_bits=16, max_burst=16,
                               addr_bits=12)
    words = sequence_image(seq)
    for kw in ({}, dict(seed=5, gap=0.3, backpressure=0.5, mem_stall=0.3, mem_gap=0.4)):
        verify_memory_block(seq, ins, exp, words=words, latency=5, simulator=verilator,
                            tag=f"engseq-sasa-{sasa_mode}", **kw)


def _block(seed, images, **engine):
    """A random block, whole: U' = U + o(SASA(..)) + dwc(S), U'' = U' + fc2(fc1_lif(fc1(
    mlp_lif(U')))), S = attn_lif(U), on one engine with U in block RAM."""
    cfg = get_config("digits-tiny").replace(dim=16, heads=2, mlp_ratio=2)
    model = random_int_model(cfg, seed=seed)
    px = torch.randint(0, 256, (images, 1, 8, 8), generator=torch.Generator().manual_seed(seed))
    taps = run(model, px, check_widths=True)
    blk, T, D = model.blocks[0], cfg.time_steps, cfg.dim
    pe = engine["pe"]
    agg = blk.agg_lif
    sasa = SASA(dim=D, heads=cfg.heads, time_steps=T, tokens=cfg.tokens, mode=cfg.sasa_mode,
                agg_vth=agg.vth.tolist(), agg_input_shift=agg.input_shift,
                agg_state_bits=agg.state_bits)
    H, W = cfg.grid
    dwc = DWConv3x3(blk.dwc.weight.tolist(), blk.dwc.bias.tolist(), height=H, width=W,
                    time_steps=T, acc_bits=blk.dwc.acc_bits, weight_bits=8, lanes=pe)

    def layer(x):
        return (x.weight.tolist(), x.bias.tolist(), x.acc_bits)

    def one(x):
        return (x.vth.tolist(), x.input_shift, x.state_bits)

    qk = (blk.q.weight.tolist() + blk.k.weight.tolist(), blk.q.bias.tolist() + blk.k.bias.tolist(),
          max(blk.q.acc_bits, blk.k.acc_bits))
    seq = EngineSequence(
        [qk, layer(blk.o), layer(blk.fc1), layer(blk.fc2)],
        [[(D, *one(blk.q_lif)), (D, *one(blk.k_lif))], one(blk.mlp_lif), one(blk.fc1_lif)],
        tokens=cfg.tokens, time_steps=T, weight_bits=8, sasa=(0, sasa), input_lif=one(blk.attn_lif),
        input_bits=model.u_bits, residual_bits=model.u_bits, u_memory=True, adds=(1,), dwc=dwc,
        **engine)
    ins, exp = [], []
    for b in range(images):
        ins += pack_engine_values(_tokens(taps["rpe"], b, T), model.u_bits, pe)
        exp += pack_engine_values(_tokens(taps["blocks.0.u_mlp"], b, T), model.u_bits, pe)
    return seq, {"i": ins}, {"o": exp}


@pytest.mark.sim
def test_whole_block_on_one_engine(verilator):
    """A whole SAFormer block from the memory port: attention (SASA pass), the DWC pass, both
    residual adds into U in block RAM, the MLP; equals the golden u_mlp tap, two images,
    under gaps and stalls on every stream and the memory port, cycles exact."""
    seq, ins, exp = _block(11, 2, pe=4, simd=4, beat_bits=16, max_burst=16, addr_bits=12)
    words = sequence_image(seq)
    for kw in ({}, dict(seed=5, gap=0.3, backpressure=0.5, mem_stall=0.3, mem_gap=0.4)):
        verify_memory_block(seq, ins, exp, words=words, latency=5, simulator=verilator,
                            tag="engseq-block", **kw)


def _three_layers(seed):
    g = torch.Generator().manual_seed(seed)
    layers, lifs = [], []
    for n_out, n_in in ((8, 12), (8, 8), (4, 8)):
        w = torch.randint(-127, 128, (n_out, n_in), generator=g)
        b = torch.randint(-300, 301, (n_out,), generator=g)
        acc = signed_bits(int((b + w.clamp(max=0).sum(1)).min()), int((b + w.clamp(min=0).sum(1)).max()))
        layers.append((w, b, acc))
    for w, _, acc in layers[:2]:
        vth = torch.randint(1, 200, (w.shape[0],), generator=g)
        lifs.append((vth, 1, acc + 2))
    return layers, lifs


@pytest.mark.sim
def test_three_layer_sequence(verilator):
    """Layers of different fan-in and width (so different K and G per layer), T = 2, two
    LIF boundaries, one with an input shift; golden: spike_linear and lif chained."""
    layers, lifs = _three_layers(7)
    T, N, images = 2, 5, 2
    seq = EngineSequence([(w.tolist(), b.tolist(), a) for w, b, a in layers],
                         [(v.tolist(), sh, sb) for v, sh, sb in lifs], tokens=N, time_steps=T,
                         weight_bits=8, pe=4, simd=4, beat_bits=32, max_burst=8, addr_bits=10)
    s = (torch.rand(images, N, T, 12, generator=torch.Generator().manual_seed(8)) < 0.4).long()
    ins, exp = [], []
    for m in range(images):
        x = s[m]
        for li, (w, b, _) in enumerate(layers):
            y = spike_linear(x, w, b)  # [N, T, out]
            if li < len(lifs):
                vth, sh, sb = lifs[li]
                x = lif(y.transpose(0, 1), vth, sh, sb).transpose(0, 1)
        ins += pack_spikes(s[m].tolist())
        exp += pack_engine_values(y.tolist(), layers[-1][2], 4)
    words = sequence_image(seq)
    verify_memory_block(seq, {"i": ins}, {"o": exp}, words=words, latency=3, simulator=verilator,
                        tag="engseq")
    verify_memory_block(seq, {"i": ins}, {"o": exp}, words=words, latency=3, simulator=verilator,
                        seed=9, gap=0.3, backpressure=0.5, mem_stall=0.4, mem_gap=0.3, tag="engseq")
    verify_with_ram(seq, {"i": ins}, {"o": exp}, words=words, ram_class=PipelinedMemPortRAM,
                    simulator=verilator, latency=9, buffer=16, refresh_period=131,
                    refresh_cycles=15, tag="engseq-ram")


def test_sequence_requests_and_rejects():
    layers, lifs = _three_layers(1)
    seq = EngineSequence([(w.tolist(), b.tolist(), a) for w, b, a in layers],
                         [(v.tolist(), sh, sb) for v, sh, sb in lifs], tokens=2, time_steps=1,
                         weight_bits=8, pe=4, simd=4, beat_bits=32, max_burst=8, base_addr=4,
                         addr_bits=10)
    # rows of 4 x 4 x 8 = 128 bits = 4 beats; tiles of 3, 2, 2 rows -> 12, 8, 8 beats
    assert seq.layer_words == [2 * 12, 2 * 8, 1 * 8]
    assert [n for _, n in seq.requests()][:6] == [8, 4, 8, 4, 8, 8]
    assert seq.requests()[-1] == (4 + 48 - 8, 8)
    assert len(sequence_image(seq)) == 48
    w, b, a = layers[0]
    with pytest.raises(ValueError, match="one LIF per boundary"):
        EngineSequence([(w.tolist(), b.tolist(), a)] * 2, [], tokens=2, time_steps=1,
                       weight_bits=8, pe=4, simd=4, beat_bits=32)
    with pytest.raises(ValueError, match=r"inputs must be its predecessor's outputs \(8\), not 12"):
        EngineSequence([(w.tolist(), b.tolist(), a)] * 2, [lifs[0]], tokens=2, time_steps=1,
                       weight_bits=8, pe=4, simd=4, beat_bits=32)
