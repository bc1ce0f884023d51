"""The external-weight engine's planner: cifar-paper's figures on the ULX3S-85F, the cycle
formulas on single layers, and its refusals."""

import math

import pytest

from hwgen.compiler.engine import (
    EngineKnobs,
    EnginePlanError,
    MemorySpec,
    event_ops,
    layer_work,
    plan_engine,
)
from hwgen.targets.boards import ECP5_85F
from quant.config import get_config
from quant.random_model import random_int_model

LIMITS = dict(lut=ECP5_85F.lut, ff=ECP5_85F.ff, bram=ECP5_85F.bram, dsp=ECP5_85F.dsp)
CHOSEN = EngineKnobs(mode="event", pe=48, simd=2, batch=1, max_fan_in=512)


@pytest.fixture(scope="module")
def paper():
    return random_int_model(get_config("cifar-paper"), seed=0)


def test_cifar_paper_bytes_per_image_are_the_streamed_weights(paper):
    plan = plan_engine(paper, CHOSEN, MemorySpec(beats_per_cycle=2.0), limits=LIMITS)
    on_chip = ("stem.0.conv.weight", "head.weight")
    streamed = sum(w.numel() for n, w in paper.named_weights()
                   if n not in on_chip and not n.endswith("dwc.weight"))
    assert plan.bytes_per_image == streamed == 7_317_504  # 8-bit weights, B = 1


def test_cifar_paper_chosen_plan_fits_and_is_memory_bound(paper):
    plan = plan_engine(paper, CHOSEN, MemorySpec(beats_per_cycle=2.0), limits=LIMITS)
    assert plan.fits, plan.problems
    bounds = [s.bound for s in plan.layers if s.work.on_engine]
    assert bounds.count("memory") > len(bounds) // 2
    assert 19 <= plan.images_per_second < 40  # the target met, the goal not (docs/hardware.md)
    # The SDRAM at the engine's clock (one 16-bit beat per cycle) misses the target.
    slow = plan_engine(paper, CHOSEN, MemorySpec(beats_per_cycle=1.0), limits=LIMITS)
    assert slow.images_per_second < 19


def test_cifar_paper_batch_two_does_not_fit(paper):
    plan = plan_engine(paper, EngineKnobs(pe=48, simd=2, max_fan_in=512, batch=2),
                       MemorySpec(beats_per_cycle=2.0), limits=LIMITS)
    assert not plan.fits
    assert any(p.startswith("BRAM") for p in plan.problems)
    assert plan.resources["residual U"].bram("ecp5") > 200  # U of two images alone


def test_dense_cycles_follow_the_closed_form(paper):
    knobs = EngineKnobs(mode="dense", pe=16, simd=32, max_fan_in=512)
    plan = plan_engine(paper, knobs, MemorySpec(), limits=LIMITS)
    fc1 = next(s for s in plan.layers if s.work.name == "blocks.0.fc1")
    assert fc1.compute_cycles == (1536 // 16) * (64 * 4) * (384 // 32)
    assert fc1.tiles == 1536 // 16
    assert fc1.memory_cycles == pytest.approx(589_824 / (2 * 0.9))
    assert fc1.cycles == pytest.approx(max(fc1.compute_cycles, fc1.memory_cycles)
                                       + fc1.memory_cycles / fc1.tiles + 24)
    fc2 = next(s for s in plan.layers if s.work.name == "blocks.0.fc2")
    assert fc2.tiles == (384 // 16) * (1536 // 16)  # fused MLP: one fc1 tile of inputs each


def test_event_ops():
    assert event_ops(128, 1.0, 64) == 128
    assert event_ops(64, 0.1, 64) == pytest.approx(6.4 + 0.9 ** 64)
    assert event_ops(100, 0.5, 64) == pytest.approx(32 + 0.5 ** 64 + 18 + 0.5 ** 36)


def test_layer_order_and_kinds(paper):
    works = layer_work(paper)
    names = [w.name for w in works]
    assert names[:3] == ["stem.0.conv", "stem.1.conv", "rpe"]
    assert names[3:9] == [f"blocks.0.{n}" for n in ("qk", "sasa", "dwc", "o", "fc1", "fc2")]
    assert names[-1] == "head"
    assert [w.on_engine for w in works[:3]] == [False, True, True]
    assert math.prod([works[2].positions]) == 64 * 4


def test_small_model_and_refusals():
    tiny = random_int_model(get_config("digits-tiny"), seed=1)
    plan = plan_engine(tiny, EngineKnobs(pe=8, simd=1, max_fan_in=64), MemorySpec(), limits=LIMITS)
    assert plan.fits and plan.images_per_second > 0
    small = plan_engine(random_int_model(get_config("cifar-mid"), seed=1), CHOSEN,
                        MemorySpec(capacity_bytes=1 << 16), limits=LIMITS)
    assert any("the memory holds 0.1 MiB" in p for p in small.problems)
    with pytest.raises(EnginePlanError, match="mode must be one of 'dense', 'event', not 'sparse'"):
        EngineKnobs(mode="sparse")
    with pytest.raises(EnginePlanError, match="at most 2 positions"):
        EngineKnobs(mode="event", simd=4)
    with pytest.raises(EnginePlanError, match="pe must be an integer >= 1, not 0"):
        EngineKnobs(pe=0)
    with pytest.raises(EnginePlanError, match=r"spike_rate must be in \(0, 1\]"):
        EngineKnobs(spike_rate=0)


def test_engine_lut_is_the_built_blocks_estimate(paper):
    """With the built encoder (segment >= the tile's fan-in) the engine's LUT/FF are the
    LinearEngine block's own estimate, once per port; a narrower segment is cheaper."""
    from rtl_templates.linear_engine import LinearEngine
    plan = plan_engine(paper, CHOSEN, MemorySpec(beats_per_cycle=2.0), limits=LIMITS)
    block = LinearEngine([[0] * 512] * 48, [0] * 48, tokens=64, time_steps=4, weight_bits=8,
                         acc_bits=max(w.acc_bits for w in layer_work(paper) if w.on_engine),
                         pe=48, mode="event").resources("ecp5")
    assert plan.resources["engine"].lut == 2 * block.lut
    assert plan.resources["engine"].ff == 2 * block.ff
    narrow = plan_engine(paper, EngineKnobs(pe=48, simd=2, max_fan_in=512, segment=64),
                         MemorySpec(beats_per_cycle=2.0), limits=LIMITS)
    assert narrow.resources["engine"].lut < plan.resources["engine"].lut
