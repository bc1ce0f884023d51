"""The build cache: a build's record (`BuildResult`, `build.json`) and the content hash that
names it, so an unchanged rebuild reuses its directory.

The digest covers the model bytes, the plan (or the planner's inputs), the board, the
build options, the versions of Amaranth and of the tools, and hwgen's own hardware sources.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from hwgen.reports import report
from hwgen.targets.boards import Board
from quant.model_file import encode_model

NAME = "top"  # Amaranth's design name: top.il, top.asc, build_top.sh ...
MANIFEST = "build.json"
MANIFEST_VERSION = 2
_ROOT = Path(__file__).resolve().parents[2]
# Yosys options and the bitstream each family's build writes.
FAMILY = {"ice40": ("-dsp", "top.bin"), "ecp5": ("-nowidelut", "top.bit")}


def _say(progress, msg: str) -> None:
    if progress is not None:
        progress(msg)


@dataclass
class BuildResult:
    """What one board build produced (paths are inside `out_dir`).

    `fmax_mhz` is nextpnr's achieved Fmax of the slowest clock, against the
    board clock's constraint `clock_mhz`. `utilization` is nextpnr's, cell type ->
    {"used", "available"}; `synth` is Yosys' whole-design count (hwgen.targets.synth.SynthStats
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
    weights: Path | None = None  # external weights: the memory image for --load-weights
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
        for key in ("out_dir", "bitstream", "script", "weights"):
            d[key] = None if d[key] is None else str(d[key])
        d.pop("cached")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> BuildResult:
        d = dict(d)
        for key in ("out_dir", "bitstream", "script", "weights"):
            d[key] = None if d.get(key) is None else Path(d[key])
        return cls(**d)


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
        for path in sorted((_ROOT / folder).rglob("*.py")):
            rel = path.relative_to(_ROOT)
            if rel.parts[1] in ("reports", "cli", "sweep"):
                continue  # presentation and orchestration only: a change there needs no rebuild
            h.update(str(rel).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def build_digest(model, board: Board, plan, options: dict) -> str:
    """Content hash naming a build: model bytes, plan, board, options, tool and hwgen versions.

    `plan` is a Plan, or a dict of the planner's inputs (the plan is a function of them,
    the model, the board and hwgen's sources), which lets the CLI find a cached build
    without planning."""
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


def tool_overrides(family: str) -> dict:
    synth_opts, _ = FAMILY[family]
    synth = "synth_ice40" if family == "ice40" else "synth_ecp5"
    # Amaranth emits alias wires named like "x[0]" that crash ABC9 (YosysHQ/yosys#4349);
    # purging them between the coarse and fine halves of synthesis avoids it, as in
    # hwgen.targets.synth. Amaranth's script runs synth_<family> {synth_opts}: make that the first
    # half and run the second half after it.
    return {
        "synth_opts": f"{synth_opts} -run :coarse",
        "script_after_synth": (f"opt_clean -purge; {synth} {synth_opts} -top {NAME} -run coarse:; "
                               f"tee -q -o {NAME}.stat.json stat -json"),
        "nextpnr_opts": f"--report {NAME}.report.json --timing-allow-fail",
        "debug_verilog": True,
    }


def _load_manifest(out_dir: Path) -> dict | None:
    try:
        return json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def build_options(board: Board, *, hierarchy: bool, top: str, images: int) -> dict:
    """The options of `build` that shape its outputs (part of the digest)."""
    return {"overrides": tool_overrides(board.device.family), "hierarchy": hierarchy, "top": top,
            "images": images}


def reuse(out_dir: Path, digest: str, progress, start: float) -> BuildResult | None:
    """The cached build in `out_dir` (its report refreshed if a sim.json appeared), saying so."""
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
