"""The execution style of a plan: every weight on chip (one block per layer, the dataflow of
hwgen.compiler.planner), or the weights in the board's external memory, read by one engine
reused layer after layer (hwgen.compiler.engine; docs/hardware.md, "External-weight
execution style"). `--weights auto` takes the on-chip dataflow when it fits, the external
style when it does not and the board has external memory."""

from __future__ import annotations

from dataclasses import dataclass

from hwgen.compiler.engine import MODES, EnginePlan, MemorySpec, search
from hwgen.compiler.plan import Plan
from hwgen.compiler.planner import plan_model
from hwgen.compiler.stats import DEFAULT_CALIBRATION_IMAGES, SpikeStats, calibrate
from hwgen.compiler.target import ModelTooLarge, Target
from hwgen.errors import HwgenError
from quant.ir import IntModel
from rtl_templates.common import Resources

WEIGHTS = ("auto", "onchip", "external")


@dataclass
class StyledPlan:
    """The chosen style, why, and its plan (`plan` on chip, `engine` external)."""

    style: str  # "onchip" or "external"
    reason: str
    plan: Plan | None = None
    engine: EnginePlan | None = None

    def to_dict(self) -> dict:
        if self.plan is not None:
            return dict(self.plan.to_dict(), style=self.style, style_reason=self.reason)
        e = self.engine
        return {"model": e.model_name, "style": self.style, "style_reason": self.reason,
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

    def table(self) -> str:
        body = self.plan.table() if self.plan is not None else self.engine.table()
        return f"style: {self.style} weights ({self.reason})\n{body}"


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
        raise ModelTooLarge(f"{model.config.name} does not fit {target.device.name} even with "
                            "its weights in external memory (no engine folding fits)")
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
        why = "--weights external"
    engine = plan_external(model, target, stats=stats)
    return StyledPlan("external", f"{why}; weights in the {target.memory.name}", engine=engine)
