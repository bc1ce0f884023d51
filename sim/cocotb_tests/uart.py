"""cocotb tests of the UART pair harness (tests/test_uart.py's `UartPair`: a UartTx and a
UartRx side by side, ports i, tx, rx, o, frame_error, overrun).

- `uart_tx_loopback`: bytes into `i` with random gaps; every edge of `tx` is
  recorded (the pytest side decodes it bit by bit) and looped back into `rx`,
  whose `o` is collected under random backpressure (stimulus `idle`/`stall`
  are sim.streams' per-cycle patterns).
- `uart_rx_frames`: `rx` driven from frames with their own bit time in ps
  (mismatched baud, bad stop bits, glitches, random idle), asynchronous to
  the clock; `o` collected under random backpressure.
- `uart_rx_overrun`: `o` held full while more frames arrive.

Every test also checks the stream rule on `o` (a held beat keeps its payload)
and records the cycles of `frame_error` / `overrun` pulses.
"""

from __future__ import annotations

import math

import cocotb
from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, Timer

from sim.streams import (
    Scoreboard,
    StreamDriver,
    StreamMonitor,
    load_stimulus,
    log_seed,
    save_result,
    start_clock,
)

PERIOD_NS = 10


class Cycles:
    """Converts simulation time to clock cycles, counted from the first rising edge seen."""

    def __init__(self, t0_ps: float):
        self.t0 = t0_ps

    def now(self) -> int:
        """The cycle of the latest rising edge (sampling mid-cycle counts for that cycle)."""
        return math.floor((get_sim_time("ps") - self.t0) / (PERIOD_NS * 1000) + 1e-6)


async def _setup(dut) -> Cycles:
    dut.rx.value = 1
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    await start_clock(dut, PERIOD_NS)
    await RisingEdge(dut.clk)
    return Cycles(get_sim_time("ps"))


def _watch_pulses(dut, cycles: Cycles) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = {"frame_error": [], "overrun": []}

    async def watch(name: str) -> None:
        sig = getattr(dut, name)
        while True:
            await RisingEdge(sig)
            seen[name].append(cycles.now())

    for name in seen:
        cocotb.start_soon(watch(name))
    return seen


def _check_held_beats(dut) -> None:
    """Raise if `o` drops valid or changes its payload before the beat is taken."""

    async def check() -> None:
        held = None
        while True:
            await FallingEdge(dut.clk)
            await ReadOnly()
            valid = bool(dut.o__valid.value)
            payload = int(dut.o__payload.value)
            if held is not None:
                assert valid, f"o: valid dropped while beat {held:#x} was not taken"
                assert payload == held, f"o: payload changed {held:#x} -> {payload:#x} while held"
            held = payload if valid and not dut.o__ready.value else None

    cocotb.start_soon(check())


async def _drive_frame(dut, byte: int, stop: int, bit_ps: int) -> None:
    for level in [0] + [(byte >> k) & 1 for k in range(8)] + [stop]:
        dut.rx.value = level
        await Timer(bit_ps, unit="ps")
    dut.rx.value = 1


async def _drive_rx(dut, frames: list[dict]) -> None:
    for f in frames:
        if f.get("idle_ps"):
            await Timer(f["idle_ps"], unit="ps")
        if "glitch_ps" in f:
            dut.rx.value = 0
            await Timer(f["glitch_ps"], unit="ps")
            dut.rx.value = 1
        else:
            await _drive_frame(dut, f["byte"], f["stop"], f["bit_ps"])


async def _expect_quiet(dut, cycles_: int) -> None:
    dut.o__ready.value = 1
    for _ in range(cycles_):
        await FallingEdge(dut.clk)
        assert not dut.o__valid.value, "o: an extra byte came out"


@cocotb.test()
async def uart_tx_loopback(dut):
    stim = load_stimulus()
    log_seed(stim)
    cycles = await _setup(dut)
    pulses = _watch_pulses(dut, cycles)
    _check_held_beats(dut)
    edges = [[cycles.now(), int(dut.tx.value)]]
    accepted: list[int] = []

    async def record_tx() -> None:
        while True:
            await dut.tx.value_change
            level = int(dut.tx.value)
            edges.append([cycles.now(), level])
            dut.rx.value = level  # loopback

    async def record_accepts() -> None:
        while True:
            await FallingEdge(dut.clk)
            await ReadOnly()
            if dut.i__valid.value and dut.i__ready.value:
                accepted.append(cycles.now() + 1)  # taken at the coming rising edge

    cocotb.start_soon(record_tx())
    cocotb.start_soon(record_accepts())
    data = stim["bytes"]
    board = Scoreboard("o", list(data))
    monitor = StreamMonitor(dut, "o", stim["stall"], on_beat=board.check)
    collect = cocotb.start_soon(monitor.collect(len(data), stim["timeout"]))
    driver = StreamDriver(dut, "i", stim["idle"])
    split = stim["gapless_from"]
    await driver.send(data[:split])
    driver.idle = []  # the rest back to back: measures throughput
    await driver.send(data[split:])
    await collect
    await _expect_quiet(dut, 3 * stim["divisor"] * 10)
    save_result({"edges": edges, "accepted": accepted, "received": monitor.received,
                 "end": cycles.now(), **pulses})


@cocotb.test()
async def uart_rx_frames(dut):
    stim = load_stimulus()
    log_seed(stim)
    cycles = await _setup(dut)
    pulses = _watch_pulses(dut, cycles)
    _check_held_beats(dut)
    board = Scoreboard("o", list(stim["expected"]))
    monitor = StreamMonitor(dut, "o", stim["stall"], on_beat=board.check)
    collect = cocotb.start_soon(monitor.collect(len(stim["expected"]), stim["timeout"]))
    await _drive_rx(dut, stim["frames"])
    await collect
    await _expect_quiet(dut, 2 * stim["divisor"] * 10)
    save_result({"received": monitor.received, "end": cycles.now(), **pulses})


@cocotb.test()
async def uart_rx_overrun(dut):
    """`o` not ready while 1 + n frames arrive: the first byte is held unchanged, n
    overrun pulses, then the held byte and one later frame come out."""
    stim = load_stimulus()
    cycles = await _setup(dut)
    pulses = _watch_pulses(dut, cycles)
    _check_held_beats(dut)
    bit_ps = stim["bit_ps"]
    first, *dropped, later = stim["bytes"]
    for byte in [first, *dropped]:
        await _drive_frame(dut, byte, 1, bit_ps)
    await Timer(bit_ps, unit="ps")
    await FallingEdge(dut.clk)
    assert dut.o__valid.value, "o: no byte held"
    held = int(dut.o__payload.value)
    assert held == first, f"o: held byte {held:#x}, expected the first one {first:#x}"
    overruns_while_full = len(pulses["overrun"])
    dut.o__ready.value = 1
    await FallingEdge(dut.clk)
    dut.o__ready.value = 0
    assert not dut.o__valid.value, "o: a dropped byte came out after the held one"
    await _drive_frame(dut, later, 1, bit_ps)
    monitor = StreamMonitor(dut, "o")
    await monitor.collect(1, stim["divisor"] * 20)
    await _expect_quiet(dut, 2 * stim["divisor"] * 10)
    save_result({"held": held, "after": monitor.received, "overruns_while_full": overruns_while_full,
                 "end": cycles.now(), **pulses})
