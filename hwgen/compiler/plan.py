"""A plan: the folding of every block, its memories, and predicted cycles and resources.

`plan_for` turns a folding into a typed `Plan` (one `LayerPlan` per block of the
graph, from the blocks' closed-form cycle and resource models); the search that
chooses the folding is hwgen.compiler.planner. `Plan.table()` prints it (`hwgen plan`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hwgen.compiler.builder import build_graph
from hwgen.compiler.engine_body import BodySpec
from hwgen.compiler.graph import Folding, Graph, Node
from hwgen.compiler.memmap import MemoryMapping, map_memory
from hwgen.compiler.stats import LayerSpikes, SpikeStats
from hwgen.compiler.target import Target, logic_cells
from quant.ir import IntModel
from rtl_templates.spram_fifo import SPRAMFIFO


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
    in_rate: float | None = None  # measured input spike rate (spike-input layers)
    event: bool = False  # cycles are the mean over the calibration images (data-dependent)

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
    # How the interval was found: "exact" (dense: every image alike), "mean" (event-driven
    # layers: the mean over the calibration images run back to back), "bottleneck" (the
    # slowest block's cycles, when the model run would be too long).
    interval_basis: str = "exact"
    # Dense plans with an exact interval: the cycle models' result cycles of three images
    # offered back to back from reset (what the interval came from; `hwgen sim` reuses it).
    stream_cycles: list[int] | None = None
    # Dense plans: each tapped stream's first and last beat of one image alone (cycle 1 =
    # its first input beat), from the same model run as `latency_cycles`.
    alone_spans: dict[str, tuple[int, int]] | None = None
    stats: SpikeStats | None = None  # the spike statistics the choice was made from
    notes: list[str] = field(default_factory=list)
    # The external-weight style's generated accelerator: the blocks on one engine reading
    # their weights through a memory port (hwgen.compiler.engine_body); None: all on chip.
    body: BodySpec | None = None

    @property
    def interval_exact(self) -> bool:
        """False when the interval is only the bottleneck block's cycles (an estimate)."""
        return self.interval_basis != "bottleneck"

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
                           self.lif_block, self.fuse, self.body)

    def table(self) -> str:
        rows = [("block", "kind", "folding", "in rate", "cycles/img", "LUT", "FF", "BRAM", "DSP",
                 "memory")]
        for x in self.layers:
            mem = ", ".join([f"{m.depth}x{m.width} {m.kind}" for m in x.memories]
                            + ([f"{x.spram} SPRAM"] if x.spram else [])) or "-"
            rate = "-" if x.in_rate is None else f"{100 * x.in_rate:.1f}%"
            cycles = f"{x.cycles} (mean)" if x.event else str(x.cycles)
            rows.append((x.node, x.kind, x.folding, rate, cycles, str(x.total_lut),
                         str(x.total_ff), str(x.bram), str(x.dsp), mem))
        tot = self.totals()
        rows.append(("total", "", "", "", str(self.bottleneck.cycles) + " (max)", str(tot["lut"]),
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
        if self.stats is not None:
            out.append(f"in rate: measured input spike rate on {self.stats.source} "
                       "(golden model); event-driven cycles are the mean over those images")
        if self.latency_cycles is not None:
            how = {"exact": "exact", "mean": f"mean over the {self.stats.images if self.stats else ''}"
                   " calibration images, back to back",
                   "bottleneck": "estimate: the bottleneck block's cycles"}[self.interval_basis]
            first = "exact, cycle models" + ("" if self.interval_basis == "exact" else
                                             ", first calibration image")
            out.append(f"latency {self.latency_cycles} cycles per image ({first}); "
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
            "interval_exact": self.interval_exact, "interval_basis": self.interval_basis,
            "clock_mhz": self.target.clock_mhz,
            "body_engine": None if self.body is None else {
                "pe": self.body.pe, "simd": self.body.simd, "mode": "dense",
                "memory_latency": self.body.latency, "refresh_period": self.body.refresh_period,
                "refresh_cycles": self.body.refresh_cycles},
            "spike_stats": self.stats.to_dict() if self.stats is not None else None,
            "totals": self.totals(),
            "layers": [{"node": x.node, "kind": x.kind, "layer": x.layer, "folding": x.folding,
                        "cycles": x.cycles, "cycles_mean": x.event, "in_rate": x.in_rate,
                        "lut": x.total_lut, "ff": x.total_ff, "bram": x.bram,
                        "dsp": x.dsp,
                        "memories": [{"depth": m.depth, "width": m.width, "kind": m.kind,
                                      "rom": m.rom, "bram": m.bram} for m in x.memories]}
                       for x in self.layers],
        }


# --------------------------------------------------------------------------- per block

def node_cycles(node: Node, cfg, stats: SpikeStats | None = None) -> int:
    """Busy cycles per image of one block in free flow (closed-form estimates).

    Event-driven blocks are counted from the measured spikes of their input (the mean
    over the calibration images of `stats`), or at their worst case (every input
    spiking) without statistics; the exact figure for an image comes from the cycle
    models (`predict_timing`).
    """
    c = node.component
    if node.kind == "fork":
        return 0
    if node.kind == "fifo":  # one beat per cycle, or every third cycle in single-port RAM
        return 3 * node.beats if isinstance(c, SPRAMFIFO) else node.beats
    if node.kind == "add":  # one beat per cycle
        return node.tokens * (cfg.dim // c.lanes) * cfg.time_steps
    if getattr(c, "mode", "dense") == "event":
        spikes = stats.layers.get(node.layer) if stats is not None else None
        return round(_event_cycles(node, spikes))
    if hasattr(c, "cycles_per_image"):
        return c.cycles_per_image()
    return node.tokens * c.cycles_per_token()


def _event_cycles(node: Node, spikes: LayerSpikes | None) -> float:
    """An event-driven block's cycles per image: the mean over the calibration images of
    its closed form on their spikes, or every input spiking without `spikes`."""
    c = node.component
    if node.kind == "linear":
        if spikes is not None:
            return spikes.mean_cycles(c.cycles_per_token)
        return node.tokens * c.cycles_per_token([c.in_features] * c.time_steps)
    if node.kind == "head":  # one popcount per beat, token-major
        if spikes is not None:
            return sum(c.cycles_per_image(row) for row in spikes.counts.flatten(1).tolist()) \
                / spikes.counts.shape[0]
        return c.cycles_per_image([c.in_features] * c.beats)
    if spikes is not None:  # a window block: where the spikes are matters
        return spikes.mean_image_cycles(c.cycles_per_image)
    geo = c.geometry
    return c.cycles_per_image(np.ones((geo.time_steps, c.word_width, geo.height, geo.width),
                                      dtype=np.uint8))


def node_plan(node: Node, cfg, family: str, stats: SpikeStats | None = None) -> LayerPlan:
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
    spikes = stats.layers.get(node.layer) if stats is not None and node.layer else None
    event = getattr(c, "mode", "dense") == "event"
    return LayerPlan(node.name, node.kind, node.layer, folding, node_cycles(node, cfg, stats),
                     res.lut, res.ff, res.dsp, mems, res.spram,
                     spikes.rate if spikes is not None else None, event and spikes is not None)


def plan_for(model: IntModel, target: Target, foldings: dict[str, Folding], lanes_u: int,
             lif_block: frozenset[str] = frozenset(), fuse: frozenset[str] = frozenset(),
             stats: SpikeStats | None = None, body: BodySpec | None = None) -> Plan:
    graph = build_graph(model, foldings, lanes_u, target.family, target.spram, lif_block,
                        fuse, body).for_models_only()
    layers = [node_plan(n, model.config, target.family, stats) for n in graph.nodes.values()]
    return Plan(model.config.name, target.family, target, lanes_u, dict(foldings), layers,
                frozenset(lif_block), frozenset(fuse), stats=stats, body=body)
