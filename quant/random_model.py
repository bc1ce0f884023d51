"""Integer models with seeded random weights, for configs that are not trained here.

Bit-exactness needs no training: hardware and golden model must agree on any
weights. Thresholds are set so spike rates are neither 0 nor 1 on random data.
"""

from __future__ import annotations

import torch

from quant.config import ModelConfig
from quant.ir import (
    Block,
    Conv3x3Layer,
    DWConvLayer,
    Head,
    IntModel,
    LIFLayer,
    LinearLayer,
    StemStage,
    derive_widths,
)


def random_int_model(cfg: ModelConfig, weight_bits: int = 8, seed: int = 0) -> IntModel:
    g = torch.Generator().manual_seed(seed)
    qmax = (1 << (weight_bits - 1)) - 1

    def w(*shape: int) -> torch.Tensor:
        return torch.randint(-qmax, qmax + 1, shape, generator=g, dtype=torch.int64)

    def b(n: int, fan_in: int) -> torch.Tensor:
        span = max(1, qmax * max(1, fan_in) // 8)
        return torch.randint(-span, span + 1, (n,), generator=g, dtype=torch.int64)

    def lif(n: int, fan_in: int, scale: int = 1) -> LIFLayer:
        # About a quarter of the worst-case swing: neurons fire, but not always.
        top = max(2, qmax * fan_in * scale // 6)
        return LIFLayer(vth=torch.randint(1, top, (n,), generator=g, dtype=torch.int64))

    stem = []
    cin = cfg.image_channels
    for i, (cout, pool) in enumerate(zip(cfg.stem_channels, cfg.stem_pool, strict=True)):
        pix = i == 0 and not cfg.frames
        scale = (1 << cfg.pixel_bits) - 1 if pix else 1
        conv = Conv3x3Layer(w(cout, cin, 3, 3), b(cout, 9 * cin * scale), pixel_input=pix,
                            pixel_bits=cfg.pixel_bits)
        stem.append(StemStage(conv, lif(cout, 9 * cin, scale), pool))
        cin = cout
    d, hdim = cfg.dim, cfg.hidden
    rpe = Conv3x3Layer(w(d, cin, 3, 3), b(d, 9 * cin))
    agg_n = cfg.heads if cfg.sasa_mode.value == "channel" else d
    blocks = []
    for _ in range(cfg.depth):
        blocks.append(Block(
            attn_lif=lif(d, 9 * cin), q=LinearLayer(w(d, d), b(d, d)), q_lif=lif(d, d),
            k=LinearLayer(w(d, d), b(d, d)), k_lif=lif(d, d),
            agg_lif=LIFLayer(vth=torch.ones(agg_n, dtype=torch.int64), input_shift=1),
            o=LinearLayer(w(d, d), b(d, d)), dwc=DWConvLayer(w(d, 3, 3), b(d, 9)),
            mlp_lif=lif(d, 9 * cin), fc1=LinearLayer(w(hdim, d), b(hdim, d)),
            fc1_lif=lif(hdim, d), fc2=LinearLayer(w(d, hdim), b(d, hdim))))
    steps = cfg.time_steps * cfg.tokens
    head = Head(lif=lif(d, 9 * cin), weight=w(cfg.num_classes, d),
                bias=b(cfg.num_classes, d) * steps)
    model = IntModel(config=cfg, weight_bits=weight_bits, stem=stem, rpe=rpe, blocks=blocks,
                     head=head, meta={"source": f"random weights, seed {seed}"})
    return derive_widths(model)


def random_pixels(cfg: ModelConfig, n: int, seed: int = 0) -> torch.Tensor:
    """Seeded random samples: pixels [n, C, H, W], or event frames [n, T, 2, H, W] of 0/1."""
    g = torch.Generator().manual_seed(seed)
    h, w = cfg.image_size
    if cfg.frames:
        return torch.randint(0, 2, (n, cfg.time_steps, 2, h, w), generator=g, dtype=torch.int64)
    return torch.randint(0, 1 << cfg.pixel_bits, (n, cfg.image_channels, h, w), generator=g,
                         dtype=torch.int64)
