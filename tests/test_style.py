"""The execution style (issue 10): the planner keeps every weight on chip when the model fits
and otherwise, on a board with external memory, plans the external-weight engine, saying
which style it chose and why; a board build refuses the external style (its SDRAM top is not generated yet)."""

import json

import pytest

from hwgen.cli.main import main
from hwgen.compiler.loader import resolve_model
from hwgen.compiler.stats import calibrate
from hwgen.compiler.style import mean_spike_rate, plan_styled
from hwgen.compiler.target import ModelTooLarge, Target
from hwgen.targets.boards import ECP5_85F, ULX3S_SDRAM, get_board


@pytest.fixture(scope="module")
def model():
    return resolve_model(None, None)


def test_auto_keeps_a_fitting_model_on_chip(model):
    styled = plan_styled(model, Target.for_board(get_board("ulx3s-85f")), calib=4)
    assert styled.style == "onchip" and styled.plan is not None
    assert styled.to_dict()["style"] == "onchip"
    assert styled.table().startswith("style: onchip weights (every weight fits on chip)")


def test_auto_goes_external_when_the_chip_is_too_small():
    # cifar-mid under a block-RAM budget its on-chip dataflow cannot meet even fully folded
    # (it needs 168, threshold ROMs of the wide LIF arrays included), on a device with SDRAM:
    # the engine keeps only activations on chip.
    model = resolve_model(None, "cifar-mid")
    target = Target(device=ECP5_85F, max_util=0.8, clock_mhz=25.0, budget={"bram": 60},
                    memory=ULX3S_SDRAM)
    styled = plan_styled(model, target, calib=2)
    assert styled.style == "external" and styled.engine is not None
    assert "all on chip does not fit: BRAM 168 (limit 60, +108)" in styled.reason
    assert "SDRAM" in styled.reason
    e = styled.engine
    assert e.fits and e.used()["bram"] <= 60
    d = styled.to_dict()
    assert d["clock_mhz"] == ULX3S_SDRAM.clock_mhz and d["interval_cycles"] > 0
    streamed = [x for x in d["layers"] if x["bound"] != "on-chip"]
    assert streamed and all(x["bytes_read"] > 0 for x in streamed)
    # the engine's spike rate is the calibration's, not a constant
    assert e.knobs.spike_rate == pytest.approx(mean_spike_rate(calibrate(model, 2)))
    # without external memory the refusal stays the on-chip one
    with pytest.raises(ModelTooLarge, match="even fully folded: needs BRAM 168"):
        plan_styled(model, Target(device=ECP5_85F, budget={"bram": 60}), calib=2)


def test_plan_json_external_forced(capsys):
    assert main(["plan", "--board", "ulx3s-85f", "--weights", "external", "--calib", "4",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["style"] == "external" and d["style_reason"].startswith("--weights external")
    assert d["clock_mhz"] == 50.0 and d["interval_cycles"] > 0
    assert 0 < d["memory"]["bandwidth_share"] <= 1.0
    assert {x["bound"] for x in d["layers"]} <= {"compute", "memory", "on-chip"}


@pytest.mark.parametrize(("argv", "words"), [
    (["plan", "--board", "icebreaker", "--weights", "external"],
     ["iCE40UP5K has no external memory"]),
    (["build", "--board", "icebreaker", "--weights", "external", "--calib", "4"],
     ["iCE40UP5K has no external memory"]),
])
def test_external_refusals_are_one_line(tmp_path, capsys, argv, words):
    out = tmp_path / "build"
    assert main(argv + (["--out", str(out)] if argv[0] == "build" else [])) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)
    assert not out.exists()


def test_model_too_big_for_the_external_memory_says_need_against_capacity():
    """A board whose memory cannot hold the weights: refused with the need and the size."""
    import dataclasses

    from hwgen.compiler.loader import resolve_model
    from hwgen.compiler.stats import calibrate
    from hwgen.compiler.style import plan_external
    from hwgen.compiler.target import ModelTooLarge, Target
    from hwgen.targets.boards import ULX3S_SDRAM, get_board

    model = resolve_model(None, "cifar-mid")
    tiny = dataclasses.replace(ULX3S_SDRAM, capacity_bytes=1 << 16)
    target = dataclasses.replace(Target.for_board(get_board("ulx3s-85f")), memory=tiny)
    with pytest.raises(ModelTooLarge, match=r"weights need \d+\.\d MiB, the memory holds 0\.1 MiB"):
        plan_external(model, target, stats=calibrate(model, 2, seed=0))
