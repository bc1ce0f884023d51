"""cocotb test of the real SDRAM path: init, write a pattern, burst-read it back, measure.

The DUT is `SDRAMController` (LiteDRAM + init driver + adapter) as `top`; `SDRAMChip`
(sim/sdram_model.py) plays the chip on its pins, sampling them mid-cycle (what the
chip sees at the next rising edge) and driving read data for that edge. Stimulus
(JSON, sim/sdram_sim.py): writes, wdata, reads, rdata, idle/stall patterns.
"""

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, gather

from sim.cocotb_tests.board import decode_tx, host_session, send_bytes
from sim.sdram_model import SDRAMChip, SDRAMTimings, SDRAMViolation
from sim.streams import (
    Scoreboard,
    StreamDriver,
    StreamMonitor,
    load_stimulus,
    log_seed,
    run_streams,
    save_result,
    start_clock,
)


def _pin(dut, name: str) -> int:
    return int(getattr(dut, name).value)


async def play_chip(dut, chip: SDRAMChip, stats: dict, flip_read: int | None = None) -> None:
    """Every cycle: give the chip the pins, put its read word on dq for the next edge.
    `flip_read`: flip bit 0 of that read word on the bus (fault injection)."""
    dq_in = dut.chip_dq  # what the controller's input buffers see (the chip's drive)
    dq_out = dut.phy_dq_o  # what the PHY's pad buffers drive, where phy_dq_oe
    dq_en = dut.phy_dq_oe
    while True:
        await FallingEdge(dut.clk)
        en = int(dq_en.value)
        if en not in (0, (1 << len(dq_en)) - 1):
            raise SDRAMViolation(f"dq output enables split: {en:#x}")
        word = chip.edge(cke=_pin(dut, "sdram_cke"), cs_n=_pin(dut, "sdram_cs_n"),
                         ras_n=_pin(dut, "sdram_ras_n"), cas_n=_pin(dut, "sdram_cas_n"),
                         we_n=_pin(dut, "sdram_we_n"), ba=_pin(dut, "sdram_ba"),
                         a=_pin(dut, "sdram_a"), dq=int(dq_out.value) if en else None,
                         dm=_pin(dut, "sdram_dm"))
        if word is not None and en:
            raise SDRAMViolation(f"edge {chip.k}: controller and chip both drive dq")
        if word is not None:
            dq_in.value = word ^ int(stats["read_words"] == flip_read)
            stats["read_words"] += 1


async def watchdog(dut, chip: SDRAMChip, cycles: int) -> None:
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    raise AssertionError(f"timeout after {cycles} cycles; chip commands so far: {chip.counts}")


async def chip_ready(dut, stim: dict, timings: SDRAMTimings | None = None
                     ) -> tuple[SDRAMChip, dict, int]:
    """Start the clock (``stim["period_ns"]``), the chip model on the pins and the watchdog
    (``stim["timeout"]`` cycles), then wait for ``init_done``. Returns the chip, the count
    of words it has read out (``{"read_words": n}``, kept up to date) and the cycles the
    init took."""
    period = stim["period_ns"]
    chip = SDRAMChip(period, timings=timings) if timings is not None else SDRAMChip(period)
    dut.chip_dq.value = 0
    await start_clock(dut, period_ns=round(period))
    stats = {"read_words": 0}
    cocotb.start_soon(play_chip(dut, chip, stats))
    cocotb.start_soon(watchdog(dut, chip, stim["timeout"]))
    init_cycles = 0
    while not dut.init_done.value:
        await RisingEdge(dut.clk)
        init_cycles += 1
        assert init_cycles < stim["timeout"], "init_done never rose"
    return chip, stats, init_cycles


@cocotb.test()
async def sdram_path(dut):
    stim = load_stimulus()
    log_seed(stim)
    req = StreamDriver(dut, "port__req", stim["idle"]["req"])
    w = StreamDriver(dut, "port__w", stim["idle"]["w"])
    board = Scoreboard("r", list(stim["rdata"]))
    mon = StreamMonitor(dut, "port__r", stim["stall"], on_beat=board.check)
    chip, stats, init_cycles = await chip_ready(dut, stim,
                                                SDRAMTimings(**stim.get("timings", {})))

    # Writes, then reads under gaps and backpressure: every word checked as it arrives.
    await gather(req.send(stim["writes"]), w.send(stim["wdata"]))
    write_cycles = req.cycle
    await gather(req.send(stim["reads"]), mon.collect(len(stim["rdata"]), stim["timeout"]))

    # The same reads free flowing: cycles per burst and achieved bandwidth.
    fast_req = StreamDriver(dut, "port__req")
    fast_board = Scoreboard("r (free flowing)", list(stim["rdata"]))
    fast = StreamMonitor(dut, "port__r", on_beat=fast_board.check)
    await gather(fast_req.send(stim["reads"]), fast.collect(len(stim["rdata"]), stim["timeout"]))
    for _ in range(40):  # nothing more may come out
        await FallingEdge(dut.clk)
        assert not dut.port__r__valid.value, "extra read beat after the expected ones"

    lengths, k = [], 0
    max_burst, aw = stim["max_burst"], stim["addr_width"]
    for word in stim["reads"]:
        lengths.append(((word >> aw) & (max_burst - 1)) + 1)
    spans, latencies = [], []
    for req_cycle, beats in zip(fast_req.cycles, lengths, strict=True):
        first, last = fast.cycles[k], fast.cycles[k + beats - 1]
        latencies.append(first - req_cycle)
        spans.append(last - req_cycle + 1)
        k += beats
    save_result({
        "init_cycles": init_cycles,
        "write_cycles": write_cycles,
        "checked": board.checked + fast_board.checked,
        "burst_lengths": lengths,
        "burst_latency": latencies,
        "burst_cycles": spans,
        "read_cycles": fast.cycles[-1] - fast_req.cycles[0] + 1,
        "read_beats": len(stim["rdata"]),
        "chip_commands": chip.counts,
        "chip_read_words": stats["read_words"],
    })


@cocotb.test()
async def sdram_memtest(dut):
    """The board's MemTestCore: wait for done, report ok and the cycles taken."""
    stim = load_stimulus()
    period = stim["period_ns"]
    chip = SDRAMChip(period)
    dut.chip_dq.value = 0
    await start_clock(dut, period_ns=round(period))
    stats = {"read_words": 0}
    cocotb.start_soon(play_chip(dut, chip, stats, stim.get("flip_read")))
    cycles, init_cycles = 0, None
    while not dut.done.value:
        await RisingEdge(dut.clk)
        cycles += 1
        if init_cycles is None and dut.init_done.value:
            init_cycles = cycles
        assert cycles < stim["timeout"], f"MemTest not done after {cycles} cycles"
    save_result({"ok": bool(dut.ok.value), "init_cycles": init_cycles, "cycles": cycles,
                 "chip_commands": chip.counts, "chip_read_words": stats["read_words"]})


@cocotb.test()
async def sdram_engine(dut):
    """An external-weight engine through the controller (`sim.sdram_sim.EngineOnSDRAM`): the
    weights written through the host port, then the port given to the engine (``sel``), its
    images run free flowing (cycles measured from the cycle after ``sel`` rose) and again
    under input gaps and output stalls, every output beat checked."""
    stim = load_stimulus()
    log_seed(stim)
    dut.sel.value = 0
    dut.host__r__ready.value = 0
    chip, stats, init_cycles = await chip_ready(dut, stim)
    req = StreamDriver(dut, "host__req")
    w = StreamDriver(dut, "host__w")
    await gather(req.send(stim["writes"]), w.send(stim["wdata"]))
    write_cycles = req.cycle
    for _ in range(1000):  # the last words may still be on their way to the chip
        if chip.counts["WRITE"] >= len(stim["wdata"]):
            break
        await FallingEdge(dut.clk)
    assert chip.counts["WRITE"] == len(stim["wdata"]), \
        f"{chip.counts['WRITE']} SDRAM writes, not {len(stim['wdata'])}"
    await FallingEdge(dut.clk)
    dut.sel.value = 1  # the engine's first request may fire at the coming edge: cycle 0
    reads_before = stats["read_words"]

    passes = {}
    for name, idle, stall in (("free", {}, {}), ("gaps", stim["idle"], stim["stall"])):
        drivers = [StreamDriver(dut, n, idle.get(n, [])).send(stim["inputs"][n])
                   for n in stim["inputs"]]
        board = Scoreboard(f"o ({name})", list(stim["outputs"]["o"]))
        mon = StreamMonitor(dut, "o", stall.get("o", []), on_beat=board.check)
        await gather(*drivers, mon.collect(len(stim["outputs"]["o"]), stim["timeout"]))
        passes[name] = {"out_cycles": mon.cycles, "checked": board.checked,
                        "read_words": stats["read_words"] - reads_before}
        reads_before = stats["read_words"]
    save_result({
        "init_cycles": init_cycles, "write_cycles": write_cycles,
        "out_cycles": passes["free"]["out_cycles"], "cycles": passes["free"]["out_cycles"][-1],
        "gaps_cycles": passes["gaps"]["out_cycles"][-1],
        "checked": passes["free"]["checked"] + passes["gaps"]["checked"],
        "read_words": {k: v["read_words"] for k, v in passes.items()},
        "chip_commands": chip.counts,
    })


@cocotb.test()
async def sdram_loader(dut):
    """A WeightLoader fills the SDRAM from LOAD_WEIGHTS frames, then an engine reads its
    weights from there (`sim.loader_sim.LoadThenRun` around an `SDRAMController`): the
    stream ports driven and checked as in stream_block, the chip played alongside."""
    stim = load_stimulus()
    log_seed(stim)
    chip = SDRAMChip(stim["period_ns"])
    dut.chip_dq.value = 0
    stats = {"read_words": 0}
    result = await run_streams(dut, stim, background=(
        play_chip(dut, chip, stats), watchdog(dut, chip, stim["timeout"])))
    save_result({**result, "chip_commands": chip.counts, "chip_read_words": stats["read_words"]})


@cocotb.test()
async def sdram_uart_loader(dut):
    """`LoaderCore` (hwgen.targets.dram.uart_loader) over its UART pins: after init_done,
    each step's bytes go into ``rx`` bit by bit, back to back (a step of several frames is a
    host sending ahead); the step waits for its predicted number of reply bytes on ``tx``
    (decoded bit by bit) before the next; the chip model plays the SDRAM."""
    stim = load_stimulus()
    log_seed(stim)
    bit_ns = stim["divisor"] * round(stim["period_ns"])
    dut.rx.value = 1
    received: list[int] = []
    errors: list[str] = []
    # A board's SDRAM is ready long before a host sends.
    chip, stats, init_cycles = await chip_ready(dut, stim)
    cocotb.start_soon(decode_tx(dut, bit_ns, received, errors))
    step_cycles = []
    cycles = 0
    bad_stop = stim.get("bad_stop_at") or [None] * len(stim["steps"])
    for data, replies, bad in zip(stim["steps"], stim["reply_bytes"], bad_stop, strict=True):
        want = len(received) + replies
        await send_bytes(dut, data, bit_ns, bad)
        while len(received) < want:
            await ClockCycles(dut.clk, 16)
            cycles += 16
        step_cycles.append(cycles)
    await ClockCycles(dut.clk, 30 * stim["divisor"])  # nothing more may come out
    assert not errors, errors[0]
    save_result({"received": received, "chip_commands": chip.counts, "init_cycles": init_cycles,
                 "step_cycles": step_cycles, "chip_read_words": stats["read_words"]})


@cocotb.test()
async def sdram_board_session(dut):
    """The external-weight board core (`sim.loader_sim.BoardOnMemory` on an `SDRAMController`)
    through a host session over its UART pins (`host_session`: weights loaded, then images
    classified), the chip model playing the SDRAM; the session starts after init_done."""
    stim = load_stimulus()
    log_seed(stim)
    dut.rx.value = 1
    dut.button.value = 0
    chip, stats, init_cycles = await chip_ready(dut, stim)
    result = await host_session(dut, stim, round(stim["period_ns"]))
    save_result({**result, "chip_commands": chip.counts, "init_cycles": init_cycles,
                 "chip_read_words": stats["read_words"]})
