"""The hardware subcommands of `hwgen`: plan, verilog, sim (the CLI parses, these act).

Each takes the parsed arguments, loads and checks the model before any hardware
exists, and raises HwgenError subclasses for everything a user can get wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from hwgen.user_cli import add_data_arguments
from quant.errors import HwgenError

BUNDLED_MODEL = Path(__file__).resolve().parent.parent / "quant" / "checkpoints" / "digits-tiny.hwq"

# The board each reference config is planned for unless --board says otherwise.
DEFAULT_BOARD = {"digits-tiny": "icebreaker", "cifar-mid": "ulx3s-85f"}


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", metavar="FILE",
                   help=f"integer model file (.hwq; default: the bundled {BUNDLED_MODEL.name})")
    g.add_argument("--config", metavar="NAME|FILE",
                   help="instead of a file: a reference config (digits-tiny, cifar-mid, "
                        "cifar-paper) or a TOML config file, with seeded random integer weights")
    g.add_argument("--weight-seed", type=int, default=0, metavar="S",
                   help="seed of the random weights with --config (default 0)")
    g.add_argument("--bits", type=int, choices=(4, 8), default=8,
                   help="weight bits of the random weights with --config (default 8)")


def add_target_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("target")
    g.add_argument("--board", metavar="NAME",
                   help="plan for this board's device (see 'hwgen boards'; default: icebreaker "
                        "for digits-tiny, ulx3s-85f otherwise)")
    g.add_argument("--max-util", type=float, metavar="P",
                   help="utilisation ceiling in percent of the device's LUTs (and, on iCE40, "
                        "logic cells); default: the board's (80, icebreaker 95)")
    g.add_argument("--target-fps", type=float, metavar="F",
                   help="stop widening once this many images/s are reached at the board clock")
    g.add_argument("--event-driven", default="", metavar="LAYERS",
                   help="comma-separated spike linears to run event-driven, e.g. "
                        "blocks.0.fc2 (default: all dense)")


def load_model_from_args(args: argparse.Namespace):
    from hwgen.loader import check_supported, load_supported

    if args.config and args.model:
        raise HwgenError("give either --model or --config, not both")
    if args.config:
        from quant.config_file import resolve_config
        from quant.random_model import random_int_model

        cfg = resolve_config(args.config)
        return check_supported(random_int_model(cfg, args.bits, seed=args.weight_seed))
    return load_supported(Path(args.model) if args.model else BUNDLED_MODEL)


def target_from_args(args: argparse.Namespace, model):
    from hwgen.boards import get_board
    from hwgen.plan import Target

    name = args.board or DEFAULT_BOARD.get(model.config.name, "ulx3s-85f")
    board = get_board(name)
    return board, Target.for_board(board, args.max_util, args.target_fps)


def make_plan_from_args(args: argparse.Namespace, model, *, timing: bool = True):
    from hwgen.plan import make_plan, predict_timing

    board, target = target_from_args(args, model)
    layers = tuple(x.strip() for x in args.event_driven.split(",") if x.strip())
    known = {f"blocks.{b}.{n}" for b in range(model.config.depth) for n in ("qk", "o", "fc1", "fc2")}
    unknown = [x for x in layers if x not in known]
    if unknown:
        raise HwgenError(f"--event-driven: {unknown[0]!r} is not a spike linear; "
                         f"choose from {', '.join(sorted(known))}")
    plan = make_plan(model, target, event_layers=layers)
    if timing:
        predict_timing(plan, model, edge_words=_sample_words(plan, model) if layers else None)
    return board, plan


def _sample_words(plan, model):
    """Stream words of one sample image, for event-driven layers' data-dependent timing."""
    from hwgen.predict import propagate_words
    from sim.twin import stream_words

    pixels = sample_images(model, 1)[0]
    _, per_edge, _ = stream_words(plan.graph(model), pixels)
    return propagate_words(plan.graph(model), {k: v[0] for k, v in per_edge.items()})


def sample_images(model, n: int, seed: int = 0, data: str | None = None,
                  val_split: float = 0.2):
    """(pixels [n, C, H, W], labels or None): the first n test images of --data PATH, or of
    the digits test split for digits-tiny; random images otherwise."""
    import torch

    from quant.random_model import random_pixels

    if n < 1:
        raise HwgenError(f"--images must be at least 1, not {n}")
    cfg = model.config
    if data is not None or cfg.name == "digits-tiny":
        from quant.data import load_digits_split
        from quant.datasets import load_data

        # digits-tiny by name (any weights, as before --data existed) reads the digits split
        split = load_data(data, cfg, val_split) if data is not None else load_digits_split()
        if n > len(split.test_labels):
            raise HwgenError(f"--images: the test part of {data or 'the digits split'} has "
                             f"{len(split.test_labels)} images, not {n}")
        return split.test_pixels[:n].to(torch.int64), [int(y) for y in split.test_labels[:n]]
    return random_pixels(cfg, n, seed=seed), None


# --------------------------------------------------------------------------- commands

def cmd_plan(args: argparse.Namespace) -> int:
    model = load_model_from_args(args)
    _, plan = make_plan_from_args(args, model)
    if args.json:
        print(json.dumps(plan.to_dict(), indent=2))
    else:
        print(plan.table())
    return 0


def cmd_verilog(args: argparse.Namespace) -> int:
    from hwgen.top import accelerator_verilog

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
    from sim.e2e import simulate_accelerator
    from sim.runner import simulator_missing_reason

    if args.images < 1:  # before anything is built
        raise HwgenError(f"--images must be at least 1, not {args.images}")
    reason = simulator_missing_reason(args.simulator)
    if reason:
        raise HwgenError(reason)
    model = load_model_from_args(args)
    pixels, labels = sample_images(model, args.images, seed=args.seed, data=args.data,
                                   val_split=args.val_split)
    board, plan = make_plan_from_args(args, model)
    graph = plan.graph(model)
    progress(f"{model.config.name}: {len(graph.nodes)} blocks planned for {board.name}; "
             f"predicted {plan.latency_cycles} cycles per image")
    start = time.monotonic()
    report = simulate_accelerator(graph, pixels, labels=labels, simulator=args.simulator,
                                  seed=args.seed, gap=args.gap, backpressure=args.backpressure,
                                  workers=args.workers, progress=progress)
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
    if off := report.span_mismatches():
        raise HwgenError(f"per-layer cycle prediction off ({len(off)} streams): {off[0]}")
    return 0


def progress(msg: str) -> None:
    """Progress of a long step, on stderr so stdout stays the report."""
    print(msg, file=sys.stderr, flush=True)


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
                       description="Run the generated accelerator in cocotb on digits test "
                                   "images (random images for other configs); compare the "
                                   "class, the logits and every layer's stream with the golden "
                                   "model; report the first mismatch (layer, token, time step, "
                                   "channel) with a waveform, and cycles vs the plan.")
    add_model_arguments(s)
    add_target_arguments(s)
    s.add_argument("--images", type=int, default=10, metavar="N", help="images (default 10)")
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
    add_data_arguments(s, "simulate its first test images")
    s.set_defaults(func=cmd_sim)

    from hwgen.run import register_run  # `hwgen run`: the board link (argparse only)

    register_run(sub)
