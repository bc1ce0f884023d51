"""Spike statistics: how often each spike-input layer's inputs spike, measured with the golden
model on calibration images, for the planner's dense-or-event-driven choice.

A layer's input rate is the fraction of its input bits (channel, token, time step) that
are 1. The planner needs more than the mean: an event-driven block's cycles per token
follow that token's spike count at every time step, so `LayerSpikes.counts` keeps them per
image, token and step, and `LayerSpikes.mean_cycles` turns a block's closed-form cycles
per token into the mean cycles per image over the calibration images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from quant import golden
from quant.data import calibration_images
from quant.ir import IntModel

DEFAULT_CALIBRATION_IMAGES = 16


def spike_inputs(model: IntModel) -> dict[str, str]:
    """Every spike-input layer -> the golden tap holding its input spikes, in network order."""
    out: dict[str, str] = {}
    prev = None
    for i, stage in enumerate(model.stem):
        if not stage.conv.pixel_input and prev is not None:
            out[f"stem.{i}.conv"] = prev
        prev = f"stem.{i}.pool" if stage.pool else f"stem.{i}.lif"
    out["rpe"] = prev
    for b in range(len(model.blocks)):
        p = f"blocks.{b}"
        out[f"{p}.qk"] = f"{p}.attn_lif"
        out[f"{p}.dwc"] = f"{p}.attn_lif"
        out[f"{p}.o"] = f"{p}.sasa"
        out[f"{p}.fc1"] = f"{p}.mlp_lif"
        out[f"{p}.fc2"] = f"{p}.fc1_lif"
    out["head"] = "head.lif"
    return out


@dataclass(frozen=True)
class LayerSpikes:
    """The measured input spikes of one layer over the calibration images."""

    layer: str
    source: str  # the golden tap the layer reads
    channels: int
    counts: torch.Tensor  # int64 [images, tokens, T]: set input bits per token and step
    bits: torch.Tensor  # uint8 [images, T, C, H, W]: the input spikes themselves

    @property
    def rate(self) -> float:
        """Mean fraction of input bits that are 1."""
        return float(self.counts.to(torch.float64).mean()) / self.channels

    @property
    def rate_per_image(self) -> list[float]:
        return [float(x) / self.channels
                for x in self.counts.to(torch.float64).mean(dim=(1, 2))]

    @property
    def rate_std(self) -> float:
        """Spread (standard deviation) of the per-image rate."""
        rates = torch.tensor(self.rate_per_image, dtype=torch.float64)
        return float(rates.std(unbiased=False)) if len(rates) > 1 else 0.0

    @property
    def rate_per_step(self) -> list[float]:
        """Mean rate at each time step."""
        return [float(x) / self.channels
                for x in self.counts.to(torch.float64).mean(dim=(0, 1))]

    def mean_cycles(self, per_token: Callable[[Sequence[int]], int]) -> float:
        """Mean over the images of sum over tokens of `per_token(counts at each step)`."""
        rows = self.counts.tolist()
        return sum(sum(per_token(tok) for tok in image) for image in rows) / len(rows)

    def mean_image_cycles(self, per_image: Callable[[np.ndarray], int]) -> float:
        """Mean over the images of `per_image(spikes [T, C, H, W] of 0/1)`."""
        arr = self.bits.numpy()
        return sum(per_image(image) for image in arr) / len(arr)

    def to_dict(self) -> dict:
        return {"layer": self.layer, "source": self.source, "rate": self.rate,
                "rate_std": self.rate_std, "rate_per_step": self.rate_per_step}


@dataclass(frozen=True)
class SpikeStats:
    """Input spike statistics of every spike-input layer, and where the images came from."""

    images: int
    source: str
    layers: dict[str, LayerSpikes]
    pixels: torch.Tensor  # the calibration images [images, C, H, W]

    def rate(self, layer: str) -> float | None:
        x = self.layers.get(layer)
        return None if x is None else x.rate

    def to_dict(self) -> dict:
        return {"images": self.images, "source": self.source,
                "layers": [x.to_dict() for x in self.layers.values()]}


def measure_spikes(model: IntModel, pixels: torch.Tensor, source: str) -> SpikeStats:
    """Run the golden model on `pixels` [B, C, H, W] and count every layer's input spikes."""
    taps = golden.run(model, pixels, taps=True)
    layers = {}
    for layer, tap in spike_inputs(model).items():
        t = taps[tap]  # [T, B, C, H, W] of 0/1
        steps, batch, channels = t.shape[:3]
        counts = t.to(torch.int64).sum(dim=2).reshape(steps, batch, -1).permute(1, 2, 0)
        bits = t.to(torch.uint8).transpose(0, 1).contiguous()
        layers[layer] = LayerSpikes(layer, tap, channels, counts.contiguous(), bits)
    return SpikeStats(pixels.shape[0], source, layers, pixels)


def calibrate(model: IntModel, images: int = DEFAULT_CALIBRATION_IMAGES,
              seed: int = 0) -> SpikeStats:
    """Spike statistics on `images` calibration images (quant.data.calibration_images)."""
    pixels, source = calibration_images(model, images, seed=seed)
    return measure_spikes(model, pixels, source)
