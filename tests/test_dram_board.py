"""The ULX3S SDRAM self-test: MemTest against MemPortRAM in Amaranth's simulator (it passes, and a
corrupted memory makes it fail), and the board top elaborating for the ULX3S-85F platform."""

import pytest
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.sim import Simulator

from hwgen.targets.dram.board import MemTest, memtest_word
from rtl_templates.memport import MemPortRAM


def _run_memtest(words: int, corrupt: int | None = None) -> tuple[bool, int]:
    """MemTest on a MemPortRAM; with `corrupt`, read beat number `corrupt` gets a bit flipped
    on its way back."""
    ram = MemPortRAM(data_width=16, depth=256, max_burst=16, latency=5, interval=1,
                     refresh_period=61, refresh_cycles=4)
    test = MemTest(ram.port_signature, words)
    m = Module()
    m.submodules.ram, m.submodules.test = ram, test
    for name in ("req", "w"):
        wiring.connect(m, getattr(test.port, name), getattr(ram, name))
    beat = Signal(16)
    flip = (beat == corrupt) if corrupt is not None else 0
    m.d.comb += [test.port.r.valid.eq(ram.r.valid), ram.r.ready.eq(test.port.r.ready),
                 test.port.r.payload.eq(ram.r.payload ^ flip)]
    with m.If(ram.r.valid & ram.r.ready):
        m.d.sync += beat.eq(beat + 1)
    result = {}

    async def bench(ctx):
        ctx.set(test.start, 1)
        for cycle in range(20 * words):
            await ctx.tick()
            if ctx.get(test.done):
                result["ok"], result["cycles"] = bool(ctx.get(test.ok)), cycle
                return
        raise AssertionError("MemTest did not finish")

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return result["ok"], result["cycles"]


def test_memtest_passes_on_a_good_memory_and_fails_on_a_corrupted_word():
    ok, cycles = _run_memtest(64)
    assert ok and cycles > 2 * 64
    ok, _ = _run_memtest(64, corrupt=37)
    assert not ok


def test_memtest_pattern_twin():
    assert memtest_word(0, 16) == 0xA5C3
    assert memtest_word(0x1234, 16) == (0x1234 ^ (0x1234 >> 7) ^ 0xA5C3) & 0xFFFF


def test_ulx3s_memtest_top_elaborates_with_pll_ddr_clock_and_litedram(tmp_path):
    from hwgen.targets.dram.litedram_core import CORE_NAME, generate, missing_reason

    if missing_reason():
        pytest.skip(missing_reason())
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    from hwgen.targets.dram.board import ULX3SMemTestTop

    generated = generate(cache_root=tmp_path)
    platform = ULX3S_85F_Platform()
    platform.add_file(f"{CORE_NAME}.v", generated.verilog)
    plan = platform.build(ULX3SMemTestTop(generated), name="top", do_build=False)
    text = plan.files["top.il"] if "top.il" in plan.files else plan.files["top.v"]
    for cell in ("EHXPLLL", CORE_NAME, "ODDRX1F"):
        assert cell in text, cell
    assert "litedram_core.v" in plan.files


def test_ulx3s_loader_top_elaborates_with_uart_pll_and_litedram(tmp_path):
    """The weight-loader board top (hwgen/targets/dram/uart_loader.py) for the ULX3S-85F:
    the PLL, LiteDRAM, the UART at 2 Mbaud (25 cycles per bit) and the loader's buffer."""
    from hwgen.targets.dram.litedram_core import CORE_NAME, generate, missing_reason

    if missing_reason():
        pytest.skip(missing_reason())
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    from hwgen.targets.dram.uart_loader import ULX3SLoaderTop

    generated = generate(cache_root=tmp_path)
    top = ULX3SLoaderTop(generated)
    assert top.divisor == 25 and top.gap == 1_000_000
    platform = ULX3S_85F_Platform()
    platform.add_file(f"{CORE_NAME}.v", generated.verilog)
    plan = platform.build(top, name="top", do_build=False)
    text = plan.files["top.il"] if "top.il" in plan.files else plan.files["top.v"]
    for cell in ("EHXPLLL", CORE_NAME, "ODDRX1F", "uart_rx", "loader"):
        assert cell in text, cell
    with pytest.raises(ValueError, match="off by"):
        ULX3SLoaderTop(generated, baud=3_000_000)
