"""SpikeCollector behind a LinearEngine: a random block's q = q_lif(q(attn_lif(U))) from
weights on the memory port, token-major spike words out, bit-exact against the golden
model's q_lif tap under gaps and backpressure on every stream and the memory port; the
engine's and the collector's cycle models joined, beat by beat."""

import pytest
import torch
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from quant.config import get_config
from quant.golden import run
from quant.random_model import random_int_model
from rtl_templates.common import pack_spikes
from rtl_templates.linear_engine import LinearEngine, memory_image
from rtl_templates.spike_collector import SpikeCollector
from sim.memory_sim import verify_memory_block


class EngineToSpikes(wiring.Component):
    """A LinearEngine whose tile-major values go through a SpikeCollector (a test top)."""

    def __init__(self, engine: LinearEngine, collector: SpikeCollector):
        self.engine, self.collector = engine, collector
        self.base_addr, self.positions = engine.base_addr, engine.positions
        super().__init__({"i": In(engine.i.signature.flip()), "o": Out(collector.o.signature),
                          "mem": Out(engine.mem.signature)})

    def requests(self):
        return self.engine.requests()

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine, m.submodules.collector = self.engine, self.collector
        wiring.connect(m, wiring.flipped(self.i), self.engine.i)
        wiring.connect(m, self.engine.o, self.collector.i)
        wiring.connect(m, self.collector.o, wiring.flipped(self.o))
        wiring.connect(m, self.engine.mem, wiring.flipped(self.mem))
        return m

    def model_network(self, net, inputs):
        net.add("dut_engine", self.engine.model())
        net.add("dut_collector", self.collector.model())
        net.connect(("dut_engine", "o"), ("dut_collector", "i"))
        return {"i": ("dut_engine", "i"), "o": ("dut_collector", "o"),
                **{p: ("dut_engine", p) for p in ("req", "w", "r")}}


def _tokens(x, b):
    """[T, B, C, H, W] tap -> [tokens][T][C] of image b."""
    return x[:, b].reshape(x.shape[0], x.shape[2], -1).permute(2, 0, 1)


@pytest.mark.sim
@pytest.mark.parametrize("mode", ["dense", "event"])
def test_q_path_from_the_memory_port(verilator, mode):
    cfg = get_config("digits-tiny").replace(dim=16, heads=2, mlp_ratio=2)
    model = random_int_model(cfg, seed=7)
    px = torch.randint(0, 256, (2, 1, 8, 8), generator=torch.Generator().manual_seed(7))
    taps = run(model, px, check_widths=True)
    blk, T = model.blocks[0], cfg.time_steps
    knobs = dict(pe=4, simd=4) if mode == "dense" else dict(pe=4, simd=1, mode="event")
    eng = LinearEngine(blk.q.weight.tolist(), blk.q.bias.tolist(), tokens=cfg.tokens,
                       time_steps=T, weight_bits=8, acc_bits=blk.q.acc_bits, beat_bits=16,
                       max_burst=8, base_addr=3, addr_bits=10, **knobs)
    col = SpikeCollector(channels=cfg.dim, lanes=eng.pe, tokens=cfg.tokens, time_steps=T,
                         in_width=blk.q.acc_bits, vth=blk.q_lif.vth.tolist(),
                         input_shift=blk.q_lif.input_shift, state_bits=blk.q_lif.state_bits)
    top = EngineToSpikes(eng, col)
    ins, exp = [], []
    for b in range(2):
        ins += pack_spikes(_tokens(taps["blocks.0.attn_lif"], b))
        exp += pack_spikes(_tokens(taps["blocks.0.q_lif"], b))
    assert sum(bin(w).count("1") for w in exp) > 10  # spikes to get right (7.6 % set)
    for kw in ({}, dict(seed=2, gap=0.3, backpressure=0.6, mem_stall=0.3, mem_gap=0.3)):
        verify_memory_block(top, {"i": ins}, {"o": exp}, words=memory_image(eng), latency=4,
                            simulator=verilator, tag=f"collector-{mode}", **kw)
