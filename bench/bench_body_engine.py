"""Cycles per image of the transformer body on the built sequencer (`body_sequence`: every
block's [Wq; Wk], o, fc1, fc2 on one dense engine, SASA and DWC passes, U in block RAM),
from its exact cycle model next to the SDRAM path's fast model (`PipelinedMemPortRAM` with
`stream_timing`, within 1 % of LiteDRAM + the chip model), against the planner's schedule
of the same layers (hwgen.compiler.engine).

    .venv/bin/python bench/bench_body_engine.py --config cifar-paper --pe 64 --simd 4

The cycle model is the one the cocotb tests check beat by beat (tests/test_engine_body.py);
this runs it at full size (no RTL simulation: cifar-paper's body is ~10^7 cycles an image).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwgen.compiler.engine import EngineKnobs, MemorySpec, plan_engine  # noqa: E402
from hwgen.compiler.engine_body import body_sequence  # noqa: E402
from hwgen.targets.dram.controller import stream_timing  # noqa: E402
from hwgen.targets.dram.litedram_core import SDRAMConfig  # noqa: E402
from quant.config import get_config  # noqa: E402
from quant.random_model import random_int_model  # noqa: E402
from rtl_templates.memport_pipelined import PipelinedMemPortRAM  # noqa: E402
from sim.memory_sim import network_cycles  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="cifar-paper")
    ap.add_argument("--pe", type=int, default=64)
    ap.add_argument("--simd", type=int, default=4)
    ap.add_argument("--images", type=int, default=1)
    ap.add_argument("--depth", type=int, default=None,
                    help="blocks (default: the config's; the blocks are alike, so fewer "
                         "blocks give the per-block time sooner)")
    ap.add_argument("--clock-mhz", type=float, default=50.0,
                    help="engine (= SDRAM controller) clock for images/s (the fit is at 50)")
    args = ap.parse_args()
    cfg = get_config(args.config)
    if args.depth is not None:
        cfg = cfg.replace(depth=args.depth)
    t0 = time.monotonic()
    model = random_int_model(cfg, seed=0)
    seq = body_sequence(model, pe=args.pe, simd=args.simd, beat_bits=16, max_burst=64,
                        addr_bits=24)
    ram = PipelinedMemPortRAM(data_width=16, depth=1 << 24, max_burst=64,
                              **stream_timing(SDRAMConfig()))
    P = seq.positions
    ins = {"i": [0] * (seq.input_beats * args.images)}
    beats = P * cfg.dim // seq.pe * args.images
    t1 = time.monotonic()
    out = network_cycles(seq, ram.model(), ins, {}, {}, beats)
    t2 = time.monotonic()
    per_image = out[-1] / args.images
    compute = sum(g * k * P for g, k in zip(seq.groups, seq.chunks, strict=True))
    words = sum(seq.layer_words)
    print(f"{cfg.name}: body of {cfg.depth} blocks on one dense engine pe={seq.pe} "
          f"simd={seq.simd}, {len(seq.layers)} layers, {words:,} weight words of 16 bits")
    print(f"  model cycles/image {per_image:,.0f} ({args.images} image(s); last output at "
          f"cycle {out[-1]:,}); images/s at {args.clock_mhz} MHz: "
          f"{args.clock_mhz * 1e6 / per_image:.2f}")
    print(f"  engine-busy floor {compute:,} cycles ({100 * compute / per_image:.0f} %), "
          f"weight words {words:,} ({100 * words / per_image:.0f} % of the port's peak)")
    knobs = EngineKnobs(mode="dense", pe=seq.pe, simd=seq.simd, clock_mhz=args.clock_mhz)
    plan = plan_engine(model, knobs, MemorySpec())
    body = [s for s in plan.layers if s.work.name.startswith("blocks.")]
    planned = sum(s.cycles for s in body)
    print(f"  planner's schedule of the same blocks: {planned:,.0f} cycles "
          f"({100 * (per_image / planned - 1):+.1f} % built vs planned)")
    print(f"  (model built in {t1 - t0:.1f} s, cycle model ran in {t2 - t1:.1f} s)")


if __name__ == "__main__":
    main()
