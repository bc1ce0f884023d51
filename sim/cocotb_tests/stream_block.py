"""Generic cocotb test for a block with stream ports: drive, collect, score, time.

Stimulus (JSON): seed, gap, backpressure, timeout, inputs {port: [payload ints]},
outputs {port: [expected payload ints]}. Result: observed payloads per output
port, the cycle of every input/output beat, and the total cycle count.
"""

import cocotb
from cocotb.triggers import Combine, FallingEdge

from sim.streams import (
    Scoreboard,
    StreamDriver,
    StreamMonitor,
    load_stimulus,
    save_result,
    seeded_rng,
    start_clock,
)


@cocotb.test()
async def stream_block(dut):
    stim = load_stimulus()
    rng = seeded_rng(stim)
    await start_clock(dut)
    for name, value in stim.get("constants", {}).items():
        getattr(dut, name).value = int(value)
    cycle = [0]

    async def count():
        while True:
            await FallingEdge(dut.clk)
            cycle[0] += 1

    cocotb.start_soon(count())
    drivers = {n: StreamDriver(dut, n, rng, stim.get("gap", 0.0)) for n in stim["inputs"]}
    boards = {n: Scoreboard(n, list(exp)) for n, exp in stim["outputs"].items()}
    monitors = {}
    for n in stim["outputs"]:
        monitors[n] = StreamMonitor(dut, n, rng, stim.get("backpressure", 0.0),
                                    on_beat=boards[n].check)
    in_tasks = [cocotb.start_soon(d.send(stim["inputs"][n])) for n, d in drivers.items()]
    out_tasks = [cocotb.start_soon(m.collect(len(stim["outputs"][n]), stim.get("timeout", 100000)))
                 for n, m in monitors.items()]
    await Combine(*in_tasks, *out_tasks)
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
