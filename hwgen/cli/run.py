"""`hwgen run`: the command line of the board link (hwgen.host.client does the work)."""

from __future__ import annotations

import argparse

from hwgen.cli.args import (
    add_data_arguments,
    add_model_arguments,
    load_data_from_args,
    load_model_from_args,
)
from hwgen.errors import HwgenError
from hwgen.host import client


def cmd_run(args: argparse.Namespace) -> int:
    if args.images < 1 and not (args.images == 0 and args.load_weights):
        raise HwgenError(f"--images must be at least 1, not {args.images} (0 only with "
                         f"--load-weights: load the memory image and stop)")
    if args.baud < 1:
        raise HwgenError(f"--baud must be positive, not {args.baud}")
    if args.timeout <= 0:
        raise HwgenError(f"--timeout must be positive, not {args.timeout}")
    if not 1 <= args.word_bits <= 64:
        raise HwgenError(f"--word-bits must be 1 .. 64, not {args.word_bits}")
    if args.frame_words < 1:
        raise HwgenError(f"--frame-words must be at least 1, not {args.frame_words}")
    if args.frames_ahead < 0:
        raise HwgenError(f"--frames-ahead must be at least 0, not {args.frames_ahead}")
    if args.verify_weights and not args.load_weights:
        raise HwgenError("--verify-weights needs --load-weights FILE")
    if args.images:
        from quant.data import sample_images  # heavy: torch, scikit-learn

        model = load_model_from_args(args)
        data = load_data_from_args(args, model.config)
        pixels, labels = sample_images(model, args.images, seed=args.seed, data=data)
    link = client.open_link(args.port, args.baud, args.timeout)
    try:
        if args.load_weights:
            loaded = client.load_weights_file(link, args.load_weights,
                                              data_width=args.word_bits,
                                              frame_words=args.frame_words,
                                              ahead=args.frames_ahead,
                                              verify=args.verify_weights)
            print(loaded.describe(), flush=True)
        if not args.images:
            return 0
        report = client.run_images(link, model, pixels, labels, out=lambda s: print(s, flush=True))
    finally:
        link.close()
    print(client.format_summary(report))
    bad = report.images - report.matches
    if bad or not report.selftest_ok:
        what = f"{bad} of {report.images} images" if bad else "the self-test"
        raise HwgenError(f"{what} differ(s) from the golden model")
    return 0


def register_run(sub) -> None:
    """Add `hwgen run` to the CLI's subparsers (argparse only: --help stays instant)."""
    p = sub.add_parser(
        "run", help="classify images on a programmed board over its serial port",
        description="Send images over the board's UART (docs/protocol.md: CRC-8 frames) to a "
                    "board programmed by 'hwgen build': check its model geometry (PING), run "
                    "its self-test, classify the test part of --data or digits test images "
                    "(random images for other configs) and compare every class and logit "
                    "with the golden model.",
        epilog="example: hwgen run --port /dev/ttyUSB1 --images 20")
    p.add_argument("--port", required=True, metavar="DEVICE",
                   help="serial device (e.g. /dev/ttyUSB1, COM3) or a pyserial URL")
    add_model_arguments(p)
    p.add_argument("--images", type=int, default=10, metavar="N",
                   help="images (default 10; 0 with --load-weights: only load the weights, "
                        "e.g. on the ULX3S weight-loader top)")
    p.add_argument("--baud", type=int, default=115200, metavar="B",
                   help="baud rate the board top was built for (default 115200)")
    p.add_argument("--timeout", type=float, default=2.0, metavar="S",
                   help="seconds to wait for each reply (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of random images (default 0)")
    p.add_argument("--load-weights", metavar="FILE",
                   help="first write this memory image into the board's external memory "
                        "(the weights of an external-weight build): a $readmemh-style hex "
                        "file (@address lines, one hex word per line), sent in LOAD_WEIGHTS "
                        "frames, each acknowledged by the board (docs/protocol.md, "
                        "\"Loading weights\")")
    p.add_argument("--word-bits", type=int, default=16, metavar="N",
                   help="bits per memory word for --load-weights (default 16: the ULX3S "
                        "SDRAM)")
    p.add_argument("--frame-words", type=int, default=1024, metavar="N",
                   help="words per LOAD_WEIGHTS frame: at most the board loader's frame "
                        "buffer (default 1024, the ULX3S loader top's)")
    p.add_argument("--frames-ahead", type=int, default=1, metavar="N",
                   help="LOAD_WEIGHTS frames sent before the oldest one's reply (default 1, "
                        "for the ULX3S loader top's receive FIFO; 0: one at a time)")
    p.add_argument("--verify-weights", action="store_true",
                   help="after --load-weights, read every word back (READ_WEIGHTS) and stop "
                        "at the first that differs")
    add_data_arguments(p, "classify its first test images")
    p.set_defaults(func=cmd_run)
