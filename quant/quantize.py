"""The quantiser: float SAFormer -> typed integer model (docs/arithmetic.md).

Folds BN, quantises weights per output channel, puts biases and LIF
thresholds into each layer's integer scale, shares one scale per channel
among all writers of the residual stream, then derives every width.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from quant import golden
from quant.checkpoint import load_checkpoint
from quant.config import SasaMode
from quant.data import load_digits_split, pixels_to_float, to_model_input
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


def input_means(model: SAFormer, images: torch.Tensor, batch: int = 256) -> dict[str, torch.Tensor]:
    """Mean input of every conv/linear over `images` (float, [B, C, H, W]), for bias correction.

    Keyed by module name; each mean broadcasts against the layer's folded weight: the
    mean of every 3x3 window tap ([C, k, k], or [C, 1, k, k] depthwise) or of the
    head's spike rates ([D]). Spike inputs give spike rates, the pixel conv pixel / 255.
    """
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def record(name: str, mod: torch.nn.Module):
        def hook(_module, inputs, _output):
            x = inputs[0].detach().double()
            if isinstance(mod, ConvBN):
                x = x.flatten(0, 1)  # [T*B, C, H, W]
                k = mod.conv.kernel_size[0]
                cols = torch.nn.functional.unfold(x, k, padding=k // 2)  # [TB, C*k*k, HW]
                total, n = cols.sum(dim=(0, 2)).reshape(x.shape[1], k, k), cols.shape[0] * cols.shape[2]
                if mod.conv.groups > 1:
                    total = total.unsqueeze(1)
            else:
                total, n = x.sum(0), x.shape[0]
            sums[name] = sums.get(name, 0) + total
            counts[name] = counts.get(name, 0) + n
        return hook

    hooks = [mod.register_forward_hook(record(name, mod)) for name, mod in model.named_modules()
             if isinstance(mod, ConvBN) or mod is model.head]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, images.shape[0], batch):
                model(images[i:i + batch])
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {name: sums[name] / counts[name] for name in sums}


def quantize_layer(f: Folded, s: torch.Tensor, qmax: int, mean_in: torch.Tensor | None = None,
                   acc_scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(w_int, b_int). With `mean_in`, the bias absorbs the mean rounding error of the
    weights, sum (w' - s * w_int) * E[x] (bias correction; docs/arithmetic.md)."""
    w_int = quantize_weight(f.weight, s, qmax)
    bias = f.bias
    if mean_in is not None:
        err = f.weight - w_int.double() * s.reshape(-1, *([1] * (f.weight.dim() - 1)))
        bias = bias + (err * mean_in).reshape(err.shape[0], -1).sum(1)
    return w_int, round_int(bias / (s if acc_scale is None else acc_scale))


def quantize_model(model: SAFormer, weight_bits: int = 8, meta: dict | None = None,
                   calibration: torch.Tensor | None = None) -> IntModel:
    """Quantise `model` (docs/arithmetic.md). `calibration`: float images [B, C, H, W] whose
    mean layer inputs correct the biases; None quantises without data."""
    if weight_bits not in (4, 8):
        raise ValueError(f"weight_bits must be 4 or 8, not {weight_bits!r}")
    cfg = model.cfg
    qmax = (1 << (weight_bits - 1)) - 1
    pixel_max = (1 << cfg.pixel_bits) - 1
    means = input_means(model, calibration) if calibration is not None else {}

    # Stem: the pixel conv's integer input is pixel = 255 * (float input), so its
    # accumulator is in scale s / 255 (bias and threshold are put in that scale). Event
    # frames are spikes already: their first conv is a spike conv like the others.
    stem = []
    for i, stage in enumerate(model.stem):
        f = fold_bn(stage.conv)
        s = channel_scale([f], qmax)
        pixels = i == 0 and not cfg.frames
        acc_scale = s / pixel_max if pixels else s
        w, b = quantize_layer(f, s, qmax, means.get(f"stem.{i}.conv"), acc_scale)
        conv = Conv3x3Layer(w, b, pixel_input=pixels, pixel_bits=cfg.pixel_bits)
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

    rpe = Conv3x3Layer(*quantize_layer(rpe_f, s_u, qmax, means.get("rpe")))
    agg_n = cfg.heads if cfg.sasa_mode == SasaMode.CHANNEL else cfg.dim
    blocks = []
    for b, (blk, fb) in enumerate(zip(model.blocks, folded_blocks, strict=True)):
        names = {"q": "sasa.q", "k": "sasa.k", "o": "sasa.o", "dwc": "dwc", "fc1": "fc1", "fc2": "fc2"}
        scale = {"q": channel_scale([fb["q"]], qmax), "k": channel_scale([fb["k"]], qmax),
                 "fc1": channel_scale([fb["fc1"]], qmax), "o": s_u, "dwc": s_u, "fc2": s_u}
        q = {n: quantize_layer(fb[n], scale[n], qmax, means.get(f"blocks.{b}.{names[n]}"))
             for n in names}

        def linear(n: str, q=q) -> LinearLayer:
            w, bias = q[n]
            return LinearLayer(w.reshape(w.shape[0], w.shape[1]), bias)

        dwc_w, dwc_b = q["dwc"]  # weight [D, 1, 3, 3]
        blocks.append(Block(
            attn_lif=lif_threshold(blk.attn_lif.vth, s_u),
            q=linear("q"), q_lif=lif_threshold(blk.sasa.q_lif.vth, scale["q"]),
            k=linear("k"), k_lif=lif_threshold(blk.sasa.k_lif.vth, scale["k"]),
            # The count is an exact integer and V_th = 0.5: run at half-unit scale.
            agg_lif=LIFLayer(vth=torch.ones(agg_n, dtype=torch.int64), input_shift=1),
            o=linear("o"),
            dwc=DWConvLayer(dwc_w.reshape(dwc_w.shape[0], 3, 3), dwc_b),
            mlp_lif=lif_threshold(blk.mlp_lif.vth, s_u),
            fc1=linear("fc1"), fc1_lif=lif_threshold(blk.fc1_lif.vth, scale["fc1"]),
            fc2=linear("fc2")))

    # Head: logits * T * N = W @ counts + b * T * N; one scale so classes compare like with like.
    head_f = Folded(model.head.weight.detach().double(), model.head.bias.detach().double())
    s_h = torch.full((cfg.num_classes,), float(head_f.row_max().max().clamp(min=1e-12)) / qmax,
                     dtype=torch.float64)
    steps = cfg.time_steps * cfg.tokens
    hw, hb = quantize_layer(head_f, s_h, qmax, means.get("head"), s_h / steps)
    head = Head(lif=lif_threshold(model.head_lif.vth, s_u), weight=hw, bias=hb)
    meta = {"quantizer_version": QUANTIZER_VERSION, **(meta or {})}
    int_model = IntModel(config=cfg, weight_bits=weight_bits, stem=stem, rpe=rpe, blocks=blocks,
                         head=head, meta=meta)
    return derive_widths(int_model)


def digits_calibration(cfg) -> torch.Tensor | None:
    """The digits training split (float) when the config reads digits, else None."""
    if (cfg.image_channels, cfg.image_size, cfg.num_classes) != (1, (8, 8), 10):
        return None
    return pixels_to_float(load_digits_split().train_pixels)


def quantize_checkpoint(path: Path, weight_bits: int = 8, data=None) -> IntModel:
    """Load and check a float checkpoint (ModelFileError if bad), quantise it, bias-corrected
    on `data`'s training part (a quant.datasets.DataSplit) or, without data, on the digits
    training split when the config reads digits."""
    model, ckpt = load_checkpoint(Path(path))
    if data is not None:
        calibration, used = to_model_input(model.cfg, data.train_pixels), f"train part of {data.source}"
    else:
        calibration = digits_calibration(model.cfg)
        used = "digits train split" if calibration is not None else "none"
    meta = {"source": Path(path).name, "bias_correction": used}
    if ckpt.get("test_accuracy") is not None:
        meta["float_test_accuracy"] = ckpt["test_accuracy"]
    return quantize_model(model, weight_bits, meta, calibration)


def report_accuracy(checkpoint: Path, model: IntModel, other_bits: tuple[int, ...] = (),
                    data=None) -> str:
    """Float vs integer accuracy on `data`'s test part (default: the digits test split), as
    printable lines.

    Also quantises the checkpoint at each of `other_bits` (bias-corrected on the same
    data's training part) and reports those. Records the integer accuracy in
    `model.meta['int_test_accuracy']`.
    """
    float_model, _ = load_checkpoint(Path(checkpoint))
    cfg = float_model.cfg
    if data is None:
        if (cfg.image_channels, cfg.image_size, cfg.num_classes) != (1, (8, 8), 10):
            return f"(no accuracy report: config {cfg.name!r} does not take 8x8 digits)"
        data, title = load_digits_split(), "digits test split"
    else:
        title = f"test part of {data.source}"
    labels = data.test_labels
    with torch.no_grad():
        float_pred = float_model(to_model_input(cfg, data.test_pixels)).argmax(-1)
    float_acc = float((float_pred == labels).double().mean())
    lines = [f"{title} ({len(labels)} images), {cfg.name}:",
             f"  float model          {100 * float_acc:6.2f} %"]
    runs = [(model.weight_bits, model)]
    calibration = to_model_input(cfg, data.train_pixels)
    runs += [(b, quantize_model(float_model, b, calibration=calibration))
             for b in other_bits if b != model.weight_bits]
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
