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
    if args.images < 1:
        raise HwgenError(f"--images must be at least 1, not {args.images}")
    if args.baud < 1:
        raise HwgenError(f"--baud must be positive, not {args.baud}")
    if args.timeout <= 0:
        raise HwgenError(f"--timeout must be positive, not {args.timeout}")
    from quant.data import sample_images  # heavy: torch, scikit-learn

    model = load_model_from_args(args)
    data = load_data_from_args(args, model.config)
    pixels, labels = sample_images(model, args.images, seed=args.seed, data=data)
    link = client.open_link(args.port, args.baud, args.timeout)
    try:
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
    p.add_argument("--images", type=int, default=10, metavar="N", help="images (default 10)")
    p.add_argument("--baud", type=int, default=115200, metavar="B",
                   help="baud rate the board top was built for (default 115200)")
    p.add_argument("--timeout", type=float, default=2.0, metavar="S",
                   help="seconds to wait for each reply (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of random images (default 0)")
    add_data_arguments(p, "classify its first test images")
    p.set_defaults(func=cmd_run)
