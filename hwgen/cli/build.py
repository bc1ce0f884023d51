"""The `hwgen build`, `hwgen boards` and `hwgen report` commands: arguments, the ASIC or board
build (hwgen.targets.flow, hwgen.targets.asic), the cache check before planning, and the terminal summary."""

from __future__ import annotations

import time
from pathlib import Path

from hwgen.cli.args import (
    add_model_arguments,
    add_target_arguments,
    load_model_from_args,
    make_plan_from_args,
    progress,
)
from hwgen.errors import HwgenError
from hwgen.targets.boards import TOPS, boards_table, default_board, get_board


def _quiet_unused() -> None:
    """The planner builds graphs it never elaborates; Amaranth warns about each at exit."""
    import warnings

    from amaranth.hdl import UnusedElaboratable

    warnings.filterwarnings("ignore", category=UnusedElaboratable)


def _asic_plan(args, model):
    from hwgen.compiler.planner import plan_model  # heavy: Amaranth blocks, torch
    from hwgen.compiler.target import Target
    from hwgen.targets.asic import DEFAULT_CLOCK_MHZ

    clock = args.clock_mhz or DEFAULT_CLOCK_MHZ
    target = Target(device=None, fps=args.target_fps, clock_mhz=clock)
    # No device bounds an ASIC: without a frame-rate goal, keep the smallest folding.
    plan = plan_model(model, target, event=args.event_driven, calib=args.calib,
                      max_steps=200 if args.target_fps else 0)
    return plan, clock


def cmd_build(args) -> int:
    # heavy: Amaranth, torch, the tools; loaded only when a build runs
    from hwgen.targets.cache import build_digest, build_options, reuse
    from hwgen.targets.flow import build, tool_env

    _quiet_unused()
    start = time.monotonic()
    if args.images < 1:
        raise HwgenError(f"--images must be >= 1, not {args.images}")
    if args.asic:
        from hwgen.targets.asic import build_asic  # heavy: Amaranth

        if args.board:
            raise HwgenError("give either --board or --asic, not both")
        model = load_model_from_args(args)
        plan, clock = _asic_plan(args, model)
        out = Path(args.out or f"build/asic-{model.config.name}")
        res = build_asic(model, plan, out, progress=progress, clock_mhz=clock,
                         images=args.images)
        t = res.total
        print(f"ASIC estimate (no PDK; Yosys generic CMOS cells) for {model.config.name}: "
              f"{t['nand2_eq']:,} NAND2-eq logic gates, {t['ff']:,} flip-flops, "
              f"{t['memory_bits']:,} memory bits ({t['rom_bits']:,} ROM, {t['ram_bits']:,} RAM), "
              f"{t['transistors']:,} transistors (logic and flip-flops)")
        print(f"Verilog: {res.verilog} (+ {res.memories_verilog.name}); report: "
              f"{res.out_dir / 'report.md'}")
        return 0
    if args.board:  # fail fast on the board and its tools, before the model loads
        board = get_board(args.board)
        if not board.vendor:
            tool_env(board)
    model = load_model_from_args(args)
    board = get_board(args.board or default_board(model.config.name))
    if not board.vendor:
        tool_env(board)
    out = Path(args.out or f"build/{board.name}-{model.config.name}").resolve()
    digest = None
    if not board.vendor:
        # Planning can take a while: look for a cached build by the planner's inputs first.
        opts = build_options(board, hierarchy=not args.no_hierarchy, top=args.top,
                             images=args.images)
        from hwgen.compiler.target import Target  # heavy: Amaranth blocks

        inputs = {"max_util": Target.for_board(board, args.max_util).max_util,
                  "target_fps": args.target_fps,
                  "event_driven": args.event_driven, "calib": args.calib,
                  "weights": args.weights}
        digest = build_digest(model, board, inputs, opts)
        if not args.force and (hit := reuse(out, digest, progress, start)) is not None:
            print(summary(hit))
            return 0
    _, plan = make_plan_from_args(args, model)
    res = build(model, board, plan, out, progress=progress, force=args.force,
                hierarchy=not args.no_hierarchy, images=args.images, top=args.top,
                digest=digest)
    print(summary(res))
    return 0


def summary(res) -> str:
    """The headline figures of a build (a hwgen.targets.cache.BuildResult), for the terminal."""
    if res.vendor_tool:
        return (f"not built: {res.board} needs {res.vendor_tool}, which hwgen does not run; "
                f"build directory and script: {res.script} (run 'sh {res.script.name}' there "
                f"with {res.vendor_tool} installed); report: {res.out_dir / 'report.md'}")
    state = "cached" if res.cached else f"built in {res.seconds:.1f} s"
    met = "met" if res.timing_met else "MISSED"
    use = ", ".join(f"{k.removeprefix('ICESTORM_').removeprefix('TRELLIS_')} {v['used']}/"
                    f"{v['available']} ({100 * v['used'] / v['available']:.0f}%)"
                    for k, v in res.utilization.items()
                    if v["used"] and v["available"] and not k.startswith(("SB_IO", "SB_GB")))
    ii = res.interval_cycles
    lines = [f"bitstream: {res.bitstream} ({state}; hash {res.digest})",
             f"report: {res.out_dir / 'report.md'}",
             f"Fmax {res.fmax_mhz:.1f} MHz vs {res.clock_mhz:g} MHz constraint: timing {met}"
             if res.fmax_mhz else "Fmax: not reported by nextpnr",
             f"utilisation: {use}"]
    if ii and res.fmax_mhz:
        lines.append(f"throughput: {res.clock_mhz * 1e6 / ii:,.0f} images/s at "
                     f"{res.clock_mhz:g} MHz, {res.fmax_mhz * 1e6 / ii:,.0f} at Fmax "
                     f"(II {ii:,} cycles, latency {res.latency_cycles:,} cycles)")
    if res.weights:
        from hwgen.targets.dram.accelerator_top import DEFAULT_BAUD

        lines.append(f"weights: {res.weights} (in the SDRAM, not the bitstream: load them "
                     f"with 'hwgen run --port PORT --baud {DEFAULT_BAUD} --load-weights "
                     f"{res.weights}')")
    return "\n".join(lines)


def cmd_boards(args) -> int:
    print(boards_table())
    return 0


def cmd_report(args) -> int:
    from hwgen.reports import report  # heavy: torch, matplotlib

    path = report.render(Path(args.dir))
    print(f"wrote {path}")
    return 0


def register_build(sub) -> None:
    """Add `build`, `boards` and `report` to the CLI's subparsers."""
    b = sub.add_parser(
        "build", help="build a bitstream (or an ASIC estimate) with cycle/resource/energy report",
        description="Plan, elaborate, synthesise (Yosys), place and route (nextpnr) and pack "
                    "for a board with the pip-installed YoWASP tools, then write report.json "
                    "and report.md with plots. An unchanged rebuild reuses the cached build. "
                    "Vendor-tool boards get the build directory and script only. With --asic: "
                    "technology-independent Verilog and a Yosys generic-synthesis estimate.",
        epilog="examples: hwgen build --board icebreaker; hwgen build --asic; "
               "hwgen sim --report build/icebreaker-digits-tiny/sim.json && "
               "hwgen report build/icebreaker-digits-tiny")
    add_model_arguments(b)
    add_target_arguments(b)
    b.add_argument("--asic", action="store_true",
                   help="technology-independent Verilog and a gate/transistor estimate "
                        "instead of a board build")
    b.add_argument("--out", metavar="DIR",
                   help="build directory (default build/BOARD-MODEL, or build/asic-MODEL)")
    b.add_argument("--clock-mhz", type=float, metavar="F",
                   help="--asic: the clock assumed for throughput (default 100)")
    b.add_argument("--images", type=int, default=8, metavar="N",
                   help="sample images for spike rates and the energy estimate (default 8)")
    b.add_argument("--top", choices=TOPS, default="auto",
                   help="board top: uart (UART link and self-test), bare (the accelerator "
                        "fed by an LFSR: its own resources and Fmax), auto (uart when "
                        "available; default)")
    b.add_argument("--force", action="store_true", help="rebuild even when cached")
    b.add_argument("--no-hierarchy", action="store_true",
                   help="skip the per-block (hierarchical) synthesis")
    b.set_defaults(func=cmd_build)

    bo = sub.add_parser("boards", help="list the supported boards and their toolchains",
                        description="Supported boards: device, capacity, clock, and whether "
                                    "the toolchain that builds them is installed.")
    bo.set_defaults(func=cmd_boards)

    r = sub.add_parser("report", help="re-render a build's report.md and plots",
                       description="Re-render report.md and its PNG plots from a build "
                                   "directory's report.json, adding measured cycles from "
                                   "sim.json there if present (hwgen sim --report DIR/sim.json).")
    r.add_argument("dir", help="build directory (holds report.json)")
    r.set_defaults(func=cmd_report)
