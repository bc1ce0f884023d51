"""The byte protocol between a host and the board top over UART 8N1 (docs/protocol.md).

Pure Python: `hwgen run` talks to a board with it, the system test predicts
the board's replies with it, and its constants mirror `rtl_templates.frame_format`
(a test keeps the two equal). Every frame ends with a CRC-8 of all its bytes
before it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hwgen.errors import HwgenError

VERSION = 1
SYNC_REQUEST = 0xA5
SYNC_RESPONSE = 0x5A

CLASSIFY = 0x43  # "C": classify the image in the payload
SELFTEST = 0x53  # "S": classify the built-in image (and show its class on the LEDs)
PING = 0x50  # "P": report the model's geometry
LOAD_WEIGHTS = 0x57  # "W": write words into the board's external memory (weights)
READ_WEIGHTS = 0x52  # "R": read words back from the board's external memory
COMMANDS = {CLASSIFY: "CLASSIFY", SELFTEST: "SELFTEST", PING: "PING",
            LOAD_WEIGHTS: "LOAD_WEIGHTS", READ_WEIGHTS: "READ_WEIGHTS"}

OK = 0x00
ERR_SYNC = 0x01  # a byte outside a frame that is not SYNC_REQUEST
ERR_COMMAND = 0x02  # unknown command byte
ERR_LENGTH = 0x03  # length field not the one the command needs
ERR_CHECKSUM = 0x04  # CRC-8 mismatch
ERR_TIMEOUT = 0x05  # the line went quiet in the middle of a frame
ERR_UART = 0x06  # bytes lost on the line: a UART framing error or a receiver overrun
ERR_RANGE = 0x07  # a pixel value does not fit pixel_bits
STATUS = {OK: "OK", ERR_SYNC: "SYNC", ERR_COMMAND: "COMMAND", ERR_LENGTH: "LENGTH",
          ERR_CHECKSUM: "CHECKSUM", ERR_TIMEOUT: "TIMEOUT", ERR_UART: "UART",
          ERR_RANGE: "RANGE"}

REQUEST_HEADER = 4  # sync, command, length (16-bit little-endian)
RESPONSE_HEADER = 5  # sync, command, status, length (16-bit little-endian)
LOAD_ADDR_BYTES = 4  # LOAD_WEIGHTS: the start word address, 32-bit little-endian
READ_PAYLOAD = LOAD_ADDR_BYTES + 2  # READ_WEIGHTS: the start address, the word count (LE16)
PING_PAYLOAD = 11  # version, classes, logit bytes, channels, pixel bits, pixels (2), model id (4)

CRC8_POLY = 0x07  # CRC-8/SMBUS: x^8 + x^2 + x + 1, init 0, no reflection, no final xor


class ProtocolError(HwgenError):
    """A frame that breaks the protocol; `status` is the error code the board would send."""

    def __init__(self, message: str, status: int, cmd: int = 0):
        super().__init__(message)
        self.status = status
        self.cmd = cmd


def crc8(data: bytes | Sequence[int], crc: int = 0) -> int:
    """CRC-8/SMBUS of `data` (check value: crc8(b"123456789") == 0xF4)."""
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ CRC8_POLY if crc & 0x80 else crc << 1) & 0xFF
    return crc


# ----------------------------------------------------------------------------- geometry

@dataclass(frozen=True)
class Geometry:
    """What both ends must agree on: image shape, pixel width, classes and logit width.

    `model_id` is the first 4 bytes (little-endian) of the SHA-256 of the integer
    model file's bytes, so a host can tell which model a board was built from.
    """

    pixels: int  # tokens of the input image (H * W)
    channels: int
    pixel_bits: int
    classes: int
    logit_bytes: int  # ceil(acc_bits / 8): each logit, signed little-endian
    model_id: int = 0

    def __post_init__(self) -> None:
        def need(ok: bool, what: str, value) -> None:
            if not ok:
                raise ValueError(f"{what}, not {value!r}")

        for name in ("pixels", "channels", "classes", "logit_bytes"):
            value = getattr(self, name)
            need(isinstance(value, int) and value >= 1, f"{name} must be a positive integer",
                 value)
        need(isinstance(self.pixel_bits, int) and 1 <= self.pixel_bits <= 8,
             "pixel_bits must be an integer in 1..8 (one byte per channel value)",
             self.pixel_bits)
        need(self.channels <= 255, "channels must be at most 255", self.channels)
        need(self.classes <= 256, "classes must be at most 256 (the class is one byte)",
             self.classes)
        need(self.logit_bytes <= 8, "logit_bytes must be at most 8", self.logit_bytes)
        need(self.image_bytes <= 0xFFFF, "pixels * channels must be at most 65535",
             self.image_bytes)
        need(self.result_bytes <= 0xFFFF, "1 + classes * logit_bytes must be at most 65535",
             self.result_bytes)
        need(isinstance(self.model_id, int) and 0 <= self.model_id < 1 << 32,
             "model_id must be a 32-bit unsigned integer", self.model_id)

    @property
    def image_bytes(self) -> int:
        """Payload bytes of a CLASSIFY request."""
        return self.pixels * self.channels

    @property
    def result_bytes(self) -> int:
        """Payload bytes of a result reply: the class, then every logit."""
        return 1 + self.classes * self.logit_bytes

    def request_length(self, cmd: int) -> int:
        """The length field `cmd` needs (ProtocolError ERR_COMMAND for an unknown one)."""
        if cmd == CLASSIFY:
            return self.image_bytes
        if cmd in (SELFTEST, PING):
            return 0
        raise ProtocolError(f"unknown command {cmd:#04x}", ERR_COMMAND, cmd)

    def ping_payload(self) -> bytes:
        return bytes([VERSION, self.classes % 256, self.logit_bytes, self.channels,
                      self.pixel_bits]) + self.pixels.to_bytes(2, "little") \
            + self.model_id.to_bytes(4, "little")

    @classmethod
    def from_ping(cls, payload: bytes) -> Geometry:
        if len(payload) != PING_PAYLOAD:
            raise ProtocolError(f"PING reply has {len(payload)} payload bytes, not "
                                f"{PING_PAYLOAD}", ERR_LENGTH, PING)
        if payload[0] != VERSION:
            raise ProtocolError(f"board speaks protocol version {payload[0]}, not {VERSION}",
                                ERR_COMMAND, PING)
        return cls(pixels=int.from_bytes(payload[5:7], "little"), channels=payload[3],
                   pixel_bits=payload[4], classes=payload[1] or 256, logit_bytes=payload[2],
                   model_id=int.from_bytes(payload[7:11], "little"))


def model_id(model) -> int:
    """32-bit id of an integer model: its model file's SHA-256, first 4 bytes little-endian."""
    from quant.model_file import encode_model  # heavy: torch; the host side starts without it

    return int.from_bytes(hashlib.sha256(encode_model(model)).digest()[:4], "little")


def input_beats(cfg) -> tuple[int, int, int]:
    """(beats per sample, values per beat, bits per value) of the accelerator's input: an
    image is H*W pixels of C channels; event frames are H*W*T (token, time step) beats of
    2 polarity bits (docs/protocol.md). `cfg`: a ModelConfig or alike."""
    h, w = cfg.image_size
    if getattr(cfg, "frames", False):
        return h * w * cfg.time_steps, 2, 1
    return h * w, cfg.image_channels, cfg.pixel_bits


def model_geometry(model) -> Geometry:
    """The Geometry of an integer model (quant.ir.IntModel)."""
    cfg = model.config
    beats, channels, bits = input_beats(cfg)
    return Geometry(pixels=beats, channels=channels, pixel_bits=bits,
                    classes=cfg.num_classes, logit_bytes=-(-model.head.acc_bits // 8),
                    model_id=model_id(model))


# ----------------------------------------------------------------------------- images

def _nested(pixels) -> list:
    return pixels.tolist() if hasattr(pixels, "tolist") else pixels


def image_bytes(pixels, cfg) -> bytes:
    """Payload of a CLASSIFY request: pixels [C][H][W] (nested lists or anything with
    `tolist`) in token raster order (n = y*W + x), the channels of a pixel together, one
    byte per value. `cfg` needs image_channels, image_size and pixel_bits (a ModelConfig
    or a Geometry-like object). Event frames [T][2][H][W] of 0/1 (a config with `frames`)
    go token by token, the T steps of a token together, the 2 polarities of a step
    together."""
    if getattr(cfg, "frames", False):
        return _frames_bytes(_nested(pixels), cfg)
    px = _nested(pixels)
    c, (h, w), bits = cfg.image_channels, cfg.image_size, cfg.pixel_bits
    if len(px) != c or any(len(plane) != h or any(len(row) != w for row in plane)
                           for plane in px):
        raise ValueError(f"pixels must have shape [{c}][{h}][{w}]")
    out = bytearray()
    for y in range(h):
        for x in range(w):
            for ch in range(c):
                v = px[ch][y][x]
                if not isinstance(v, int) or not 0 <= v < 1 << bits:
                    raise ValueError(f"pixel ({ch}, {y}, {x}) must be an integer in "
                                     f"0..{(1 << bits) - 1}, not {v!r}")
                out.append(v)
    return bytes(out)


def _frames_bytes(fr: list, cfg) -> bytes:
    t_, (h, w) = cfg.time_steps, cfg.image_size
    if len(fr) != t_ or any(len(step) != 2 or any(len(plane) != h or any(len(row) != w
                                                                         for row in plane)
                                                  for plane in step) for step in fr):
        raise ValueError(f"event frames must have shape [{t_}][2][{h}][{w}]")
    out = bytearray()
    for y in range(h):
        for x in range(w):
            for t in range(t_):
                for ch in range(2):
                    v = fr[t][ch][y][x]
                    if v not in (0, 1) or isinstance(v, bool):
                        raise ValueError(f"event ({t}, {ch}, {y}, {x}) must be 0 or 1, not {v!r}")
                    out.append(v)
    return bytes(out)


def sample_from_bytes(payload: bytes, cfg):
    """The inverse of image_bytes: a CLASSIFY payload back to pixels [C, H, W] or event
    frames [T, 2, H, W] (int64), as the board's input stream reads it."""
    import torch

    h, w = cfg.image_size
    x = torch.tensor(list(payload), dtype=torch.int64)
    if getattr(cfg, "frames", False):
        return x.reshape(h, w, cfg.time_steps, 2).permute(2, 3, 0, 1)
    return x.reshape(h, w, cfg.image_channels).permute(2, 0, 1)


# ----------------------------------------------------------------------------- requests

@dataclass(frozen=True)
class Request:
    cmd: int
    payload: bytes = b""


def encode_request(cmd: int, payload: bytes = b"") -> bytes:
    """A request frame: SYNC_REQUEST, cmd, len (LE16), payload, CRC-8 of all before."""
    if not 0 <= cmd <= 0xFF:
        raise ValueError(f"cmd must be a byte, not {cmd!r}")
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload must be at most 65535 bytes, not {len(payload)}")
    body = bytes([SYNC_REQUEST, cmd]) + len(payload).to_bytes(2, "little") + bytes(payload)
    return body + bytes([crc8(body)])


def classify_request(pixels, cfg) -> bytes:
    return encode_request(CLASSIFY, image_bytes(pixels, cfg))


def decode_request(frame: bytes, geometry: Geometry) -> Request:
    """The board's checks in the board's order: sync, command, length, checksum, pixel
    range. Raises ProtocolError carrying the error code the board answers with."""
    if not frame or frame[0] != SYNC_REQUEST:
        raise ProtocolError("bad sync byte", ERR_SYNC)
    if len(frame) < 2:
        raise ProtocolError("frame ends after the sync byte", ERR_TIMEOUT)
    cmd = frame[1]
    need = geometry.request_length(cmd)
    if len(frame) < REQUEST_HEADER:
        raise ProtocolError("frame ends in its header", ERR_TIMEOUT, cmd)
    length = int.from_bytes(frame[2:4], "little")
    if length != need:
        raise ProtocolError(f"{COMMANDS[cmd]} needs length {need}, not {length}", ERR_LENGTH,
                            cmd)
    if len(frame) < REQUEST_HEADER + length + 1:
        raise ProtocolError("frame ends early", ERR_TIMEOUT, cmd)
    if len(frame) > REQUEST_HEADER + length + 1:
        raise ProtocolError("bytes after the checksum", ERR_SYNC, cmd)
    payload = frame[REQUEST_HEADER:REQUEST_HEADER + length]
    if crc8(frame[:-1]) != frame[-1]:
        raise ProtocolError("bad checksum", ERR_CHECKSUM, cmd)
    if any(b >> geometry.pixel_bits for b in payload):
        raise ProtocolError(f"a pixel value does not fit {geometry.pixel_bits} bits", ERR_RANGE,
                            cmd)
    return Request(cmd, bytes(payload))


# ----------------------------------------------------------------------------- weights

def word_bytes(data_width: int) -> int:
    """Bytes of one memory word in a LOAD_WEIGHTS frame: ceil(data_width / 8)."""
    if not isinstance(data_width, int) or isinstance(data_width, bool) or data_width < 1:
        raise ValueError(f"data_width must be a positive integer, not {data_width!r}")
    return -(-data_width // 8)


def load_weights_payload(addr: int, words: Sequence[int], data_width: int) -> bytes:
    """Payload of a LOAD_WEIGHTS request: the start word address (LE32), then each word,
    little-endian in `word_bytes(data_width)` bytes."""
    if not isinstance(addr, int) or not 0 <= addr < 1 << 8 * LOAD_ADDR_BYTES:
        raise ValueError(f"addr must be an integer in 0..{(1 << 8 * LOAD_ADDR_BYTES) - 1}, "
                         f"not {addr!r}")
    if not words:
        raise ValueError("a LOAD_WEIGHTS frame needs at least one word")
    nb = word_bytes(data_width)
    out = bytearray(addr.to_bytes(LOAD_ADDR_BYTES, "little"))
    for k, v in enumerate(words):
        if not isinstance(v, int) or not 0 <= v < 1 << data_width:
            raise ValueError(f"word {k} must be an integer in 0..{(1 << data_width) - 1}, "
                             f"not {v!r}")
        out += v.to_bytes(nb, "little")
    return bytes(out)


def load_weights_frames(words: Sequence[int], *, base_addr: int = 0, data_width: int,
                        frame_words: int) -> list[bytes]:
    """A memory image (`words` from word address `base_addr`, e.g. `memory_image(engine)`)
    as LOAD_WEIGHTS request frames of at most `frame_words` words each, in address order.
    Send one, wait for its reply, then the next (docs/protocol.md, "Loading weights")."""
    if not isinstance(frame_words, int) or frame_words < 1:
        raise ValueError(f"frame_words must be a positive integer, not {frame_words!r}")
    if LOAD_ADDR_BYTES + frame_words * word_bytes(data_width) > 0xFFFF:
        raise ValueError(f"frame_words {frame_words} of {word_bytes(data_width)} bytes do not "
                         f"fit the 16-bit length field")
    words = [int(v) for v in words]
    return [encode_request(LOAD_WEIGHTS, load_weights_payload(
                base_addr + k, words[k:k + frame_words], data_width))
            for k in range(0, len(words), frame_words)]


def read_weights_request(addr: int, count: int) -> bytes:
    """A READ_WEIGHTS request frame: `count` words from word address `addr`."""
    if not isinstance(addr, int) or not 0 <= addr < 1 << 8 * LOAD_ADDR_BYTES:
        raise ValueError(f"addr must be an integer in 0..{(1 << 8 * LOAD_ADDR_BYTES) - 1}, "
                         f"not {addr!r}")
    if not isinstance(count, int) or not 1 <= count <= 0xFFFF:
        raise ValueError(f"count must be an integer in 1..65535, not {count!r}")
    return encode_request(READ_WEIGHTS, addr.to_bytes(LOAD_ADDR_BYTES, "little")
                          + count.to_bytes(2, "little"))


def read_weights_words(payload: bytes, data_width: int) -> list[int]:
    """The words of a READ_WEIGHTS reply's payload (each little-endian in word_bytes)."""
    nb = word_bytes(data_width)
    if len(payload) % nb:
        raise ProtocolError(f"READ_WEIGHTS reply of {len(payload)} bytes is not whole words "
                            f"of {nb}", ERR_LENGTH, READ_WEIGHTS)
    return [int.from_bytes(payload[k:k + nb], "little") for k in range(0, len(payload), nb)]


def format_memory_image(words: Sequence[int], base_addr: int = 0, data_width: int = 16) -> str:
    """A memory image as text in `$readmemh` style: an ``@address`` line (hex word address),
    then one hex word per line (docs/protocol.md, "Memory image files")."""
    digits = -(-data_width // 4)
    lines = [f"// {len(words)} words of {data_width} bits", f"@{base_addr:x}"]
    lines += [f"{int(v):0{digits}x}" for v in words]
    return "\n".join(lines) + "\n"


def parse_memory_image(text: str, data_width: int) -> list[tuple[int, list[int]]]:
    """The segments (start word address, words) of a `$readmemh`-style memory image:
    hex words separated by white space, ``@address`` (hex) starting a segment at that
    word address (the first segment starts at 0 without one), ``//`` comments. Raises
    ValueError (one line, with the line number) on a word that is not hex or does not fit
    `data_width`, and on an image without words."""
    segments: list[tuple[int, list[int]]] = []
    addr, words = 0, []
    for n, line in enumerate(text.splitlines(), 1):
        for token in line.split("//", 1)[0].split():
            try:
                value = int(token[1:] if token.startswith("@") else token, 16)
            except ValueError:
                raise ValueError(f"line {n}: {token!r} is not a hex word or @address") from None
            if token.startswith("@"):
                if words:
                    segments.append((addr, words))
                addr, words = value, []
            elif value >> data_width:
                raise ValueError(f"line {n}: word {token} does not fit {data_width} bits")
            else:
                words.append(value)
    if words:
        segments.append((addr, words))
    if not segments:
        raise ValueError("the memory image has no words")
    return segments


def decode_load_weights(frame: bytes, *, addr_width: int, data_width: int,
                        frame_words: int) -> tuple[int, list[int] | int]:
    """(start address, words) of a LOAD_WEIGHTS frame, or (start address, word count) of a
    READ_WEIGHTS frame, with the board's checks in the board's order
    (rtl_templates.weight_loader): sync, command, length bounds, then checksum, whole
    words, range (address and words; a READ_WEIGHTS count of 1 .. 65535 // word bytes).
    Raises ProtocolError carrying the error code the board answers with."""
    nb = word_bytes(data_width)
    if not frame or frame[0] != SYNC_REQUEST:
        raise ProtocolError("bad sync byte", ERR_SYNC)
    if len(frame) < 2:
        raise ProtocolError("frame ends after the sync byte", ERR_TIMEOUT)
    cmd = frame[1]
    if cmd not in (LOAD_WEIGHTS, READ_WEIGHTS):
        raise ProtocolError(f"the weight loader takes LOAD_WEIGHTS and READ_WEIGHTS, not "
                            f"{cmd:#04x}", ERR_COMMAND, cmd)
    if len(frame) < REQUEST_HEADER:
        raise ProtocolError("frame ends in its header", ERR_TIMEOUT, cmd)
    length = int.from_bytes(frame[2:4], "little")
    if cmd == READ_WEIGHTS and length != READ_PAYLOAD:
        raise ProtocolError(f"READ_WEIGHTS needs length {READ_PAYLOAD}, not {length}",
                            ERR_LENGTH, cmd)
    if cmd == LOAD_WEIGHTS and not LOAD_ADDR_BYTES + nb <= length <= LOAD_ADDR_BYTES \
            + frame_words * nb:
        raise ProtocolError(f"LOAD_WEIGHTS length must be {LOAD_ADDR_BYTES + nb} .. "
                            f"{LOAD_ADDR_BYTES + frame_words * nb}, not {length}",
                            ERR_LENGTH, cmd)
    if len(frame) < REQUEST_HEADER + length + 1:
        raise ProtocolError("frame ends early", ERR_TIMEOUT, cmd)
    if len(frame) > REQUEST_HEADER + length + 1:
        raise ProtocolError("bytes after the checksum", ERR_SYNC, cmd)
    if crc8(frame[:-1]) != frame[-1]:
        raise ProtocolError("bad checksum", ERR_CHECKSUM, cmd)
    addr = int.from_bytes(frame[REQUEST_HEADER:REQUEST_HEADER + LOAD_ADDR_BYTES], "little")
    if cmd == READ_WEIGHTS:
        count = int.from_bytes(frame[REQUEST_HEADER + LOAD_ADDR_BYTES:-1], "little")
        if not 1 <= count <= 0xFFFF // nb or addr + count > 1 << addr_width:
            raise ProtocolError(f"READ_WEIGHTS of {count} words from {addr} does not fit "
                                f"the memory or a reply", ERR_RANGE, cmd)
        return addr, count
    data = frame[REQUEST_HEADER + LOAD_ADDR_BYTES:-1]
    if len(data) % nb:
        raise ProtocolError(f"{len(data)} word bytes are not whole words of {nb}", ERR_LENGTH,
                            cmd)
    words = [int.from_bytes(data[k:k + nb], "little") for k in range(0, len(data), nb)]
    if addr + len(words) > 1 << addr_width:
        raise ProtocolError(f"words {addr} .. {addr + len(words) - 1} do not fit "
                            f"{addr_width} address bits", ERR_RANGE, cmd)
    if any(v >> data_width for v in words):
        raise ProtocolError(f"a word does not fit {data_width} bits", ERR_RANGE, cmd)
    return addr, words


# ----------------------------------------------------------------------------- responses

@dataclass(frozen=True)
class Response:
    """One decoded response frame; `cls`/`logits` for results, `geometry` for PING replies."""

    cmd: int
    status: int
    payload: bytes = b""
    cls: int | None = None
    logits: tuple[int, ...] | None = None
    geometry: Geometry | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK

    def describe(self) -> str:
        name = COMMANDS.get(self.cmd, f"{self.cmd:#04x}")
        if self.ok:
            return f"{name} OK"
        return f"{name} error {STATUS.get(self.status, hex(self.status))}"


def encode_response(cmd: int, status: int, payload: bytes = b"") -> bytes:
    """A response frame: SYNC_RESPONSE, cmd, status, len (LE16), payload, CRC-8."""
    body = bytes([SYNC_RESPONSE, cmd, status]) + len(payload).to_bytes(2, "little") \
        + bytes(payload)
    return body + bytes([crc8(body)])


def result_payload(cls: int, logits: Sequence[int], geometry: Geometry) -> bytes:
    if len(logits) != geometry.classes:
        raise ValueError(f"logits must have {geometry.classes} entries, not {len(logits)}")
    nb = geometry.logit_bytes
    out = bytearray([cls])
    for v in logits:
        out += int(v).to_bytes(nb, "little", signed=True)
    return bytes(out)


def encode_result(cmd: int, cls: int, logits: Sequence[int], geometry: Geometry) -> bytes:
    return encode_response(cmd, OK, result_payload(cls, logits, geometry))


def encode_pong(geometry: Geometry) -> bytes:
    return encode_response(PING, OK, geometry.ping_payload())


def encode_error(cmd: int, status: int) -> bytes:
    return encode_response(cmd, status)


def decode_response(frame: bytes, geometry: Geometry | None = None) -> Response:
    """Check sync, length and CRC of one response frame and decode its payload (a result
    needs `geometry` for the logit width). Raises ProtocolError on a malformed frame."""
    if len(frame) < RESPONSE_HEADER + 1 or frame[0] != SYNC_RESPONSE:
        raise ProtocolError("response does not start with the sync byte", ERR_SYNC)
    cmd, status = frame[1], frame[2]
    length = int.from_bytes(frame[3:5], "little")
    if len(frame) != RESPONSE_HEADER + length + 1:
        raise ProtocolError(f"response length field {length} does not match its "
                            f"{len(frame)} bytes", ERR_LENGTH, cmd)
    if crc8(frame[:-1]) != frame[-1]:
        raise ProtocolError("response checksum mismatch", ERR_CHECKSUM, cmd)
    payload = bytes(frame[RESPONSE_HEADER:-1])
    if status != OK:
        if length:
            raise ProtocolError("error response with a payload", ERR_LENGTH, cmd)
        return Response(cmd, status)
    if cmd == PING:
        return Response(cmd, status, payload, geometry=Geometry.from_ping(payload))
    if cmd == LOAD_WEIGHTS:
        if length:
            raise ProtocolError("LOAD_WEIGHTS reply with a payload", ERR_LENGTH, cmd)
        return Response(cmd, status)
    if cmd == READ_WEIGHTS:
        return Response(cmd, status, payload)
    if cmd in (CLASSIFY, SELFTEST):
        if geometry is None:
            return Response(cmd, status, payload)
        if length != geometry.result_bytes:
            raise ProtocolError(f"result has {length} payload bytes, the model needs "
                                f"{geometry.result_bytes}", ERR_LENGTH, cmd)
        nb = geometry.logit_bytes
        logits = tuple(int.from_bytes(payload[1 + k * nb:1 + (k + 1) * nb], "little",
                                      signed=True) for k in range(geometry.classes))
        return Response(cmd, status, payload, cls=payload[0], logits=logits)
    raise ProtocolError(f"OK response to unknown command {cmd:#04x}", ERR_COMMAND, cmd)


class ReadTimeout(HwgenError):
    """The link delivered fewer bytes than a frame needs before its timeout."""


def read_response(read: Callable[[int], bytes]) -> bytes:
    """One response frame from a byte source (`read(n)` returns up to n bytes, fewer on a
    timeout, like pyserial's). Bytes before the sync byte are skipped."""
    def exactly(n: int, what: str) -> bytes:
        data = b""
        while len(data) < n:
            chunk = read(n - len(data))
            if not chunk:
                raise ReadTimeout(f"timed out waiting for {what}")
            data += chunk
        return data

    skipped = 0
    while exactly(1, "a response") != bytes([SYNC_RESPONSE]):
        skipped += 1
        if skipped > 0x10000:
            raise ProtocolError("no response sync byte in 64 KiB", ERR_SYNC)
    head = exactly(RESPONSE_HEADER - 1, "the response header")
    length = int.from_bytes(head[2:4], "little")
    return bytes([SYNC_RESPONSE]) + head + exactly(length + 1, "the response payload")
