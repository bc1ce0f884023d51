"""cocotb stream verification components for `amaranth.lib.stream` ports.

Typed driver (input gaps), monitor (output backpressure) and a scoreboard that
raises at the first difference, saying which beat. Gaps and stalls follow
explicit per-cycle bit patterns (docs/hardware.md, "Cycle numbering"), made
from a seeded RNG on the Python side, so the block's cycle model can be run
in exactly the same environment. Inputs are driven and outputs sampled
around the falling edge so the DUT's combinational ready/valid have settled,
which works the same on Verilator and Icarus.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge, gather


def load_stimulus() -> dict:
    with open(os.environ["HWGEN_SIM_DATA"]) as f:
        return json.load(f)


def save_result(result: dict) -> None:
    with open(os.environ["HWGEN_SIM_RESULT"], "w") as f:
        json.dump(result, f)


def pack(values: Sequence[int], width: int) -> int:
    """Lane 0 in the low bits: the layout of an Amaranth ArrayLayout payload."""
    mask = (1 << width) - 1
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & mask) << (i * width)
    return word


def unpack(word: int, width: int, count: int, signed: bool = True) -> list[int]:
    mask = (1 << width) - 1
    out = []
    for i in range(count):
        v = (word >> (i * width)) & mask
        if signed and v >> (width - 1):
            v -= 1 << width
        out.append(v)
    return out


@dataclass
class Port:
    """Handles of one stream port `name` of the DUT (Amaranth flattens to name__payload etc.)."""

    payload: object
    valid: object
    ready: object | None

    @classmethod
    def of(cls, dut, name: str) -> Port:
        ready = getattr(dut, f"{name}__ready", None)
        return cls(getattr(dut, f"{name}__payload"), getattr(dut, f"{name}__valid"), ready)


def pattern_bit(pattern: Sequence[int], cycle: int) -> bool:
    """Bit of an idle/stall pattern for 1-based `cycle` (same rule as rtl_templates.timing)."""
    return bool(pattern) and bool(pattern[(cycle - 1) % len(pattern)])


class StreamDriver:
    """Sends payloads into a stream sink of the DUT; in cycle k it idles when `idle` says so."""

    def __init__(self, dut, name: str, idle: Sequence[int] = ()):
        self.port = Port.of(dut, name)
        self.clk = dut.clk
        self.idle = list(idle)
        self.sent = 0
        self.cycle = 0
        self.cycles: list[int] = []  # cycle of each accepted beat
        self.port.valid.value = 0

    async def send(self, payloads: Sequence[int]) -> None:
        for word in payloads:
            while True:
                await FallingEdge(self.clk)
                self.cycle += 1
                if pattern_bit(self.idle, self.cycle):
                    self.port.valid.value = 0
                    continue
                self.port.valid.value = 1
                self.port.payload.value = int(word)
                await ReadOnly()
                if self.port.ready is None or self.port.ready.value:
                    break  # accepted at the coming rising edge
            self.sent += 1
            self.cycles.append(self.cycle)
        await FallingEdge(self.clk)
        self.port.valid.value = 0


class StreamMonitor:
    """Collects payloads from a stream source of the DUT; in cycle k it stalls when `stall` says so."""

    def __init__(self, dut, name: str, stall: Sequence[int] = (),
                 on_beat: Callable[[int, int], None] | None = None):
        self.port = Port.of(dut, name)
        self.clk = dut.clk
        self.stall = list(stall)
        self.received: list[int] = []
        self.cycles: list[int] = []  # cycle of each accepted beat
        self.on_beat = on_beat
        self.cycle = 0
        if self.port.ready is not None:
            self.port.ready.value = 0

    async def collect(self, count: int, timeout_cycles: int) -> list[int]:
        while len(self.received) < count:
            await FallingEdge(self.clk)
            self.cycle += 1
            if self.cycle > timeout_cycles:
                raise AssertionError(
                    f"timeout: {len(self.received)} of {count} beats after {timeout_cycles} cycles")
            ready = not pattern_bit(self.stall, self.cycle)
            if self.port.ready is not None:
                self.port.ready.value = int(ready)
            await ReadOnly()
            if ready and self.port.valid.value:
                word = self.port.payload.value.to_unsigned()
                self.received.append(word)
                self.cycles.append(self.cycle)
                if self.on_beat:
                    self.on_beat(len(self.received) - 1, word)
        await FallingEdge(self.clk)
        if self.port.ready is not None:
            self.port.ready.value = 0
        return self.received


@dataclass
class Scoreboard:
    """Compares observed beats with expected ones in order; raises at the first difference."""

    name: str
    expected: list[int]
    describe: Callable[[int, int, int], str] | None = None  # (beat, expected, got) -> text
    checked: int = field(default=0)

    def check(self, beat: int, got: int) -> None:
        if beat >= len(self.expected):
            raise AssertionError(f"{self.name}: extra beat {beat} (only {len(self.expected)} expected)")
        want = self.expected[beat]
        if want != got:
            where = self.describe(beat, want, got) if self.describe else f"expected {want:#x}, got {got:#x}"
            raise AssertionError(f"{self.name}: mismatch at beat {beat}: {where}")
        self.checked += 1


async def start_clock(dut, period_ns: int = 10) -> None:
    cocotb.start_soon(Clock(dut.clk, period_ns, unit="ns").start())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


def log_seed(stimulus: dict) -> None:
    cocotb.log.info(f"hwgen: random seed {int(stimulus.get('seed', 0))}")


async def run_streams(dut, stim, background=()) -> dict:
    """Drive the stimulus' inputs, score its outputs, check nothing more comes out, and
    return the result (outputs, out_cycles, cycles). `background`: coroutines started with
    the clock (e.g. a memory responder)."""
    for name, value in stim.get("constants", {}).items():
        getattr(dut, name).value = int(value)
    drivers = {n: StreamDriver(dut, n, stim.get("idle", {}).get(n, [])) for n in stim["inputs"]}
    boards = {n: Scoreboard(n, list(exp)) for n, exp in stim["outputs"].items()}
    monitors = {}
    for n in stim["outputs"]:
        monitors[n] = StreamMonitor(dut, n, stim.get("stall", {}).get(n, []),
                                    on_beat=boards[n].check)
    # Drivers and monitors drive valid/ready low before reset ends (Icarus is 4-state).
    await start_clock(dut, round(stim.get("period_ns", 10)))
    for task in background:
        cocotb.start_soon(task)
    # gather: the first failure (a mismatch, a timeout) ends the test at once.
    await gather(*[d.send(stim["inputs"][n]) for n, d in drivers.items()],
                 *[m.collect(len(stim["outputs"][n]), stim.get("timeout", 100000))
                   for n, m in monitors.items()])
    # Nothing more may come out: watch a few idle cycles with ready high.
    for m in monitors.values():
        if m.port.ready is not None:
            m.port.ready.value = 1
    for _ in range(stim.get("drain", 8)):
        await FallingEdge(dut.clk)
        for n, m in monitors.items():
            assert not m.port.valid.value, f"{n}: extra beat after the {len(m.received)} expected"
    return {
        "outputs": {n: m.received for n, m in monitors.items()},
        "out_cycles": {n: m.cycles for n, m in monitors.items()},
        "cycles": max((m.cycles[-1] for m in monitors.values() if m.cycles), default=0),
    }
