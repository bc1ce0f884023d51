"""Simulate a block that reads external memory (stream ports plus one `MemPortSignature` port
``mem``, the block the initiator) under cocotb, and check its cycle model in the same
environment, memory included.

Two memories stand behind the port:

- a **testbench responder** (`verify_memory_block`): serves the block's read requests from a
  word array with a fixed latency and seeded request-stall / data-gap patterns
  (`ResponderModel` is its cycle model); it also checks the requests seen;
- **an on-chip memory in the top** (`verify_with_ram`): `MemPortRAM` or
  `PipelinedMemPortRAM` holding the words, wired to the block in `WithMemory`; the
  block's model next to the memory's own (`MemPortRAMModel`, ...) predicts every cycle,
  memory time included.

Either raises SimulationFailed at the first wrong beat, then AssertionError if the block's
`model()`, run next to the memory's model, fires any output beat in another cycle.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from rtl_templates.memport import (
    CyclicWords,
    MemPortRAM,
    WithMemory,
    request_words,
    unpack_request,
)
from rtl_templates.timing import BlockModel, Network, Sink, Source, pattern_bit
from sim.block_sim import BlockRun, make_pattern, simulate_block
from sim.runner import SimResult, run_cocotb, verilog_of


class ResponderModel(BlockModel):
    """Cycle model of the testbench's responder (sim/cocotb_tests/memory_block.py) behind a
    memory port: it accepts a request in cycle k unless ``req_stall`` says so; the first
    beat of a read accepted in cycle k may be offered from cycle ``k + latency`` on
    (``latency`` >= 1), its beats follow in order, one per cycle at most, none in a cycle
    ``data_gap`` marks (none in cycle 0). It takes no write beat. Needs the request words (``in_words`` of
    ``req``): their ``count`` gives the beats."""

    inputs = ("req", "w")
    outputs = ("r",)

    def __init__(self, *, addr_width: int, max_burst: int, latency: int,
                 req_stall: Sequence[int] | None = None, data_gap: Sequence[int] | None = None):
        self.addr_width, self.max_burst, self.latency = addr_width, max_burst, latency
        self.req_stall, self.data_gap = list(req_stall or []), list(data_gap or [])
        self.queue: list[list[int]] = []  # [accept cycle, beats left]

    def ready(self, port):
        # The responder starts in cycle 1, as the testbench's drivers do.
        return port == "req" and self.cycle >= 1 and not pattern_bit(self.req_stall, self.cycle)

    def valid(self, port):
        return (bool(self.queue) and self.cycle >= self.queue[0][0] + self.latency
                and not pattern_bit(self.data_gap, self.cycle))

    def tick(self, fired):
        if fired["r"]:
            self.queue[0][1] -= 1
            if self.queue[0][1] == 0:
                self.queue.pop(0)
        if fired["req"]:
            _, beats, _ = unpack_request(self.in_word("req"), self.addr_width, self.max_burst)
            self.queue.append([self.cycle, beats])


class _TestbenchSource(Source):
    """A Source that offers nothing in cycle 0 (the testbench's drivers start in cycle 1)."""

    def valid(self, port):
        return self.cycle >= 1 and super().valid(port)

    def quiet(self):
        return 1 if self.cycle < 1 else super().quiet()


def network_cycles(component, memory: BlockModel, inputs: dict[str, Sequence[int]],
                   idle: dict[str, Sequence[int]], stall: dict[str, Sequence[int]],
                   beats: int) -> list[int]:
    """Fire cycles of the first `beats` beats of ``o`` of `component.model()` (or of the
    models a composite block's ``model_network(net, inputs)`` adds) wired to the
    memory model `memory` (its ``req``, ``w``, ``r``), between sources and a sink as the
    cocotb testbench drives them.

    The network starts in cycle 0, the first clock edge after reset, one before the
    testbench's sources may offer (docs/hardware.md, "Cycle numbering"): a memory inside
    the top takes the block's first request there already."""
    net = Network()
    net.cycle = 0
    if hasattr(component, "model_network"):  # a composite block: its models, joined
        at = component.model_network(net, inputs)
    else:
        net.add("dut", component.model())
        at = {p: ("dut", p) for p in ("req", "w", "r", "o", *inputs)}
    net.add("memory", memory)
    net.connect(at["req"], ("memory", "req"), words=CyclicWords(request_words(component)))
    net.connect(at["w"], ("memory", "w"))
    net.connect(("memory", "r"), at["r"])
    for port in inputs:
        net.add(f"src_{port}", _TestbenchSource(len(inputs[port]), idle.get(port)))
        net.connect((f"src_{port}", "o"), at[port], words=inputs[port])
    sink = net.add("sink_o", Sink(stall.get("o")))
    net.connect(at["o"], ("sink_o", "i"))
    net.run(lambda: sink.received >= beats, 50_000_000)
    return sink.cycles


def _compare(component, predicted: list[int], seen: list[int]) -> None:
    if predicted != seen:
        k = next((i for i, (a, b) in enumerate(zip(predicted, seen, strict=False)) if a != b),
                 min(len(seen), len(predicted)))
        raise AssertionError(f"{type(component).__name__}.o: cycle model differs from "
                             f"simulation at beat {k}: model {predicted[k:k + 1]}, "
                             f"simulation {seen[k:k + 1]}")


# --------------------------------------------------------------------------- responder

@dataclass
class MemoryRun:
    sim: SimResult
    inputs: dict[str, list[int]]
    idle: dict[str, list[int]]
    stall: dict[str, list[int]]
    req_stall: list[int]
    data_gap: list[int]

    @property
    def cycles(self) -> int:
        return self.sim.data["cycles"]

    @property
    def out_cycles(self) -> dict[str, list[int]]:
        return self.sim.data["out_cycles"]

    @property
    def requests(self) -> list[tuple[int, int]]:
        return [tuple(r) for r in self.sim.data["requests"]]


def simulate_memory_block(component, inputs: dict[str, Sequence[int]],
                          expected: dict[str, Sequence[int]], *, words: Sequence[int],
                          base: int = 0, latency: int = 8, port: str = "mem",
                          simulator: str = "verilator", seed: int = 0, gap: float = 0.0,
                          backpressure: float = 0.0, mem_stall: float = 0.0,
                          mem_gap: float = 0.0, timeout: int = 500_000,
                          tag: str = "memblock") -> MemoryRun:
    rng = random.Random(seed)
    idle = {k: make_pattern(rng, gap) for k in sorted(inputs)}
    stall = {k: make_pattern(rng, backpressure) for k in sorted(expected)}
    req_stall, data_gap = make_pattern(rng, mem_stall), make_pattern(rng, mem_gap)
    ins = {k: [int(x) for x in v] for k, v in inputs.items()}
    sig = getattr(component, port).signature
    stimulus = {"seed": seed, "timeout": timeout, "inputs": ins,
                "outputs": {k: [int(x) for x in v] for k, v in expected.items()},
                "idle": idle, "stall": stall,
                "memory": {"port": port, "words": [int(w) for w in words], "base": base,
                           "addr_bits": sig.addr_width, "max_burst": sig.max_burst,
                           "latency": latency, "req_stall": req_stall, "data_gap": data_gap}}
    sim = run_cocotb(verilog_of(component), "sim.cocotb_tests.memory_block", stimulus,
                     simulator=simulator, tag=tag)
    return MemoryRun(sim, ins, idle, stall, req_stall, data_gap)


def model_cycles(component, run: MemoryRun, latency: int) -> dict[str, list[int]]:
    """Output fire cycles of `component.model()` next to a ResponderModel, in `run`'s
    environment."""
    sig = component.mem.signature
    memory = ResponderModel(addr_width=sig.addr_width, max_burst=sig.max_burst,
                            latency=latency, req_stall=run.req_stall, data_gap=run.data_gap)
    return {"o": network_cycles(component, memory, run.inputs, run.idle, run.stall,
                                len(run.out_cycles["o"]))}


def verify_memory_block(component, inputs, expected, *, words, latency: int = 8,
                        **kwargs) -> MemoryRun:
    """simulate_memory_block, then check the requests and the cycle model; returns the run."""
    run = simulate_memory_block(component, inputs, expected, words=words, latency=latency,
                                base=component.base_addr, **kwargs)
    want = component.requests()
    images = len(run.inputs["i"]) // getattr(component, "input_beats", component.positions)
    got = run.requests
    # The engine prefetches up to two tiles of the image after the last one.
    cyclic = [want[k % len(want)] for k in range(len(got))]
    if got[:images * len(want)] != (want * images)[:len(got)] or got != cyclic:
        raise AssertionError(f"requests differ from the engine's plan: got {got[:8]}..., "
                             f"want {want[:8]}...")
    if len(got) < images * len(want):
        raise AssertionError(f"{len(got)} requests for {images} images of {len(want)}")
    _compare(component, model_cycles(component, run, latency)["o"], run.out_cycles["o"])
    return run


# --------------------------------------------------------------------------- memory in the top

def memory_for(component, words: Sequence[int], ram_class=MemPortRAM, **timing):
    """A `ram_class` holding `words` from ``component.base_addr``, with the block's port
    (its address width gives the depth, so keep it small: at most 16 bits)."""
    sig = component.mem.signature
    if sig.addr_width > 16:
        raise ValueError(f"an on-chip memory of 2**{sig.addr_width} words is too big to "
                         f"simulate: give the block addr_bits <= 16")
    init = [0] * component.base_addr + [int(w) for w in words]
    return ram_class(data_width=sig.data_width, depth=1 << sig.addr_width,
                     max_burst=sig.max_burst, init=init, **timing)


@dataclass
class RamRun:
    run: BlockRun
    predicted: list[int]

    @property
    def cycles(self) -> int:
        return self.run.cycles


def verify_with_ram(component, inputs, expected, *, words, ram_class=MemPortRAM,
                    simulator: str = "verilator", seed: int = 0, gap: float = 0.0,
                    backpressure: float = 0.0, tag: str = "memram", **timing) -> RamRun:
    """`component` with a `ram_class` (`memory_for`, `timing` its latency, interval, refresh,
    ...) in the top, simulated under seeded input gaps and output stalls; then its model
    next to the memory's model must fire every output beat in the same cycle."""
    ram = memory_for(component, words, ram_class, **timing)
    run = simulate_block(WithMemory(component, ram), inputs, expected, simulator=simulator,
                         seed=seed, gap=gap, backpressure=backpressure, tag=tag)
    predicted = network_cycles(component, ram.model(), run.inputs, run.idle, run.stall,
                               len(run.out_cycles["o"]))
    _compare(component, predicted, run.out_cycles["o"])
    return RamRun(run, predicted)
