"""The transformer body on one engine (hwgen.compiler.engine_body): a random two-block
model's last u_mlp tap from its rpe tap, bit-exact and cycle-exact, under gaps and stalls on
every stream and the memory port, and through MemPortRAM."""

import pytest
import torch

from hwgen.compiler.engine_body import body_sequence
from quant.config import get_config
from quant.golden import run
from quant.random_model import random_int_model
from rtl_templates.common import pack_values
from rtl_templates.engine_sequence import sequence_image
from rtl_templates.linear_engine import pack_engine_values
from rtl_templates.memport import MemPortRAM
from sim.memory_sim import verify_memory_block, verify_with_ram


def _tile_major(x, b, T, bits, pe):
    """[T, B, C, H, W] tap -> image b's beats, tile-major (for g: for n: for t)."""
    tokens = x[:, b].reshape(T, x.shape[2], -1).permute(2, 0, 1).tolist()
    return pack_engine_values(tokens, bits, pe)


def _token_major(x, b, T, bits, pe):
    """[T, B, C, H, W] tap -> image b's beats in the on-chip values order."""
    return pack_values(x[:, b].reshape(T, x.shape[2], -1).permute(2, 0, 1).numpy(), bits, pe)


def _body(cfg, seed, images, **knobs):
    model = random_int_model(cfg, seed=seed)
    shape = (images, cfg.image_channels, *cfg.image_size)
    px = torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(seed))
    taps = run(model, px, check_widths=True)
    seq = body_sequence(model, **knobs)
    T, last = cfg.time_steps, f"blocks.{cfg.depth - 1}.u_mlp"
    pack = _token_major if knobs.get("token_major") else _tile_major
    ins = [w for b in range(images) for w in pack(taps["rpe"], b, T, model.u_bits, seq.pe)]
    exp = [w for b in range(images) for w in pack(taps[last], b, T, model.u_bits, seq.pe)]
    return seq, {"i": ins}, {"o": exp}


@pytest.mark.sim
def test_two_blocks_on_one_engine(verilator):
    cfg = get_config("digits-tiny").replace(depth=2, dim=16, heads=2, mlp_ratio=2)
    seq, ins, exp = _body(cfg, 13, 2, pe=4, simd=4, beat_bits=16, max_burst=16, addr_bits=12)
    assert len(seq.layers) == 8 and max(seq.act_of) == 3  # four spike memories, shared
    words = sequence_image(seq)
    for kw in ({}, dict(seed=7, gap=0.3, backpressure=0.5, mem_stall=0.3, mem_gap=0.4)):
        verify_memory_block(seq, ins, exp, words=words, latency=5, simulator=verilator,
                            tag="body", **kw)
    verify_with_ram(seq, ins, exp, words=words, ram_class=MemPortRAM, simulator=verilator,
                    seed=3, gap=0.2, backpressure=0.3, latency=6, interval=2,
                    refresh_period=101, refresh_cycles=9, tag="body-ram")


@pytest.mark.sim
def test_body_in_the_on_chip_stream_order(verilator):
    """token_major: U in and U'' out as the on-chip blocks stream them (a LIF pass over U
    before the first layer, an output pass after the last), so the body can replace them."""
    cfg = get_config("digits-tiny").replace(depth=2, dim=16, heads=2, mlp_ratio=2)
    seq, ins, exp = _body(cfg, 17, 2, pe=4, simd=4, beat_bits=16, max_burst=16, addr_bits=12,
                          token_major=True)
    for kw in ({}, dict(seed=8, gap=0.3, backpressure=0.6, mem_stall=0.3, mem_gap=0.3)):
        verify_memory_block(seq, ins, exp, words=sequence_image(seq), latency=5,
                            simulator=verilator, tag="body-tm", **kw)


def test_body_rejects_event_mode():
    model = random_int_model(get_config("digits-tiny"), seed=1)
    with pytest.raises(ValueError, match="dense only"):
        body_sequence(model, pe=4, simd=4, mode="event")


@pytest.mark.sim
@pytest.mark.slow  # ~1.6 M cycles an image through the cocotb memory responder
def test_paper_width_block_on_one_engine(verilator):
    """One cifar-paper block (D = 384, 12 heads, MLP ratio 4, 64 tokens, T = 4) on the
    engine cifar-paper's plan would use (pe 64, simd 4): bit-exact and cycle-exact."""
    cfg = get_config("cifar-paper").replace(depth=1)
    seq, ins, exp = _body(cfg, 21, 1, pe=64, simd=4, beat_bits=16, max_burst=64, addr_bits=24)
    verify_memory_block(seq, ins, exp, words=sequence_image(seq), latency=9,
                        simulator=verilator, timeout=20_000_000, tag="body-paper")
