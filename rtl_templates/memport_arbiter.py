"""Several weight-streaming engines at one memory port: a fixed-priority arbiter of read
requests, and its exact cycle model.

The external-weight accelerator whose stem convs and RPE also stream their weights
(docs/hardware.md, "The generated external-weight accelerator") has three initiators (the
stem conv's engine, the RPE's, the body's) and one memory; the arbiter is the only block
between them, so the memory controller stays swappable behind one `MemPortSignature`.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl_templates.common import bits_for, check_int
from rtl_templates.memport import (
    CyclicWords,
    MemPortSignature,
    request_words,
    unpack_request,
)
from rtl_templates.timing import BlockModel, Network


class MemPortArbiter(wiring.Component):
    """``n`` read-only initiators sharing one memory, initiator 0 first.

    Parameters: ``n`` (>= 2), those of the `MemPortSignature` (every port has it), ``pending``
    (the most beats the initiators may have requested and not yet read; default 2**20).

    Ports: ``i0`` .. ``i{n-1}`` (the memory side of the port: connect the initiators),
    ``mem`` (the initiator side: connect the memory).

    Arbitration: the granted initiator is the lowest-numbered one with a valid request. Its
    request is passed on (combinationally, ``req.ready`` is the memory's) when no read beat
    is owed to anyone, or when the owed beats are its own; it then owns the beats it asked
    for. Read beats go to the owner (``mem.r.ready`` is the owner's ``r.ready``), so
    requests of one initiator may follow each other without a gap and a change of owner
    waits for the last owed beat. Requests must be reads: ``w`` is never passed on.
    """

    def __init__(self, n: int, *, addr_width: int, data_width: int, max_burst: int,
                 pending: int = 1 << 20):
        self.n = check_int("n", n, 2)
        self.port_signature = MemPortSignature(addr_width=addr_width, data_width=data_width,
                                               max_burst=max_burst)
        self.pending = check_int("pending", pending, max_burst)
        members = {f"i{k}": In(self.port_signature) for k in range(n)}
        super().__init__({**members, "mem": Out(self.port_signature)})

    def elaborate(self, platform):
        m = Module()
        n, mem = self.n, self.mem
        ports = [getattr(self, f"i{k}") for k in range(n)]
        owner = Signal(range(n))
        owed = Signal(bits_for(self.pending + self.port_signature.max_burst))
        sel = Signal(range(n))
        for k in reversed(range(n)):  # the lowest-numbered valid request wins
            with m.If(ports[k].req.valid):
                m.d.comb += sel.eq(k)
        allowed = Signal()
        m.d.comb += allowed.eq((owed == 0) | (sel == owner))
        payload = ports[n - 1].req.payload.as_value()
        for k in reversed(range(n - 1)):
            payload = Mux(sel == k, ports[k].req.payload.as_value(), payload)
        m.d.comb += [mem.req.payload.as_value().eq(payload),
                     mem.req.valid.eq(Cat(*[p.req.valid for p in ports]).any() & allowed),
                     mem.w.valid.eq(0)]
        for k, p in enumerate(ports):
            m.d.comb += [p.req.ready.eq((sel == k) & allowed & mem.req.ready),
                         p.w.ready.eq(0), p.r.payload.eq(mem.r.payload),
                         p.r.valid.eq(mem.r.valid & (owner == k))]
            with m.If(owner == k):
                m.d.comb += mem.r.ready.eq(p.r.ready)
        fired = mem.req.valid & mem.req.ready
        moved = mem.r.valid & mem.r.ready
        m.d.sync += owed.eq(owed + Mux(fired, mem.req.payload.count + 1, 0) - moved)
        with m.If(fired):
            m.d.sync += owner.eq(sel)
        return m

    def model(self) -> MemPortArbiterModel:
        sig = self.port_signature
        return MemPortArbiterModel(self.n, sig.addr_width, sig.max_burst)


class _Offered(Sequence):
    """The request words on the arbiter's ``req`` edge: whichever initiator's word it
    offers in the current cycle (the memory's model reads it with ``in_word``)."""

    def __init__(self, arbiter: MemPortArbiterModel):
        self.arbiter = arbiter

    def __getitem__(self, k):
        return self.arbiter.offered_word()

    def __len__(self):
        return 1 << 40


class MemPortArbiterModel(BlockModel):
    """Cycle-exact control mirror of `MemPortArbiter`. Its initiators' ``req`` edges need
    their request words (`memport.CyclicWords`); its own ``req`` edge takes `words`."""

    def __init__(self, n: int, addr_width: int, max_burst: int):
        self.n, self.addr_width, self.max_burst = n, addr_width, max_burst
        self.inputs = (*(f"req{k}" for k in range(self.n)), *(f"w{k}" for k in range(self.n)),
                       "r")
        self.outputs = ("req", "w", *(f"r{k}" for k in range(self.n)))
        self.owner, self.owed = 0, 0
        self.words = _Offered(self)

    def _sel(self) -> int | None:
        return next((k for k in range(self.n) if self.in_valid(f"req{k}")), None)

    def _allowed(self, sel: int | None) -> bool:
        return sel is not None and (self.owed == 0 or sel == self.owner)

    def offered_word(self) -> int:
        return self.in_word(f"req{self._sel()}")

    def valid(self, port):
        if port == "req":
            return self._allowed(self._sel())
        if port == "w":
            return False
        return self.owner == int(port[1:]) and self.in_valid("r")

    def ready(self, port):
        if port == "r":
            return self.out_ready(f"r{self.owner}")
        if port.startswith("w"):
            return False
        sel = self._sel()
        return sel == int(port[3:]) and self._allowed(sel) and self.out_ready("req")

    def tick(self, fired):
        if fired["req"]:
            sel = next(k for k in range(self.n) if fired[f"req{k}"])
            # The initiator's edge has counted this beat already: its word is the one before.
            edge = self._edges_in[f"req{sel}"]
            _, beats, _ = unpack_request(edge.words[edge.count - 1], self.addr_width,
                                         self.max_burst)
            self.owed += beats
            self.owner = sel
        if fired["r"]:
            self.owed -= 1

    def quiet(self):
        return 1 << 30  # the state changes only when something fires

    def skip(self, cycles):
        pass


def share_memory(m: Module, ports: list) -> wiring.PureInterface:
    """The one memory port of `ports` (initiators' ``mem`` ports, e.g. engines'), through a
    `MemPortArbiter` added to `m` when there are several (the first has priority)."""
    if len(ports) == 1:
        return ports[0]
    sig = ports[0].signature
    arb = MemPortArbiter(len(ports), addr_width=sig.addr_width, data_width=sig.data_width,
                         max_burst=sig.max_burst)
    m.submodules.mem_arbiter = arb
    for k, port in enumerate(ports):
        wiring.connect(m, port, getattr(arb, f"i{k}"))
    return arb.mem


def share_memory_network(net: Network, users: list[tuple[object, dict]], memory: BlockModel,
                         name: str = "_memory") -> None:
    """The cycle model of `share_memory` with `memory` (a memory's model) behind it. Each
    user is (component, where its model's ``req``, ``w`` and ``r`` are in `net`); its
    request words are its `request_words`, image after image; through an arbiter's model
    (`name`_arbiter) when there are several."""
    net.add(name, memory)
    if len(users) == 1:
        comp, at = users[0]
        net.connect(at["req"], (name, "req"), words=CyclicWords(request_words(comp)))
        net.connect(at["w"], (name, "w"))
        net.connect((name, "r"), at["r"])
        return
    sig = users[0][0].mem.signature
    arb = net.add(f"{name}_arbiter", MemPortArbiterModel(len(users), sig.addr_width,
                                                         sig.max_burst))
    for k, (comp, at) in enumerate(users):
        net.connect(at["req"], (arb.name, f"req{k}"), words=CyclicWords(request_words(comp)))
        net.connect(at["w"], (arb.name, f"w{k}"))
        net.connect((arb.name, f"r{k}"), at["r"])
    net.connect((arb.name, "req"), (name, "req"), words=arb.words)
    net.connect((arb.name, "w"), (name, "w"))
    net.connect((name, "r"), (arb.name, "r"))
