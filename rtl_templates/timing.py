"""Cycle-exact control models of the blocks, and the kernel that runs a network of them.

A `BlockModel` mirrors one block's handshake (which cycle each port is valid or
ready) and control state, never its data. A `Network` wires models as the
compiler wires blocks and steps them cycle by cycle, skipping stretches in
which every model is only counting, so the planner predicts the exact cycle
count of a whole accelerator (docs/hardware.md, "Cycle models").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

_BUSY = object()  # marks a handshake being evaluated, to detect combinational loops


class BlockModel(ABC):
    """Control mirror of one block. Subclasses set `inputs`/`outputs` and implement
    `valid`, `ready` and `tick`; `quiet`/`skip` let the kernel jump over idle stretches.

    Inside `valid`/`ready`, a model may read its neighbours' handshake through
    `in_valid(port)` and `out_ready(port)` (same cycle, as the RTL's
    combinational paths do), and the payload offered on an input with
    `in_word(port)` when the stream was given recorded words.
    """

    inputs: tuple[str, ...] = ("i",)
    outputs: tuple[str, ...] = ("o",)

    _net: Network | None = None
    name: str = "?"

    # -- each block's model implements these (valid: if it has outputs; ready: inputs) --
    def valid(self, port: str) -> bool:
        """Whether output `port` offers a beat in the current cycle."""
        raise KeyError(f"model {self.name!r} has no output port {port!r}")

    def ready(self, port: str) -> bool:
        """Whether input `port` accepts a beat in the current cycle."""
        raise KeyError(f"model {self.name!r} has no input port {port!r}")

    @abstractmethod
    def tick(self, fired: dict[str, bool]) -> None:
        """End of a cycle: `fired[port]` says whether each port's beat transferred."""

    def quiet(self) -> int:
        """Cycles, starting with the current one, during which this model's valid/ready
        stay as they are now provided nothing fires. 1 means "no promise"."""
        return 1

    def skip(self, cycles: int) -> None:
        """Advance `cycles` cycles in which nothing fired (only called within `quiet()`)."""
        for _ in range(cycles):
            self.tick(self._nothing)

    # -- provided -------------------------------------------------------------
    @property
    def _nothing(self) -> dict[str, bool]:
        return dict.fromkeys(self.inputs + self.outputs, False)

    def in_valid(self, port: str) -> bool:
        return self._net._valid(self._edges_in[port])

    def out_ready(self, port: str) -> bool:
        return self._net._ready(self._edges_out[port])

    def in_word(self, port: str) -> int:
        """Payload of the beat currently offered on input `port` (needs recorded words)."""
        edge = self._edges_in[port]
        if edge.words is None:
            raise ValueError(f"{self.name}.{port}: the model needs the stream's words, "
                             f"but stream {edge.name!r} was connected without them")
        return edge.words[edge.count]

    @property
    def cycle(self) -> int:
        """The current cycle number (1-based, docs/hardware.md "Cycle numbering")."""
        return self._net.cycle


class LocalQuiet:
    """Mixin for models whose valid/ready depend on their own state only: `quiet` runs a
    copy of the model forward (nothing firing) until a handshake would change, so a block
    computing for thousands of cycles is skipped in one jump instead of stepped through.

    The model lists the attributes that make up its state in `_state_attrs` and says in
    `_active()` whether it is doing anything on its own (if not, it is quiet for good).
    """

    _state_attrs: tuple[str, ...] = ()
    _quiet_limit = 1 << 16

    def _active(self) -> bool:
        return True

    def _handshake(self) -> tuple:
        return (tuple(self.valid(p) for p in self.outputs)
                + tuple(self.ready(p) for p in self.inputs))

    def _fires(self) -> int:
        return (sum(e.count for e in self._edges_in.values())
                + sum(e.count for e in self._edges_out.values()))

    def quiet(self) -> int:
        if not self._active():
            return 1 << 30
        # A stretch found earlier still holds while none of our ports has fired since.
        cached = self.__dict__.get("_quiet_cache")
        fires, cycle = self._fires(), self.cycle
        if cached is not None and cached[0] == fires and cached[1] > cycle:
            return cached[1] - cycle
        saved = {k: _copy_state(getattr(self, k)) for k in self._state_attrs}
        now = self._handshake()
        nothing = self._nothing
        n = 0
        while n < self._quiet_limit:
            self.tick(nothing)
            n += 1
            if self._handshake() != now:
                break
            if not self._active():
                n = 1 << 30
                break
        for k, v in saved.items():
            setattr(self, k, v)
        self._quiet_cache = (fires, cycle + n)
        return n

    def skip(self, cycles: int) -> None:
        nothing = self._nothing
        for _ in range(cycles):
            if not self._active():
                return
            self.tick(nothing)


def _copy_state(value):
    return list(value) if isinstance(value, list) else value


@dataclass
class Edge:
    """One stream between an output port and an input port, with the beats it has carried."""

    name: str
    src: tuple[str, str]
    dst: tuple[str, str]
    words: Sequence[int] | None = None
    count: int = 0  # beats fired so far
    fire_cycles: list[int] = field(default_factory=list)
    record: bool = False
    index: int = 0  # position in the network's edge list (cache slot)


class Network:
    """A graph of block models joined by edges; `run` steps it cycle by cycle."""

    def __init__(self) -> None:
        self.blocks: dict[str, BlockModel] = {}
        self.edges: list[Edge] = []
        self._in_edge: dict[tuple[str, str], Edge] = {}
        self._out_edge: dict[tuple[str, str], Edge] = {}
        self.cycle = 1
        self._vcache: list = []
        self._rcache: list = []

    def add(self, name: str, model: BlockModel) -> BlockModel:
        if name in self.blocks:
            raise ValueError(f"block name {name!r} is used twice")
        model.name, model._net = name, self
        self.blocks[name] = model
        return model

    def connect(self, src: tuple[str, str], dst: tuple[str, str], *,
                words: Sequence[int] | None = None, name: str | None = None,
                record: bool = False) -> Edge:
        for (block, port), kind in ((src, "outputs"), (dst, "inputs")):
            if block not in self.blocks:
                raise ValueError(f"no block named {block!r}")
            if port not in getattr(self.blocks[block], kind):
                raise ValueError(f"block {block!r} has no {kind[:-1]} port {port!r}")
        if src in self._out_edge or dst in self._in_edge:
            raise ValueError(f"port already connected: {src} -> {dst}")
        edge = Edge(name or f"{src[0]}.{src[1]}->{dst[0]}.{dst[1]}", src, dst, words,
                    record=record, index=len(self.edges))
        self.edges.append(edge)
        self._out_edge[src] = edge
        self._in_edge[dst] = edge
        self.blocks[src[0]].__dict__.setdefault("_edges_out", {})[src[1]] = edge
        self.blocks[dst[0]].__dict__.setdefault("_edges_in", {})[dst[1]] = edge
        return edge

    def edge(self, name: str) -> Edge:
        for e in self.edges:
            if e.name == name:
                return e
        raise KeyError(name)

    # Handshakes are evaluated lazily and memoised per cycle, so a model may ask
    # its neighbours (a join's ready depends on its other inputs' valid).
    def _valid(self, edge: Edge) -> bool:
        cache = self._vcache
        v = cache[edge.index]
        if v is None:
            cache[edge.index] = _BUSY
            v = bool(self._src_model[edge.index].valid(edge.src[1]))
            cache[edge.index] = v
        elif v is _BUSY:
            raise RuntimeError(f"combinational loop through valid of {edge.name!r}")
        return v

    def _ready(self, edge: Edge) -> bool:
        cache = self._rcache
        r = cache[edge.index]
        if r is None:
            cache[edge.index] = _BUSY
            r = bool(self._dst_model[edge.index].ready(edge.dst[1]))
            cache[edge.index] = r
        elif r is _BUSY:
            raise RuntimeError(f"combinational loop through ready of {edge.name!r}")
        return r

    def _check_connected(self) -> None:
        for name, m in self.blocks.items():
            for p in m.inputs:
                if (name, p) not in self._in_edge:
                    raise ValueError(f"input {name}.{p} is not connected")
            for p in m.outputs:
                if (name, p) not in self._out_edge:
                    raise ValueError(f"output {name}.{p} is not connected")

    def run(self, until: Callable[[], bool], max_cycles: int) -> int:
        """Step until `until()` is true after a cycle; return the last cycle stepped.

        Raises RuntimeError after `max_cycles` (a deadlock or a model bug).
        """
        self._check_connected()
        blocks = list(self.blocks.values())
        edges = self.edges
        n = len(edges)
        self._src_model = [self.blocks[e.src[0]] for e in edges]
        self._dst_model = [self.blocks[e.dst[0]] for e in edges]
        # Blocks where nothing fired all get the same (never written) all-False map.
        nothing = {name: m._nothing for name, m in self.blocks.items()}
        valid, ready = self._valid, self._ready
        while True:
            if self.cycle > max_cycles:
                raise RuntimeError(f"model did not finish within {max_cycles} cycles; "
                                   f"stalled edges: {self._describe_stall()}")
            self._vcache = [None] * n
            self._rcache = [None] * n
            fired_edges = [e for e in edges if valid(e) and ready(e)]
            if not fired_edges:
                jump = 1 << 30
                for m in blocks:  # stop at the first model that is not quiet
                    jump = min(jump, m.quiet())
                    if jump <= 1:
                        break
                if jump > 1:
                    jump = min(jump, max_cycles + 1 - self.cycle)
                    for m in blocks:
                        m.skip(jump)
                    self.cycle += jump
                    if until():
                        return self.cycle - 1
                    continue
            fired: dict[str, dict[str, bool]] = {}
            for e in fired_edges:
                for block, port in (e.src, e.dst):
                    f = fired.get(block)
                    if f is None:
                        f = fired[block] = dict(nothing[block])
                    f[port] = True
                e.count += 1
                if e.record:
                    e.fire_cycles.append(self.cycle)
            for name, m in self.blocks.items():
                m.tick(fired.get(name) or nothing[name])
            self.cycle += 1
            if until():
                return self.cycle - 1

    def _describe_stall(self) -> str:
        parts = [f"{e.name}(beats={e.count})" for e in self.edges]
        return ", ".join(parts)


# --------------------------------------------------------------------------- environment

def pattern_bit(pattern: Sequence[int] | None, cycle: int) -> bool:
    """Bit of an idle/stall pattern for 1-based `cycle` (docs/hardware.md)."""
    return bool(pattern) and bool(pattern[(cycle - 1) % len(pattern)])


def _pattern_run(pattern: Sequence[int] | None, cycle: int) -> int:
    """How many cycles from `cycle` on the pattern bit stays the same (at least 1)."""
    if not pattern:
        return 1 << 30
    n = len(pattern)
    first = pattern_bit(pattern, cycle)
    run = 1
    while run < n and pattern_bit(pattern, cycle + run) == first:
        run += 1
    return run if run < n else 1 << 30


class Source(BlockModel):
    """A testbench driver: offers `count` beats back to back, idle where `idle` says."""

    inputs = ()
    outputs = ("o",)

    def __init__(self, count: int, idle: Sequence[int] | None = None):
        self.remaining = count
        self.idle = list(idle or [])

    def valid(self, port: str) -> bool:
        return self.remaining > 0 and not pattern_bit(self.idle, self.cycle)

    def tick(self, fired: dict[str, bool]) -> None:
        if fired["o"]:
            self.remaining -= 1

    def quiet(self) -> int:
        return _pattern_run(self.idle, self.cycle) if self.remaining else 1 << 30

    def skip(self, cycles: int) -> None:
        pass


class Sink(BlockModel):
    """A testbench monitor: accepts beats, stalling where `stall` says; records fire cycles."""

    inputs = ("i",)
    outputs = ()

    def __init__(self, stall: Sequence[int] | None = None):
        self.stall = list(stall or [])
        self.received = 0
        self.cycles: list[int] = []

    def ready(self, port: str) -> bool:
        return not pattern_bit(self.stall, self.cycle)

    def tick(self, fired: dict[str, bool]) -> None:
        if fired["i"]:
            self.received += 1
            self.cycles.append(self.cycle)

    def quiet(self) -> int:
        return _pattern_run(self.stall, self.cycle)

    def skip(self, cycles: int) -> None:
        pass


def run_single(model: BlockModel, in_counts: dict[str, int], out_counts: dict[str, int], *,
               in_words: dict[str, Sequence[int]] | None = None,
               idle: dict[str, Sequence[int]] | None = None,
               stall: dict[str, Sequence[int]] | None = None,
               max_cycles: int = 10_000_000) -> dict[str, list[int]]:
    """Run one block model between sources and sinks, as the per-block testbench does.

    Returns the fire cycle of every output beat per output port; the run's cycle
    count is the largest last entry.
    """
    net = Network()
    net.add("dut", model)
    sinks = {}
    for p in model.inputs:
        net.add(f"src_{p}", Source(in_counts[p], (idle or {}).get(p)))
        net.connect((f"src_{p}", "o"), ("dut", p), words=(in_words or {}).get(p))
    for p in model.outputs:
        sinks[p] = net.add(f"sink_{p}", Sink((stall or {}).get(p)))
        net.connect(("dut", p), (f"sink_{p}", "i"))
    net.run(lambda: all(sinks[p].received >= out_counts[p] for p in model.outputs), max_cycles)
    return {p: s.cycles for p, s in sinks.items()}
