"""Board builds: elaborate the board top, then Yosys, nextpnr and the packer (YoWASP tools).

`build` writes one directory per build: Amaranth's build plan (RTLIL, Verilog,
constraints, `build_top.sh`), the tools' logs and outputs, `build.json` (this
module's record), `report.json` and `report.md` (hwgen.report). A build is named
by a content hash of its inputs; an unchanged rebuild reuses the directory.
Vendor-tool boards get the build directory and script, not a bitstream.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from hwgen import boards
from hwgen.boards import YOWASP_TOOLS, Board, get_board
from quant.errors import HwgenError

NAME = "top"  # Amaranth's design name: top.il, top.asc, build_top.sh ...
MANIFEST = "build.json"
MANIFEST_VERSION = 2
TOOL_TIMEOUT_S = 3600
_ROOT = Path(__file__).resolve().parent.parent

# family -> Yosys synth options and the bitstream file the packer writes.
_FAMILY = {"ice40": ("-dsp", "top.bin"), "ecp5": ("-nowidelut", "top.bit")}
_STEP_NAMES = {"yosys": "synthesise", "nextpnr-ice40": "place & route",
               "nextpnr-ecp5": "place & route", "icepack": "pack", "ecppack": "pack"}


@dataclass
class BuildResult:
    """What one board build produced (paths are inside `out_dir`).

    `fmax_mhz` is nextpnr's achieved Fmax of the slowest clock, against the
    board clock's constraint `clock_mhz`. `utilization` is nextpnr's, cell type ->
    {"used", "available"}; `synth` is Yosys' whole-design count (hwgen.synth.SynthStats
    fields); `per_block` maps accelerator block name -> its own LUT/FF/BRAM/DSP from a
    separate hierarchical synthesis of the accelerator alone (None if that failed).
    Vendor boards have `vendor_tool` set and no figures.
    """

    board: str
    family: str
    out_dir: Path
    digest: str
    cached: bool = False
    bitstream: Path | None = None
    script: Path | None = None
    vendor_tool: str | None = None
    top: str = ""  # the board top's class name
    clock_mhz: float = 0.0
    interval_cycles: int | None = None  # the plan's, for the summary
    latency_cycles: int | None = None
    fmax_mhz: float | None = None
    fmax_per_clock: dict[str, float] = field(default_factory=dict)
    utilization: dict[str, dict[str, int]] = field(default_factory=dict)
    synth: dict | None = None
    per_block: dict[str, dict[str, int]] | None = None
    steps: dict[str, float] = field(default_factory=dict)  # step -> seconds
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def timing_met(self) -> bool | None:
        return None if self.fmax_mhz is None else self.fmax_mhz >= self.clock_mhz

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("out_dir", "bitstream", "script"):
            d[key] = None if d[key] is None else str(d[key])
        d.pop("cached")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> BuildResult:
        d = dict(d)
        for key in ("out_dir", "bitstream", "script"):
            d[key] = None if d.get(key) is None else Path(d[key])
        return cls(**d)


# ------------------------------------------------------------------------ the board top

def stand_in_top(graph):
    """A board top for builds until the UART top exists: the accelerator fed from a 32-bit
    LFSR, every result bit XOR-folded into a register on LED 0 (so synthesis keeps all of
    it), output backpressure from the LFSR too. It measures the accelerator's resources and
    Fmax; it talks to nothing."""
    from amaranth import Elaboratable, Module, Mux, Signal, Value
    from amaranth.lib import io

    from hwgen.top import Accelerator

    class StandInTop(Elaboratable):
        def __init__(self):
            self.accelerator = Accelerator(graph)

        def elaborate(self, platform):
            m = Module()
            m.submodules.accelerator = acc = self.accelerator
            lfsr = Signal(32, init=1)
            # Galois LFSR, taps 32, 22, 2, 1 (maximal length).
            m.d.sync += lfsr.eq((lfsr >> 1) ^ Mux(lfsr[0], 0x80200003, 0))
            width = len(Value.cast(acc.i.payload))
            stim = Value.cast(lfsr)
            while len(stim) < width:
                stim = stim.replicate(2)
            seen = Signal()
            with m.If(acc.o.valid):
                m.d.sync += seen.eq(seen ^ Value.cast(acc.o.payload).xor())
            m.d.comb += [Value.cast(acc.i.payload).eq(stim[:width]), acc.i.valid.eq(1),
                         acc.o.ready.eq(lfsr[0] | lfsr[5])]
            if platform is not None:
                m.submodules.led = led = io.Buffer("o", platform.request("led", 0, dir="-"))
                m.d.comb += led.o.eq(seen)
            return m

    return StandInTop()


TOPS = ("auto", "uart", "bare")


def make_top(graph, board: Board, top: str = "auto"):
    """The board's top: "uart" is hwgen.board_top.BoardTop (UART link, self-test, LEDs);
    "bare" is `stand_in_top` (the accelerator alone, for its resources and Fmax); "auto"
    is "uart" when hwgen.board_top exists, else "bare"."""
    if top not in TOPS:
        raise ValueError(f"top must be one of {', '.join(TOPS)}, not {top!r}")
    if top == "bare":
        return stand_in_top(graph)
    try:
        from hwgen.board_top import BoardTop
    except ImportError:
        if top == "uart":
            raise HwgenError("the UART board top (hwgen.board_top) is not available") from None
        return stand_in_top(graph)
    return BoardTop(graph, clock_hz=board.clock_mhz * 1e6)


# ------------------------------------------------------------------------ tools, digest

def tool_env(board: Board) -> dict[str, str]:
    """Environment for Amaranth's build script: each tool's variable -> absolute YoWASP path.
    Raises ToolMissing naming the first absent tool."""
    from hwgen.synth import ToolMissing

    env = {}
    for tool, exe in YOWASP_TOOLS.items():
        if exe not in board.tools:
            continue
        path = boards.tool_path(exe)
        if path is None:
            raise ToolMissing(f"{exe} is not installed (needed for {board.name}; "
                              f"pip install {exe})")
        env[tool.upper().replace("-", "_")] = path
    return env


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


@functools.cache
def _source_digest() -> str:
    """hwgen's version for the cache: a hash of the sources that shape the hardware, taken
    once per process (the modules it loaded are the ones it builds with)."""
    h = hashlib.sha256()
    for folder in ("hwgen", "rtl_templates"):
        for path in sorted((_ROOT / folder).glob("*.py")):
            if path.name in ("report.py", "cli.py", "commands.py"):
                continue  # presentation only: a report change needs no rebuild
            h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def build_digest(model, board: Board, plan, options: dict) -> str:
    """Content hash naming a build: model bytes, plan, board, options, tool and hwgen versions.

    `plan` is a Plan, or a dict of the planner's inputs (the plan is a function of them,
    the model, the board and hwgen's sources), which lets the CLI find a cached build
    without planning."""
    from quant.model_file import encode_model

    plan_part = plan.to_dict() if hasattr(plan, "to_dict") else {"planner_inputs": plan}
    h = hashlib.sha256()
    parts = [f"v{MANIFEST_VERSION}", board.name, board.platform,
             json.dumps(plan_part, sort_keys=True), json.dumps(options, sort_keys=True),
             _source_digest(),
             *(f"{p}={_version(p)}" for p in ("amaranth", "amaranth-boards", *board.tools))]
    for part in parts:
        h.update(part.encode() + b"\0")
    h.update(encode_model(model))
    return h.hexdigest()[:16]


def _overrides(family: str) -> dict:
    synth_opts, _ = _FAMILY[family]
    synth = "synth_ice40" if family == "ice40" else "synth_ecp5"
    # Amaranth emits alias wires named like "x[0]" that crash ABC9 (YosysHQ/yosys#4349);
    # purging them between the coarse and fine halves of synthesis avoids it, as in
    # hwgen.synth. Amaranth's script runs synth_<family> {synth_opts}: make that the first
    # half and run the second half after it.
    return {
        "synth_opts": f"{synth_opts} -run :coarse",
        "script_after_synth": (f"opt_clean -purge; {synth} {synth_opts} -top {NAME} -run coarse:; "
                               f"tee -q -o {NAME}.stat.json stat -json"),
        "nextpnr_opts": f"--report {NAME}.report.json --timing-allow-fail",
        "debug_verilog": True,
    }


# ------------------------------------------------------------------------ the flow

def _say(progress, msg: str) -> None:
    if progress is not None:
        progress(msg)


def _run_step(argv: list[str], cwd: Path, log: Path, env: dict) -> None:
    from hwgen.synth import ToolFailed

    with open(log, "w") as out:
        try:
            proc = subprocess.run(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                  timeout=TOOL_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise ToolFailed(f"{Path(argv[0]).name} timed out after {TOOL_TIMEOUT_S} s "
                             f"(log {log})") from None
    if proc.returncode:
        text = log.read_text(errors="replace").strip().splitlines()
        tail = next((ln for ln in reversed(text) if "ERROR" in ln), text[-1] if text else "")
        # nextpnr's way of saying the design has more cells than the device
        if (over := re.search(r"Failed to expand region .* of (\d+) (\w+?)s?$", tail)):
            tail = (f"the design does not fit the device: placement needs {over[1]} {over[2]} "
                    f"({tail.strip()})")
        raise ToolFailed(f"{Path(argv[0]).name} failed (exit {proc.returncode}; log {log}): "
                         f"{tail.strip()[:300]}")


def _load_manifest(out_dir: Path) -> dict | None:
    try:
        return json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def build_options(board: Board, *, hierarchy: bool, top: str, images: int) -> dict:
    """The options of `build` that shape its outputs (part of the digest)."""
    return {"overrides": _overrides(board.device.family), "hierarchy": hierarchy, "top": top,
            "images": images}


def reuse(out_dir: Path, digest: str, progress, start: float) -> BuildResult | None:
    """The cached build in `out_dir` (its report refreshed if a sim.json appeared), saying so."""
    from hwgen import report

    hit = cached_build(out_dir, digest)
    if hit is not None:
        report.refresh(out_dir)
        _say(progress, f"cached: {out_dir} ({digest}); bitstream {hit.bitstream.name}, "
                       f"reports reused ({time.monotonic() - start:.1f} s)")
    return hit


def cached_build(out_dir: Path, digest: str) -> BuildResult | None:
    """The build in `out_dir` if it was made from the same inputs and its outputs exist."""
    man = _load_manifest(out_dir)
    if not man or man.get("digest") != digest or man.get("version") != MANIFEST_VERSION:
        return None
    result = BuildResult.from_dict(man["result"])
    if result.bitstream is not None and not result.bitstream.exists():
        return None
    if not (out_dir / "report.json").exists():
        return None
    result.cached = True
    return result


def build(model, board: Board | str, plan, out_dir: Path | str, *, progress=None,
          force: bool = False, hierarchy: bool = True, images: int = 8, top: str = "auto",
          digest: str | None = None) -> BuildResult:
    """Build `model` with `plan` for `board` in `out_dir` and write its report.

    Steps (one progress line each): elaborate, synthesise, place & route, pack, and
    (with `hierarchy`, concurrently) the accelerator's per-block figures. An unchanged
    rebuild (same digest) returns the cached result unless `force`. `images` sample
    images drive the report's spike rates and energy estimate. `digest` names the build
    (default: `build_digest` of the model, plan, board and options).
    """
    from hwgen import report
    from hwgen.synth import ToolFailed

    board = get_board(board) if isinstance(board, str) else board
    out_dir = Path(out_dir).resolve()
    start = time.monotonic()
    if board.vendor:
        return _vendor_build(model, board, plan, out_dir, progress, images, top)
    env_tools = tool_env(board)
    if digest is None:
        options = build_options(board, hierarchy=hierarchy, top=top, images=images)
        digest = build_digest(model, board, plan, options)
    if not force and (hit := reuse(out_dir, digest, progress, start)) is not None:
        return hit
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).unlink(missing_ok=True)  # a half-finished build is never a cache hit
    family = board.device.family
    result = BuildResult(board.name, family, out_dir, digest, clock_mhz=board.clock_mhz,
                         interval_cycles=plan.interval_cycles,
                         latency_cycles=plan.latency_cycles)

    n_steps = 5 if hierarchy else 4
    _say(progress, f"[1/{n_steps}] elaborate {model.config.name} for {board.name} "
                   f"({len(plan.layers)} blocks)")
    t0 = time.monotonic()
    design = make_top(plan.graph(model), board, top)
    result.top = type(design).__name__
    platform = board.platform_class()()
    bplan = platform.build(design, name=NAME, do_build=False, **_overrides(family))
    bplan.extract(out_dir)
    result.script = out_dir / f"build_{NAME}.sh"
    result.steps["elaborate"] = time.monotonic() - t0
    if result.top == "StandInTop":
        result.notes.append("board top: StandInTop (the accelerator fed by an LFSR, result on an "
                            "LED); the UART board top was not available")

    per_block: dict = {}
    worker = None
    if hierarchy:
        graph = plan.graph(model)

        def run_hierarchy():
            try:
                per_block["stats"] = _per_block(graph, family)
            except Exception as e:  # noqa: BLE001 - the build goes on; the report says why
                per_block["error"] = f"{type(e).__name__}: {e}"

        worker = threading.Thread(target=run_hierarchy, daemon=True)
        worker.start()

    env = dict(os.environ, **env_tools)
    commands = json.loads((out_dir / f"build_{NAME}.json").read_text())["commands"]
    for k, argv in enumerate(commands, start=2):
        tool = argv[0]
        step = _STEP_NAMES.get(tool, tool)
        exe = env_tools[tool.upper().replace("-", "_")]
        log = out_dir / f"{tool}.log"
        _say(progress, f"[{k}/{n_steps}] {step} ({Path(exe).name}, log {log.name}); "
                       f"{time.monotonic() - start:.1f} s so far")
        t0 = time.monotonic()
        try:
            _run_step([exe, *argv[1:]], out_dir, log, env)
        except ToolFailed as e:
            if result.synth and "does not fit" in str(e):
                tot = plan.totals()
                raise ToolFailed(f"{e}; Yosys counted {result.synth['lut']} LUT4 and "
                                 f"{result.synth['ff']} flip-flops (board top included), the "
                                 f"plan predicted {tot['lut']} and {tot['ff']} for the "
                                 "accelerator") from None
            raise
        result.steps[step] = time.monotonic() - t0
        if tool == "yosys":
            _parse_synth(result, out_dir)

    result.bitstream = out_dir / _FAMILY[family][1]
    if not result.bitstream.exists():
        raise ToolFailed(f"the packer wrote no {result.bitstream.name} (log {out_dir})")
    _parse_outputs(result, out_dir)
    if worker is not None:
        _say(progress, f"[{n_steps}/{n_steps}] per-block figures (Yosys, hierarchical); "
                       f"{time.monotonic() - start:.1f} s so far")
        t0 = time.monotonic()
        worker.join()
        result.steps["per-block synthesis (wait)"] = time.monotonic() - t0
        if "error" in per_block:
            result.notes.append(f"per-block figures unavailable: {per_block['error']}")
        result.per_block = per_block.get("stats")
    result.seconds = time.monotonic() - start
    report.write_report(out_dir, model, plan, board, result, images=images)
    manifest = {"version": MANIFEST_VERSION, "digest": digest, "result": result.to_dict()}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return result


def _parse_synth(result: BuildResult, out_dir: Path) -> None:
    from hwgen.synth import SynthStats

    stat = json.loads((out_dir / f"{NAME}.stat.json").read_text())
    s = SynthStats.from_cells(result.family, stat["design"]["num_cells_by_type"])
    result.synth = {"lut": s.lut, "ff": s.ff, "carry": s.carry, "bram": s.bram, "spram": s.spram,
                    "dsp": s.dsp, "lutram": s.lutram, "cells": s.cells}


def _parse_outputs(result: BuildResult, out_dir: Path) -> None:
    rep = json.loads((out_dir / f"{NAME}.report.json").read_text())
    result.utilization = {k: {"used": v["used"], "available": v["available"]}
                          for k, v in sorted(rep.get("utilization", {}).items())}
    result.fmax_per_clock = {k: v["achieved"] for k, v in sorted(rep.get("fmax", {}).items())}
    if result.fmax_per_clock:
        result.fmax_mhz = min(result.fmax_per_clock.values())
    constraints = [v.get("constraint") for v in rep.get("fmax", {}).values() if v.get("constraint")]
    if constraints:  # nextpnr gives e.g. 12.00004768 for 12 MHz (period rounding)
        result.clock_mhz = round(max(constraints), 3)


def _per_block(graph, family: str) -> dict[str, dict[str, int]]:
    """Each accelerator block's own cells (its submodules included), from a hierarchical
    Yosys synthesis of the accelerator alone: block name -> lut/ff/bram/dsp/spram."""
    from hwgen.synth import synth_stats
    from hwgen.top import Accelerator

    stats = synth_stats(Accelerator(graph), family, keep_hierarchy=True)
    names = {node.replace(".", "_"): node for node in graph.nodes}
    out: dict[str, dict[str, int]] = {}
    for module, s in stats.per_module.items():
        parts = module.split(".")
        block = names.get(parts[1]) if len(parts) > 1 else None
        key = block or "(accelerator glue)"
        row = out.setdefault(key, dict.fromkeys(("lut", "ff", "bram", "dsp", "spram"), 0))
        for k in row:
            row[k] += getattr(s, k)
    return {k: v for k, v in out.items() if any(v.values())}


def _vendor_build(model, board: Board, plan, out_dir: Path, progress, images: int, top: str
                  ) -> BuildResult:
    """Write the build directory and script for a vendor-tool board; run nothing."""
    from hwgen import report

    start = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    _say(progress, f"[1/1] elaborate {model.config.name} for {board.name} (vendor toolchain "
                   f"{', '.join(board.tools)}: writing the build script only)")
    design = make_top(plan.graph(model), board, top)
    bplan = board.platform_class()().build(design, name=NAME, do_build=False)
    bplan.extract(out_dir)
    bplan.archive(str(out_dir / f"build_{NAME}.zip"))
    result = BuildResult(board.name, board.device.family, out_dir, "", script=out_dir /
                         f"build_{NAME}.sh", vendor_tool=", ".join(board.tools),
                         top=type(design).__name__, clock_mhz=board.clock_mhz,
                         interval_cycles=plan.interval_cycles, latency_cycles=plan.latency_cycles,
                         seconds=time.monotonic() - start)
    result.notes.append(f"not built: {board.name} needs {', '.join(board.tools)}; run "
                        f"'sh build_{NAME}.sh' in this directory where it is installed")
    report.write_report(out_dir, model, plan, board, result, images=images)
    return result
