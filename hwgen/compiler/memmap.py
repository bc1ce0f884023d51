"""Where Yosys puts each memory: block RAM, LUT RAM or soft logic, and what that costs.

The planner must predict what synthesis will do, so this follows Yosys 0.70's
`memory_libmap` rule: every candidate mapping has a cost and the cheapest wins,
soft logic costing 1 per bit for a RAM and 1/16 per bit for a ROM (read-only,
initialised: weights), a block RAM 64 (iCE40 SB_RAM40_4K) or 128 (ECP5 DP16KD)
per block, an ECP5 LUT RAM (TRELLIS_DPR16X4, RAMs only) 4 per 16x4 slice.
Soft-logic LUT counts are fitted to Yosys runs (tests/test_memmap.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# (depth, width) shapes of one block RAM, as Yosys maps them.
BRAM_SHAPES = {
    "ice40": ((256, 16), (512, 8), (1024, 4), (2048, 2)),
    "ecp5": ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1)),
}
BRAM_COST = {"ice40": 64, "ecp5": 128}
BRAM_BITS = {"ice40": 4096, "ecp5": 18432}


@dataclass(frozen=True)
class MemoryMapping:
    depth: int
    width: int
    rom: bool
    kind: str  # "bram", "lutram" or "logic"
    bram: int = 0
    lut: int = 0
    ff: int = 0
    lutram: int = 0  # ECP5 TRELLIS_DPR16X4 cells

    @property
    def bits(self) -> int:
        return self.depth * self.width


def bram_blocks(depth: int, width: int, family: str) -> int:
    """Fewest block RAMs holding a depth x width memory (best aspect ratio, tiled)."""
    return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in BRAM_SHAPES[family])


def _rom_logic_luts(depth: int, width: int) -> int:
    # A LUT4 holds 16 entries of one bit; deeper ROMs add a mux tree of about as many LUTs.
    per_bit = 1 if depth <= 16 else 2 * math.ceil(depth / 16)
    return width * per_bit


def map_memory(depth: int, width: int, family: str, *, rom: bool = False,
               block: bool = False) -> MemoryMapping:
    """The mapping Yosys chooses for a memory with one synchronous read port (`block`:
    forced into block RAM by a ram_style attribute, or already decided by the block)."""
    if family not in BRAM_SHAPES:
        raise ValueError(f"family must be one of {', '.join(BRAM_SHAPES)}, not {family!r}")
    if block:
        return MemoryMapping(depth, width, rom, "bram", bram=bram_blocks(depth, width, family))
    bits = depth * width
    logic_cost = bits / 16 if rom else bits
    blocks = bram_blocks(depth, width, family)
    options = [(logic_cost, "logic"), (blocks * BRAM_COST[family], "bram")]
    if family == "ecp5" and not rom:
        slices = math.ceil(depth / 16) * math.ceil(width / 4)
        options.append((4 * slices, "lutram"))
    # Ties go to soft logic, as in memory_libmap (a mapping must be strictly cheaper).
    cost, kind = options[0]
    for c, k in options[1:]:
        if c < cost:
            cost, kind = c, k
    if kind == "bram":
        return MemoryMapping(depth, width, rom, "bram", bram=blocks)
    if kind == "lutram":
        slices = math.ceil(depth / 16) * math.ceil(width / 4)
        mux = width * (math.ceil(depth / 16) - 1)
        return MemoryMapping(depth, width, rom, "lutram", lut=mux, ff=width, lutram=slices)
    if rom:
        return MemoryMapping(depth, width, rom, "logic", lut=_rom_logic_luts(depth, width),
                             ff=width)
    # A RAM in flip-flops: every bit a FF, plus write decode and read muxes.
    return MemoryMapping(depth, width, rom, "logic", lut=bits // 2 + width, ff=bits + width)
