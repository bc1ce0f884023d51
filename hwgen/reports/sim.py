"""The report of `hwgen sim`: the terminal summary and the JSON record (`--report FILE`)."""

from __future__ import annotations


def format_sim_report(report, plan, wall: float) -> str:
    lines = [f"images passed: {report.passed}/{report.images} bit-exact "
             f"(result, logits and every layer stream) on {report.simulator}"]
    if report.mismatch:
        lines.append(f"first mismatch: {report.mismatch}")
        if report.waveform:
            lines.append(f"waveform: {report.waveform}")
    if report.cycles:
        mean = sum(report.cycles) / len(report.cycles)
        pred = sum(report.predicted_cycles) / max(1, len(report.predicted_cycles))
        err = max(abs(a - b) / b for a, b in zip(report.cycles, report.predicted_cycles,
                                                 strict=False)) if report.predicted_cycles else 0
        lines.append(f"cycles per image: measured {mean:,.1f} (mean), predicted {pred:,.1f}; "
                     f"largest prediction error {100 * err:.2f}%")
        sim = max(report.sim_seconds, 1e-9)
        lines.append(f"simulation: {report.simulated_cycles:,} cycles in {sim:.1f} s "
                     f"({report.images / sim:.1f} images/s, "
                     f"{report.simulated_cycles / sim:,.0f} cycles/s); simulator build "
                     f"{report.build_seconds:.1f} s; wall {wall:.1f} s")
    if report.spans:
        off = report.span_mismatches()
        lines.append(f"per layer: {len(report.spans[0])} streams' first and last beat per "
                     f"image " + (f"differ from the prediction in {len(off)} cases, first: "
                                  f"{off[0]}" if off else "equal the prediction"))
    acc = report.accuracy
    if acc is not None:
        lines.append(f"accuracy on these images: {100 * acc:.2f}% (hardware classes vs labels)")
    return "\n".join(lines)


def sim_report_dict(report, plan, wall: float) -> dict:
    return {"images": report.images, "passed": report.passed, "mismatch": report.mismatch,
            "waveform": str(report.waveform) if report.waveform else None,
            "cycles": report.cycles, "predicted_cycles": report.predicted_cycles,
            "predictions": report.predictions, "labels": report.labels,
            "accuracy": report.accuracy, "seconds": wall, "simulator": report.simulator,
            "build_seconds": report.build_seconds, "sim_seconds": report.sim_seconds,
            # per tapped stream, image 0: first and last beat, measured and predicted
            "layers": [{"stream": name, "measured": list(got),
                        "predicted": list(report.predicted_spans[0][name])}
                       for name, got in report.spans[0].items()] if report.spans else None,
            "plan": plan.to_dict()}
