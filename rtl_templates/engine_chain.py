"""An engine on the memory port followed by stream blocks (a `SpikeCollector`, SASA, a
max-pool ...): how a weight-streaming engine feeds the on-chip blocks, as one component
whose cycle models join in one network."""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl_templates.timing import Network


class EngineChain(wiring.Component):
    """``engine`` (a `LinearEngine` or `ConvEngine`: ports ``i``, ``o``, ``mem``) with each
    of ``after`` (components with a sink ``i`` and a source ``o``) behind the one before.

    Ports: ``i`` (the engine's), ``o`` (the last block's), ``mem`` (the engine's). The
    weights' memory image and requests are the engine's.
    """

    def __init__(self, engine, *after):
        if not after:
            raise ValueError("need at least one block after the engine")
        self.engine, self.after = engine, after
        self.base_addr, self.positions = engine.base_addr, engine.positions
        super().__init__({"i": In(engine.i.signature.flip()), "o": Out(after[-1].o.signature),
                          "mem": Out(engine.mem.signature)})

    def requests(self) -> list[tuple[int, int]]:
        return self.engine.requests()

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = self.engine
        wiring.connect(m, wiring.flipped(self.i), self.engine.i)
        wiring.connect(m, self.engine.mem, wiring.flipped(self.mem))
        prev = self.engine.o
        for k, block in enumerate(self.after):
            m.submodules[f"after{k}"] = block
            wiring.connect(m, prev, block.i)
            prev = block.o
        wiring.connect(m, prev, wiring.flipped(self.o))
        return m

    def model_network(self, net: Network, inputs: dict) -> dict[str, tuple[str, str]]:
        """The engine's model (or its own network), then each block's, joined in `net`."""
        if hasattr(self.engine, "model_network"):
            at = self.engine.model_network(net, inputs)
        else:
            net.add("dut_engine", self.engine.model())
            at = {p: ("dut_engine", p) for p in ("i", "o", "req", "w", "r")}
        prev = at["o"]
        for k, block in enumerate(self.after):
            net.add(f"dut_after{k}", block.model())
            net.connect(prev, (f"dut_after{k}", "i"))
            prev = (f"dut_after{k}", "o")
        return {**at, "o": prev}
