"""Benchmark of the software pipeline: training time, quantise time, golden-model images/s.

Run from the repo root:  .venv/bin/python bench/bench_quant.py [--epochs N] [--skip-train]
Prints one Markdown table row for BENCHMARKS.md (section "quant") and the command used.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from quant import golden  # noqa: E402
from quant.data import load_digits_split  # noqa: E402
from quant.quantize import quantize_checkpoint, report_accuracy  # noqa: E402

BUNDLED = ROOT / "quant" / "checkpoints" / "digits-tiny.pt"


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the recipe's)")
    p.add_argument("--skip-train", action="store_true", help="leave out the training run")
    p.add_argument("--threads", type=int, default=2,
                   help="torch threads for the second golden-model figure (default 2)")
    args = p.parse_args()
    train_s = float_acc = None
    if not args.skip_train:
        from quant.train import train_digits

        with tempfile.TemporaryDirectory() as tmp:
            result = train_digits(Path(tmp) / "bench.pt", epochs=args.epochs, seed=0, progress=True)
        train_s, float_acc = result["seconds"], result["test_accuracy"]

    torch.set_num_threads(1)  # as `hwgen quantize` does
    quant_s, model = timed(lambda: quantize_checkpoint(BUNDLED, weight_bits=8), repeats=5)
    report = report_accuracy(BUNDLED, model, other_bits=(4,))

    with tempfile.TemporaryDirectory() as tmp:  # the whole command, imports and report included
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "hwgen.cli.main", "quantize", str(BUNDLED), "-o",
                        str(Path(tmp) / "m.hwq")], check=True, capture_output=True, cwd=ROOT)
        cli_s = time.perf_counter() - start

    pixels = load_digits_split().test_pixels
    golden.predict(model, pixels[:32])  # warm-up
    ips = {}
    for threads in (1, args.threads):
        torch.set_num_threads(threads)
        golden_s, _ = timed(lambda: golden.predict(model, pixels), repeats=5)
        ips[threads] = len(pixels) / golden_s
    torch.set_num_threads(1)
    check_s, _ = timed(lambda: golden.run(model, pixels.to(torch.int64), check_widths=True), repeats=3)

    print(report)
    cmd = "python bench/bench_quant.py" + " ".join(
        [""] + (["--skip-train"] if args.skip_train else [])
        + ([f"--epochs {args.epochs}"] if args.epochs else [])
        + ([f"--threads {args.threads}"] if args.threads != 2 else []))
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\ncommand: {cmd}   ({platform.machine()}, {os.cpu_count()} cores, load average "
          f"{load}, torch {torch.__version__})\n")
    t = args.threads
    from quant.train import DEFAULT_EPOCHS, THREADS

    epochs = args.epochs or DEFAULT_EPOCHS
    print(f"| training, {epochs} epochs, {THREADS} thread(s) (s) | float acc | quantise (s) "
          f"| `hwgen quantize` end to end (s) "
          f"| golden images/s, 1 thread "
          f"| golden images/s, {t} threads | golden + width checks images/s, 1 thread |")
    print("|---|---|---|---|---|---|---|")
    train = f"{train_s:.0f}" if train_s is not None else "-"
    acc = f"{100 * float_acc:.2f} %" if float_acc is not None else "-"
    print(f"| {train} | {acc} | {quant_s:.2f} | {cli_s:.1f} | {ips[1]:,.0f} | {ips[t]:,.0f} "
          f"| {len(pixels) / check_s:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
