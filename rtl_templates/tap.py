"""Stream tap for simulation builds: a running signature of every beat that crosses a stream.

The whole-accelerator check compares one 64-bit signature and a beat count
per layer with the golden model's instead of sampling every cycle from
Python, so the simulation runs free; `signature()` is the software twin.
"""

from __future__ import annotations

import numpy as np
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl_templates.common import check_int

SIG_BITS = 64
COUNT_BITS = 32


def fold64(word: int, width: int) -> int:
    """XOR of the 64-bit chunks of a `width`-bit payload."""
    out = 0
    for lo in range(0, width, SIG_BITS):
        out ^= (word >> lo) & ((1 << SIG_BITS) - 1)
    return out


def signature(words: list[int], width: int, start: int = 0) -> int:
    """Software twin of TapSignature: sig = rotl(sig, 1) ^ fold64(payload) per beat.

    Unrolled, the signature after n beats is rotl(start, n) ^ XOR over k of
    rotl(fold64(word k), n - 1 - k), which numpy evaluates in one pass (a whole
    accelerator run has about a million tapped beats; `signature_stepwise` is the
    per-beat loop it must equal)."""
    n = len(words)
    if n == 0:
        return start
    mask = (1 << SIG_BITS) - 1
    if width <= SIG_BITS:
        folded = np.fromiter(words, dtype=np.uint64, count=n)
    else:
        folded = np.zeros(n, dtype=np.uint64)
        for lo in range(0, width, SIG_BITS):
            folded ^= np.fromiter(((w >> lo) & mask for w in words), dtype=np.uint64, count=n)
    r = (np.arange(n - 1, -1, -1, dtype=np.uint64) % np.uint64(SIG_BITS))
    # rotl by r; for r = 0 both shifts are 0 and the OR gives the word itself
    rotated = (folded << r) | (folded >> ((np.uint64(SIG_BITS) - r) % np.uint64(SIG_BITS)))
    k = n % SIG_BITS
    head = ((start << k) | (start >> (SIG_BITS - k))) & mask if k else start
    return head ^ int(np.bitwise_xor.reduce(rotated))


def signature_stepwise(words: list[int], width: int, start: int = 0) -> int:
    """The signature beat by beat, as the hardware computes it (the reference of the tests)."""
    mask = (1 << SIG_BITS) - 1
    sig = start
    for w in words:
        sig = (((sig << 1) | (sig >> (SIG_BITS - 1))) & mask) ^ fold64(w, width)
    return sig


class TapSignature(wiring.Component):
    """Watches a stream's handshake; keeps the beat count and the running signature, and
    when the stream's beats start and end.

    Parameters: ``width`` payload bits. Ports: ``valid``, ``ready``, ``payload``
    (inputs, wired in parallel to the stream), ``sig`` and ``count`` (outputs);
    ``cycle`` (input: a free-running cycle counter), ``arm`` (input), ``first`` and
    ``last`` (outputs): ``last`` is ``cycle`` at the latest beat, ``first`` at the first
    beat after an ``arm`` pulse (the testbench arms every tap before each image).
    Latency: the outputs include a beat one cycle after its handshake.
    It never drives the stream, so it cannot stall it.
    """

    def __init__(self, width: int):
        self.width = check_int("width", width)
        super().__init__({"valid": In(1), "ready": In(1), "payload": In(width),
                          "sig": Out(SIG_BITS), "count": Out(COUNT_BITS),
                          "cycle": In(COUNT_BITS), "arm": In(1),
                          "first": Out(COUNT_BITS), "last": Out(COUNT_BITS)})

    def elaborate(self, platform):
        m = Module()
        folded = Signal(SIG_BITS)
        acc = 0
        for lo in range(0, self.width, SIG_BITS):
            acc = acc ^ self.payload[lo:min(lo + SIG_BITS, self.width)]
        m.d.comb += folded.eq(acc)
        armed = Signal()
        with m.If(self.arm):
            m.d.sync += armed.eq(1)
        with m.If(self.valid & self.ready):
            m.d.sync += [self.sig.eq(self.sig.rotate_left(1) ^ folded),
                         self.count.eq(self.count + 1), self.last.eq(self.cycle)]
            with m.If(armed):
                m.d.sync += [self.first.eq(self.cycle), armed.eq(0)]
        return m
