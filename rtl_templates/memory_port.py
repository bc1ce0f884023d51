"""The memory port an external-weight engine reads its weights through, and a cycle model of
the memory behind it (fixed latency, explicit stall and gap patterns).

This is the minimal interface the compute side consumes; the memory path (the SDRAM
controller and its fast on-chip model) provides it. A request ``{addr, length}`` asks for
``length`` (>= 1) consecutive ``beat_bits``-wide words from word address ``addr``; the beats
come back on ``rdata`` in request order, with valid/ready on both streams.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl_templates.common import bits_for, check_int
from rtl_templates.timing import BlockModel, pattern_bit


def request_layout(addr_bits: int, length_bits: int) -> data.StructLayout:
    """A read request: word address (low bits) and beat count (high bits)."""
    return data.StructLayout({"addr": unsigned(addr_bits), "length": unsigned(length_bits)})


def memory_port_signature(*, addr_bits: int, max_burst: int, beat_bits: int) -> wiring.Signature:
    """The initiator's side of the port: ``req`` out, ``rdata`` in (flip it for the memory)."""
    check_int("addr_bits", addr_bits)
    check_int("max_burst", max_burst)
    check_int("beat_bits", beat_bits)
    length_bits = bits_for(max_burst + 1)
    return wiring.Signature({
        "req": Out(stream.Signature(request_layout(addr_bits, length_bits))),
        "rdata": In(stream.Signature(unsigned(beat_bits))),
    })


def pack_request(addr: int, length: int, addr_bits: int) -> int:
    """The ``req`` payload word of a request (the layout's bit order)."""
    return addr | (length << addr_bits)


def unpack_request(word: int, addr_bits: int) -> tuple[int, int]:
    return word & ((1 << addr_bits) - 1), word >> addr_bits


class MemoryPortModel(BlockModel):
    """Cycle model of a memory behind the port, as the testbench's responder behaves.

    It accepts a request in cycle k unless ``req_stall`` says so; the first beat of a
    request accepted in cycle k may be offered from cycle ``k + latency`` on (``latency``
    >= 1), its beats follow in order, one per cycle at most, and no beat is offered in a
    cycle ``data_gap`` marks. ``lengths`` are the beat counts of the requests in order,
    repeated cyclically (an engine repeats its layer's requests for every image).
    """

    inputs = ("req",)
    outputs = ("rdata",)

    def __init__(self, lengths: Sequence[int], *, latency: int,
                 req_stall: Sequence[int] | None = None, data_gap: Sequence[int] | None = None):
        self.lengths = [check_int("length", n) for n in lengths]
        self.latency = check_int("latency", latency)
        self.req_stall, self.data_gap = list(req_stall or []), list(data_gap or [])
        self.queue: list[list[int]] = []  # [accept cycle, beats left]
        self.accepted = 0

    def ready(self, port):
        return not pattern_bit(self.req_stall, self.cycle)

    def valid(self, port):
        return (bool(self.queue) and self.cycle >= self.queue[0][0] + self.latency
                and not pattern_bit(self.data_gap, self.cycle))

    def tick(self, fired):
        if fired["rdata"]:
            self.queue[0][1] -= 1
            if self.queue[0][1] == 0:
                self.queue.pop(0)
        if fired["req"]:
            self.queue.append([self.cycle, self.lengths[self.accepted % len(self.lengths)]])
            self.accepted += 1
