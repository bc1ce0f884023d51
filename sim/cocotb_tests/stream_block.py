"""Generic cocotb test for a block with stream ports: drive, collect, score, time.

Stimulus (JSON): seed, timeout, inputs {port: [payload ints]}, outputs {port:
[expected payload ints]}, idle {port: [bits]} and stall {port: [bits]} (the
per-cycle gap and backpressure patterns). Result: observed payloads per output
port, the cycle of every output beat, and the total cycle count.
"""

import cocotb

from sim.streams import load_stimulus, log_seed, run_streams, save_result


@cocotb.test()
async def stream_block(dut):
    stim = load_stimulus()
    log_seed(stim)
    save_result(await run_streams(dut, stim))
