"""Benchmark: a LinearEngine reading its weights through LiteDRAM + SDR PHY from the SDRAM chip
model, measured cycles against the prediction (the engine's model next to the fast memory-port
model fitted to this controller, `sim.sdram_sim.engine_memory_model`).

Run from the repo root:  .venv/bin/python bench/bench_engine_sdram.py
Prints one Markdown row per (images, base address) for BENCHMARKS.md ("SDRAM path").
The shape is the default-tier test's (tests/test_sdram.py): 32 -> 16, pe 4, simd 4, 8-bit
weights, 16-bit beats, 32-beat bursts, 4 tokens x 2 time steps.
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


def run(generated, images: int, base: int) -> dict:
    g = torch.Generator().manual_seed(11)
    out, n_in, tokens, T = 16, 32, 4, 2
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
        print("| images | weights from word | measured cycles | predicted | error | "
              "per-beat error (cycles) | wall |")
        print("|---|---|---|---|---|---|---|")
        for images, base in ((2, 3 * 512 - 100), (2, 3 * 512), (4, 3 * 512 - 100),
                             (8, 3 * 512 - 100)):
            d = run(generated, images, base)
            m, p = d["out_cycles"], d["predicted"]
            diffs = [a - b for a, b in zip(m, p, strict=True)]
            print(f"| {images} | {base:,} | {m[-1]:,} | {p[-1]:,} | "
                  f"{100 * (p[-1] - m[-1]) / m[-1]:+.2f} % | {min(diffs)} .. {max(diffs)} | "
                  f"{d['wall']:.1f} s |")


if __name__ == "__main__":
    main()
