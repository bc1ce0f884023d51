"""The SDRAM controller behind the memory port: LiteDRAM's Verilog, its init driver and the adapter.

`SDRAMController` instantiates the generated `litedram_core` (an Amaranth Instance),
runs the init sequence on its control bus (`CSRInit`) and serves a memory port from
its native user port (`NativeToMemPort`). The Verilog of `litedram_core` itself is
`Generated.verilog`: a build adds it as a source file beside the design.
"""

from __future__ import annotations

import math

from amaranth import ClockSignal, Module, ResetSignal, Signal
from amaranth.hdl import Instance
from amaranth.lib import io, wiring
from amaranth.lib.wiring import In, Out

from hwgen.targets.dram.init_sequence import CSRInit, init_program
from hwgen.targets.dram.litedram_core import (
    CORE_NAME,
    MODULES,
    Generated,
    LiteDRAMFailed,
    SDRAMConfig,
    top_ports,
)
from hwgen.targets.dram.native_adapter import NativeToMemPort
from rtl_templates.memport import MemPortSignature


def stream_timing(config) -> dict:
    """`PipelinedMemPortRAM` parameters under which the fast model streams like this
    controller: sequential back-to-back read bursts and the engines' tile streams within 1 %
    of the simulated SDRAM path (tests/test_sdram.py, bench/bench_engine_sdram.py). A fit,
    not a cycle model of LiteDRAM's bank machines: a row change costs the same whether or
    not the bank still has the row open (BENCHMARKS.md, "SDRAM path"). Fitted for the
    ULX3S default (`SDRAMConfig()`: 50 MHz, CL 2) only."""
    if config != SDRAMConfig():
        raise ValueError(f"stream timing is fitted for SDRAMConfig() only, not {config!r}")
    # LiteDRAM's refresh timer: tREFI (64 ms / 8192) rounded up to whole cycles.
    period = math.ceil(64e6 / 8192 * config.sys_clk_freq / 1e9)
    # Row changes: LiteDRAM maps row, bank, column from the top, so every block of one
    # row's columns (512 words) is in the next bank, opened with a precharge and an
    # activate; 4 cycles each, fitted with the latency and refresh on the engine's runs
    # (bench/bench_engine_sdram.py: 7 shapes, compute- and memory-bound, within 0.64 %).
    return {"latency": 9, "refresh_period": period, "refresh_cycles": 15,
            "row_words": MODULES[config.module]["cols"], "row_cycles": 4}


# SDRAM pins (besides dq) as the generated core names them, with their widths checked.
_PINS = ("sdram_a", "sdram_ba", "sdram_cs_n", "sdram_ras_n", "sdram_cas_n", "sdram_we_n",
         "sdram_cke", "sdram_dm")


class SDRAMController(wiring.Component):
    """A memory port served by LiteDRAM on an SDR SDRAM.

    Parameters: ``generated`` (a `Generated` LiteDRAM core), ``dq`` (an `io.IOPort` for the
    data pins, or None to make one named ``sdram_dq``), ``max_burst``, ``read_buffer``.

    Ports: ``port`` (memory side of a `MemPortSignature`: word addresses of
    ``data_width`` bits, ``addr_width`` = log2 of the chip's words), ``init_done``
    (high once the init sequence has run; requests wait for it), and the SDRAM pins
    ``sdram_a`` .. ``sdram_dm`` (outputs; the chip's clock is the board's business).

    Latency and throughput: those of `NativeToMemPort` on top of LiteDRAM's own
    (measured in tests/test_sdram.py and BENCHMARKS.md).
    """

    def __init__(self, generated: Generated, *, dq: io.IOPort | None = None,
                 max_burst: int = 64, read_buffer: int = 32):
        self.generated = generated
        config = generated.config
        ports = top_ports(generated.verilog)
        expect = {"sdram_dq": ("inout", config.data_width),
                  "user_port_native_0_cmd_addr": ("input", config.addr_width)}
        for name, want in expect.items():
            if ports.get(name) != want:
                raise LiteDRAMFailed(f"{CORE_NAME}.{name} is {ports.get(name)}, expected {want}")
        self.pins = {p: ports[p][1] for p in _PINS}
        self.dq = dq if dq is not None else io.IOPort(config.data_width, name="sdram_dq")
        self.program = init_program(generated.phy_header, generated.csr_csv)
        self.port_signature = MemPortSignature(addr_width=config.addr_width,
                                               data_width=config.data_width,
                                               max_burst=max_burst)
        self.read_buffer = read_buffer
        members = {"port": In(self.port_signature), "init_done": Out(1)}
        members.update({p: Out(w) for p, w in self.pins.items()})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        sig = self.port_signature
        m.submodules.init = init = CSRInit(self.program)
        m.submodules.adapter = adapter = NativeToMemPort(
            addr_width=sig.addr_width, data_width=sig.data_width, max_burst=sig.max_burst,
            read_buffer=self.read_buffer)
        nat = adapter.native
        core_done = Signal()
        wb_ack = Signal()
        native_out = {f"user_port_native_0_{k}": getattr(nat, k)
                      for k in ("cmd_ready", "wdata_ready", "rdata_valid", "rdata_data")}
        native_in = {f"user_port_native_0_{k}": getattr(nat, k)
                     for k in ("cmd_valid", "cmd_we", "cmd_addr", "wdata_valid", "wdata_we",
                               "wdata_data", "rdata_ready")}
        m.submodules.core = Instance(
            CORE_NAME,
            i_clk=ClockSignal("sync"), i_rst=ResetSignal("sync"),
            o_init_done=core_done, o_init_error=Signal(name="init_error"),
            o_user_clk=Signal(name="user_clk"), o_user_rst=Signal(name="user_rst"),
            i_wb_ctrl_adr=init.wb_adr, i_wb_ctrl_dat_w=init.wb_dat_w,
            o_wb_ctrl_dat_r=Signal(32, name="wb_ctrl_dat_r"), i_wb_ctrl_sel=init.wb_sel,
            i_wb_ctrl_cyc=init.wb_cyc, i_wb_ctrl_stb=init.wb_stb, i_wb_ctrl_we=init.wb_we,
            o_wb_ctrl_ack=wb_ack, o_wb_ctrl_err=Signal(name="wb_ctrl_err"),
            i_wb_ctrl_cti=0, i_wb_ctrl_bte=0,
            io_sdram_dq=self.dq,
            **{f"o_{p}": getattr(self, p) for p in self.pins},
            **{f"i_{k}": v for k, v in native_in.items()},
            **{f"o_{k}": v for k, v in native_out.items()},
        )
        m.d.comb += [init.wb_ack.eq(wb_ack), self.init_done.eq(init.done & core_done)]
        # Requests wait for the init sequence: before it the DFI belongs to CSRInit.
        wiring.connect(m, wiring.flipped(self.port), adapter.port)
        with m.If(~self.init_done):
            m.d.comb += [adapter.port.req.valid.eq(0), self.port.req.ready.eq(0)]
        return m
