"""The accelerator as a graph of blocks joined by streams: the types.

One description serves three uses: `hwgen.compiler.top` elaborates it into one Amaranth
component, `hwgen.compiler.predict` turns it into a network of cycle models, and `sim`
reads from each stream's `TapSpec` which golden-model tap it must carry.
`hwgen.compiler.builder.build_graph` builds it from an integer model and a folding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amaranth.hdl import Elaboratable
from amaranth.lib import wiring

from quant.ir import IntModel


@dataclass(frozen=True)
class Folding:
    """Parallelism of one layer: output lanes (PE), input bits per cycle (SIMD), mode."""

    pe: int = 1
    simd: int = 1
    mode: str = "dense"  # "dense" or "event" (spike linears and convs, DWCs, the head)

    def __str__(self) -> str:
        mode = "" if self.mode == "dense" else f" {self.mode}"
        return f"PE={self.pe} SIMD={self.simd}{mode}"


@dataclass(frozen=True)
class TapSpec:
    """Which golden tap(s) a stream carries and how they pack into beat words.

    `keys` are golden-model tap names concatenated along channels (q and k make
    one stream); `kind` is "pixels", "spikes", "values" or "result".
    """

    kind: str
    keys: tuple[str, ...]
    grid: tuple[int, int]
    channels: int
    width: int = 1  # values: signed width of a lane
    lanes: int = 1
    steps: int = 1  # beats per token (spikes: T) or per group (values: T, or 1 for the pixel conv)
    tile_major: bool = False  # values of an engine: for group: for token: for step


@dataclass
class Node:
    name: str
    kind: str  # "pixel_conv", "spike_conv", "lif", "pool", "linear", "lif_linear", "sasa", "dwconv", "add", "head", "fork", "fifo", "engine", "conv_engine", "collector"
    component: wiring.Component
    layer: str | None = None  # the integer-model layer it computes (None for plumbing)
    tokens: int = 0  # tokens per image on the block's input grid
    beats: int = 0  # FIFOs: beats per image through them

    @property
    def plumbing(self) -> bool:
        return self.kind in ("fork", "fifo")


@dataclass
class StreamEdge:
    name: str
    src: tuple[str, str]
    dst: tuple[str, str]
    tap: TapSpec | None = None


@dataclass
class Graph:
    """Blocks, the streams between them, and the accelerator's input and output ports."""

    model: IntModel
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[StreamEdge] = field(default_factory=list)
    input: tuple[str, str] | None = None
    output: tuple[str, str] | None = None
    input_tap: TapSpec | None = None
    output_tap: TapSpec | None = None
    # The memory behind the blocks' memory ports (a `MemPortRAM`, the memory-port model),
    # or None: the port leaves the accelerator (a board top's controller serves it).
    memory: wiring.Component | None = None

    def add(self, name: str, kind: str, component: wiring.Component,
            layer: str | None = None, tokens: int = 0) -> Node:
        if name in self.nodes:
            raise ValueError(f"node {name!r} added twice")
        node = Node(name, kind, component, layer, tokens)
        self.nodes[name] = node
        return node

    def connect(self, src: tuple[str, str], dst: tuple[str, str],
                tap: TapSpec | None = None) -> StreamEdge:
        edge = StreamEdge(f"{src[0]}.{src[1]}->{dst[0]}.{dst[1]}", src, dst, tap)
        self.edges.append(edge)
        return edge

    def memory_users(self) -> list[Node]:
        """The blocks with a memory port (``mem``), in graph order (arbiter priority)."""
        return [n for n in self.nodes.values() if "mem" in n.component.signature.members]

    def tapped(self) -> list[StreamEdge]:
        return [e for e in self.edges if e.tap is not None]

    def port(self, ref: tuple[str, str]):
        return getattr(self.nodes[ref[0]].component, ref[1])

    def for_models_only(self) -> Graph:
        """Mark every block as used: this graph serves its cycle and resource models only
        (the planner's), so Amaranth must not warn at exit that it was never elaborated."""
        for node in self.nodes.values():
            mark_used(node.component)
        mark_used(self.memory)
        return self


def mark_used(obj):
    """Set Amaranth's used flag (amaranth._unused.MustUse) on `obj` and on the elaboratables
    it made in its constructor (such as a FIFO's RAM), which would warn the same way.
    Returns `obj` (for a block built only for its estimates)."""
    if not isinstance(obj, Elaboratable) or getattr(obj, "_MustUse__used", True):
        return obj
    obj._MustUse__used = True
    for value in vars(obj).values():
        if isinstance(value, dict):
            value = list(value.values())
        for item in value if isinstance(value, (list, tuple)) else (value,):
            mark_used(item)
    return obj
