"""Build reports: `report.json` (the figures) and `report.md` with matplotlib plots.

`write_report` gathers a board build's figures: plan (predicted cycles and
resources), synthesis and place-and-route results, spike rates and the energy
estimate (docs/reports.md states the counting rule); `render` turns report.json,
plus a `hwgen sim --report` file named sim.json in the same directory, into
Markdown and PNGs (`hwgen report DIR`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from quant.errors import HwgenError

REPORT_VERSION = 1
PJ_PER_AC = 0.9  # 45 nm, 32-bit integer add (Horowitz, ISSCC 2014), as the field uses it
PJ_PER_MAC = 4.6  # 45 nm, 32-bit multiply-accumulate
RESOURCE_KEYS = ("lut", "ff", "bram", "dsp", "spram")
ENERGY_RULE = (
    "Operations per image, from the golden model's spikes on the sample images (the "
    "hardware is bit-exact to it). AC (accumulate, 0.9 pJ): one per input spike per output "
    "neuron it reaches - spike linears (q, k, o, fc1, fc2, head): spikes x output features; "
    "spike 3x3 convs (stem after the first, rpe): spikes x output channels x the output "
    "positions whose window holds the spike; depthwise conv: spikes x those positions; SASA: "
    "one per Q AND K coincidence (a popcount increment). MAC (multiply-accumulate, 4.6 pJ): "
    "the pixel conv, dense: every input pixel x output channels x covering positions, "
    "once per image (direct encoding repeats the same conv output for all T steps, so the "
    "hardware computes it once). Not counted: bias adds, LIF updates, residual adds, max-pool "
    "ORs, the SASA gate's ANDs, argmax, memory and data-movement energy.")


class ReportError(HwgenError):
    pass


# ------------------------------------------------------------------------ activity, energy

@dataclass
class LayerOps:
    layer: str
    kind: str  # "ac" or "mac"
    ops: float  # per image
    source: str  # the tap whose spikes (or pixels) it counts

    @property
    def energy_pj(self) -> float:
        return self.ops * (PJ_PER_AC if self.kind == "ac" else PJ_PER_MAC)


def cover_counts(h: int, w: int) -> torch.Tensor:
    """[h, w]: how many output positions of a padded 3x3 conv read input position (y, x)."""
    def axis(n: int) -> torch.Tensor:
        return torch.tensor([min(y + 1, n - 1) - max(y - 1, 0) + 1 for y in range(n)])
    return axis(h).reshape(-1, 1) * axis(w).reshape(1, -1)


def operation_counts(model, taps: dict[str, torch.Tensor], pixels: torch.Tensor) -> list[LayerOps]:
    """ACs and MACs per image by the rule in ENERGY_RULE; `taps` are quant.golden.run's
    ([T, B, C, H, W] spikes) for `pixels` [B, C, H, W]."""
    cfg = model.config
    batch = pixels.shape[0]
    out: list[LayerOps] = []

    def conv_ops(name: str, src: str, s: torch.Tensor, cout: int, kind: str) -> None:
        cover = cover_counts(*s.shape[-2:]).to(torch.float64)
        out.append(LayerOps(name, kind, float((s.to(torch.float64) * cover).sum()) * cout / batch,
                            src))

    prev = ("frames", taps["frames"]) if cfg.frames else ("pixels", pixels.unsqueeze(0))
    for i, stage in enumerate(model.stem):
        conv = stage.conv
        if conv.pixel_input:  # dense: every pixel, zero or not, once per image
            conv_ops(f"stem.{i}.conv", "pixels", torch.ones_like(pixels[:1]).expand_as(
                pixels).unsqueeze(0), conv.out_channels, "mac")
        else:
            conv_ops(f"stem.{i}.conv", prev[0], prev[1], conv.out_channels, "ac")
        key = f"stem.{i}.pool" if stage.pool else f"stem.{i}.lif"
        prev = (key, taps[key])
    conv_ops("rpe", prev[0], prev[1], model.rpe.out_channels, "ac")

    def linear(name: str, src: str, fan_out: int) -> None:
        out.append(LayerOps(name, "ac", float(taps[src].sum()) * fan_out / batch, src))

    for b, blk in enumerate(model.blocks):
        p = f"blocks.{b}"
        linear(f"{p}.q", f"{p}.attn_lif", blk.q.weight.shape[0])
        linear(f"{p}.k", f"{p}.attn_lif", blk.k.weight.shape[0])
        out.append(LayerOps(f"{p}.sasa", "ac", float(taps[f"{p}.agg_count"].sum()) / batch,
                            f"{p}.q_lif AND {p}.k_lif"))
        linear(f"{p}.o", f"{p}.sasa", blk.o.weight.shape[0])
        conv_ops(f"{p}.dwc", f"{p}.attn_lif", taps[f"{p}.attn_lif"], 1, "ac")
        linear(f"{p}.fc1", f"{p}.mlp_lif", blk.fc1.weight.shape[0])
        linear(f"{p}.fc2", f"{p}.fc1_lif", blk.fc2.weight.shape[0])
    linear("head", "head.lif", cfg.num_classes)
    return out


def spike_rates(model, taps: dict[str, torch.Tensor]) -> list[dict]:
    """Per spiking layer: the fraction of neuron-steps that spiked, and spikes per image."""
    names = [n for n, _ in model.named_lifs()]
    names += [f"stem.{i}.pool" for i, s in enumerate(model.stem) if s.pool]
    names += [f"blocks.{b}.sasa" for b in range(len(model.blocks))]
    order = {n: k for k, n in enumerate(taps)}
    rows = []
    for name in sorted((n for n in names if n in taps), key=lambda n: order[n]):
        t = taps[name]
        batch = t.shape[1] if t.dim() >= 2 else 1
        rows.append({"layer": name, "rate": float(t.to(torch.float64).mean()),
                     "spikes_per_image": float(t.sum()) / batch, "neurons": t[0, 0].numel()})
    return rows


def activity(model, images: int = 8) -> dict:
    """Spike rates and the energy estimate on `images` sample images (hwgen.commands)."""
    from hwgen.commands import sample_images
    from quant.golden import run

    if images < 1:
        raise ValueError(f"images must be >= 1, not {images!r}")
    pixels, _ = sample_images(model, images)
    taps = run(model, pixels)
    ops = operation_counts(model, taps, pixels)
    ac = sum(x.ops for x in ops if x.kind == "ac")
    mac = sum(x.ops for x in ops if x.kind == "mac")
    source = "digits test images" if model.config.name == "digits-tiny" else "random images"
    return {
        "images": images, "source": f"first {images} {source}",
        "spike_rates": spike_rates(model, taps),
        "energy": {"pj_per_ac": PJ_PER_AC, "pj_per_mac": PJ_PER_MAC, "rule": ENERGY_RULE,
                   "ac_per_image": ac, "mac_per_image": mac,
                   "nj_per_image": (ac * PJ_PER_AC + mac * PJ_PER_MAC) / 1000,
                   "layers": [{"layer": x.layer, "kind": x.kind, "ops": x.ops,
                               "source": x.source, "nj": x.energy_pj / 1000} for x in ops]},
    }


# ------------------------------------------------------------------------ report.json

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
        from hwgen.plan import logic_cells

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


def write_report(out_dir: Path, model, plan, board, result, *, images: int = 8) -> dict:
    """Write report.json and render report.md for a board build (hwgen.build.BuildResult)."""
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
    }
    (out_dir / "report.json").write_text(json.dumps(data, indent=2))
    render(out_dir)
    return data


# ------------------------------------------------------------------------ rendering

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
        from hwgen.asic import asic_markdown

        text = asic_markdown(data, out_dir)
    else:
        text = markdown(data, sim, out_dir)
    path = out_dir / "report.md"
    path.write_text(text)
    return path


def fmt(x, digits: int = 1) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return "-"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:,.{digits}f}"


def table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c if isinstance(c, str) else fmt(c) for c in r) + " |"
              for r in rows]
    return lines


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:+.1f}%"


def _bar_plot(path: Path, labels: list[str], series: dict[str, list], ylabel: str,
              title: str, log: bool = False) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(labels) + 2), 4))
    width = 0.8 / max(1, len(series))
    for k, (name, values) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(labels))]
        ax.bar(xs, [v or 0 for v in values], width, label=name)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if log:
        ax.set_yscale("symlog")
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def activity_lines(act: dict, out_dir: Path) -> list[str]:
    """Spike rates and energy (shared with the ASIC report)."""
    rates, en = act["spike_rates"], act["energy"]
    lines = ["## Spike rates", "", f"On the {act['source']} (golden model; the hardware is "
             "bit-exact to it).", ""]
    lines += table(["layer", "neurons", "spike rate", "spikes/image"],
                   [[r["layer"], r["neurons"], f"{100 * r['rate']:.1f}%",
                     r["spikes_per_image"]] for r in rates])
    png = _bar_plot(out_dir / "spike_rates.png", [r["layer"] for r in rates],
                    {"spike rate": [r["rate"] for r in rates]}, "fraction of neuron-steps",
                    "spike rate per layer")
    lines += ["", f"![spike rates]({png})", "", "## Energy estimate (45 nm convention)", "",
              f"{fmt(en['nj_per_image'], 2)} nJ per image: {fmt(en['ac_per_image'], 0)} AC x "
              f"{en['pj_per_ac']} pJ + {fmt(en['mac_per_image'], 0)} MAC x {en['pj_per_mac']} pJ.",
              "", f"Counting rule: {en['rule']}", ""]
    lines += table(["layer", "op", "ops/image", "counted from", "nJ/image"],
                   [[x["layer"], x["kind"].upper(), fmt(x["ops"], 0), x["source"],
                     fmt(x["nj"], 3)] for x in en["layers"]])
    png = _bar_plot(out_dir / "energy.png", [x["layer"] for x in en["layers"]],
                    {"nJ": [x["nj"] for x in en["layers"]]}, "nJ per image",
                    "energy estimate per layer")
    return lines + ["", f"![energy]({png})", ""]


def markdown(data: dict, sim: dict | None, out_dir: Path) -> str:
    b, m, t, res, bld = (data["board"], data["model"], data["timing"], data["resources"],
                         data["build"])
    plan = data["plan"]
    lines = [f"# hwgen build: {m['name']} on {b['name']} ({b['device']})", ""]
    if bld.get("vendor_tool"):
        lines += [f"Not built: this board needs the vendor tool {bld['vendor_tool']}. The "
                  f"build directory holds Amaranth's build plan; run `{Path(bld['script']).name}`"
                  " where the tool is installed. Figures below are the plan's predictions.", ""]
    else:
        met = "met" if t["fmax_mhz"] and t["fmax_mhz"] >= t["clock_mhz"] else "MISSED"
        lines += [f"- bitstream: `{Path(bld['bitstream']).name}` (board top {bld['top']}), "
                  f"built in {fmt(bld['seconds'])} s",
                  f"- Fmax {fmt(t['fmax_mhz'])} MHz vs constraint {fmt(t['clock_mhz'])} MHz: "
                  f"timing {met}"]
    lines += [f"- initiation interval {fmt(t['interval_cycles'])} cycles, latency "
              f"{fmt(t['latency_cycles'])} cycles (bottleneck {t['bottleneck']})",
              f"- throughput {fmt(t['images_per_s_at_clock'], 0)} images/s at the "
              f"{fmt(t['clock_mhz'])} MHz clock" + (
                  f", {fmt(t['images_per_s_at_fmax'], 0)} images/s at Fmax "
                  f"({fmt(t['latency_us_at_fmax'], 2)} us latency)" if t["fmax_mhz"] else ""),
              f"- energy estimate {fmt(data['activity']['energy']['nj_per_image'], 2)} nJ per "
              "image (45 nm convention)", ""]
    lines += [f"{note}" for note in bld.get("notes", [])] + [""]
    lines += cycles_lines(plan, t, sim, out_dir)
    lines += resource_lines(res, b, out_dir)
    lines += activity_lines(data["activity"], out_dir)
    return "\n".join(lines)


def cycles_lines(plan: dict, t: dict, sim: dict | None, out_dir: Path) -> list[str]:
    layers = [x for x in plan["layers"] if x["cycles"]]
    spans = _output_spans(sim)
    lines = ["## Cycles", "", "Busy cycles per image of each block in free flow (the plan's "
             "closed-form estimate; the slowest sets the initiation interval)."]
    head = ["block", "kind", "folding", "predicted cycles/image"]
    rows = [[x["node"], x["kind"], x["folding"] or "-", x["cycles"]] for x in layers]
    series = {"predicted busy": [x["cycles"] for x in layers]}
    if spans:
        lines[-1] += (" After `hwgen sim`: each block's output stream in the first simulated "
                      "image, first..last beat counted from the image's first pixel beat "
                      "(cycle 1), measured and as the cycle models predict, and the span "
                      "between them (the block's active cycles, stalls included).")
        head += ["output beats, measured", "predicted", "measured span"]
        for row, x in zip(rows, layers, strict=True):
            got = spans.get(x["node"])
            row += ([f"{got['measured'][0]:,}..{got['measured'][1]:,}",
                     f"{got['predicted'][0]:,}..{got['predicted'][1]:,}",
                     got["measured"][1] - got["measured"][0] + 1] if got else ["-", "-", "-"])
        series["measured span"] = [(spans[x["node"]]["measured"][1]
                                    - spans[x["node"]]["measured"][0] + 1)
                                   if x["node"] in spans else 0 for x in layers]
    lines += [""] + table(head, rows)
    png = _bar_plot(out_dir / "cycles.png", [x["node"] for x in layers], series,
                    "cycles per image", "cycles per block: predicted busy"
                    + (", measured output span" if spans else ""))
    lines += ["", f"![cycles]({png})", ""]
    if sim and sim.get("cycles"):
        meas, pred = sim["cycles"], sim.get("predicted_cycles") or []
        err = max((abs(a - p) / p for a, p in zip(meas, pred, strict=False) if p), default=None)
        other = sim.get("plan")
        if other and (other.get("foldings"), other.get("lanes_u"), other.get("model")) != (
                plan.get("foldings"), plan.get("lanes_u"), plan.get("model")):
            lines += ["**Warning: sim.json was simulated with a different plan (model, folding "
                      "or lanes) than this build; its cycles are not this design's.**", ""]
        lines += [f"Simulated (`sim.json`, {sim['images']} images on {sim['simulator']}, "
                  f"{sim['passed']}/{sim['images']} bit-exact): cycles per image, first pixel "
                  f"to result, measured mean {fmt(sum(meas) / len(meas))} vs predicted "
                  f"{fmt(sum(pred) / len(pred)) if pred else '-'} (largest error "
                  f"{pct(err) if err is not None else '-'}).", ""]
        shown = 10
        lines += table(["image", "measured cycles", "predicted cycles"],
                       [[k, a, p] for k, (a, p) in enumerate(zip(meas[:shown], pred[:shown],
                                                                 strict=False))])
        if len(meas) > shown:
            lines.append(f"(the first {shown} of {len(meas)} images; all are in sim.json)")
        lines.append("")
    else:
        lines += ["No simulation yet: run `hwgen sim --report <build dir>/sim.json` (same "
                  "model and board), then `hwgen report <build dir>`.", ""]
    return lines


def _output_spans(sim: dict | None) -> dict[str, dict]:
    """Block name -> its output stream's measured and predicted beats (sim.json "layers")."""
    out = {}
    for x in (sim or {}).get("layers") or []:
        out.setdefault(x["stream"].split("->")[0].rsplit(".", 1)[0], x)
    return out


def resource_lines(res: dict, board: dict, out_dir: Path) -> list[str]:
    cap = dict(board["capacity"], lc=board["capacity"]["lut"])
    lines = ["## Resources", "", "The plan's prediction for the accelerator against the "
             "accelerator alone as synthesised (the per-block figures below, summed): error = "
             "(predicted - synthesised) / synthesised. Whole design: Yosys on the flattened "
             "board build, board top included; nextpnr: the placed design. LC: iCE40 logic "
             "cells (a LUT4 and a flip-flop each), the planner's packing model vs nextpnr.",
             ""]
    lines += table(["resource", "predicted", "accelerator synthesised", "error",
                    "whole design (Yosys)", "placed (nextpnr)", "capacity"],
                   [[k.upper(), v["predicted"], v["accelerator"], pct(v["error"]), v["design"],
                     v["nextpnr"], cap.get(k)] for k, v in res["device"].items()
                    if k != "spram" or v["predicted"] or v["design"]])
    if res.get("nextpnr"):
        lines += ["", "nextpnr utilisation:", ""]
        lines += table(["cell", "used", "available", "%"],
                       [[k, v["used"], v["available"],
                         f"{100 * v['used'] / v['available']:.1f}%" if v["available"] else "-"]
                        for k, v in res["nextpnr"].items() if v["used"]])
    blocks = res["blocks"]
    shown = [k for k in RESOURCE_KEYS if k != "spram" or any(
        x["predicted"].get(k) or (x["synthesised"] or {}).get(k) for x in blocks)]
    if any(x["synthesised"] for x in blocks):
        lines += ["", "Per block: plan vs a hierarchical Yosys synthesis of the accelerator "
                  "(no optimisation across block boundaries).", ""]
        rows = []
        for x in blocks:
            p, s, e = x["predicted"], x["synthesised"] or {}, x["error"] or {}
            rows.append([x["block"], x["kind"]] + [
                f"{p[k]} / {fmt(s.get(k))} ({pct(e.get(k))})" for k in shown])
        lines += table(["block", "kind"] + [f"{k.upper()} pred / synth (err)"
                                            for k in shown], rows)
        for k in ("lut", "ff"):
            png = _bar_plot(out_dir / f"resources_{k}.png", [x["block"] for x in blocks],
                            {"predicted": [x["predicted"][k] for x in blocks],
                             "synthesised": [(x["synthesised"] or {}).get(k) for x in blocks]},
                            k.upper(), f"{k.upper()} per block", log=True)
            lines += ["", f"![{k} per block]({png})"]
        extra = res.get("unplanned_blocks") or {}
        if extra:
            lines += ["", "Not in the plan: " + ", ".join(
                f"{k} ({v['lut']} LUT, {v['ff']} FF)" for k, v in extra.items())]
    return lines + [""]
