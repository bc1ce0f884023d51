"""Arguments shared by the hardware commands: which model, which target; and their parsing
into the compiler's objects (hwgen.compiler does the work)."""

from __future__ import annotations

import argparse
import sys

from quant.checkpoints import BUNDLED_MODEL


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", metavar="FILE",
                   help=f"integer model file (.hwq; default: the bundled {BUNDLED_MODEL.name})")
    g.add_argument("--config", metavar="NAME",
                   help="instead of a file: a reference config (digits-tiny, cifar-mid, "
                        "cifar-paper) with seeded random integer weights")
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
    g.add_argument("--event-driven", default="auto", metavar="auto|all|none|LAYERS",
                   help="which layers (spike linears, spike convs, DWCs, the head) run "
                        "event-driven: auto (default: each where its measured input spikes "
                        "make that faster at the same cost), all, none, or a comma-separated "
                        "list such as blocks.0.fc2,head")
    g.add_argument("--calib", type=positive_int, default=16, metavar="N",
                   help="calibration images for the spike statistics (default 16: digits "
                        "training images for digits-tiny, seeded random images otherwise)")


def load_model_from_args(args: argparse.Namespace):
    from hwgen.compiler.loader import resolve_model  # heavy: torch (model file, random weights)

    return resolve_model(args.model, args.config, bits=args.bits, weight_seed=args.weight_seed)


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1, refused with a one-line usage error otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def target_from_args(args: argparse.Namespace, model):
    from hwgen.compiler.target import Target  # planner side: Amaranth blocks, torch
    from hwgen.targets.boards import default_board, get_board

    board = get_board(args.board or default_board(model.config.name))
    return board, Target.for_board(board, args.max_util, args.target_fps)


def make_plan_from_args(args: argparse.Namespace, model, *, timing: bool = True):
    from hwgen.compiler.planner import plan_model  # heavy: Amaranth blocks, torch

    board, target = target_from_args(args, model)
    return board, plan_model(model, target, event=args.event_driven, timing=timing,
                             calib=args.calib)


def progress(msg: str) -> None:
    """Progress of a long step, on stderr so stdout stays the report."""
    print(msg, file=sys.stderr, flush=True)
