"""The float SAFormer (SPEC §2), trained with surrogate gradients.

Its structure mirrors the golden model (`quant/golden.py`) layer for layer, so
the quantiser maps each module onto one integer layer. Tensors are multi-step:
[T, B, C, H, W]. No N x N tensor is ever formed.
"""

from __future__ import annotations

import torch
from torch import nn

from quant.config import ModelConfig, SasaMode


class _SigmoidSurrogateSpike(torch.autograd.Function):
    """Heaviside forward (x >= 0), sigmoid-derivative backward (SpikingJelly's default)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        sg = torch.sigmoid(ctx.alpha * x)
        return grad * ctx.alpha * sg * (1 - sg), None


def spike(x: torch.Tensor, alpha: float = 4.0) -> torch.Tensor:
    return _SigmoidSurrogateSpike.apply(x, alpha)


class LIF(nn.Module):
    """Multi-step LIF, SpikingJelly `LIFNode` semantics: tau = 2, decay_input, hard reset to 0.

    H[t] = V[t-1] + (X[t] - V[t-1]) / tau;  S[t] = H[t] >= vth;  V[t] = H[t] * (1 - S[t]);  V[-1] = 0.
    Input [T, ...]; output spikes of the same shape.
    """

    def __init__(self, vth: float = 1.0, tau: float = 2.0, alpha: float = 4.0):
        super().__init__()
        self.vth, self.tau, self.alpha = float(vth), float(tau), float(alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = torch.zeros_like(x[0])
        out = []
        for t in range(x.shape[0]):
            h = v + (x[t] - v) / self.tau
            s = spike(h - self.vth, self.alpha)
            v = h * (1 - s)
            out.append(s)
        return torch.stack(out)

    def extra_repr(self) -> str:
        return f"vth={self.vth}, tau={self.tau}"


class ConvBN(nn.Module):
    """Conv (kxk, stride 1, padding k//2) + BatchNorm applied to every time step: [T, B, C, H, W]."""

    def __init__(self, cin: int, cout: int, kernel: int, groups: int = 1, bias: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups, bias=bias)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b = x.shape[:2]
        y = self.bn(self.conv(x.flatten(0, 1)))
        return y.reshape(t, b, *y.shape[1:])


def maxpool2x2(s: torch.Tensor) -> torch.Tensor:
    t, b = s.shape[:2]
    y = nn.functional.max_pool2d(s.flatten(0, 1), 2)
    return y.reshape(t, b, *y.shape[1:])


def and_popcount(q: torch.Tensor, k: torch.Tensor, heads: int, mode: SasaMode) -> torch.Tensor:
    """Float twin of golden.and_popcount. q, k: [T, B, D, N] spikes (0/1, differentiable).

    channel: [T, B, heads, N]; token: [T, B, D]. The product of 0/1 values is their AND.
    """
    both = q * k
    if mode == SasaMode.CHANNEL:
        t, b, d, n = both.shape
        return both.reshape(t, b, heads, d // heads, n).sum(3)
    return both.sum(-1)


def sasa_gate(q: torch.Tensor, k: torch.Tensor, attn: torch.Tensor, heads: int,
              mode: SasaMode) -> torch.Tensor:
    """Float twin of golden.sasa_gate: channel a[head(c), n] * K[c, n]; token g[c] * Q[c, n]."""
    if mode == SasaMode.CHANNEL:
        return attn.repeat_interleave(q.shape[2] // heads, dim=2) * k
    return attn.unsqueeze(-1) * q


class StemStage(nn.Module):
    def __init__(self, cin: int, cout: int, pool: bool, vth: float):
        super().__init__()
        self.conv = ConvBN(cin, cout, 3, bias=True)
        self.lif = LIF(vth)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.lif(self.conv(x))
        return maxpool2x2(s) if self.pool else s


class SASA(nn.Module):
    """Spike Aggregated Self-Attention: binary Q and K, AND + popcount, no V, no softmax."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.dim
        self.heads, self.mode = cfg.heads, cfg.sasa_mode
        self.q, self.q_lif = ConvBN(d, d, 1), LIF(cfg.vth)
        self.k, self.k_lif = ConvBN(d, d, 1), LIF(cfg.vth)
        self.agg_lif = LIF(cfg.attn_vth)  # reads the raw count: no BN
        self.o = ConvBN(d, d, 1)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        t, b, d, h, w = s.shape
        q = self.q_lif(self.q(s)).reshape(t, b, d, h * w)
        k = self.k_lif(self.k(s)).reshape(t, b, d, h * w)
        attn = self.agg_lif(and_popcount(q, k, self.heads, self.mode))
        y = sasa_gate(q, k, attn, self.heads, self.mode).reshape(t, b, d, h, w)
        return self.o(y)


class Block(nn.Module):
    """U += SASA(S) + DWC(S) with S = LIF(U); then U += MLP(LIF(U)). U is membrane-level."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.dim
        self.attn_lif = LIF(cfg.vth)
        self.sasa = SASA(cfg)
        self.dwc = ConvBN(d, d, 3, groups=d)
        self.mlp_lif = LIF(cfg.vth)
        self.fc1, self.fc1_lif = ConvBN(d, cfg.hidden, 1), LIF(cfg.vth)
        self.fc2 = ConvBN(cfg.hidden, d, 1)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        s = self.attn_lif(u)
        u = u + self.sasa(s) + self.dwc(s)
        return u + self.fc2(self.fc1_lif(self.fc1(self.mlp_lif(u))))


class SAFormer(nn.Module):
    """SAFormer-L-D. Input: images [B, C, H, W] in [0, 1] (direct encoding), or with
    `input = "frames"` event frames [B, T, 2, H, W] of 0/1; output logits [B, classes]."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        stages, cin = [], cfg.image_channels
        for cout, pool in zip(cfg.stem_channels, cfg.stem_pool, strict=True):
            stages.append(StemStage(cin, cout, pool, cfg.vth))
            cin = cout
        self.stem = nn.ModuleList(stages)
        self.rpe = ConvBN(cin, cfg.dim, 3)  # starts the residual stream
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.head_lif = LIF(cfg.vth)
        self.head = nn.Linear(cfg.dim, cfg.num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        T = self.cfg.time_steps
        first = self.stem[0]
        if self.cfg.frames:  # one event frame per time step: the first conv reads spikes
            s = first(images.transpose(0, 1))
        else:
            # Direct encoding: conv + BN of the same image is the same every step, computed once.
            y = first.conv(images.unsqueeze(0))
            s = first.lif(y.expand(T, *y.shape[1:]))
            if first.pool:
                s = maxpool2x2(s)
        for stage in self.stem[1:]:
            s = stage(s)
        u = self.rpe(s)
        for blk in self.blocks:
            u = blk(u)
        rate = self.head_lif(u).mean(dim=(0, 3, 4))  # spike rate over t and tokens: [B, D]
        return self.head(rate)
