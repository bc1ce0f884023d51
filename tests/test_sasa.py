"""SASA (channel and token mode) against the golden and_popcount / lif / sasa_gate, under gaps
and backpressure, several images in a row, with its cycle model checked beat by beat."""

import pytest
import torch

from quant.config import SasaMode
from quant.golden import and_popcount, lif, sasa_gate
from quant.ir import signed_bits
from rtl_templates.common import pack_spikes
from rtl_templates.sasa import SASA
from sim.block_sim import verify_block

# Directed images, in order, before the random ones: (Q, K) as 0/1 fill or None for random.
DIRECTED = {
    "zero": (0, 0),     # nothing fires
    "ones": (1, 1),     # largest counts
    "q_only": (1, 0),   # Q all one, K zero: counts 0
    "k_only": (0, 1),   # K all one, Q zero: counts 0 (channel mode would pass K if it fired)
}


def _spikes(g, shape, fill, density):
    if fill is None:
        return (torch.rand(shape, generator=g) < density).to(torch.int64)
    return torch.full(shape, fill, dtype=torch.int64)


def _case(*, dim, heads, T, tokens, mode, vth, shift, images=3, seed=0, density=0.5,
          directed=()):
    """The block, its input words and the golden output words for `directed` images then
    `images` random ones (q, k: [T, B, D, N] as the golden functions take them)."""
    g = torch.Generator().manual_seed(seed)
    mode_enum = SasaMode(mode)
    qs, ks = [], []
    fills = [DIRECTED[d] for d in directed] + [(None, None)] * images
    for fq, fk in fills:
        qs.append(_spikes(g, (T, 1, dim, tokens), fq, density))
        ks.append(_spikes(g, (T, 1, dim, tokens), fk, density))
    q, k = torch.cat(qs, 1), torch.cat(ks, 1)
    counts = and_popcount(q, k, heads, mode_enum)
    count_max = dim // heads if mode == "channel" else tokens
    state_bits = signed_bits(0, max(count_max << shift, max(vth) - 1))
    v = torch.tensor(vth, dtype=torch.int64)
    attn = lif(counts, v.reshape(-1, 1) if mode == "channel" else v, shift, state_bits)
    y = sasa_gate(q, k, attn, heads, mode_enum)
    block = SASA(dim=dim, heads=heads, time_steps=T, tokens=tokens, mode=mode, agg_vth=vth,
                 agg_input_shift=shift, agg_state_bits=state_bits)
    # [T, B, D, N] -> beats in token-major, time-minor order per image: [B*N, T, D].
    qk = torch.cat([q, k], 2).permute(1, 3, 0, 2).reshape(-1, T, 2 * dim)
    words = pack_spikes(qk)
    expected = pack_spikes(y.permute(1, 3, 0, 2).reshape(-1, T, dim))
    return block, words, expected, attn


CHANNEL_CASES = [
    # dim, heads, T, tokens, vth, shift: one popcount stage, vth > 1 with membrane
    (12, 3, 5, 6, [1, 2, 3], 0),
    # the model's own neuron (shift 1, vth 1): the popcount is an OR
    (32, 2, 4, 4, [1, 1], 1),
    # three tree stages (40 channels in one head: 5 groups of 8, then 2 partials, then 1),
    # shift 1 with a threshold above 1
    (40, 1, 3, 5, [7], 1),
]


@pytest.mark.sim
@pytest.mark.parametrize("dim,heads,T,tokens,vth,shift", CHANNEL_CASES)
def test_sasa_channel(verilator, dim, heads, T, tokens, vth, shift):
    block, words, expected, attn = _case(dim=dim, heads=heads, T=T, tokens=tokens,
                                         mode="channel", vth=vth, shift=shift, seed=dim,
                                         density=0.4, directed=DIRECTED)
    # Guard the stimulus: the attention neuron both fires and stays silent.
    assert 0 < int(attn.sum()) < attn.numel()
    verify_block(block, {"i": words}, {"o": expected}, simulator=verilator, seed=dim,
                 gap=0.3, backpressure=0.3, tag="sasa_ch")


TOKEN_CASES = [
    # dim, T, tokens, vth (one per channel), shift; tokens = 6 is a 2x3 grid
    (12, 3, 6, [1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6], 0),
    (16, 4, 8, [1] * 16, 1),  # the model's neuron: OR over tokens
    (8, 1, 5, [1, 2, 3, 1, 2, 3, 4, 9], 1),  # one step: no membrane survives
    (6, 2, 1, [1, 1, 2, 2, 1, 1], 1),  # one token per image: N*T = 2
]


@pytest.mark.sim
@pytest.mark.parametrize("dim,T,tokens,vth,shift", TOKEN_CASES)
def test_sasa_token(verilator, dim, T, tokens, vth, shift):
    block, words, expected, attn = _case(dim=dim, heads=2, T=T, tokens=tokens, mode="token",
                                         vth=vth, shift=shift, seed=tokens, density=0.5,
                                         directed=DIRECTED)
    assert 0 < int(attn.sum()) < attn.numel()
    verify_block(block, {"i": words}, {"o": expected}, simulator=verilator, seed=tokens,
                 gap=0.3, backpressure=0.4, tag="sasa_tok")


@pytest.mark.sim
@pytest.mark.parametrize("gap,backpressure", [(0.6, 0.1), (0.1, 0.7)])
def test_sasa_token_unbalanced_flow(verilator, gap, backpressure):
    # A slow source or a slow sink: the intake and the replay overlap differently.
    block, words, expected, _ = _case(dim=12, heads=2, T=3, tokens=6, mode="token",
                                      vth=[1, 2, 3, 4, 5, 6] * 2, shift=0, images=4, seed=9)
    verify_block(block, {"i": words}, {"o": expected}, simulator=verilator, seed=3, gap=gap,
                 backpressure=backpressure, tag="sasa_tok")


@pytest.mark.sim
@pytest.mark.parametrize("mode", ["channel", "token"])
def test_sasa_free_flow_cycles(simulator, mode):
    # The first case of each mode (its Verilator build is shared with the tests above).
    if mode == "channel":
        dim, heads, T, tokens, vth, shift = CHANNEL_CASES[0]
    else:
        (dim, T, tokens, vth, shift), heads = TOKEN_CASES[0], 2
    images = 4
    block, words, expected, _ = _case(dim=dim, heads=heads, T=T, tokens=tokens, mode=mode,
                                      vth=vth, shift=shift, images=images - 1, seed=4,
                                      directed=("ones",))
    run = verify_block(block, {"i": words}, {"o": expected}, simulator=simulator,
                       tag="sasa_ch" if mode == "channel" else "sasa_tok")
    assert run.cycles == block.cycles(images)
    NT = tokens * T
    if mode == "channel":
        assert block.latency == 2 and run.cycles == images * NT + 2
    else:  # one idle cycle per image between intake and replay
        assert run.cycles == images * (NT + 1) + NT


def test_sasa_sizes():
    kw = dict(time_steps=4, tokens=64, mode="channel", agg_input_shift=1, agg_state_bits=10)
    assert SASA(dim=128, heads=4, agg_vth=[2] * 4, **kw).tree_stages == 2  # 32 = 4 x 8
    assert SASA(dim=40, heads=1, agg_vth=[2], **kw).tree_stages == 3  # 5 groups, 2, 1
    assert SASA(dim=128, heads=1, agg_vth=[2], **kw).tree_stages == 3  # 16 groups, 4, 1
    assert SASA(dim=8, heads=2, agg_vth=[2] * 2, **kw).tree_stages == 1
    assert SASA(dim=8, heads=2, agg_vth=[1] * 2, **kw).saturate
    assert not SASA(dim=8, heads=2, agg_vth=[1, 2], **kw).saturate


def test_sasa_rejects_bad_parameters():
    kw = dict(dim=12, heads=3, time_steps=4, tokens=6, mode="channel", agg_vth=[1, 1, 1],
              agg_input_shift=1, agg_state_bits=5)
    SASA(**kw)
    with pytest.raises(ValueError, match=r"heads \(5\) must divide 12"):
        SASA(**{**kw, "heads": 5})
    with pytest.raises(ValueError, match="mode must be one of 'channel', 'token', not 'global'"):
        SASA(**{**kw, "mode": "global"})
    with pytest.raises(ValueError, match="agg_vth must have 3 entries, not 12"):
        SASA(**{**kw, "agg_vth": [1] * 12})
    with pytest.raises(ValueError, match="agg_vth must have 12 entries, not 3"):
        SASA(**{**kw, "mode": "token"})
    with pytest.raises(ValueError, match="agg_vth must be >= 1 everywhere, not 0"):
        SASA(**{**kw, "agg_vth": [1, 0, 1]})
    with pytest.raises(ValueError, match="agg_state_bits must be >= 5 .*, not 4"):
        SASA(**{**kw, "agg_state_bits": 4})
    with pytest.raises(TypeError, match="tokens must be an integer >= 1, not 0"):
        SASA(**{**kw, "tokens": 0})
    with pytest.raises(TypeError, match="agg_input_shift must be an integer >= 0, not -1"):
        SASA(**{**kw, "agg_input_shift": -1})
    with pytest.raises(ValueError, match="family must be one of 'ice40', 'ecp5', not 'xc7'"):
        SASA(**kw).resources("xc7")


def test_sasa_mode_accepts_the_config_enum():
    block = SASA(dim=4, heads=1, time_steps=2, tokens=3, mode=SasaMode.TOKEN, agg_vth=[1] * 4,
                 agg_input_shift=1, agg_state_bits=4)
    assert block.mode == "token" and type(block.mode) is str


def test_seeded_inputs_differ():
    kw = dict(dim=8, heads=2, T=2, tokens=3, mode="channel", vth=[1, 1], shift=1)
    assert _case(**kw, seed=1)[1] != _case(**kw, seed=2)[1]


@pytest.mark.slow
@pytest.mark.parametrize("family", ["ice40", "ecp5"])
@pytest.mark.parametrize("mode,dim,heads,tokens,vth,shift", [
    ("channel", 64, 2, 16, [2, 2], 0),
    ("channel", 128, 4, 16, [1] * 4, 1),
    ("token", 32, 2, 16, [2] * 32, 0),
    ("token", 32, 2, 16, [1] * 32, 1),
])
def test_resource_estimate_against_yosys(family, mode, dim, heads, tokens, vth, shift):
    from hwgen.targets.synth import ToolMissing, synth_stats

    count_max = dim // heads if mode == "channel" else tokens
    block = SASA(dim=dim, heads=heads, time_steps=4, tokens=tokens, mode=mode, agg_vth=vth,
                 agg_input_shift=shift, agg_state_bits=signed_bits(0, count_max << shift))
    try:
        got = synth_stats(block, family)
    except ToolMissing as e:
        pytest.skip(str(e))
    est = block.resources(family)
    print(f"\nSASA {mode} dim {dim} on {family}: estimate vs Yosys: LUT {est.lut} / {got.lut} "
          f"({100 * (est.lut - got.lut) / got.lut:+.0f} %), FF {est.ff} / {got.ff}, "
          f"BRAM {est.bram(family)} / {got.bram}")
    assert got.unmapped == []
    assert est.bram(family) == got.bram
    assert abs(est.ff - got.ff) <= 0.02 * got.ff
    assert abs(est.lut - got.lut) <= (0.1 if mode == "channel" else 0.15) * got.lut
