"""One sweep trial: a pure function of its TrialSpec that returns a JSON record.

The record holds what the stage measured (plan figures, energy estimate and golden
accuracy; the bit-exact simulation's verdict and cycles; the build's Fmax, utilisation
and images/s) or the one-line reason it was refused. Everything that varies from run to
run (wall times, host, process) sits under "run", so records of the same trial compare
equal with it removed. A trial's key is hwgen.targets.cache.build_digest of its model, board,
planner inputs and stage options: the content hash the board builds are cached by.
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import time
import tomllib
import traceback
import warnings
from pathlib import Path

import torch
from amaranth.hdl import UnusedElaboratable

from hwgen.compiler.loader import check_supported, load_supported
from hwgen.compiler.planner import make_plan, predict_timing
from hwgen.compiler.predict import propagate_words
from hwgen.compiler.target import Target
from hwgen.compiler.twin import stream_words
from hwgen.errors import HwgenError
from hwgen.reports.activity import activity
from hwgen.sweep.grid import TrialSpec, model_kind
from hwgen.targets.boards import get_board
from hwgen.targets.cache import build_digest
from hwgen.targets.flow import build
from quant.config import ModelConfig, get_config
from quant.data import load_digits_split
from quant.quantize import quantize_checkpoint
from quant.random_model import random_int_model, random_pixels
from quant.summary import digits_test_accuracy, is_digits_tiny
from sim.e2e import simulate_accelerator
from sim.runner import simulator_missing_reason

RECORD_VERSION = 1
ENERGY_IMAGES = 4  # sample images for the spike-rate based energy estimate
_ROOT = Path(__file__).resolve().parent.parent.parent


class TrialRefused(HwgenError):
    """A trial that cannot run as asked (the reason is the record's)."""


# ------------------------------------------------------------------------ inputs

@functools.cache
def load_model(model: str, bits: int | None, weight_seed: int | None):
    """The integer model of a trial, checked as supported (cached per process: a sweep's
    trials share few models)."""
    kind = model_kind(model)
    if kind == "model-file":
        return load_supported(Path(model))
    if kind == "checkpoint":
        return check_supported(quantize_checkpoint(Path(model), weight_bits=bits))
    if kind == "config":
        cfg = get_config(model)
    else:
        data = tomllib.loads(Path(model).read_text())
        try:
            cfg = ModelConfig.from_dict(data.get("model", data))
        except (ValueError, TypeError) as e:
            raise TrialRefused(f"config file {model}: {e}") from None
    return check_supported(random_int_model(cfg, bits, seed=weight_seed))


def spike_linears(model) -> list[str]:
    return sorted(f"blocks.{b}.{n}" for b in range(model.config.depth)
                  for n in ("qk", "o", "fc1", "fc2"))


def event_layers(spec: TrialSpec, model) -> tuple[str, ...]:
    known = spike_linears(model)
    if spec.event_driven == "all":
        return tuple(known)
    layers = tuple(x for x in spec.event_driven.split(",") if x)
    for x in layers:
        if x not in known:
            raise TrialRefused(f"event_driven: {x!r} is not a spike linear of "
                               f"{model.config.name}; choose from {', '.join(known)}")
    return layers


def sample_pixels(model, n: int, seed: int = 0):
    """(pixels [n, C, H, W], labels or None): the digits test images for digits-tiny,
    seeded random images otherwise (as `hwgen sim` drives them)."""
    if is_digits_tiny(model):
        split = load_digits_split()
        if n > len(split.test_labels):
            raise TrialRefused(f"images: the digits test split has {len(split.test_labels)} "
                               f"images, not {n}")
        return split.test_pixels[:n].to(torch.int64), [int(y) for y in split.test_labels[:n]]
    return random_pixels(model.config, n, seed=seed), None


@functools.cache
def _sources_digest(*paths: str) -> str:
    """Hash of the Python sources at `paths` (files or folders, relative to the
    repository), which shape a stage's record beyond what build_digest covers."""
    h = hashlib.sha256()
    for rel in paths:
        where = _ROOT / rel
        for path in sorted(where.rglob("*.py")) if where.is_dir() else [where]:
            h.update(str(path.relative_to(_ROOT)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def trial_key(spec: TrialSpec) -> str:
    """The content hash naming a trial (hwgen.targets.cache.build_digest of its inputs)."""
    model = load_model(spec.model, spec.bits, spec.weight_seed)
    board = get_board(spec.board)
    try:
        layers = list(event_layers(spec, model))
    except TrialRefused:
        layers = [spec.event_driven]  # refused when run; still a distinct, stable key
    inputs = {"max_util": Target.for_board(board, spec.max_util).max_util,
              "target_fps": spec.target_fps, "event_driven": layers}
    # The record's own code is part of the key; the report, CLI and executors only
    # present or carry records, so changing them keeps the cache.
    options = {"sweep_record": RECORD_VERSION, "stage": spec.stage,
               "energy_images": ENERGY_IMAGES,
               "trial_code": _sources_digest("hwgen/sweep/trial.py", "hwgen/sweep/grid.py")}
    if spec.stage != "plan":
        options.update(images=spec.images, seed=spec.seed)
    if spec.stage == "sim":
        options.update(simulator=spec.simulator, sim_code=_sources_digest("sim"))
    return build_digest(model, board, inputs, options)


# ------------------------------------------------------------------------ stages

def _plan_stage(spec: TrialSpec, model, board, record: dict):
    record["model"] = {"name": model.config.name, "weight_bits": model.weight_bits,
                       "weight_memory_bits": model.weight_memory_bits()}
    layers = event_layers(spec, model)
    target = Target.for_board(board, spec.max_util, spec.target_fps)
    plan = make_plan(model, target, event_layers=layers)
    words = None
    if layers:  # event-driven timing follows the data: one sample image's spikes
        pixels, _ = sample_pixels(model, 1)
        _, per_edge, _ = stream_words(plan.graph(model), pixels)
        words = propagate_words(plan.graph(model), {k: v[0] for k, v in per_edge.items()})
    predict_timing(plan, model, edge_words=words)
    tot = plan.totals()
    dev = board.device
    record["plan"] = {
        **tot, "lut_pct": 100 * tot["lut"] / dev.lut,
        "max_util": 100 * target.max_util, "clock_mhz": board.clock_mhz,
        "latency_cycles": plan.latency_cycles, "interval_cycles": plan.interval_cycles,
        "interval_exact": plan.interval_exact, "bottleneck": plan.bottleneck.node,
        "images_per_s": plan.images_per_second(board.clock_mhz),
        "event_driven": list(layers),
        "foldings": {k: f"PE={f.pe} SIMD={f.simd}{' event' if f.mode == 'event' else ''}"
                     for k, f in sorted(plan.foldings.items())},
    }
    energy = activity(model, ENERGY_IMAGES)["energy"]
    nj = energy["nj_per_image"]
    record["energy"] = {"nj_per_image": nj, "ac_per_image": energy["ac_per_image"],
                        "mac_per_image": energy["mac_per_image"],
                        "images_per_joule": 1e9 / nj if nj else None,
                        "images": ENERGY_IMAGES}  # the rule: hwgen.reports.activity.ENERGY_RULE
    record["accuracy"] = {"golden": digits_test_accuracy(model) if is_digits_tiny(model)
                          else None, "hardware": None}
    return plan


def _sim_stage(spec: TrialSpec, model, plan, record: dict) -> None:
    if reason := simulator_missing_reason(spec.simulator):
        raise TrialRefused(reason)
    pixels, labels = sample_pixels(model, spec.images, seed=spec.seed)
    rep = simulate_accelerator(plan.graph(model), pixels, labels=labels,
                               simulator=spec.simulator, seed=spec.seed, workers=1)
    spans_off = rep.span_mismatches()
    record["sim"] = {"images": rep.images, "passed": rep.passed, "bit_exact": rep.ok,
                     "mismatch": rep.mismatch, "mismatch_image": rep.mismatch_image,
                     "waveform": str(rep.waveform) if rep.waveform else None,
                     "cycles": rep.cycles, "predicted_cycles": rep.predicted_cycles,
                     "cycles_match": rep.cycles_match, "spans_match": not spans_off,
                     "accuracy": rep.accuracy, "simulator": rep.simulator}
    record["accuracy"]["hardware"] = rep.accuracy
    record["run"]["steps"].update(sim_build=rep.build_seconds, sim=rep.sim_seconds)
    if not rep.ok:
        record["status"], record["reason"] = "mismatch", f"not bit-exact: {rep.mismatch}"
    elif not rep.cycles_match:
        bad = next(k for k, (a, b) in enumerate(zip(rep.cycles, rep.predicted_cycles,
                                                    strict=True)) if a != b)
        record["status"] = "mismatch"
        record["reason"] = (f"cycle prediction off at image {bad}: measured {rep.cycles[bad]}, "
                            f"predicted {rep.predicted_cycles[bad]}")
    elif spans_off:
        record["status"] = "mismatch"
        record["reason"] = f"per-layer cycle prediction off ({len(spans_off)}): {spans_off[0]}"


def _build_stage(spec: TrialSpec, model, board, plan, record: dict, work_dir: Path) -> None:
    if board.vendor:
        raise TrialRefused(f"not built: {board.name} needs {', '.join(board.tools)}, which "
                           "hwgen does not run")
    out = work_dir / "builds" / record["key"]
    res = build(model, board, plan, out, hierarchy=False, images=spec.images)
    ii = res.interval_cycles
    record["build"] = {
        "fmax_mhz": res.fmax_mhz, "clock_mhz": res.clock_mhz, "timing_met": res.timing_met,
        "utilization": {k: v for k, v in res.utilization.items() if v["used"]},
        "synth": res.synth, "top": res.top, "digest": res.digest,
        "images_per_s_at_clock": res.clock_mhz * 1e6 / ii if ii else None,
        "images_per_s_at_fmax": res.fmax_mhz * 1e6 / ii if ii and res.fmax_mhz else None,
        "bitstream": str(res.bitstream) if res.bitstream else None, "dir": str(out)}
    record["run"]["steps"].update(build=res.seconds)
    record["run"]["build_cached"] = res.cached


# ------------------------------------------------------------------------ the trial

def new_record(spec: TrialSpec, key: str) -> dict:
    return {"key": key, "label": spec.label, "params": spec.to_dict(), "stage": spec.stage,
            "status": "ok", "reason": None, "model": None, "plan": None, "energy": None,
            "accuracy": None, "sim": None, "build": None,
            "run": {"seconds": 0.0, "host": socket.gethostname(), "pid": os.getpid(),
                    "steps": {}}}


def failure_record(spec: TrialSpec, key: str, status: str, reason: str,
                   seconds: float) -> dict:
    """The record of a trial that did not return: "timeout" or "crashed"."""
    record = new_record(spec, key)
    record["status"], record["reason"] = status, reason
    record["run"]["seconds"] = seconds
    return record


def run_trial(spec_dict: dict, key: str, work_dir: str) -> dict:
    """Run one trial to its stage; never raises for the trial's own failures: a refusal
    (HwgenError, e.g. "does not fit") and an unexpected exception become the record's
    status and one-line reason."""
    torch.set_num_threads(1)  # one trial per CPU; small tensors (see hwgen.cli.main)
    _quiet_unused()
    spec = TrialSpec.from_dict(spec_dict)
    record = new_record(spec, key)
    start = time.monotonic()
    try:
        mine = trial_key(spec)
        if mine != key:
            raise TrialRefused(f"this worker computes key {mine} for the trial, the driver "
                               f"{key}: its hwgen sources or tool versions differ")
        model = load_model(spec.model, spec.bits, spec.weight_seed)
        board = get_board(spec.board)
        t0 = time.monotonic()
        plan = _plan_stage(spec, model, board, record)
        record["run"]["steps"]["plan"] = time.monotonic() - t0
        if spec.stage == "sim":
            _sim_stage(spec, model, plan, record)
        elif spec.stage == "build":
            _build_stage(spec, model, board, plan, record, Path(work_dir))
    except HwgenError as e:
        record["status"], record["reason"] = "refused", _one_line(str(e))
    except Exception as e:  # noqa: BLE001 - failures are data; the sweep goes on
        record["status"] = "error"
        record["reason"] = _one_line(f"{type(e).__name__}: {e}")
        record["traceback"] = traceback.format_exc(limit=-8)
    record["run"]["seconds"] = time.monotonic() - start
    return record


def _one_line(text: str, limit: int = 400) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "(no message)"
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _quiet_unused() -> None:
    """The planner builds graphs it never elaborates; Amaranth warns about each at exit."""
    warnings.filterwarnings("ignore", category=UnusedElaboratable)
