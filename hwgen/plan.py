"""The planner: folding per layer, memory mapping, and predicted cycles and resources.

`make_plan` starts every layer at its smallest folding and repeatedly widens
the layer that bounds throughput, as long as the whole design still fits the
target (a device under a LUT ceiling, an explicit budget) and a frame-rate
goal is not yet met. A model that cannot fit even fully folded is refused
before anything is synthesised, with the predicted need against the capacity.
The plan is a typed object; `Plan.table()` prints it (`hwgen plan`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hwgen.boards import Board, Device
from hwgen.graph import Folding, Graph, Node, build_graph
from hwgen.memmap import MemoryMapping, map_memory
from quant.errors import HwgenError
from quant.ir import IntModel
from rtl_templates.spram_fifo import SPRAMFIFO

SPRAM_PER_DEVICE = {"iCE40UP5K": 4}
# What the board top (hwgen/board_top.py) needs besides the accelerator, measured.
BOARD_TOP_RESERVE = {"lut": 600, "lc": 700, "ff": 200, "bram": 1}


def logic_cells(lut: int, ff: int) -> int:
    """iCE40 logic cells (a LUT4 and a flip-flop each) after nextpnr packs a design: a
    flip-flop shares a cell only with the LUT that alone feeds it, and most of ours hold
    stream words and shift registers fed by other flip-flops. Fitted to nextpnr 0.11 on
    digits-tiny (4,320 cells for 3,038 LUTs and 1,974 flip-flops): cells = LUTs + 65% of
    the flip-flops."""
    return lut + (13 * ff) // 20


class ModelTooLarge(HwgenError):
    """The model does not fit the target even at its smallest folding."""


@dataclass(frozen=True)
class Target:
    """What the plan must fit: a device (under a LUT utilisation ceiling) and/or a budget,
    and optionally a frame rate to reach at `clock_mhz` (no faster than needed)."""

    device: Device | None = None
    max_util: float = 0.8
    fps: float | None = None
    clock_mhz: float = 12.0
    budget: dict[str, int] | None = None  # caps on "lut", "ff", "bram", "dsp"
    # Left free for the board top around the accelerator (UART, frame buffer, self-test).
    reserve: dict[str, int] = field(default_factory=lambda: dict(BOARD_TOP_RESERVE))

    @classmethod
    def for_board(cls, board: Board, max_util: float | None = None,
                  fps: float | None = None) -> Target:
        """The board's device at its clock; `max_util` in percent, default the board's."""
        util = board.max_util if max_util is None else max_util
        if not 1 <= util <= 100:
            raise HwgenError(f"--max-util must be a percentage in 1..100, not {util}")
        return cls(device=board.device, max_util=util / 100, fps=fps, clock_mhz=board.clock_mhz)

    @property
    def spram(self) -> int:
        """SB_SPRAM256KA primitives of the device (the iCE40 UP5K has four)."""
        return SPRAM_PER_DEVICE.get(self.device.name, 0) if self.device else 0

    @property
    def family(self) -> str:
        return self.device.family if self.device and self.device.family in ("ice40", "ecp5") \
            else "ecp5"

    def limits(self) -> dict[str, int]:
        caps: dict[str, int] = {}
        if self.device is not None:
            # The ceiling is on LUTs (hwgen issue 4: "default 80% LUT"); on an iCE40 it is
            # on logic cells too, where flip-flops count as well (issue 5: "<= 80% logic
            # cells"), and nextpnr needs that slack to place and route.
            caps = {"lut": int(self.device.lut * self.max_util), "ff": self.device.ff,
                    **({"lc": int(self.device.lut * self.max_util)}
                       if self.family == "ice40" else {}),
                    "bram": self.device.bram, "dsp": self.device.dsp,
                    "spram": self.spram}
        for key, value in (self.reserve if self.device is not None else {}).items():
            if key in caps:
                caps[key] = max(0, caps[key] - value)
        for key, value in (self.budget or {}).items():
            caps[key] = min(caps.get(key, value), value)
        return caps


@dataclass
class LayerPlan:
    node: str
    kind: str
    layer: str | None
    folding: str
    cycles: int  # busy cycles per image in free flow (the block's throughput bound)
    lut: int
    ff: int
    dsp: int
    memories: list[MemoryMapping] = field(default_factory=list)
    spram: int = 0

    @property
    def bram(self) -> int:
        return sum(m.bram for m in self.memories)

    @property
    def total_lut(self) -> int:
        return self.lut + sum(m.lut for m in self.memories)

    @property
    def total_ff(self) -> int:
        return self.ff + sum(m.ff for m in self.memories)

    @property
    def memory_bits(self) -> int:
        return sum(m.bits for m in self.memories)


@dataclass
class Plan:
    model_name: str
    family: str
    target: Target
    lanes_u: int
    foldings: dict[str, Folding]
    layers: list[LayerPlan]
    lif_block: frozenset[str] = frozenset()  # LIF arrays keeping their spikes in block RAM
    fuse: frozenset[str] = frozenset()  # linears fused with the LIF array feeding them
    latency_cycles: int | None = None  # one image alone: first pixel beat .. result beat
    interval_cycles: int | None = None  # images back to back: result to result
    interval_exact: bool = True  # False: the bottleneck block's cycles (an estimate)
    notes: list[str] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        lut = sum(x.total_lut for x in self.layers)
        ff = sum(x.total_ff for x in self.layers)
        out = {"lut": lut, "ff": ff,
                "bram": sum(x.bram for x in self.layers),
                "dsp": sum(x.dsp for x in self.layers),
                "spram": sum(x.spram for x in self.layers),
                "lutram": sum(m.lutram for x in self.layers for m in x.memories)}
        if self.family == "ice40":
            out["lc"] = logic_cells(lut, ff)
        return out

    @property
    def bottleneck(self) -> LayerPlan:
        return max(self.layers, key=lambda x: x.cycles)

    def images_per_second(self, clock_mhz: float) -> float | None:
        ii = self.interval_cycles or self.bottleneck.cycles
        return clock_mhz * 1e6 / ii if ii else None

    def graph(self, model: IntModel) -> Graph:
        return build_graph(model, self.foldings, self.lanes_u, self.family, self.target.spram,
                           self.lif_block, self.fuse)

    def table(self) -> str:
        rows = [("block", "kind", "folding", "cycles/img", "LUT", "FF", "BRAM", "DSP", "memory")]
        for x in self.layers:
            mem = ", ".join([f"{m.depth}x{m.width} {m.kind}" for m in x.memories]
                            + ([f"{x.spram} SPRAM"] if x.spram else [])) or "-"
            rows.append((x.node, x.kind, x.folding, str(x.cycles), str(x.total_lut),
                         str(x.total_ff), str(x.bram), str(x.dsp), mem))
        tot = self.totals()
        rows.append(("total", "", "", str(self.bottleneck.cycles) + " (max)", str(tot["lut"]),
                     str(tot["ff"]), str(tot["bram"]), str(tot["dsp"]), ""))
        widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                 for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        out = [f"plan for {self.model_name} on {self._target_name()} "
               f"(family {self.family}, residual lanes {self.lanes_u})", *lines]
        caps = self.target.limits()
        dev = self.target.device
        if caps and dev is not None:
            size = {"lc": dev.lut, "lut": dev.lut, "ff": dev.ff, "bram": dev.bram, "dsp": dev.dsp,
                    "spram": self.target.spram}
            use = ", ".join(f"{k.upper()} {tot[k]} of {size[k]} ({100 * tot[k] / size[k]:.0f}%,"
                            f" limit {caps[k]})" for k in ("lc", "lut", "ff", "bram", "dsp", "spram")
                            if k in caps and size.get(k))
            out.append(f"fits: {use}; limits keep room for the board top")
        if self.latency_cycles is not None:
            how = "exact" if self.interval_exact else "estimate: the bottleneck block's cycles"
            out.append(f"latency {self.latency_cycles} cycles per image (exact, cycle models); "
                       f"initiation interval {self.interval_cycles} cycles ({how}); bottleneck "
                       f"{self.bottleneck.node}")
            ips = self.images_per_second(self.target.clock_mhz)
            out.append(f"throughput {ips:,.0f} images/s at {self.target.clock_mhz:g} MHz")
        out += self.notes
        return "\n".join(out)

    def _target_name(self) -> str:
        if self.target.device:
            what = "LUT/LC" if self.family == "ice40" else "LUT"
            return f"{self.target.device.name} ({what} ceiling {self.target.max_util:.0%})"
        return "an unbounded target"

    def to_dict(self) -> dict:
        return {
            "model": self.model_name, "family": self.family, "lanes_u": self.lanes_u,
            "lif_block": sorted(self.lif_block), "fuse": sorted(self.fuse),
            "foldings": {k: {"pe": f.pe, "simd": f.simd, "mode": f.mode}
                         for k, f in sorted(self.foldings.items())},
            "latency_cycles": self.latency_cycles, "interval_cycles": self.interval_cycles,
            "interval_exact": self.interval_exact,
            "totals": self.totals(),
            "layers": [{"node": x.node, "kind": x.kind, "layer": x.layer, "folding": x.folding,
                        "cycles": x.cycles, "lut": x.total_lut, "ff": x.total_ff, "bram": x.bram,
                        "dsp": x.dsp,
                        "memories": [{"depth": m.depth, "width": m.width, "kind": m.kind,
                                      "rom": m.rom, "bram": m.bram} for m in x.memories]}
                       for x in self.layers],
        }


# --------------------------------------------------------------------------- per block

def node_cycles(node: Node, cfg) -> int:
    """Busy cycles per image of one block in free flow (closed-form estimates).

    Event-driven linears are counted at their worst case (every input spiking);
    the exact figure for an image comes from the cycle models (`predict_timing`).
    """
    c = node.component
    if node.kind == "fork":
        return 0
    if node.kind == "fifo":  # one beat per cycle, or every third cycle in single-port RAM
        return 3 * node.beats if isinstance(c, SPRAMFIFO) else node.beats
    if node.kind == "add":  # one beat per cycle
        return node.tokens * (cfg.dim // c.lanes) * cfg.time_steps
    if node.kind == "linear" and c.mode == "event":
        return node.tokens * c.cycles_per_token([c.in_features] * c.time_steps)
    if hasattr(c, "cycles_per_image"):
        return c.cycles_per_image()
    return node.tokens * c.cycles_per_token()


def node_plan(node: Node, cfg, family: str) -> LayerPlan:
    c = node.component
    res = c.resources(family)
    mems = [map_memory(d, w, family, block=kind == "block")
            for (d, w), kind in zip(res.memories, res.kinds, strict=True)]
    folding = ""
    if hasattr(c, "pe"):
        folding = f"PE={c.pe} SIMD={getattr(c, 'simd', 1)}"
        if getattr(c, "mode", "dense") == "event":
            folding += " event"
    elif hasattr(c, "lanes"):
        folding = f"lanes={c.lanes}"
    return LayerPlan(node.name, node.kind, node.layer, folding, node_cycles(node, cfg),
                     res.lut, res.ff, res.dsp, mems, res.spram)


# --------------------------------------------------------------------------- planner

def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _next_divisor(n: int, current: int) -> int | None:
    bigger = [d for d in _divisors(n) if d > current]
    return bigger[0] if bigger else None


def plan_for(model: IntModel, target: Target, foldings: dict[str, Folding], lanes_u: int,
             lif_block: frozenset[str] = frozenset(), fuse: frozenset[str] = frozenset()) -> Plan:
    graph = build_graph(model, foldings, lanes_u, target.family, target.spram, lif_block, fuse)
    layers = [node_plan(n, model.config, target.family) for n in graph.nodes.values()]
    return Plan(model.config.name, target.family, target, lanes_u, dict(foldings), layers,
                frozenset(lif_block), frozenset(fuse))


def _fits(plan: Plan) -> list[str]:
    """The limits a plan exceeds, as 'LUT 6000 > 4224'."""
    tot = plan.totals()
    return [f"{k.upper()} {tot[k]} > {cap}" for k, cap in plan.target.limits().items()
            if tot.get(k, 0) > cap]


def _knobs(model: IntModel, node: LayerPlan) -> list[str]:
    """The folding knobs that speed up the block `node` plans."""
    layer = node.layer or ""
    if node.kind in ("linear", "lif_linear", "spike_conv", "pixel_conv", "head"):
        if layer == "rpe" or layer.endswith((".o", ".fc2")):
            return [f"simd:{layer}", "lanes"]  # their PE is the residual stream's lanes
        return [f"simd:{layer}", f"pe:{layer}"]
    if node.kind == "lif":
        # A LIF array's lanes follow the PE of the block that feeds it.
        if layer.endswith("qk_lif"):
            return [f"pe:{layer[:-4]}"]
        if layer.endswith("fc1_lif"):
            return [f"pe:{layer[:-4]}"]
        if layer.startswith("stem."):
            return [f"pe:{layer[:-4]}.conv"]
        return ["lanes"]
    if node.kind in ("dwconv", "add"):
        return ["lanes"]
    return []


def _try_knob(model: IntModel, plan: Plan, knob: str) -> tuple[dict[str, Folding], int] | None:
    """The foldings with `knob` one step wider, or None when it is at its widest."""
    foldings, lanes = dict(plan.foldings), plan.lanes_u
    cfg = model.config
    if knob == "lanes":
        nxt = _next_divisor(cfg.dim, lanes)
        return None if nxt is None else (foldings, nxt)
    what, layer = knob.split(":")
    shape = _layer_shape(model, layer)
    if shape is None:
        return None
    outs, ins = shape
    f = foldings.get(layer, Folding())
    if what == "simd":
        nxt = _next_divisor(ins, f.simd)
        if nxt is None or f.mode == "event":
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


def make_plan(model: IntModel, target: Target, *, event_layers: tuple[str, ...] = (),
              max_steps: int = 200) -> Plan:
    """Fold `model` for `target` (see the module docstring). `event_layers` names spike
    linears to run event-driven."""
    foldings = {name: Folding(mode="event") for name in event_layers}
    lanes = 1
    # On an iCE40 logic cells are the scarce resource: the MLP's LIF arrays are fused with
    # the linears they feed (their spikes kept once, in block RAM), and the other LIF
    # arrays keep their spikes in spare block RAMs.
    fuse = frozenset(f"blocks.{b}.{fc}" for b in range(len(model.blocks))
                     for fc in ("fc1", "fc2")) if target.family == "ice40" else frozenset()
    plan = plan_for(model, target, foldings, lanes, fuse=fuse)
    if target.family == "ice40" and target.device is not None:
        plan = _lifs_to_block_ram(model, target, plan)
    over = _fits(plan)
    if over:
        need = plan.totals()
        caps = target.limits()
        raise ModelTooLarge(
            f"{model.config.name} does not fit {target.device.name if target.device else 'the budget'}"
            f" even fully folded: needs " + ", ".join(
                f"{k.upper()} {need[k]} (limit {caps[k]}, {need[k] - caps[k]:+d})"
                for k in caps if need.get(k, 0) > caps[k]))
    exhausted: set[str] = set()
    for _ in range(max_steps):
        if target.fps and (ips := plan.images_per_second(target.clock_mhz)) and ips >= target.fps:
            break
        slow = sorted(plan.layers, key=lambda x: -x.cycles)
        improved = False
        for layer_plan in slow[:1]:
            for knob in _knobs(model, layer_plan):
                if knob in exhausted:
                    continue
                proposal = _try_knob(model, plan, knob)
                if proposal is None:
                    exhausted.add(knob)
                    continue
                candidate = plan_for(model, target, *proposal, plan.lif_block, plan.fuse)
                if _fits(candidate) or candidate.bottleneck.cycles > plan.bottleneck.cycles:
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
                             plan.lif_block | {lif.node}, plan.fuse)
        if candidate.totals()["bram"] > target.limits().get("bram", 0):
            break
        plan = candidate
    return plan


# Above this many modelled cycles the interval comes from the bottleneck block instead of a
# three-image run of the cycle models (which steps every cycle in Python).
EXACT_INTERVAL_CYCLES = 600_000


def predict_timing(plan: Plan, model: IntModel, edge_words=None) -> Plan:
    """Fill the plan's latency (exact, from the cycle models: one image alone) and its
    initiation interval (exact from three images back to back when that run is short
    enough; otherwise the bottleneck block's cycles, marked as an estimate)."""
    from hwgen.predict import image_cycles

    one = image_cycles(plan.graph(model), images=1, edge_words=edge_words)[0]
    plan.latency_cycles = one
    if 3 * one <= EXACT_INTERVAL_CYCLES:
        words3 = {k: list(v) * 3 for k, v in edge_words.items()} if edge_words else None
        three = image_cycles(plan.graph(model), images=3, edge_words=words3)
        plan.interval_cycles = three[2] - three[1]
        plan.interval_exact = True
    else:
        plan.interval_cycles = plan.bottleneck.cycles
        plan.interval_exact = False
    return plan


