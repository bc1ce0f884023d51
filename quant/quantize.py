"""The quantiser: float SAFormer -> typed integer model (docs/arithmetic.md).

Folds BN, quantises weights per output channel, puts biases and LIF
thresholds into each layer's integer scale, shares one scale per channel
among all writers of the residual stream, then derives every width.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from quant.config import SasaMode
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
from quant.model import ConvBN, SAFormer

QUANTIZER_VERSION = 1
LIF_MIN_VTH = 16  # smallest integer threshold before a LIF gets an input shift
MAX_INPUT_SHIFT = 8


@dataclass
class Folded:
    """A conv/linear with BN folded in: float weight [out, ...] and bias [out]."""

    weight: torch.Tensor
    bias: torch.Tensor

    def row_max(self) -> torch.Tensor:
        return self.weight.reshape(self.weight.shape[0], -1).abs().amax(1)


def fold_bn(layer: ConvBN) -> Folded:
    """w' = w * gamma / sqrt(var + eps); b' = (b - mean) * gamma / sqrt(var + eps) + beta."""
    conv, bn = layer.conv, layer.bn
    w = conv.weight.detach().double()
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    k = bn.weight.detach().double() / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    w = w * k.reshape(-1, *([1] * (w.dim() - 1)))
    b = (b - bn.running_mean.detach().double()) * k + bn.bias.detach().double()
    return Folded(w, b)


def channel_scale(folded: list[Folded], qmax: int) -> torch.Tensor:
    """Per-output-channel scale shared by `folded` writers: max |w'| over all of them / qmax.

    A channel whose weights are all zero takes its scale from its largest bias instead.
    """
    row = torch.stack([f.row_max() for f in folded]).amax(0)
    bias = torch.stack([f.bias.abs() for f in folded]).amax(0).clamp(min=1e-8)
    return torch.where(row > 0, row, bias) / qmax


def round_int(x: torch.Tensor) -> torch.Tensor:
    """Round half to even, to int64."""
    return torch.round(x).to(torch.int64)


def quantize_weight(w: torch.Tensor, scale: torch.Tensor, qmax: int) -> torch.Tensor:
    s = scale.reshape(-1, *([1] * (w.dim() - 1)))
    return round_int(w / s).clamp(-qmax, qmax)


def lif_threshold(vth: float, scale: torch.Tensor) -> LIFLayer:
    """vth_int = max(1, round(V_th * 2^k / s)) per channel, k = the layer's input_shift.

    k is the smallest shift that gives every channel at least LIF_MIN_VTH units of
    threshold, so the membrane's floor rounding stays small against the threshold
    (coarse at 4 bits otherwise); k = 0 when the thresholds are fine already.
    """
    raw = float((vth / scale).min())
    shift = 0
    while raw * (1 << shift) < LIF_MIN_VTH and shift < MAX_INPUT_SHIFT:
        shift += 1
    return LIFLayer(vth=round_int(vth * (1 << shift) / scale).clamp(min=1), input_shift=shift)


def quantize_model(model: SAFormer, weight_bits: int = 8, meta: dict | None = None) -> IntModel:
    if weight_bits not in (4, 8):
        raise ValueError(f"weight_bits must be 4 or 8, not {weight_bits!r}")
    cfg = model.cfg
    qmax = (1 << (weight_bits - 1)) - 1
    pixel_max = (1 << cfg.pixel_bits) - 1

    # Stem: the pixel conv's integer input is pixel = 255 * (float input), so its
    # accumulator is in scale s / 255 (bias and threshold are put in that scale).
    stem = []
    for i, stage in enumerate(model.stem):
        f = fold_bn(stage.conv)
        s = channel_scale([f], qmax)
        acc_scale = s / pixel_max if i == 0 else s
        conv = Conv3x3Layer(quantize_weight(f.weight, s, qmax), round_int(f.bias / acc_scale),
                            pixel_input=(i == 0), pixel_bits=cfg.pixel_bits)
        stem.append(StemStage(conv, lif_threshold(stage.lif.vth, acc_scale), stage.pool))

    # The residual stream: one scale per channel for every writer (rpe, o, dwc, fc2).
    rpe_f = fold_bn(model.rpe)
    writers = [rpe_f]
    folded_blocks = []
    for blk in model.blocks:
        fb = {name: fold_bn(layer) for name, layer in
              (("q", blk.sasa.q), ("k", blk.sasa.k), ("o", blk.sasa.o), ("dwc", blk.dwc),
               ("fc1", blk.fc1), ("fc2", blk.fc2))}
        folded_blocks.append(fb)
        writers += [fb["o"], fb["dwc"], fb["fc2"]]
    s_u = channel_scale(writers, qmax)

    def linear(f: Folded, s: torch.Tensor) -> LinearLayer:
        w = quantize_weight(f.weight, s, qmax)
        return LinearLayer(w.reshape(w.shape[0], w.shape[1]), round_int(f.bias / s))

    rpe = Conv3x3Layer(quantize_weight(rpe_f.weight, s_u, qmax), round_int(rpe_f.bias / s_u))
    agg_n = cfg.heads if cfg.sasa_mode == SasaMode.CHANNEL else cfg.dim
    blocks = []
    for blk, fb in zip(model.blocks, folded_blocks, strict=True):
        s_q, s_k, s_1 = (channel_scale([fb[n]], qmax) for n in ("q", "k", "fc1"))
        dwc_w = quantize_weight(fb["dwc"].weight, s_u, qmax)  # [D, 1, 3, 3]
        blocks.append(Block(
            attn_lif=lif_threshold(blk.attn_lif.vth, s_u),
            q=linear(fb["q"], s_q), q_lif=lif_threshold(blk.sasa.q_lif.vth, s_q),
            k=linear(fb["k"], s_k), k_lif=lif_threshold(blk.sasa.k_lif.vth, s_k),
            # The count is an exact integer and V_th = 0.5: run at half-unit scale.
            agg_lif=LIFLayer(vth=torch.ones(agg_n, dtype=torch.int64), input_shift=1),
            o=linear(fb["o"], s_u),
            dwc=DWConvLayer(dwc_w.reshape(dwc_w.shape[0], 3, 3), round_int(fb["dwc"].bias / s_u)),
            mlp_lif=lif_threshold(blk.mlp_lif.vth, s_u),
            fc1=linear(fb["fc1"], s_1), fc1_lif=lif_threshold(blk.fc1_lif.vth, s_1),
            fc2=linear(fb["fc2"], s_u)))

    # Head: logits * T * N = W @ counts + b * T * N; one scale so classes compare like with like.
    hw = model.head.weight.detach().double()
    hb = model.head.bias.detach().double()
    s_h = float(hw.abs().max().clamp(min=1e-12)) / qmax
    steps = cfg.time_steps * cfg.tokens
    head = Head(lif=lif_threshold(model.head_lif.vth, s_u),
                weight=round_int(hw / s_h).clamp(-qmax, qmax), bias=round_int(hb * steps / s_h))
    int_model = IntModel(config=cfg, weight_bits=weight_bits, stem=stem, rpe=rpe, blocks=blocks,
                         head=head, meta={"quantizer_version": QUANTIZER_VERSION, **(meta or {})})
    return derive_widths(int_model)


def quantize_checkpoint(path: Path, weight_bits: int = 8) -> IntModel:
    """Load and check a float checkpoint (ModelFileError if bad), quantise it."""
    from quant.checkpoint import load_checkpoint

    model, ckpt = load_checkpoint(Path(path))
    meta = {"source": Path(path).name}
    if ckpt.get("test_accuracy") is not None:
        meta["float_test_accuracy"] = ckpt["test_accuracy"]
    return quantize_model(model, weight_bits, meta)


def report_accuracy(checkpoint: Path, model: IntModel, other_bits: tuple[int, ...] = ()) -> str:
    """Float vs integer accuracy on the digits test split, as printable lines.

    Also quantises the checkpoint at each of `other_bits` and reports those.
    Records the integer accuracy in `model.meta['int_test_accuracy']`.
    """
    from quant import golden
    from quant.checkpoint import load_checkpoint
    from quant.data import load_digits_split, pixels_to_float

    float_model, _ = load_checkpoint(Path(checkpoint))
    cfg = float_model.cfg
    if (cfg.image_channels, cfg.image_size, cfg.num_classes) != (1, (8, 8), 10):
        return f"(no accuracy report: config {cfg.name!r} does not take 8x8 digits)"
    data = load_digits_split()
    labels = data.test_labels
    with torch.no_grad():
        float_pred = float_model(pixels_to_float(data.test_pixels)).argmax(-1)
    float_acc = float((float_pred == labels).double().mean())
    lines = [f"digits test split ({len(labels)} images), {cfg.name}:",
             f"  float model          {100 * float_acc:6.2f} %"]
    runs = [(model.weight_bits, model)]
    runs += [(b, quantize_model(float_model, b)) for b in other_bits if b != model.weight_bits]
    for bits, m in runs:
        pred = golden.predict(m, data.test_pixels)
        acc = float((pred == labels).double().mean())
        agree = float((pred == float_pred).double().mean())
        if m is model:
            model.meta["int_test_accuracy"] = acc
        lines.append(f"  integer, {bits}-bit      {100 * acc:6.2f} %   "
                     f"({100 * (acc - float_acc):+.2f} points; same prediction as float on "
                     f"{100 * agree:.1f} %)")
    return "\n".join(lines)
