"""Arguments shared by the commands: which model, which target, which data; and their
parsing into the compiler's and the quantiser's objects (those do the work)."""

from __future__ import annotations

import argparse
import sys

from hwgen.errors import HwgenError
from quant.checkpoints import BUNDLED_MODEL


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
    g.add_argument("--event-driven", default="auto", metavar="auto|all|none|LAYERS",
                   help="which layers (spike linears, spike convs, DWCs, the head) run "
                        "event-driven: auto (default: each where its measured input spikes "
                        "make that faster at the same cost), all, none, or a comma-separated "
                        "list such as blocks.0.fc2,head")
    g.add_argument("--weights", default="auto",
                   choices=("auto", "onchip", "external", "external-all"),
                   help="where the weights live: auto (default: on chip when the model fits, "
                        "else in the board's external memory, read by one reused engine for "
                        "the blocks, and by conv engines for the stem's spike convs and the "
                        "RPE when theirs are too big for the block RAM), onchip, external "
                        "(forced, e.g. to test a small model), or external-all (external, "
                        "the stem's spike convs and the RPE on engines too)")
    g.add_argument("--calib", type=positive_int, default=16, metavar="N",
                   help="calibration images for the spike statistics (default 16: digits "
                        "training images for digits-tiny, seeded random images otherwise)")


def add_data_arguments(p: argparse.ArgumentParser, what: str) -> None:
    """--data PATH and --val-split F; `what`: what the command does with the data."""
    g = p.add_argument_group("data")
    g.add_argument("--data", metavar="PATH",
                   help=f"your data ({what}): a folder of class sub-folders of PNG/JPEG images "
                        "(flat, or inside train/ and test/) or an .npz with x (N, C, H, W) uint8 "
                        "and y (N,), optional split (N,) 0/1 (docs/usage.md); default: the "
                        "digits split for digits-shaped configs")
    g.add_argument("--val-split", type=float, default=0.2, metavar="F",
                   help="test fraction of data without a train/test split (seeded; default 0.2)")


def load_data_from_args(args: argparse.Namespace, cfg):
    """The DataSplit of --data for config `cfg`, or None without --data."""
    if args.data is None:
        return None
    from quant.datasets import load_data  # heavy: torch, numpy

    return load_data(args.data, cfg, args.val_split)


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


def make_styled_plan_from_args(args: argparse.Namespace, model, *, timing: bool = True):
    """The board and the plan in the style `--weights` asks for (hwgen.compiler.style)."""
    from hwgen.compiler.style import plan_styled  # heavy: Amaranth blocks, torch

    board, target = target_from_args(args, model)
    return board, plan_styled(model, target, weights=args.weights,
                              event=args.event_driven, timing=timing, calib=args.calib)


def make_plan_from_args(args: argparse.Namespace, model, *, timing: bool = True):
    """The board and the plan of the accelerator hwgen generates. In the external-weight
    style that is the stem, RPE and head on chip around the body engine, whose weights sit
    behind a memory port (simulated with the memory-port model of the board's controller,
    built with the controller itself); a model whose on-chip part does not fit yet is
    refused with the reason."""
    board, styled = make_styled_plan_from_args(args, model, timing=timing)
    if styled.plan is None:
        e = styled.engine
        raise HwgenError(
            f"{model.config.name} on {board.name}: {styled.reason}; the external-weight "
            f"engine is planned ({e.images_per_second:.1f} images/s predicted: see 'hwgen "
            f"plan') but no accelerator is generated for it yet: {styled.unbuilt}")
    return board, styled.plan


def progress(msg: str) -> None:
    """Progress of a long step, on stderr so stdout stays the report."""
    print(msg, file=sys.stderr, flush=True)
