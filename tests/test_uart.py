"""UartTx / UartRx: parameter checks, estimates, and cocotb bit-level checks on both simulators
(the tx pin decoded here bit by bit; the rx pin driven at nominal and +-2 % baud)."""

from __future__ import annotations

import bisect
import random

import pytest
from amaranth import Module, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from rtl_templates.common import Resources
from rtl_templates.uart import UartRx, UartTx, baud_divisor
from sim.block_sim import make_pattern
from sim.runner import run_cocotb, simulator_missing_reason, verilog_of

DIVISOR = 7  # odd, so the half-bit wait rounds; small, so the runs are short
PERIOD_PS = 10_000  # sim/cocotb_tests/uart.py's clock
SIMULATORS = ["verilator", "icarus"]


class UartPair(wiring.Component):
    """Test harness: a UartTx and a UartRx side by side in one design (one simulator build)."""

    def __init__(self, divisor: int):
        self.divisor = divisor
        byte = stream.Signature(unsigned(8))
        super().__init__({"i": In(byte), "tx": Out(1, init=1), "rx": In(1, init=1),
                          "o": Out(byte), "frame_error": Out(1), "overrun": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.utx = utx = UartTx(self.divisor)
        m.submodules.urx = urx = UartRx(self.divisor)
        wiring.connect(m, wiring.flipped(self.i), utx.i)
        wiring.connect(m, urx.o, wiring.flipped(self.o))
        m.d.comb += [self.tx.eq(utx.tx), urx.rx.eq(self.rx),
                     self.frame_error.eq(urx.frame_error), self.overrun.eq(urx.overrun)]
        return m


def _sim(simulator: str) -> str:
    reason = simulator_missing_reason(simulator)
    if reason:
        pytest.skip(reason)
    return simulator


def _run(testcase: str, stimulus: dict, simulator: str, divisor: int = DIVISOR):
    return run_cocotb(verilog_of(UartPair(divisor)), "sim.cocotb_tests.uart",
                      {"divisor": divisor, **stimulus}, simulator=simulator, testcase=testcase,
                      tag=f"uart{divisor}")


def decode_tx(edges: list[list[int]], divisor: int) -> list[tuple[int, int]]:
    """(start cycle, byte) of every 8N1 frame in a pin's edge list [[cycle, level], ...].

    Strict: the line idles high, every edge inside a frame falls on a bit
    boundary, and the stop bit is high for its whole bit time."""
    assert edges[0][1] == 1, "tx: line not high after reset"
    times = [c for c, _ in edges]

    def level_at(cycle: int) -> int:
        return edges[bisect.bisect_right(times, cycle) - 1][1]

    frames = []
    k = 1
    while k < len(edges):
        start, level = edges[k]
        assert level == 0, f"tx: line rose at cycle {start} while idle"
        end = start + 10 * divisor
        for c, _ in edges[k:]:
            if c >= end:
                break
            assert (c - start) % divisor == 0, f"tx: edge at cycle {c}, inside a bit of the frame at {start}"
        bits = [level_at(start + b * divisor) for b in range(10)]
        assert bits[0] == 0 and bits[9] == 1, f"tx: frame at {start}: bad start/stop bits {bits}"
        frames.append((start, sum(bit << b for b, bit in enumerate(bits[1:9]))))
        k = bisect.bisect_left(times, end)
    return frames


def test_parameters_are_checked():
    for bad in (3, 0, 4.0, "8", True):
        with pytest.raises(TypeError, match=r"divisor must be an integer >= 4, not"):
            UartTx(bad)
        with pytest.raises(TypeError, match=r"divisor must be an integer >= 4, not"):
            UartRx(bad)
    with pytest.raises(ValueError, match="family must be one of ice40, ecp5, not 'xc7'"):
        _estimate_only(UartTx(8)).resources("xc7")


def test_baud_divisor():
    assert baud_divisor(12e6, 115200) == 104  # iCEBreaker: 0.16 % off
    assert baud_divisor(25e6, 115200) == 217
    with pytest.raises(ValueError, match="off by"):
        baud_divisor(1e6, 115200)  # 8.68 cycles -> 9: 3.5 % off
    with pytest.raises(ValueError, match=">= 4"):
        baud_divisor(300e3, 115200)


def _estimate_only(component):
    component._MustUse__silence = True  # built for its estimate, never elaborated
    return component


def test_resource_estimates_grow_with_the_divisor():
    small = _estimate_only(UartRx(4)).resources("ice40")
    large = _estimate_only(UartRx(1000)).resources("ice40")
    assert isinstance(small, Resources) and large.ff > small.ff and large.lut > small.lut
    assert small.dsp == 0 and small.memories == ()


@pytest.mark.parametrize("family", ["ice40", "ecp5"])
@pytest.mark.parametrize("cls", [UartTx, UartRx])
def test_estimate_matches_synthesis(cls, family):
    """FFs exact; LUTs within 15 % of Yosys (2 s per case cold, cached after)."""
    from hwgen.targets.synth import ToolMissing, synth_stats

    try:
        got = synth_stats(cls(104), family)
    except ToolMissing as e:
        pytest.skip(str(e))
    est = _estimate_only(cls(104)).resources(family)
    assert est.ff == got.ff
    assert abs(est.lut - got.lut) <= 0.15 * got.lut, (est, got)


def _tx_stimulus(seed: int, count: int) -> dict:
    rng = random.Random(seed)
    data = [rng.randrange(256) for _ in range(count)] + [0x00, 0xFF, 0x55, 0xAA]
    return {"seed": seed, "bytes": data, "idle": make_pattern(rng, 0.6),
            "stall": make_pattern(rng, 0.5),
            "gapless_from": count - 8, "timeout": 20 * 10 * DIVISOR * len(data)}


@pytest.mark.sim
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_tx_bit_level_and_loopback(simulator):
    _sim(simulator)
    stim = _tx_stimulus(seed=11, count=40)
    res = _run("uart_tx_loopback", stim, simulator).data
    frames = decode_tx(res["edges"], DIVISOR)
    assert [b for _, b in frames] == stim["bytes"]
    starts = [s for s, _ in frames]
    # Latency: the start bit begins on the clock edge that takes the byte.
    assert starts == res["accepted"]
    # Throughput: one frame per 10 * divisor cycles, back to back once gaps stop.
    assert min(b - a for a, b in zip(starts, starts[1:], strict=False)) >= 10 * DIVISOR
    tail = starts[stim["gapless_from"]:]
    assert all(b - a == 10 * DIVISOR for a, b in zip(tail, tail[1:], strict=False))
    assert res["received"] == stim["bytes"]
    assert res["frame_error"] == [] and res["overrun"] == []


def _frame(rng: random.Random, bit_ps: int, byte: int | None = None, stop: int = 1) -> dict:
    # Half the frames back to back, the rest after up to 3 bit times of idle.
    idle = 0 if rng.random() < 0.5 else rng.randrange(1, 3 * bit_ps)
    return {"byte": rng.randrange(256) if byte is None else byte, "stop": stop,
            "bit_ps": bit_ps, "idle_ps": idle}


def _rx_stimulus(seed: int, per_rate: int) -> dict:
    rng = random.Random(seed)
    nominal = DIVISOR * PERIOD_PS
    frames: list[dict] = [{"glitch_ps": nominal // 4, "idle_ps": nominal}]  # too short: ignored
    expected: list[int] = []
    for scale in (1.0, 1.02, 0.98):
        bit_ps = round(nominal * scale)
        for j in range(per_rate):
            f = _frame(rng, bit_ps, byte=(0x00, 0xFF)[j] if j < 2 else None)
            frames.append(f)
            expected.append(f["byte"])
        bad = _frame(rng, bit_ps, stop=0)
        frames.append(bad)  # dropped with a frame error ...
        frames.append({**_frame(rng, bit_ps), "idle_ps": bit_ps})  # ... and the next is received
        expected.append(frames[-1]["byte"])
    return {"seed": seed, "frames": frames, "expected": expected, "stall": make_pattern(rng, 0.5),
            "bad_frames": 3, "timeout": 20 * 10 * DIVISOR * len(frames)}


@pytest.mark.sim
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_rx_at_nominal_and_mismatched_baud(simulator):
    _sim(simulator)
    stim = _rx_stimulus(seed=5, per_rate=30)
    res = _run("uart_rx_frames", stim, simulator).data
    assert res["received"] == stim["expected"]
    assert len(res["frame_error"]) == stim["bad_frames"]
    assert res["overrun"] == []


@pytest.mark.sim
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_rx_overrun_drops_new_bytes(simulator):
    _sim(simulator)
    stim = {"seed": 3, "bytes": [0xA5, 0x3C, 0xFF, 0x81], "bit_ps": DIVISOR * PERIOD_PS}
    res = _run("uart_rx_overrun", stim, simulator).data
    assert res["held"] == 0xA5
    assert res["overruns_while_full"] == 2
    assert res["after"] == [0x81]
    assert len(res["overrun"]) == 2 and res["frame_error"] == []


def test_decoder_rejects_a_misplaced_edge():
    assert decode_tx([[0, 1], [5, 0], [5 + 4 * 3, 1]], 4) == [(5, 0b11111100)]
    with pytest.raises(AssertionError, match="inside a bit"):
        decode_tx([[0, 1], [5, 0], [5 + 4 * 3 + 1, 1]], 4)
