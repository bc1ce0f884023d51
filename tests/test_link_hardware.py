"""The frame hardware of the UART link (rtl_templates.request_parser, response_builder,
frame_format) against the host side's byte protocol (hwgen.host.protocol), cycle by cycle
in Amaranth's simulator with random input gaps and output stalls."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from amaranth import Module, Signal
from amaranth.sim import Simulator

from hwgen.host import protocol as P
from rtl_templates import frame_format as F
from rtl_templates.request_parser import RequestParser
from rtl_templates.response_builder import ResponseBuilder
from tests.test_protocol import GEO


def _simulate(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6, if_exists=True)
    sim.add_testbench(bench)
    sim.run()


def test_crc8_hardware_equals_software():
    rng = random.Random(1)
    m = Module()
    crc, byte, out = Signal(8), Signal(8), Signal(8)
    m.d.comb += out.eq(F.crc8_next(crc, byte))
    pairs = [(0, 0), (0xFF, 0xFF), (0x80, 0x00), (0x00, 0x80)] + [
        (rng.randrange(256), rng.randrange(256)) for _ in range(200)]

    async def bench(ctx):
        for c, b in pairs:
            ctx.set(crc, c)
            ctx.set(byte, b)
            assert ctx.get(out) == P.crc8([b], c), (c, b)

    _simulate(m, bench)


def _parser_reference(chunks):
    """(req beats, pixel words) the parser must produce for byte chunks sent with a quiet
    gap after each: one reply per chunk; the words of each OK CLASSIFY."""
    reqs, words = [], []
    for chunk in chunks:
        data, uart_error_at = chunk["bytes"], chunk.get("frame_error_at")
        if uart_error_at is not None:
            cmd = data[1] if uart_error_at > 1 and data[0] == P.SYNC_REQUEST else 0
            reqs.append((cmd, P.ERR_UART))
            continue
        try:
            req = P.decode_request(data, GEO)
        except P.ProtocolError as e:
            reqs.append((e.cmd, e.status))
            continue
        reqs.append((req.cmd, P.OK))
        if req.cmd == P.CLASSIFY:
            c, pb = GEO.channels, GEO.pixel_bits
            words += [sum(req.payload[p * c + k] << (k * pb) for k in range(c))
                      for p in range(GEO.pixels)]
    return reqs, words


def _parser_chunks(rng: random.Random) -> list[dict]:
    def image() -> bytes:
        return bytes(rng.randrange(128) for _ in range(GEO.image_bytes))

    good = P.encode_request(P.CLASSIFY, image())
    bad_crc = bytearray(P.encode_request(P.CLASSIFY, image()))
    bad_crc[7] ^= 0x04
    chunks = [
        {"bytes": good},
        {"bytes": P.encode_request(P.PING)},
        {"bytes": bytes(bad_crc)},  # never released
        {"bytes": P.encode_request(P.CLASSIFY, image())},
        {"bytes": bytes([0x00, 0x13, 0xA5, 0x43])},  # garbage: one ERR_SYNC after the drain
        {"bytes": P.encode_request(0x77, b"\x01\x02")},  # unknown command
        {"bytes": P.encode_request(P.CLASSIFY, image()[:-1])},  # wrong length
        {"bytes": P.encode_request(P.SELFTEST)},
        {"bytes": good[:9]},  # stops: times out
        {"bytes": P.encode_request(P.CLASSIFY, image()[:-1] + b"\xff")},  # out of range
        {"bytes": P.encode_request(P.CLASSIFY, image()), "frame_error_at": 6},
        {"bytes": P.encode_request(P.CLASSIFY, image())},
    ]
    return chunks


@pytest.mark.parametrize("seed,registered_start", [(0, False), (1, False), (2, True)])
def test_request_parser_against_the_protocol(seed, registered_start):
    rng = random.Random(seed)
    gap = 12
    dut = RequestParser(pixels=GEO.pixels, channels=GEO.channels, pixel_bits=GEO.pixel_bits,
                        gap=gap, registered_start=registered_start)
    chunks = _parser_chunks(rng)
    want_reqs, want_words = _parser_reference(chunks)
    got_reqs, got_words = [], []

    async def bench(ctx):
        cycle = 0

        async def step():
            nonlocal cycle
            # Sinks: random stalls; record what fires in this cycle.
            ctx.set(dut.req.ready, rng.random() < 0.5)
            ctx.set(dut.o.ready, rng.random() < 0.6)
            if ctx.get(dut.req.valid) and ctx.get(dut.req.ready):
                got_reqs.append((ctx.get(dut.req.payload.cmd), ctx.get(dut.req.payload.status)))
            if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                got_words.append(ctx.get(dut.o.payload))
            await ctx.tick()
            cycle += 1

        for n, chunk in enumerate(chunks):
            for k, b in enumerate(chunk["bytes"]):
                if chunk.get("frame_error_at") == k:
                    ctx.set(dut.frame_error, 1)
                    await step()
                    ctx.set(dut.frame_error, 0)
                    break
                # Like a UART: at most one byte per few cycles, gaps below the timeout.
                for _ in range(rng.randrange(0, gap // 2)):
                    await step()
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, b)
                while not ctx.get(dut.i.ready):
                    await step()
                await step()
                ctx.set(dut.i.valid, 0)
            # Quiet line until the reply (and any release) is through.
            want = len(_parser_reference(chunks[:n + 1])[0])
            for _ in range(4 * gap + 40):
                await step()
            assert len(got_reqs) == want, (chunk, got_reqs)

    _simulate(dut, bench)
    assert got_reqs == want_reqs
    assert got_words == want_words


def test_request_parser_reports_lost_bytes_after_a_release():
    """An overrun while the parser is busy releasing: ERR_UART once it is back."""
    dut = RequestParser(pixels=GEO.pixels, channels=GEO.channels, pixel_bits=GEO.pixel_bits,
                          gap=8)
    frame = P.encode_request(P.CLASSIFY, bytes(range(12)))
    got = []

    async def bench(ctx):
        ctx.set(dut.req.ready, 1)
        for b in frame:
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, b)
            await ctx.tick()
        ctx.set(dut.i.valid, 0)
        for _ in range(3):  # the req beat fires; the release starts, o stalled
            if ctx.get(dut.req.valid):
                got.append(ctx.get(dut.req.payload.status))
            await ctx.tick()
        ctx.set(dut.overrun, 1)
        await ctx.tick()
        ctx.set(dut.overrun, 0)
        ctx.set(dut.o.ready, 1)
        for _ in range(60):
            if ctx.get(dut.req.valid):
                got.append(ctx.get(dut.req.payload.status))
            await ctx.tick()

    _simulate(dut, bench)
    assert got == [P.OK, P.ERR_UART]


@pytest.mark.parametrize("acc_bits", [7, 13, 17])
def test_response_builder_against_the_protocol(acc_bits):
    rng = random.Random(acc_bits)
    geo = replace(GEO, logit_bytes=-(-acc_bits // 8))
    dut = ResponseBuilder(classes=geo.classes, acc_bits=acc_bits, ping_payload=geo.ping_payload())
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    results = [(P.CLASSIFY, 2, [lo, hi, -1]), (P.SELFTEST, 0, [0, 1, -2]),
               (P.CLASSIFY, 1, [rng.randint(lo, hi) for _ in range(3)])]
    ctrls = [(P.PING, P.OK), (0x77, P.ERR_COMMAND), (0, P.ERR_SYNC)]
    expected_frames = {P.encode_result(c, k, lg, geo) for c, k, lg in results} \
        | {P.encode_pong(geo), P.encode_error(0x77, P.ERR_COMMAND), P.encode_error(0, P.ERR_SYNC)}
    out = bytearray()

    async def bench(ctx):
        pending_r, pending_c = list(results), list(ctrls)
        held = None
        for _ in range(2000):
            # Sources: offer the next beat at random, hold it until taken (stream rule).
            if pending_r and rng.random() < 0.3:
                ctx.set(dut.result.valid, 1)
                cmd, cls, logits = pending_r[0]
                ctx.set(dut.result.payload, {"cmd": cmd,
                                             "result": {"cls": cls, "logits": logits}})
            if pending_c and rng.random() < 0.3:
                ctx.set(dut.ctrl.valid, 1)
                ctx.set(dut.ctrl.payload, {"cmd": pending_c[0][0], "status": pending_c[0][1]})
            ctx.set(dut.o.ready, rng.random() < 0.5)
            if ctx.get(dut.o.valid):
                if held is not None:
                    assert ctx.get(dut.o.payload) == held, "o changed while held"
                if ctx.get(dut.o.ready):
                    out.append(ctx.get(dut.o.payload))
                    held = None
                else:
                    held = ctx.get(dut.o.payload)
            if ctx.get(dut.result.valid) and ctx.get(dut.result.ready):
                pending_r.pop(0)
                ctx.set(dut.result.valid, 0)
            if ctx.get(dut.ctrl.valid) and ctx.get(dut.ctrl.ready):
                pending_c.pop(0)
                ctx.set(dut.ctrl.valid, 0)
            await ctx.tick()
        assert not pending_r and not pending_c

    _simulate(dut, bench)
    frames = []
    data = bytes(out)
    while data:
        n = P.RESPONSE_HEADER + int.from_bytes(data[3:5], "little") + 1
        frames.append(data[:n])
        data = data[n:]
    assert set(frames) == expected_frames and len(frames) == 6
    # Each input's own beats in order.
    got_results = [P.decode_response(f, geo) for f in frames if f[2] == P.OK and f[1] != P.PING]
    assert [(r.cmd, r.cls, list(r.logits)) for r in got_results] == [
        (c, k, lg) for c, k, lg in results]


@pytest.mark.parametrize("registered_start", [False, True])
def test_request_parser_replays_its_builtin_image(registered_start):
    """The built-in image leaves on `replay`; a replay while releasing is ignored; a
    CLASSIFY frame that completes meanwhile waits, then releases its own words."""
    builtin = [5, 0, 127, 64, 3, 99]
    dut = RequestParser(pixels=GEO.pixels, channels=1, pixel_bits=7, gap=8, builtin=builtin,
                        registered_start=registered_start)
    image = bytes([7, 1, 2, 3, 4, 126])
    frame = P.encode_request(P.CLASSIFY, image)
    got, reqs = [], []
    rng = random.Random(4)

    async def bench(ctx):
        ctx.set(dut.replay, 1)
        await ctx.tick()
        ctx.set(dut.replay, 0)
        sent = 0
        for _ in range(200):
            ctx.set(dut.replay, rng.random() < 0.2 and len(got) < 6)  # ignored: releasing
            ctx.set(dut.o.ready, rng.random() < 0.2)
            ctx.set(dut.req.ready, 1)
            ctx.set(dut.i.valid, sent < len(frame))
            ctx.set(dut.i.payload, frame[min(sent, len(frame) - 1)])
            if ctx.get(dut.i.valid) and ctx.get(dut.i.ready):
                sent += 1
            if ctx.get(dut.req.valid) and ctx.get(dut.req.ready):
                reqs.append((len(got), ctx.get(dut.req.payload.status)))
            if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                got.append(ctx.get(dut.o.payload))
            await ctx.tick()
        assert not ctx.get(dut.releasing)

    _simulate(dut, bench)
    assert got == builtin + list(image)
    assert reqs == [(6, P.OK)]  # offered only once the built-in image had left


def test_parameters_are_checked():
    with pytest.raises(TypeError, match=r"pixel_bits must be an integer in 1\.\.8, not 9"):
        RequestParser(pixels=4, channels=1, pixel_bits=9, gap=10)
    with pytest.raises(TypeError, match="gap must be an integer >= 2, not 1"):
        RequestParser(pixels=4, channels=1, pixel_bits=8, gap=1)
    with pytest.raises(ValueError, match="at most 65535"):
        RequestParser(pixels=40000, channels=2, pixel_bits=8, gap=10)
    with pytest.raises(ValueError, match="classes must be at most 256, not 300"):
        ResponseBuilder(classes=300, acc_bits=8, ping_payload=b"")
    with pytest.raises(ValueError, match=r"builtin words must be integers in 0\.\.127, not 128"):
        RequestParser(pixels=2, channels=1, pixel_bits=7, gap=8, builtin=[1, 128])
    with pytest.raises(ValueError, match="builtin must have 2 words, not 1"):
        RequestParser(pixels=2, channels=1, pixel_bits=7, gap=8, builtin=[1])
