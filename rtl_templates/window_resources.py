"""Resource estimate of the 3x3 window blocks (LUT4, flip-flops, memories), per structure:
the LineBuffer's scheduler, the accumulators and bias table, the memories' read muxes, and
each block's own datapath (passed in by the block).

LUT4 counts modelled per structure and calibrated against Yosys 0.70 (synth_ice40 -dsp,
synth_ecp5 -nowidelut) on 17 window blocks (pixel conv 1->8 .. 3->16 on 8x8 .. 32x32,
spike conv 4->6 .. 32->128, DWC 32 .. 128, pe 1..32, simd 1..8, T 1..4): total LUTs
within -12 .. +22 %, flip-flops exact but for ROM-style weights (+9 %), block RAMs
exact or up to two high on ECP5 (Yosys mixes aspect ratios there), DSP blocks exact.
"""

from __future__ import annotations

import math

from rtl_templates.common import _BRAM_SHAPES, Resources
from rtl_templates.window import TAPS, WindowGeometry
from rtl_templates.window_block import TREE_LEVELS, WindowBlock

FAMILIES = ("ice40", "ecp5")
_CONTROL_LUT = {"ice40": (45, 2.2), "ecp5": (40, 2.9)}  # constant + per control register bit
_ACC_LUT = 2.0  # per accumulator bit: the bias/accumulator mux and the adder
_LANE_LUT = 1.3  # per gated weight bit and adder bit of a lane's datapath


def check_family(family) -> str:
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, not {family!r}")
    return family


def _nbits(n: int) -> int:
    """Width of Signal(range(n))."""
    return (n - 1).bit_length()


def function_luts(inputs: int) -> int:
    """LUT4s of an arbitrary function (a ROM bit) of `inputs` inputs: 1, then two
    halves and a 2:1 mux per extra input."""
    return 1 if inputs <= 4 else (1 << (inputs - 3)) - 1


def rom_bit_luts(rows: int) -> int:
    """LUT4s of one output bit of a weight ROM in soft logic: a LUT4 per 16 rows, then a
    2:1 multiplexer per further leaf. Only the rows that exist cost: a 72-row ROM takes 9,
    not the 15 of an arbitrary 7-input function (fitted to Yosys 0.70 on 8 ROM-style
    window blocks with random weights, 9 .. 144 rows: total LUTs within -14 .. +17 %)."""
    leaves = math.ceil(rows / 16)
    return 2 * leaves - 1


def memory_logic(depth: int, width: int, family: str) -> tuple[int, int]:
    """(LUTs, FFs) around a block-RAM memory: the read-data mux across RAMs stacked in
    depth (the aspect ratio that needs the fewest RAMs) and its registered select."""
    shapes = _BRAM_SHAPES[family]
    d = min(shapes, key=lambda s: math.ceil(depth / s[0]) * math.ceil(width / s[1]))[0]
    stacked = math.ceil(depth / d)
    return width * (stacked - 1), _nbits(stacked)


def control_bits(geo: WindowGeometry, rows: int) -> int:
    """Bits of the scheduler's registers that carry arithmetic (slots, lead, weight row,
    grid position, group / step / slice counters)."""
    return (_nbits(geo.slots) + _nbits(geo.slots + 1) + _nbits(rows) + _nbits(geo.height)
            + _nbits(geo.width) + _nbits(geo.groups) + _nbits(geo.time_steps)
            + _nbits(geo.slices))


def control_ff(geo: WindowGeometry, rows: int) -> int:
    """Flip-flops of the LineBuffer, exactly as elaborated: write and centre slots, lead,
    input step, grid position, g/t/k/s counters, busy, weight row, stage-B controls."""
    P, T, G, S = geo.slots, geo.time_steps, geo.groups, geo.slices
    return (2 * _nbits(P) + _nbits(P + 1) + 2 * _nbits(T) + 2 * _nbits(G) + _nbits(TAPS)
            + 2 * _nbits(S) + _nbits(geo.height) + _nbits(geo.width) + _nbits(rows) + 6)


def pipeline_ff(block: WindowBlock) -> int:
    """Flip-flops a pipelined block adds (WindowBlock, ``pipelined``), as elaborated: the
    LineBuffer's valid/first/last of every further stage, the registered reads with their
    tap flag, slice and group, the registered terms, the tree's registers with their group
    tags, the final stage's bias (constant when there is one group), and the LineBuffer's
    registered window bounds (`behind`, `ahead`)."""
    if not block.pipelined:
        return 0
    geo, lanes = block.geometry, block.lanes
    row_bits = lanes * block.elems * block.weight_bits
    g = _nbits(geo.groups)
    ff = 3 * (geo.stages - 1) + block.word_width + row_bits + 1 + _nbits(geo.slices) + g
    ff += 2 * _nbits(geo.width + 2)
    terms, width = block.elems, block.term_width
    ff += lanes * terms * width
    for _ in range(block.tree_stages):
        for _ in range(TREE_LEVELS):
            if terms > 1:
                terms, width = math.ceil(terms / 2), width + 1
        ff += lanes * terms * width + g
    return ff + (lanes * block.acc_bits if geo.groups > 1 else 0)


def event_resources(block: WindowBlock) -> tuple[int, int]:
    """(LUTs, FFs) an event-mode block adds (event_window.EventLineBuffer): the flag
    registers (``units`` per memory row) and their write decode, the flag multiplexers, the pending register, the priority encoder over ``9 * per_tap`` bits
    (as `SpikeLinear`'s), stage A and its row adders."""
    if block.mode != "event":
        return 0, 0
    geo = block.geometry
    units = block.word_width // block.unit_width
    per_tap = 1 if block.by_group else 1 << (geo.slices - 1).bit_length()
    n = TAPS * per_tap
    # Multiplexers: step t of every slot's flags (shared by the taps; for the DWC, then
    # group g's bit), then each tap's slot: measured about 0.8 LUT4 per multiplexer input
    # (Yosys 0.70, iCE40, 64-row flag files).
    P, T = geo.slots, geo.time_steps
    picked = 1 if block.by_group else units
    inputs = P * units * T * (T > 1) + (P * units if block.by_group else 0) + TAPS * P * picked
    sel = math.ceil(0.8 * inputs)
    enc = n * 3 + _nbits(n) * n // 6 + n * 5 // 6
    stage_a = 4 + _nbits(TAPS) + _nbits(geo.slices) + _nbits(geo.groups) + _nbits(geo.time_steps)
    stage_a += _nbits(geo.slots) + _nbits(geo.groups * TAPS * geo.slices) + 1
    lut = sel + enc + geo.depth * units // 4 + 2 * _nbits(geo.groups * TAPS * geo.slices) + 12
    ff = geo.depth * units + n + 1 + stage_a + _nbits(geo.groups * TAPS * geo.slices)
    # ... less LineBuffer's tap and slice counters and weight-row register (control_ff)
    ff -= _nbits(TAPS) + _nbits(geo.groups * TAPS * geo.slices) + _nbits(geo.slices)
    return lut, ff


def window_resources(block: WindowBlock, family: str, *, lane_lut: int, select_lut: int,
                     dsp: int = 0) -> Resources:
    """Estimate of a window block: scheduler, accumulators with their bias table, the
    block's per-lane datapath (`lane_lut` gated weight and adder bits per lane) and word
    selection (`select_lut`), the memories' read muxes; weights in block RAM, or, with
    ``weight_style="logic"``, as a ROM in LUTs (`rom_bit_luts` per bit) with its output
    register; a pipelined block's registers (`pipeline_ff`); event mode's scheduler
    (`event_resources`)."""
    check_family(family)
    geo = block.geometry
    rows, row_bits = len(block.weight_rows), block.lanes * block.elems * block.weight_bits
    base, per_bit = _CONTROL_LUT[family]
    acc = block.lanes * block.acc_bits
    bias = acc * function_luts(_nbits(geo.groups)) if geo.groups > 1 else 0
    lut = base + per_bit * control_bits(geo, rows) + _ACC_LUT * acc + bias + select_lut
    lut += _LANE_LUT * block.lanes * lane_lut
    ff = control_ff(geo, rows) + acc + pipeline_ff(block)
    ev_lut, ev_ff = event_resources(block)
    lut, ff = lut + ev_lut, ff + ev_ff
    lines_lut, lines_ff = memory_logic(geo.depth, block.word_width, family)
    memories = [(geo.depth, block.word_width)]
    if block.weight_style == "block":
        w_lut, w_ff = memory_logic(rows, row_bits, family)
        memories.append((rows, row_bits))
    else:
        w_lut, w_ff = row_bits * rom_bit_luts(rows), row_bits
    return Resources(lut=round(lut + lines_lut + w_lut), ff=ff + lines_ff + w_ff, dsp=dsp,
                     memories=tuple(memories), memory_kinds=("block",) * len(memories))

