"""Simulate a block that reads external memory (a stream block plus one memory port) under
cocotb, and check its cycle model in the same environment, memory included.

`verify_memory_block` serves the block's requests from a word array with a fixed latency
and seeded request-stall / data-gap patterns (`rtl_templates.memory_port.MemoryPortModel`
is the matching cycle model), raises SimulationFailed at the first wrong beat, then checks
the requests seen and that the block's `model()` fires every output beat in the same cycle.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from rtl_templates.memory_port import MemoryPortModel
from rtl_templates.timing import Network, Sink, Source
from sim.block_sim import make_pattern
from sim.runner import SimResult, run_cocotb, verilog_of


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
    stimulus = {"seed": seed, "timeout": timeout, "inputs": ins,
                "outputs": {k: [int(x) for x in v] for k, v in expected.items()},
                "idle": idle, "stall": stall,
                "memory": {"port": port, "words": [int(w) for w in words], "base": base,
                           "addr_bits": component.addr_bits, "latency": latency,
                           "req_stall": req_stall, "data_gap": data_gap}}
    sim = run_cocotb(verilog_of(component), "sim.cocotb_tests.memory_block", stimulus,
                     simulator=simulator, tag=tag)
    return MemoryRun(sim, ins, idle, stall, req_stall, data_gap)


def model_cycles(component, run: MemoryRun, latency: int) -> dict[str, list[int]]:
    """Output fire cycles of `component.model()` next to a MemoryPortModel, in `run`'s
    environment (its `requests()` give the request lengths)."""
    net = Network()
    net.add("dut", component.model())
    lengths = [n for _, n in component.requests()]
    net.add("memory", MemoryPortModel(lengths, latency=latency, req_stall=run.req_stall,
                                      data_gap=run.data_gap))
    net.connect(("dut", "req"), ("memory", "req"))
    net.connect(("memory", "rdata"), ("dut", "rdata"))
    for port in run.inputs:
        net.add(f"src_{port}", Source(len(run.inputs[port]), run.idle.get(port)))
        net.connect((f"src_{port}", "o"), ("dut", port), words=run.inputs[port])
    sink = net.add("sink_o", Sink(run.stall.get("o")))
    net.connect(("dut", "o"), ("sink_o", "i"))
    count = len(run.out_cycles["o"])
    net.run(lambda: sink.received >= count, 10_000_000)
    return {"o": sink.cycles}


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
    predicted = model_cycles(component, run, latency)
    for port, seen in run.out_cycles.items():
        if predicted[port] != seen:
            k = next((i for i, (a, b) in enumerate(zip(predicted[port], seen, strict=False))
                      if a != b), min(len(seen), len(predicted[port])))
            raise AssertionError(f"{type(component).__name__}.{port}: cycle model differs from "
                                 f"simulation at beat {k}: model {predicted[port][k:k + 1]}, "
                                 f"simulation {seen[k:k + 1]}")
    return run
