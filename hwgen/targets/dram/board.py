"""The SDRAM controller on the ULX3S: a memory self-test top, for resources, Fmax and the board.

`MemTest` writes a pattern through a memory port, reads it back and compares;
`ULX3SMemTestTop` puts it with `SDRAMController` on the board: a PLL makes the 50 MHz
system clock from the 25 MHz oscillator, the SDRAM clock is that clock inverted (a
DDR output of 0, 1: the chip samples mid-cycle, as the chip model assumes), the
LEDs show init done, pass and fail.
"""

from __future__ import annotations

from amaranth import ClockDomain, ClockSignal, Elaboratable, Module, Signal
from amaranth.hdl import Instance
from amaranth.lib import io, wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

from hwgen.targets.dram.controller import SDRAMController
from hwgen.targets.dram.litedram_core import Generated
from rtl_templates.common import check_int
from rtl_templates.memport import MemPortSignature


def memtest_word(addr: int, width: int) -> int:
    """The pattern `MemTest` writes at word `addr` (its software twin)."""
    mask = (1 << width) - 1
    return (addr ^ (addr >> 7) ^ 0xA5C3) & mask


class MemTest(wiring.Component):
    """Writes `words` words (bursts of ``max_burst``) from address 0, reads them back, compares.

    Ports: ``port`` (initiator side of ``signature``), ``start`` (in), ``done``, ``ok``
    (out: set when the read-back finished; ``ok`` when every word matched).
    """

    def __init__(self, signature: MemPortSignature, words: int):
        self.words = check_int("words", words)
        if words % signature.max_burst:
            raise ValueError(f"words must be a multiple of max_burst ({signature.max_burst}), "
                             f"not {words!r}")
        self.port_signature = signature
        super().__init__({"port": Out(signature), "start": In(1), "done": Out(1), "ok": Out(1)})

    def elaborate(self, platform):
        m = Module()
        sig, port = self.port_signature, self.port
        nb = sig.max_burst
        req_addr = Signal(sig.addr_width)
        waddr = Signal(sig.addr_width)
        raddr = Signal(sig.addr_width)
        write = Signal()
        bad = Signal()
        m.d.comb += [port.req.payload.addr.eq(req_addr), port.req.payload.count.eq(nb - 1),
                     port.req.payload.write.eq(write),
                     port.w.payload.eq(waddr ^ (waddr >> 7) ^ 0xA5C3),
                     self.ok.eq(self.done & ~bad)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [write.eq(1), req_addr.eq(0)]
                    m.next = "WRITE"
            with m.State("WRITE"):
                m.d.comb += [port.req.valid.eq(req_addr < self.words), port.w.valid.eq(1)]
                with m.If(port.req.valid & port.req.ready):
                    m.d.sync += req_addr.eq(req_addr + nb)
                with m.If(port.w.valid & port.w.ready):
                    m.d.sync += waddr.eq(waddr + 1)
                    with m.If(waddr == self.words - 1):
                        m.d.sync += [write.eq(0), req_addr.eq(0)]
                        m.next = "READ"
            with m.State("READ"):
                m.d.comb += [port.req.valid.eq(req_addr < self.words), port.r.ready.eq(1)]
                with m.If(port.req.valid & port.req.ready):
                    m.d.sync += req_addr.eq(req_addr + nb)
                with m.If(port.r.valid):
                    m.d.sync += raddr.eq(raddr + 1)
                    with m.If(port.r.payload != (raddr ^ (raddr >> 7) ^ 0xA5C3)[:sig.data_width]):
                        m.d.sync += bad.eq(1)
                    with m.If(raddr == self.words - 1):
                        m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
        return m


class MemTestCore(wiring.Component):
    """`SDRAMController` with `MemTest` started by ``init_done``: the board's logic with plain
    ports (the SDRAM pins, ``init_done``, ``done``, ``ok``), which the simulation runs.

    Parameters: ``generated``, ``words``, ``max_burst``, ``dq`` (as `SDRAMController`).
    """

    def __init__(self, generated: Generated, *, words: int, max_burst: int = 64,
                 dq: io.IOPort | None = None):
        self.ctrl = SDRAMController(generated, dq=dq, max_burst=max_burst)
        self.test = MemTest(self.ctrl.port_signature, words)
        self.generated = generated
        members = {"init_done": Out(1), "done": Out(1), "ok": Out(1)}
        members.update({p: Out(w) for p, w in self.ctrl.pins.items()})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        ctrl, test = self.ctrl, self.test
        m.submodules.ctrl, m.submodules.test = ctrl, test
        wiring.connect(m, test.port, ctrl.port)
        m.d.comb += [test.start.eq(ctrl.init_done), self.init_done.eq(ctrl.init_done),
                     self.done.eq(test.done), self.ok.eq(test.ok)]
        m.d.comb += [getattr(self, p).eq(getattr(ctrl, p)) for p in ctrl.pins]
        return m


class ULX3SMemTestTop(Elaboratable):
    """The controller and `MemTest` on an amaranth-boards ULX3S platform (50 MHz from the PLL).

    LEDs: 0 init done, 1 test finished, 2 pass, 3 fail.
    """

    def __init__(self, generated: Generated, *, words: int = 1 << 16, max_burst: int = 64):
        if generated.config.sys_clk_freq != 50e6:
            raise ValueError(f"the PLL makes 50 MHz; the controller was generated for "
                             f"{generated.config.sys_clk_freq / 1e6:g} MHz")
        self.generated, self.words, self.max_burst = generated, words, max_burst

    def elaborate(self, platform):
        m = Module()
        sdram = ulx3s_clock_and_sdram(m, platform)
        m.submodules.core = core = MemTestCore(self.generated, words=self.words,
                                               max_burst=self.max_burst, dq=sdram.dq.io)
        drive_sdram_pins(m, sdram, core)
        shown = [core.init_done, core.done, core.ok, core.done & ~core.ok]
        for k, value in enumerate(shown):
            m.submodules[f"led{k}"] = led = io.Buffer("o", platform.request("led", k, dir="-"))
            m.d.comb += led.o.eq(value)
        return m


def ulx3s_clock_and_sdram(m: Module, platform):
    """The ULX3S's 50 MHz ``sync`` domain (EHXPLLL from the 25 MHz oscillator, reset until
    it locks); returns the requested ``sdram`` resource (its dq goes to the controller)."""
    m.submodules.clk25 = clk25 = io.Buffer("i", platform.request("clk25", 0, dir="-"))
    m.domains.sync = ClockDomain("sync")
    locked = Signal()
    clk50 = Signal()
    m.d.comb += ClockSignal("sync").eq(clk50)
    m.submodules.reset = ResetSynchronizer(~locked, domain="sync")
    # EHXPLLL: 25 MHz x 2 (feedback) x 12 (VCO 600 MHz) / 12 = 50 MHz on CLKOP.
    m.submodules.pll = Instance(
        "EHXPLLL",
        p_CLKI_DIV=1, p_CLKFB_DIV=2, p_CLKOP_DIV=12, p_CLKOP_CPHASE=5, p_CLKOP_FPHASE=0,
        p_CLKOP_ENABLE="ENABLED", p_FEEDBK_PATH="CLKOP", p_OUTDIVIDER_MUXA="DIVA",
        i_CLKI=clk25.i, i_CLKFB=clk50, o_CLKOP=clk50,
        o_LOCK=locked, i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0,
        i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
        a_FREQUENCY_PIN_CLKI="25", a_FREQUENCY_PIN_CLKOP="50", a_ICP_CURRENT="12",
        a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2")
    platform.add_clock_constraint(clk50, 50e6)
    return platform.request("sdram", 0, dir="-")


def drive_sdram_pins(m: Module, sdram, core) -> None:
    """The SDRAM clock (the system clock inverted) and `core`'s SDRAM pins (``sdram_a`` ..)
    onto the ``sdram`` resource."""
    # The SDRAM clock: 0 in the first half of each cycle, 1 in the second.
    m.submodules.sdram_clk = clk = io.DDRBuffer("o", sdram.clk)
    m.d.comb += [clk.o[0].eq(0), clk.o[1].eq(1)]
    # LiteDRAM's outputs are already active-low where the pins are: drive them as they are.
    pins = {"a": "sdram_a", "ba": "sdram_ba", "cs": "sdram_cs_n", "we": "sdram_we_n",
            "ras": "sdram_ras_n", "cas": "sdram_cas_n", "clk_en": "sdram_cke",
            "dqm": "sdram_dm"}
    for res, sig in pins.items():
        port = getattr(sdram, res)
        if any(port.invert):
            port = ~port
        buf = io.Buffer("o", port)
        m.submodules[f"sdram_{res}"] = buf
        m.d.comb += buf.o.eq(getattr(core, sig))
