"""The whole accelerator in cocotb against the golden model: every result and every layer's
stream bit-exact, measured cycles equal to the cycle-model prediction; a fuzz over small
random configs; a located fault; backpressure changing cycles but not results."""

import random
from dataclasses import replace

import pytest
import torch

from hwgen.compiler.builder import build_graph
from hwgen.compiler.graph import Folding
from hwgen.compiler.top import accelerator_verilog
from quant.config import ModelConfig, get_config
from quant.random_model import random_int_model, random_pixels
from sim.e2e import simulate_accelerator


def _divisor(rng: random.Random, n: int) -> int:
    return rng.choice([d for d in range(1, n + 1) if n % d == 0])


def fuzz_case(seed: int):
    """A small random config, integer model, folding and residual lanes, all from `seed`.

    Every case has odd or non-square shapes; the seeds below cover 3 heads, T = 1..5,
    both SASA modes, 4- and 8-bit weights, pooled and unpooled stems of one or two
    stages, one or two blocks and event-driven linears.
    """
    rng = random.Random(seed)
    heads = rng.choice([1, 2, 3, 3])
    dim = heads * rng.choice([2, 3, 5])
    stages = rng.choice([1, 1, 2])
    pool = tuple(rng.random() < 0.5 for _ in range(stages))
    h, w = rng.choice([(2, 3), (3, 2), (2, 5), (3, 4), (1, 6)])
    for p in reversed(pool):
        if p:
            h, w = 2 * h, 2 * w
    cfg = ModelConfig(
        name=f"fuzz{seed}", image_channels=rng.choice([1, 2, 3]), image_size=(h, w),
        time_steps=1 + seed % 5, depth=rng.choice([1, 1, 2]), dim=dim, heads=heads,
        mlp_ratio=rng.choice([1, 2]), sasa_mode=("channel", "token")[seed % 2],
        stem_channels=tuple(rng.choice([2, 3, 5]) for _ in range(stages)), stem_pool=pool,
        num_classes=rng.choice([2, 3, 5]))
    model = random_int_model(cfg, weight_bits=(8, 4)[(seed // 2) % 2], seed=seed)
    lanes = _divisor(rng, dim)
    fold = {}
    for i, stage in enumerate(model.stem):
        fold[f"stem.{i}.conv"] = Folding(_divisor(rng, stage.conv.out_channels),
                                         _divisor(rng, stage.conv.in_channels))
    fold["rpe"] = Folding(lanes, _divisor(rng, model.rpe.in_channels))
    for b in range(cfg.depth):
        for name, outs, ins in (("qk", 2 * dim, dim), ("o", dim, dim), ("fc1", cfg.hidden, dim),
                                ("fc2", dim, cfg.hidden)):
            event = rng.random() < 0.3
            fold[f"blocks.{b}.{name}"] = Folding(_divisor(rng, outs),
                                                 1 if event else _divisor(rng, ins),
                                                 "event" if event else "dense")
    fold["head"] = Folding(_divisor(rng, cfg.num_classes), _divisor(rng, dim))
    return model, fold, lanes


FUZZ_SEEDS = [1, 2, 3, 4, 5, 6]
FUSED_SEEDS = {3, 4, 6}  # the MLP's LIF arrays fused with fc1/fc2 where the folding allows


def _fusable(n: int) -> int:
    """The largest divisor of 16 that divides n."""
    return max(d for d in (1, 2, 4, 8, 16) if n % d == 0)


def fuzz_graph(seed: int, model=None):
    """`fuzz_case`'s graph; for FUSED_SEEDS with fc1/fc2 folded so that they fuse (dense, SIMD
    and the fed LIF's lanes dividing 16) and fused."""
    m, fold, lanes = fuzz_case(seed)
    fuse = set()
    if seed in FUSED_SEEDS:
        for b in range(m.config.depth):
            fc1, fc2 = f"blocks.{b}.fc1", f"blocks.{b}.fc2"
            fold[fc1] = Folding(_fusable(fold[fc1].pe), _fusable(m.config.dim))
            fold[fc2] = Folding(fold[fc2].pe, _fusable(m.config.hidden))
            fuse |= {fc2} | ({fc1} if _fusable(lanes) == lanes else set())
    return build_graph(model or m, fold, lanes, fuse=fuse)


@pytest.mark.sim
@pytest.mark.parametrize("seed", FUZZ_SEEDS)
def test_fuzz_configs_bit_exact_and_cycle_exact(verilator, seed):
    model, _, _ = fuzz_case(seed)
    graph = fuzz_graph(seed)
    pixels = random_pixels(model.config, 3, seed=seed)
    report = simulate_accelerator(graph, pixels, simulator=verilator, tag=f"fuzz{seed}")
    assert report.ok, report.mismatch
    assert report.predictions == report.golden_predictions
    assert report.cycles == report.predicted_cycles
    # every layer's first and last beat per image, as the cycle models predict
    assert len(report.spans) == 3 and report.span_mismatches() == []


def test_fuzz_cases_cover_the_issue():
    cases = [fuzz_case(s) for s in FUZZ_SEEDS]
    cfgs = [m.config for m, _, _ in cases]
    assert {c.time_steps for c in cfgs} == {1, 2, 3, 4, 5}
    assert {c.sasa_mode.value for c in cfgs} == {"channel", "token"}
    assert {m.weight_bits for m, _, _ in cases} == {4, 8}
    assert any(c.heads == 3 for c in cfgs)
    assert any(c.grid[0] != c.grid[1] for c in cfgs)
    assert any(c.dim % 2 for c in cfgs)
    assert any(any(c.stem_pool) for c in cfgs) and any(not all(c.stem_pool) for c in cfgs)
    assert any(f.mode == "event" for _, fold, _ in cases for f in fold.values())
    kinds = [{n.kind for n in fuzz_graph(s).nodes.values()} for s in FUSED_SEEDS]
    assert sum("lif_linear" in k for k in kinds) >= 2


@pytest.mark.sim
def test_injected_fault_is_located(verilator):
    """Hardware built from a model with one wrong weight: the report names that layer."""
    model, fold, lanes = fuzz_case(3)
    bad = random_int_model(model.config, model.weight_bits, seed=3)
    blk = bad.blocks[0]
    weight = blk.fc1.weight.clone()
    weight[0, :] = -weight[0, :] - 1
    bad.blocks[0] = replace(blk, fc1=replace(blk.fc1, weight=weight.clamp(-7, 7)))
    graph = build_graph(bad, fold, lanes)
    graph.model = model  # the golden reference stays the correct model
    report = simulate_accelerator(graph, random_pixels(model.config, 2, seed=9),
                                  simulator=verilator, tag="fault")
    assert not report.ok
    assert "blocks.0.fc1" in report.mismatch and "channel" in report.mismatch
    assert report.waveform is not None and report.waveform.exists()


@pytest.mark.sim
def test_backpressure_and_gaps_change_cycles_not_results(verilator):
    model, fold, lanes = fuzz_case(1)
    graph = build_graph(model, fold, lanes)
    pixels = random_pixels(model.config, 2, seed=4)
    free = simulate_accelerator(graph, pixels, simulator=verilator, tag="bp")
    slow = simulate_accelerator(graph, pixels, simulator=verilator, gap=0.4, backpressure=0.6,
                                seed=5, tag="bp")
    assert free.ok and slow.ok, (free.mismatch, slow.mismatch)
    assert slow.predictions == free.predictions
    assert slow.spans is None and free.span_mismatches() == []
    assert all(s > f for s, f in zip(slow.cycles, free.cycles, strict=True))


def test_verilog_is_deterministic():
    model = random_int_model(get_config("digits-tiny"), seed=0)
    fold = {"blocks.0.qk": Folding(2, 4)}
    a = accelerator_verilog(build_graph(model, fold, 2))
    b = accelerator_verilog(build_graph(random_int_model(get_config("digits-tiny"), seed=0),
                                        fold, 2))
    assert a == b
    c = accelerator_verilog(build_graph(model, {"blocks.0.qk": Folding(4, 4)}, 2))
    assert c != a
    torch.manual_seed(0)


def _board_plan(model, board: str):
    from hwgen.compiler.planner import make_plan
    from hwgen.compiler.target import Target
    from hwgen.targets.boards import get_board

    b = get_board(board)
    return make_plan(model, Target.for_board(b))


@pytest.mark.sim
def test_bundled_digits_tiny_on_its_board_plan(verilator):
    """The trained model, planned for the iCEBreaker as `hwgen build` would, on test images."""
    from hwgen.compiler.loader import load_supported
    from quant.checkpoints import BUNDLED_MODEL
    from quant.data import sample_images

    model = load_supported(BUNDLED_MODEL)
    graph = _board_plan(model, "icebreaker").graph(model)
    pixels, labels = sample_images(model, 3)
    report = simulate_accelerator(graph, pixels, labels=labels, simulator=verilator,
                                  tag="digits-ice")
    assert report.ok, report.mismatch
    assert report.cycles == report.predicted_cycles
    assert report.predictions == report.golden_predictions
    assert report.spans and report.span_mismatches() == []


@pytest.mark.sim
def test_digits_tiny_token_mode(verilator):
    """digits-tiny with token-mode SASA (random integer weights), planned for the ECP5."""
    model = random_int_model(get_config("digits-tiny").replace(sasa_mode="token"), seed=3)
    graph = _board_plan(model, "ulx3s-85f").graph(model)
    report = simulate_accelerator(graph, random_pixels(model.config, 3, seed=1),
                                  simulator=verilator, tag="digits-token")
    assert report.ok, report.mismatch
    assert report.cycles == report.predicted_cycles
    assert report.spans and report.span_mismatches() == []


@pytest.mark.sim
@pytest.mark.parametrize("seed", [1, 4])
def test_streamed_back_to_back_is_bit_exact_and_cycle_exact(verilator, seed):
    """Images back to back, the next entering while the previous drains (event-driven
    layers, token- and channel-mode SASA): every result bit-exact and in the cycle the
    models predict from each image's own spikes."""
    model, _, _ = fuzz_case(seed)
    graph = fuzz_graph(seed)
    pixels = random_pixels(model.config, 5, seed=seed + 10)
    report = simulate_accelerator(graph, pixels, simulator=verilator, tag=f"fuzz{seed}",
                                  stream=True)
    assert report.ok, report.mismatch
    assert report.predictions == report.golden_predictions
    assert len(report.stream_cycles[0]) == 5 and len(report.intervals) == 4
    assert report.stream_match is True, (report.stream_cycles, report.predicted_stream_cycles)
    # the pipeline overlaps images: back to back beats one image after another
    assert report.stream_cycles[0][-1] < 5 * report.cycles[0]
