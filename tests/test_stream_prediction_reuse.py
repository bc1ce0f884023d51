"""`hwgen sim` reuses the planner's dense cycle-model runs (one image alone, three back to
back) instead of running them again: they must be exactly the runs the simulation check
would make on the graph."""

import pytest

from hwgen.compiler.planner import plan_model
from hwgen.compiler.predict import image_cycles, image_timing
from hwgen.compiler.target import Target
from hwgen.targets.boards import get_board
from quant.config import get_config
from quant.random_model import random_int_model
from sim.e2e import predict_images, predict_stream


def test_plan_keeps_the_models_runs_of_one_and_three_images():
    model = random_int_model(get_config("digits-tiny"), seed=2)
    plan = plan_model(model, Target.for_board(get_board("ulx3s-85f")), event="none", calib=2)
    assert plan.interval_basis == "exact"
    graph = plan.graph(model).for_models_only()
    three = image_cycles(graph, images=3)
    assert plan.stream_cycles == three
    assert plan.interval_cycles == three[2] - three[1]
    # seeded or not, predict_stream gives the same cycles
    alone = plan.latency_cycles
    fresh = predict_stream(graph, {}, 0, 10, alone)
    assert predict_stream(graph, {}, 0, 10, alone, {3: plan.stream_cycles}) == fresh
    assert fresh[:3] == three and len(fresh) == 10
    # one image alone: its result cycle and every tapped stream's first/last beat
    assert (plan.latency_cycles, plan.alone_spans) == image_timing(graph)
    assert plan.alone_spans.keys() == {e.name for e in graph.tapped()}
    seeded = predict_images(graph, 4, {}, (plan.latency_cycles, plan.alone_spans))
    assert seeded == predict_images(graph, 4, {})


@pytest.mark.slow
def test_cifar_mid_on_chip_interval_is_exact():
    """cifar-mid's three images (652 k modelled cycles) are under the exact limit: its
    interval is the cycle models' 191,232, not its slowest block's 147,456."""
    from hwgen.compiler.loader import resolve_model

    plan = plan_model(resolve_model(None, "cifar-mid"), Target.for_board(get_board("ulx3s-85f")))
    assert plan.interval_basis == "exact"
    assert (plan.latency_cycles, plan.interval_cycles) == (268_405, 191_232)
    assert plan.bottleneck.cycles == 147_456
