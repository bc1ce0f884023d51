"""Build reports: `report.json` (the figures) and its rendering (`hwgen report DIR`).

`write_report` gathers a board build's figures: plan (predicted cycles and
resources), synthesis and place-and-route results, spike rates and the energy
estimate (hwgen.reports.activity; docs/reports.md states the counting rule);
`render` turns report.json, plus a `hwgen sim --report` file named sim.json in the
same directory, into Markdown and PNGs (hwgen.reports.markdown).
"""

from __future__ import annotations

import json
from pathlib import Path

from hwgen.compiler.target import logic_cells
from hwgen.errors import HwgenError
from hwgen.reports.activity import activity
from hwgen.reports.markdown import RESOURCE_KEYS, asic_markdown, markdown
from hwgen.reports.utilisation import layer_utilisation, total_utilisation

REPORT_VERSION = 1


class ReportError(HwgenError):
    pass


def _error(predicted, actual) -> float | None:
    if predicted is None or actual is None:
        return None
    if actual == 0:
        return 0.0 if predicted == 0 else None
    return (predicted - actual) / actual


def timing_section(plan, clock_mhz: float, fmax_mhz: float | None) -> dict:
    ii, lat = plan.interval_cycles, plan.latency_cycles

    def ips(mhz):
        return None if not ii or not mhz else mhz * 1e6 / ii

    return {"latency_cycles": lat, "interval_cycles": ii, "bottleneck": plan.bottleneck.node,
            "clock_mhz": clock_mhz, "fmax_mhz": fmax_mhz,
            "images_per_s_at_clock": ips(clock_mhz), "images_per_s_at_fmax": ips(fmax_mhz),
            "latency_us_at_fmax": lat / fmax_mhz if lat and fmax_mhz else None}


# nextpnr's cell type for a resource, per family (whole placed design).
_NEXTPNR_CELL = {"ice40": {"lc": "ICESTORM_LC", "bram": "ICESTORM_RAM", "dsp": "ICESTORM_DSP",
                           "spram": "ICESTORM_SPRAM"},
                 "ecp5": {"lut": "TRELLIS_COMB", "ff": "TRELLIS_FF", "bram": "DP16KD",
                          "dsp": "MULT18X18D"}}


def resources_section(plan, result) -> dict:
    """Predicted (plan) vs synthesised resources, per block and in total.

    `device` rows: the plan's accelerator total; the accelerator alone as synthesised
    (sum of the per-block figures) with the error against it; the whole design (Yosys,
    flattened, board top included); nextpnr's count of the placed design. iCE40 adds
    logic cells ("lc": the planner's packing model vs nextpnr)."""
    tot = dict(plan.totals())
    synth = result.synth or {}
    per = result.per_block or {}
    acc = {k: sum(row.get(k, 0) for row in per.values()) for k in RESOURCE_KEYS} if per else {}
    keys = list(RESOURCE_KEYS)
    if result.family == "ice40":
        tot["lc"] = logic_cells(tot["lut"], tot["ff"])
        keys.append("lc")
    cells = _NEXTPNR_CELL.get(result.family, {})
    device = {}
    for k in keys:
        pnr = result.utilization.get(cells.get(k, ""), {}).get("used")
        versus = acc.get(k) if k != "lc" else None
        device[k] = {"predicted": tot.get(k), "accelerator": versus,
                     "error": _error(tot.get(k), versus), "design": synth.get(k),
                     "nextpnr": pnr}
    blocks = []
    for x in plan.layers:
        pred = {"lut": x.total_lut, "ff": x.total_ff, "bram": x.bram, "dsp": x.dsp,
                "spram": getattr(x, "spram", 0)}
        got = per.get(x.node)
        blocks.append({"block": x.node, "kind": x.kind, "predicted": pred, "synthesised": got,
                       "error": {k: _error(pred[k], got.get(k)) for k in RESOURCE_KEYS}
                       if got else None})
    return {"device": device, "blocks": blocks,
            "unplanned_blocks": {k: v for k, v in per.items()
                                 if k not in {x.node for x in plan.layers}},
            "nextpnr": result.utilization}


def utilisation_section(plan, model) -> dict | None:
    """Compute utilisation of the spike linears and the head (None without statistics)."""
    if plan.stats is None:
        return None
    rows = layer_utilisation(plan, model)
    return {"layers": rows, "total": total_utilisation(rows), "images": plan.stats.images,
            "source": plan.stats.source}


def write_report(out_dir: Path, model, plan, board, result, *, images: int = 8) -> dict:
    """Write report.json and render report.md for a board build (hwgen.targets.cache.BuildResult)."""
    d = board.device
    data = {
        "hwgen_report": REPORT_VERSION, "kind": "fpga",
        "model": {"name": model.config.name, "config": model.config.to_dict(),
                  "weight_bits": model.weight_bits,
                  "weight_memory_bits": model.weight_memory_bits()},
        "board": {"name": board.name, "device": d.name, "family": d.family,
                  "clock_mhz": board.clock_mhz, "vendor": board.vendor,
                  "capacity": {"lut": d.lut, "ff": d.ff, "bram": d.bram, "dsp": d.dsp,
                               "spram": d.spram}},
        "build": result.to_dict(),
        "plan": plan.to_dict(),
        "timing": timing_section(plan, result.clock_mhz or board.clock_mhz, result.fmax_mhz),
        "resources": resources_section(plan, result),
        "activity": activity(model, images),
        "utilisation": utilisation_section(plan, model),
    }
    (out_dir / "report.json").write_text(json.dumps(data, indent=2))
    render(out_dir)
    return data


def load(out_dir: Path) -> tuple[dict, dict | None]:
    out_dir = Path(out_dir)
    try:
        data = json.loads((out_dir / "report.json").read_text())
    except FileNotFoundError:
        raise ReportError(f"{out_dir} has no report.json (not a build directory?)") from None
    except ValueError as e:
        raise ReportError(f"{out_dir / 'report.json'} is not valid JSON: {e}") from None
    if data.get("hwgen_report") != REPORT_VERSION:
        raise ReportError(f"{out_dir / 'report.json'}: unsupported report version "
                          f"{data.get('hwgen_report')!r}")
    sim = None
    if (out_dir / "sim.json").exists():
        try:
            sim = json.loads((out_dir / "sim.json").read_text())
        except ValueError as e:
            raise ReportError(f"{out_dir / 'sim.json'} is not valid JSON: {e}") from None
    return data, sim


def refresh(out_dir: Path) -> None:
    """Re-render when sim.json is newer than report.md (or report.md is missing)."""
    md, sim = Path(out_dir) / "report.md", Path(out_dir) / "sim.json"
    if not md.exists() or (sim.exists() and sim.stat().st_mtime > md.stat().st_mtime):
        render(out_dir)


def render(out_dir: Path) -> Path:
    """report.md and its PNGs from report.json (+ sim.json); returns report.md's path."""
    out_dir = Path(out_dir)
    data, sim = load(out_dir)
    if data["kind"] == "asic":
        text = asic_markdown(data, out_dir)
    else:
        text = markdown(data, sim, out_dir)
    path = out_dir / "report.md"
    path.write_text(text)
    return path
