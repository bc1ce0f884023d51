"""Simulated cycles of SpikeLinear, event-driven vs dense, at several spike rates (issue 3).

Both designs read the same weight-memory width per cycle (``pe * simd = 8`` weights: dense
``pe=2, simd=4``, event ``pe=8``), so the comparison is between skipping zeros and
summing every input at the same memory bandwidth. Each rate streams the same number of
random tokens (Bernoulli spikes, seeded) through a Verilator simulation in free flow;
every run is checked bit-exact against the golden model, beat by beat against the cycle
model, and against the closed-form count. Prints a Markdown table.

Usage: .venv/bin/python bench/bench_spike_linear.py [--in 128] [--out 32] [--tokens 8]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from quant.golden import spike_linear  # noqa: E402
from quant.ir import signed_bits  # noqa: E402
from rtl_templates.common import pack_spikes, pack_values  # noqa: E402
from rtl_templates.spike_linear import SpikeLinear  # noqa: E402
from sim.block_sim import verify_block  # noqa: E402

RATES = (0.05, 0.10, 0.25, 0.50)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--in", dest="n_in", type=int, default=128)
    ap.add_argument("--out", type=int, default=32)
    ap.add_argument("--time-steps", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=8)
    ap.add_argument("--simulator", default="verilator")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    g = torch.Generator().manual_seed(args.seed)
    w = torch.randint(-127, 128, (args.out, args.n_in), generator=g)
    b = torch.randint(-2000, 2001, (args.out,), generator=g)
    acc = signed_bits(int((b + w.clamp(max=0).sum(1)).min()), int((b + w.clamp(min=0).sum(1)).max()))
    T, N = args.time_steps, args.tokens
    blocks = {
        "dense": SpikeLinear(w.tolist(), b.tolist(), time_steps=T, weight_bits=8, acc_bits=acc,
                             pe=2, simd=4, mode="dense"),
        "event": SpikeLinear(w.tolist(), b.tolist(), time_steps=T, weight_bits=8, acc_bits=acc,
                             pe=8, simd=1, mode="event"),
    }
    rows = []
    started = time.time()
    for rate in RATES:
        s = (torch.rand(N, T, args.n_in, generator=g) < rate).long()
        counts = s.sum(-1).tolist()
        inputs = {"i": pack_spikes(s)}
        cycles = {}
        for mode, block in blocks.items():
            expected = {"o": pack_values(spike_linear(s, w, b), acc, block.pe)}
            run = verify_block(block, inputs, expected, words=mode == "event",
                               simulator=args.simulator, tag=f"bench-slin-{mode}")
            closed = block.cycles(N, counts if mode == "event" else None)
            if run.cycles != closed:
                raise AssertionError(f"{mode} at {rate:.0%}: simulated {run.cycles} cycles, "
                                     f"closed form {closed}")
            cycles[mode] = run.cycles
        rows.append((rate, s.float().mean().item() * args.n_in, cycles["dense"], cycles["event"]))

    d, e = blocks["dense"], blocks["event"]
    print(f"spike_linear {args.n_in}->{args.out}, T={T}, {N} tokens per rate, 8-bit weights; "
          f"memory {d.memory_shape()[0]}x{d.memory_shape()[1]} (dense pe=2 simd=4) vs "
          f"{e.memory_shape()[0]}x{e.memory_shape()[1]} (event pe=8); {args.simulator}, "
          f"bit-exact, cycle model and closed form agree ({time.time() - started:.0f} s)\n")
    print("| spike rate | spikes/step (mean) | dense cycles | event cycles | dense/event |")
    print("|---|---|---|---|---|")
    for rate, mean, dense, event in rows:
        print(f"| {rate:.0%} | {mean:.1f} | {dense} | {event} | {dense / event:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
