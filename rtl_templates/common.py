"""Stream conventions shared by every block, their software twins, and the resource-estimate type.

Streams are token-major, time-minor (docs/hardware.md): a spike stream carries
one `unsigned(C)` beat per (token, t); a values stream carries
`ArrayLayout(signed(width), lanes)` beats, for each token group-major then
time (`for g: for t:`), lane j of group g being channel g*lanes + j.
`pack_spikes`/`pack_values` produce exactly those beat words from integer
arrays, so the testbenches and the compiler's taps compare like with like.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
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


def check_choice(name: str, value, choices: Sequence) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, not {value!r}")


def check_ints(name: str, values, count: int, bits: int | None = None) -> list[int]:
    """A flat list of `count` Python ints (each fitting signed `bits` when given)."""
    flat = [int(v) for v in np.asarray(values, dtype=object).reshape(-1)]
    if len(flat) != count:
        raise ValueError(f"{name} must have {count} entries, not {len(flat)}")
    if bits is not None:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        bad = [v for v in flat if not lo <= v <= hi]
        if bad:
            raise ValueError(f"{name} must fit signed {bits} bits, not {bad[0]!r}")
    return flat


def bits_for(count: int) -> int:
    """Unsigned width of a counter that holds 0 .. count - 1 (at least 1)."""
    return max(1, math.ceil(math.log2(max(count, 2))))


@dataclass(frozen=True)
class Resources:
    """A resource estimate for one block: LUT4s, flip-flops, DSPs and its memories.

    `memories` lists each memory as (depth, width); `memory_kinds` says, for each, what
    synthesis will do with it: "block" (block RAM: forced by a ram_style attribute, or a
    weight ROM the block's own estimate found large enough) or "ram" (a RAM Yosys maps by
    cost: block RAM, LUT RAM or flip-flops). Missing kinds mean "ram".
    """

    lut: int
    ff: int
    dsp: int = 0
    memories: tuple[tuple[int, int], ...] = ()
    memory_kinds: tuple[str, ...] = ()
    spram: int = 0  # iCE40 UP5K SB_SPRAM256KA primitives

    def __post_init__(self) -> None:
        if len(self.memory_kinds) > len(self.memories):
            raise ValueError("memory_kinds must not outnumber memories")
        bad = [k for k in self.memory_kinds if k not in MEMORY_KINDS]
        if bad:
            raise ValueError(f"memory kind must be one of {MEMORY_KINDS}, not {bad[0]!r}")

    @property
    def kinds(self) -> tuple[str, ...]:
        """One kind per memory ("ram" where none was given)."""
        return self.memory_kinds + ("ram",) * (len(self.memories) - len(self.memory_kinds))

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.lut + other.lut, self.ff + other.ff, self.dsp + other.dsp,
                         self.memories + other.memories, self.kinds + other.kinds,
                         self.spram + other.spram)

    @property
    def mem_bits(self) -> int:
        return sum(d * w for d, w in self.memories)

    def bram(self, family: str) -> int:
        """Block RAMs the memories need on `family` ('ice40': 4 kbit, 'ecp5': 18 kbit)."""
        return sum(bram_count(d, w, family) for d, w in self.memories)


MEMORY_KINDS = ("block", "ram")


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


def tree_sum(values: list):
    """Balanced adder tree (Python's sum would chain the adders)."""
    while len(values) > 1:
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


# --------------------------------------------------------------------------- software twins

def pack_spikes(spikes) -> list[int]:
    """Beat words of a spike stream. `spikes`: array [tokens, T, C] of 0/1 -> tokens*T words."""
    s = np.asarray(spikes, dtype=np.uint8)
    if s.ndim != 3:
        raise ValueError(f"spikes must be [tokens, T, C], not shape {s.shape}")
    flat = s.reshape(-1, s.shape[2])
    packed = np.packbits(flat, axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def unpack_spikes(words: Sequence[int], time_steps: int, channels: int) -> np.ndarray:
    """Inverse of pack_spikes: words -> array [tokens, T, C]."""
    bits = [[(w >> c) & 1 for c in range(channels)] for w in words]
    return np.asarray(bits, dtype=np.int64).reshape(-1, time_steps, channels)


def pack_values(values, width: int, lanes: int) -> list[int]:
    """Beat words of a values stream. `values`: int array [tokens, steps, C];
    per token, groups of `lanes` channels in order, each group's steps in order."""
    v = np.asarray(values)
    if v.ndim != 3:
        raise ValueError(f"values must be [tokens, steps, C], not shape {v.shape}")
    n, steps, c = v.shape
    check_divides("lanes", lanes, c)
    mask = (1 << width) - 1
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    if (lanes * width <= 64 and v.size and v.dtype.kind in "iu"
            and lo <= v.min() and v.max() <= hi):
        # The loop below, vectorised (a whole accelerator run packs ~a million values):
        # lanes of one word side by side, words in the order [token, group, step].
        x = v.astype(np.int64).reshape(n, steps, c // lanes, lanes).transpose(0, 2, 1, 3)
        x = (x & mask).astype(np.uint64)
        word = np.zeros(x.shape[:3], dtype=np.uint64)
        for j in range(lanes):
            word |= x[..., j] << np.uint64(j * width)
        return word.reshape(-1).tolist()
    # Anything else (wide words, object or float arrays, a value out of range) word by word,
    # which says where a value does not fit.
    v = np.asarray(values, dtype=object)
    words = []
    for tok in range(n):
        for g in range(c // lanes):
            for t in range(steps):
                word = 0
                for j in range(lanes):
                    x = int(v[tok, t, g * lanes + j])
                    if not lo <= x <= hi:
                        raise ValueError(f"value {x} (token {tok}, t {t}, channel "
                                         f"{g * lanes + j}) does not fit signed {width} bits")
                    word |= (x & mask) << (j * width)
                words.append(word)
    return words


def unpack_values(words: Sequence[int], width: int, lanes: int, steps: int,
                  channels: int) -> np.ndarray:
    """Inverse of pack_values: words -> int array [tokens, steps, C]."""
    groups = channels // lanes
    per_token = groups * steps
    if len(words) % per_token:
        raise ValueError(f"{len(words)} words is not a whole number of tokens of {per_token}")
    out = np.zeros((len(words) // per_token, steps, channels), dtype=np.int64)
    mask, sign = (1 << width) - 1, 1 << (width - 1)
    for k, w in enumerate(words):
        tok, rest = divmod(k, per_token)
        g, t = divmod(rest, steps)
        for j in range(lanes):
            x = (w >> (j * width)) & mask
            out[tok, t, g * lanes + j] = x - (1 << width) if x & sign else x
    return out
