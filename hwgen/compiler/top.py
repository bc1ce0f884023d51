"""Elaborate an accelerator graph into one Amaranth component.

`Accelerator` has a pixel stream in (`i`) and a result stream out (`o`). A
simulation build (`taps=True`) also watches every tapped stream with a
`TapSignature` and exports, per tap k, `t{k}_sig`/`t{k}_count` (signature and
beat count), `t{k}_first`/`t{k}_last` (the `cycle` of its first beat since the
`tap_arm` input was last pulsed, and of its latest beat) and `t{k}_fire`/`t{k}_payload`
(for replaying one image beat by beat), plus a free-running `cycle` counter.
"""

from __future__ import annotations

from amaranth import Module, Shape, Signal, Value
from amaranth.back import verilog
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hwgen.compiler.graph import Graph
from rtl_templates.memport_arbiter import share_memory
from rtl_templates.spram_fifo import with_sim_models
from rtl_templates.tap import COUNT_BITS, SIG_BITS, TapSignature

CYCLE_BITS = 32


def _payload_shape(port):
    return port.payload.shape()


class Accelerator(wiring.Component):
    """The whole accelerator: images in as pixel beats, one result beat per image out.

    Latency and throughput are those of the plan (`hwgen plan`); backpressure on
    `o` stalls the pipeline without losing or duplicating anything.
    """

    def __init__(self, graph: Graph, *, taps: bool = False):
        if graph.input is None or graph.output is None:
            raise ValueError("graph must name its input and output ports")
        self.graph = graph
        self.taps = taps
        in_port = graph.port(graph.input)
        out_port = graph.port(graph.output)
        members = {"i": In(stream.Signature(_payload_shape(in_port))),
                   "o": Out(stream.Signature(_payload_shape(out_port)))}
        # Blocks whose memory port is not served inside them (external-weight engines):
        # through a `MemPortArbiter` when there are several, to the graph's memory (the
        # memory-port model) or else out as the accelerator's `mem`, for the board's
        # memory controller.
        self.mem_users = graph.memory_users()
        if self.mem_users and graph.memory is None:
            members["mem"] = Out(self.mem_users[0].component.mem.signature)
        self.tap_edges = graph.tapped() if taps else []
        if taps:
            members["cycle"] = Out(CYCLE_BITS)
            members["tap_arm"] = In(1)
            for k, edge in enumerate(self.tap_edges):
                width = Shape.cast(_payload_shape(graph.port(edge.src))).width
                members[f"t{k}_sig"] = Out(SIG_BITS)
                members[f"t{k}_count"] = Out(COUNT_BITS)
                members[f"t{k}_first"] = Out(COUNT_BITS)
                members[f"t{k}_last"] = Out(COUNT_BITS)
                members[f"t{k}_fire"] = Out(1)
                members[f"t{k}_payload"] = Out(width)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        g = self.graph
        for node in g.nodes.values():
            m.submodules[node.name.replace(".", "_")] = node.component
        for edge in g.edges:
            wiring.connect(m, g.port(edge.src), g.port(edge.dst))
        wiring.connect(m, wiring.flipped(self.i), g.port(g.input))
        wiring.connect(m, g.port(g.output), wiring.flipped(self.o))
        if self.mem_users:
            port = share_memory(m, [n.component.mem for n in self.mem_users])
            if g.memory is not None:
                m.submodules.memory = g.memory
                wiring.connect(m, port, g.memory)
            else:
                wiring.connect(m, port, wiring.flipped(self.mem))
        if self.taps:
            m.d.sync += self.cycle.eq(self.cycle + 1)
            for k, edge in enumerate(self.tap_edges):
                port = g.port(edge.src)
                width = Shape.cast(_payload_shape(port)).width
                tap = TapSignature(width)
                m.submodules[f"tap{k}"] = tap
                fire = Signal(name=f"fire{k}")
                m.d.comb += [
                    tap.valid.eq(port.valid), tap.ready.eq(port.ready),
                    tap.payload.eq(Value.cast(port.payload)),
                    fire.eq(port.valid & port.ready),
                    getattr(self, f"t{k}_sig").eq(tap.sig),
                    getattr(self, f"t{k}_count").eq(tap.count),
                    tap.cycle.eq(self.cycle), tap.arm.eq(self.tap_arm),
                    getattr(self, f"t{k}_first").eq(tap.first),
                    getattr(self, f"t{k}_last").eq(tap.last),
                    getattr(self, f"t{k}_fire").eq(fire),
                    getattr(self, f"t{k}_payload").eq(Value.cast(port.payload)),
                ]
        return m


def accelerator_verilog(graph: Graph, *, taps: bool = False, name: str = "top",
                        sim_models: bool = True) -> str:
    """Verilog of the accelerator; deterministic for the same graph (no source locations).
    With `sim_models`, the simulation models of vendor primitives it instantiates (the
    iCE40 SPRAM) are appended, so the text simulates as it is."""
    text = verilog.convert(Accelerator(graph, taps=taps), name=name, emit_src=False)
    return with_sim_models(text) if sim_models else text
