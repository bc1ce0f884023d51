"""The vectorised software twins equal their beat-by-beat definitions: the tap signature
(`rtl_templates.tap.signature` vs the hardware's per-beat rotate-and-XOR) and the values
stream packing (`pack_values` on integer arrays vs its word-by-word path)."""

import random

import numpy as np
import pytest
import torch

from rtl_templates.common import pack_values
from rtl_templates.tap import signature, signature_stepwise


@pytest.mark.parametrize("width", [1, 8, 63, 64, 65, 128, 200])
def test_signature_equals_stepwise(width):
    rng = random.Random(width)
    for n in (0, 1, 2, 63, 64, 65, 129, 1000):
        words = [rng.getrandbits(width) for _ in range(n)]
        start = rng.getrandbits(64)
        assert signature(words, width, start) == signature_stepwise(words, width, start)


def test_signature_sees_order_and_value():
    words = [1, 2, 3, 1 << 63]
    base = signature(words, 64)
    assert signature(words[::-1], 64) != base
    assert signature([1, 2, 3, (1 << 63) | 1], 64) != base
    assert signature(words, 64, start=1) != base


@pytest.mark.parametrize("width,lanes", [(2, 1), (8, 4), (12, 2), (16, 4), (32, 2), (20, 3)])
def test_pack_values_vectorised_equals_loop(width, lanes):
    rng = np.random.default_rng(width * 10 + lanes)
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    x = rng.integers(lo, hi + 1, size=(5, 3, lanes * 3))
    x[0, 0, :] = lo  # the extremes too
    x[-1, -1, :] = hi
    loop = pack_values(x.astype(object), width, lanes)  # object arrays take the loop
    assert pack_values(x, width, lanes) == loop
    assert pack_values(torch.tensor(x), width, lanes) == loop
    assert len(loop) == 5 * 3 * 3


def test_pack_values_out_of_range_still_says_where():
    x = np.zeros((2, 1, 4), dtype=np.int64)
    x[1, 0, 2] = 128
    with pytest.raises(ValueError, match=r"value 128 \(token 1, t 0, channel 2\)"):
        pack_values(x, 8, 2)
