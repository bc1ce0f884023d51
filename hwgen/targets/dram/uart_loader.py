"""Weights into the ULX3S's SDRAM over its UART: `LoaderCore` (UartRx -> WeightLoader -> UartTx
on an `SDRAMController`) and `ULX3SLoaderTop`, a board top that does only that, so
`hwgen run --load-weights FILE --verify-weights --images 0` can fill and check the SDRAM of
a real board (docs/protocol.md, "Loading weights"; docs/hardware.md).
"""

from __future__ import annotations

from amaranth import Elaboratable, Module
from amaranth.hdl import unsigned
from amaranth.lib import io, wiring
from amaranth.lib.wiring import In, Out

from hwgen.targets.dram.board import drive_sdram_pins, ulx3s_clock_and_sdram
from hwgen.targets.dram.controller import SDRAMController
from hwgen.targets.dram.litedram_core import Generated
from rtl_templates.common import check_int
from rtl_templates.plumbing import StreamFIFO
from rtl_templates.uart import UartRx, UartTx, baud_divisor
from rtl_templates.weight_loader import WeightLoader

GAP_BYTES = 3  # the loader's quiet gap, at least this many byte times


class LoaderCore(wiring.Component):
    """`WeightLoader` between a `UartRx` and a `UartTx`, writing and reading an
    `SDRAMController`: the board's logic with plain ports (``rx``, ``tx``, ``init_done``,
    the SDRAM pins), which the simulation runs.

    Parameters: ``generated`` (the LiteDRAM core), ``divisor`` (clock cycles per UART bit),
    ``gap`` (the loader's quiet gap in cycles; at least three byte times), ``frame_words``,
    ``max_burst``, ``rx_fifo`` (bytes of a FIFO between the UartRx and the loader, >= 2),
    ``dq`` (as `SDRAMController`). Frames that arrive before ``init_done`` wait in the
    loader (its requests wait for the controller).

    The receive FIFO holds the bytes that arrive while the loader writes a frame and sends
    its reply, so the host may send the next frame before that reply (one frame ahead:
    `hwgen run --frames-ahead 1`) and pays no USB turnaround per frame; it needs
    ``rx_fifo`` above the bytes of one write-out plus one reply (ULX3S, 2 Mbaud, 1024-word
    frames: about 4.4 cycles per word through LiteDRAM, 4,500 cycles = 18 byte times, plus
    the 6 reply bytes). A full FIFO drops bytes in the UartRx (an overrun: ERR_UART).
    """

    def __init__(self, generated: Generated, *, divisor: int, gap: int, frame_words: int = 1024,
                 max_burst: int = 64, rx_fifo: int = 64, dq: io.IOPort | None = None):
        self.divisor = check_int("divisor", divisor, 4)
        self.rx_fifo = check_int("rx_fifo", rx_fifo, 2)
        self.generated = generated
        self.ctrl = SDRAMController(generated, dq=dq, max_burst=max_burst)
        sig = self.ctrl.port_signature
        self.loader = WeightLoader(addr_width=sig.addr_width, data_width=sig.data_width,
                                   max_burst=max_burst, frame_words=frame_words,
                                   gap=max(gap, GAP_BYTES * 10 * divisor))
        members = {"rx": In(1, init=1), "tx": Out(1, init=1), "init_done": Out(1)}
        members.update({p: Out(w) for p, w in self.ctrl.pins.items()})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        ctrl, loader = self.ctrl, self.loader
        m.submodules.ctrl, m.submodules.loader = ctrl, loader
        m.submodules.uart_rx = urx = UartRx(self.divisor)
        m.submodules.uart_tx = utx = UartTx(self.divisor)
        m.submodules.rx_fifo = fifo = StreamFIFO(unsigned(8), self.rx_fifo)
        wiring.connect(m, urx.o, fifo.i)
        wiring.connect(m, fifo.o, loader.i)
        wiring.connect(m, loader.o, utx.i)
        wiring.connect(m, loader.mem, ctrl.port)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx),
                     loader.frame_error.eq(urx.frame_error), loader.overrun.eq(urx.overrun),
                     self.init_done.eq(ctrl.init_done)]
        m.d.comb += [getattr(self, p).eq(getattr(ctrl, p)) for p in ctrl.pins]
        return m


class ULX3SLoaderTop(Elaboratable):
    """`LoaderCore` on an amaranth-boards ULX3S platform: 50 MHz from the PLL, ``uart`` 0 (the
    FT231X), the SDRAM; LED 0 shows init done. ``baud`` (default 2,000,000: 25 cycles per
    bit at 50 MHz; 3 Mbaud cannot be made within 1 %), ``timeout_s`` (the loader's gap,
    default 20 ms as the board top's), ``frame_words`` (default 1024: 1024 x 16 bits is one DP16KD block RAM; long
    frames amortise the host's USB turnaround)."""

    def __init__(self, generated: Generated, *, baud: int = 2_000_000, timeout_s: float = 0.02,
                 frame_words: int = 1024, max_burst: int = 64):
        if generated.config.sys_clk_freq != 50e6:
            raise ValueError(f"the PLL makes 50 MHz; the controller was generated for "
                             f"{generated.config.sys_clk_freq / 1e6:g} MHz")
        self.generated, self.frame_words, self.max_burst = generated, frame_words, max_burst
        self.divisor = baud_divisor(50e6, baud)
        self.gap = round(timeout_s * 50e6)

    def elaborate(self, platform):
        m = Module()
        sdram = ulx3s_clock_and_sdram(m, platform)
        m.submodules.core = core = LoaderCore(self.generated, divisor=self.divisor, gap=self.gap,
                                              frame_words=self.frame_words,
                                              max_burst=self.max_burst, dq=sdram.dq.io)
        drive_sdram_pins(m, sdram, core)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buffer = rx = io.Buffer("i", uart.rx)
        m.submodules.tx_buffer = tx = io.Buffer("o", uart.tx)
        m.d.comb += [core.rx.eq(rx.i), tx.o.eq(core.tx)]
        m.submodules.led0 = led = io.Buffer("o", platform.request("led", 0, dir="-"))
        m.d.comb += led.o.eq(core.init_done)
        return m
