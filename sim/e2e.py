"""End-to-end verification: the generated accelerator in cocotb against the golden model.

Images are driven whole and the design runs free; after every image the
hardware's per-stream signatures and the result are compared with the golden
model's. On a difference, the images up to the failing one are replayed with
every tapped stream recorded beat by beat and a waveform kept, and the report
names the first differing layer, token, time step and channel. Measured cycles
per image are compared with the cycle-model prediction (hwgen.compiler.predict).
"""

from __future__ import annotations

import os
import random
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from amaranth import Shape

from hwgen.compiler.graph import Graph
from hwgen.compiler.predict import image_cycles, image_timing, needs_words, propagate_words
from hwgen.compiler.top import accelerator_verilog
from hwgen.compiler.twin import cumulative_signatures, first_difference, golden_taps, stream_words
from hwgen.errors import HwgenError
from sim.block_sim import make_pattern
from sim.runner import build_simulator, run_cocotb


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
    # Streamed runs (`stream=True`): per chunk of images sent back to back from reset, each
    # result's cycle counted from the chunk's first input beat; measured and predicted
    # (None where the cycle-model run would be too long).
    stream_cycles: list[list[int]] | None = None
    predicted_stream_cycles: list[list[int]] | None = None

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
        return sum(self.cycles) + sum(c[-1] for c in self.stream_cycles or [] if c)

    @staticmethod
    def _intervals(chunks: list[list[int]] | None) -> list[int]:
        return [b - a for c in chunks or [] for a, b in zip(c, c[1:], strict=False)]

    @property
    def intervals(self) -> list[int]:
        """Measured cycles between consecutive results of images streamed back to back."""
        return self._intervals(self.stream_cycles)

    @property
    def predicted_intervals(self) -> list[int] | None:
        if self.predicted_stream_cycles is None:
            return None
        return self._intervals(self.predicted_stream_cycles)

    @property
    def stream_match(self) -> bool | None:
        """Whether every streamed result came in the predicted cycle (None: not predicted)."""
        if self.stream_cycles is None or self.predicted_stream_cycles is None:
            return None
        return self.stream_cycles == self.predicted_stream_cycles


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


def predict_images(graph: Graph, n: int, per_edge: dict[str, list[list[int]]],
                   alone: tuple[int, dict[str, tuple[int, int]]] | None = None
                   ) -> tuple[list[int], list[dict[str, tuple[int, int]]]]:
    """Cycle-model prediction per image, each alone in an idle accelerator: its result
    cycle and its tapped streams' first/last beats (`hwgen.compiler.predict.image_timing`). One model
    run serves every image unless event-driven layers make timing depend on the data;
    `alone` is that run's result when already made (the planner's, for a dense plan)."""
    if not needs_words(graph):
        cycles, spans = alone if alone is not None else image_timing(graph)
        return [cycles] * n, [spans] * n
    runs = [image_timing(graph, edge_words=propagate_words(
        graph, {k: v[b] for k, v in per_edge.items()})) for b in range(n)]
    return [c for c, _ in runs], [s for _, s in runs]


# Longest streamed run the cycle models predict beat by beat (they step every cycle in
# Python); dense plans need no such run (their results are periodic after the first two).
STREAM_MODEL_CYCLES = 2_000_000


def predict_stream(graph: Graph, per_edge: dict[str, list[list[int]]], lo: int, hi: int,
                   first_alone: int, dense_runs: dict[int, list[int]] | None = None
                   ) -> list[int] | None:
    """Each result's cycle when images lo..hi-1 are offered back to back from reset
    (`first_alone`: image lo's predicted cycles alone, which bounds the model run's length).

    Dense: the first two from the cycle models, then one interval apart (every image takes
    the same time, so the pipeline repeats; the measurement checks it). Event-driven: the
    cycle models on those images' own streams, or None when that run would be too long.
    `dense_runs` keeps the dense model runs by image count, so that chunks of the same
    plan share one run (it does not depend on which images)."""
    n = hi - lo
    if not needs_words(graph):
        k = min(n, 3)
        runs = {} if dense_runs is None else dense_runs
        if k not in runs:
            runs[k] = image_cycles(graph, images=k)
        first = list(runs[k])
        if n <= 3:
            return first
        ii = first[2] - first[1]
        return first + [first[2] + k * ii for k in range(1, n - 2)]
    if first_alone * n > STREAM_MODEL_CYCLES:
        return None
    words = {k: [w for b in range(lo, hi) for w in v[b]] for k, v in per_edge.items()}
    return image_cycles(graph, images=n, edge_words=propagate_words(graph, words))


def simulate_accelerator(graph: Graph, pixels: torch.Tensor, *, labels: list[int] | None = None,
                         simulator: str = "verilator", seed: int = 0, gap: float = 0.0,
                         backpressure: float = 0.0, workers: int = 1, timeout: int | None = None,
                         tag: str = "accel", progress=None, stream: bool = False,
                         map_chunks=None, dense_runs: dict[int, list[int]] | None = None,
                         alone: tuple[int, dict[str, tuple[int, int]]] | None = None
                         ) -> AcceleratorReport:
    """Run the accelerator on `pixels` [B, C, H, W] and compare everything with the golden model.

    Each image alone (its result, every layer's stream and cycles), or with `stream` the
    first image of each worker's chunk alone and then, from a fresh reset, the whole chunk
    back to back (results, the layers' streams, each result's cycle).

    With `workers` > 1 the images are split into that many chunks, simulated in local
    processes, or by `map_chunks(fn, chunks) -> results in order` when given (Ray tasks
    across machines: hwgen.sweep.executors.ray_chunk_map).

    Cycle-model runs of this graph already made (dense plans; the planner's) are used
    instead of running the models again: `dense_runs`, image count -> each result's cycle
    with the images back to back from reset (`Plan.stream_cycles` for 3), and `alone`,
    one image's (result cycle, tapped streams' spans) (`Plan.latency_cycles`,
    `Plan.alone_spans`)."""
    start = time.monotonic()
    verilog = accelerator_verilog(graph, taps=True)
    n = pixels.shape[0]
    workers = max(1, min(workers, n))
    bounds = [round(k * n / workers) for k in range(workers + 1)]
    chunks = [(bounds[k], bounds[k + 1]) for k in range(workers)]
    streamed = stream and not (gap or backpressure)
    # The simulator compiles (g++, in other processes) while this process runs the golden
    # model and the cycle models: on a cold cache that hides most of one of the two.
    with ThreadPoolExecutor(1) as builder:
        build = builder.submit(build_simulator, verilog, simulator=simulator, tag=tag)
        taps = golden_taps(graph, pixels)
        inputs, per_edge, results = stream_words(graph, pixels, taps)
        predicted, spans_predicted = predict_images(graph, n, per_edge, alone)
        if streamed:
            runs = dict(dense_runs or {})
            preds = [predict_stream(graph, per_edge, lo, hi, predicted[lo], runs)
                     for lo, hi in chunks]
        build_seconds = build.result().seconds
    timeout = timeout or max(predicted) * 20 + 10_000

    def stim(lo, hi, **extra):
        s = _stimulus(graph, inputs[lo:hi], {k: v[lo:hi] for k, v in per_edge.items()},
                      results[lo:hi], seed=seed, gap=gap, backpressure=backpressure,
                      timeout=timeout)
        s.update(extra)
        return s

    def stream_stim(lo, hi):
        return stim(lo, lo + 1, stream=True, stream_images=inputs[lo:hi])

    make = stream_stim if streamed else stim
    jobs = [(verilog, make(lo, hi), simulator, tag, False) for lo, hi in chunks]
    if progress:
        how = "Ray task(s)" if map_chunks is not None and workers > 1 else "process(es)"
        progress(f"simulating {n} images on {simulator} ({workers} {how})")
    # Built above: each chunk's run finds the build done (sim.runner.build_simulator).
    if workers == 1:
        outs = [_run_chunk(jobs[0])]
    elif map_chunks is not None:
        outs = list(map_chunks(_run_chunk, jobs))
    else:
        with ProcessPoolExecutor(workers) as pool:
            outs = list(pool.map(_run_chunk, jobs))
    if streamed:
        outs, stream_cycles = _check_streams(graph, per_edge, results, chunks, outs, stim,
                                             verilog, simulator, tag)
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
    if streamed:
        report.stream_cycles = stream_cycles
        report.predicted_stream_cycles = None if any(p is None for p in preds) else preds
        report.predicted_cycles = [predicted[lo] for lo, _ in chunks][:len(cycles)]
        report.predicted_spans = [spans_predicted[lo] for lo, _ in chunks][:len(spans)] \
            if spans else None
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


def _check_streams(graph, per_edge, results, chunks, outs, stim, verilog, simulator, tag):
    """Check each chunk's streamed run: its results and, after its last image, every layer
    stream's beat count and signature. A chunk that differs is run again image by image
    (no stream), so the first differing image is found and located as without streaming.
    Returns the outputs to report from and each chunk's streamed result cycles."""
    widths = _tap_widths(graph)
    checked, stream_cycles = [], []
    for (lo, hi), out in zip(chunks, outs, strict=True):
        s = out.get("stream") or {}
        expected_taps = cumulative_signatures(
            graph, {k: v[lo:hi] for k, v in per_edge.items()}, widths)[-1]
        good = (out.get("first_bad") is None and s.get("results") == results[lo:hi]
                and s.get("taps") == expected_taps)
        if good:
            checked.append(dict(out, results=s["results"]))
            stream_cycles.append(s["cycles"])
        else:  # find the first bad image the slow way
            again = _run_chunk((verilog, stim(lo, hi), simulator, tag, False))
            if again.get("first_bad") is None:  # only the streamed run differed
                got = s.get("results") or []
                again["first_bad"] = next(
                    (k for k, (a, b) in enumerate(zip(got, results[lo:hi], strict=False))
                     if a != b), min(len(got), hi - lo - 1))
            checked.append(again)
            stream_cycles.append(s.get("cycles") or [])
    return checked, stream_cycles


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
