"""cocotb system test of the board top (hwgen.targets.board_top.BoardCore: ports rx, tx, leds,
button, busy): a host session over the UART pins.

Bytes go into the ``rx`` pin bit by bit (8N1, ``divisor`` clock cycles per bit; a
step may send one byte with a low stop bit), and everything on the ``tx`` pin is
decoded bit by bit, sampled mid-bit, with start and stop bits checked. Each step
of the stimulus sends its bytes (or presses the button), waits for the number of
reply bytes the host side predicts, lets the design settle (``busy`` low) and
records the reply bytes and the LEDs; the pytest side decodes and judges them
(tests/test_board_top.py). At the end the line must stay quiet: no extra bytes.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge, Timer

from sim.streams import load_stimulus, log_seed, save_result, start_clock

PERIOD_NS = 10


async def decode_tx(dut, bit_ns: float, out: list[int], errors: list[str]) -> None:
    """Every byte on the tx pin, appended to `out`; framing faults to `errors`."""
    while True:
        await FallingEdge(dut.tx)
        await Timer(bit_ns / 2, unit="ns")
        if int(dut.tx.value) != 0:
            errors.append(f"tx: start bit not low mid-bit after byte {len(out)}")
            continue
        byte = 0
        for k in range(8):
            await Timer(bit_ns, unit="ns")
            byte |= int(dut.tx.value) << k
        await Timer(bit_ns, unit="ns")
        if int(dut.tx.value) != 1:
            errors.append(f"tx: stop bit low in byte {len(out)} ({byte:#04x})")
        out.append(byte)


async def send_bytes(dut, data: list[int], bit_ns: float, bad_stop_at: int | None) -> None:
    for k, byte in enumerate(data):
        stop = 0 if k == bad_stop_at else 1
        for level in [0] + [(byte >> b) & 1 for b in range(8)] + [stop]:
            dut.rx.value = level
            await Timer(bit_ns, unit="ns")
        dut.rx.value = 1
        if not stop:
            await Timer(bit_ns, unit="ns")  # the receiver waits for the line to go high


async def _wait_idle(dut, limit: int, poll: int = 16) -> int:
    """Cycles until `busy` is low (polled), or raise after `limit` cycles."""
    waited = 0
    while int(dut.busy.value):
        await ClockCycles(dut.clk, poll)
        waited += poll
        if waited > limit:
            raise AssertionError(f"busy still high after {limit} cycles: the accelerator hangs")
    return waited


async def host_session(dut, stim: dict, period_ns: float) -> dict:
    """The stimulus's steps over the UART pins (the clock runs at `period_ns`); the result
    the pytest side judges. The design must have ``rx``, ``tx``, ``leds``, ``button`` and
    ``busy``."""
    bit_ns = stim["divisor"] * period_ns
    limit = stim["timeout_cycles"]
    received: list[int] = []
    errors: list[str] = []
    cocotb.start_soon(decode_tx(dut, bit_ns, received, errors))

    await ClockCycles(dut.clk, 4)
    powerup_cycles = await _wait_idle(dut, limit)
    powerup_leds = int(dut.leds.value)
    steps = []
    for step in stim["steps"]:
        before = len(received)
        busy_after_press = None
        if step.get("button"):
            dut.button.value = 1
            await ClockCycles(dut.clk, 8)
            dut.button.value = 0
            await ClockCycles(dut.clk, 2)
            busy_after_press = int(dut.busy.value)
        if step.get("send"):
            await send_bytes(dut, step["send"], bit_ns, step.get("bad_stop_at"))
        want = before + step["reply_bytes"]
        waited = 0
        while len(received) < want:
            await ClockCycles(dut.clk, 32)
            waited += 32
            if waited > limit:
                raise AssertionError(f"step {step['name']!r}: {len(received) - before} of "
                                     f"{step['reply_bytes']} reply bytes after {limit} cycles")
        await _wait_idle(dut, limit)
        await ClockCycles(dut.clk, 2)
        steps.append({"name": step["name"], "bytes": received[before:want],
                      "leds": int(dut.leds.value), "cycles": waited,
                      "busy_after_press": busy_after_press})
    # No stray bytes: the line stays quiet for a few frame times.
    await ClockCycles(dut.clk, stim["quiet_cycles"])
    return {"powerup_leds": powerup_leds, "powerup_cycles": powerup_cycles, "steps": steps,
            "total_bytes": len(received), "tx_errors": errors}


@cocotb.test()
async def board_session(dut):
    stim = load_stimulus()
    log_seed(stim)
    dut.rx.value = 1
    dut.button.value = 0
    await start_clock(dut, PERIOD_NS)
    save_result(await host_session(dut, stim, PERIOD_NS))
