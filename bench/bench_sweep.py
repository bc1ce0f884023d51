"""Benchmark of `hwgen sweep`: per-trial overhead of local Ray against the same plans run
serially in one process, and scaling from 1 to 2 Ray workers for sim-stage trials.

Run from the repo root:  .venv/bin/python bench/bench_sweep.py [--plan-trials N] [--sim-trials N]
Prints the figures and the machine's load average (the machine may be shared) for
BENCHMARKS.md (section "hwgen sweep").
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hwgen.sweep.grid import make_grid  # noqa: E402
from hwgen.sweep.runner import keyed_tasks, run_sweep  # noqa: E402
from hwgen.sweep.trial import run_trial  # noqa: E402


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def plan_grid(n: int):
    return make_grid(axes={"model": ["digits-tiny"], "board": ["ulx3s-85f"],
                           "weight_seed": list(range(n))}, options={"stage": "plan"})


def sim_grid(n: int, images: int):
    return make_grid(axes={"model": ["digits-tiny"], "board": ["ulx3s-85f"],
                           "weight_seed": list(range(100, 100 + n))},
                     options={"stage": "sim", "images": images})


def timed_sweep(grid, **kw) -> tuple[float, list[dict]]:
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        res = run_sweep(grid, out, progress=False, **kw)
        wall = time.perf_counter() - t0
    bad = [r for r in res.records if r["status"] != "ok"]
    if bad:
        raise SystemExit(f"trial failed: {bad[0]['label']}: {bad[0]['reason']}")
    return wall, res.records


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--plan-trials", type=int, default=8)
    p.add_argument("--sim-trials", type=int, default=4)
    p.add_argument("--images", type=int, default=8, help="images per sim trial (default 8)")
    p.add_argument("--skip-sim", action="store_true")
    args = p.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    print(f"commit {commit}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average at start {load()}")

    import ray  # the optional extra hwgen[sweep]

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    t0 = time.perf_counter()
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    ray.shutdown()
    print(f"local Ray start + stop: {time.perf_counter() - t0:.1f} s")

    grid = plan_grid(args.plan_trials)
    tasks, _ = keyed_tasks(grid)
    with tempfile.TemporaryDirectory() as work:
        run_trial(tasks[0].spec.to_dict(), tasks[0].key, work)  # imports, digits split
        t0 = time.perf_counter()
        serial = [run_trial(t.spec.to_dict(), t.key, work) for t in tasks]
        serial_s = time.perf_counter() - t0
    n = len(tasks)
    print(f"plan stage, {n} trials (digits-tiny on ulx3s-85f, weight seeds 0..{n - 1}); "
          f"load {load()}")
    print(f"  serial in one warm process: {serial_s:.1f} s ({serial_s / n:.2f} s/trial)")
    rows = []
    for name, kw in [("local Ray, 1 worker", {"executor": "ray", "jobs": 1}),
                     ("local processes, 1 worker", {"executor": "processes", "jobs": 1})]:
        wall, recs = timed_sweep(grid, **kw)
        inside = sum(r["run"]["seconds"] for r in recs)
        rows.append((name, wall, inside))
        print(f"  {name}: {wall:.1f} s wall ({wall / n:.2f} s/trial, ratio to serial "
              f"{wall / serial_s:.2f}; {(wall - serial_s) / n:+.2f} s/trial); trials' own "
              f"time {inside:.1f} s; load {load()}")
    same = [{k: v for k, v in r.items() if k != "run"} for r in serial]
    assert same == [{k: v for k, v in r.items() if k != "run"} for r in recs], "records differ"

    if not args.skip_sim:
        grid = sim_grid(args.sim_trials, args.images)
        m = len(grid.trials())
        print(f"sim stage, {m} trials of {args.images} images (digits-tiny, weight seeds "
              f"100..{99 + m}: {m} different designs); warming the simulator builds ...")
        timed_sweep(grid, executor="ray", jobs=2)
        walls = {}
        for jobs in (1, 2):
            walls[jobs], recs = timed_sweep(grid, executor="ray", jobs=jobs)
            sims = sum(r["run"]["steps"].get("sim", 0) for r in recs)
            print(f"  local Ray, {jobs} worker(s): {walls[jobs]:.1f} s wall "
                  f"({walls[jobs] / m:.1f} s/trial; simulation itself {sims:.1f} s); "
                  f"load {load()}")
        print(f"  speed-up 1 -> 2 workers: {walls[1] / walls[2]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
