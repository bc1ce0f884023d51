"""cocotb test of a whole accelerator: images in, results out, layer taps checked by signature.

Images are driven one at a time; the design runs free between handshakes (the
driver wakes only on ready changes), so Python does little per cycle. After
each image every tap's beat count and signature are compared with the golden
model's; on a difference the Python side replays up to that image recording
every tap beat by beat, to find the first differing beat. With idle/stall
patterns given, the per-cycle driver and monitor are used instead (results
must not change, only cycles).
"""

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import (
    ClockCycles,
    Edge,
    FallingEdge,
    ReadOnly,
    RisingEdge,
    SimTimeoutError,
    with_timeout,
)

from sim.streams import StreamDriver, StreamMonitor, load_stimulus, save_result


async def _send_fast(dut, words, first):
    """Drive words one per cycle where ready allows; first[0] = `cycle` at the first fire."""
    for k, w in enumerate(words):
        await FallingEdge(dut.clk)
        dut.i__valid.value = 1
        dut.i__payload.value = int(w)
        await ReadOnly()
        while not dut.i__ready.value:
            await Edge(dut.i__ready)
            await FallingEdge(dut.clk)
            await ReadOnly()
        if k == 0:
            first[0] = dut.cycle.value.to_unsigned()
    await FallingEdge(dut.clk)
    dut.i__valid.value = 0


async def _receive_fast(dut, timeout):
    await FallingEdge(dut.clk)
    dut.o__ready.value = 1
    start = dut.cycle.value.to_unsigned()
    await ReadOnly()
    while not dut.o__valid.value:
        await Edge(dut.o__valid)
        await FallingEdge(dut.clk)
        await ReadOnly()
        if dut.cycle.value.to_unsigned() - start > timeout:
            raise AssertionError(f"timeout: no result after {timeout} cycles")
    word = dut.o__payload.value.to_unsigned()
    cycle = dut.cycle.value.to_unsigned()
    await FallingEdge(dut.clk)
    dut.o__ready.value = 0
    return word, cycle


async def _collect_results(dut, n, timeout, out):
    """Keep `o` ready and note each of `n` result beats as (word, `cycle` at its fire).

    Sampled at falling edges: a valid seen there fires at the next rising edge."""
    await FallingEdge(dut.clk)
    dut.o__ready.value = 1
    last = dut.cycle.value.to_unsigned()
    while len(out) < n:
        await ReadOnly()
        now = dut.cycle.value.to_unsigned()
        if dut.o__valid.value:
            out.append((dut.o__payload.value.to_unsigned(), now))
            last = now
            await RisingEdge(dut.clk)
        elif now - last > timeout:
            raise AssertionError(f"timeout: no result after {timeout} cycles")
        else:
            await Edge(dut.o__valid)
        await FallingEdge(dut.clk)


async def _stream(dut, stim, n_taps):
    """All images back to back from reset: the next image's pixels enter while the previous
    one drains. Returns the results, each result's cycle counted from the first input beat
    (cycle 1), and every tap's (count, signature) after the last image."""
    words = [w for image in stim["images"] for w in image]
    n = len(stim["images"])
    first = [0]
    got = []
    send = cocotb.start_soon(_send_fast(dut, words, first))
    try:
        await with_timeout(_collect_results(dut, n, stim["timeout"], got),
                           stim["timeout"] * 10 * n, "ns")
    except SimTimeoutError:
        raise AssertionError(f"stream of {n} images: {len(got)} results within the timeout "
                             f"(a deadlock or a lost beat)") from None
    await send
    await ClockCycles(dut.clk, 2)
    dut.o__ready.value = 0
    state = [[getattr(dut, f"t{k}_count").value.to_unsigned(),
              getattr(dut, f"t{k}_sig").value.to_unsigned()] for k in range(n_taps)]
    return [w for w, _ in got], [c - first[0] + 1 for _, c in got], state


async def _record_tap(dut, idx, out, stop):
    fire = getattr(dut, f"t{idx}_fire")
    payload = getattr(dut, f"t{idx}_payload")
    while not stop[0]:
        await RisingEdge(dut.clk)
        await ReadOnly()
        if fire.value:
            out.append(payload.value.to_unsigned())


@cocotb.test()
async def accelerator(dut):
    stim = load_stimulus()
    cocotb.log.info(f"hwgen: random seed {int(stim.get('seed', 0))}")
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    dut.tap_arm.value = 0
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    taps = stim["taps"]  # [{name, width}], index = port number
    idle, stall = stim.get("idle", []), stim.get("stall", [])
    slow = bool(idle or stall)
    results, cycles, tap_state, spans, first_bad = [], [], [], [], None
    for n, image in enumerate(stim["images"]):
        await FallingEdge(dut.clk)
        dut.tap_arm.value = 1  # every tap notes its first beat of this image
        await RisingEdge(dut.clk)
        dut.tap_arm.value = 0
        await FallingEdge(dut.clk)
        recorders, recorded, stop = [], {}, [False]
        debug = stim.get("record_taps_of_image") == n
        if debug:
            for k in range(len(taps)):
                recorded[k] = []
                recorders.append(cocotb.start_soon(_record_tap(dut, k, recorded[k], stop)))
        if slow:
            drv = StreamDriver(dut, "i", idle)
            mon = StreamMonitor(dut, "o", stall)
            send = cocotb.start_soon(drv.send(image))
            words = await mon.collect(1, stim["timeout"])
            await send
            # Both count cycles from the same falling edge.
            word, measured = words[0], mon.cycles[0] - drv.cycles[0] + 1
        else:
            first = [0]
            send = cocotb.start_soon(_send_fast(dut, image, first))
            try:
                word, last = await with_timeout(_receive_fast(dut, stim["timeout"]),
                                                stim["timeout"] * 10, "ns")
            except SimTimeoutError:
                raise AssertionError(f"image {n}: no result within {stim['timeout']} cycles "
                                     f"(a deadlock or a lost beat)") from None
            await send
            measured = last - first[0] + 1
            # Each tap's first and last beat of the image, counted like `measured` (the
            # image's first input beat is cycle 1).
            spans.append([[getattr(dut, f"t{k}_{end}").value.to_unsigned() - first[0] + 1
                           for end in ("first", "last")] for k in range(len(taps))])
        await ClockCycles(dut.clk, 2)
        stop[0] = True
        results.append(word)
        cycles.append(measured)  # first input fire .. result fire, both included
        state = [[getattr(dut, f"t{k}_count").value.to_unsigned(),
                  getattr(dut, f"t{k}_sig").value.to_unsigned()] for k in range(len(taps))]
        tap_state.append(state)
        exp = stim.get("expected")
        if exp is not None and first_bad is None and (
                word != exp["results"][n] or state != exp["taps"][n]):
            first_bad = n
        if debug:
            save_result({"results": results, "cycles": cycles, "taps": tap_state,
                         "recorded": {taps[k]["name"]: v for k, v in recorded.items()}})
            return
        if first_bad is not None and stim.get("stop_at_mismatch", True):
            break
    out = {"results": results, "cycles": cycles, "taps": tap_state, "first_bad": first_bad,
           "spans": spans if not slow else None}
    if stim.get("stream") and stim.get("stream_images"):
        # Then, from a fresh reset, every image back to back (hwgen sim's throughput run).
        dut.rst.value = 1
        await ClockCycles(dut.clk, 2)
        dut.rst.value = 0
        sub = dict(stim, images=stim["stream_images"])
        s_results, s_cycles, s_state = await _stream(dut, sub, len(taps))
        out["stream"] = {"results": s_results, "cycles": s_cycles, "taps": s_state}
    save_result(out)
