"""The SDRAM init sequence as data, read from LiteDRAM's generated C, and the FSM that runs it.

With ``cpu: None`` LiteDRAM leaves its init sequence to software (`init_sequence()` in
the generated `sdram_phy.h`). `init_program` turns that C, with the register addresses
of the generated `csr.csv`, into a list of control-register writes; `CSRInit` plays
them on the controller's Wishbone control bus, then hands the DFI to the controller.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

from amaranth import Module, Signal
from amaranth.hdl import unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hwgen.targets.dram.litedram_core import LiteDRAMFailed
from rtl_templates.common import bits_for


@dataclass(frozen=True)
class CSRWrite:
    """One control-register write: byte address, value, and cycles to wait after it."""

    name: str
    addr: int
    value: int
    delay: int = 0
    comment: str = ""


def csr_addresses(csr_csv: str) -> dict[str, int]:
    """{register name: byte address} from the generated csr.csv."""
    out = {}
    for row in csv.reader(io.StringIO(csr_csv)):
        if len(row) >= 3 and row[0] == "csr_register":
            out[row[1]] = int(row[2], 0)
    if not out:
        raise LiteDRAMFailed("csr.csv lists no csr_register")
    return out


def _defines(header: str) -> dict[str, int]:
    return {k: int(v, 0) for k, v in re.findall(r"#define\s+(\w+)\s+(0x[0-9a-fA-F]+|\d+)\b",
                                                header)}


def _function_body(header: str, name: str) -> tuple[str, str]:
    """(parameter name or '', body) of `static inline void name(...)` in the header."""
    m = re.search(rf"\b{name}\s*\(\s*(?:int\s+(\w+)|void)\s*\)\s*\{{", header)
    if not m:
        raise LiteDRAMFailed(f"sdram_phy.h has no function {name}()")
    depth, k = 1, m.end()
    while depth:
        if k >= len(header):
            raise LiteDRAMFailed(f"sdram_phy.h: unterminated {name}()")
        depth += {"{": 1, "}": -1}.get(header[k], 0)
        k += 1
    return m.group(1) or "", header[m.end():k - 1]


def _value(expr: str, constants: dict[str, int]) -> int:
    value = 0
    for term in expr.split("|"):
        term = term.strip()
        if re.fullmatch(r"0x[0-9a-fA-F]+|\d+", term):
            value |= int(term, 0)
        elif term in constants:
            value |= constants[term]
        else:
            raise LiteDRAMFailed(f"sdram_phy.h: cannot evaluate {term!r} in {expr!r}")
    return value


def _statements(body: str, constants: dict[str, int], csrs: dict[str, int],
                helpers: dict[str, tuple[str, str]], out: list[CSRWrite], comment: str) -> str:
    """Append the writes of a C body (calls of *_write, cdelay and helper functions)."""
    for m in re.finditer(r"/\*(.*?)\*/|(\w+)\s*\(([^;]*)\)\s*;", body, re.S):
        if m.group(1) is not None:
            comment = m.group(1).strip()
            continue
        call, arg = m.group(2), m.group(3).strip()
        if call == "cdelay":
            if not out:
                raise LiteDRAMFailed("sdram_phy.h: cdelay before any register write")
            last = out[-1]
            out[-1] = CSRWrite(last.name, last.addr, last.value, last.delay + _value(arg, {}),
                               last.comment)
        elif call.endswith("_write") and call[:-6] in csrs:
            reg = call[:-6]
            out.append(CSRWrite(reg, csrs[reg], _value(arg, constants), 0, comment))
        elif call in helpers:
            param, inner = helpers[call]
            _statements(inner, {**constants, param: _value(arg, constants)}, csrs, helpers,
                        out, comment)
        else:
            raise LiteDRAMFailed(f"sdram_phy.h: unknown call {call}({arg}) in the init sequence")
    return comment


def init_program(phy_header: str, csr_csv: str) -> list[CSRWrite]:
    """The writes a LiteX BIOS makes to bring the SDRAM up, derived from the generated files.

    As liblitedram's `sdram_init` for an SDR PHY: DFII to software control, the
    generated `init_sequence()` (its `cdelay(n)` taken as n cycles), DFII back to
    hardware control (`DFII_CONTROL_SEL`), then `ddrctrl_init_done` set.
    """
    constants = _defines(phy_header)
    csrs = csr_addresses(csr_csv)
    for name in ("DFII_CONTROL_SEL", "DFII_CONTROL_CKE", "DFII_CONTROL_ODT",
                 "DFII_CONTROL_RESET_N"):
        if name not in constants:
            raise LiteDRAMFailed(f"sdram_phy.h does not define {name}")
    for reg in ("sdram_dfii_control", "ddrctrl_init_done"):
        if reg not in csrs:
            raise LiteDRAMFailed(f"csr.csv has no register {reg}")
    helpers = {"command_p0": _function_body(phy_header, "command_p0")}
    software = (constants["DFII_CONTROL_CKE"] | constants["DFII_CONTROL_ODT"]
                | constants["DFII_CONTROL_RESET_N"])
    out = [CSRWrite("sdram_dfii_control", csrs["sdram_dfii_control"], software, 0,
                    "DFII to software control")]
    _, body = _function_body(phy_header, "init_sequence")
    _statements(body, constants, csrs, helpers, out, "")
    out.append(CSRWrite("sdram_dfii_control", csrs["sdram_dfii_control"],
                        constants["DFII_CONTROL_SEL"], 0, "DFII to hardware control"))
    out.append(CSRWrite("ddrctrl_init_done", csrs["ddrctrl_init_done"], 1, 0, "init done"))
    return out


class CSRInit(wiring.Component):
    """Plays a list of `CSRWrite`s on a 32-bit Wishbone bus (word addresses), then sets ``done``.

    Ports: ``wb_adr`` (30), ``wb_dat_w`` (32), ``wb_sel`` (4), ``wb_cyc``, ``wb_stb``,
    ``wb_we`` (out), ``wb_ack`` (in), ``done`` (out, stays high).

    Timing: each write holds ``cyc``/``stb`` until ``ack``, then waits its ``delay``
    cycles plus one before the next; starts at the first cycle after reset.
    """

    def __init__(self, program: list[CSRWrite]):
        if not program:
            raise ValueError("program must have at least one write")
        for w in program:
            if not (0 <= w.addr < 1 << 32 and w.addr % 4 == 0):
                raise ValueError(f"{w.name}: addr must be a 32-bit aligned byte address, "
                                 f"not {w.addr!r}")
        self.program = list(program)
        super().__init__({
            "wb_adr": Out(30), "wb_dat_w": Out(32), "wb_sel": Out(4), "wb_cyc": Out(1),
            "wb_stb": Out(1), "wb_we": Out(1), "wb_ack": In(1), "done": Out(1),
        })

    @property
    def cycles(self) -> int:
        """Lower bound of the cycles the program takes (one-cycle acks)."""
        return sum(2 + w.delay for w in self.program)

    def elaborate(self, platform):
        m = Module()
        n = len(self.program)
        adr_bits = bits_for(max(w.addr >> 2 for w in self.program) + 1)
        delay_bits = bits_for(max(w.delay for w in self.program) + 1)
        layout = data.StructLayout({"adr": unsigned(adr_bits), "dat": unsigned(32),
                                    "delay": unsigned(delay_bits)})
        init = [{"adr": w.addr >> 2, "dat": w.value, "delay": w.delay} for w in self.program]
        m.submodules.rom = rom = Memory(shape=layout, depth=n, init=init)
        rd = rom.read_port(domain="comb")
        index = Signal(range(n + 1))
        wait = Signal(delay_bits + 1)
        m.d.comb += [rd.addr.eq(index), self.wb_adr.eq(rd.data.adr),
                     self.wb_dat_w.eq(rd.data.dat), self.wb_sel.eq(0xF), self.wb_we.eq(1),
                     self.done.eq(index == n)]
        with m.FSM():
            with m.State("WRITE"):
                with m.If(index != n):
                    m.d.comb += [self.wb_cyc.eq(1), self.wb_stb.eq(1)]
                    with m.If(self.wb_ack):
                        m.d.sync += wait.eq(rd.data.delay)
                        m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(wait == 0):
                    m.d.sync += index.eq(index + 1)
                    m.next = "WRITE"
                with m.Else():
                    m.d.sync += wait.eq(wait - 1)
        return m
