"""Resource estimates of every block against Yosys, and each block's Fmax alone (issue 3).

For each block kind at two sizes taken from the reference configs' plans (digits-tiny on
the iCEBreaker, cifar-mid on the ULX3S-85F: `hwgen plan`), with seeded random weights, on
iCE40 UP5K and ECP5-85F: the block's `resources(family)` after memory mapping (as the
planner maps it, `hwgen.compiler.memmap.map_memory`) against Yosys' cell counts (`synth_stats`), and
nextpnr's Fmax of the block in the `FmaxHarness` (`block_fmax`). A block whose estimate
does not fit the UP5K is skipped on iCE40 with a note. Synthesis and place-and-route
results are cached by hwgen.targets.synth (build/synth-cache), so a second run takes seconds.

Run from the repo root:
    .venv/bin/python bench/bench_blocks.py [--quick] [--no-fmax] [--jobs 2]
        [--family ice40|ecp5] [--kind KIND ...]
Prints one Markdown table per family and a summary line (mean / max absolute LUT error).
About 10 minutes cold on two busy cores (36 blocks x 2 families: two Yosys runs and one
nextpnr run each), under a minute once cached; `--quick` is the digits-tiny half.
`tests/test_estimates.py` checks the same cases against bounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amaranth.hdl import unsigned
from amaranth.lib import wiring

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hwgen.compiler.builder import weight_style  # noqa: E402
from hwgen.compiler.memmap import map_memory  # noqa: E402
from hwgen.compiler.target import logic_cells  # noqa: E402
from rtl_templates.common import values_layout  # noqa: E402
from rtl_templates.dwconv import DWConv3x3  # noqa: E402
from rtl_templates.gated_sum import signed_width  # noqa: E402
from rtl_templates.head import Head  # noqa: E402
from rtl_templates.lif_array import LIFArray  # noqa: E402
from rtl_templates.maxpool import SpikeMaxPool2x2  # noqa: E402
from rtl_templates.pixel_conv import PixelConv3x3  # noqa: E402
from rtl_templates.plumbing import Fork, StreamFIFO  # noqa: E402
from rtl_templates.residual_add import ResidualAdd  # noqa: E402
from rtl_templates.sasa import SASA  # noqa: E402
from rtl_templates.spike_conv import SpikeConv3x3  # noqa: E402
from rtl_templates.spike_linear import SpikeLinear  # noqa: E402
from rtl_templates.spram_fifo import SPRAMFIFO  # noqa: E402
from rtl_templates.uart import UartRx, UartTx  # noqa: E402

FAMILIES = ("ice40", "ecp5")
SIZES = ("digits-tiny", "cifar-mid")
SEED = 0
T = 4  # time steps of both reference configs
WEIGHT_BITS = 8
# iCE40 UP5K capacity (toolchain.md): a block whose estimate exceeds it is not built there.
UP5K = {"lc": 5280, "bram": 30, "dsp": 8, "spram": 4}
# Estimates build blocks that are never elaborated; Amaranth would warn about each.
warnings.filterwarnings("ignore", message=".* created but never used")


@dataclass(frozen=True)
class Case:
    """One block at one size: `build(family)` returns a fresh component (a window block's
    weight style is what the planner would choose on that family; SPRAM exists on iCE40
    only)."""

    kind: str
    size: str  # one of SIZES
    shape: str  # the parameters, for the table
    build: Callable[[str], wiring.Component]

    @property
    def name(self) -> str:
        return f"{self.kind} / {self.size}"


# --------------------------------------------------------------------------- seeded blocks

def _rng() -> np.random.Generator:
    return np.random.default_rng(SEED)


def _weights(rng, *shape) -> np.ndarray:
    return rng.integers(-(1 << (WEIGHT_BITS - 1)) + 1, 1 << (WEIGHT_BITS - 1), size=shape)


def _acc_bits(weight: np.ndarray, bias: np.ndarray, scale: int) -> int:
    """Signed width of bias + scale * (any subset sum of a row): what the compiler derives."""
    flat = weight.reshape(weight.shape[0], -1)
    lo = (bias + scale * np.minimum(flat, 0).sum(1)).min()
    hi = (bias + scale * np.maximum(flat, 0).sum(1)).max()
    return signed_width(int(lo), int(hi))


def lif(channels: int, lanes: int, in_width: int, state_bits: int, storage: str):
    def build(family):
        vth = _rng().integers(1, 1 << (state_bits - 2), size=channels).tolist()
        return LIFArray(channels=channels, lanes=lanes, time_steps=T, in_width=in_width,
                        vth=vth, state_bits=state_bits, storage=storage,
                        pipelined=family == "ecp5")  # as the planner builds them
    return build


def spike_linear(n_in: int, n_out: int, pe: int, simd: int, mode: str = "dense"):
    def build(family):
        rng = _rng()
        w, b = _weights(rng, n_out, n_in), rng.integers(-256, 257, size=n_out)
        return SpikeLinear(w.tolist(), b.tolist(), time_steps=T, weight_bits=WEIGHT_BITS,
                           acc_bits=_acc_bits(w, b, 1), pe=pe, simd=simd, mode=mode,
                           pipelined=family == "ecp5")  # as the planner builds them
    return build


def head(dim: int, tokens: int, pe: int, simd: int, classes: int = 10, mode: str = "dense"):
    def build(family):
        rng = _rng()
        w, b = _weights(rng, classes, dim), rng.integers(-20_000, 20_001, size=classes)
        return Head(w.tolist(), b.tolist(), time_steps=T, tokens=tokens,
                    weight_bits=WEIGHT_BITS, acc_bits=_acc_bits(w, b, T * tokens), pe=pe,
                    simd=simd, pipelined=family == "ecp5", mode=mode)  # as the planner builds
    return build


def sasa(dim: int, heads: int, tokens: int, mode: str):
    # The model's attention neuron (V_th 0.5): threshold 1 on the count shifted left by one.
    def build(family):
        count = dim // heads if mode == "channel" else tokens
        neurons = heads if mode == "channel" else dim
        return SASA(dim=dim, heads=heads, time_steps=T, tokens=tokens, mode=mode,
                    agg_vth=[1] * neurons, agg_input_shift=1,
                    agg_state_bits=(count << 1).bit_length() + 1)
    return build


def window(kind: str, *, cin: int, cout: int, grid: int, pe: int = 1, simd: int = 1,
           mode: str = "dense"):
    """A window block on a grid x grid image: spike conv, depthwise conv (cin = cout
    channels, pe = lanes) or pixel conv (8-bit pixels)."""
    def build(family):
        rng = _rng()
        pipelined = family == "ecp5"  # as the planner builds them (hwgen.compiler.builder)
        if kind == "dwconv":
            w, b = _weights(rng, cout, 3, 3), rng.integers(-300, 301, size=cout)
            style = weight_style((cout // pe) * 9, pe * WEIGHT_BITS, family)
            return DWConv3x3(w.tolist(), b.tolist(), height=grid, width=grid, time_steps=T,
                             acc_bits=_acc_bits(w, b, 1), weight_bits=WEIGHT_BITS, lanes=pe,
                             weight_style=style, pipelined=pipelined, mode=mode)
        w, b = _weights(rng, cout, cin, 3, 3), rng.integers(-300, 301, size=cout)
        style = weight_style((cout // pe) * 9 * (cin // simd), pe * simd * WEIGHT_BITS, family)
        if kind == "pixel_conv":
            return PixelConv3x3(w.tolist(), b.tolist(), height=grid, width=grid, pixel_bits=8,
                                weight_bits=WEIGHT_BITS, acc_bits=_acc_bits(w, b, 255), pe=pe,
                                simd=simd, weight_style=style, pipelined=pipelined)
        return SpikeConv3x3(w.tolist(), b.tolist(), height=grid, width=grid, time_steps=T,
                            weight_bits=WEIGHT_BITS, acc_bits=_acc_bits(w, b, 1), pe=pe,
                            simd=simd, weight_style=style, pipelined=pipelined, mode=mode)
    return build


def _fixed(make):
    return lambda family: make()


def _external_body(config: str, *, pe: int, simd: int):
    """The external-weight body engine (every block on one `EngineSequence`, its memory
    port leaving it) of a seeded random model of `config`."""
    from hwgen.compiler.engine_body import BodySpec, ExternalBody
    from quant.config import get_config
    from quant.random_model import random_int_model

    return ExternalBody(random_int_model(get_config(config), seed=1),
                        BodySpec(pe=pe, simd=simd, addr_bits=24))


def _conv_engine(cin: int, cout: int, grid: int, *, pe: int, simd: int):
    """A `ConvEngine` (a spike conv with its weights on the memory port, the external
    style's stem.1 and RPE) of seeded weights."""
    from rtl_templates.conv_engine import ConvEngine

    def build(family):
        rng = np.random.default_rng(cin * 1000 + cout)
        w, b = _weights(rng, cout, cin, 3, 3), rng.integers(-300, 301, size=cout)
        return ConvEngine(w.tolist(), b.tolist(), height=grid, width=grid, time_steps=T,
                          weight_bits=WEIGHT_BITS, acc_bits=_acc_bits(w, b, 1), pe=pe,
                          simd=simd, addr_bits=24)
    return build


def _collector(channels: int, lanes: int, tokens: int, in_width: int, state_bits: int):
    from rtl_templates.spike_collector import SpikeCollector

    vth = [(1 << (state_bits - 2)) + k for k in range(channels)]
    return _fixed(lambda: SpikeCollector(channels=channels, lanes=lanes, tokens=tokens,
                                         time_steps=T, in_width=in_width, vth=vth,
                                         input_shift=1, state_bits=state_bits))


def _spram_fifo(width: int, depth: int):
    # SPRAM exists on the iCE40 UP5K only; elsewhere the same FIFO sits in a plain memory.
    return lambda family: SPRAMFIFO(unsigned(width), depth, spram=family == "ice40")


# Sizes from `hwgen plan --board icebreaker` (digits-tiny, bundled model) and `hwgen plan
# --board ulx3s-85f --config cifar-mid` (residual stream: digits 13-bit x 1 lane, cifar
# 17-bit x 2 lanes).
CASES = (
    Case("lif_array", "digits-tiny", "32 ch, lanes 1, in 13, state 11",
         lif(32, 1, 13, 11, "registers")),
    Case("lif_array", "cifar-mid", "128 ch, lanes 2, in 17, state 15",
         lif(128, 2, 17, 15, "registers")),
    Case("lif_array block", "digits-tiny", "32 ch, lanes 1, in 13, state 11",
         lif(32, 1, 13, 11, "block")),
    Case("lif_array block", "cifar-mid", "128 ch, lanes 2, in 17, state 15",
         lif(128, 2, 17, 15, "block")),
    Case("residual_add", "digits-tiny", "13+11+11 -> 13, lanes 1",
         _fixed(lambda: ResidualAdd((13, 11, 11), 13, 1))),
    Case("residual_add", "cifar-mid", "17+14+11 -> 17, lanes 2",
         _fixed(lambda: ResidualAdd((17, 14, 11), 17, 2))),
    Case("residual_add skid", "cifar-mid", "17+14+11 -> 17, lanes 2, skid",
         _fixed(lambda: ResidualAdd((17, 14, 11), 17, 2, skid=True))),
    Case("stream_fifo", "digits-tiny", "256 x 13",
         _fixed(lambda: StreamFIFO(values_layout(13, 1), 256))),
    Case("stream_fifo", "cifar-mid", "2560 x 34",
         _fixed(lambda: StreamFIFO(values_layout(17, 2), 2560))),
    Case("stream_fifo reg", "cifar-mid", "2560 x 34, out_reg",
         _fixed(lambda: StreamFIFO(values_layout(17, 2), 2560, out_reg=True))),
    Case("stream_fifo banked", "cifar-mid", "2560 x 34, out_reg, banks of 512",
         _fixed(lambda: StreamFIFO(values_layout(17, 2), 2560, out_reg=True, bank_depth=512))),
    Case("stream_fifo logic", "digits-tiny", "16 x 13",
         _fixed(lambda: StreamFIFO(values_layout(13, 1), 16, "logic"))),
    Case("stream_fifo logic", "cifar-mid", "8 x 32",
         _fixed(lambda: StreamFIFO(unsigned(32), 8, "logic"))),
    Case("fork", "digits-tiny", "2 x 13 bits",
         _fixed(lambda: Fork(values_layout(13, 1), 2))),
    Case("fork", "cifar-mid", "2 x 34 bits",
         _fixed(lambda: Fork(values_layout(17, 2), 2))),
    Case("spram_fifo", "digits-tiny", "768 x 13", _spram_fifo(13, 768)),
    Case("spram_fifo", "cifar-mid", "2560 x 34", _spram_fifo(34, 2560)),
    Case("spike_linear", "digits-tiny", "32 -> 64, PE 1, SIMD 1", spike_linear(32, 64, 1, 1)),
    Case("spike_linear", "cifar-mid", "128 -> 256, PE 1, SIMD 64",
         spike_linear(128, 256, 1, 64)),
    Case("spike_linear event", "digits-tiny", "32 -> 32, PE 1",
         spike_linear(32, 32, 1, 1, "event")),
    Case("spike_linear event", "cifar-mid", "128 -> 128, PE 2",
         spike_linear(128, 128, 2, 1, "event")),
    Case("head", "digits-tiny", "32 -> 10, N 16, PE 1, SIMD 1", head(32, 16, 1, 1)),
    Case("head", "cifar-mid", "128 -> 10, N 64, PE 1, SIMD 4", head(128, 64, 1, 4)),
    Case("head event", "digits-tiny", "32 -> 10, N 16, PE 1", head(32, 16, 1, 1, mode="event")),
    Case("head event", "cifar-mid", "128 -> 10, N 64, PE 2", head(128, 64, 2, 1, mode="event")),
    Case("sasa channel", "digits-tiny", "D 32, 2 heads, N 16", sasa(32, 2, 16, "channel")),
    Case("sasa channel", "cifar-mid", "D 128, 4 heads, N 64", sasa(128, 4, 64, "channel")),
    Case("sasa token", "digits-tiny", "D 32, N 16", sasa(32, 2, 16, "token")),
    Case("sasa token", "cifar-mid", "D 128, N 64", sasa(128, 4, 64, "token")),
    Case("maxpool", "digits-tiny", "8 ch, 8x8",
         _fixed(lambda: SpikeMaxPool2x2(channels=8, height=8, width=8, time_steps=T))),
    Case("maxpool", "cifar-mid", "16 ch, 32x32",
         _fixed(lambda: SpikeMaxPool2x2(channels=16, height=32, width=32, time_steps=T))),
    Case("spike_conv", "digits-tiny", "8 -> 32, 4x4, PE 1, SIMD 1",
         window("spike_conv", cin=8, cout=32, grid=4)),
    Case("spike_conv", "cifar-mid", "32 -> 128, 8x8, PE 2, SIMD 32",
         window("spike_conv", cin=32, cout=128, grid=8, pe=2, simd=32)),
    Case("dwconv", "digits-tiny", "32 ch, 4x4, lanes 1",
         window("dwconv", cin=32, cout=32, grid=4)),
    Case("dwconv", "cifar-mid", "128 ch, 8x8, lanes 2",
         window("dwconv", cin=128, cout=128, grid=8, pe=2)),
    Case("spike_conv event", "digits-tiny", "8 -> 32, 4x4, PE 1, SIMD 1",
         window("spike_conv", cin=8, cout=32, grid=4, mode="event")),
    Case("dwconv event", "digits-tiny", "32 ch, 4x4, lanes 4",
         window("dwconv", cin=32, cout=32, grid=4, pe=4, mode="event")),
    Case("dwconv event", "cifar-mid", "128 ch, 8x8, lanes 8",
         window("dwconv", cin=128, cout=128, grid=8, pe=8, mode="event")),
    Case("pixel_conv", "digits-tiny", "1 -> 8, 8x8, PE 1, SIMD 1",
         window("pixel_conv", cin=1, cout=8, grid=8)),
    Case("pixel_conv", "cifar-mid", "3 -> 16, 32x32, PE 2, SIMD 3",
         window("pixel_conv", cin=3, cout=16, grid=32, pe=2, simd=3)),
    Case("uart_tx", "digits-tiny", "divisor 104 (12 MHz, 115200 Bd)",
         _fixed(lambda: UartTx(104))),
    Case("uart_tx", "cifar-mid", "divisor 217 (25 MHz, 115200 Bd)",
         _fixed(lambda: UartTx(217))),
    Case("uart_rx", "digits-tiny", "divisor 104 (12 MHz, 115200 Bd)",
         _fixed(lambda: UartRx(104))),
    Case("uart_rx", "cifar-mid", "divisor 217 (25 MHz, 115200 Bd)",
         _fixed(lambda: UartRx(217))),
    Case("external body", "digits-tiny", "1 block, D 32, pe 8, simd 8, port out",
         _fixed(lambda: _external_body("digits-tiny", pe=8, simd=8))),
    Case("external body", "cifar-mid", "2 blocks, D 128, pe 32, simd 8, port out",
         _fixed(lambda: _external_body("cifar-mid", pe=32, simd=8))),
    # The head LIF of the generated external-weight digits-tiny, at the body's 16 lanes.
    Case("lif_array wide", "digits-tiny", "32 ch, lanes 16, in 13, state 11",
         lif(32, 16, 13, 11, "registers")),
    Case("lif_array wide", "cifar-mid", "128 ch, lanes 32, in 17, state 15",
         lif(128, 32, 17, 15, "registers")),
    # The hidden-layer LIFs (fc1_lif, qk_lif) at one lane: 256 channels, 256 groups.
    Case("lif_array narrow", "digits-tiny", "64 ch, lanes 1, in 13, state 11",
         lif(64, 1, 13, 11, "registers")),
    Case("lif_array narrow", "cifar-mid", "256 ch, lanes 1, in 17, state 15",
         lif(256, 1, 17, 15, "registers")),
    Case("conv engine", "digits-tiny", "4 -> 8, 4x4, pe 4, simd 4",
         _conv_engine(4, 8, 4, pe=4, simd=4)),
    Case("conv engine", "cifar-mid", "32 -> 128, 8x8, pe 32, simd 4",
         _conv_engine(32, 128, 8, pe=32, simd=4)),
    Case("spike collector", "digits-tiny", "16 ch, lanes 8, N 4, in 13, state 11",
         _collector(16, 8, 4, 13, 11)),
    Case("spike collector", "cifar-mid", "128 ch, lanes 32, N 64, in 17, state 15",
         _collector(128, 32, 64, 17, 15)),
)
KINDS = tuple(dict.fromkeys(c.kind for c in CASES))


# --------------------------------------------------------------------------- measuring

@dataclass(frozen=True)
class Estimate:
    """`resources(family)` with its memories mapped as the planner maps them."""

    lut: int
    ff: int
    bram: int
    dsp: int
    spram: int
    lutram: int


def estimate(block, family: str) -> Estimate:
    res = block.resources(family)
    mems = [map_memory(d, w, family, block=kind == "block")
            for (d, w), kind in zip(res.memories, res.kinds, strict=True)]
    return Estimate(lut=res.lut + sum(m.lut for m in mems), ff=res.ff + sum(m.ff for m in mems),
                    bram=sum(m.bram for m in mems), dsp=res.dsp, spram=res.spram,
                    lutram=sum(m.lutram for m in mems))


def ice40_misfit(est: Estimate) -> str | None:
    """Why a block (by its estimate) would not fit the UP5K alone, or None."""
    cells = logic_cells(est.lut, est.ff)
    over = [f"{name} {need} > {UP5K[name]}" for name, need in
            (("lc", cells), ("bram", est.bram), ("dsp", est.dsp), ("spram", est.spram))
            if need > UP5K[name]]
    return f"does not fit the UP5K ({', '.join(over)})" if over else None


@dataclass(frozen=True)
class Row:
    case: int  # index into CASES
    family: str
    est: Estimate
    syn: object | None = None  # hwgen.targets.synth.SynthStats
    fmax_mhz: float | None = None
    note: str = ""
    seconds: float = 0.0

    def err(self, what: str) -> float | None:
        """Estimate error in percent of Yosys' figure (None if skipped or Yosys' is 0)."""
        if self.syn is None:
            return None
        got, est = getattr(self.syn, what), getattr(self.est, what)
        return None if got == 0 else 100.0 * (est - got) / got


def measure(index: int, family: str, fmax: bool = True) -> Row:
    """Estimate, Yosys figures and (with `fmax`) nextpnr's Fmax of CASES[index] on `family`."""
    from hwgen.targets.synth import ToolFailed, block_fmax, synth_stats

    start = time.monotonic()
    case = CASES[index]
    est = estimate(case.build(family), family)
    if family == "ice40" and (why := ice40_misfit(est)):
        return Row(index, family, est, note=why)
    syn = synth_stats(case.build(family), family)
    note, mhz = "", None
    if fmax:
        try:
            mhz = block_fmax(case.build(family), family).fmax_mhz
        except ToolFailed as e:
            note = f"nextpnr failed: {e}"
    return Row(index, family, est, syn, mhz, note, time.monotonic() - start)


def fmt_err(value: float | None) -> str:
    return "-" if value is None else f"{value:+.0f} %"


def table(rows: list[Row]) -> str:
    head = ("| block | size | est LUT | syn LUT | err | est FF | syn FF | err | BRAM est/syn "
            "| DSP est/syn | Fmax MHz | notes |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        case = CASES[r.case]
        size = f"{case.size}: {case.shape}"
        if r.syn is None:
            lines.append(f"| {case.kind} | {size} | {r.est.lut} | - | - | {r.est.ff} | - | - "
                         f"| {r.est.bram}/- | {r.est.dsp}/- | - | skipped: {r.note} |")
            continue
        notes = []
        if r.est.spram or r.syn.spram:
            notes.append(f"SPRAM {r.est.spram}/{r.syn.spram}")
        if r.est.lutram or r.syn.lutram:
            notes.append(f"LUT RAM {r.est.lutram}/{r.syn.lutram}")
        if r.syn.unmapped:
            notes.append(f"unmapped {', '.join(r.syn.unmapped)}")
        if r.note:
            notes.append(r.note)
        fmax = "-" if r.fmax_mhz is None else f"{r.fmax_mhz:.1f}"
        lines.append(
            f"| {case.kind} | {size} | {r.est.lut} | {r.syn.lut} | {fmt_err(r.err('lut'))} "
            f"| {r.est.ff} | {r.syn.ff} | {fmt_err(r.err('ff'))} | {r.est.bram}/{r.syn.bram} "
            f"| {r.est.dsp}/{r.syn.dsp} | {fmax} | {'; '.join(notes)} |")
    return "\n".join(lines)


def summary(rows: list[Row], family: str) -> str:
    lut = [abs(e) for r in rows if (e := r.err("lut")) is not None]
    ff = [abs(e) for r in rows if (e := r.err("ff")) is not None]
    mism = [CASES[r.case].name for r in rows if r.syn is not None
            and (r.est.bram != r.syn.bram or r.est.dsp != r.syn.dsp)]
    skipped = sum(r.syn is None for r in rows)
    if not lut:
        return f"{family}: nothing synthesised ({skipped} skipped)"
    return (f"{family}: {len(lut)} blocks, |LUT error| mean {statistics.mean(lut):.1f} %, "
            f"max {max(lut):.1f} %; |FF error| mean {statistics.mean(ff):.1f} %, max "
            f"{max(ff):.1f} %; BRAM/DSP mismatches: {', '.join(mism) or 'none'}; "
            f"{skipped} skipped")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="digits-tiny sizes only (the small half of the cases)")
    p.add_argument("--no-fmax", action="store_true", help="skip place and route")
    p.add_argument("--family", choices=FAMILIES, action="append",
                   help="only this family (repeatable; default both)")
    p.add_argument("--kind", choices=KINDS, action="append",
                   help="only this block kind (repeatable; default all)")
    p.add_argument("--jobs", type=int, default=2, help="parallel tool runs (default 2)")
    args = p.parse_args(argv)
    families = args.family or list(FAMILIES)
    sizes = SIZES[:1] if args.quick else SIZES
    fmax = not args.no_fmax
    picked = [i for i, c in enumerate(CASES)
              if c.size in sizes and (not args.kind or c.kind in args.kind)]
    # Biggest first, so that the long syntheses do not trail at the end.
    tasks = sorted(((i, fam) for fam in families for i in picked),
                   key=lambda task: -estimate(CASES[task[0]].build(task[1]), task[1]).lut)

    start = time.monotonic()
    results: dict[tuple[int, str], Row] = {}
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(measure, i, fam, fmax): (i, fam) for i, fam in tasks}
        for n, fut in enumerate(as_completed(futures), 1):
            row = fut.result()
            results[futures[fut]] = row
            print(f"[{n}/{len(tasks)} {time.monotonic() - start:5.0f} s] {row.family} "
                  f"{CASES[row.case].name}: {row.seconds:.0f} s", file=sys.stderr)

    cmd = " ".join([".venv/bin/python", "bench/bench_blocks.py", *sys.argv[1:]])
    print(f"Command: `{cmd}` ({time.monotonic() - start:.0f} s)\n")
    for fam in families:
        rows = [results[(i, fam)] for i in picked]
        device = "iCE40 UP5K" if fam == "ice40" else "ECP5 LFE5U-85F"
        print(f"### {device} ({fam})\n")
        print(table(rows))
        print(f"\n{summary(rows, fam)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
