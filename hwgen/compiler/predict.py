"""Exact cycle prediction: the accelerator graph as a network of block cycle models.

The testbench offers an image's pixel beats back to back from cycle 1 and is
always ready for the result; `image_cycles` returns the cycle in which each
image's result beat fires, under the same rules as the RTL (docs/hardware.md).
Event-driven layers need the spike words of their input streams, which the
caller passes per edge (from the golden model's taps).
"""

from __future__ import annotations

from collections.abc import Sequence

from hwgen.compiler.graph import Graph
from rtl_templates.memport_arbiter import share_memory_network
from rtl_templates.timing import Network, Sink, Source


def build_network(graph: Graph, *, images: int, edge_words: dict[str, Sequence[int]] | None = None,
                  idle: Sequence[int] | None = None, stall: Sequence[int] | None = None,
                  record: bool = False) -> tuple[Network, Sink]:
    net = Network()
    at: dict[tuple[str, str], tuple[str, str]] = {}  # a composite node's ports: its models'
    for node in graph.nodes.values():
        if hasattr(node.component, "model_network"):  # e.g. the body engine with its memory
            for port, ref in node.component.model_network(net, {}, prefix=node.name).items():
                at[(node.name, port)] = ref
        else:
            net.add(node.name, node.component.model())
    tap = graph.input_tap  # steps: 1 beat per pixel, T per token of event frames
    in_beats = tap.grid[0] * tap.grid[1] * tap.steps * images
    net.add("_source", Source(in_beats, idle))
    sink = net.add("_sink", Sink(stall))
    net.connect(("_source", "o"), at.get(graph.input, graph.input), name="_input",
                record=record)
    net.connect(at.get(graph.output, graph.output), ("_sink", "i"), name="_output")
    words = edge_words or {}
    if graph.memory is not None and graph.memory_users():  # the memory-port model, shared
        share_memory_network(net, [(n.component, {p: at.get((n.name, p), (n.name, p))
                                                  for p in ("req", "w", "r")})
                                   for n in graph.memory_users()], graph.memory.model())
    for edge in graph.edges:
        net.connect(at.get(edge.src, edge.src), at.get(edge.dst, edge.dst),
                    words=words.get(edge.name), name=edge.name, record=record)
    return net, sink


def image_cycles(graph: Graph, *, images: int = 1,
                 edge_words: dict[str, Sequence[int]] | None = None,
                 max_cycles: int = 50_000_000) -> list[int]:
    """The cycle in which each image's result fires, images offered back to back."""
    net, sink = build_network(graph, images=images, edge_words=edge_words)
    net.run(lambda: sink.received >= images, max_cycles)
    return sink.cycles


def image_timing(graph: Graph, *, edge_words: dict[str, Sequence[int]] | None = None,
                 max_cycles: int = 50_000_000) -> tuple[int, dict[str, tuple[int, int]]]:
    """One image alone: the cycle its result fires (as `image_cycles`) and each tapped
    stream's first and last beat, counting the image's first input beat as cycle 1 (as the
    simulation's `spans`)."""
    net, sink = build_network(graph, images=1, edge_words=edge_words, record=True)
    net.run(lambda: sink.received >= 1, max_cycles)
    base = net.edge("_input").fire_cycles[0] - 1
    spans = {}
    for edge in graph.tapped():
        fires = net.edge(edge.name).fire_cycles
        spans[edge.name] = (fires[0] - base, fires[-1] - base)
    return sink.cycles[0], spans


def needs_words(graph: Graph) -> bool:
    """Whether any block's timing depends on data (event-driven linears)."""
    return any(getattr(n.component, "mode", "dense") == "event" for n in graph.nodes.values())


def propagate_words(graph: Graph, tapped: dict[str, Sequence[int]]) -> dict[str, Sequence[int]]:
    """Words of every edge, given those of the tapped ones: plumbing (forks, FIFOs) passes
    its input stream through unchanged, so an untapped edge carries what feeds its source."""
    into = {e.dst[0]: e for e in graph.edges}  # plumbing nodes have exactly one input
    out: dict[str, Sequence[int]] = {}
    for edge in graph.edges:
        e = edge
        while e.name not in tapped and graph.nodes[e.src[0]].plumbing:
            e = into[e.src[0]]
        if e.name in tapped:
            out[edge.name] = tapped[e.name]
    return out
