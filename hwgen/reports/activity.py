"""Spike rates and the energy estimate of a model, from the golden model on sample images.

The counting rule is `ENERGY_RULE` (docs/reports.md); the 45 nm figures are the
field's convention (Horowitz, ISSCC 2014).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from quant.data import sample_images
from quant.golden import run

PJ_PER_AC = 0.9  # 45 nm, 32-bit integer add (Horowitz, ISSCC 2014), as the field uses it
PJ_PER_MAC = 4.6  # 45 nm, 32-bit multiply-accumulate
ENERGY_RULE = (
    "Operations per image, from the golden model's spikes on the sample images (the "
    "hardware is bit-exact to it). AC (accumulate, 0.9 pJ): one per input spike per output "
    "neuron it reaches - spike linears (q, k, o, fc1, fc2, head): spikes x output features; "
    "spike 3x3 convs (stem after the first, rpe): spikes x output channels x the output "
    "positions whose window holds the spike; depthwise conv: spikes x those positions; SASA: "
    "one per Q AND K coincidence (a popcount increment). MAC (multiply-accumulate, 4.6 pJ): "
    "the pixel conv, dense: every input pixel x output channels x covering positions, "
    "once per image (direct encoding repeats the same conv output for all T steps, so the "
    "hardware computes it once). Not counted: bias adds, LIF updates, residual adds, max-pool "
    "ORs, the SASA gate's ANDs, argmax, memory and data-movement energy.")



@dataclass
class LayerOps:
    layer: str
    kind: str  # "ac" or "mac"
    ops: float  # per image
    source: str  # the tap whose spikes (or pixels) it counts

    @property
    def energy_pj(self) -> float:
        return self.ops * (PJ_PER_AC if self.kind == "ac" else PJ_PER_MAC)


def cover_counts(h: int, w: int) -> torch.Tensor:
    """[h, w]: how many output positions of a padded 3x3 conv read input position (y, x)."""
    def axis(n: int) -> torch.Tensor:
        return torch.tensor([min(y + 1, n - 1) - max(y - 1, 0) + 1 for y in range(n)])
    return axis(h).reshape(-1, 1) * axis(w).reshape(1, -1)


def operation_counts(model, taps: dict[str, torch.Tensor], pixels: torch.Tensor) -> list[LayerOps]:
    """ACs and MACs per image by the rule in ENERGY_RULE; `taps` are quant.golden.run's
    ([T, B, C, H, W] spikes) for `pixels` [B, C, H, W]."""
    cfg = model.config
    batch = pixels.shape[0]
    out: list[LayerOps] = []

    def conv_ops(name: str, src: str, s: torch.Tensor, cout: int, kind: str) -> None:
        cover = cover_counts(*s.shape[-2:]).to(torch.float64)
        out.append(LayerOps(name, kind, float((s.to(torch.float64) * cover).sum()) * cout / batch,
                            src))

    prev = ("frames", taps["frames"]) if cfg.frames else ("pixels", pixels.unsqueeze(0))
    for i, stage in enumerate(model.stem):
        conv = stage.conv
        if conv.pixel_input:  # dense: every pixel, zero or not, once per image
            conv_ops(f"stem.{i}.conv", "pixels", torch.ones_like(pixels[:1]).expand_as(
                pixels).unsqueeze(0), conv.out_channels, "mac")
        else:
            conv_ops(f"stem.{i}.conv", prev[0], prev[1], conv.out_channels, "ac")
        key = f"stem.{i}.pool" if stage.pool else f"stem.{i}.lif"
        prev = (key, taps[key])
    conv_ops("rpe", prev[0], prev[1], model.rpe.out_channels, "ac")

    def linear(name: str, src: str, fan_out: int) -> None:
        out.append(LayerOps(name, "ac", float(taps[src].sum()) * fan_out / batch, src))

    for b, blk in enumerate(model.blocks):
        p = f"blocks.{b}"
        linear(f"{p}.q", f"{p}.attn_lif", blk.q.weight.shape[0])
        linear(f"{p}.k", f"{p}.attn_lif", blk.k.weight.shape[0])
        out.append(LayerOps(f"{p}.sasa", "ac", float(taps[f"{p}.agg_count"].sum()) / batch,
                            f"{p}.q_lif AND {p}.k_lif"))
        linear(f"{p}.o", f"{p}.sasa", blk.o.weight.shape[0])
        conv_ops(f"{p}.dwc", f"{p}.attn_lif", taps[f"{p}.attn_lif"], 1, "ac")
        linear(f"{p}.fc1", f"{p}.mlp_lif", blk.fc1.weight.shape[0])
        linear(f"{p}.fc2", f"{p}.fc1_lif", blk.fc2.weight.shape[0])
    linear("head", "head.lif", cfg.num_classes)
    return out


def spike_rates(model, taps: dict[str, torch.Tensor]) -> list[dict]:
    """Per spiking layer: the fraction of neuron-steps that spiked, and spikes per image."""
    names = [n for n, _ in model.named_lifs()]
    names += [f"stem.{i}.pool" for i, s in enumerate(model.stem) if s.pool]
    names += [f"blocks.{b}.sasa" for b in range(len(model.blocks))]
    order = {n: k for k, n in enumerate(taps)}
    rows = []
    for name in sorted((n for n in names if n in taps), key=lambda n: order[n]):
        t = taps[name]
        batch = t.shape[1] if t.dim() >= 2 else 1
        rows.append({"layer": name, "rate": float(t.to(torch.float64).mean()),
                     "spikes_per_image": float(t.sum()) / batch, "neurons": t[0, 0].numel()})
    return rows


def activity(model, images: int = 8) -> dict:
    """Spike rates and the energy estimate on `images` sample images (quant.data)."""
    if images < 1:
        raise ValueError(f"images must be >= 1, not {images!r}")
    pixels, _ = sample_images(model, images)
    taps = run(model, pixels)
    ops = operation_counts(model, taps, pixels)
    ac = sum(x.ops for x in ops if x.kind == "ac")
    mac = sum(x.ops for x in ops if x.kind == "mac")
    cfg = model.config
    source = ("digits test images" if cfg.name == "digits-tiny" and not cfg.frames
              else "random event frames" if cfg.frames else "random images")
    return {
        "images": images, "source": f"first {images} {source}",
        "spike_rates": spike_rates(model, taps),
        "energy": {"pj_per_ac": PJ_PER_AC, "pj_per_mac": PJ_PER_MAC, "rule": ENERGY_RULE,
                   "ac_per_image": ac, "mac_per_image": mac,
                   "nj_per_image": (ac * PJ_PER_AC + mac * PJ_PER_MAC) / 1000,
                   "layers": [{"layer": x.layer, "kind": x.kind, "ops": x.ops,
                               "source": x.source, "nj": x.energy_pj / 1000} for x in ops]},
    }
