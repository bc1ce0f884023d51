"""scikit-learn's digits as 8-bit images, with the project's fixed train/test split.

The data ship inside the scikit-learn wheel (no download). Grey levels 0..16
become pixels round(v * 255 / 16) (docs/arithmetic.md §Input), so the float
model (which sees pixel / 255) and the integer model read identical inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

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
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    pixels = grey_to_pixels(digits.images).reshape(-1, 1, 8, 8)
    labels = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(pixels, labels, test_size=TEST_SIZE,
                                              random_state=SPLIT_SEED, stratify=labels)
    return DigitsSplit(torch.from_numpy(x_tr), torch.from_numpy(y_tr),
                       torch.from_numpy(x_te), torch.from_numpy(y_te))
