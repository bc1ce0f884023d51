"""The report of `hwgen sim`: the terminal summary and the JSON record (`--report FILE`)."""

from __future__ import annotations


def throughput(report, plan) -> dict | None:
    """Measured and predicted back-to-back intervals (mean, min, max cycles) and images/s at
    the plan's clock, from a streamed run (hwgen.sim e2e `stream=True`); None without one."""
    got = report.intervals
    if not got:
        return None
    clock = plan.target.clock_mhz

    def summary(xs):
        if not xs:
            return None
        mean = sum(xs) / len(xs)
        return {"mean": mean, "min": min(xs), "max": max(xs),
                "images_per_s": clock * 1e6 / mean}

    return {"clock_mhz": clock, "measured": summary(got),
            "predicted": summary(report.predicted_intervals or []),
            "exact": report.stream_match,
            "plan_interval_cycles": plan.interval_cycles,
            "plan_interval_basis": plan.interval_basis}


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
        alone = " (each image alone)" if report.stream_cycles is None else \
            " (latency: the first image of each chunk alone)"
        lines.append(f"cycles per image{alone}: measured {mean:,.1f} (mean), predicted "
                     f"{pred:,.1f}; largest prediction error {100 * err:.2f}%")
        tp = throughput(report, plan)
        if tp is not None:
            m, p = tp["measured"], tp["predicted"]
            pred_text = (f"predicted {p['mean']:,.1f} / {p['min']:,} / {p['max']:,}, "
                         + ("equal to the measurement image by image" if tp["exact"] else
                            "DIFFERENT from the measurement") if p else "not predicted")
            lines.append(f"back to back: interval between results mean / min / max "
                         f"{m['mean']:,.1f} / {m['min']:,} / {m['max']:,} cycles measured, "
                         f"{pred_text}; {m['images_per_s']:,.0f} images/s at "
                         f"{tp['clock_mhz']:g} MHz (the plan says {plan.interval_cycles:,} "
                         f"cycles, {tp['clock_mhz'] * 1e6 / plan.interval_cycles:,.0f} images/s"
                         f", {plan.interval_basis})")
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
            "stream_cycles": report.stream_cycles,
            "predicted_stream_cycles": report.predicted_stream_cycles,
            "throughput": throughput(report, plan),
            # per tapped stream, image 0: first and last beat, measured and predicted
            "layers": [{"stream": name, "measured": list(got),
                        "predicted": list(report.predicted_spans[0][name])}
                       for name, got in report.spans[0].items()] if report.spans else None,
            "plan": plan.to_dict()}
