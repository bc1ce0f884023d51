"""The external-weight accelerator on the ULX3S: `BoardCore` (the classifier and the weight
loader on one UART) with its memory port on the SDRAM controller (LiteDRAM), 50 MHz from
the PLL. `hwgen build --weights external --board ulx3s-85f` builds it and writes the
weights' memory image beside the bitstream, for `hwgen run --load-weights`
(docs/hardware.md, "The external-weight board top").
"""

from __future__ import annotations

import dataclasses

from amaranth import Elaboratable, Module
from amaranth.lib import wiring

from hwgen.targets.board_top import (
    DEFAULT_TIMEOUT_S,
    MIN_GAP_BYTES,
    BoardCore,
    connect_link_pins,
    request_leds,
)
from hwgen.targets.dram.board import drive_sdram_pins, ulx3s_clock_and_sdram
from hwgen.targets.dram.controller import SDRAMController
from hwgen.targets.dram.litedram_core import CORE_NAME, Generated, SDRAMConfig
from rtl_templates.uart import baud_divisor

CLOCK_HZ = 50e6  # the PLL's system clock, the controller's
DEFAULT_BAUD = 2_000_000  # 25 cycles a bit at 50 MHz: weights load at ~190 kB/s


def board_body(plan, config: SDRAMConfig | None = None):
    """`plan` with its body engine's memory port leaving the accelerator (word addresses
    of the SDRAM's width, `config` default the ULX3S's) instead of the memory-port model
    inside: the board build's."""
    config = config or SDRAMConfig()
    return dataclasses.replace(plan, body=dataclasses.replace(plan.body,
                                                              addr_bits=config.addr_width))


class ULX3SExternalTop(Elaboratable):
    """`BoardCore` of an external-weight `graph` (its body's port leaving the accelerator,
    `board_body`) on an amaranth-boards ULX3S platform, with the `SDRAMController` of
    `generated` on that port.

    Parameters: ``baud`` (default 2,000,000; 3 Mbaud cannot be made from 50 MHz within
    1 %), ``timeout_s`` (the link's quiet gap), ``selftest_image``, ``frame_words``
    (the most words a LOAD_WEIGHTS frame may carry: 1024 x 16 bits is one DP16KD).
    Pins: ``clk25`` (the PLL's input), the SDRAM, ``uart`` 0, every LED, ``button`` 0.
    ``extra_files`` is the LiteDRAM Verilog the platform build must add.
    """

    def __init__(self, graph, generated: Generated, *, baud: int = DEFAULT_BAUD,
                 timeout_s: float = DEFAULT_TIMEOUT_S, selftest_image=None,
                 frame_words: int = 1024):
        if generated.config.sys_clk_freq != CLOCK_HZ:
            raise ValueError(f"the PLL makes 50 MHz; the controller was generated for "
                             f"{generated.config.sys_clk_freq / 1e6:g} MHz")
        self.graph, self.generated = graph, generated
        self.divisor = baud_divisor(CLOCK_HZ, baud)
        self.gap = max(round(timeout_s * CLOCK_HZ), MIN_GAP_BYTES * 10 * self.divisor)
        self.selftest_image, self.frame_words = selftest_image, frame_words
        self.extra_files = {f"{CORE_NAME}.v": generated.verilog}
        self.core: BoardCore | None = None

    def elaborate(self, platform):
        if platform is None:
            raise ValueError("ULX3SExternalTop needs an amaranth-boards ULX3S platform")
        m = Module()
        sdram = ulx3s_clock_and_sdram(m, platform)
        leds = request_leds(platform)
        self.core = core = BoardCore(self.graph, divisor=self.divisor, gap=self.gap,
                                     leds=len(leds), selftest_image=self.selftest_image,
                                     frame_words=self.frame_words)
        if not core.external:
            raise ValueError("the graph's body has no memory port leaving it (board_body)")
        sig = core.mem.signature
        m.submodules.core = core
        m.submodules.ctrl = ctrl = SDRAMController(self.generated, dq=sdram.dq.io,
                                                   max_burst=sig.max_burst)
        wiring.connect(m, core.mem, ctrl.port)
        drive_sdram_pins(m, sdram, ctrl)
        connect_link_pins(m, platform, core, leds)
        return m
