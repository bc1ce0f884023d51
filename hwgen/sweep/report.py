"""OUT/report.md: every trial in one table, and Pareto plots (matplotlib PNGs) of the ones
that ran: images/s vs LUTs, accuracy vs weight bits, images per joule (the energy
estimate's images/s per watt) vs LUTs, the Pareto-optimal trials marked.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from hwgen.reports.markdown import fmt, table

REPORT = "report.md"


def images_per_s(r: dict) -> float | None:
    """A trial's throughput: at the board clock from the plan, or from its build at the
    clock it can run (the board clock, or Fmax when timing was missed)."""
    b, p = r.get("build"), r.get("plan")
    if b and b.get("images_per_s_at_clock"):
        fmax = b.get("images_per_s_at_fmax")
        return min(b["images_per_s_at_clock"], fmax) if fmax else None
    return p.get("images_per_s") if p else None


def luts(r: dict) -> int | None:
    """Synthesised LUTs (whole design) after a build, else the plan's prediction."""
    b, p = r.get("build"), r.get("plan")
    if b and b.get("synth"):
        return b["synth"].get("lut")
    return p.get("lut") if p else None


def accuracy(r: dict) -> float | None:
    a = r.get("accuracy") or {}
    return a.get("hardware") if a.get("hardware") is not None else a.get("golden")


def images_per_joule(r: dict) -> float | None:
    return (r.get("energy") or {}).get("images_per_joule")


def weight_bits(r: dict) -> int | None:
    return (r.get("model") or {}).get("weight_bits")


# name, x (minimised), y (maximised), axis labels, file
PLOTS = [
    ("throughput", luts, images_per_s, "LUTs", "images/s", "pareto_throughput_luts.png"),
    ("accuracy", weight_bits, accuracy, "weight bits", "accuracy", "pareto_accuracy_bits.png"),
    ("efficiency", luts, images_per_joule, "LUTs", "images per joule (images/s per watt, "
     "energy estimate)", "pareto_efficiency_luts.png"),
]


def pareto(points: list[tuple[float, float]]) -> list[bool]:
    """For each (x, y): True if no other point has x <= and y >= with one strictly better
    (x minimised, y maximised)."""
    return [not any(qx <= px and qy >= py and (qx < px or qy > py) for qx, qy in points)
            for px, py in points]


def pareto_sets(records: list[dict]) -> dict[str, set[str]]:
    """Plot name -> keys of the Pareto-optimal trials among those that ran."""
    out = {}
    for name, fx, fy, *_ in PLOTS:
        pts = [(r["key"], fx(r), fy(r)) for r in records if r["status"] == "ok"]
        pts = [(k, x, y) for k, x, y in pts if x is not None and y is not None]
        flags = pareto([(x, y) for _, x, y in pts])
        out[name] = {k for (k, _, _), f in zip(pts, flags, strict=True) if f}
    return out


def _plot(path: Path, records: list[dict], fx, fy, xlabel: str, ylabel: str,
          front: set[str]) -> bool:
    import matplotlib  # loaded only to draw: the headless backend must be set before pyplot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(fx(r), fy(r), r) for r in records if r["status"] == "ok"]
    pts = [(x, y, r) for x, y, r in pts if x is not None and y is not None]
    if not pts:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    rest = [(x, y) for x, y, r in pts if r["key"] not in front]
    best = sorted((x, y) for x, y, r in pts if r["key"] in front)
    if rest:
        ax.scatter(*zip(*rest, strict=True), color="tab:gray", label="trial")
    ax.scatter(*zip(*best, strict=True), color="tab:red", marker="*", s=140,
               label="Pareto-optimal")
    ax.step([x for x, _ in best], [y for _, y in best], where="post", color="tab:red",
            alpha=0.5)
    for x, y, r in pts:
        ax.annotate(r["label"], (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ys = [y for _, y, _ in pts]
    if min(ys) > 0 and max(ys) / min(ys) > 100:  # throughputs span orders of magnitude
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def write_report(out_dir: Path, records: list[dict], *, title: str = "hwgen sweep") -> Path:
    """Write OUT/report.md and its PNGs from the sweep's records."""
    out_dir = Path(out_dir)
    fronts = pareto_sets(records)
    counts = Counter(r["status"] for r in records)
    stages = sorted({r["stage"] for r in records})
    lines = [f"# {title}", "",
             f"{len(records)} trials (stage {', '.join(stages) or '-'}): "
             + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ".",
             "", "Records: `results.jsonl` (fields: docs/sweep.md). Pareto-optimal trials "
             "are marked T (images/s vs LUTs), A (accuracy vs weight bits), E (images per "
             "joule vs LUTs). LUTs are synthesised after a build, planned otherwise; "
             "images/s is at the board clock (or Fmax, if lower, after a build).", ""]
    rows = []
    for r in records:
        p, s, b = r.get("plan") or {}, r.get("sim") or {}, r.get("build") or {}
        marks = "".join(m for m, name in (("T", "throughput"), ("A", "accuracy"),
                                          ("E", "efficiency")) if r["key"] in fronts[name])
        acc = accuracy(r)
        verdict = "-" if not s else (f"{s['passed']}/{s['images']} bit-exact"
                                     + ("" if s.get("cycles_match") else ", cycles off"))
        rows.append([r["label"], r["status"], marks or "-", luts(r), p.get("bram"),
                     p.get("latency_cycles"), p.get("interval_cycles"), images_per_s(r),
                     b.get("fmax_mhz"), fmt((r.get("energy") or {}).get("nj_per_image"), 2),
                     "-" if acc is None else f"{100 * acc:.1f}%", verdict,
                     (r.get("reason") or "").replace("|", "/")])
    lines += table(["trial", "status", "Pareto", "LUT", "BRAM", "latency", "II", "images/s",
                    "Fmax MHz", "nJ/image", "accuracy", "simulation", "reason"], rows)
    lines.append("")
    for name, fx, fy, xlabel, ylabel, png in PLOTS:
        lines += [f"## Pareto: {ylabel} vs {xlabel}", ""]
        if _plot(out_dir / png, records, fx, fy, xlabel, ylabel, fronts[name]):
            lines += [f"![{name}]({png})", ""]
        else:
            (out_dir / png).unlink(missing_ok=True)
            lines += [f"No trial that ran has both figures ({name}).", ""]
    path = out_dir / REPORT
    path.write_text("\n".join(lines))
    return path
