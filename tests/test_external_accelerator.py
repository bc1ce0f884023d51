"""The external-weight style's generated accelerator (issue 10): the stem, the RPE conv and
the head on chip, every transformer block on one engine reading its weights through the
memory port (hwgen.compiler.engine_body.ExternalBody). Planned from the CLI, simulated
bit-exact on every stream and cycle-exact, alone and back to back."""

import pytest

from hwgen.cli.main import main
from hwgen.compiler.builder import build_graph, front_convs, front_words, graph_memory_image
from hwgen.compiler.engine_body import BodySpec, body_words
from hwgen.compiler.graph import Folding
from hwgen.compiler.loader import resolve_model
from hwgen.compiler.style import check_activations, check_on_chip_weights, plan_styled
from hwgen.compiler.target import ModelTooLarge, Target
from hwgen.compiler.top import accelerator_verilog
from hwgen.targets.boards import ULX3S_SDRAM, get_board
from quant.config import get_config
from quant.data import random_pixels
from quant.random_model import random_int_model
from sim.e2e import simulate_accelerator

ULX3S = Target.for_board(get_board("ulx3s-85f"))


def test_forced_external_plan_generates_the_body_accelerator():
    styled = plan_styled(resolve_model(None, None), ULX3S, weights="external", calib=4)
    plan = styled.plan
    assert styled.style == "external" and plan is not None and plan.body is not None
    kinds = {x.node: x.kind for x in plan.layers}
    assert kinds["body"] == "engine" and not any(n.startswith("blocks.") for n in kinds)
    assert {"stem.0.conv", "rpe", "head"} <= set(kinds)
    body = next(x for x in plan.layers if x.node == "body")
    assert body.total_lut > ULX3S_SDRAM.controller_lut  # the controller is counted in it
    assert plan.lanes_u == plan.body.pe and plan.interval_basis == "exact"
    assert plan.latency_cycles > body.cycles > 0
    d = styled.to_dict()
    assert d["accelerator"]["body_engine"]["pe"] == plan.body.pe
    assert d["accelerator"]["interval_cycles"] == plan.interval_cycles
    assert "generated accelerator (hwgen sim)" in styled.table()


def test_on_chip_part_too_big_is_refused_before_anything_is_built():
    model = resolve_model(None, "cifar-paper")
    with pytest.raises(ModelTooLarge, match=r"need 6\.80 Mbit, more than the LFE5U-85F's 3\.83"):
        check_on_chip_weights(model, ULX3S)


@pytest.mark.sim
def test_two_block_model_external_bit_exact_and_cycle_exact(verilator):
    """A random two-block model with its blocks on the engine: every stream (stem, RPE,
    body out, head) equal to the golden model, the first image alone and five back to back
    at the predicted cycles; gaps and stalls change cycles, never results."""
    cfg = get_config("digits-tiny").replace(depth=2, dim=16, heads=2, mlp_ratio=2)
    model = random_int_model(cfg, seed=5)
    plan = plan_styled(model, ULX3S, weights="external", calib=2).plan
    graph = plan.graph(model)
    pixels = random_pixels(cfg, 5, seed=3)
    report = simulate_accelerator(graph, pixels, simulator=verilator, tag="ext", stream=True)
    assert report.ok, report.mismatch
    assert report.predictions == report.golden_predictions
    assert report.cycles == report.predicted_cycles == [plan.latency_cycles]
    assert report.stream_match is True, (report.stream_cycles, report.predicted_stream_cycles)
    assert set(report.intervals) == {plan.interval_cycles}
    assert report.spans and report.span_mismatches() == []
    slow = simulate_accelerator(graph, pixels[:2], simulator=verilator, tag="ext", gap=0.3,
                                backpressure=0.5, seed=4)
    assert slow.ok, slow.mismatch
    assert slow.predictions == report.predictions[:2]


def test_external_verilog(tmp_path):
    out = tmp_path / "acc.v"
    assert main(["verilog", "--board", "ulx3s-85f", "--weights", "external", "--calib", "2",
                 "-o", str(out)]) == 0
    text = out.read_text()
    assert "body" in text and "module" in text


def _front_case(**timing):
    """A two-stage stem (8x8 -> 4x4 -> a 2x2 grid) and two blocks, the stem's second conv
    and the RPE on conv engines next to the body engine, all three at one memory through
    the arbiter (the style cifar-paper needs: its stem.1 and RPE weights do not fit on
    chip)."""
    cfg = get_config("digits-tiny").replace(stem_channels=(4, 8), stem_pool=(True, True),
                                            depth=2, dim=16, heads=2, mlp_ratio=2)
    model = random_int_model(cfg, seed=5)
    spec = BodySpec(pe=8, simd=2, front=True, front_simd=4, max_burst=16, **timing)
    return cfg, model, build_graph(model, {"stem.1.conv": Folding(4, 1)}, 8, "ecp5", body=spec)


def test_front_graph_shares_one_memory():
    _, model, graph = _front_case()
    kinds = {n.name: type(n.component).__name__ for n in graph.nodes.values()}
    assert kinds["stem.1.conv"] == kinds["rpe"] == "ConvEngine"
    assert kinds["stem.1.lif"] == kinds["head.lif"] == "SpikeCollector"
    users = [n.name for n in graph.memory_users()]
    assert users == ["stem.1.conv", "rpe", "body"]  # the arbiter's priority
    words = graph_memory_image(graph)
    bases = sorted(n.component.base_addr if n.name != "body" else 0
                   for n in graph.memory_users())
    assert bases[0] == 0 and len(words) == len(graph.memory.init)
    assert len(words) == body_words(model) + sum(front_words(c, model.weight_bits)
                                                 for c in front_convs(model))
    text = accelerator_verilog(graph)
    assert "mem_arbiter" in text


@pytest.mark.sim
def test_front_engines_bit_exact_and_cycle_exact(verilator):
    """Every stream equal to the golden model (the engines' tile-major ones too), the first
    image alone and three back to back at the cycles the network of models predicts, the
    arbiter's included; gaps and stalls change cycles, never results."""
    cfg, _, graph = _front_case()
    pixels = random_pixels(cfg, 3, seed=3)
    report = simulate_accelerator(graph, pixels, simulator=verilator, tag="front", stream=True)
    assert report.ok, report.mismatch
    assert report.predictions == report.golden_predictions
    assert report.cycles == report.predicted_cycles
    assert report.stream_match is True, (report.stream_cycles, report.predicted_stream_cycles)
    assert report.spans and report.span_mismatches() == []
    slow = simulate_accelerator(graph, pixels[:2], simulator=verilator, tag="front", gap=0.3,
                                backpressure=0.5, seed=4)
    assert slow.ok, slow.mismatch
    assert slow.predictions == report.predictions[:2]
    # A memory of another latency (so other turns of the arbiter): other cycles, still the
    # ones the models predict. (Refresh gaps are tied to absolute time, which the image's
    # relative cycles do not see: covered by tests/test_board_external.py's LiteDRAM run.)
    _, _, graph2 = _front_case(latency=5)
    gaps = simulate_accelerator(graph2, pixels, simulator=verilator, tag="front-latency",
                                stream=True)
    assert gaps.ok, gaps.mismatch
    assert gaps.cycles == gaps.predicted_cycles and gaps.cycles != report.cycles
    assert gaps.stream_match is True, (gaps.stream_cycles, gaps.predicted_stream_cycles)


def test_external_all_plans_the_conv_engines():
    """`--weights external-all`: the planner puts the stem's second conv and the RPE on conv
    engines beside the body engine, and says so."""
    cfg, model, _ = _front_case()
    styled = plan_styled(model, ULX3S, weights="external-all", calib=2)
    plan = styled.plan
    assert plan is not None and plan.body.front
    kinds = {x.node: x.kind for x in plan.layers}
    assert kinds["stem.1.conv"] == kinds["rpe"] == "conv_engine"
    assert kinds["stem.1.lif"] == kinds["head.lif"] == "collector"
    assert plan.interval_basis == "exact" and plan.latency_cycles > 0
    assert any("fixed-priority arbiter" in n for n in plan.notes)
    assert "the first stem conv and head on chip" in styled.table()
    auto = plan_styled(model, ULX3S, weights="external", calib=2).plan
    assert not auto.body.front  # its small convs stay on chip unless asked


def test_cifar_paper_activations_are_refused_with_their_need():
    """cifar-paper's one image of activations does not fit the 85F's block RAM whatever the
    engines: refused before anything is built, need against capacity."""
    model = resolve_model(None, "cifar-paper")
    with pytest.raises(ModelTooLarge, match=r"U 1\.97.*need 4\.63 Mbit of block RAM, more "
                                             r"than the LFE5U-85F's 3\.83 Mbit \(\+0\.80\)"):
        check_activations(model, ULX3S, front=True)
