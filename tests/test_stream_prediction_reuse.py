"""`hwgen sim` reuses the planner's dense back-to-back cycle-model run instead of running
it again: it must be exactly the run the simulation check would make on the graph."""

from hwgen.compiler.planner import plan_model
from hwgen.compiler.predict import image_cycles
from hwgen.compiler.target import Target
from hwgen.targets.boards import get_board
from quant.config import get_config
from quant.random_model import random_int_model
from sim.e2e import predict_stream


def test_plan_stream_cycles_are_the_models_three_image_run():
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
