"""Benchmark of quantisation-aware fine-tuning (quant/qat.py) on the bundled digits-tiny.

Run from the repo root:  .venv/bin/python bench/bench_qat.py [--epochs N] [--bits 4 8]
Prints, per weight width, the float / post-training / QAT accuracy on the digits test
split (360 images) and the fine-tuning time, as Markdown rows for BENCHMARKS.md
(section "QAT").
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from quant.checkpoints import BUNDLED_CHECKPOINT as BUNDLED  # noqa: E402
from quant.qat import DEFAULT_QAT_EPOCHS, quantize_with_qat  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=DEFAULT_QAT_EPOCHS)
    p.add_argument("--bits", type=int, nargs="+", default=[4, 8])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                            capture_output=True).stdout.strip()
    print(f"commit {commit}, {platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, load {os.getloadavg()[0]:.1f}")
    print("| bits | float | post-training | QAT | QAT epochs | QAT time (s) |")
    print("|---|---|---|---|---|---|")
    for bits in args.bits:
        _, r = quantize_with_qat(BUNDLED, bits, args.epochs, seed=args.seed, progress=False)
        print(f"| {bits} | {100 * r.float_acc:.2f} % | {100 * r.ptq_acc:.2f} % | "
              f"{100 * r.qat_acc:.2f} % | {r.epochs} | {r.seconds:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
