"""End-to-end verification: the generated accelerator in cocotb against the golden model.

Images are driven whole and the design runs free; after every image the
hardware's per-stream signatures and the result are compared with the golden
model's. On a difference, the images up to the failing one are replayed with
every tapped stream recorded beat by beat and a waveform kept, and the report
names the first differing layer, token, time step and channel. Measured cycles
per image are compared with the cycle-model prediction (hwgen.predict).
"""

from __future__ import annotations

import os
import random
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from amaranth import Shape

from hwgen.graph import Graph
from hwgen.predict import image_timing, needs_words, propagate_words
from hwgen.top import accelerator_verilog
from quant.errors import HwgenError
from sim.block_sim import make_pattern
from sim.runner import run_cocotb
from sim.twin import cumulative_signatures, first_difference, golden_taps, stream_words


class MismatchError(HwgenError):
    """The hardware disagreed with the golden model; the message says where."""


@dataclass
class AcceleratorReport:
    images: int
    passed: int
    predictions: list[int]
    golden_predictions: list[int]
    cycles: list[int]  # measured, per image: first input beat .. result beat
    predicted_cycles: list[int]
    labels: list[int] | None = None
    mismatch: str | None = None
    mismatch_image: int | None = None
    waveform: Path | None = None
    seconds: float = 0.0  # wall time of the whole check
    build_seconds: float = 0.0  # compiling the simulator (0 when cached)
    sim_seconds: float = 0.0  # simulating (the slowest of the parallel processes)
    simulator: str = "verilator"
    notes: list[str] = field(default_factory=list)
    # Per image, per tapped stream: (first beat, last beat), the image's first input beat
    # being cycle 1; measured (None under gaps or backpressure) and predicted.
    spans: list[dict[str, tuple[int, int]]] | None = None
    predicted_spans: list[dict[str, tuple[int, int]]] | None = None

    @property
    def ok(self) -> bool:
        return self.mismatch is None and self.passed == self.images

    @property
    def cycles_match(self) -> bool:
        return self.cycles == self.predicted_cycles

    def span_mismatches(self) -> list[str]:
        """Streams whose measured first/last beat differs from the prediction, as text."""
        if self.spans is None or self.predicted_spans is None:
            return []
        return [f"image {n}, {name}: measured beats {got[0]}..{got[1]}, predicted "
                f"{exp[name][0]}..{exp[name][1]}"
                for n, (spans, exp) in enumerate(zip(self.spans, self.predicted_spans,
                                                     strict=False))
                for name, got in spans.items() if tuple(got) != tuple(exp[name])]

    @property
    def accuracy(self) -> float | None:
        if not self.labels:
            return None
        hits = sum(int(p == y) for p, y in zip(self.predictions, self.labels, strict=False))
        return hits / len(self.labels)

    @property
    def simulated_cycles(self) -> int:
        return sum(self.cycles)


def _tap_widths(graph: Graph) -> list[int]:
    return [Shape.cast(graph.port(e.src).payload.shape()).width for e in graph.tapped()]


def _stimulus(graph, inputs, per_edge, results, *, seed, gap, backpressure, timeout) -> dict:
    widths = _tap_widths(graph)
    rng = random.Random(seed)
    return {
        "seed": seed, "timeout": timeout, "images": inputs,
        "taps": [{"name": e.name, "width": w} for e, w in zip(graph.tapped(), widths, strict=True)],
        "expected": {"results": results,
                     "taps": cumulative_signatures(graph, per_edge, widths)},
        "idle": make_pattern(rng, gap), "stall": make_pattern(rng, backpressure),
    }


def _run_chunk(args) -> dict:
    verilog, stimulus, simulator, tag, waves = args
    res = run_cocotb(verilog, "sim.cocotb_tests.accelerator", stimulus, simulator=simulator,
                     tag=tag, waves=waves)
    data = dict(res.data)
    data["waveform"] = str(res.waves) if res.waves else None
    data["build_seconds"], data["run_seconds"] = res.build_seconds, res.run_seconds
    return data


def predict_images(graph: Graph, n: int, per_edge: dict[str, list[list[int]]]
                   ) -> tuple[list[int], list[dict[str, tuple[int, int]]]]:
    """Cycle-model prediction per image, each alone in an idle accelerator: its result
    cycle and its tapped streams' first/last beats (`hwgen.predict.image_timing`). One model
    run serves every image unless event-driven layers make timing depend on the data."""
    if not needs_words(graph):
        cycles, spans = image_timing(graph)
        return [cycles] * n, [spans] * n
    runs = [image_timing(graph, edge_words=propagate_words(
        graph, {k: v[b] for k, v in per_edge.items()})) for b in range(n)]
    return [c for c, _ in runs], [s for _, s in runs]


def simulate_accelerator(graph: Graph, pixels: torch.Tensor, *, labels: list[int] | None = None,
                         simulator: str = "verilator", seed: int = 0, gap: float = 0.0,
                         backpressure: float = 0.0, workers: int = 1, timeout: int | None = None,
                         tag: str = "accel", progress=None, map_chunks=None) -> AcceleratorReport:
    """Run the accelerator on `pixels` [B, C, H, W] and compare everything with the golden model.

    With `workers` > 1 the images are split into that many chunks, simulated in local
    processes, or by `map_chunks(fn, chunks) -> results in order` when given (Ray tasks
    across machines: hwgen.sweep.executors.ray_chunk_map)."""
    start = time.monotonic()
    taps = golden_taps(graph, pixels)
    inputs, per_edge, results = stream_words(graph, pixels, taps)
    predicted, spans_predicted = predict_images(graph, pixels.shape[0], per_edge)
    timeout = timeout or max(predicted) * 20 + 10_000
    verilog = accelerator_verilog(graph, taps=True)
    n = pixels.shape[0]
    workers = max(1, min(workers, n))
    bounds = [round(k * n / workers) for k in range(workers + 1)]
    chunks = [(bounds[k], bounds[k + 1]) for k in range(workers)]

    def stim(lo, hi, **extra):
        s = _stimulus(graph, inputs[lo:hi], {k: v[lo:hi] for k, v in per_edge.items()},
                      results[lo:hi], seed=seed, gap=gap, backpressure=backpressure,
                      timeout=timeout)
        s.update(extra)
        return s

    jobs = [(verilog, stim(lo, hi), simulator, tag, False) for lo, hi in chunks]
    if progress:
        how = "Ray task(s)" if map_chunks is not None and workers > 1 else "process(es)"
        progress(f"simulating {n} images on {simulator} ({workers} {how})")
    build_seconds = 0.0
    if workers == 1:
        outs = [_run_chunk(jobs[0])]
        build_seconds = outs[0]["build_seconds"]
    else:
        # Build once (a one-image run), then simulate the chunks in parallel.
        build_seconds = _run_chunk((verilog, stim(0, min(1, n)), simulator, tag, False))[
            "build_seconds"]
        if map_chunks is not None:
            outs = list(map_chunks(_run_chunk, jobs))
        else:
            with ProcessPoolExecutor(workers) as pool:
                outs = list(pool.map(_run_chunk, jobs))
    got_results, cycles, first_bad = [], [], None
    names = [e.name for e in graph.tapped()]
    spans = None if gap or backpressure else []
    for (lo, _hi), out in zip(chunks, outs, strict=True):
        got_results += out["results"]
        cycles += out["cycles"]
        if spans is not None:
            spans += [{k: tuple(s) for k, s in zip(names, image, strict=True)}
                      for image in out.get("spans") or []]
        if out.get("first_bad") is not None and first_bad is None:
            first_bad = lo + out["first_bad"]
    report = AcceleratorReport(
        images=n, passed=0, predictions=[_cls(graph, w) for w in got_results],
        golden_predictions=[int(p) for p in taps["pred"]], cycles=cycles,
        predicted_cycles=predicted[:len(cycles)], labels=labels, simulator=simulator,
        spans=spans, predicted_spans=spans_predicted[:len(spans)] if spans else None)
    if first_bad is None:
        report.passed = len(got_results)
        if len(got_results) != n:
            report.mismatch = f"only {len(got_results)} of {n} images produced a result"
    else:
        report.passed = first_bad
        report.mismatch_image = first_bad
        report.mismatch, report.waveform = _locate(graph, inputs, per_edge, results, chunks,
                                                   first_bad, stim, verilog, simulator, tag)
    report.seconds = time.monotonic() - start
    report.build_seconds = build_seconds
    report.sim_seconds = max(o["run_seconds"] for o in outs)
    return report


def _cls(graph: Graph, word: int) -> int:
    bits = max(1, (graph.output_tap.channels - 1).bit_length())
    return word & ((1 << bits) - 1)


def _locate(graph, inputs, per_edge, results, chunks, bad, stim, verilog, simulator, tag):
    """Replay up to image `bad` recording every tap; name the first differing beat."""
    lo = next(c_lo for c_lo, c_hi in chunks if c_lo <= bad < c_hi)
    replay = stim(lo, bad + 1, record_taps_of_image=bad - lo)
    out = _run_chunk((verilog, replay, simulator, tag + "-waves", True))
    recorded = out.get("recorded", {})
    for edge in graph.tapped():
        got = recorded.get(edge.name, [])
        diff = first_difference(edge.tap.keys[0] if len(edge.tap.keys) == 1
                                else "+".join(edge.tap.keys), edge.tap,
                                per_edge[edge.name][bad], got)
        if diff:
            return f"image {bad}: {diff}", Path(out["waveform"]) if out.get("waveform") else None
    word = out["results"][-1] if out.get("results") else None
    msg = (f"image {bad}: result {word:#x} != expected {results[bad]:#x} (every layer tap agreed)"
           if word is not None else f"image {bad}: no result")
    return msg, Path(out["waveform"]) if out.get("waveform") else None


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))
