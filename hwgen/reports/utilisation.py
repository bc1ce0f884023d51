"""Compute utilisation: of the accumulates a spike-input block could perform, how many it does.

For each spike linear (and the head): useful operations per image are the accumulates
actually performed, one per input spike per output it reaches (the calibration images'
spike counts, the same ones the event-driven cycles come from), against the block's
capacity, lanes x cycles per image: `pe * simd` accumulators a cycle dense, `pe`
event-driven. A dense block's utilisation is its input spike rate (it visits every
input bit); an event-driven one's approaches 1 as every step of a token has a spike.
"""

from __future__ import annotations

# The layers whose capacity is lanes x cycles (one accumulate per lane per cycle).
_FAN_OUT = {"qk": lambda cfg: 2 * cfg.dim, "o": lambda cfg: cfg.dim,
            "fc1": lambda cfg: cfg.hidden, "fc2": lambda cfg: cfg.dim}


def _fan_out(layer: str, cfg) -> int | None:
    if layer == "head":
        return cfg.num_classes
    if layer.startswith("blocks."):
        f = _FAN_OUT.get(layer.split(".")[2])
        return f(cfg) if f else None
    return None


def layer_utilisation(plan, model) -> list[dict]:
    """Per spike linear and the head: useful accumulates per image, lanes, cycles per image
    and their ratio, for `plan` (hwgen.compiler.plan.Plan, with spike statistics)."""
    if plan.stats is None:
        raise ValueError("utilisation needs the plan's spike statistics (plan_model)")
    graph = plan.graph(model).for_models_only()
    rows = []
    for x in plan.layers:
        fan = _fan_out(x.layer or "", model.config)
        spikes = plan.stats.layers.get(x.layer or "")
        if fan is None or spikes is None or not x.cycles:
            continue
        c = graph.nodes[x.node].component
        lanes = c.pe * (1 if getattr(c, "mode", "dense") == "event" else c.simd)
        useful = float(spikes.counts.sum()) / spikes.counts.shape[0] * fan
        rows.append({"block": x.node, "layer": x.layer, "mode": getattr(c, "mode", "dense"),
                     "useful_per_image": useful, "lanes": lanes, "cycles": x.cycles,
                     "utilisation": useful / (lanes * x.cycles),
                     "bottleneck": x.node == plan.bottleneck.node})
    return rows


def total_utilisation(rows: list[dict]) -> float | None:
    """All those blocks together: useful accumulates / (lanes x cycles), summed."""
    cap = sum(r["lanes"] * r["cycles"] for r in rows)
    return sum(r["useful_per_image"] for r in rows) / cap if cap else None
