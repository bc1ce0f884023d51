"""Spike statistics drive the plan: measured input rates, the dense-or-event-driven choice
per spike linear, spike conv, DWC and head, calibration-mean timing, and a planner that stays
quiet from Python."""

import json
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from hwgen.cli.main import main
from hwgen.compiler.graph import Folding
from hwgen.compiler.planner import event_capable, make_plan
from hwgen.compiler.stats import SpikeStats, calibrate, measure_spikes, spike_inputs
from hwgen.compiler.target import Target
from hwgen.targets.boards import get_board
from quant.config import get_config
from quant.random_model import random_int_model, random_pixels
from sim.e2e import simulate_accelerator


@pytest.fixture(scope="module")
def tiny():
    return random_int_model(get_config("digits-tiny"), seed=2)


def test_spike_counts_match_the_golden_taps(tiny):
    from quant import golden

    pixels = random_pixels(tiny.config, 3, seed=1)
    stats = measure_spikes(tiny, pixels, "test")
    taps = golden.run(tiny, pixels, taps=True)
    assert set(stats.layers) == set(spike_inputs(tiny))
    fc2 = stats.layers["blocks.0.fc2"]
    spikes = taps["blocks.0.fc1_lif"]  # [T, B, C, H, W]
    assert fc2.counts.shape == (3, tiny.config.tokens, tiny.config.time_steps)
    assert int(fc2.counts.sum()) == int(spikes.sum())
    assert fc2.rate == pytest.approx(float(spikes.float().mean()))
    # token 0 (y=0, x=0) of image 1 at step 2
    assert int(fc2.counts[1, 0, 2]) == int(spikes[2, 1, :, 0, 0].sum())
    assert len(fc2.rate_per_step) == tiny.config.time_steps
    assert fc2.rate_std >= 0


def _with_rates(stats: SpikeStats, rates: dict[str, float]) -> SpikeStats:
    """The same statistics with some layers' inputs replaced by a uniform spike rate."""
    layers = dict(stats.layers)
    for name, rate in rates.items():
        x = layers[name]
        layers[name] = replace(x, counts=torch.full_like(x.counts, round(rate * x.channels)))
    return replace(stats, layers=layers)


def test_planner_goes_event_driven_where_spikes_are_sparse_and_dense_near_half(tiny):
    stats = _with_rates(calibrate(tiny, 4), {"blocks.0.fc2": 0.02, "blocks.0.fc1": 0.5})
    target = Target.for_board(get_board("ulx3s-85f"))
    plan = make_plan(tiny, target, stats=stats, auto_event=("blocks.0.fc1", "blocks.0.fc2"))
    assert plan.foldings["blocks.0.fc2"].mode == "event"
    assert plan.foldings.get("blocks.0.fc1", None) is None or \
        plan.foldings["blocks.0.fc1"].mode == "dense"
    # without the automatic choice every layer stays dense
    dense = make_plan(tiny, target, stats=stats)
    assert all(f.mode == "dense" for f in dense.foldings.values())
    assert plan.bottleneck.cycles <= dense.bottleneck.cycles


def _with_bits(stats: SpikeStats, rates: dict[str, float], seed: int = 0) -> SpikeStats:
    """The same statistics with some layers' input spikes replaced by seeded Bernoulli
    spikes of the given rates (bits and counts alike)."""
    gen = torch.Generator().manual_seed(seed)
    layers = dict(stats.layers)
    for name, rate in rates.items():
        x = layers[name]
        bits = (torch.rand(x.bits.shape, generator=gen) < rate).to(torch.uint8)
        counts = bits.to(torch.int64).sum(dim=2).flatten(2).transpose(1, 2).contiguous()
        layers[name] = replace(x, bits=bits, counts=counts)
    return replace(stats, layers=layers)


WINDOW_AND_HEAD = ("rpe", "blocks.0.dwc", "head")


@pytest.mark.parametrize("rate", [0.02, 0.5])
def test_planner_chooses_event_driven_convs_dwc_and_head_from_their_spikes(tiny, rate):
    """The automatic choice covers the RPE conv, the DWC and the head too: event-driven at a
    2 % input rate, where skipping the zeros beats any dense widening of the same cost,
    dense at 50 %."""
    assert set(WINDOW_AND_HEAD) <= set(event_capable(tiny))
    stats = _with_bits(calibrate(tiny, 4), {layer: rate for layer in WINDOW_AND_HEAD})
    target = Target.for_board(get_board("ulx3s-85f"))
    plan = make_plan(tiny, target, stats=stats, auto_event=tuple(event_capable(tiny)))
    modes = {layer: plan.foldings.get(layer, Folding()).mode for layer in WINDOW_AND_HEAD}
    assert set(modes.values()) == {"event" if rate < 0.1 else "dense"}, modes
    dense = make_plan(tiny, target, stats=stats)
    assert plan.bottleneck.cycles <= dense.bottleneck.cycles


def test_event_window_and_head_cycles_are_the_calibration_mean(tiny):
    stats = calibrate(tiny, 4)
    target = Target.for_board(get_board("ulx3s-85f"))
    plan = make_plan(tiny, target, event_layers=WINDOW_AND_HEAD, stats=stats, max_steps=0)
    graph = plan.graph(tiny).for_models_only()
    for layer in WINDOW_AND_HEAD:
        row = next(x for x in plan.layers if x.layer == layer)
        comp = graph.nodes[row.node].component
        spikes = stats.layers[layer]
        if layer == "head":
            per_image = [comp.cycles_per_image(beats) for beats in spikes.counts.flatten(1).tolist()]
        else:
            per_image = [comp.cycles_per_image(image) for image in spikes.bits.numpy()]
        assert comp.mode == "event" and row.event
        assert row.cycles == round(sum(per_image) / len(per_image))


@pytest.mark.sim
def test_event_driven_convs_dwc_and_head_planned_for_ecp5_are_exact(verilator, tiny):
    """digits-tiny with the RPE conv, the DWC and the head event-driven and pipelined
    (ECP5): every image bit-exact, back to back, each result in the cycle the models
    predict from that image's own spikes."""
    target = Target.for_board(get_board("ulx3s-85f"))
    plan = make_plan(tiny, target, event_layers=WINDOW_AND_HEAD, stats=calibrate(tiny, 2))
    graph = plan.graph(tiny)
    assert {graph.nodes[n].component.mode for n in WINDOW_AND_HEAD} == {"event"}
    report = simulate_accelerator(graph, random_pixels(tiny.config, 3, seed=5),
                                  simulator=verilator, tag="event-windows", stream=True)
    assert report.ok, report.mismatch
    assert report.predictions == report.golden_predictions
    assert report.cycles == report.predicted_cycles
    assert report.stream_match is True, (report.stream_cycles, report.predicted_stream_cycles)


def test_event_cycles_are_the_calibration_mean(tiny):
    stats = calibrate(tiny, 4)
    target = Target.for_board(get_board("ulx3s-85f"))
    plan = make_plan(tiny, target, event_layers=("blocks.0.fc2",), stats=stats, max_steps=0)
    row = next(x for x in plan.layers if x.layer == "blocks.0.fc2")
    graph = plan.graph(tiny).for_models_only()
    comp = graph.nodes["blocks.0.fc2"].component
    per_image = [sum(comp.cycles_per_token(tok) for tok in image)
                 for image in stats.layers["blocks.0.fc2"].counts.tolist()]
    assert row.event and row.cycles == round(sum(per_image) / len(per_image))
    assert row.in_rate == pytest.approx(stats.rate("blocks.0.fc2"))


def test_plan_json_says_how_the_interval_was_found(capsys):
    assert main(["plan", "--board", "ulx3s-85f", "--event-driven", "blocks.0.fc2",
                 "--calib", "4", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["interval_basis"] == "mean" and d["clock_mhz"] == 25.0
    assert d["spike_stats"]["images"] == 4
    rates = {x["layer"]: x["rate"] for x in d["spike_stats"]["layers"]}
    assert 0 < rates["blocks.0.fc2"] < 1
    assert d["foldings"]["blocks.0.fc2"]["mode"] == "event"


def test_bad_event_choice_and_calibration_count(capsys):
    assert main(["plan", "--event-driven", "blocks.0.nope"]) == 1
    assert "cannot run event-driven" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["plan", "--calib", "0"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["sim", "--images", "-3"])
    assert e.value.code == 2
    assert "must be a positive integer" in capsys.readouterr().err


def test_planning_from_python_is_quiet():
    """A user planning from Python (a fresh interpreter, so no other test's leftovers count)
    sees no UnusedElaboratable warning, not even at exit."""
    # Amaranth enables the warning once anything is elaborated, as `hwgen sim` and
    # `hwgen build` do after planning: elaborate a small block first.
    code = ("import warnings; warnings.simplefilter('always')\n"
            "from amaranth.back import verilog\n"
            "from rtl_templates.plumbing import Fork\n"
            "verilog.convert(Fork(8, 2))\n"
            "from hwgen.compiler.planner import plan_model\n"
            "from hwgen.compiler.target import Target\n"
            "from hwgen.targets.boards import get_board\n"
            "from quant.config import get_config\n"
            "from quant.random_model import random_int_model\n"
            "m = random_int_model(get_config('digits-tiny'), seed=2)\n"
            "plan = plan_model(m, Target.for_board(get_board('icebreaker')), calib=2)\n"
            "print(plan.interval_cycles)\n"
            "import gc; del plan; gc.collect()  # what was built and dropped warns now\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.strip()) > 0
    assert "UnusedElaboratable" not in proc.stderr, proc.stderr[-2000:]
