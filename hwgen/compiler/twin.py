"""The software twin of the accelerator's streams: golden-model taps as beat words.

For every tapped stream of an accelerator graph, `stream_words` packs the
golden model's tap tensors into exactly the beats the hardware must carry
(docs/hardware.md), so the end-to-end check compares integers, never
floats or shapes. `describe_beat` turns a beat index back into (token, time
step, channel group) for mismatch reports.
"""

from __future__ import annotations

import numpy as np
import torch

from hwgen.compiler.graph import Graph, TapSpec
from quant import golden
from rtl_templates.common import pack_spikes, pack_values
from rtl_templates.tap import signature


def _token_major(tensor: torch.Tensor, image: int) -> np.ndarray:
    """[T, B, C, H, W] -> [N, T, C] for one image (token n = y*W + x)."""
    t = tensor[:, image]
    steps, c, h, w = t.shape
    return t.permute(2, 3, 0, 1).reshape(h * w, steps, c).numpy()


def tap_words(spec: TapSpec, taps: dict[str, torch.Tensor], pixels: torch.Tensor,
              image: int) -> list[int]:
    """Beat words of one stream for one image."""
    if spec.kind == "pixels":
        px = pixels[image].to(torch.int64)  # [C, H, W]
        c, h, w = px.shape
        flat = px.permute(1, 2, 0).reshape(h * w, c).tolist()
        return [sum(int(v) << (k * spec.width) for k, v in enumerate(row)) for row in flat]
    if spec.kind == "result":
        logits = taps["logits"][image].tolist()
        cls = int(taps["pred"][image])
        cls_bits = max(1, (spec.channels - 1).bit_length())
        word = cls
        mask = (1 << spec.width) - 1
        for k, v in enumerate(logits):
            word |= (int(v) & mask) << (cls_bits + k * spec.width)
        return [word]
    parts = [_token_major(taps[key], image) for key in spec.keys]
    arr = np.concatenate(parts, axis=2) if len(parts) > 1 else parts[0]
    if arr.shape[2] != spec.channels:
        raise ValueError(f"tap {spec.keys}: {arr.shape[2]} channels, stream has {spec.channels}")
    if spec.kind == "spikes":
        return pack_spikes(arr)
    if spec.steps == 1:
        arr = arr[:, :1, :]  # computed once per token (direct encoding)
    words = pack_values(arr, spec.width, spec.lanes)
    if spec.tile_major:  # token-major (n, g, t) -> the engine's (g, n, t)
        n, g, t = arr.shape[0], spec.channels // spec.lanes, arr.shape[1]
        words = np.asarray(words, dtype=object).reshape(n, g, t).transpose(1, 0, 2)
        words = words.reshape(-1).tolist()
    return words


def beat_position(spec: TapSpec, beat: int) -> tuple[int, int, int]:
    """(token, channel group, time step) of beat `beat` of a values stream."""
    groups = spec.channels // spec.lanes
    if spec.tile_major:
        grp, rest = divmod(beat, (spec.grid[0] * spec.grid[1]) * spec.steps)
        tok, t = divmod(rest, spec.steps)
        return tok, grp, t
    tok, rest = divmod(beat, groups * spec.steps)
    grp, t = divmod(rest, spec.steps)
    return tok, grp, t


def golden_taps(graph: Graph, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
    return golden.run(graph.model, pixels, taps=True)


def stream_words(graph: Graph, pixels: torch.Tensor, taps: dict[str, torch.Tensor] | None = None
                 ) -> tuple[list[list[int]], dict[str, list[list[int]]], list[int]]:
    """(input words per image, tapped edge name -> words per image, result word per image)."""
    taps = golden_taps(graph, pixels) if taps is None else taps
    images = pixels.shape[0]
    inputs = [tap_words(graph.input_tap, taps, pixels, b) for b in range(images)]
    per_edge = {e.name: [tap_words(e.tap, taps, pixels, b) for b in range(images)]
                for e in graph.tapped()}
    results = [tap_words(graph.output_tap, taps, pixels, b)[0] for b in range(images)]
    return inputs, per_edge, results


def cumulative_signatures(graph: Graph, per_edge: dict[str, list[list[int]]],
                          widths: list[int]) -> list[list[list[int]]]:
    """Per image, per tap: [beat count, signature] after that image (taps never reset)."""
    edges = graph.tapped()
    state = [[0, 0] for _ in edges]
    out = []
    for b in range(len(next(iter(per_edge.values()))) if per_edge else 0):
        for k, e in enumerate(edges):
            words = per_edge[e.name][b]
            state[k] = [state[k][0] + len(words), signature(words, widths[k], state[k][1])]
        out.append([list(s) for s in state])
    return out


def first_difference(name: str, spec: TapSpec, expected: list[int], got: list[int]) -> str | None:
    """The first beat where `got` differs from `expected`, as layer, token, time step, channel
    and the two integers; None when equal."""
    h, w = spec.grid
    for beat, (want, have) in enumerate(zip(expected, got, strict=False)):
        if want == have:
            continue
        if spec.kind == "spikes":
            tok, t = divmod(beat, spec.steps)
            diff = want ^ have
            ch = (diff & -diff).bit_length() - 1
            return (f"{name}: token {tok} (y={tok // w}, x={tok % w}), time step {t}, "
                    f"channel {ch}: expected spike {(want >> ch) & 1}, got {(have >> ch) & 1}")
        if spec.kind == "values":
            tok, grp, t = beat_position(spec, beat)
            mask, sign = (1 << spec.width) - 1, 1 << (spec.width - 1)
            for j in range(spec.lanes):
                a, b = (want >> (j * spec.width)) & mask, (have >> (j * spec.width)) & mask
                if a != b:
                    a, b = (a - (mask + 1) if a & sign else a), (b - (mask + 1) if b & sign else b)
                    return (f"{name}: token {tok} (y={tok // w}, x={tok % w}), time step {t}, "
                            f"channel {grp * spec.lanes + j}: expected {a}, got {b}")
        return f"{name}: beat {beat}: expected {want:#x}, got {have:#x}"
    if len(expected) != len(got):
        return f"{name}: expected {len(expected)} beats, got {len(got)}"
    return None
