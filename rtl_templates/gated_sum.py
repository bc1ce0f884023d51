"""The multiplier-free datapath shared by SpikeLinear and Head: a weight memory whose rows hold
``pe`` lanes of ``simd`` weights, and a pipelined adder tree summing the weights whose spike is 1.

Also the parameter checks and the estimate pieces the two blocks have in common.
"""

from __future__ import annotations

import math

import numpy as np
from amaranth import Module, Mux, Signal, Value
from amaranth.hdl import signed

from rtl_templates.common import Resources, bram_count, check_int, check_ints

# Adder levels between two registers of the tree. The AND gating and three levels of
# weight_bits-wide adds (simd <= 8) fit one stage; simd = 16 gets a second stage.
LEVELS_PER_STAGE = 3
# With the memory read registered first (``registered``, for ECP5 timing): two levels.
REGISTERED_LEVELS = 2


def ceil_log2(n: int) -> int:
    return max(0, math.ceil(math.log2(n))) if n > 1 else 0


def signed_width(lo: int, hi: int) -> int:
    """Smallest two's-complement width holding every integer in [lo, hi]."""
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def check_matrix(weight, bias, weight_bits: int) -> tuple[list[list[int]], list[int]]:
    """`weight` [out][in] as a list of int rows fitting signed `weight_bits`, `bias` [out] ints."""
    arr = np.asarray(weight, dtype=object)
    if arr.ndim != 2 or 0 in arr.shape:
        raise ValueError(f"weight must be a non-empty [out][in] matrix, not shape {arr.shape!r}")
    rows, cols = arr.shape
    flat = check_ints("weight", arr, rows * cols, weight_bits)
    matrix = [flat[r * cols:(r + 1) * cols] for r in range(rows)]
    return matrix, check_ints("bias", bias, rows)


def check_acc_bits(acc_bits, weight: list[list[int]], bias: list[int], max_count: int) -> int:
    """`acc_bits` must hold bias + max_count * (any subset sum of a row): every partial sum
    the accumulator passes through lies in the final range, so it never wraps."""
    check_int("acc_bits", acc_bits, 2)
    lo = min(b + max_count * sum(min(w, 0) for w in row) for row, b in zip(weight, bias, strict=True))
    hi = max(b + max_count * sum(max(w, 0) for w in row) for row, b in zip(weight, bias, strict=True))
    need = signed_width(lo, hi)
    if acc_bits < need:
        raise ValueError(f"acc_bits must be >= {need} (outputs span [{lo}, {hi}]), not {acc_bits!r}")
    return acc_bits


def weight_rows(weight: list[list[int]], pe: int, simd: int, weight_bits: int) -> list[int]:
    """Memory contents: row ``g * (in/simd) + k`` holds, for lane ``j`` and ``s < simd``,
    ``weight[g*pe + j][k*simd + s]`` (two's complement) in bits ``[(j*simd + s)*wb, +wb)``."""
    mask = (1 << weight_bits) - 1
    n_out, n_in = len(weight), len(weight[0])
    rows = []
    for g in range(n_out // pe):
        for k in range(n_in // simd):
            word = 0
            for j in range(pe):
                for s in range(simd):
                    word |= (weight[g * pe + j][k * simd + s] & mask) << ((j * simd + s) * weight_bits)
            rows.append(word)
    return rows


class FoldedLinear:
    """The folding arithmetic shared by the blocks built on `gated_sum` over a weight matrix
    ([out][in], `weight_rows` layout): the subclass sets ``out_features``, ``in_features``,
    ``pe``, ``simd``, ``weight_bits`` and defines ``stages`` (pipeline stages after issue)."""

    out_features: int
    in_features: int
    pe: int
    simd: int
    weight_bits: int
    stages: int
    bias: list[int]
    acc_bits: int

    @property
    def groups(self) -> int:
        """Output groups (``out/pe``)."""
        return self.out_features // self.pe

    @property
    def chunks(self) -> int:
        """Memory rows per group (``in/simd``; dense: operations per output beat)."""
        return self.in_features // self.simd

    @property
    def latency(self) -> int:
        """Cycles from an output beat's last operation to the beat: the stages, then the
        accumulation into the output register."""
        return self.stages + 1

    def memory_shape(self) -> tuple[int, int]:
        """(depth, width) of the weight memory."""
        return self.groups * self.chunks, self.pe * self.simd * self.weight_bits

    def accumulate_output(self, m: Module, sums: list[Value], tags: dict[str, Value],
                          advance: Signal) -> None:
        """The final stage: the output register ``o.payload`` doubles as the accumulator.
        An operation leaving the tree (tags ``valid``, ``first``, ``last``, ``g``: its output
        group) adds its lane sums to the group's bias (``first``) or to the register; the
        beat is offered after its ``last`` operation. Drives `advance` (the pipeline moves
        unless that operation waits behind an unaccepted beat); needs ``bias``,
        ``acc_bits`` and the source ``o`` of the subclass."""
        pe = self.pe
        bias = [Signal(signed(self.acc_bits), name=f"bias{j}") for j in range(pe)]
        with m.Switch(tags["g"]):
            for g in range(self.groups):
                with m.Case(g):
                    m.d.comb += [bias[j].eq(self.bias[g * pe + j]) for j in range(pe)]
        m.d.comb += advance.eq(~(tags["valid"] & self.o.valid & ~self.o.ready))
        with m.If(advance & tags["valid"]):
            m.d.sync += self.o.valid.eq(tags["last"])
            for j in range(pe):
                acc = Mux(tags["first"], bias[j], self.o.payload[j])
                m.d.sync += self.o.payload[j].eq(acc + sums[j])
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)


def tree_stages(simd: int, registered: bool = False) -> int:
    """Register stages of the gated adder tree (at least one: it follows the memory read),
    not counting the read register of a ``registered`` tree."""
    per = REGISTERED_LEVELS if registered else LEVELS_PER_STAGE
    return max(1, math.ceil(ceil_log2(simd) / per))


def gated_sum(m: Module, *, words: Value, gates: Value, pe: int, simd: int, weight_bits: int,
              advance: Value, tags: dict[str, Value],
              registered: bool = False) -> tuple[list[Signal], dict[str, Signal]]:
    """Per lane ``j``: sum over ``s`` of ``gates[s] ? w[j][s] : 0``, through
    `tree_stages(simd, registered)` register stages that move when `advance` is high;
    ``registered`` first registers `words`, `gates` and `tags` (one more stage: no block
    RAM output drives logic) and registers the tree every `REGISTERED_LEVELS` levels.

    `words` is the memory's read data (layout of `weight_rows`), `gates` and `tags` the
    values that belong with it in the same cycle; the tags come out delayed alongside the
    sums. Returns (registered lane sums, delayed tags).
    """
    if registered:
        def reg(value, name):
            r = Signal(len(value), name=name)
            with m.If(advance):
                m.d.sync += r.eq(value)
            return r
        words, gates = reg(words, "words_r"), reg(gates, "gates_r")
        tags = {name: reg(value, f"{name}_r") for name, value in tags.items()}
    per = REGISTERED_LEVELS if registered else LEVELS_PER_STAGE
    lanes = []
    for j in range(pe):
        terms = []
        for s in range(simd):
            lo = (j * simd + s) * weight_bits
            terms.append(Mux(gates[s], words[lo:lo + weight_bits].as_signed(), 0))
        lanes.append(terms)
    width = weight_bits
    remaining = ceil_log2(simd)
    for stage in range(tree_stages(simd, registered)):
        for _ in range(min(per, remaining)):
            lanes = [[t[i] + t[i + 1] if i + 1 < len(t) else t[i] for i in range(0, len(t), 2)]
                     for t in lanes]
            width += 1
            remaining -= 1
        regs = []
        for j, t in enumerate(lanes):
            row = []
            for i, term in enumerate(t):
                reg = Signal(signed(width), name=f"sum{stage}_{j}_{i}")
                with m.If(advance):
                    m.d.sync += reg.eq(term)
                row.append(reg)
            regs.append(row)
        new_tags = {}
        for name, value in tags.items():
            reg = Signal(len(value), name=f"{name}_t{stage}")
            with m.If(advance):
                m.d.sync += reg.eq(value)
            new_tags[name] = reg
        lanes, tags = regs, new_tags
    return [t[0] for t in lanes], tags


# --------------------------------------------------------------------------- estimates

def mux_luts(inputs: int) -> int:
    """LUT4s of an ``inputs``:1 multiplexer of one bit (a LUT4 takes a 2:1 mux plus a bit of
    select decoding; Yosys/ABC packs about 3 data inputs per LUT4 in wide muxes)."""
    return 0 if inputs <= 1 else math.ceil((inputs - 1) * 2 / 3)


def rom_luts(entries: int) -> int:
    """LUT4s of one output bit of a constant table with `entries` rows (a boolean function of
    ceil(log2 entries) inputs: one LUT4 per 16 rows, then a mux of the leaves)."""
    leaves = math.ceil(entries / 16)
    return leaves + mux_luts(leaves) if entries > 1 else 0


def tree_luts(pe: int, simd: int, weight_bits: int) -> int:
    """LUT4s of the gated adder trees: the AND gates (one LUT per weight bit) and the adders
    (one LUT per sum bit, the carry on the carry chain), times 1.25: Yosys 0.70 spends about
    a quarter more on both families (measured for simd 1..16)."""
    adders, width, n = 0, weight_bits, simd
    while n > 1:
        adders += (n // 2) * (width + 1)
        n = n - n // 2
        width += 1
    return math.ceil(1.25 * pe * (simd * weight_bits + adders))


# Yosys' memory_libmap costs: a block RAM is 64 (iCE40 SB_RAM40_4K) or 128 (ECP5 DP16KD),
# a read-only memory in soft logic 1/16 per bit; the cheaper wins.
_BRAM_COST = {"ice40": 64, "ecp5": 128}


def rom_resources(depth: int, width: int, family: str) -> Resources:
    """What the weight ROM costs where Yosys puts it: block RAM when ``depth*width/16`` is at
    least the block RAMs' cost, else soft logic (each distinct output column a function of
    the address, registered: at most ``min(width, 2**depth)`` distinct columns)."""
    brams = bram_count(depth, width, family)
    if depth * width / 16 >= _BRAM_COST[family] * brams:
        return Resources(lut=0, ff=0, memories=((depth, width),), memory_kinds=("block",))
    columns = min(width, 2 ** depth)
    return Resources(lut=columns * max(1, rom_luts(depth)), ff=columns)


def tree_ffs(pe: int, simd: int, weight_bits: int, registered: bool = False) -> int:
    """Flip-flops of the tree's stage registers (lane sums, and a ``registered`` tree's read
    register of words and gates; tags are counted by the block)."""
    ff, width, remaining, terms = 0, weight_bits, ceil_log2(simd), simd
    per = REGISTERED_LEVELS if registered else LEVELS_PER_STAGE
    if registered:
        ff += pe * simd * weight_bits + simd
    for _ in range(tree_stages(simd, registered)):
        for _ in range(min(per, remaining)):
            terms = math.ceil(terms / 2)
            width += 1
            remaining -= 1
        ff += pe * width * terms
    return ff
