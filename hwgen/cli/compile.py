"""The hardware subcommands of `hwgen`: plan, verilog, sim (the CLI parses, these act).

Each takes the parsed arguments, loads and checks the model before any hardware
exists, and raises HwgenError subclasses for everything a user can get wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

from hwgen.cli.args import (
    add_data_arguments,
    add_model_arguments,
    add_target_arguments,
    load_data_from_args,
    load_model_from_args,
    make_plan_from_args,
    make_styled_plan_from_args,
    positive_int,
    progress,
)
from hwgen.cli.run import register_run
from hwgen.errors import HwgenError
from hwgen.reports.utilisation import layer_utilisation, total_utilisation


def cmd_plan(args: argparse.Namespace) -> int:
    model = load_model_from_args(args)
    _, styled = make_styled_plan_from_args(args, model)
    if styled.plan is None:  # external weights: the engine's schedule
        print(json.dumps(styled.to_dict(), indent=2) if args.json else styled.table())
        return 0
    plan = styled.plan
    rows = layer_utilisation(plan, model)
    if args.json:
        print(json.dumps(dict(styled.to_dict(), utilisation={
            "layers": rows, "total": total_utilisation(rows)}), indent=2))
        return 0
    print(styled.table())
    if rows:
        tot = total_utilisation(rows)
        print("compute utilisation (useful accumulates / lanes x cycles): " + ", ".join(
            f"{r['block']} {100 * r['utilisation']:.0f}%" for r in rows)
            + (f"; together {100 * tot:.0f}%" if tot is not None else ""))
    return 0


def cmd_verilog(args: argparse.Namespace) -> int:
    from hwgen.compiler.top import accelerator_verilog  # heavy: Amaranth

    model = load_model_from_args(args)
    _, plan = make_plan_from_args(args, model, timing=False)
    text = accelerator_verilog(plan.graph(model), taps=args.taps)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out} ({len(text.splitlines()):,} lines, {len(plan.layers)} blocks; "
          f"{model.config.name}, plan for {plan.target.device.name})")
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    # Only this command reaches into the verification layer (cocotb, simulators).
    from hwgen.reports.sim import format_sim_report, sim_report_dict
    from quant.data import sample_images  # heavy: torch, scikit-learn
    from sim.e2e import simulate_accelerator
    from sim.runner import simulator_missing_reason

    reason = simulator_missing_reason(args.simulator)
    if reason:
        raise HwgenError(reason)
    model = load_model_from_args(args)
    data = load_data_from_args(args, model.config)
    pixels, labels = sample_images(model, args.images, seed=args.seed, data=data)
    board, plan = make_plan_from_args(args, model)  # as `hwgen build` plans it
    graph = plan.graph(model)
    progress(f"{model.config.name}: {len(graph.nodes)} blocks planned for {board.name}; "
             f"predicted {plan.latency_cycles} cycles per image")
    start = time.monotonic()
    if args.address:  # the chunks as Ray tasks (hwgen[sweep]); Ray is imported only here
        from hwgen.sweep.executors import ray_chunk_map

        chunks = ray_chunk_map(args.address)
    else:
        chunks = contextlib.nullcontext(None)
    with chunks as map_chunks:
        report = simulate_accelerator(graph, pixels, labels=labels, simulator=args.simulator,
                                      seed=args.seed, gap=args.gap,
                                      backpressure=args.backpressure, workers=args.workers,
                                      progress=progress, stream=not args.alone,
                                      map_chunks=map_chunks,
                                      dense_runs={3: plan.stream_cycles}
                                      if plan.stream_cycles else None,
                                      alone=(plan.latency_cycles, plan.alone_spans)
                                      if plan.alone_spans is not None else None)
    wall = time.monotonic() - start
    print(format_sim_report(report, plan, wall))
    if args.report:
        path = Path(args.report)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(sim_report_dict(report, plan, wall), indent=2))
    if not report.ok:
        raise HwgenError(f"simulation mismatch: {report.mismatch}"
                         + (f" (waveform: {report.waveform})" if report.waveform else ""))
    if not (args.gap or args.backpressure) and not report.cycles_match:
        bad = next(k for k, (a, b) in enumerate(zip(report.cycles, report.predicted_cycles,
                                                    strict=True)) if a != b)
        raise HwgenError(f"cycle prediction off at image {bad}: measured {report.cycles[bad]}, "
                         f"predicted {report.predicted_cycles[bad]}")
    if report.stream_match is False:
        bad = next(k for k, (a, b) in enumerate(zip(report.intervals, report.predicted_intervals,
                                                    strict=False)) if a != b)
        raise HwgenError(f"back-to-back cycle prediction off at interval {bad}: measured "
                         f"{report.intervals[bad]}, predicted {report.predicted_intervals[bad]}")
    if off := report.span_mismatches():
        raise HwgenError(f"per-layer cycle prediction off ({len(off)} streams): {off[0]}")
    return 0


def register(sub) -> None:
    """Add the hardware subcommands to the CLI's subparsers."""
    p = sub.add_parser("plan", help="fold the model for a board and predict cycles and resources",
                       description="Choose folding (PE/SIMD, dense or event-driven) per layer, "
                                   "map memories, predict cycles per image (exact, from the "
                                   "blocks' cycle models) and resources; refuse a model that "
                                   "cannot fit, with the need against the capacity.")
    add_model_arguments(p)
    add_target_arguments(p)
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=cmd_plan)

    v = sub.add_parser("verilog", help="write the accelerator's Verilog",
                       description="Plan, elaborate and export the accelerator as Verilog with "
                                   "Amaranth's built-in Yosys. The same model and options give "
                                   "byte-identical Verilog.")
    add_model_arguments(v)
    add_target_arguments(v)
    v.add_argument("-o", "--output", default="build/accelerator.v", help="Verilog file to write")
    v.add_argument("--taps", action="store_true",
                   help="simulation build: add a signature tap on every layer's stream")
    v.set_defaults(func=cmd_verilog)

    s = sub.add_parser("sim", help="simulate the accelerator in cocotb, bit-exact vs golden",
                       description="Run the generated accelerator in cocotb on the test part "
                                   "of --data, or digits test images (random images for other "
                                   "configs); compare the "
                                   "class, the logits and every layer's stream with the golden "
                                   "model; report the first mismatch (layer, token, time step, "
                                   "channel) with a waveform, and cycles vs the plan.")
    add_model_arguments(s)
    add_target_arguments(s)
    s.add_argument("--images", type=positive_int, default=10, metavar="N",
                   help="images (default 10)")
    s.add_argument("--alone", action="store_true",
                   help="simulate every image alone (each one's per-layer cycles checked) "
                        "instead of back to back (default: back to back, the first image of "
                        "each process alone, measuring throughput)")
    s.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"),
                   help="cocotb simulator (default verilator)")
    s.add_argument("--seed", type=int, default=0, help="seed of random images and stall patterns")
    s.add_argument("--gap", type=float, default=0.0, metavar="P",
                   help="probability of an idle input cycle (default 0)")
    s.add_argument("--backpressure", type=float, default=0.0, metavar="P",
                   help="probability of a stalled output cycle (default 0)")
    s.add_argument("--workers", type=int, default=2, metavar="K",
                   help="simulator processes (default 2)")
    s.add_argument("--report", metavar="FILE", help="also write the report as JSON")
    s.add_argument("--address", metavar="ADDR",
                   help="simulate the --workers chunks as Ray tasks: 'local' (a local Ray "
                        "instance), 'auto' or ray://HOST:PORT (a cluster; needs hwgen[sweep])")
    add_data_arguments(s, "simulate its first test images")
    s.set_defaults(func=cmd_sim)

    register_run(sub)
