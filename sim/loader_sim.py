"""Testbench tops for the weight loader: `LoadThenRun` puts a `WeightLoader`, an engine and a
memory behind one memory port; the loader fills the memory, then the engine gets the port.
`BoardOnMemory` puts the external-weight board core (classifier and loader on one UART) on a
memory, for the board system test.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from rtl_templates.weight_loader import REPLY_BYTES


def _expose_sdram(top, memory, members: dict) -> None:
    """With an `SDRAMController` as `memory`: ``top.pins``, ``top.generated`` (for
    `sdram_sim.sdram_sim_verilog`) and the members ``init_done`` and the SDRAM pins."""
    top.pins = dict(getattr(memory, "pins", {}))
    if top.pins:
        top.generated = memory.generated
        members["init_done"] = Out(1)
        members.update({p: Out(w) for p, w in top.pins.items()})


def _drive_sdram(m: Module, top) -> None:
    if top.pins:
        m.d.comb += [getattr(top, p).eq(getattr(top.memory, p)) for p in top.pins]
        m.d.comb += top.init_done.eq(top.memory.init_done)


class LoadThenRun(wiring.Component):
    """`loader` (a `WeightLoader`) and `engine` (a memory-port initiator, e.g. a LinearEngine)
    sharing `memory` (the memory side of a `MemPortSignature`, e.g. a `MemPortRAM`, or
    ``port`` of a component holding it, given as `memory_port`). The loader has the port
    until its ``frames``-th reply has left ``load_o``; from the next cycle on the engine has
    it (its requests wait until then).

    Ports: ``load_i``, ``load_o`` (the loader's byte streams), ``loaded`` (out), the
    engine's ``i`` and ``o``; with an `SDRAMController` as `memory` also its ``init_done``
    and SDRAM pins (and ``generated``, so `sdram_sim.sdram_sim_verilog` can wrap this top
    with the LiteDRAM instance at ``memory.core``)."""

    def __init__(self, loader, engine, memory, *, frames: int, memory_port=None):
        self.loader, self.engine, self.memory = loader, engine, memory
        self.memory_port = memory if memory_port is None else memory_port
        self.frames = frames
        if loader.mem.signature != engine.mem.signature:
            raise ValueError(f"the loader's port {loader.mem.signature!r} must be the "
                             f"engine's {engine.mem.signature!r}")
        members = {
            "load_i": loader.signature.members["i"], "load_o": loader.signature.members["o"],
            "loaded": Out(1),
            "i": engine.signature.members["i"], "o": engine.signature.members["o"],
        }
        _expose_sdram(self, memory, members)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        ld, e = self.loader, self.engine
        m.submodules.loader, m.submodules.engine = ld, e
        m.submodules.memory = self.memory
        c = self.memory_port
        replies = Signal(range(self.frames * REPLY_BYTES + 1))
        with m.If(ld.o.valid & ld.o.ready & ~self.loaded):
            m.d.sync += replies.eq(replies + 1)
        sel = self.loaded
        m.d.comb += sel.eq(replies == self.frames * REPLY_BYTES)
        h = ld.mem
        m.d.comb += [
            c.req.payload.as_value().eq(Mux(sel, e.mem.req.payload.as_value(),
                                            h.req.payload.as_value())),
            c.req.valid.eq(Mux(sel, e.mem.req.valid, h.req.valid)),
            c.w.payload.eq(Mux(sel, e.mem.w.payload, h.w.payload)),
            c.w.valid.eq(Mux(sel, e.mem.w.valid, h.w.valid)),
            c.r.ready.eq(Mux(sel, e.mem.r.ready, h.r.ready)),
            e.mem.req.ready.eq(sel & c.req.ready), h.req.ready.eq(~sel & c.req.ready),
            e.mem.w.ready.eq(sel & c.w.ready), h.w.ready.eq(~sel & c.w.ready),
            e.mem.r.valid.eq(sel & c.r.valid), h.r.valid.eq(~sel & c.r.valid),
            e.mem.r.payload.eq(c.r.payload), h.r.payload.eq(c.r.payload),
        ]
        wiring.connect(m, wiring.flipped(self.load_i), ld.i)
        wiring.connect(m, ld.o, wiring.flipped(self.load_o))
        wiring.connect(m, wiring.flipped(self.i), e.i)
        wiring.connect(m, e.o, wiring.flipped(self.o))
        _drive_sdram(m, self)
        return m


class BoardOnMemory(wiring.Component):
    """The external-weight board core (`hwgen.targets.board_top.BoardCore` with a ``mem``
    port) on `memory` (a `MemPortRAM`, or an `SDRAMController`: then its ``port`` is the
    one served, ``generated`` and its SDRAM pins are exposed, as for `LoadThenRun`).

    Ports: the core's ``rx``, ``tx``, ``leds``, ``button``, ``busy``, ``loading``; with an
    SDRAM controller also ``init_done`` and the SDRAM pins."""

    def __init__(self, core, memory):
        self.core, self.memory = core, memory
        members = {k: core.signature.members[k]
                   for k in ("rx", "tx", "leds", "button", "busy", "loading")}
        _expose_sdram(self, memory, members)
        self.memory_port = memory.port if self.pins else memory
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.core, m.submodules.memory = self.core, self.memory
        wiring.connect(m, self.core.mem, self.memory_port)
        m.d.comb += [self.core.rx.eq(self.rx), self.core.button.eq(self.button),
                     self.tx.eq(self.core.tx), self.leds.eq(self.core.leds),
                     self.busy.eq(self.core.busy), self.loading.eq(self.core.loading)]
        _drive_sdram(m, self)
        return m
