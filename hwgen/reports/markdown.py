"""report.md: a build's (or an ASIC estimate's) figures as Markdown tables and PNG plots."""

from __future__ import annotations

import math
from pathlib import Path

from hwgen.reports.plots import bar_plot

RESOURCE_KEYS = ("lut", "ff", "bram", "dsp", "spram")


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


def activity_lines(act: dict, out_dir: Path) -> list[str]:
    """Spike rates and energy (shared with the ASIC report)."""
    rates, en = act["spike_rates"], act["energy"]
    lines = ["## Spike rates", "", f"On the {act['source']} (golden model; the hardware is "
             "bit-exact to it).", ""]
    lines += table(["layer", "neurons", "spike rate", "spikes/image"],
                   [[r["layer"], r["neurons"], f"{100 * r['rate']:.1f}%",
                     r["spikes_per_image"]] for r in rates])
    png = bar_plot(out_dir / "spike_rates.png", [r["layer"] for r in rates],
                    {"spike rate": [r["rate"] for r in rates]}, "fraction of neuron-steps",
                    "spike rate per layer")
    lines += ["", f"![spike rates]({png})", "", "## Energy estimate (45 nm convention)", "",
              f"{fmt(en['nj_per_image'], 2)} nJ per image: {fmt(en['ac_per_image'], 0)} AC x "
              f"{en['pj_per_ac']} pJ + {fmt(en['mac_per_image'], 0)} MAC x {en['pj_per_mac']} pJ.",
              "", f"Counting rule: {en['rule']}", ""]
    lines += table(["layer", "op", "ops/image", "counted from", "nJ/image"],
                   [[x["layer"], x["kind"].upper(), fmt(x["ops"], 0), x["source"],
                     fmt(x["nj"], 3)] for x in en["layers"]])
    png = bar_plot(out_dir / "energy.png", [x["layer"] for x in en["layers"]],
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
    lines += utilisation_lines(data.get("utilisation"), out_dir)
    lines += resource_lines(res, b, out_dir)
    lines += activity_lines(data["activity"], out_dir)
    return "\n".join(lines)


def utilisation_lines(util: dict | None, out_dir: Path) -> list[str]:
    """The compute-utilisation table and plot (hwgen.reports.utilisation)."""
    if not util or not util.get("layers"):
        return []
    rows = util["layers"]
    lines = ["## Compute utilisation", "",
             "Useful accumulates (one per input spike per output it reaches, on the "
             "calibration images) / (lanes x cycles per image). Dense blocks visit every input "
             "bit, so theirs is the input spike rate; event-driven ones skip the zeros.", ""]
    lines += table(["block", "mode", "lanes", "cycles/img", "useful acc/img", "utilisation"],
                   [[r["block"] + (" (bottleneck)" if r["bottleneck"] else ""), r["mode"],
                     r["lanes"], r["cycles"], r["useful_per_image"],
                     f"{100 * r['utilisation']:.1f}%"] for r in rows])
    lines += ["", f"All of them together: {100 * util['total']:.1f}%." if util["total"]
              is not None else "", ""]
    png = bar_plot(out_dir / "utilisation.png", [r["block"] for r in rows],
                   {"utilisation %": [100 * r["utilisation"] for r in rows]},
                   "useful / (lanes x cycles), %", "Compute utilisation per block")
    return lines + [f"![utilisation]({png})", ""]


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
    png = bar_plot(out_dir / "cycles.png", [x["node"] for x in layers], series,
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
            png = bar_plot(out_dir / f"resources_{k}.png", [x["block"] for x in blocks],
                            {"predicted": [x["predicted"][k] for x in blocks],
                             "synthesised": [(x["synthesised"] or {}).get(k) for x in blocks]},
                            k.upper(), f"{k.upper()} per block", log=True)
            lines += ["", f"![{k} per block]({png})"]
        extra = res.get("unplanned_blocks") or {}
        if extra:
            lines += ["", "Not in the plan: " + ", ".join(
                f"{k} ({v['lut']} LUT, {v['ff']} FF)" for k, v in extra.items())]
    return lines + [""]


def asic_markdown(data: dict, out_dir: Path) -> str:
    """report.md of an ASIC estimate (hwgen.reports.report.render)."""
    a, m, t = data["asic"], data["model"], data["timing"]
    tot = a["total"]
    lines = [f"# hwgen ASIC estimate: {m['name']}", "",
             "**No PDK was used.** Yosys generic synthesis (`synth; abc -g cmos`) of the "
             "technology-independent Verilog: generic CMOS cells, NAND2-equivalents = "
             "transistors / 4, no timing or area sign-off. Memories are generic modules "
             "(docs/asic.md) counted in bits, not gates.", "",
             f"- logic: {fmt(tot['nand2_eq'])} NAND2-equivalent gates (transistors / 4)",
             f"- flip-flops: {fmt(tot['ff'])}",
             f"- memory: {fmt(tot['memory_bits'])} bits ({fmt(tot['rom_bits'])} ROM, "
             f"{fmt(tot['ram_bits'])} RAM; the model's weights are "
             f"{fmt(m['weight_memory_bits'])} bits)",
             f"- transistors (Yosys `stat -tech cmos`, logic and flip-flops, memories "
             f"excluded): {fmt(data['yosys_transistors'])}",
             f"- initiation interval {fmt(t['interval_cycles'])} cycles, latency "
             f"{fmt(t['latency_cycles'])} cycles: {fmt(t['images_per_s_at_clock'], 0)} "
             f"images/s at an assumed {fmt(t['clock_mhz'])} MHz", ""]
    lines += a["notes"] + ["", "## Per block", ""]
    lines += table(["block", "NAND2 eq", "FF", "transistors", "ROM bits", "RAM bits"],
                   [[k, v["nand2_eq"], v["ff"], v["transistors"], v["rom_bits"], v["ram_bits"]]
                    for k, v in a["per_block"].items()])
    lines += ["", "## Memories", ""]
    lines += table(["module", "kind", "depth x width", "bits", "instances in"],
                   [[x["module"], x["kind"], f"{x['depth']} x {x['width']}", x["bits"],
                     ", ".join(x["blocks"])] for x in a["memories"]])
    lines += [""] + activity_lines(data["activity"], out_dir)
    return "\n".join(lines)
