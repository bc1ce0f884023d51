"""Planner of the external-weight engine: per-layer schedule, bytes read, compute vs memory
cycles and resources for an IntModel, a memory port and the engine's folding knobs.

Every figure is a model (closed forms over the layer shapes, the blocks' own resource
estimates); docs/hardware.md "External-weight execution style" says which parts are measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hwgen.compiler.graph import mark_used
from hwgen.errors import HwgenError
from quant.ir import IntModel
from rtl_templates.common import Resources
from rtl_templates.dwconv import DWConv3x3
from rtl_templates.head import Head
from rtl_templates.lif_array import LIFArray
from rtl_templates.linear_engine import LinearEngine
from rtl_templates.pixel_conv import PixelConv3x3
from rtl_templates.sasa import SASA

MODES = ("dense", "event")


class EnginePlanError(HwgenError):
    """Bad knobs, or a model that does not fit the engine's memories."""


@dataclass(frozen=True)
class MemorySpec:
    """External memory as the engine's port sees it (one clock: the engine's).

    ``beats_per_cycle``: peak data beats of ``beat_bits`` per engine cycle (SDR SDRAM 16 bits
    wide at the engine's clock: 1.0; with a 1:2 PHY, the SDRAM at twice the clock: 2.0).
    ``efficiency``: share of the peak left after refresh, row changes and request overheads
    (an estimate until the controller is measured). ``latency``: cycles from a request to
    its first beat. ``controller``: the controller's resources, or None when unknown (then
    the totals say they exclude it).
    """

    beat_bits: int = 16
    beats_per_cycle: float = 1.0
    efficiency: float = 0.9
    latency: int = 24
    capacity_bytes: int = 32 << 20
    controller: Resources | None = None

    @property
    def bytes_per_cycle(self) -> float:
        return self.beat_bits / 8 * self.beats_per_cycle * self.efficiency


@dataclass(frozen=True)
class EngineKnobs:
    """Folding of the one engine. ``pe``: output lanes; ``simd``: dense: inputs summed per
    cycle, event: spike positions served at once (read ports of the weight tile, 1 or 2);
    ``batch``: images sharing each weight tile; ``max_fan_in``: inputs per weight tile
    (longer fan-ins are split, their partial sums accumulated); ``spike_rate``: assumed
    input spike rate of the event-driven layers; ``segment``: bits the event encoder scans
    per cycle (the built block scans a whole tile's fan-in: ``segment >= max_fan_in``;
    narrower is a planned encoder); ``clock_mhz``: the engine's clock."""

    mode: str = "event"
    pe: int = 64
    simd: int = 2
    batch: int = 1
    max_fan_in: int = 864
    spike_rate: float = 0.1
    segment: int = 4096
    lif_lanes: int = 16
    clock_mhz: float = 50.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise EnginePlanError(f"mode must be one of {', '.join(map(repr, MODES))}, not {self.mode!r}")
        for name in ("pe", "simd", "batch", "max_fan_in", "segment", "lif_lanes"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise EnginePlanError(f"{name} must be an integer >= 1, not {v!r}")
        if self.mode == "event" and self.simd > 2:
            raise EnginePlanError(f"event mode serves at most 2 positions (a block RAM has two "
                                  f"ports), not simd={self.simd!r}")
        if not 0.0 < self.spike_rate <= 1.0:
            raise EnginePlanError(f"spike_rate must be in (0, 1], not {self.spike_rate!r}")
        if not self.clock_mhz > 0:
            raise EnginePlanError(f"clock_mhz must be > 0, not {self.clock_mhz!r}")


@dataclass(frozen=True)
class LayerWork:
    """One layer as the schedule sees it. ``positions``: input vectors per image (tokens x
    steps); ``on_engine``: weights streamed (else a fixed on-chip block); ``full_sum``: a LIF
    reads the output, so a split fan-in needs a partial-sum memory (layers writing the
    residual stream accumulate into U instead)."""

    name: str
    out: int
    fan_in: int
    positions: int
    weights: int
    on_engine: bool
    full_sum: bool
    acc_bits: int


@dataclass
class LayerSchedule:
    work: LayerWork
    tiles: int  # weight tiles (output tiles x fan-in chunks)
    bytes_read: float  # per image
    compute_cycles: float  # per batch
    memory_cycles: float  # per batch
    cycles: float  # per batch: max of the two, plus the first tile's fill

    @property
    def bound(self) -> str:
        return "memory" if self.memory_cycles > self.compute_cycles else "compute"


@dataclass
class EnginePlan:
    model_name: str
    knobs: EngineKnobs
    memory: MemorySpec
    layers: list[LayerSchedule]
    resources: dict[str, Resources]
    device_limits: dict[str, int]
    family: str
    problems: list[str] = field(default_factory=list)

    @property
    def cycles_per_image(self) -> float:
        return sum(s.cycles for s in self.layers) / self.knobs.batch

    @property
    def images_per_second(self) -> float:
        return self.knobs.clock_mhz * 1e6 / self.cycles_per_image

    @property
    def bytes_per_image(self) -> float:
        return sum(s.bytes_read for s in self.layers)

    @property
    def bandwidth_share(self) -> float:
        """Bytes read per cycle over the port's peak bytes per cycle."""
        peak = self.memory.beat_bits / 8 * self.memory.beats_per_cycle
        return self.bytes_per_image / self.cycles_per_image / peak

    @property
    def total(self) -> Resources:
        out = Resources(0, 0)
        for r in self.resources.values():
            out = out + r
        return out

    def used(self) -> dict[str, int]:
        t = self.total
        return {"lut": t.lut, "ff": t.ff, "dsp": t.dsp, "bram": t.bram(self.family)}

    @property
    def fits(self) -> bool:
        return not self.problems

    @property
    def images_per_s_per_klut(self) -> float:
        return self.images_per_second / (self.total.lut / 1000)

    def table(self) -> str:
        k = self.knobs
        rows = [f"{self.model_name}: {k.mode} engine pe={k.pe} simd={k.simd} B={k.batch} "
                f"max_fan_in={k.max_fan_in} rate={k.spike_rate:.3f} at {k.clock_mhz} MHz, memory "
                f"{self.memory.bytes_per_cycle:.2f} B/cycle (latency {self.memory.latency})",
                f"{'layer':18} {'tiles':>6} {'kB/img':>8} {'compute':>10} {'memory':>10} bound"]
        for s in self.layers:
            rows.append(f"{s.work.name:18} {s.tiles:6d} {s.bytes_read / 1e3:8.1f} "
                        f"{s.compute_cycles:10.0f} {s.memory_cycles:10.0f} "
                        f"{s.bound if s.work.on_engine else 'on-chip'}")
        u = self.used()
        ctrl = "" if self.memory.controller else " (memory controller not included)"
        rows.append(f"cycles/image {self.cycles_per_image:,.0f}  images/s {self.images_per_second:.1f}"
                    f"  MB/image {self.bytes_per_image / 1e6:.2f}  bandwidth {100 * self.bandwidth_share:.0f} % of peak")
        rows.append(f"LUT {u['lut']:,} FF {u['ff']:,} BRAM {u['bram']} DSP {u['dsp']}{ctrl}; "
                    f"images/s per kLUT {self.images_per_s_per_klut:.2f}")
        rows += [f"does not fit: {p}" for p in self.problems]
        return "\n".join(rows)


# ------------------------------------------------------------------------------ layers

def layer_work(model: IntModel) -> list[LayerWork]:
    """The model's layers in execution order. The pixel conv, the DWCs and the head keep
    their (small) weights on chip; every other layer streams its weights."""
    cfg, T = model.config, model.config.time_steps
    grids = cfg.stem_grids()
    out = []
    for i, st in enumerate(model.stem):
        c = st.conv
        h, w = grids[i]
        out.append(LayerWork(f"stem.{i}.conv", c.out_channels, c.in_channels * 9,
                             h * w * (1 if c.pixel_input else T), c.weight.numel(),
                             on_engine=not c.pixel_input, full_sum=True, acc_bits=c.acc_bits))
    n = cfg.tokens
    out.append(LayerWork("rpe", model.rpe.out_channels, model.rpe.in_channels * 9, n * T,
                         model.rpe.weight.numel(), True, False, model.rpe.acc_bits))
    for b, blk in enumerate(model.blocks):
        p = f"blocks.{b}"
        qk = blk.q.weight.numel() + blk.k.weight.numel()
        out.append(LayerWork(f"{p}.qk", 2 * cfg.dim, cfg.dim, n * T, qk, True, True,
                             max(blk.q.acc_bits, blk.k.acc_bits)))
        out.append(LayerWork(f"{p}.sasa", cfg.dim, 2 * cfg.dim, n * T, 0, False, False, 0))
        out.append(LayerWork(f"{p}.dwc", cfg.dim, 9, n * T, blk.dwc.weight.numel(), False, False,
                             blk.dwc.acc_bits))
        for name, full in (("o", False), ("fc1", True), ("fc2", False)):
            lin = getattr(blk, name)
            out.append(LayerWork(f"{p}.{name}", lin.out_features, lin.in_features, n * T,
                                 lin.weight.numel(), True, full, lin.acc_bits))
    out.append(LayerWork("head", cfg.num_classes, cfg.dim, 1, model.head.weight.numel(), False,
                         False, model.head.acc_bits))
    return out


def event_ops(fan_in: int, rate: float, segment: int) -> float:
    """Expected cycles of one event-driven position over `fan_in` inputs: the encoder scans
    `segment` bits at a time and spends max(1, set bits) cycles on each segment."""
    full, rest = divmod(fan_in, segment)
    ops = full * (segment * rate + (1 - rate) ** segment)
    if rest:
        ops += rest * rate + (1 - rate) ** rest
    return ops


def fan_in_chunk(work: LayerWork, model: IntModel, knobs: EngineKnobs) -> int:
    """Inputs per weight tile. The fused schedule (docs/hardware.md) feeds `o` one head's Y
    at a time and `fc2` one fc1 tile's spikes at a time; other fan-ins split evenly into
    pieces of at most `max_fan_in`."""
    if work.name.endswith(".o"):
        return model.config.head_dim
    if work.name.endswith(".fc2"):
        return min(knobs.pe, knobs.max_fan_in)
    return math.ceil(work.fan_in / math.ceil(work.fan_in / knobs.max_fan_in))


def schedule_layer(work: LayerWork, model: IntModel, knobs: EngineKnobs,
                   memory: MemorySpec, fixed_cycles: float) -> LayerSchedule:
    B = knobs.batch
    if not work.on_engine:
        return LayerSchedule(work, 0, 0.0, fixed_cycles * B, 0.0, fixed_cycles * B)
    out_tiles = math.ceil(work.out / knobs.pe)
    chunk = fan_in_chunk(work, model, knobs)
    chunks = math.ceil(work.fan_in / chunk)
    per_pos = (math.ceil(chunk / knobs.simd) if knobs.mode == "dense"
               else event_ops(chunk, knobs.spike_rate, knobs.segment) / knobs.simd)
    compute = out_tiles * chunks * work.positions * B * per_pos
    nbytes = work.weights * model.weight_bits / 8
    mem = nbytes / memory.bytes_per_cycle
    # Double-buffered tiles: the first tile's transfer (and the latency) is not overlapped.
    first = mem / (out_tiles * chunks) + memory.latency
    return LayerSchedule(work, out_tiles * chunks, nbytes / B, compute, mem, max(compute, mem) + first)


# --------------------------------------------------------------------------- resources

def engine_resources(model: IntModel, knobs: EngineKnobs, works: list[LayerWork],
                     family: str) -> dict[str, Resources]:
    """Resources of the engine and its memories, by part (docs/hardware.md)."""
    cfg, T, B, pe, wb = model.config, model.config.time_steps, knobs.batch, knobs.pe, model.weight_bits
    eng = [w for w in works if w.on_engine]
    acc = max(w.acc_bits for w in eng)
    ports = knobs.simd if knobs.mode == "event" else 1
    simd = knobs.simd if knobs.mode == "dense" else 1
    depth = min(max(w.fan_in for w in eng), knobs.max_fan_in)
    # The datapath, encoder and control of the built block (rtl_templates.linear_engine)
    # for one tile shape, from its own estimate (its memories are counted below), once per
    # port. Its encoder scans the whole spike word; a `segment` narrower than the tile's
    # fan-in is a planned encoder (not built) whose cost replaces that one.
    chunk = depth - depth % simd if knobs.mode == "dense" else depth
    block = mark_used(LinearEngine([[0] * chunk] * pe, [0] * pe, tokens=cfg.tokens, time_steps=T,
                         weight_bits=wb, acc_bits=acc, pe=pe, simd=simd,
                         beat_bits=math.gcd(16, pe * simd * wb), mode=knobs.mode)).resources(family)
    lut, ff = ports * block.lut, ports * block.ff
    if knobs.mode == "event" and knobs.segment < chunk:
        z = knobs.segment
        built = 3 * chunk + math.ceil(math.log2(chunk)) * chunk // 6 + chunk * 5 // 6
        lut += ports * (3 * z + math.ceil(math.log2(z)) * z // 6 + z * 5 // 6 - built)
        ff += ports * (z - chunk)
    tile_rows = depth if knobs.mode == "event" else math.ceil(depth / simd)
    tile = Resources(0, 0, memories=((tile_rows, pe * simd * wb),) * 2, memory_kinds=("block",) * 2)
    # The residual stream U of B images: pe lanes wide, so the engine adds a tile's output
    # into it one read-modify-write per position.
    u_values = cfg.tokens * T * cfg.dim
    u_mem = Resources(pe * model.u_bits * 2, 0,
                      memories=((math.ceil(u_values / pe) * B, pe * model.u_bits),),
                      memory_kinds=("block",))
    # Spike memories (fused schedule), one word per position as the engine reads them: the
    # block's S = LIF(U) (read by q, k and the DWC), and one tile's Q, K and Y (or fc1
    # spikes). The stem's spikes and partial sums use U's memory, which holds nothing
    # before the RPE conv writes it.
    n = cfg.tokens * T
    spikes = Resources(0, 0, memories=((n * B, cfg.dim), (n * B, 3 * max(pe, cfg.head_dim))),
                       memory_kinds=("block", "block"))
    grids = cfg.stem_grids()
    stem = 0
    for i, (st, w) in enumerate(zip(model.stem, works, strict=False)):
        if not w.on_engine:
            continue
        h, wd = grids[i]
        in_bits = st.conv.in_channels * h * wd * T  # its input spikes (pooled grid)
        psum = w.positions * pe * w.acc_bits if w.fan_in > knobs.max_fan_in else 0
        stem = max(stem, in_bits + psum)
    u_bits_total = u_values * model.u_bits
    partial = Resources(0, 0)
    if stem > u_bits_total:  # the stem does not fit in U's memory: give it its own
        partial = Resources(0, 0, memories=((math.ceil((stem - u_bits_total) / 36), 36),),
                            memory_kinds=("block",))
    # The LIF after the engine: one output beat (pe lanes) per position takes pe/lif_lanes
    # cycles, under the event engine's cycles per position at the rates planned for.
    state = max(lif.state_bits for _, lif in model.named_lifs())
    lanes = math.gcd(knobs.lif_lanes, pe)
    lif = mark_used(LIFArray(channels=pe, lanes=lanes, time_steps=T, in_width=acc,
                             vth=[1] * pe, state_bits=state)).resources(family)
    out = {"engine": Resources(lut, ff), "engine LIF": lif, "weight tiles": tile, "residual U": u_mem,
           "spikes": spikes, "stem overflow": partial}
    out.update(fixed_resources(model, knobs, family))
    return out


def _ints(t) -> list:
    return t.tolist()


def fixed_blocks(model: IntModel, knobs: EngineKnobs) -> dict[str, tuple[object, float]]:
    """The on-chip blocks the engine keeps (each with its cycles per image): the pixel
    conv, one DWC (all blocks' DWC weights on chip), SASA, the head. Built with the
    model's own weights so their estimates are the blocks' own `resources()`."""
    cfg, T = model.config, model.config.time_steps
    out: dict[str, tuple[object, float]] = {}
    s0 = model.stem[0].conv
    if s0.pixel_input:
        h, w = cfg.stem_grids()[0]
        pc = PixelConv3x3(_ints(s0.weight), _ints(s0.bias), height=h, width=w,
                          pixel_bits=s0.pixel_bits, weight_bits=model.weight_bits,
                          acc_bits=s0.acc_bits, pe=min(8, s0.out_channels), simd=s0.in_channels)
        cyc = h * w * (s0.out_channels // pc.pe) * 9
        out["stem.0.conv"] = (pc, cyc)
    blk = model.blocks[0]
    gh, gw = cfg.grid
    lanes = math.gcd(cfg.dim, 4)  # ~100 cycles per position: 1/10 of the engine's
    dwc = DWConv3x3(_ints(blk.dwc.weight), _ints(blk.dwc.bias), height=gh, width=gw, time_steps=T,
                    acc_bits=blk.dwc.acc_bits, weight_bits=model.weight_bits, lanes=lanes)
    out["dwc"] = (dwc, cfg.tokens * T * cfg.dim / lanes)
    out["sasa"] = (SASA(dim=cfg.dim, heads=cfg.heads, time_steps=T, tokens=cfg.tokens,
                        mode=cfg.sasa_mode, agg_vth=_ints(blk.agg_lif.vth),
                        agg_input_shift=blk.agg_lif.input_shift,
                        agg_state_bits=blk.agg_lif.state_bits), cfg.tokens * T)
    hd = model.head
    out["head"] = (Head(_ints(hd.weight), _ints(hd.bias), time_steps=T, tokens=cfg.tokens,
                        weight_bits=model.weight_bits, acc_bits=hd.acc_bits), cfg.dim * cfg.num_classes)
    return {name: (mark_used(block), cycles) for name, (block, cycles) in out.items()}


def fixed_resources(model: IntModel, knobs: EngineKnobs, family: str) -> dict[str, Resources]:
    out = {name: block.resources(family) for name, (block, _) in fixed_blocks(model, knobs).items()}
    d = model.blocks[0].dwc.weight.numel() * model.weight_bits
    extra = len(model.blocks) - 1
    out["dwc"] = out["dwc"] + Resources(0, 0, memories=((d // 64, 64),) * extra,
                                        memory_kinds=("block",) * extra)
    return out


# ----------------------------------------------------------------------------- planner

def _engine_pes(model: IntModel) -> list[int]:
    """The engine PEs `search` tries: multiples of 8 dividing every width the engine runs."""
    cfg = model.config
    widths = [cfg.dim, 2 * cfg.dim, cfg.hidden] + [s.conv.out_channels for s in model.stem[1:]]
    return [p for p in range(8, max(widths) + 1, 8) if all(w % p == 0 for w in widths)]


def search(model: IntModel, memory: MemorySpec, limits: dict[str, int], *, family: str = "ecp5",
           clock_mhz: float = 50.0, spike_rate: float = 0.1, batches=(1, 2),
           modes=MODES) -> list[EnginePlan]:
    """Every fitting plan over the folding knobs (pe dividing the model's widths, simd,
    tile depth, batch), fastest first."""
    pes = _engine_pes(model)
    plans = []
    for mode in modes:
        simds = (1, 2) if mode == "event" else (8, 16, 32, 64)
        for pe in pes:
            for simd in simds:
                for fan in (512, 864, 1024):
                    for b in batches:
                        knobs = EngineKnobs(mode=mode, pe=pe, simd=simd, batch=b, max_fan_in=fan,
                                            spike_rate=spike_rate, clock_mhz=clock_mhz)
                        p = plan_engine(model, knobs, memory, family=family, limits=limits)
                        if p.fits:
                            plans.append(p)
    return sorted(plans, key=lambda p: -p.images_per_second)


def smallest_misfit(model: IntModel, memory: MemorySpec, limits: dict[str, int], *,
                    family: str = "ecp5", clock_mhz: float = 50.0,
                    spike_rate: float = 0.1) -> list[str]:
    """Why the smallest engine `search` tries (dense, its least pe, SIMD 8, batch 1) does not
    fit: its plan's problems, each the need against the capacity."""
    pes = _engine_pes(model) or [8]
    knobs = EngineKnobs(mode="dense", pe=pes[0], simd=8, batch=1, max_fan_in=512,
                        spike_rate=spike_rate, clock_mhz=clock_mhz)
    return plan_engine(model, knobs, memory, family=family, limits=limits).problems


def plan_engine(model: IntModel, knobs: EngineKnobs, memory: MemorySpec, *,
                family: str = "ecp5", limits: dict[str, int] | None = None) -> EnginePlan:
    """Schedule every layer of `model` on one engine with `knobs` reading `memory`.

    `limits` (lut, ff, bram, dsp) of the device; the plan lists what does not fit in
    `problems` (an empty list: it fits)."""
    works = layer_work(model)
    fixed = {name: cyc for name, (_, cyc) in fixed_blocks(model, knobs).items()}
    layers = []
    for w in works:
        kind = w.name.rsplit(".", 1)[-1] if w.name.startswith("blocks.") else w.name
        layers.append(schedule_layer(w, model, knobs, memory, fixed.get(kind, 0.0)))
    res = engine_resources(model, knobs, works, family)
    if memory.controller is not None:
        res["memory controller"] = memory.controller
    plan = EnginePlan(model.config.name, knobs, memory, layers, res, limits or {}, family)
    weight_bytes = sum(w.weights for w in works if w.on_engine) * model.weight_bits / 8
    if weight_bytes > memory.capacity_bytes:
        plan.problems.append(f"weights need {weight_bytes / 2**20:.1f} MiB, the memory holds "
                             f"{memory.capacity_bytes / 2**20:.1f} MiB")
    for key, used in plan.used().items():
        if key in plan.device_limits and used > plan.device_limits[key]:
            plan.problems.append(f"{key.upper()} {used:,} > {plan.device_limits[key]:,}")
    return plan
