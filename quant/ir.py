"""The integer model: typed layers of a quantised SAFormer (docs/arithmetic.md).

This is the contract between software and hardware. Every tensor is int64 in
memory; the declared bit widths say what the hardware holds. `derive_widths`
computes those widths from worst-case bounds so overflow is impossible.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from quant.config import ModelConfig, SasaMode

FORMAT_NAME = "hwgen-int-model"
FORMAT_VERSION = 2  # 2: config.input ("frames"); image models are still written as version 1
READ_VERSIONS = (1, 2)


def signed_bits(lo: int, hi: int) -> int:
    """Smallest two's-complement width holding every integer in [lo, hi]."""
    lo, hi = int(lo), int(hi)
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def fits_signed(t: torch.Tensor, bits: int) -> bool:
    if t.numel() == 0:
        return True
    return bool(t.min() >= -(1 << (bits - 1)) and t.max() <= (1 << (bits - 1)) - 1)


@dataclass
class LinearLayer:
    """Spike-input linear (1x1 conv): out[o] = bias[o] + sum of weight[o, i] where s[i] = 1."""

    weight: torch.Tensor  # [out, in]
    bias: torch.Tensor  # [out]
    acc_bits: int = 0

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    def output_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.weight.reshape(self.weight.shape[0], -1)
        return (self.bias + w.clamp(max=0).sum(1), self.bias + w.clamp(min=0).sum(1))


@dataclass
class Conv3x3Layer:
    """3x3 conv, stride 1, zero padding 1. Spike input unless `pixel_input` (multiplies)."""

    weight: torch.Tensor  # [out, in, 3, 3]
    bias: torch.Tensor  # [out]
    pixel_input: bool = False
    pixel_bits: int = 8
    acc_bits: int = 0

    @property
    def in_channels(self) -> int:
        return self.weight.shape[1]

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    def output_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.weight.reshape(self.weight.shape[0], -1)
        scale = (1 << self.pixel_bits) - 1 if self.pixel_input else 1
        return (self.bias + scale * w.clamp(max=0).sum(1),
                self.bias + scale * w.clamp(min=0).sum(1))


@dataclass
class DWConvLayer:
    """Depthwise 3x3 conv on spikes, zero padding 1: out[c] = bias[c] + sum of weight[c, k] where the k-th neighbour spikes."""

    weight: torch.Tensor  # [C, 3, 3]
    bias: torch.Tensor  # [C]
    acc_bits: int = 0

    def output_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.weight.reshape(self.weight.shape[0], -1)
        return (self.bias + w.clamp(max=0).sum(1), self.bias + w.clamp(min=0).sum(1))


@dataclass
class LIFLayer:
    """Integer LIF (tau = 2, hard reset): X' = X << input_shift; H = (X' + V) >> 1; S = H >= vth; V = S ? 0 : H."""

    vth: torch.Tensor  # [C] per-channel integer thresholds, >= 1
    state_bits: int = 0  # signed width of X', H and V
    input_shift: int = 0

    @property
    def channels(self) -> int:
        return self.vth.shape[0]

    def state_range(self, x_lo: int, x_hi: int) -> tuple[int, int]:
        x_lo, x_hi = x_lo << self.input_shift, x_hi << self.input_shift
        return min(x_lo, 0), max(x_hi, int(self.vth.max()) - 1, 0)


@dataclass
class StemStage:
    conv: Conv3x3Layer
    lif: LIFLayer
    pool: bool


@dataclass
class Block:
    """One SAFormer block: U += SASA(S) + DWC(S) with S = LIF(U); U += MLP(LIF(U))."""

    attn_lif: LIFLayer  # S = LIF(U) feeding SASA and DWC
    q: LinearLayer
    q_lif: LIFLayer
    k: LinearLayer
    k_lif: LIFLayer
    agg_lif: LIFLayer  # attention neuron: one per head (channel mode) or per channel (token mode)
    o: LinearLayer  # writes the residual stream
    dwc: DWConvLayer  # writes the residual stream
    mlp_lif: LIFLayer  # S = LIF(U) feeding the MLP
    fc1: LinearLayer
    fc1_lif: LIFLayer
    fc2: LinearLayer  # writes the residual stream


@dataclass
class Head:
    """S = LIF(U); logits[k] = bias[k] + sum over t, n, c of weight[k, c] * S[t, n, c]; class = first argmax."""

    lif: LIFLayer
    weight: torch.Tensor  # [classes, D]
    bias: torch.Tensor  # [classes], already in the accumulated (T * N summed) domain
    acc_bits: int = 0


@dataclass
class IntModel:
    config: ModelConfig
    weight_bits: int
    stem: list[StemStage]
    rpe: Conv3x3Layer  # starts the residual stream U
    blocks: list[Block]
    head: Head
    u_bits: int = 0  # signed width of the residual stream
    meta: dict = field(default_factory=dict)  # provenance: accuracies, source checkpoint

    def named_lifs(self) -> list[tuple[str, LIFLayer]]:
        out = [(f"stem.{i}.lif", s.lif) for i, s in enumerate(self.stem)]
        for b, blk in enumerate(self.blocks):
            for name in ("attn_lif", "q_lif", "k_lif", "agg_lif", "mlp_lif", "fc1_lif"):
                out.append((f"blocks.{b}.{name}", getattr(blk, name)))
        out.append(("head.lif", self.head.lif))
        return out

    def named_weights(self) -> list[tuple[str, torch.Tensor]]:
        """Every weight tensor (not biases or thresholds), for memory sizing."""
        out = [(f"stem.{i}.conv.weight", s.conv.weight) for i, s in enumerate(self.stem)]
        out.append(("rpe.weight", self.rpe.weight))
        for b, blk in enumerate(self.blocks):
            for name in ("q", "k", "o", "dwc", "fc1", "fc2"):
                out.append((f"blocks.{b}.{name}.weight", getattr(blk, name).weight))
        out.append(("head.weight", self.head.weight))
        return out

    def weight_memory_bits(self) -> int:
        return sum(w.numel() * self.weight_bits for _, w in self.named_weights())

    def parameter_count(self) -> int:
        n = sum(w.numel() for _, w in self.named_weights())
        n += sum(s.conv.bias.numel() for s in self.stem) + self.rpe.bias.numel()
        for blk in self.blocks:
            n += sum(getattr(blk, k).bias.numel() for k in ("q", "k", "o", "dwc", "fc1", "fc2"))
        return n + self.head.bias.numel()


def derive_widths(model: IntModel) -> IntModel:
    """Return a copy whose acc_bits, state_bits and u_bits follow from worst-case bounds.

    Every accumulator is wide enough for any spike pattern (and any pixel
    value), so no value can overflow; docs/arithmetic.md §Widths.
    """
    cfg = model.config

    def conv_w(layer):
        lo, hi = layer.output_range()
        return replace(layer, acc_bits=signed_bits(lo.min(), hi.max())), int(lo.min()), int(hi.max())

    def lif_w(lif: LIFLayer, lo: int, hi: int) -> LIFLayer:
        s_lo, s_hi = lif.state_range(lo, hi)
        return replace(lif, state_bits=signed_bits(s_lo, s_hi))

    stem = []
    for stage in model.stem:
        conv, lo, hi = conv_w(stage.conv)
        stem.append(StemStage(conv, lif_w(stage.lif, lo, hi), stage.pool))
    rpe, _, _ = conv_w(model.rpe)

    # Residual stream: per-channel ranges through every partial sum.
    u_lo, u_hi = model.rpe.output_range()
    u_bits = signed_bits(u_lo.min(), u_hi.max())
    blocks = []
    for blk in model.blocks:
        attn_lif = lif_w(blk.attn_lif, int(u_lo.min()), int(u_hi.max()))
        q, qlo, qhi = conv_w(blk.q)
        k, klo, khi = conv_w(blk.k)
        count_max = cfg.head_dim if cfg.sasa_mode == SasaMode.CHANNEL else cfg.tokens
        agg_lif = lif_w(blk.agg_lif, 0, count_max)
        o, _, _ = conv_w(blk.o)
        dwc, _, _ = conv_w(blk.dwc)
        o_lo, o_hi = blk.o.output_range()
        d_lo, d_hi = blk.dwc.output_range()
        mid_lo, mid_hi = u_lo + o_lo, u_hi + o_hi
        u_bits = max(u_bits, signed_bits(mid_lo.min(), mid_hi.max()))
        u_lo, u_hi = mid_lo + d_lo, mid_hi + d_hi
        u_bits = max(u_bits, signed_bits(u_lo.min(), u_hi.max()))
        mlp_lif = lif_w(blk.mlp_lif, int(u_lo.min()), int(u_hi.max()))
        fc1, f_lo, f_hi = conv_w(blk.fc1)
        fc2, _, _ = conv_w(blk.fc2)
        f2_lo, f2_hi = blk.fc2.output_range()
        u_lo, u_hi = u_lo + f2_lo, u_hi + f2_hi
        u_bits = max(u_bits, signed_bits(u_lo.min(), u_hi.max()))
        blocks.append(Block(attn_lif, q, lif_w(blk.q_lif, qlo, qhi), k, lif_w(blk.k_lif, klo, khi),
                            agg_lif, o, dwc, mlp_lif, fc1, lif_w(blk.fc1_lif, f_lo, f_hi), fc2))
    head_lif = lif_w(model.head.lif, int(u_lo.min()), int(u_hi.max()))
    steps = cfg.time_steps * cfg.tokens
    w = model.head.weight
    h_lo = model.head.bias + steps * w.clamp(max=0).sum(1)
    h_hi = model.head.bias + steps * w.clamp(min=0).sum(1)
    head = replace(model.head, lif=head_lif, acc_bits=signed_bits(h_lo.min(), h_hi.max()))
    # The LIFs that read U hold U-wide state at least (they see every U value).
    return replace(model, stem=stem, rpe=rpe, blocks=blocks, head=head, u_bits=u_bits)
