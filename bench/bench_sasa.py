"""Benchmark of the SASA unit (channel mode): LUT4 per ANDed bit pair against a bare AND +
popcount of the same shape, and Fmax of the block alone on ECP5-85F and iCE40 UP5K.

Run from the repo root:  .venv/bin/python bench/bench_sasa.py [--dims 32 128] [--no-fmax]
Prints a Markdown table for BENCHMARKS.md (section "sasa") and the command used. Synthesis
and place-and-route results are cached by hwgen.targets.synth (build/synth-cache).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from amaranth import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hwgen.targets.synth import block_fmax, synth_stats  # noqa: E402
from rtl_templates.sasa import SASA  # noqa: E402

TOOLCHAIN_LUT_PER_PAIR = 2.7  # toolchain.md: bare AND + popcount, Yosys 0.70
HEADS = {32: 2, 128: 4, 384: 12}  # digits-tiny, cifar-mid, cifar-paper
# name -> (agg_vth per head, agg_input_shift)
NEURONS = {
    "popcount": (2, 0),  # a real count and a membrane: the general case
    "model": (1, 1),     # the model's attention neuron (V_th 0.5): fires iff count >= 1
}


class BarePopcount(wiring.Component):
    """The reference: per head, popcount of Q AND K, combinational (Yosys builds one
    compressor tree per head), no LIF, gate or registers."""

    def __init__(self, dim: int, heads: int):
        self.dim, self.heads = dim, heads
        self.count_bits = (dim // heads).bit_length()
        super().__init__({"q": In(dim), "k": In(dim), "o": Out(self.count_bits * heads)})

    def elaborate(self, platform):
        m = Module()
        hd = self.dim // self.heads
        counts = []
        for h in range(self.heads):
            c = Signal(self.count_bits, name=f"count{h}")
            m.d.comb += c.eq(sum(self.q[i] & self.k[i] for i in range(h * hd, (h + 1) * hd)))
            counts.append(c)
        m.d.comb += self.o.eq(Cat(*counts))
        return m


def sasa(dim: int, neuron: str) -> SASA:
    heads = HEADS.get(dim, 1)
    vth, shift = NEURONS[neuron]
    return SASA(dim=dim, heads=heads, time_steps=4, tokens=64, mode="channel",
                agg_vth=[vth] * heads, agg_input_shift=shift,
                agg_state_bits=((dim // heads << shift) + vth).bit_length() + 1)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dims", type=int, nargs="+", default=[32, 128])
    p.add_argument("--families", nargs="+", default=["ecp5", "ice40"])
    p.add_argument("--no-fmax", action="store_true", help="synthesis only, no place and route")
    args = p.parse_args()
    start = time.perf_counter()
    rows = []
    for dim in args.dims:
        heads = HEADS.get(dim, 1)
        for family in args.families:
            bare = synth_stats(BarePopcount(dim, heads), family).lut
            whole = synth_stats(BarePopcount(dim, 1), family).lut
            bare_fmax = None if args.no_fmax else block_fmax(BarePopcount(dim, heads), family)
            rows.append((f"bare AND+popcount ({heads} heads)", dim, heads, "-", family, bare,
                         bare / dim, 1.0, None, bare_fmax and bare_fmax.fmax_mhz, None))
            rows.append(("bare AND+popcount (1 head)", dim, 1, "-", family, whole,
                         whole / dim, whole / bare, None, None, None))
            for neuron in NEURONS:
                block = sasa(dim, neuron)
                st = synth_stats(block, family)
                fmax = None if args.no_fmax else block_fmax(block, family).fmax_mhz
                rows.append((f"SASA channel, {neuron} neuron", dim, heads, block.latency, family,
                             st.lut, st.lut / dim, st.lut / bare, st.ff, fmax,
                             block.resources(family).lut))
            print(f"  dim {dim} {family} done ({time.perf_counter() - start:.0f} s)",
                  file=sys.stderr, flush=True)

    print("| unit | D | heads | latency | family | LUT4 | LUT4/pair | vs bare (same heads) "
          f"| vs {TOOLCHAIN_LUT_PER_PAIR} | FF | Fmax MHz | estimate LUT4 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, dim, heads, lat, family, lut, per, rel, ff, fmax, est in rows:
        fmax_s = "-" if fmax is None else f"{fmax:.1f}"
        print(f"| {name} | {dim} | {heads} | {lat} | {family} | {lut} | {per:.2f} | {rel:.2f}x "
              f"| {per / TOOLCHAIN_LUT_PER_PAIR:.2f}x | {ff if ff is not None else '-'} "
              f"| {fmax_s} | {est if est is not None else '-'} |")
    print(f"\nCommand: .venv/bin/python bench/bench_sasa.py {' '.join(sys.argv[1:])}".rstrip())
    print("Yosys 0.70 (synth_ecp5 -nowidelut / synth_ice40 -dsp), nextpnr 0.11 "
          "(LFE5U-85F CABGA381 / iCE40 UP5K sg48), Fmax of the block alone in hwgen.targets.synth's "
          f"register harness; {time.perf_counter() - start:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
