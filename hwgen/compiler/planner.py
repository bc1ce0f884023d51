"""The planner: choose every layer's folding for a target, and predict the plan's timing.

`make_plan` starts every layer at its smallest folding and repeatedly widens
the layer that bounds throughput, as long as the whole design still fits the
target (a device under a LUT ceiling, an explicit budget) and a frame-rate
goal is not yet met. A model that cannot fit even fully folded is refused
before anything is synthesised, with the predicted need against the capacity.
"""

from __future__ import annotations

from dataclasses import replace

from hwgen.compiler.graph import Folding
from hwgen.compiler.plan import LayerPlan, Plan, plan_for
from hwgen.compiler.predict import image_cycles, image_timing, needs_words, propagate_words
from hwgen.compiler.stats import DEFAULT_CALIBRATION_IMAGES, SpikeStats, calibrate
from hwgen.compiler.target import ModelTooLarge, Target
from hwgen.compiler.twin import stream_words
from hwgen.errors import HwgenError
from quant.ir import IntModel

# --------------------------------------------------------------------------- planner

def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _next_divisor(n: int, current: int) -> int | None:
    bigger = [d for d in _divisors(n) if d > current]
    return bigger[0] if bigger else None


def over_limits(plan: Plan) -> list[str]:
    """The limits a plan exceeds, as 'LUT 6000 > 4224'."""
    tot = plan.totals()
    return [f"{k.upper()} {tot[k]} > {cap}" for k, cap in plan.target.limits().items()
            if tot.get(k, 0) > cap]


def _knobs(model: IntModel, node: LayerPlan, auto: frozenset[str] = frozenset()) -> list[str]:
    """The folding knobs that speed up the block `node` plans; "event:LAYER" first for a
    layer in `auto` (its dense or event-driven mode chosen from spike statistics)."""
    layer = node.layer or ""
    if node.kind in ("linear", "lif_linear", "spike_conv", "pixel_conv", "head"):
        if layer == "rpe" or layer.endswith((".o", ".fc2")):
            knobs = [f"simd:{layer}", "lanes"]  # their PE is the residual stream's lanes
        else:
            knobs = [f"simd:{layer}", f"pe:{layer}"]
        if layer in auto and node.kind in EVENT_KINDS and not node.event:
            knobs.insert(0, f"event:{layer}")
        return knobs
    if node.kind == "lif":
        # A LIF array's lanes follow the PE of the block that feeds it.
        if layer.endswith("qk_lif"):
            return [f"pe:{layer[:-4]}"]
        if layer.endswith("fc1_lif"):
            return [f"pe:{layer[:-4]}"]
        if layer.startswith("stem."):
            return [f"pe:{layer[:-4]}.conv"]
        return ["lanes"]
    if node.kind == "dwconv" and layer in auto and not node.event:
        return [f"event:{layer}", "lanes"]
    if node.kind in ("dwconv", "add"):
        return ["lanes"]
    return []


# The blocks that can run event-driven (visit only the input spikes), and how each widens
# when dense: its SIMD, or for the DWC (which has none) the residual stream's lanes.
EVENT_KINDS = ("linear", "lif_linear", "spike_conv", "dwconv", "head")


def _dense_knob(layer: str) -> str:
    return "lanes" if layer.endswith(".dwc") else f"simd:{layer}"


def _event_folding(layer: str, f: Folding) -> Folding:
    """`layer` switched to event-driven: a spike conv keeps its SIMD (a unit of that many
    channels is skipped when it holds no spike), the others take SIMD 1."""
    return Folding(f.pe, f.simd if _is_spike_conv(layer) else 1, "event")


def _is_spike_conv(layer: str) -> bool:
    return layer == "rpe" or layer.startswith("stem.")


def _try_knob(model: IntModel, plan: Plan, knob: str) -> tuple[dict[str, Folding], int] | None:
    """The foldings with `knob` one step wider, or None when it is at its widest."""
    foldings, lanes = dict(plan.foldings), plan.lanes_u
    cfg = model.config
    if knob == "lanes":
        nxt = _next_divisor(cfg.dim, lanes)
        return None if nxt is None else (foldings, nxt)
    what, layer = knob.split(":")
    f = foldings.get(layer, Folding())
    if what == "event":
        if f.mode == "event":
            return None
        foldings[layer] = _event_folding(layer, f)
        return foldings, lanes
    shape = _layer_shape(model, layer)
    if shape is None:
        return None
    outs, ins = shape
    if what == "simd":
        nxt = _next_divisor(ins, f.simd)
        if nxt is None or (f.mode == "event" and not _is_spike_conv(layer)):
            return None
        foldings[layer] = replace(f, simd=nxt)
    else:
        nxt = _next_divisor(outs, f.pe)
        if nxt is None:
            return None
        foldings[layer] = replace(f, pe=nxt)
    return foldings, lanes


def _layer_shape(model: IntModel, layer: str) -> tuple[int, int] | None:
    """(outputs, inputs per SIMD step) of a foldable layer."""
    cfg = model.config
    if layer.startswith("stem."):
        conv = model.stem[int(layer.split(".")[1])].conv
        return conv.out_channels, conv.in_channels
    if layer == "rpe":
        return cfg.dim, model.rpe.in_channels
    if layer == "head":
        return cfg.num_classes, cfg.dim
    if layer.startswith("blocks."):
        name = layer.split(".")[2]
        return {"qk": (2 * cfg.dim, cfg.dim), "o": (cfg.dim, cfg.dim),
                "fc1": (cfg.hidden, cfg.dim), "fc2": (cfg.dim, cfg.hidden)}.get(name)
    return None


def _dense_matches(model: IntModel, plan: Plan, event: Plan, layer: str,
                   stats: SpikeStats | None) -> bool:
    """Whether dense `layer`, its SIMD (a DWC: the residual lanes) widened until it costs as
    many LUTs as the event-driven `event` plan, is at least as fast as event-driven: then
    the mode stays dense."""
    cost = event.totals()["lut"]
    ev_cycles = max(x.cycles for x in event.layers if x.layer == layer)
    current = plan
    while True:
        here = max(x.cycles for x in current.layers if x.layer == layer)
        if here <= ev_cycles:
            return True
        if current.totals()["lut"] >= cost:
            return False
        step = _try_knob(model, current, _dense_knob(layer))
        if step is None:
            return False
        current = plan_for(model, plan.target, *step, plan.lif_block, plan.fuse, stats)


def make_plan(model: IntModel, target: Target, *, event_layers: tuple[str, ...] = (),
              max_steps: int = 200, stats: SpikeStats | None = None,
              auto_event: tuple[str, ...] = ()) -> Plan:
    """Fold `model` for `target` (see the module docstring). `event_layers` names layers
    (`event_capable`) to run event-driven; each layer of `auto_event` becomes event-driven when the
    measured spikes (`stats`) make that faster than dense at the same LUT cost and it fits.
    With `stats`, event-driven layers' cycles are their mean over the calibration images."""
    foldings = {name: _event_folding(name, Folding()) for name in event_layers}
    auto = frozenset(auto_event) - set(event_layers) if stats is not None else frozenset()
    lanes = 1
    # On an iCE40 logic cells are the scarce resource: the MLP's LIF arrays are fused with
    # the linears they feed (their spikes kept once, in block RAM), and the other LIF
    # arrays keep their spikes in spare block RAMs.
    fuse = frozenset(f"blocks.{b}.{fc}" for b in range(len(model.blocks))
                     for fc in ("fc1", "fc2")) if target.family == "ice40" else frozenset()
    plan = plan_for(model, target, foldings, lanes, fuse=fuse, stats=stats)
    if target.family == "ice40" and target.device is not None:
        plan = _lifs_to_block_ram(model, target, plan)
    over = over_limits(plan)
    if over:
        need = plan.totals()
        caps = target.limits()
        raise ModelTooLarge(
            f"{model.config.name} does not fit {target.device.name if target.device else 'the budget'}"
            f" even fully folded: needs " + ", ".join(
                f"{k.upper()} {need[k]} (limit {caps[k]}, {need[k] - caps[k]:+d})"
                for k in caps if need.get(k, 0) > caps[k]))
    return widen(model, target, plan, max_steps=max_steps, stats=stats, auto=auto)


def widen(model: IntModel, target: Target, plan: Plan, *, max_steps: int = 200,
          stats: SpikeStats | None = None, auto: frozenset[str] = frozenset()) -> Plan:
    """Widen `plan`'s slowest block, one knob step at a time, while the plan fits `target`
    and the bottleneck gets no slower (up to `max_steps` steps, or until `target.fps`).
    With an external-weight body (`plan.body`) the residual lanes stay the body's PE, and
    the widening stops when the body is the slowest block (its folding is fixed)."""
    exhausted: set[str] = set()
    for _ in range(max_steps):
        if target.fps and (ips := plan.images_per_second(target.clock_mhz)) and ips >= target.fps:
            break
        slow = sorted(plan.layers, key=lambda x: -x.cycles)
        improved = False
        for layer_plan in slow[:1]:
            for knob in _knobs(model, layer_plan, auto):
                if knob in exhausted or (knob == "lanes" and plan.body is not None):
                    continue
                proposal = _try_knob(model, plan, knob)
                if proposal is None:
                    exhausted.add(knob)
                    continue
                candidate = plan_for(model, target, *proposal, plan.lif_block, plan.fuse, stats,
                                     body=plan.body)
                if over_limits(candidate) or candidate.bottleneck.cycles > plan.bottleneck.cycles:
                    exhausted.add(knob)
                    continue
                if knob.startswith("event:") and _dense_matches(
                        model, plan, candidate, knob.split(":")[1], stats):
                    exhausted.add(knob)
                    continue
                plan, improved = candidate, True
                break
        if not improved:
            break
    return plan


def _lifs_to_block_ram(model: IntModel, target: Target, plan: Plan) -> Plan:
    """On an iCE40, logic cells run out before block RAM: move the LIF arrays' spike
    storage into spare block RAMs, biggest first, while they last."""
    lifs = sorted((x for x in plan.layers if x.kind == "lif"), key=lambda x: -x.total_ff)
    for lif in lifs:
        candidate = plan_for(model, target, plan.foldings, plan.lanes_u,
                             plan.lif_block | {lif.node}, plan.fuse, plan.stats)
        if candidate.totals()["bram"] > target.limits().get("bram", 0):
            break
        plan = candidate
    return plan


# Above this many modelled cycles the interval comes from the bottleneck block instead of a
# three-image run of the cycle models (which steps every cycle in Python: about 90 s a
# million cycles of cifar-mid on a busy 2-core machine). cifar-mid's three images are
# 652 k cycles: its interval is 191,232, where its slowest block alone (the RPE conv)
# would say 147,456.
EXACT_INTERVAL_CYCLES = 1_000_000


def predict_timing(plan: Plan, model: IntModel, edge_words=None,
                   exact_limit: int = EXACT_INTERVAL_CYCLES) -> Plan:
    """Fill the plan's latency (from the cycle models: one image alone) and its initiation
    interval. Dense plans: exact from three images back to back. Plans with event-driven
    layers and spike statistics: the calibration images' own streams, the latency of the
    first alone and the interval the mean over them back to back. Either falls back to the
    bottleneck block's cycles (an estimate) when the model run would be longer than
    `exact_limit` cycles.
    `edge_words` (one image's words per edge) replaces the statistics, as before them."""
    graph = plan.graph(model).for_models_only()
    per_image = None
    if edge_words is None and needs_words(graph) and plan.stats is not None:
        _, per_edge, _ = stream_words(graph, plan.stats.pixels)
        per_image = [propagate_words(graph, {k: v[b] for k, v in per_edge.items()})
                     for b in range(plan.stats.images)]
        edge_words = per_image[0]
    if edge_words is None and not needs_words(graph):  # dense: keep the layers' spans too
        one, plan.alone_spans = image_timing(graph)
    else:
        one = image_cycles(graph, images=1, edge_words=edge_words)[0]
    plan.latency_cycles = one
    if per_image is not None and len(per_image) >= 2 and 2 * one <= exact_limit:
        n = max(2, min(len(per_image), exact_limit // one))
        words = {k: [w for image in per_image[:n] for w in image[k]] for k in per_image[0]}
        cycles = image_cycles(graph, images=n, edge_words=words)
        plan.interval_cycles = round((cycles[-1] - cycles[0]) / (n - 1))
        plan.interval_basis = "mean"
    elif per_image is None and 3 * one <= exact_limit:
        words3 = {k: list(v) * 3 for k, v in edge_words.items()} if edge_words else None
        three = image_cycles(graph, images=3, edge_words=words3)
        plan.interval_cycles = three[2] - three[1]
        plan.interval_basis = "exact"
        plan.stream_cycles = list(three) if edge_words is None else None
    else:
        plan.interval_cycles = plan.bottleneck.cycles
        plan.interval_basis = "bottleneck"
    return plan


def event_capable(model: IntModel) -> list[str]:
    """The layers `event_layers` may name: the stem's spike-input convs, the RPE conv,
    every block's spike linears and DWC, and the head."""
    stem = [f"stem.{i}.conv" for i, stage in enumerate(model.stem) if not stage.conv.pixel_input]
    blocks = [f"blocks.{b}.{n}" for b in range(model.config.depth)
              for n in ("qk", "o", "fc1", "fc2", "dwc")]
    return [*stem, "rpe", *blocks, "head"]


def event_choice(model: IntModel, choice: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`--event-driven` as (layers forced event-driven, layers chosen automatically):
    "auto" (every event-capable layer, from its measured spikes), "all", "none", or a
    comma-separated list of event-capable layers (`event_capable`)."""
    known = event_capable(model)
    text = (choice or "auto").strip()
    if text == "auto":
        return (), tuple(known)
    if text == "all":
        return tuple(known), ()
    if text == "none":
        return (), ()
    layers = tuple(x.strip() for x in text.split(",") if x.strip())
    unknown = [x for x in layers if x not in known]
    if unknown:
        raise HwgenError(f"--event-driven: {unknown[0]!r} cannot run event-driven; "
                         f"choose auto, all, none or from {', '.join(sorted(known))}")
    return layers, ()


def plan_model(model: IntModel, target: Target, *, event: str = "auto", timing: bool = True,
               max_steps: int = 200, calib: int = DEFAULT_CALIBRATION_IMAGES,
               seed: int = 0, stats: SpikeStats | None = None) -> Plan:
    """Measure the spike statistics on `calib` calibration images (unless `stats` are
    given), plan with the event-driven choice `event` (see `event_choice`), then (with
    `timing`) predict latency and interval."""
    forced, auto = event_choice(model, event)
    stats = stats if stats is not None else calibrate(model, calib, seed=seed)
    plan = make_plan(model, target, event_layers=forced, max_steps=max_steps, stats=stats,
                     auto_event=auto)
    if timing:
        predict_timing(plan, model)
    return plan
