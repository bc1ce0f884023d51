"""Quantisation-aware fine-tuning: train the float SAFormer through its own integer model.

`fake_quant_logits` computes the integer model of docs/arithmetic.md in float64
"integer units": BN folded with the running statistics, weights and biases
rounded exactly as `quant.quantize.quantize_model` rounds them (same scales,
same shared residual scale, same half-to-even rounding, no bias correction),
the integer LIF with its thresholds, input shifts and floor halving. Rounding
and flooring pass gradients straight through (STE); spikes use the float
model's sigmoid surrogate on the membrane in float units. So after `qat`, the
model `quantize_model(model, bits)` writes computes what was trained.

Why not Brevitas: it quantises each layer on its own (its own scale and rounding
per QuantConv/QuantLinear); the integer contract here needs BN folded before
rounding, one scale shared by every writer of the residual stream, a
threshold-resolution shift per LIF layer and the integer LIF's floor halving.
Expressing those as Brevitas quantisers would be more code than these few
functions, and a heavy dependency for none of its export paths.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from quant import golden
from quant.checkpoint import load_checkpoint
from quant.data import to_model_input
from quant.datasets import load_data
from quant.ir import IntModel
from quant.model import ConvBN, SAFormer, and_popcount, maxpool2x2, sasa_gate, spike
from quant.quantize import Folded, channel_scale, lif_threshold, quantize_model
from quant.train import shift_augment

F64 = torch.float64


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round half to even forward, identity backward."""
    return x + (torch.round(x) - x).detach()


def ste_floor(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.floor(x) - x).detach()


def fold_bn_diff(layer: ConvBN) -> Folded:
    """quant.quantize.fold_bn with gradients to the conv and BN parameters (the same float64
    expression, so the forward values are identical)."""
    conv, bn = layer.conv, layer.bn
    w = conv.weight.double()
    b = conv.bias.double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=F64)
    k = bn.weight.double() / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    w = w * k.reshape(-1, *([1] * (w.dim() - 1)))
    b = (b - bn.running_mean.detach().double()) * k + bn.bias.double()
    return Folded(w, b)


def _detached(f: Folded) -> Folded:
    return Folded(f.weight.detach(), f.bias.detach())


class _Layer:
    """One folded conv/linear in integer units: y_int = conv(x, w_int) + b_int."""

    def __init__(self, f: Folded, s: torch.Tensor, qmax: int, acc_scale: torch.Tensor,
                 groups: int = 1):
        shape = (-1, *([1] * (f.weight.dim() - 1)))
        self.w = ste_round(f.weight / s.reshape(shape)).clamp(-qmax, qmax)
        self.b = ste_round(f.bias / acc_scale)
        self.acc_scale, self.groups = acc_scale, groups

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        t, b = x.shape[:2]
        k = self.w.shape[-1]
        y = nn.functional.conv2d(x.flatten(0, 1), self.w, self.b, padding=k // 2, groups=self.groups)
        return y.reshape(t, b, *y.shape[1:])


def int_lif(x: torch.Tensor, vth: float, acc_scale: torch.Tensor, alpha: float) -> torch.Tensor:
    """The integer LIF (docs/arithmetic.md) on x [T, B, C, H, W] or [T, B, C] in integer units:
    H = floor((X << k + V) / 2), S = H >= vth_int, V = 0 if S else H."""
    layer = lif_threshold(vth, acc_scale)
    extra = x.dim() - 3
    vth_int = layer.vth.to(F64).reshape(-1, *([1] * extra))
    unit = (acc_scale / (1 << layer.input_shift)).reshape(-1, *([1] * extra))
    v = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        h = ste_floor((x[t] * (1 << layer.input_shift) + v) / 2)
        s = spike((h - vth_int) * unit, alpha)  # the float model's surrogate, in float units
        v = h * (1 - s)
        out.append(s)
    return torch.stack(out)


def fake_quant_logits(model: SAFormer, pixels: torch.Tensor, weight_bits: int) -> torch.Tensor:
    """Logits of the integer model `quantize_model(model, weight_bits)` (no bias correction)
    would compute, as float64 integers [B, classes], differentiable. `pixels`: [B, C, H, W]
    integers (any dtype), or event frames [B, T, 2, H, W] of 0/1."""
    cfg = model.cfg
    qmax = (1 << (weight_bits - 1)) - 1
    pixel_max = (1 << cfg.pixel_bits) - 1
    T = cfg.time_steps
    x = pixels.to(F64)

    s_prev = None
    for i, stage in enumerate(model.stem):
        f = fold_bn_diff(stage.conv)
        s = channel_scale([_detached(f)], qmax)
        pixel_conv = i == 0 and not cfg.frames
        acc = s / pixel_max if pixel_conv else s
        layer = _Layer(f, s, qmax, acc)
        if pixel_conv:
            y = layer(x.unsqueeze(0))
            y = y.expand(T, *y.shape[1:])
        else:
            y = layer(x.transpose(0, 1) if i == 0 else s_prev)  # frames: [T, B, 2, H, W]
        sp = int_lif(y, stage.lif.vth, acc, stage.lif.alpha)
        s_prev = maxpool2x2(sp) if stage.pool else sp

    rpe_f = fold_bn_diff(model.rpe)
    folded = [{n: fold_bn_diff(m) for n, m in (("q", blk.sasa.q), ("k", blk.sasa.k),
                                                ("o", blk.sasa.o), ("dwc", blk.dwc),
                                                ("fc1", blk.fc1), ("fc2", blk.fc2))}
              for blk in model.blocks]
    writers = [rpe_f] + [fb[n] for fb in folded for n in ("o", "dwc", "fc2")]
    s_u = channel_scale([_detached(f) for f in writers], qmax)
    u = _Layer(rpe_f, s_u, qmax, s_u)(s_prev)
    for blk, fb in zip(model.blocks, folded, strict=True):
        s = int_lif(u, blk.attn_lif.vth, s_u, blk.attn_lif.alpha)
        t, b, d, h, w = s.shape
        sc = {n: channel_scale([_detached(fb[n])], qmax) for n in ("q", "k", "fc1")}
        q = int_lif(_Layer(fb["q"], sc["q"], qmax, sc["q"])(s), blk.sasa.q_lif.vth, sc["q"],
                    blk.sasa.q_lif.alpha).reshape(t, b, d, h * w)
        k = int_lif(_Layer(fb["k"], sc["k"], qmax, sc["k"])(s), blk.sasa.k_lif.vth, sc["k"],
                    blk.sasa.k_lif.alpha).reshape(t, b, d, h * w)
        # The count is an exact integer; the float attention neuron equals the integer one.
        attn = blk.sasa.agg_lif(and_popcount(q, k, cfg.heads, cfg.sasa_mode))
        y = sasa_gate(q, k, attn, cfg.heads, cfg.sasa_mode).reshape(t, b, d, h, w)
        u = (u + _Layer(fb["o"], s_u, qmax, s_u)(y)
             + _Layer(fb["dwc"], s_u, qmax, s_u, groups=d)(s))
        s2 = int_lif(u, blk.mlp_lif.vth, s_u, blk.mlp_lif.alpha)
        h1 = int_lif(_Layer(fb["fc1"], sc["fc1"], qmax, sc["fc1"])(s2), blk.fc1_lif.vth,
                     sc["fc1"], blk.fc1_lif.alpha)
        u = u + _Layer(fb["fc2"], s_u, qmax, s_u)(h1)

    sh = int_lif(u, model.head_lif.vth, s_u, model.head_lif.alpha)
    counts = sh.sum(dim=(0, 3, 4))  # [B, D] spike counts over t and tokens
    hw, hb = model.head.weight.double(), model.head.bias.double()
    s_h = float(hw.detach().abs().amax(1).max().clamp(min=1e-12)) / qmax
    steps = cfg.time_steps * cfg.tokens
    w_int = ste_round(hw / s_h).clamp(-qmax, qmax)
    b_int = ste_round(hb / (s_h / steps))
    return counts @ w_int.T + b_int


def head_unit(model: SAFormer, weight_bits: int) -> float:
    """Float value of one integer logit unit: s_h / (T * N)."""
    qmax = (1 << (weight_bits - 1)) - 1
    s_h = float(model.head.weight.detach().double().abs().amax(1).max().clamp(min=1e-12)) / qmax
    return s_h / (model.cfg.time_steps * model.cfg.tokens)


DEFAULT_QAT_EPOCHS = 20
QAT_LR = 1e-3
QAT_BATCH = 32


def qat(model: SAFormer, data, weight_bits: int, epochs: int, seed: int = 0,
        progress: bool = True) -> dict:
    """Fine-tune `model` in place for `epochs` through `fake_quant_logits` on `data`'s train
    part (a quant.datasets.DataSplit); BN statistics stay frozen (they are folded).

    Returns {'seconds', 'epochs', 'test_accuracy' (fake-quant, last epoch)}.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"QAT epochs must be >= 1, not {epochs!r}")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model.eval()  # BN reads its running statistics, as the quantiser folds them
    opt = torch.optim.AdamW(model.parameters(), lr=QAT_LR, weight_decay=0.0)
    n = len(data.train_labels)
    steps = epochs * math.ceil(n / QAT_BATCH)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    x_train = data.train_pixels.to(torch.float32)
    start = time.perf_counter()
    acc = float("nan")
    bar = tqdm(range(epochs), desc=f"QAT {weight_bits}-bit", unit="epoch", disable=not progress)
    for _ in bar:
        order = torch.randperm(n, generator=g)
        total = 0.0
        for i in range(0, n, QAT_BATCH):
            idx = order[i:i + QAT_BATCH]
            x = shift_augment(x_train[idx], g)
            logits = fake_quant_logits(model, x, weight_bits) * head_unit(model, weight_bits)
            loss = loss_fn(logits, data.train_labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        acc = fake_quant_accuracy(model, data.test_pixels, data.test_labels, weight_bits)
        bar.set_postfix(loss=f"{total / n:.3f}", test_acc=f"{100 * acc:.1f}%")
    return {"seconds": time.perf_counter() - start, "epochs": epochs, "test_accuracy": acc}


@torch.no_grad()
def fake_quant_predict(model: SAFormer, pixels: torch.Tensor, weight_bits: int,
                       batch: int = 360) -> torch.Tensor:
    """Class of the first maximum logit (as the hardware picks it)."""
    preds = []
    for i in range(0, len(pixels), batch):
        logits = fake_quant_logits(model, pixels[i:i + batch], weight_bits)
        preds.append(logits.argmax(-1))  # torch.argmax returns the first maximum
    return torch.cat(preds)


def fake_quant_accuracy(model, pixels, labels, weight_bits) -> float:
    return float((fake_quant_predict(model, pixels, weight_bits) == labels).double().mean())


@dataclass(frozen=True)
class QatReport:
    """Accuracies (fractions) on `data`'s test part of the float model, the post-training
    integer model (bias-corrected) and the QAT integer model."""

    config: str
    source: str
    images: int
    bits: int
    float_acc: float
    ptq_acc: float
    qat_acc: float
    epochs: int
    seconds: float

    def lines(self) -> str:
        b, f = self.bits, self.float_acc
        return "\n".join([
            f"test part of {self.source} ({self.images} images), {self.config}:",
            f"  float                            {100 * f:6.2f} %",
            f"  integer {b}-bit post-training     {100 * self.ptq_acc:6.2f} %   "
            f"({100 * (self.ptq_acc - f):+.2f} points)",
            f"  integer {b}-bit QAT               {100 * self.qat_acc:6.2f} %   "
            f"({100 * (self.qat_acc - f):+.2f} points; {self.epochs} epochs, "
            f"{self.seconds:.0f} s)"])


def quantize_with_qat(checkpoint, weight_bits: int, epochs: int, data=None, seed: int = 0,
                      progress: bool = True) -> tuple[IntModel, QatReport]:
    """Post-training and QAT integer models of a checkpoint, on `data` (default digits).

    Returns the QAT IntModel and the accuracies of float, post-training and QAT models on
    the test part. The QAT model is quantised without bias correction: its biases were
    trained as the integer model uses them.
    """
    float_model, ckpt = load_checkpoint(Path(checkpoint))
    cfg = float_model.cfg
    data = data if data is not None else load_data(None, cfg)
    labels = data.test_labels

    def acc(pred: torch.Tensor) -> float:
        return float((pred == labels).double().mean())

    with torch.no_grad():
        float_acc = acc(float_model(to_model_input(cfg, data.test_pixels)).argmax(-1))
    ptq = quantize_model(float_model, weight_bits, calibration=to_model_input(cfg, data.train_pixels))
    ptq_acc = acc(golden.predict(ptq, data.test_pixels))
    tuned = copy.deepcopy(float_model)
    result = qat(tuned, data, weight_bits, epochs, seed=seed, progress=progress)
    meta = {"source": Path(checkpoint).name, "bias_correction": "none (QAT)",
            "qat_epochs": epochs, "qat_data": data.source, "float_test_accuracy": float_acc}
    model = quantize_model(tuned, weight_bits, meta)
    qat_acc = acc(golden.predict(model, data.test_pixels))
    model.meta["int_test_accuracy"] = qat_acc
    return model, QatReport(cfg.name, data.source, len(labels), weight_bits, float_acc, ptq_acc,
                            qat_acc, epochs, result["seconds"])
