"""The golden model: the integer SAFormer computed with PyTorch integer tensor ops.

Each layer kind has its own golden function, the single reference its hardware
block is tested against. Layouts: spatial tensors are [T, B, C, H, W] int64
(spikes are 0/1); token n of an H x W grid is y * W + x. docs/arithmetic.md
states every rule these functions follow.
"""

from __future__ import annotations

import torch

from quant.config import SasaMode
from quant.ir import Conv3x3Layer, DWConvLayer, IntModel, LIFLayer, LinearLayer, fits_signed

I64 = torch.int64


class WidthError(OverflowError):
    """A value left its declared bit width (raised only when widths are checked)."""


def _check(name: str, t: torch.Tensor, bits: int, check: bool) -> None:
    if check and not fits_signed(t, bits):
        raise WidthError(f"{name}: values [{int(t.min())}, {int(t.max())}] leave {bits}-bit signed")


# ---------------------------------------------------------------- layer kinds

def lif(x: torch.Tensor, vth: torch.Tensor, input_shift: int = 0,
        state_bits: int | None = None, name: str = "lif") -> torch.Tensor:
    """Integer LIF over time. x: [T, ...] int; vth broadcastable to x[0]. Returns spikes [T, ...].

    H = floor((X' + V) / 2) with X' = X << input_shift, S = H >= vth, V = 0 if S else H; V starts at 0.
    """
    v = torch.zeros_like(x[0], dtype=I64)
    out = torch.empty_like(x, dtype=I64)
    for t in range(x.shape[0]):
        xt = x[t].to(I64) << input_shift
        h = torch.div(xt + v, 2, rounding_mode="floor")
        if state_bits is not None:
            _check(f"{name} state", torch.cat([xt.flatten(), h.flatten()]), state_bits, True)
        s = (h >= vth).to(I64)
        v = h * (1 - s)
        out[t] = s
    return out


def spike_linear(s: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """s: [..., in] spikes; weight [out, in]; returns [..., out] = bias + sum of columns where s = 1."""
    return s.to(I64) @ weight.to(I64).T + bias.to(I64)


def windows3x3(x: torch.Tensor) -> torch.Tensor:
    """[..., C, H, W] -> [..., C, 9, H, W]: the zero-padded 3x3 neighbourhood, k = 3 * ky + kx.

    Tap k of output (y, x) is input (y + ky - 1, x + kx - 1), zero outside the grid.
    """
    h, w = x.shape[-2:]
    p = torch.nn.functional.pad(x.to(I64), (1, 1, 1, 1))
    taps = [p[..., ky:ky + h, kx:kx + w] for ky in range(3) for kx in range(3)]
    return torch.stack(taps, dim=-3)


def conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """x: [..., Cin, H, W] (spikes, or pixels for the stem's first conv); weight [Cout, Cin, 3, 3].

    out[o, y, x] = bias[o] + sum over i, k of weight[o, i, k] * window[i, k, y, x].
    """
    win = windows3x3(x)  # [..., Cin, 9, H, W]
    lead = win.shape[:-4]
    cin, _, h, w = win.shape[-4:]
    flat = win.reshape(*lead, cin * 9, h * w).transpose(-1, -2)  # [..., HW, Cin*9]
    out = flat @ weight.reshape(weight.shape[0], -1).to(I64).T + bias.to(I64)
    return out.transpose(-1, -2).reshape(*lead, weight.shape[0], h, w)


def dwconv3x3(s: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Depthwise: s [..., C, H, W] spikes, weight [C, 3, 3]; out[c] = bias[c] + sum_k weight[c, k] * window[c, k]."""
    win = windows3x3(s)  # [..., C, 9, H, W]
    w = weight.reshape(weight.shape[0], 9, 1, 1).to(I64)
    return (win * w).sum(-3) + bias.to(I64).reshape(-1, 1, 1)


def maxpool2x2(s: torch.Tensor) -> torch.Tensor:
    """Spike max-pool 2x2, stride 2 (an OR): [..., C, H, W] -> [..., C, H/2, W/2]."""
    *lead, c, h, w = s.shape
    return s.reshape(*lead, c, h // 2, 2, w // 2, 2).amax(dim=(-1, -3))


def and_popcount(q: torch.Tensor, k: torch.Tensor, heads: int, mode: SasaMode) -> torch.Tensor:
    """Aggregation counts. q, k: [T, B, D, N] spikes.

    channel mode: [T, B, heads, N], popcount over the channels of each head of Q AND K;
    token mode: [T, B, D], popcount over the N tokens of Q AND K.
    """
    both = q.to(I64) & k.to(I64)
    if mode == SasaMode.CHANNEL:
        t, b, d, n = both.shape
        return both.reshape(t, b, heads, d // heads, n).sum(3)
    return both.sum(-1)


def sasa_gate(q: torch.Tensor, k: torch.Tensor, attn: torch.Tensor, heads: int,
              mode: SasaMode) -> torch.Tensor:
    """Y from the attention spikes: channel mode a[head(c), n] AND K[c, n]; token mode g[c] AND Q[c, n]."""
    if mode == SasaMode.CHANNEL:
        d = q.shape[2]
        return attn.repeat_interleave(d // heads, dim=2) & k.to(I64)
    return attn.unsqueeze(-1) & q.to(I64)


def head_logits(s: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """s: [T, B, D, N] spikes -> logits [B, classes] = bias + sum over t, n of weight @ s."""
    counts = s.to(I64).sum(dim=(0, 3))  # [B, D]
    return counts @ weight.to(I64).T + bias.to(I64)


def argmax_first(logits: torch.Tensor) -> torch.Tensor:
    """Class = index of the first maximum (the hardware scans upwards with a strict >)."""
    return torch.argmax(logits, dim=-1)


# --------------------------------------------------------------- whole model

def _chlast_linear(x: torch.Tensor, layer: LinearLayer) -> torch.Tensor:
    """Apply a spike linear over the channel axis of [T, B, C, H, W]."""
    return spike_linear(x.movedim(2, -1), layer.weight, layer.bias).movedim(-1, 2)


def _lif(x: torch.Tensor, layer: LIFLayer, check: bool, name: str) -> torch.Tensor:
    vth = layer.vth.to(I64).reshape(-1, *([1] * (x.dim() - 3)))
    return lif(x, vth, layer.input_shift, layer.state_bits if check else None, name)


def run(model: IntModel, pixels: torch.Tensor, check_widths: bool = False,
        taps: bool = True) -> dict[str, torch.Tensor]:
    """Run the integer model on pixels [B, C, H, W] (unsigned ints), or on event frames
    [B, T, 2, H, W] of 0/1 when the config's input is "frames".

    Returns a dict of taps (every layer's output, [T, B, C, H, W] unless noted),
    always including 'logits' [B, classes] and 'pred' [B]. With check_widths,
    raises WidthError naming the first value that leaves its declared width.
    """
    cfg = model.config
    T = cfg.time_steps
    out: dict[str, torch.Tensor] = {}

    def tap(name: str, value: torch.Tensor, bits: int | None = None) -> torch.Tensor:
        if bits is not None:
            _check(name, value, bits, check_widths)
        if taps:
            out[name] = value
        return value

    x = pixels.to(I64)
    if cfg.frames:  # event frames [B, T, 2, H, W]: the stem's first conv reads these spikes
        if x.dim() != 5 or x.shape[1] != T or (x.numel() and (x.min() < 0 or x.max() > 1)):
            raise ValueError(f"event frames must be [B, {T}, 2, H, W] of 0/1")
        s = tap("frames", x.transpose(0, 1))  # [T, B, 2, H, W]: the accelerator's input
    else:
        if x.min() < 0 or x.max() >= (1 << cfg.pixel_bits):
            raise ValueError(f"pixels must be in [0, {(1 << cfg.pixel_bits) - 1}]")
        s = None
    for i, stage in enumerate(model.stem):
        conv = stage.conv
        if conv.pixel_input:
            # Direct encoding: the same image every step, so the conv is computed once.
            y = conv3x3(x, conv.weight, conv.bias).unsqueeze(0).expand(T, *([-1] * x.dim()))
        else:
            y = conv3x3(s, conv.weight, conv.bias)
        tap(f"stem.{i}.conv", y, conv.acc_bits)
        s = tap(f"stem.{i}.lif", _lif(y, stage.lif, check_widths, f"stem.{i}.lif"))
        if stage.pool:
            s = tap(f"stem.{i}.pool", maxpool2x2(s))
    u = tap("rpe", conv3x3(s, model.rpe.weight, model.rpe.bias), model.u_bits)
    _check("rpe acc", u, model.rpe.acc_bits, check_widths)

    t_, b_, d_, h_, w_ = u.shape
    for bi, blk in enumerate(model.blocks):
        p = f"blocks.{bi}"
        s = tap(f"{p}.attn_lif", _lif(u, blk.attn_lif, check_widths, f"{p}.attn_lif"))
        q = tap(f"{p}.q", _chlast_linear(s, blk.q), blk.q.acc_bits)
        qs = tap(f"{p}.q_lif", _lif(q, blk.q_lif, check_widths, f"{p}.q_lif"))
        k = tap(f"{p}.k", _chlast_linear(s, blk.k), blk.k.acc_bits)
        ks = tap(f"{p}.k_lif", _lif(k, blk.k_lif, check_widths, f"{p}.k_lif"))
        qf, kf = qs.reshape(t_, b_, d_, -1), ks.reshape(t_, b_, d_, -1)
        counts = tap(f"{p}.agg_count", and_popcount(qf, kf, cfg.heads, cfg.sasa_mode))
        if cfg.sasa_mode == SasaMode.CHANNEL:  # [T, B, heads, N]: neuron per head
            attn = _lif(counts, blk.agg_lif, check_widths, f"{p}.agg_lif")
        else:  # [T, B, D]: neuron per channel
            vth = blk.agg_lif.vth.to(I64)
            attn = lif(counts, vth, blk.agg_lif.input_shift,
                       blk.agg_lif.state_bits if check_widths else None, f"{p}.agg_lif")
        tap(f"{p}.agg_lif", attn)
        y = tap(f"{p}.sasa", sasa_gate(qf, kf, attn, cfg.heads, cfg.sasa_mode).reshape(u.shape))
        o = tap(f"{p}.o", _chlast_linear(y, blk.o), blk.o.acc_bits)
        d = tap(f"{p}.dwc", dwconv3x3(s, blk.dwc.weight, blk.dwc.bias), blk.dwc.acc_bits)
        _check(f"{p}.u+o", u + o, model.u_bits, check_widths)
        u = tap(f"{p}.u_attn", u + o + d, model.u_bits)
        s2 = tap(f"{p}.mlp_lif", _lif(u, blk.mlp_lif, check_widths, f"{p}.mlp_lif"))
        h1 = tap(f"{p}.fc1", _chlast_linear(s2, blk.fc1), blk.fc1.acc_bits)
        hs = tap(f"{p}.fc1_lif", _lif(h1, blk.fc1_lif, check_widths, f"{p}.fc1_lif"))
        f2 = tap(f"{p}.fc2", _chlast_linear(hs, blk.fc2), blk.fc2.acc_bits)
        u = tap(f"{p}.u_mlp", u + f2, model.u_bits)

    sh = tap("head.lif", _lif(u, model.head.lif, check_widths, "head.lif"))
    logits = head_logits(sh.reshape(t_, b_, d_, -1), model.head.weight, model.head.bias)
    _check("logits", logits, model.head.acc_bits, check_widths)
    out["logits"] = logits
    out["pred"] = argmax_first(logits)
    return out


def predict(model: IntModel, pixels: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Class predictions for pixels [B, C, H, W], in batches, without taps."""
    preds = [run(model, pixels[i:i + batch], taps=False)["pred"]
             for i in range(0, pixels.shape[0], batch)]
    return torch.cat(preds) if preds else torch.empty(0, dtype=I64)


__all__ = [
    "WidthError", "lif", "spike_linear", "windows3x3", "conv3x3", "dwconv3x3", "maxpool2x2",
    "and_popcount", "sasa_gate", "head_logits", "argmax_first", "run", "predict",
    "Conv3x3Layer", "DWConvLayer", "LinearLayer",
]
