"""`hwgen sweep`: its arguments (argparse only; hwgen.sweep.runner does the work)."""

from __future__ import annotations

import argparse


def _csv(kind):
    """An argparse type: a comma-separated list of `kind`."""
    def parse(text: str) -> list:
        items = [x.strip() for x in text.split(",") if x.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"must be a comma-separated list, not {text!r}")
        try:
            return [kind(x) for x in items]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be a comma-separated list of {kind.__name__}s, not {text!r}") from None
    return parse


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}")
        return value
    return parse


def cmd_sweep(args: argparse.Namespace) -> int:
    # Here, not at the top: `hwgen --help` must not load torch and Amaranth (hwgen.cli.main).
    from hwgen.sweep.grid import make_grid
    from hwgen.sweep.runner import parse_bytes, run_sweep

    models = (args.model or []) + (args.config or [])
    axes = {"model": models or None, "bits": args.bits, "weight_seed": args.weight_seed,
            "board": args.board, "max_util": args.max_util, "target_fps": args.target_fps,
            "event_driven": args.event_driven}
    options = {"stage": args.stage, "images": args.images, "simulator": args.simulator,
               "seed": args.seed}
    resources = {"cpus": args.trial_cpus, "memory": args.trial_memory,
                 "timeout": args.trial_timeout}
    grid = make_grid(args.grid, axes, options, resources)
    res = grid.resources
    memory = res.get("memory")
    result = run_sweep(grid, args.out, executor="processes" if args.no_ray else "auto",
                       address=args.address, jobs=args.jobs, cpus=float(res.get("cpus", 1)),
                       memory=parse_bytes(memory) if memory is not None else None,
                       timeout=res.get("timeout"), retry_failed=args.retry_failed,
                       progress=not args.quiet)
    for note in result.notes:
        print(f"note: {note}")
    print(result.summary())
    return 0


def register_sweep(sub) -> None:
    """Add `hwgen sweep` to the CLI's subparsers."""
    s = sub.add_parser(
        "sweep", help="sweep a grid of models, bits and boards to plan, sim or build (Ray)",
        description="Run every combination of the grid's axes as one trial to --stage (plan: "
                    "folding, cycles, resources, energy estimate; sim: N images bit-exact in "
                    "cocotb; build: bitstream, Fmax and utilisation). Trials run as Ray tasks "
                    "(a local instance started and stopped here, or a cluster with "
                    "--address) or, without Ray, in local processes; each record is appended "
                    "to OUT/results.jsonl as it finishes and cached by a content hash, so a "
                    "re-run resumes. OUT/report.md tables every trial with Pareto plots. "
                    "Grid axes may come from a TOML file (docs/sweep.md); the command "
                    "line's replace the file's.",
        epilog="example: hwgen sweep --config digits-tiny,cifar-mid --board "
               "icebreaker,ulx3s-85f --bits 4,8 --stage plan --out sweep/")
    g = s.add_argument_group("grid (comma-separated values: one trial per combination)")
    g.add_argument("--grid", metavar="FILE", help="TOML grid file ([grid], [trial], "
                                                  "[resources]; docs/sweep.md)")
    g.add_argument("--model", type=_csv(str), metavar="FILES",
                   help="integer model files (.hwq) or float checkpoints (.pt, quantised at "
                        "each --bits)")
    g.add_argument("--config", type=_csv(str), metavar="NAMES",
                   help="reference configs (digits-tiny, cifar-mid, cifar-paper) or config "
                        "files (.toml) with seeded random weights")
    g.add_argument("--bits", type=_csv(int), metavar="B", help="weight bits: 4, 8 (default 8)")
    g.add_argument("--weight-seed", type=_csv(int), metavar="S",
                   help="seeds of the random weights (default 0)")
    g.add_argument("--board", type=_csv(str), metavar="NAMES", help="boards (hwgen boards)")
    g.add_argument("--max-util", type=_csv(float), metavar="P",
                   help="LUT ceilings in percent (default: each board's)")
    g.add_argument("--target-fps", type=_csv(str), metavar="F",
                   help="frame-rate goals ('none': as fast as fits; default none)")
    g.add_argument("--event-driven", action="append", metavar="LAYERS",
                   help="one choice of event-driven spike linears: 'none', 'all' or "
                        "comma-separated layers; repeat for more choices (default none)")
    t = s.add_argument_group("trials")
    t.add_argument("--stage", choices=("plan", "sim", "build"),
                   help="how far each trial goes (default plan)")
    t.add_argument("--images", type=int, metavar="N",
                   help="sim: images simulated bit-exact; build: images for the report's "
                        "activity (default 4)")
    t.add_argument("--simulator", choices=("verilator", "icarus"),
                   help="sim: cocotb simulator (default verilator)")
    t.add_argument("--seed", type=int, help="seed of random images (default 0)")
    t.add_argument("--out", default="sweep", metavar="DIR",
                   help="results.jsonl, report.md and plots, builds/ (default sweep)")
    t.add_argument("--retry-failed", action="store_true",
                   help="re-run recorded trials that errored, crashed or timed out")
    e = s.add_argument_group("execution")
    e.add_argument("--address", metavar="ADDR",
                   help="join a running Ray cluster ('auto', or ray://HOST:PORT) instead of "
                        "starting a local instance")
    e.add_argument("--no-ray", action="store_true",
                   help="run trials in local processes (the default when Ray is not installed)")
    e.add_argument("--jobs", type=_positive(int), metavar="K",
                   help="trials at once (default: Ray fills its CPUs; local processes 1)")
    e.add_argument("--trial-cpus", type=_positive(float), metavar="C",
                   help="Ray CPUs per trial (default 1)")
    e.add_argument("--trial-memory", metavar="SIZE",
                   help="Ray memory per trial, e.g. 4G (builds: keep parallel builds "
                        "within the machine's memory; default no request)")
    e.add_argument("--trial-timeout", type=_positive(float), metavar="S",
                   help="seconds before a trial is stopped and recorded as 'timeout'")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_sweep)
