"""Benchmark: a LinearEngine reading its weights through LiteDRAM + SDR PHY from the SDRAM chip
model, measured cycles against the prediction (the engine's model next to the fast memory-port
model fitted to this controller, `sim.sdram_sim.engine_memory_model`).

Run from the repo root:  .venv/bin/python bench/bench_engine_sdram.py
Prints one Markdown row per (shape, images, base address) for BENCHMARKS.md ("SDRAM
path"). Every shape has pe 4, simd 4, 8-bit weights, 16-bit beats, 32-beat bursts; the first
is the default-tier test's (tests/test_sdram.py): 32 -> 16, 4 tokens x 2 time steps.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from hwgen.targets.dram.litedram_core import generate  # noqa: E402
from quant.golden import spike_linear  # noqa: E402
from rtl_templates.common import pack_spikes  # noqa: E402
from rtl_templates.linear_engine import LinearEngine, memory_image, pack_engine_values  # noqa: E402
from sim.sdram_sim import simulate_engine_on_sdram  # noqa: E402


def run(generated, images: int, base: int, tokens: int = 4, T: int = 2, out: int = 16,
        n_in: int = 32) -> dict:
    g = torch.Generator().manual_seed(11)
    w = torch.randint(-127, 128, (out, n_in), generator=g)
    b = torch.randint(-3000, 3001, (out,), generator=g)
    e = LinearEngine(w.tolist(), b.tolist(), tokens=tokens, time_steps=T, weight_bits=8,
                     acc_bits=16, pe=4, simd=4, beat_bits=16, max_burst=32, base_addr=base,
                     addr_bits=generated.config.addr_width)
    s = (torch.rand(images, tokens, T, n_in, generator=g) < 0.3).long()
    ins, exp = [], []
    for m in range(images):
        ins += pack_spikes(s[m])
        exp += pack_engine_values(spike_linear(s[m], w, b).tolist(), e.acc_bits, e.pe)
    t = time.monotonic()
    d = simulate_engine_on_sdram(generated, e, memory_image(e), {"i": ins}, {"o": exp}, seed=4)
    d["wall"] = time.monotonic() - t
    assert d["checked"] == 2 * len(exp)
    return d


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        generated = generate(cache_root=tmp)
        print("| shape | images | weights from word | measured cycles | predicted | error | "
              "per-beat error (cycles) | wall |")
        print("|---|---|---|---|---|---|---|---|")
        # (images, base, tokens, T, out, in): the test's shape (balanced), straddling a row
        # or not; 2 tokens (memory-bound); a 64 -> 64 layer over five rows; the last two
        # were not in the fit of stream_timing (held out).
        for images, base, *shape in ((2, 1436, 4, 2, 16, 32), (2, 1536, 4, 2, 16, 32),
                                     (4, 1436, 4, 2, 16, 32), (8, 1436, 4, 2, 16, 32),
                                     (16, 1436, 2, 2, 16, 32), (4, 1000, 2, 2, 64, 64),
                                     (4, 1000, 4, 2, 64, 64), (3, 2000, 2, 4, 32, 64),
                                     (6, 300, 3, 1, 64, 32)):
            d = run(generated, images, base, *shape)
            tokens, T, out, n_in = shape
            m, p = d["out_cycles"], d["predicted"]
            diffs = [a - b for a, b in zip(m, p, strict=True)]
            print(f"| {n_in} -> {out}, {tokens} x {T} | {images} | {base:,} | {m[-1]:,} | {p[-1]:,} | "
                  f"{100 * (p[-1] - m[-1]) / m[-1]:+.2f} % | {min(diffs)} .. {max(diffs)} | "
                  f"{d['wall']:.1f} s |")


if __name__ == "__main__":
    main()
