"""cocotb test for a block with stream ports and one memory port (`MemPortSignature`, the
block the initiator): drive, collect, score, time, with a memory responder serving the
block's read requests from a word array.

Stimulus (JSON) as stream_block's, plus memory {port, words, base, addr_bits, max_burst,
latency, req_stall, data_gap}: the responder accepts a request unless req_stall says so,
offers the first beat of a read accepted in cycle k from cycle k + latency on, the beats in
order, none in a cycle data_gap marks (sim.memory_sim.ResponderModel). It serves reads only:
a write request, or a beat offered on ``w``, fails the test. Result adds the requests seen,
as [addr, beats] pairs.
"""

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly

from sim.streams import (
    Port,
    load_stimulus,
    log_seed,
    pattern_bit,
    run_streams,
    save_result,
)


class MemoryResponder:
    def __init__(self, dut, spec):
        self.req = Port.of(dut, f"{spec['port']}__req")
        self.rdata = Port.of(dut, f"{spec['port']}__r")
        self.w_valid = getattr(dut, f"{spec['port']}__w__valid")
        self.clk = dut.clk
        self.words, self.base = spec["words"], spec["base"]
        self.addr_bits, self.latency = spec["addr_bits"], spec["latency"]
        self.count_bits = (spec["max_burst"] - 1).bit_length()
        self.req_stall, self.data_gap = spec["req_stall"], spec["data_gap"]
        self.queue = []  # [accept cycle, next address, beats left]
        self.requests = []
        self.req.ready.value = 0
        getattr(dut, f"{spec['port']}__w__ready").value = 0
        self.rdata.valid.value = 0

    def word(self, addr):
        k = addr - self.base
        if not 0 <= k < len(self.words):
            raise AssertionError(f"read of word {addr} outside the memory image "
                                 f"[{self.base}, {self.base + len(self.words)})")
        return self.words[k]

    async def run(self):
        cycle = 0
        while True:
            await FallingEdge(self.clk)
            cycle += 1
            self.req.ready.value = int(not pattern_bit(self.req_stall, cycle))
            head = self.queue[0] if self.queue else None
            offer = (head is not None and cycle >= head[0] + self.latency
                     and not pattern_bit(self.data_gap, cycle))
            self.rdata.valid.value = int(offer)
            if offer:
                self.rdata.payload.value = self.word(head[1])
            await ReadOnly()
            if self.w_valid.value:
                raise AssertionError(f"cycle {cycle}: a write beat on w; the responder serves "
                                     f"reads only")
            if offer and self.rdata.ready.value:
                head[1] += 1
                head[2] -= 1
                if head[2] == 0:
                    self.queue.pop(0)
            if self.req.valid.value and self.req.ready.value:
                word = self.req.payload.value.to_unsigned()
                addr = word & ((1 << self.addr_bits) - 1)
                length = ((word >> self.addr_bits) & ((1 << self.count_bits) - 1)) + 1
                if word >> (self.addr_bits + self.count_bits):
                    raise AssertionError(f"request {len(self.requests)} is a write; the "
                                         f"responder serves reads only")
                self.requests.append([addr, length])
                self.queue.append([cycle, addr, length])


@cocotb.test()
async def memory_block(dut):
    stim = load_stimulus()
    log_seed(stim)
    memory = MemoryResponder(dut, stim["memory"])
    result = await run_streams(dut, stim, background=[memory.run()])
    save_result(dict(result, requests=memory.requests))
