"""Event frames made from still images, for tests and examples without a download.

An event camera reports brightness changes. Moving a still image under a
simulated sensor (as N-MNIST moved MNIST digits under a real one) gives, per
time step, an ON frame where brightness rose by more than `threshold` and an
OFF frame where it fell: tonic's frame layout [T, 2, H, W] of 0/1.
"""

from __future__ import annotations

import torch

# One pixel per step around a small square (a saccade); step t compares positions t and t+1.
PATH = ((0, 0), (0, 1), (1, 1), (1, 0), (0, 0), (0, -1), (-1, -1), (-1, 0), (0, 0))


def _shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """x [N, H, W] moved by (dy, dx), zero fill."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    ys, yd = slice(max(0, -dy), h - max(0, dy)), slice(max(0, dy), h - max(0, -dy))
    xs, xd = slice(max(0, -dx), w - max(0, dx)), slice(max(0, dx), w - max(0, -dx))
    out[:, yd, xd] = x[:, ys, xs]
    return out


def events_from_images(pixels: torch.Tensor, time_steps: int, threshold: int = 48) -> torch.Tensor:
    """Greyscale pixels [N, 1, H, W] (uint8) -> event frames [N, T, 2, H, W] uint8 of 0/1."""
    if pixels.dim() != 4 or pixels.shape[1] != 1:
        raise ValueError(f"pixels must be [N, 1, H, W], not {list(pixels.shape)}")
    if not 1 <= time_steps < len(PATH):
        raise ValueError(f"time_steps must be 1..{len(PATH) - 1}, not {time_steps!r}")
    x = pixels[:, 0].to(torch.int32)
    frames = []
    for t in range(time_steps):
        a, b = _shifted(x, *PATH[t]), _shifted(x, *PATH[t + 1])
        diff = b - a
        frames.append(torch.stack([diff > threshold, diff < -threshold], dim=1))
    return torch.stack(frames, dim=1).to(torch.uint8)
