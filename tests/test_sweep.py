"""`hwgen sweep`: grids from the command line and TOML, plan-stage sweeps on local Ray and in
local processes giving identical records, resume after an interruption, timeouts and
refusals as records, one sim-stage trial, reports with Pareto plots; a build sweep (slow)."""

import json
import shutil
from pathlib import Path

import pytest

from hwgen.cli.main import main
from hwgen.sweep.grid import GridError, make_grid
from hwgen.sweep.report import pareto
from hwgen.sweep.results import RESULTS, read_records

BUNDLED = Path(__file__).resolve().parent.parent / "quant" / "checkpoints" / "digits-tiny.hwq"
# Four plan trials that plan in about a second each (the ECP5 boards' wide foldings keep
# the cycle models' run short; the iCEBreaker's takes several seconds per trial).
PLAN_GRID = ["--config", "digits-tiny", "--bits", "4,8", "--board", "ulx3s-85f,ulx3s-25f",
             "--stage", "plan", "-q"]


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / RESULTS).read_text().splitlines()]


def comparable(recs: list[dict]) -> dict[str, dict]:
    """Records by key without what varies between runs (timings, host, process)."""
    return {r["key"]: {k: v for k, v in r.items() if k != "run"} for r in recs}


@pytest.fixture(scope="module")
def plan_sweep(tmp_path_factory) -> Path:
    """The four-trial plan sweep in two local processes, without Ray."""
    out = tmp_path_factory.mktemp("sweep") / "processes"
    assert main(["sweep", *PLAN_GRID, "--no-ray", "--jobs", "2", "--out", str(out)]) == 0
    return out


def test_grid_from_toml_and_command_line(tmp_path):
    toml = tmp_path / "grid.toml"
    toml.write_text('[grid]\nmodel = ["digits-tiny"]\nboard = ["icebreaker", "ulx3s-85f"]\n'
                    'bits = [4, 8]\nevent_driven = ["none", "blocks.0.fc2,blocks.0.o"]\n'
                    '[trial]\nstage = "sim"\nimages = 2\n[resources]\ntimeout = 60\n')
    grid = make_grid(toml)
    trials = grid.trials()
    assert len(trials) == 8 and {t.stage for t in trials} == {"sim"}
    assert {t.event_driven for t in trials} == {"", "blocks.0.fc2,blocks.0.o"}
    assert grid.resources == {"timeout": 60}
    # the command line's axis replaces the file's; a model file carries its own bits
    grid = make_grid(toml, {"board": ["ulx3s-85f"], "model": [str(BUNDLED)]}, {"stage": "plan"})
    trials = grid.trials()
    assert len(trials) == 2 and all(t.bits is None and t.stage == "plan" for t in trials)
    for bad, words in [({"bits": [5]}, "bits: must be 4 or 8"),
                       ({"board": ["nosuch"]}, "unknown board 'nosuch'"),
                       ({"model": ["nosuch-config"]}, "unknown config 'nosuch-config'"),
                       ({"max_util": [150]}, "max_util: must be a percentage")]:
        with pytest.raises(GridError if "board" not in bad else Exception, match=words):
            make_grid(toml, bad)
    (tmp_path / "bad.toml").write_text("[grid]\nboards = ['icebreaker']\n")
    with pytest.raises(GridError, match="unknown key 'boards' in \\[grid\\]"):
        make_grid(tmp_path / "bad.toml")


def test_bad_sweeps_are_refused_with_one_line(tmp_path, capsys):
    assert main(["sweep", "--config", "digits-tiny", "--out", str(tmp_path), "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs at least one model" in err and "board" in err


def test_pareto_front():
    pts = [(1, 1), (2, 3), (3, 2), (2, 2), (4, 5), (4, 5)]
    assert pareto(pts) == [True, True, False, False, True, True]


def test_plan_sweep_in_processes(plan_sweep):
    recs = records(plan_sweep)
    assert len(recs) == 4 and all(r["status"] == "ok" for r in recs), recs
    assert len({r["key"] for r in recs}) == 4
    for r in recs:
        assert r["plan"]["lut"] > 0 and r["plan"]["latency_cycles"] > 0
        assert r["plan"]["images_per_s"] > 0 and r["energy"]["nj_per_image"] > 0
        assert r["model"]["weight_bits"] == r["params"]["bits"]
        assert 0 <= r["accuracy"]["golden"] <= 1
    report = (plan_sweep / "report.md").read_text()
    assert "4 trials (stage plan): 4 ok" in report
    for png in ("pareto_throughput_luts.png", "pareto_accuracy_bits.png",
                "pareto_efficiency_luts.png"):
        assert (plan_sweep / png).stat().st_size > 1000 and png in report


def test_plan_sweep_on_local_ray_gives_the_same_records(plan_sweep, tmp_path, capsys):
    pytest.importorskip("ray", reason="Ray is the optional extra hwgen[sweep]")
    out = tmp_path / "ray"
    assert main(["sweep", *PLAN_GRID, "--jobs", "2", "--out", str(out)]) == 0
    assert "4 run on ray" in capsys.readouterr().out
    ray_recs = records(out)
    assert {r["run"]["executor"] for r in ray_recs} == {"ray"}
    assert comparable(ray_recs) == comparable(records(plan_sweep))


def test_resume_runs_only_the_rest(plan_sweep, tmp_path, capsys):
    out = tmp_path / "resumed"
    shutil.copytree(plan_sweep, out)
    lines = (out / RESULTS).read_text().splitlines()
    # interrupted after two trials, the third's line cut short mid-write
    (out / RESULTS).write_text("\n".join(lines[:2]) + "\n" + lines[2][:40])
    capsys.readouterr()
    assert main(["sweep", *PLAN_GRID, "--no-ray", "--out", str(out)]) == 0
    assert "4 trials (2 cached, 2 run on processes" in capsys.readouterr().out
    assert comparable(read_records(out)) == comparable(records(plan_sweep))
    first = {r["key"]: r["run"]["pid"] for r in records(plan_sweep)}
    now = records(out)
    assert [r["run"]["pid"] for r in now[:2]] == [first[r["key"]] for r in now[:2]]
    assert main(["sweep", *PLAN_GRID, "--no-ray", "--out", str(out)]) == 0
    assert "4 trials (4 cached, 0 run" in capsys.readouterr().out


def test_timeouts_and_refusals_are_records(tmp_path, capsys):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    argv = ["sweep", "--config", "digits-tiny", "--model", str(bad),
            "--board", "ulx3s-85f", "--no-ray", "-q", "--out", str(tmp_path)]
    # a spawned worker needs longer than this to import torch: the trial times out
    assert main([*argv, "--trial-timeout", "0.05"]) == 0
    recs = read_records(tmp_path)
    got = sorted((str(r["params"]["weight_seed"]), r["status"]) for r in recs)
    assert got == [("0", "timeout"), ("None", "refused")], got
    for r in recs:
        if r["status"] == "timeout":
            assert r["reason"] == "timed out after 0.05 s"
        else:  # the checkpoint does not load: quant's one-line reason
            assert r["params"]["model"] == str(bad)
            assert "not a readable PyTorch checkpoint" in r["reason"], r["reason"]
    capsys.readouterr()
    assert main(argv) == 0  # recorded failures are not retried by default
    assert "(2 cached, 0 run" in capsys.readouterr().out
    assert main([*argv, "--retry-failed"]) == 0
    got = sorted((str(r["params"]["weight_seed"]), r["status"])
                 for r in read_records(tmp_path))
    assert got == [("0", "ok"), ("None", "refused")], got


@pytest.mark.sim
def test_sim_stage_trial(tmp_path, verilator):
    assert main(["sweep", "--model", str(BUNDLED), "--board", "ulx3s-85f", "--stage", "sim",
                 "--images", "2", "--no-ray", "-q", "--out", str(tmp_path)]) == 0
    (r,) = records(tmp_path)
    assert r["status"] == "ok", r["reason"]
    assert r["sim"]["bit_exact"] and r["sim"]["passed"] == 2
    assert r["sim"]["cycles"] == r["sim"]["predicted_cycles"] and r["sim"]["spans_match"]
    assert r["accuracy"]["hardware"] is not None and r["model"]["weight_bits"] == 8
    assert "2/2 bit-exact" in (tmp_path / "report.md").read_text()


@pytest.mark.slow
def test_build_stage_sweep(tmp_path):
    from hwgen.targets.boards import get_board

    if missing := get_board("icebreaker").missing_tools():
        pytest.skip(f"{', '.join(missing)} not installed")
    assert main(["sweep", "--model", str(BUNDLED), "--board", "icebreaker", "--stage", "build",
                 "--no-ray", "-q", "--out", str(tmp_path)]) == 0
    (r,) = records(tmp_path)
    assert r["status"] == "ok", r["reason"]
    b = r["build"]
    assert b["fmax_mhz"] > 0 and Path(b["bitstream"]).stat().st_size > 0
    assert b["synth"]["lut"] > 0 and b["images_per_s_at_clock"] > 0
    assert "ICESTORM_LC" in b["utilization"]


def test_sweep_help(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for words in ("--address", "ray://HOST:PORT", "--trial-timeout", "--jobs", "--no-ray",
                  "results.jsonl", "report.md", "--stage {plan,sim,build}", "docs/sweep.md"):
        assert words in out, words


@pytest.mark.sim
def test_sim_chunks_as_ray_tasks(tmp_path, capsys, verilator):
    pytest.importorskip("ray", reason="Ray is the optional extra hwgen[sweep]")
    report = tmp_path / "sim.json"
    assert main(["sim", "--images", "4", "--workers", "2", "--address", "local", "--board",
                 "ulx3s-85f", "--report", str(report)]) == 0
    captured = capsys.readouterr()
    assert "simulating 4 images on verilator (2 Ray task(s))" in captured.err
    assert "images passed: 4/4 bit-exact" in captured.out
    data = json.loads(report.read_text())
    assert data["passed"] == 4 and len(data["predictions"]) == 4  # both chunks, in order
    assert data["cycles"] == data["predicted_cycles"] and len(data["cycles"]) == 2  # 1st alone
    # each chunk's images back to back: a result cycle per image, as predicted
    assert [len(c) for c in data["stream_cycles"]] == [2, 2]
    assert data["stream_cycles"] == data["predicted_stream_cycles"]


def test_address_without_ray_is_refused(tmp_path, capsys, monkeypatch):
    import sys

    from hwgen.sweep import runner

    monkeypatch.setitem(sys.modules, "ray", None)  # as if hwgen[sweep] were not installed
    assert not runner.ray_available()
    argv = ["sweep", "--config", "digits-tiny", "--board", "ulx3s-85f", "-q",
            "--out", str(tmp_path)]
    assert main([*argv, "--address", "auto"]) == 1
    err = capsys.readouterr().err
    assert "Ray is not installed: pip install 'hwgen[sweep]'" in err
    assert read_records(tmp_path) == []


def test_a_killed_worker_is_a_crashed_record_and_the_sweep_goes_on(tmp_path):
    import multiprocessing
    import os
    import signal
    import threading
    import time

    from hwgen.sweep.executors import Task, run_processes
    from hwgen.sweep.grid import TrialSpec

    spec = TrialSpec("digits-tiny", "ulx3s-85f")
    # Made-up keys: a worker that gets to run a trial refuses it (its own key differs).
    tasks = [Task(spec, "0000000000000001"), Task(spec, "0000000000000002")]
    got: list[dict] = []
    before = set(multiprocessing.active_children())
    runner = threading.Thread(target=run_processes, args=(tasks, str(tmp_path), got.append))
    runner.start()
    for _ in range(200):
        if workers := set(multiprocessing.active_children()) - before:
            break
        time.sleep(0.05)
    (worker,) = workers
    os.kill(worker.pid, signal.SIGKILL)  # still importing torch: long before it can answer
    runner.join(120)
    assert [r["status"] for r in got] == ["crashed", "refused"], got
    assert got[0]["reason"] == "the worker process died (exit code -9)"
    assert "its hwgen sources or tool versions differ" in got[1]["reason"]
