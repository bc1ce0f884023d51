"""`hwgen run`: classify images on a programmed board over its serial port (docs/protocol.md)
and compare every class and logit with the golden model.

`BoardClient` speaks the protocol over any object with pyserial's `read(n)` /
`write(data)`; the command opens the port with pyserial (a device path or a
pyserial URL such as ``loop://``).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

from hwgen import protocol as P
from hwgen.user_cli import add_data_arguments
from quant.errors import HwgenError


class BoardError(HwgenError):
    """The board did not answer as the protocol says (timeout, error frame, wrong reply)."""


class BoardClient:
    """Requests to a board and its decoded replies; one request at a time.

    A reply that is an error frame, or no reply within the link's timeout, is retried
    `retries` times (the board resynchronises after an error by itself), then raises
    BoardError with a one-line reason.
    """

    def __init__(self, link, geometry: P.Geometry | None = None, retries: int = 1):
        self.link = link
        self.geometry = geometry
        self.retries = retries
        self.errors: list[str] = []  # replies that were retried

    def request(self, cmd: int, payload: bytes = b"") -> P.Response:
        name = P.COMMANDS.get(cmd, f"{cmd:#04x}")
        for attempt in range(self.retries + 1):
            self.link.write(P.encode_request(cmd, payload))
            try:
                frame = P.read_response(self.link.read)
                resp = P.decode_response(frame, self.geometry)
            except P.ReadTimeout:
                problem = f"no reply to {name} within the timeout"
            except P.ProtocolError as e:
                problem = f"malformed reply to {name}: {e}"
            else:
                if resp.ok and resp.cmd == cmd:
                    return resp
                problem = f"board answered {resp.describe()} to {name}"
            self.errors.append(problem)
            if attempt < self.retries:
                self._resync()
        raise BoardError(problem)

    def _resync(self) -> None:
        """Let the board's parser time out and drop whatever is in flight."""
        time.sleep(0.05)
        reset = getattr(self.link, "reset_input_buffer", None)
        if reset:
            reset()

    def ping(self) -> P.Geometry:
        return self.request(P.PING).geometry

    def selftest(self) -> P.Response:
        return self.request(P.SELFTEST)

    def classify(self, pixels, cfg) -> P.Response:
        return self.request(P.CLASSIFY, P.image_bytes(pixels, cfg))


@dataclass
class RunReport:
    images: int = 0
    matches: int = 0
    classes: list[int] = field(default_factory=list)
    golden: list[int] = field(default_factory=list)
    labels: list[int] | None = None
    selftest_ok: bool | None = None
    seconds: float = 0.0
    retried: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float | None:
        if not self.labels:
            return None
        return sum(int(c == y) for c, y in zip(self.classes, self.labels, strict=False)) / len(
            self.labels)


def _geometry_difference(board: P.Geometry, host: P.Geometry) -> str | None:
    for name in ("pixels", "channels", "pixel_bits", "classes", "logit_bytes"):
        if getattr(board, name) != getattr(host, name):
            return f"{name} {getattr(board, name)} on the board, {getattr(host, name)} here"
    return None


def builtin_image(model):
    """The board top's self-test image (hwgen.board_top.default_selftest_image, without
    importing Amaranth): the first digits test image, or random with seed 0."""
    from hwgen.commands import sample_images

    return sample_images(model, 1, seed=0)[0][0]


def run_images(link, model, pixels, labels=None, *, out=print) -> RunReport:
    """PING (check the geometry), SELFTEST, then CLASSIFY every image [B, C, H, W];
    print one line per image against the golden model and return the figures."""
    from quant import golden

    cfg = model.config
    host = P.model_geometry(model)
    client = BoardClient(link, host)
    reset = getattr(link, "reset_input_buffer", None)
    if reset:
        reset()  # drop anything sent before we listened (nothing is sent unasked)
    board = client.ping()
    diff = _geometry_difference(board, host)
    if diff:
        raise BoardError(f"the board runs another model: {diff}")
    if board.model_id != host.model_id:
        out(f"warning: the board was built from another model file (id {board.model_id:08x}, "
            f"this one {host.model_id:08x}): expect differences")
    report = RunReport(labels=labels)

    want = golden.run(model, builtin_image(model).unsqueeze(0), taps=False)
    st = client.selftest()
    report.selftest_ok = st.cls == int(want["pred"][0]) and list(st.logits) == want["logits"][0].tolist()
    out(f"self-test: class {st.cls} (golden {int(want['pred'][0])}) "
        f"{'ok' if report.selftest_ok else 'MISMATCH'}")

    gold = golden.run(model, pixels, taps=False)
    start = time.monotonic()
    for k in range(pixels.shape[0]):
        r = client.classify(pixels[k], cfg)
        g_cls, g_logits = int(gold["pred"][k]), gold["logits"][k].tolist()
        ok = r.cls == g_cls and list(r.logits) == g_logits
        report.images += 1
        report.matches += ok
        report.classes.append(r.cls)
        report.golden.append(g_cls)
        label = f", label {labels[k]}" if labels else ""
        line = (f"image {k}: class {r.cls} (golden {g_cls}{label}) {'ok' if ok else 'MISMATCH'} "
                f"logits {list(r.logits)}")
        if list(r.logits) != g_logits:
            line += f" golden {g_logits}"
        out(line)
    report.seconds = time.monotonic() - start
    report.retried = list(client.errors)
    return report


def format_summary(report: RunReport) -> str:
    rate = report.images / report.seconds if report.seconds > 0 else float("inf")
    parts = [f"{report.matches}/{report.images} images match the golden model "
             f"(class and logits)"]
    if report.accuracy is not None:
        parts.append(f"accuracy {100 * report.accuracy:.1f}% against the labels")
    parts.append(f"{rate:.1f} images/s over the link")
    if report.retried:
        parts.append(f"{len(report.retried)} request(s) retried (first: {report.retried[0]})")
    return "; ".join(parts)


def open_link(port: str, baud: int, timeout: float):
    """The serial port (pyserial; a device or a URL), or a one-line HwgenError."""
    import serial

    try:
        return serial.serial_for_url(port, baudrate=baud, timeout=timeout)
    except (serial.SerialException, ValueError, OSError) as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise HwgenError(f"cannot open serial port {port!r}: {reason}") from None


def cmd_run(args: argparse.Namespace) -> int:
    from hwgen.commands import load_model_from_args, sample_images

    if args.images < 1:
        raise HwgenError(f"--images must be at least 1, not {args.images}")
    if args.baud < 1:
        raise HwgenError(f"--baud must be positive, not {args.baud}")
    if args.timeout <= 0:
        raise HwgenError(f"--timeout must be positive, not {args.timeout}")
    model = load_model_from_args(args)
    pixels, labels = sample_images(model, args.images, seed=args.seed, data=args.data,
                                   val_split=args.val_split)
    link = open_link(args.port, args.baud, args.timeout)
    try:
        report = run_images(link, model, pixels, labels, out=lambda s: print(s, flush=True))
    finally:
        link.close()
    print(format_summary(report))
    bad = report.images - report.matches
    if bad or not report.selftest_ok:
        what = f"{bad} of {report.images} images" if bad else "the self-test"
        raise HwgenError(f"{what} differ(s) from the golden model")
    return 0


def register_run(sub) -> None:
    """Add `hwgen run` to the CLI's subparsers (argparse only: --help stays instant)."""
    from hwgen.commands import add_model_arguments

    p = sub.add_parser(
        "run", help="classify images on a programmed board over its serial port",
        description="Send images over the board's UART (docs/protocol.md: CRC-8 frames) to a "
                    "board programmed by 'hwgen build': check its model geometry (PING), run "
                    "its self-test, classify digits test images (random images for other "
                    "configs) and compare every class and logit with the golden model.",
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
