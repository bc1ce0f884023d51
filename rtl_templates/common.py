"""Stream conventions shared by every block, and the resource-estimate type.

Every stream is token-major, time-minor (the T steps of one token travel
together). Two payload kinds join the blocks:

- spike vector: `unsigned(C)`, bit c is channel c, one beat per (token, t);
- values: `ArrayLayout(signed(width), lanes)`, one fold of an integer vector;
  a (token, t) vector of C channels is C // lanes beats, group g carrying
  channels g*lanes .. g*lanes+lanes-1 (lane j = channel g*lanes + j).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, stream


def check_int(name: str, value, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise TypeError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return value


def check_divides(name: str, lanes: int, total: int) -> None:
    if total % lanes:
        raise ValueError(f"{name} ({lanes}) must divide {total}")


def spike_signature(channels: int) -> stream.Signature:
    return stream.Signature(unsigned(channels))


def values_layout(width: int, lanes: int) -> data.ArrayLayout:
    return data.ArrayLayout(signed(width), lanes)


def values_signature(width: int, lanes: int) -> stream.Signature:
    return stream.Signature(values_layout(width, lanes))


def bits_for(count: int) -> int:
    """Unsigned width of a counter that holds 0 .. count - 1 (at least 1)."""
    return max(1, math.ceil(math.log2(max(count, 2))))


@dataclass(frozen=True)
class Resources:
    """A resource estimate for one block. `mem_bits` lists each memory as (depth, width)."""

    lut: int
    ff: int
    dsp: int = 0
    memories: tuple[tuple[int, int], ...] = ()

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.lut + other.lut, self.ff + other.ff, self.dsp + other.dsp,
                         self.memories + other.memories)

    @property
    def mem_bits(self) -> int:
        return sum(d * w for d, w in self.memories)

    def bram(self, family: str) -> int:
        """Block RAMs the memories need on `family` ('ice40': 4 kbit, 'ecp5': 18 kbit)."""
        return sum(bram_count(d, w, family) for d, w in self.memories)


# Aspect ratios (depth, width) of one block RAM, as Yosys maps them.
_BRAM_SHAPES = {
    "ice40": ((256, 16), (512, 8), (1024, 4), (2048, 2)),
    "ecp5": ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1)),
}


def bram_count(depth: int, width: int, family: str) -> int:
    """Fewest block RAMs holding a depth x width memory (best aspect ratio, tiled)."""
    try:
        shapes = _BRAM_SHAPES[family]
    except KeyError:
        raise ValueError(f"family must be one of {', '.join(_BRAM_SHAPES)}, not {family!r}") from None
    return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in shapes)
