"""Event-driven vs dense cycles of the spike-input window blocks and the head (issue 14).

For the spike 3x3 conv, the depthwise conv and the head at the reference configs' sizes,
seeded Bernoulli spikes at several rates: cycles per image (back to back, the mean over
the images) of the dense block at the planner's folding and of the event-driven block,
from the blocks' closed forms given the spikes (`cycles_per_image`), the first image
also through the cycle model (`run_single`, reading the words) to show the closed form is
exact there; and each block's LUT/FF estimate on the family it would be built for.

Run from the repo root:
    .venv/bin/python bench/bench_event.py [--images N] [--rates 0.05,0.11,0.25,0.5]
Prints a Markdown table. Pure Python: about a minute.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rtl_templates.common import pack_spikes  # noqa: E402
from rtl_templates.dwconv import DWConv3x3  # noqa: E402
from rtl_templates.head import Head  # noqa: E402
from rtl_templates.spike_conv import SpikeConv3x3  # noqa: E402
from rtl_templates.timing import run_single  # noqa: E402
from rtl_templates.window import raster_tokens  # noqa: E402

T = 4
# Estimates build blocks that are never elaborated; Amaranth would warn about each.
warnings.filterwarnings("ignore", message=".* created but never used")


def _weights(rng, *shape):
    return rng.integers(-127, 128, size=shape).tolist()


def spike_conv(cin, cout, grid, pe, simd, mode, family):
    rng = np.random.default_rng(0)
    return SpikeConv3x3(_weights(rng, cout, cin, 3, 3), [0] * cout, height=grid, width=grid,
                        time_steps=T, weight_bits=8, acc_bits=8 + 10 + (cin * 9).bit_length(),
                        pe=pe, simd=simd, mode=mode, pipelined=family == "ecp5")


def dwconv(ch, grid, lanes, mode, family):
    rng = np.random.default_rng(0)
    return DWConv3x3(_weights(rng, ch, 3, 3), [0] * ch, height=grid, width=grid, time_steps=T,
                     acc_bits=14, weight_bits=8, lanes=lanes, mode=mode,
                     pipelined=family == "ecp5")


def head(dim, tokens, pe, simd, mode, family):
    rng = np.random.default_rng(0)
    return Head(_weights(rng, 10, dim), [0] * 10, time_steps=T, tokens=tokens, weight_bits=8,
                acc_bits=8 + (T * tokens * dim).bit_length() + 1, pe=pe, simd=simd, mode=mode,
                pipelined=family == "ecp5")


# (name, family, dense block, event block, input kind); dense foldings from `hwgen plan`
# (digits-tiny on the iCEBreaker, cifar-mid on the ULX3S-85F) or the bench_blocks sizes.
def cases():
    return [
        ("spike conv 8->32, 4x4 (digits RPE)", "ice40",
         spike_conv(8, 32, 4, 1, 1, "dense", "ice40"),
         spike_conv(8, 32, 4, 1, 1, "event", "ice40"), "grid"),
        ("spike conv 32->128, 8x8 (cifar RPE)", "ecp5",
         spike_conv(32, 128, 8, 2, 32, "dense", "ecp5"),
         spike_conv(32, 128, 8, 2, 4, "event", "ecp5"), "grid"),
        ("dwconv 32, 4x4 (digits)", "ice40", dwconv(32, 4, 1, "dense", "ice40"),
         dwconv(32, 4, 1, "event", "ice40"), "grid"),
        ("dwconv 128, 8x8 (cifar)", "ecp5", dwconv(128, 8, 2, "dense", "ecp5"),
         dwconv(128, 8, 2, "event", "ecp5"), "grid"),
        ("head 32->10, N 16 (digits)", "ice40", head(32, 16, 1, 1, "dense", "ice40"),
         head(32, 16, 1, 1, "event", "ice40"), "head"),
        ("head 128->10, N 64 (cifar)", "ecp5", head(128, 64, 1, 4, "dense", "ecp5"),
         head(128, 64, 1, 1, "event", "ecp5"), "head"),
    ]


def _fold(b) -> str:
    if isinstance(b, DWConv3x3):
        return f"lanes {b.lanes}"
    return f"PE {b.pe} SIMD {b.simd}"


def measure(dense, event, kind, rate, images, rng):
    if kind == "grid":
        geo = dense.geometry
        s = (rng.random((images, T, dense.word_width, geo.height, geo.width)) < rate)
        s = s.astype(np.int64)
        per_image = [event.cycles_per_image(s[k]) for k in range(images)]
        words = pack_spikes(raster_tokens(s[:1]))
        n = geo.tokens
        fired = run_single(event.model(), {"i": n * T}, {"o": n * geo.groups * T},
                           in_words={"i": words})["o"]
        exact = fired[-1] == event.cycles(1, s[:1])
        return dense.cycles_per_image(), float(np.mean(per_image)), exact
    n = event.tokens
    s = (rng.random((images, n, T, event.in_features)) < rate).astype(np.int64)
    counts = s.sum(-1).reshape(images, -1)
    per_image = [event.cycles_per_image(c) for c in counts]
    words = pack_spikes(s[:1].reshape(n, T, event.in_features))
    fired = run_single(event.model(), {"i": n * T}, {"o": 1}, in_words={"i": words})["o"]
    exact = fired[-1] == event.cycles(1, counts[:1])
    return dense.cycles_per_image(), float(np.mean(per_image)), exact


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--rates", default="0.05,0.11,0.25,0.5")
    args = p.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    start = time.monotonic()
    rows = []
    for name, family, dense, event, kind in cases():
        rd, re = dense.resources(family), event.resources(family)
        for rate in rates:
            rng = np.random.default_rng(int(rate * 1000))
            d, e, exact = measure(dense, event, kind, rate, args.images, rng)
            rows.append(f"| {name} | {family} | {rate:.2f} | {_fold(dense)}: {d:,} | "
                        f"{_fold(event)}: {e:,.0f} | {d / e:.1f}x | "
                        f"{'yes' if exact else 'NO'} | {rd.lut} / {re.lut} | {rd.ff} / {re.ff} |")
    cmd = " ".join([".venv/bin/python", "bench/bench_event.py", *sys.argv[1:]])
    print(f"Command: `{cmd}` ({time.monotonic() - start:.0f} s)\n")
    print("| block | family | spike rate | dense cycles/image | event cycles/image (mean) "
          "| speed-up | closed form = model | LUT dense / event | FF dense / event |")
    print("|" + "---|" * 9)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
