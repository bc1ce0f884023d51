"""The UART byte protocol, host side (hwgen.host.protocol): CRC-8, image payloads, request
and response frames, and that its constants equal the hardware's (rtl_templates.frame_format;
tests/test_link_hardware.py runs the frame hardware against it)."""

from __future__ import annotations

import random

import pytest

from hwgen.host import protocol as P
from rtl_templates import frame_format as F

GEO = P.Geometry(pixels=6, channels=2, pixel_bits=7, classes=3, logit_bytes=2, model_id=0x1234ABCD)


class Cfg:
    """A config-like object for image_bytes: 2 channels, 2x3 pixels of 7 bits."""

    image_channels = 2
    image_size = (2, 3)
    pixel_bits = 7


def test_crc8_check_value_and_residue():
    assert P.crc8(b"123456789") == 0xF4  # CRC-8/SMBUS catalogue check value
    frame = P.encode_request(P.CLASSIFY, bytes(range(12)))
    assert P.crc8(frame) == 0  # no final xor: a frame with its CRC has residue 0
    assert P.crc8(b"") == 0


def test_crc8_error_detection_as_documented():
    """docs/protocol.md: all 1- and 3-bit errors, all bursts up to 8 bits, all 2-bit errors
    less than 127 bits apart; 127 apart is the first miss."""
    rng = random.Random(7)
    frame = P.encode_request(P.CLASSIFY, bytes(rng.randrange(256) for _ in range(64)))
    bits = 8 * len(frame)

    def flipped(*positions):
        f = bytearray(frame)
        for i in positions:
            f[i // 8] ^= 0x80 >> (i % 8)
        return P.crc8(f)

    assert all(flipped(i) != 0 for i in range(bits))
    assert all(flipped(i, i + d) != 0 for i in range(0, bits - 127, 13) for d in range(1, 127))
    assert flipped(5, 5 + 127) == 0
    for _ in range(300):
        i, j, k = rng.sample(range(bits), 3)
        assert flipped(i, j, k) != 0
        start, length = rng.randrange(bits - 8), rng.randrange(2, 9)
        middle = [p for p in range(start + 1, start + length - 1) if rng.random() < 0.5]
        assert flipped(start, *middle, start + length - 1) != 0


def test_constants_match_the_hardware():
    for name in ("SYNC_REQUEST", "SYNC_RESPONSE", "CLASSIFY", "SELFTEST", "PING",
                 "LOAD_WEIGHTS", "READ_WEIGHTS", "OK",
                 "ERR_SYNC", "ERR_COMMAND", "ERR_LENGTH", "ERR_CHECKSUM", "ERR_TIMEOUT",
                 "ERR_UART", "ERR_RANGE", "CRC8_POLY"):
        assert getattr(P, name) == getattr(F, name), name
    assert len(set(P.STATUS)) == 8 and len(set(P.COMMANDS)) == 5


def test_image_bytes_raster_order_channels_together():
    # pixels[c][y][x] = 10*c + 3*y + x (+ 1)
    px = [[[10 * c + 3 * y + x + 1 for x in range(3)] for y in range(2)] for c in range(2)]
    data = P.image_bytes(px, Cfg)
    assert list(data) == [1, 11, 2, 12, 3, 13, 4, 14, 5, 15, 6, 16]
    with pytest.raises(ValueError, match=r"must be an integer in 0\.\.127, not 128"):
        P.image_bytes([[[128, 0, 0], [0, 0, 0]], px[1]], Cfg)
    with pytest.raises(ValueError, match="shape"):
        P.image_bytes(px[:1], Cfg)


def test_request_round_trip_and_each_check():
    payload = bytes(range(12))
    frame = P.encode_request(P.CLASSIFY, payload)
    assert frame[:4] == bytes([0xA5, 0x43, 12, 0])
    assert P.decode_request(frame, GEO) == P.Request(P.CLASSIFY, payload)
    assert P.decode_request(P.encode_request(P.PING), GEO).cmd == P.PING

    def code(f: bytes) -> int:
        with pytest.raises(P.ProtocolError) as e:
            P.decode_request(f, GEO)
        return e.value.status

    assert code(b"\x00" + frame[1:]) == P.ERR_SYNC
    assert code(P.encode_request(0x77)) == P.ERR_COMMAND
    assert code(P.encode_request(P.CLASSIFY, payload[:-1])) == P.ERR_LENGTH
    assert code(P.encode_request(P.PING, b"\x00")) == P.ERR_LENGTH
    assert code(frame[:-3]) == P.ERR_TIMEOUT
    assert code(P.encode_request(P.CLASSIFY, payload[:-1] + b"\x80")) == P.ERR_RANGE
    # Any single corrupted payload or checksum byte is caught by the CRC.
    for k in range(4, len(frame)):
        bad = bytearray(frame)
        bad[k] ^= 0x10
        assert code(bytes(bad)) == P.ERR_CHECKSUM


def test_response_round_trip():
    logits = [-300, 5, 32767]
    frame = P.encode_result(P.CLASSIFY, 2, logits, GEO)
    assert frame[:5] == bytes([0x5A, 0x43, 0, 7, 0]) and frame[5] == 2
    assert frame[6:8] == (-300).to_bytes(2, "little", signed=True)
    r = P.decode_response(frame, GEO)
    assert (r.cls, r.logits, r.ok) == (2, tuple(logits), True)
    pong = P.decode_response(P.encode_pong(GEO))
    assert pong.geometry == GEO
    err = P.decode_response(P.encode_error(0x77, P.ERR_COMMAND))
    assert (err.cmd, err.status, err.ok) == (0x77, P.ERR_COMMAND, False)
    assert err.describe() == "0x77 error COMMAND"
    with pytest.raises(P.ProtocolError, match="checksum"):
        P.decode_response(frame[:-1] + bytes([frame[-1] ^ 1]), GEO)
    with pytest.raises(P.ProtocolError, match="length"):
        P.decode_response(frame[:-2] + frame[-1:], GEO)
    with pytest.raises(ValueError, match="3 entries"):
        P.encode_result(P.CLASSIFY, 0, [1, 2], GEO)


def test_read_response_skips_noise_and_times_out():
    frame = P.encode_pong(GEO)
    stream = bytearray(b"\x00\x13" + frame + frame[:3])

    def read(n: int) -> bytes:
        chunk = bytes(stream[:min(n, 2)])
        del stream[:len(chunk)]
        return chunk

    assert P.read_response(read) == frame
    with pytest.raises(P.ReadTimeout, match="header"):
        P.read_response(read)


def test_geometry_checks():
    with pytest.raises(ValueError, match=r"pixel_bits must be an integer in 1\.\.8.*, not 9"):
        P.Geometry(pixels=4, channels=1, pixel_bits=9, classes=2, logit_bytes=1)
    with pytest.raises(ValueError, match="classes must be a positive integer, not 0"):
        P.Geometry(pixels=4, channels=1, pixel_bits=8, classes=0, logit_bytes=1)
    with pytest.raises(ValueError, match="at most 65535"):
        P.Geometry(pixels=40000, channels=2, pixel_bits=8, classes=2, logit_bytes=1)
    assert P.Geometry.from_ping(GEO.ping_payload()) == GEO


def test_load_weights_frames_round_trip_and_each_check():
    rng = random.Random(5)
    image = [rng.randrange(1 << 20) for _ in range(23)]
    frames = P.load_weights_frames(image, base_addr=1000, data_width=20, frame_words=8)
    assert [len(f) for f in frames] == [4 + 4 + 8 * 3 + 1] * 2 + [4 + 4 + 7 * 3 + 1]
    assert frames[1][:8] == bytes([0xA5, 0x57, 28, 0]) + (1008).to_bytes(4, "little")
    assert frames[0][8:11] == image[0].to_bytes(3, "little")
    got = []
    for k, f in enumerate(frames):
        assert P.crc8(f) == 0  # a frame with its CRC byte has CRC 0
        addr, words = P.decode_load_weights(f, addr_width=11, data_width=20, frame_words=8)
        assert addr == 1000 + 8 * k
        got += words
    assert got == image
    assert P.decode_response(P.encode_response(P.LOAD_WEIGHTS, P.OK)).ok

    def code(f: bytes, addr_width: int = 11) -> int:
        with pytest.raises(P.ProtocolError) as e:
            P.decode_load_weights(f, addr_width=addr_width, data_width=20, frame_words=8)
        return e.value.status

    f = frames[0]
    assert code(b"\x00" + f[1:]) == P.ERR_SYNC
    assert code(P.encode_request(P.CLASSIFY, f[4:-1])) == P.ERR_COMMAND
    assert code(P.encode_request(P.LOAD_WEIGHTS, f[4:-1] + bytes(3))) == P.ERR_LENGTH
    assert code(P.encode_request(P.LOAD_WEIGHTS, f[4:10])) == P.ERR_LENGTH  # no whole word
    assert code(P.encode_request(P.LOAD_WEIGHTS, f[4:-2])) == P.ERR_LENGTH  # ragged
    assert code(f[:-1]) == P.ERR_TIMEOUT
    last = P.encode_request(P.LOAD_WEIGHTS, P.load_weights_payload(1017, image[:7], 20))
    assert P.decode_load_weights(last, addr_width=10, data_width=20, frame_words=8)[0] == 1017
    past = P.encode_request(P.LOAD_WEIGHTS, P.load_weights_payload(1018, image[:7], 20))
    assert code(past, addr_width=10) == P.ERR_RANGE  # word 1024 does not exist
    assert code(P.encode_request(P.LOAD_WEIGHTS, f[4:-2] + b"\x10")) == P.ERR_RANGE  # bit 20
    for k in range(4, len(f)):  # any single corrupted byte is caught by the CRC
        bad = bytearray(f)
        bad[k] ^= 0x01
        assert code(bytes(bad)) == P.ERR_CHECKSUM
    # READ_WEIGHTS: address and count, its reply's words
    rd = P.read_weights_request(1017, 7)
    assert rd == P.encode_request(P.READ_WEIGHTS, bytes([0xF9, 3, 0, 0, 7, 0]))
    assert P.decode_load_weights(rd, addr_width=10, data_width=20, frame_words=8) == (1017, 7)
    assert code(P.read_weights_request(1018, 7), addr_width=10) == P.ERR_RANGE
    assert code(P.read_weights_request(0, 21846), addr_width=24) == P.ERR_RANGE  # max 21845
    assert P.decode_load_weights(P.read_weights_request(0, 21845), addr_width=24, data_width=20,
                                 frame_words=8) == (0, 21845)
    assert code(P.encode_request(P.READ_WEIGHTS, bytes(5))) == P.ERR_LENGTH
    reply = P.encode_response(P.READ_WEIGHTS, P.OK, frames[0][8:-1])
    assert P.read_weights_words(P.decode_response(reply).payload, 20) == image[:8]
    with pytest.raises(ValueError, match="word 1 must be an integer in 0..15"):
        P.load_weights_payload(0, [3, 16], 4)
    with pytest.raises(ValueError, match="length field"):
        P.load_weights_frames(image, data_width=16, frame_words=40000)
