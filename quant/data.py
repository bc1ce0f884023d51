"""scikit-learn's digits as 8-bit images, with the project's fixed train/test split.

The data ship inside the scikit-learn wheel (no download). Grey levels 0..16
become pixels round(v * 255 / 16) (docs/arithmetic.md §Input), so the float
model (which sees pixel / 255) and the integer model read identical inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hwgen.errors import HwgenError
from quant.random_model import random_pixels

SPLIT_SEED = 0  # fixed: the test split is part of every reported accuracy
TEST_SIZE = 360  # 20 % of 1797, stratified by class


@dataclass(frozen=True)
class DigitsSplit:
    """Pixels are uint8 [N, 1, 8, 8]; labels int64 [N]."""

    train_pixels: torch.Tensor
    train_labels: torch.Tensor
    test_pixels: torch.Tensor
    test_labels: torch.Tensor


def grey_to_pixels(grey: np.ndarray) -> np.ndarray:
    """Digits grey levels 0..16 -> uint8 pixels 0..255, round half away from zero (exact in
    integers: (v * 255 + 8) // 16)."""
    grey = np.asarray(grey, dtype=np.int64)
    return ((grey * 255 + 8) // 16).astype(np.uint8)


def pixels_to_float(pixels: torch.Tensor) -> torch.Tensor:
    """What the float model reads: pixel / 255."""
    return pixels.to(torch.float32) / 255.0


def to_model_input(cfg, x: torch.Tensor) -> torch.Tensor:
    """What the float model reads for stored samples `x` of config `cfg`: pixel / 255 for
    images [B, C, H, W], the 0/1 spikes themselves for event frames [B, T, 2, H, W]."""
    return x.to(torch.float32) if cfg.frames else pixels_to_float(x)


def load_digits_split() -> DigitsSplit:
    # scikit-learn takes about a second to import: only when the digits are read
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    pixels = grey_to_pixels(digits.images).reshape(-1, 1, 8, 8)
    labels = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(pixels, labels, test_size=TEST_SIZE,
                                              random_state=SPLIT_SEED, stratify=labels)
    return DigitsSplit(torch.from_numpy(x_tr), torch.from_numpy(y_tr),
                       torch.from_numpy(x_te), torch.from_numpy(y_te))


def sample_images(model, n: int, seed: int = 0, data=None):
    """(samples [n, ...], labels or None): the first n test samples of `data` (a
    quant.datasets.DataSplit, from --data), or of the digits test split for digits-tiny;
    seeded random images (or event frames) otherwise."""
    if n < 1:
        raise HwgenError(f"--images must be at least 1, not {n}")
    cfg = model.config
    if data is not None or _reads_digits(cfg):
        split = data if data is not None else load_digits_split()
        where = f"the test part of {data.source}" if data is not None else "the digits test split"
        if n > len(split.test_labels):
            raise HwgenError(f"--images: {where} has {len(split.test_labels)} images, not {n}")
        return split.test_pixels[:n].to(torch.int64), [int(y) for y in split.test_labels[:n]]
    return random_pixels(cfg, n, seed=seed), None


def calibration_images(model, n: int, seed: int = 0) -> tuple[torch.Tensor, str]:
    """(samples [n, ...], where they came from) for measuring spike statistics: a seeded
    sample of the digits training split for digits-tiny (never the test split the accuracy
    is reported on), else seeded random images (or event frames)."""
    if n < 1:
        raise HwgenError(f"calibration images must be at least 1, not {n}")
    cfg = model.config
    if _reads_digits(cfg):
        split = load_digits_split()
        g = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(split.train_labels), generator=g)[:n]
        return (split.train_pixels[pick].to(torch.int64),
                f"{len(pick)} digits training images (seed {seed})")
    return random_pixels(cfg, n, seed=seed), f"{n} random images (seed {seed})"


def _reads_digits(cfg) -> bool:
    """Configs named digits-tiny read the digits split by default (whatever their weights)."""
    return cfg.name == "digits-tiny" and not cfg.frames
