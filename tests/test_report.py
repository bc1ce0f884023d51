"""The energy counting rule (hwgen.reports.activity) on a case small enough to count by hand, and
the spike-rate and activity figures on a real golden-model run."""

import pytest
import torch

from hwgen.reports.activity import (
    PJ_PER_AC,
    PJ_PER_MAC,
    activity,
    cover_counts,
    operation_counts,
    spike_rates,
)
from quant.config import ModelConfig
from quant.golden import run
from quant.random_model import random_int_model

# 2x2 image, one unpooled stem stage of 2 channels, dim 2, hidden 2, 3 classes, T = 1.
TINY = ModelConfig(name="hand", image_channels=1, image_size=(2, 2), time_steps=1, depth=1,
                   dim=2, heads=1, mlp_ratio=1, sasa_mode="channel", stem_channels=(2,),
                   stem_pool=(False,), num_classes=3)


def test_cover_counts():
    # How many 3x3 windows (padding 1) read each input position.
    assert cover_counts(3, 3).tolist() == [[4, 6, 4], [6, 9, 6], [4, 6, 4]]
    assert cover_counts(2, 2).tolist() == [[4, 4], [4, 4]]
    assert cover_counts(1, 4).tolist() == [[2, 3, 3, 2]]


def _spikes(*positions, channels=2):
    """[T=1, B=1, C, 2, 2] with a spike at each (c, y, x)."""
    t = torch.zeros(1, 1, channels, 2, 2, dtype=torch.int64)
    for c, y, x in positions:
        t[0, 0, c, y, x] = 1
    return t


def test_energy_rule_by_hand():
    model = random_int_model(TINY, 8, seed=0)
    taps = {
        "stem.0.lif": _spikes((0, 0, 0), (1, 1, 1), (1, 0, 1)),  # 3 spikes
        "blocks.0.attn_lif": _spikes((0, 0, 0), (1, 1, 0)),  # 2 spikes
        "blocks.0.agg_count": torch.tensor([[[[1, 0, 0, 0]]]]),  # 1 coincidence
        "blocks.0.sasa": _spikes((0, 1, 1)),  # 1 spike
        "blocks.0.mlp_lif": _spikes((0, 0, 0), (0, 0, 1), (1, 0, 0), (1, 1, 1)),  # 4
        "blocks.0.fc1_lif": _spikes(),  # none
        "head.lif": _spikes((0, 0, 0), (1, 0, 0)),  # 2
    }
    pixels = torch.zeros(1, 1, 2, 2, dtype=torch.int64)  # dense: zeros still multiply
    ops = {x.layer: (x.kind, x.ops) for x in operation_counts(model, taps, pixels)}
    # On a 2x2 grid every 3x3 window covers all 4 positions: fan-out of a conv input
    # element = 4 positions x output channels.
    assert ops == {
        "stem.0.conv": ("mac", 4 * 4 * 2),  # 4 pixels x 4 positions x 2 channels
        "rpe": ("ac", 3 * 4 * 2),
        "blocks.0.q": ("ac", 2 * 2), "blocks.0.k": ("ac", 2 * 2),
        "blocks.0.sasa": ("ac", 1),
        "blocks.0.o": ("ac", 1 * 2),
        "blocks.0.dwc": ("ac", 2 * 4),  # depthwise: one channel per spike
        "blocks.0.fc1": ("ac", 4 * 2), "blocks.0.fc2": ("ac", 0),
        "head": ("ac", 2 * 3),
    }
    ac = 24 + 4 + 4 + 1 + 2 + 8 + 8 + 0 + 6
    energy = sum(x.energy_pj for x in operation_counts(model, taps, pixels))
    assert energy == pytest.approx(ac * PJ_PER_AC + 32 * PJ_PER_MAC)
    assert (PJ_PER_AC, PJ_PER_MAC) == (0.9, 4.6)


def test_counts_are_per_image():
    model = random_int_model(TINY, 8, seed=0)
    pixels = torch.randint(0, 16, (3, 1, 2, 2), generator=torch.Generator().manual_seed(1))
    taps = run(model, pixels)
    one = {x.layer: x.ops for x in operation_counts(model, taps, pixels)}
    per = [{x.layer: x.ops for x in operation_counts(
        model, {k: v[:, b:b + 1] if v.dim() >= 2 and k not in ("logits", "pred") else v
                for k, v in taps.items()}, pixels[b:b + 1])} for b in range(3)]
    for layer, ops in one.items():
        assert ops == pytest.approx(sum(p[layer] for p in per) / 3), layer


def test_spike_rates_and_activity():
    model = random_int_model(TINY, 8, seed=0)
    pixels = torch.randint(0, 16, (2, 1, 2, 2), generator=torch.Generator().manual_seed(2))
    taps = run(model, pixels)
    rows = {r["layer"]: r for r in spike_rates(model, taps)}
    assert "blocks.0.q_lif" in rows and "head.lif" in rows and "blocks.0.sasa" in rows
    s = taps["blocks.0.mlp_lif"]
    assert rows["blocks.0.mlp_lif"]["rate"] == pytest.approx(float(s.float().mean()))
    assert rows["blocks.0.mlp_lif"]["spikes_per_image"] == pytest.approx(float(s.sum()) / 2)
    act = activity(model, 2)
    en = act["energy"]
    assert en["nj_per_image"] == pytest.approx(
        (en["ac_per_image"] * PJ_PER_AC + en["mac_per_image"] * PJ_PER_MAC) / 1000)
    assert en["mac_per_image"] == 4 * 4 * 2
    assert "AC" in en["rule"] and "MAC" in en["rule"]
    with pytest.raises(ValueError, match="images must be >= 1"):
        activity(model, 0)
