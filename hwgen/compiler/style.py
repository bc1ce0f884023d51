"""The execution style of a plan: every weight on chip (one block per layer, the dataflow of
hwgen.compiler.planner), or the weights in the board's external memory, read by one engine
reused layer after layer (hwgen.compiler.engine; docs/hardware.md, "External-weight
execution style"). `--weights auto` takes the on-chip dataflow when it fits, the external
style when it does not and the board has external memory."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from hwgen.compiler.builder import front_convs, front_words
from hwgen.compiler.engine import MODES, EnginePlan, MemorySpec, search, smallest_misfit
from hwgen.compiler.engine_body import BodySpec, body_words
from hwgen.compiler.graph import Folding
from hwgen.compiler.plan import Plan, plan_for
from hwgen.compiler.planner import over_limits, plan_model, predict_timing, widen
from hwgen.compiler.stats import DEFAULT_CALIBRATION_IMAGES, SpikeStats, calibrate
from hwgen.compiler.target import ModelTooLarge, Target
from hwgen.errors import HwgenError
from quant.ir import IntModel
from rtl_templates.common import Resources

WEIGHTS = ("auto", "onchip", "external", "external-all")


@dataclass
class StyledPlan:
    """The chosen style, why, and its plans: `plan` the accelerator hwgen generates (on
    chip: the dataflow; external: on-chip stem, RPE and head around the body engine, None
    with `unbuilt` saying why when that does not fit yet), `engine` the external style's
    whole-model engine schedule."""

    style: str  # "onchip" or "external"
    reason: str
    plan: Plan | None = None
    engine: EnginePlan | None = None
    unbuilt: str | None = None  # external: why no accelerator is generated for it yet

    def to_dict(self) -> dict:
        if self.engine is None:
            return dict(self.plan.to_dict(), style=self.style, style_reason=self.reason)
        e = self.engine
        out = {"model": e.model_name, "style": self.style, "style_reason": self.reason,
                "family": e.family, "clock_mhz": e.knobs.clock_mhz,
                "interval_cycles": round(e.cycles_per_image),
                "interval_basis": f"engine schedule, input spike rate {e.knobs.spike_rate:.3f} "
                                  "(calibration mean)",
                "interval_exact": False, "images_per_second": e.images_per_second,
                "engine": {"mode": e.knobs.mode, "pe": e.knobs.pe, "simd": e.knobs.simd,
                           "batch": e.knobs.batch, "max_fan_in": e.knobs.max_fan_in,
                           "spike_rate": e.knobs.spike_rate},
                "memory": {"bytes_per_image": e.bytes_per_image,
                           "bandwidth_share": e.bandwidth_share,
                           "peak_bytes_per_cycle": e.memory.beat_bits / 8
                           * e.memory.beats_per_cycle},
                "totals": e.used(),
                "layers": [{"layer": s.work.name, "tiles": s.tiles, "bytes_read": s.bytes_read,
                            "compute_cycles": s.compute_cycles,
                            "memory_cycles": s.memory_cycles, "cycles": s.cycles,
                            "bound": s.bound if s.work.on_engine else "on-chip"}
                           for s in e.layers]}
        out["accelerator"] = self.plan.to_dict() if self.plan is not None else None
        out["accelerator_unbuilt"] = self.unbuilt
        return out

    def table(self) -> str:
        head = f"style: {self.style} weights ({self.reason})"
        if self.engine is None:
            return f"{head}\n{self.plan.table()}"
        kept = "the first stem conv" if self.plan is not None and self.plan.body.front \
            else "stem, RPE"
        gen = (f"generated accelerator (hwgen sim): {kept} and head on chip, the blocks "
               f"on one engine ({self.plan.body}) reading the memory port\n{self.plan.table()}"
               if self.plan is not None else f"generated accelerator: none yet ({self.unbuilt})")
        return f"{head}\n{self.engine.table()}\n\n{gen}"


def memory_spec(target: Target) -> MemorySpec:
    """The engine's view of the target's external memory (the engine runs at its clock)."""
    m = target.memory
    return MemorySpec(beat_bits=m.beat_bits, beats_per_cycle=1.0, efficiency=m.efficiency,
                      latency=m.latency, capacity_bytes=m.capacity_bytes,
                      controller=Resources(m.controller_lut, m.controller_ff))


def mean_spike_rate(stats: SpikeStats) -> float:
    """The engine's one input spike rate: the measured rates of the spike-input layers,
    weighted by their input bits (what an event-driven engine's work scales with)."""
    bits = {k: x.counts.shape[1] * x.counts.shape[2] * x.channels for k, x in stats.layers.items()}
    total = sum(bits.values())
    rate = sum(stats.layers[k].rate * b for k, b in bits.items()) / total if total else 1.0
    return min(1.0, max(rate, 1e-3))


def plan_external(model: IntModel, target: Target, *, stats: SpikeStats,
                  modes=MODES) -> EnginePlan:
    """The fastest engine plan that fits the target's device and memory."""
    if target.memory is None:
        name = target.device.name if target.device else "this target"
        raise HwgenError(f"{name} has no external memory for the weights "
                         "(boards with one: see 'hwgen boards')")
    caps = target.limits()
    limits = {k: caps[k] for k in ("lut", "ff", "bram", "dsp") if k in caps}
    plans = search(model, memory_spec(target), limits, family=target.family,
                   clock_mhz=target.memory.clock_mhz, spike_rate=mean_spike_rate(stats),
                   modes=modes)
    if not plans:
        why = smallest_misfit(model, memory_spec(target), limits, family=target.family,
                              clock_mhz=target.memory.clock_mhz,
                              spike_rate=mean_spike_rate(stats))
        raise ModelTooLarge(f"{model.config.name} does not fit {target.device.name} even with "
                            f"its weights in the {target.memory.name}: the smallest engine "
                            f"needs {'; '.join(why) or 'more than the device has'}")
    return plans[0]


def plan_styled(model: IntModel, target: Target, *, weights: str = "auto", event: str = "auto",
                timing: bool = True, calib: int = DEFAULT_CALIBRATION_IMAGES,
                seed: int = 0) -> StyledPlan:
    """Plan `model` in the style `weights` asks for (auto: on chip if it fits)."""
    if weights not in WEIGHTS:
        raise HwgenError(f"--weights must be one of {', '.join(WEIGHTS)}, not {weights!r}")
    stats = calibrate(model, calib, seed=seed)
    if weights == "onchip":
        return StyledPlan("onchip", "--weights onchip", plan=plan_model(
            model, target, event=event, timing=timing, stats=stats))
    if weights == "auto":
        try:
            plan = plan_model(model, target, event=event, timing=timing, stats=stats)
        except ModelTooLarge as e:
            if target.memory is None:
                raise
            why = f"all on chip does not fit: {str(e).split(': needs ', 1)[-1]}"
        else:
            return StyledPlan("onchip", "every weight fits on chip", plan=plan)
    else:
        why = f"--weights {weights}"
    engine = plan_external(model, target, stats=stats)
    styled = StyledPlan("external", f"{why}; weights in the {target.memory.name}", engine=engine)
    try:
        styled.plan = plan_body_accelerator(model, target, engine, stats, timing=timing,
                                            front=True if weights == "external-all" else None)
    except ModelTooLarge as e:
        styled.unbuilt = str(e)
    return styled


def body_specs(model: IntModel, engine: EnginePlan, target: Target, *,
               front: bool = False) -> list[BodySpec]:
    """The body engines to try for `engine`'s plan, fastest first: dense (the body is built
    dense only so far); first the plan's pe where it divides every width (else the largest
    that does) with a SIMD that fills whole 16-bit beats, then narrower ones (fewer lanes,
    smaller tile buffers) for a device that does not hold the first; timed as the board's
    memory was measured. With `front`, the stem's spike convs and the RPE get engines too
    (`front_foldings`), at the body's SIMD where they can."""
    cfg, wb = model.config, model.weight_bits
    widths = (cfg.dim, cfg.hidden)
    top = max(p for p in range(1, engine.knobs.pe + 1) if all(w % p == 0 for w in widths))
    mem = target.memory
    out = []
    for pe in [p for p in range(top, 0, -1) if all(w % p == 0 for w in widths)]:
        simds = [s for s in (16, 8, 4, 2, 1) if all(w % s == 0 for w in widths)
                 and (pe * s * wb) % 16 == 0 and s <= max(engine.knobs.simd, 8)]
        front_simds = _front_simds(model, pe) if front else [1]
        if not simds or not front_simds:
            continue
        for simd in simds:
            fs = max((s for s in front_simds if s <= simd), default=min(front_simds))
            # No refresh gaps: SDRAM refresh is tied to absolute time, so an image's cycles
            # would depend on when it starts, and the plan's per-image and back-to-back
            # figures would no longer be one number. The controller's refresh is covered by
            # the tests through LiteDRAM and the SDRAM chip model; here it costs
            # 1 - efficiency of the bandwidth.
            out.append(BodySpec(pe=pe, simd=simd, latency=mem.latency, refresh_period=0,
                                refresh_cycles=0, controller_lut=mem.controller_lut,
                                controller_ff=mem.controller_ff, front=front,
                                front_simd=fs))
    if not out:
        raise ModelTooLarge("no body engine SIMD fills whole 16-bit beats")
    return sorted(out, key=lambda b: -b.pe * b.simd)


def _front_simds(model: IntModel, pe: int) -> list[int]:
    """SIMDs the conv engines can share at body PE `pe`: dividing each conv's 9 * in and
    filling whole 16-bit beats at its PE."""
    fronts, wb = front_convs(model), model.weight_bits
    pes = [front_pe(c.out_channels, pe) for c in fronts[:-1]] + [pe]
    return [s for s in (16, 8, 4, 2, 1)
            if all((9 * c.in_channels) % s == 0 and (p * s * wb) % 16 == 0
                   for c, p in zip(fronts, pes, strict=True))]


def front_pe(out_channels: int, pe: int) -> int:
    """A stem conv engine's PE: the largest that divides its outputs, at most the body's."""
    return max(p for p in range(1, pe + 1) if out_channels % p == 0)


def front_foldings(model: IntModel, spec: BodySpec) -> dict[str, Folding]:
    """The foldings of the convs on engines (`spec.front`): the stem's spike convs at
    `front_pe`, the RPE at the residual lanes."""
    out = {"rpe": Folding(spec.pe, spec.front_simd)}
    if spec.front:
        for i, st in enumerate(model.stem[1:], 1):
            out[f"stem.{i}.conv"] = Folding(front_pe(st.conv.out_channels, spec.pe),
                                            spec.front_simd)
    return out


def on_chip_weight_bits(model: IntModel, front: bool = False) -> int:
    """Bits of the weights the external style keeps on chip: the stem and RPE convs (only
    the first stem conv with `front`), the DWCs, the head."""
    convs = [model.stem[0].conv] if front else [s.conv for s in model.stem] + [model.rpe]
    on_chip = sum(c.weight.numel() for c in convs) + model.head.weight.numel() \
        + sum(b.dwc.weight.numel() for b in model.blocks)
    return on_chip * model.weight_bits


def check_on_chip_weights(model: IntModel, target: Target, front: bool = False) -> None:
    """Refuse (ModelTooLarge) a model whose weights kept on chip next to the body engine
    (`on_chip_weight_bits`) alone exceed the device's block RAM."""
    dev = target.device
    bits = on_chip_weight_bits(model, front)
    if dev is not None and dev.bram and bits > dev.bram * dev.bram_bits:
        kept = "the first stem conv" if front else "the stem, RPE"
        raise ModelTooLarge(
            f"{kept}, DWC and head weights kept on chip need {bits / 1e6:.2f} Mbit, "
            f"more than the {dev.name}'s {dev.bram * dev.bram_bits / 1e6:.2f} Mbit of block "
            f"RAM")


# The external style's accelerator is planned once (not inside the widening loop), so its
# interval is worth a longer run of the cycle models than the on-chip planner's: cifar-mid
# with --weights external-all, three images (4.1 M cycles) in 43 s, interval 551,485
# cycles where the bottleneck block's estimate said 478,852 (the engines share the port).
EXTERNAL_EXACT_CYCLES = 6_000_000

# Body engines `plan_body_accelerator` tries (fastest first) before refusing.
MAX_BODY_TRIES = 6


def activation_bits(model: IntModel, front: bool = False) -> dict[str, int]:
    """The on-chip memories of one image's activations in the external style, in bits (at
    ideal packing: a floor): the residual stream U (D x N*T at u_bits), the body's spike
    memories (one per layer kind, and Q|K), and with `front` the conv engines' gathered
    windows (9 x in x N*T each) and the spike collectors after them."""
    cfg, T = model.config, model.config.time_steps
    P, D = cfg.tokens * T, cfg.dim
    out = {"U": D * P * model.u_bits, "spikes": (3 * D + cfg.hidden + 2 * D) * P}
    if front:
        grids = cfg.stem_grids()
        windows = collectors = 0
        for i, st in enumerate(model.stem[1:], 1):
            n = grids[i][0] * grids[i][1] * T
            windows += 9 * st.conv.in_channels * n
            collectors += st.conv.out_channels * n
        windows += 9 * model.rpe.in_channels * P
        out["conv windows"] = windows
        out["collected spikes"] = collectors + D * P
    return out


def check_activations(model: IntModel, target: Target, front: bool) -> None:
    """Refuse (ModelTooLarge) a model whose one image's activations and kept weights alone
    exceed the device's block RAM, before anything is built."""
    dev = target.device
    if dev is None or not dev.bram:
        return
    parts = activation_bits(model, front)
    weights = on_chip_weight_bits(model, front)
    need, cap = sum(parts.values()) + weights, dev.bram * dev.bram_bits
    if need > cap:
        listed = ", ".join(f"{k} {v / 1e6:.2f}" for k, v in parts.items())
        raise ModelTooLarge(
            f"one image's activations ({listed} Mbit; U at {model.u_bits} bits) and the "
            f"{weights / 1e6:.2f} Mbit of weights kept on chip need {need / 1e6:.2f} Mbit of "
            f"block RAM, more than the {dev.name}'s {cap / 1e6:.2f} Mbit "
            f"(+{(need - cap) / 1e6:.2f}): the engines keep a whole image on chip")


def needs_front(model: IntModel, target: Target) -> bool:
    """Whether the stem's spike convs and the RPE go on engines of their own: when their
    weights would take more than half the device's block RAM on chip (the rest is the
    engines' spike memories, tile buffers and U)."""
    dev = target.device
    if dev is None or not dev.bram or len(front_convs(model)) == 0:
        return False
    return on_chip_weight_bits(model) > dev.bram * dev.bram_bits // 2


def plan_body_accelerator(model: IntModel, target: Target, engine: EnginePlan,
                          stats: SpikeStats, *, timing: bool = True,
                          front: bool | None = None) -> Plan:
    """The external style's generated accelerator: the stem, the RPE conv (at the body's
    lanes) and the head on chip, the blocks on the body engine; with `front` (None: when
    `needs_front` says so) the stem's spike convs and the RPE on conv engines at the same
    memory port. The on-chip blocks start at their smallest folding and are widened
    (`planner.widen`) while the plan fits and one of them is the bottleneck; body engines
    are tried fastest first (`body_specs`). Refused with ModelTooLarge when the on-chip
    part does not fit the device (first by its kept weights and one image's activations
    alone, before anything is built)."""
    forced = bool(front)
    front = front if front is not None else needs_front(model, target)
    check_on_chip_weights(model, target, front)
    # The accelerator runs at the memory's clock (the board top's PLL makes it).
    target = dataclasses.replace(target, clock_mhz=target.memory.clock_mhz)
    check_activations(model, target, front)
    on_chip = "the first stem conv" if front else "the stem, RPE"
    first_over = None
    for spec in body_specs(model, engine, target, front=front)[:MAX_BODY_TRIES]:
        foldings = front_foldings(model, spec) if front else {"rpe": Folding(spec.pe, 1)}
        plan = plan_for(model, target, foldings, spec.pe, stats=stats, body=spec)
        if not (over := over_limits(plan)):
            break
        first_over = first_over or (spec, over)
    else:
        spec, over = first_over
        raise ModelTooLarge(f"the body engine ({spec}) with {on_chip} and head on chip "
                            f"does not fit {target.device.name}: {', '.join(over)} (and "
                            f"narrower engines do not either)")
    plan = widen(model, target, plan, stats=stats)
    plan.notes.append(f"the blocks run on one engine ({spec}) reading their weights through "
                      f"the memory port (modelled: latency {spec.latency} cycles, a beat a "
                      f"cycle, no refresh gaps); its resources include the memory controller")
    if front:
        moved = (on_chip_weight_bits(model) - on_chip_weight_bits(model, True)) / 1e6
        why = "--weights external-all" if forced else \
            f"their {moved:.2f} Mbit of weights would take over half the block RAM"
        plan.notes.append(f"the stem's spike convs and the RPE run on conv engines of their "
                          f"own ({why}), sharing the memory port with the body through a "
                          f"fixed-priority arbiter")
    plan = predict_timing(plan, model, exact_limit=EXTERNAL_EXACT_CYCLES) if timing else plan
    beat_bytes = target.memory.beat_bits // 8
    read = body_words(model, target.memory.beat_bits) * beat_bytes
    if front:
        read += sum(front_words(c, model.weight_bits) for c in front_convs(model)) * beat_bytes
    share = (f", {100 * read / (plan.interval_cycles * beat_bytes):.1f} % of the port's peak "
             f"({beat_bytes} bytes a cycle) at the interval" if plan.interval_cycles else "")
    what = "every weight on the port" if front else "every body weight"
    plan.notes.append(f"memory: {read:,} bytes read per image ({what} once){share}")
    return plan
