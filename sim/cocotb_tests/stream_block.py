"""Generic cocotb test for a block with stream ports: drive, collect, score, time.

Stimulus (JSON): seed, timeout, inputs {port: [payload ints]}, outputs {port:
[expected payload ints]}, idle {port: [bits]} and stall {port: [bits]} (the
per-cycle gap and backpressure patterns). Result: observed payloads per output
port, the cycle of every output beat, and the total cycle count.
"""

import cocotb
from cocotb.triggers import FallingEdge, gather

from sim.streams import (
    Scoreboard,
    StreamDriver,
    StreamMonitor,
    load_stimulus,
    log_seed,
    save_result,
    start_clock,
)


@cocotb.test()
async def stream_block(dut):
    stim = load_stimulus()
    log_seed(stim)
    for name, value in stim.get("constants", {}).items():
        getattr(dut, name).value = int(value)
    drivers = {n: StreamDriver(dut, n, stim.get("idle", {}).get(n, [])) for n in stim["inputs"]}
    boards = {n: Scoreboard(n, list(exp)) for n, exp in stim["outputs"].items()}
    monitors = {}
    for n in stim["outputs"]:
        monitors[n] = StreamMonitor(dut, n, stim.get("stall", {}).get(n, []),
                                    on_beat=boards[n].check)
    # Drivers and monitors drive valid/ready low before reset ends (Icarus is 4-state).
    await start_clock(dut)
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
    save_result({
        "outputs": {n: m.received for n, m in monitors.items()},
        "out_cycles": {n: m.cycles for n, m in monitors.items()},
        "cycles": max((m.cycles[-1] for m in monitors.values() if m.cycles), default=0),
    })
