"""Benchmark of event-frame input on moving-digit events (quant/events.py, no download).

Run from the repo root:  .venv/bin/python bench/bench_frames.py [--epochs N] [--qat N]
Trains digits-tiny with `input = "frames"` (2 polarities, T = 4) on events made from the
digits split, then prints float, 8-bit and 4-bit post-training and 4-bit QAT accuracy on
the 360 test samples, as a Markdown row for BENCHMARKS.md (section "Event frames").
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from quant import golden  # noqa: E402
from quant.checkpoint import load_checkpoint  # noqa: E402
from quant.config import get_config  # noqa: E402
from quant.data import load_digits_split, to_model_input  # noqa: E402
from quant.datasets import DataSplit  # noqa: E402
from quant.events import events_from_images  # noqa: E402
from quant.qat import quantize_with_qat  # noqa: E402
from quant.quantize import quantize_model  # noqa: E402
from quant.train import train_model  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--qat", type=int, default=20)
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg = get_config("digits-tiny").replace(name="digits-events", image_channels=2,
                                            input="frames")
    d = load_digits_split()
    data = DataSplit(events_from_images(d.train_pixels, 4), d.train_labels,
                     events_from_images(d.test_pixels, 4), d.test_labels, "digits events")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                            capture_output=True).stdout.strip()
    print(f"commit {commit}, load {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "events.pt"
        r = train_model(cfg, data, ckpt, epochs=args.epochs, progress=False)
        model, _ = load_checkpoint(ckpt)
        calib = to_model_input(cfg, data.train_pixels)
        accs = {}
        for bits in (8, 4):
            m = quantize_model(model, bits, calibration=calib)
            accs[bits] = float((golden.predict(m, data.test_pixels) == data.test_labels)
                               .double().mean())
        _, q = quantize_with_qat(ckpt, 4, args.qat, data, progress=False)
    print("| epochs | train (s) | float | 8-bit PTQ | 4-bit PTQ | 4-bit QAT (epochs) |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.epochs} | {r['seconds']:.0f} | {100 * q.float_acc:.2f} % | "
          f"{100 * accs[8]:.2f} % | {100 * accs[4]:.2f} % | {100 * q.qat_acc:.2f} % "
          f"({args.qat}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
