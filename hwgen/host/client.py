"""The host side of `hwgen run`: classify images on a programmed board over its serial port (docs/protocol.md)
and compare every class and logit with the golden model.

`BoardClient` speaks the protocol over any object with pyserial's `read(n)` /
`write(data)`; the command opens the port with pyserial (a device path or a
pyserial URL such as ``loop://``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from hwgen.errors import HwgenError
from hwgen.host import protocol as P


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

    def read_weights(self, addr: int, count: int, data_width: int) -> list[int]:
        """`count` words from word address `addr` of the board's external memory."""
        payload = self.request(P.READ_WEIGHTS, P.read_weights_request(addr, count)[4:-1]).payload
        words = P.read_weights_words(payload, data_width)
        if len(words) != count:
            raise BoardError(f"READ_WEIGHTS of {count} words returned {len(words)}")
        return words

    def load_weights(self, segments, *, data_width: int, frame_words: int, ahead: int = 0,
                     verify: bool = False) -> LoadReport:
        """Write memory-image `segments` ([(start address, words)], `P.parse_memory_image`)
        into the board's external memory in LOAD_WEIGHTS frames; up to `ahead` frames are
        sent before the reply of the oldest one (0: strictly one at a time; the board's
        receive FIFO must hold them, docs/protocol.md). A reply that is an error, or none,
        makes the client wait out the board's gap, drop its input and resend from that
        frame (the writes are idempotent), `retries` times per frame. With `verify`, then
        read every word back (READ_WEIGHTS, `frame_words` at a time) and raise BoardError
        at the first that differs."""
        report = LoadReport()
        frames = []
        for addr, words in segments:
            for k in range(0, len(words), frame_words):
                chunk = words[k:k + frame_words]
                frames.append(P.encode_request(P.LOAD_WEIGHTS,
                                               P.load_weights_payload(addr + k, chunk,
                                                                      data_width)))
                report.words += len(chunk)
        report.frames = len(frames)
        start = time.monotonic()
        done = sent = failures = 0
        while done < len(frames):
            while sent < len(frames) and sent - done <= ahead:
                self.link.write(frames[sent])
                report.bytes += len(frames[sent])
                sent += 1
            try:
                resp = P.decode_response(P.read_response(self.link.read))
            except P.ReadTimeout:
                problem = "no reply to LOAD_WEIGHTS within the timeout"
            except P.ProtocolError as e:
                problem = f"malformed reply to LOAD_WEIGHTS: {e}"
            else:
                if resp.ok and resp.cmd == P.LOAD_WEIGHTS:
                    done, failures = done + 1, 0
                    continue
                problem = f"board answered {resp.describe()} to LOAD_WEIGHTS"
            self.errors.append(problem)
            failures += 1
            if failures > self.retries:
                raise BoardError(problem)
            self._resync()
            sent = done
        report.seconds = time.monotonic() - start
        if verify:
            for addr, words in segments:
                for k in range(0, len(words), frame_words):
                    got = self.read_weights(addr + k, len(words[k:k + frame_words]), data_width)
                    for j, (g, want) in enumerate(zip(got, words[k:k + frame_words],
                                                      strict=True)):
                        if g != want:
                            raise BoardError(f"the word at {addr + k + j:#x} reads back as "
                                             f"{g:#x}, not {want:#x}")
                    report.verified += len(got)
        return report


@dataclass
class LoadReport:
    words: int = 0
    frames: int = 0
    bytes: int = 0  # request bytes sent, resent frames included (replies not counted)
    seconds: float = 0.0  # of the writes
    verified: int = 0  # words read back and found equal

    def describe(self) -> str:
        rate = self.bytes / self.seconds / 1e3 if self.seconds > 0 else float("inf")
        text = (f"weights: {self.words} words in {self.frames} LOAD_WEIGHTS frames written "
                f"in {self.seconds:.2f} s ({rate:.1f} kB/s over the link)")
        if self.verified:
            text += f"; {self.verified} words read back equal"
        return text


def load_weights_file(link, path: str, *, data_width: int, frame_words: int, ahead: int = 0,
                      verify: bool = False, retries: int = 1) -> LoadReport:
    """Read the memory image at `path` (`$readmemh` style) and write it into the board's
    external memory over `link`; a one-line HwgenError for an unreadable or bad file."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise HwgenError(f"cannot read memory image {path!r}: {e.strerror or e}") from None
    try:
        segments = P.parse_memory_image(text, data_width)
    except ValueError as e:
        raise HwgenError(f"memory image {path!r}: {e}") from None
    reset = getattr(link, "reset_input_buffer", None)
    if reset:
        reset()
    return BoardClient(link, retries=retries).load_weights(
        segments, data_width=data_width, frame_words=frame_words, ahead=ahead, verify=verify)


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
    """The board top's self-test image (hwgen.targets.board_top.default_selftest_image, without
    importing Amaranth): the first digits test image, or random with seed 0."""
    from quant.data import sample_images  # heavy: torch, scikit-learn; only for this image

    return sample_images(model, 1, seed=0)[0][0]


def run_images(link, model, pixels, labels=None, *, out=print) -> RunReport:
    """PING (check the geometry), SELFTEST, then CLASSIFY every image [B, C, H, W];
    print one line per image against the golden model and return the figures."""
    from quant import golden  # heavy: torch; the host side starts without it

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
    import serial  # pyserial, only when a port is opened

    try:
        return serial.serial_for_url(port, baudrate=baud, timeout=timeout)
    except (serial.SerialException, ValueError, OSError) as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise HwgenError(f"cannot open serial port {port!r}: {reason}") from None
