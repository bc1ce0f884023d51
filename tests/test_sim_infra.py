"""The cocotb harness itself: a stream FIFO passes data under gaps and backpressure, and a
wrong expectation is reported as a mismatch (so block tests can fail)."""

import random

import pytest
from amaranth import Module
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from sim.block_sim import simulate_block
from sim.runner import SimulationFailed, simulator_missing_reason


class StreamFIFO(wiring.Component):
    def __init__(self, width: int, depth: int):
        self.width, self.depth = width, depth
        super().__init__({"i": In(stream.Signature(width)), "o": Out(stream.Signature(width))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.q = q = fifo.SyncFIFOBuffered(width=self.width, depth=self.depth)
        m.d.comb += [q.w_data.eq(self.i.payload), q.w_en.eq(self.i.valid), self.i.ready.eq(q.w_rdy),
                     self.o.payload.eq(q.r_data), self.o.valid.eq(q.r_rdy), q.r_en.eq(self.o.ready)]
        return m


def _sim(simulator):
    reason = simulator_missing_reason(simulator)
    if reason:
        pytest.skip(reason)
    return simulator


@pytest.mark.sim
@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_fifo_under_gaps_and_backpressure(simulator):
    _sim(simulator)
    rng = random.Random(1)
    data = [rng.randrange(1 << 12) for _ in range(300)]
    res = simulate_block(StreamFIFO(12, 4), {"i": data}, {"o": data}, simulator=simulator,
                         seed=7, gap=0.4, backpressure=0.4, tag="fifo")
    assert res.data["outputs"]["o"] == data


@pytest.mark.sim
def test_mismatch_is_reported():
    _sim("verilator")
    data = list(range(20))
    wrong = data[:5] + [99] + data[6:]
    with pytest.raises(SimulationFailed, match="mismatch at beat 5"):
        simulate_block(StreamFIFO(8, 4), {"i": data}, {"o": wrong}, tag="fifo")
