"""The `hwgen` command line: one subcommand per pipeline step (SPEC §1).

Heavy imports (torch, amaranth) happen inside the subcommands so `--help` is
instant. Any HwgenError becomes one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hwgen.cli.args import add_data_arguments, load_data_from_args, positive_int
from hwgen.cli.build import register_build
from hwgen.cli.compile import register as register_compile
from hwgen.cli.config import register_config
from hwgen.cli.sweep import register_sweep
from hwgen.errors import HwgenError
from quant.checkpoints import BUNDLED_CHECKPOINT, BUNDLED_MODEL
from quant.config_file import resolve_config


def _quant_threads() -> None:
    """One torch thread for the quant commands: their tensors are small, and on a busy
    2-core machine two spinning threads ran the golden model 6x slower (BENCHMARKS.md)."""
    import torch

    torch.set_num_threads(1)


def _cmd_train(args: argparse.Namespace) -> int:
    from quant.datasets import load_data  # heavy: torch
    from quant.train import train_model

    cfg = resolve_config(args.config)
    data = load_data(args.data, cfg, args.val_split)
    result = train_model(cfg, data, out=Path(args.out), epochs=args.epochs, seed=args.seed,
                         progress=not args.quiet, resume=args.resume and Path(args.resume))
    print(f"float test accuracy {result['test_accuracy'] * 100:.2f}% (best epoch "
          f"{result['best_epoch']} of {result['epochs']}, {result['seconds']:.1f} s on "
          f"{result['device']}); checkpoint written to {args.out}")
    return 0


def _cmd_quantize(args: argparse.Namespace) -> int:
    from quant.model_file import save_model  # heavy: torch
    from quant.pipeline import quantize_with_report

    _quant_threads()
    model, report = quantize_with_report(
        Path(args.checkpoint), args.bits, data=args.data, val_split=args.val_split,
        config=resolve_config(args.config) if args.config else None, qat_epochs=args.qat,
        seed=args.seed, progress=not args.quiet)
    save_model(model, Path(args.output))
    print(report)
    print(f"integer model written to {args.output}")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from quant.model_file import load_model  # heavy: torch
    from quant.summary import summary

    _quant_threads()
    model = load_model(Path(args.model))
    print(summary(model, accuracy=not args.no_accuracy,
                  data=load_data_from_args(args, model.config)))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from quant.quantize import quantize_checkpoint, report_accuracy

    _quant_threads()
    print(f"[demo 1/2] quantising the bundled checkpoint {BUNDLED_CHECKPOINT.name} "
          "(docs/arithmetic.md) and running the integer golden model ...", flush=True)
    model = quantize_checkpoint(BUNDLED_CHECKPOINT, weight_bits=8)
    print(report_accuracy(BUNDLED_CHECKPOINT, model, other_bits=(4,)))
    print(f"weight memory {model.weight_memory_bits():,} bits at 8 bits; the bundled integer "
          f"model file is {BUNDLED_MODEL.name} (try: hwgen inspect {BUNDLED_MODEL})")
    if args.skip_build:
        return 0
    argv = ["build", "--board", args.board, *(["--out", args.out] if args.out else [])]
    print(f"[demo 2/2] hwgen {' '.join(argv)}: the bundled model's accelerator behind the "
          "UART board top, synthesised, placed and routed ...", flush=True)
    build_args = build_parser().parse_args(argv)
    return build_args.func(build_args)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (what was wrong, and where the help is), exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="hwgen",
        description="Spiking transformer (SAFormer) to verified FPGA/ASIC accelerator.",
        epilog="Run 'hwgen COMMAND --help' for the options of one command.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    t = sub.add_parser("train", help="train a SAFormer (default digits-tiny on digits)",
                       description="Train a float SAFormer (--config; default digits-tiny) on "
                                   "--data (default scikit-learn's digits, fixed 1437/360 "
                                   "train/test split) with surrogate gradients, seeded, on the "
                                   "GPU when torch sees one (else one CPU thread); evaluate on "
                                   "the test part every epoch, keep the best epoch's weights in "
                                   "the checkpoint for 'hwgen quantize'.",
                       epilog="example: hwgen train -o my.pt && hwgen quantize my.pt -o my.hwq")
    t.add_argument("--config", default="digits-tiny", metavar="NAME|FILE",
                   help="reference config name or TOML config file (default digits-tiny)")
    t.add_argument("-o", "--out", default="digits-tiny.pt",
                   help="checkpoint to write (default: digits-tiny.pt)")
    t.add_argument("--epochs", type=positive_int, default=None,
                   help="training epochs (default 60, the recipe's: about a minute on an idle "
                        "core)")
    t.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    t.add_argument("--resume", metavar="CKPT",
                   help="continue the interrupted run saved in CKPT (same config, data, epochs)")
    add_data_arguments(t, "train on the train part, evaluate on the test part")
    t.set_defaults(func=_cmd_train)

    q = sub.add_parser("quantize", help="quantise a checkpoint to an integer model file",
                       description="Fold BN, quantise weights per output channel, put biases "
                                   "and LIF thresholds in integer scale, derive every "
                                   "accumulator width (docs/arithmetic.md); print float vs "
                                   "integer accuracy on the test part of --data (default: the "
                                   "digits test split) and write the integer model file "
                                   "(docs/model_file.md).",
                       epilog="example: hwgen quantize quant/checkpoints/digits-tiny.pt -o m.hwq")
    q.add_argument("checkpoint", help="float checkpoint written by 'hwgen train'")
    q.add_argument("-o", "--output", required=True, help="integer model file to write (.hwq)")
    q.add_argument("--config", metavar="NAME|FILE",
                   help="refuse the checkpoint unless its config equals this one")
    q.add_argument("--bits", type=int, choices=(4, 8), default=8,
                   help="weight bits (default 8; with 8, the 4-bit accuracy is reported too)")
    q.add_argument("--qat", type=positive_int, metavar="EPOCHS",
                   help="quantisation-aware fine-tuning for EPOCHS epochs on the train part "
                        "(docs/qat.md); reports float, post-training and QAT accuracy")
    q.add_argument("--seed", type=int, default=0, help="seed of the QAT run (default 0)")
    q.add_argument("-q", "--quiet", action="store_true", help="no QAT progress bar")
    add_data_arguments(q, "calibrate on the train part, report on the test part")
    q.set_defaults(func=_cmd_quantize)

    i = sub.add_parser("inspect", help="summarise an integer model file",
                       description="Check an integer model file, then print its layers, "
                                   "shapes, bit widths, parameter count, weight memory (and "
                                   "whether it fits the iCE40 UP5K block RAM) and the golden "
                                   "model's accuracy on the test part of --data (without "
                                   "--data: the digits test split, for digits-tiny).",
                       epilog="example: hwgen inspect quant/checkpoints/digits-tiny.hwq")
    i.add_argument("model", help="integer model file (.hwq)")
    i.add_argument("--no-accuracy", action="store_true", help="skip the accuracy run")
    add_data_arguments(i, "accuracy on the test part")
    i.set_defaults(func=_cmd_inspect)

    d = sub.add_parser("demo", help="the main job on the bundled model",
                       description="Quantise the bundled digits-tiny checkpoint at 8 and 4 "
                                   "bits and print float vs integer (golden model) accuracy on "
                                   "the digits test split; then build the bundled model for "
                                   "the iCEBreaker ('hwgen build --board icebreaker'): print "
                                   "where the bitstream and report are, Fmax, utilisation "
                                   "and images/s.",
                       epilog="example: hwgen demo --out build/demo")
    d.add_argument("--board", default="icebreaker", help="board to build for (default "
                                                          "icebreaker; see 'hwgen boards')")
    d.add_argument("--out", help="build directory (default build/BOARD-digits-tiny)")
    d.add_argument("--skip-build", action="store_true",
                   help="only the accuracy report (no synthesis)")
    d.set_defaults(func=_cmd_demo)

    register_compile(sub)  # plan, verilog, sim, run
    register_build(sub)  # build, boards, report
    register_sweep(sub)  # sweep (hwgen.sweep does the work)
    register_config(sub)  # config show
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except HwgenError as e:
        print(f"hwgen {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hwgen: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
