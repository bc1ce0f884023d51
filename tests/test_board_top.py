"""The board top: LEDs, pixel words, platform builds (no tools run), and the system test:
a host session driven through the UART pins in cocotb and judged against the golden
model (results, logits, error replies, the self-test on the LEDs)."""

from __future__ import annotations

import pytest
import torch
from amaranth.sim import Simulator

from hwgen.compiler.builder import build_graph
from hwgen.compiler.twin import tap_words
from hwgen.host import protocol as P
from hwgen.targets.board_top import (
    BoardCore,
    BoardTop,
    ClassLeds,
    board_core_verilog,
    default_selftest_image,
    led_pattern,
    pixel_words,
)
from quant import golden
from quant.config import ModelConfig
from quant.random_model import random_int_model, random_pixels
from sim.runner import run_cocotb, simulator_missing_reason

DIVISOR = 6  # clock cycles per UART bit: short runs, and the receiver's minimum is 4
LEDS = 4  # fewer than the classes: binary class + a "shown" LED


def board_model():
    """A tiny model with 2 channels of 7-bit pixels (channel packing is not byte packing),
    5 classes and 16-bit logits (two bytes each, negative ones too)."""
    cfg = ModelConfig(name="board", image_channels=2, image_size=(4, 6), time_steps=2, depth=1,
                      dim=6, heads=2, mlp_ratio=1, sasa_mode="channel", stem_channels=(3,),
                      stem_pool=(False,), num_classes=5, pixel_bits=7)
    return random_int_model(cfg, 8, seed=1)


# ------------------------------------------------------------------------------ fast tier

def test_led_pattern():
    assert led_pattern(None, 10, 8) == 0
    assert led_pattern(3, 5, 8) == 0b1000  # one-hot
    assert led_pattern(3, 10, 8) == 0b1_0011  # binary + "shown" on LED 4
    assert led_pattern(0, 10, 8) == 0b1_0000
    assert led_pattern(7, 10, 7) == 0b1_0111
    assert led_pattern(5, 10, 2) == 0b01  # low bits only when LEDs are short


@pytest.mark.parametrize("registered", [False, True], ids=["plain", "registered"])
@pytest.mark.parametrize("classes,leds", [(5, 8), (10, 7), (10, 2)])
def test_class_leds_hardware_matches_the_pattern(classes, leds, registered):
    dut = ClassLeds(classes=classes, leds=leds, registered=registered)
    seen = []

    async def bench(ctx):
        seen.append(ctx.get(dut.leds))
        for cls in [classes - 1, 0, 3, 1]:
            ctx.set(dut.cls, cls)
            ctx.set(dut.show, 1)
            await ctx.tick()
            ctx.set(dut.show, 0)
            ctx.set(dut.cls, 2)  # not shown
            await ctx.tick()
            seen.append(ctx.get(dut.leds))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [led_pattern(c, classes, leds) for c in [None, classes - 1, 0, 3, 1]]


def test_pixel_words_are_the_accelerators_input_beats():
    model = board_model()
    graph = build_graph(model, {}, 1)
    pixels = random_pixels(model.config, 1, seed=5)
    want = tap_words(graph.input_tap, {}, pixels, 0)
    assert pixel_words(pixels[0], model.config) == want


def test_default_selftest_image_is_seeded():
    model = board_model()
    a, b = default_selftest_image(model), default_selftest_image(model)
    assert torch.equal(a, b) and tuple(a.shape) == (2, 4, 6)


@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f"])
def test_board_top_requests_uart_leds_and_button(board):
    from hwgen.targets.boards import get_board

    b = get_board(board)
    top = BoardTop(build_graph(board_model(), {}, 1), clock_hz=b.clock_mhz * 1e6)
    plan = b.platform_class()().build(top, do_build=False)
    pins = plan.files["top.pcf" if board == "icebreaker" else "top.lpf"]
    pins = pins if isinstance(pins, str) else pins.decode()
    for port in ("uart_0__rx__io", "uart_0__tx__io", "led_0__io", "button_0__io"):
        assert port in pins, port
    leds = 7 if board == "icebreaker" else 8  # iCEBreaker: 2 + the break-off PMOD's 5
    assert top.core.n_leds == leds and f"led_{leds - 1}__io" in pins
    assert top.core.divisor == {"icebreaker": 104, "ulx3s-85f": 217}[board]
    assert top.core.input_fifo == (board != "icebreaker")  # logic cells are the UP5K's limit


def test_board_parameters_are_checked():
    graph = build_graph(board_model(), {}, 1)
    with pytest.raises(ValueError, match="off by"):
        BoardTop(graph, clock_hz=1e6, baud=115200)
    with pytest.raises(TypeError, match="timeout_s must be a positive number, not 0"):
        BoardTop(graph, clock_hz=12e6, timeout_s=0)
    with pytest.raises(TypeError, match="gap must be an integer >= 180, not 100"):
        BoardCore(graph, divisor=6, gap=100, leds=4)
    with pytest.raises(ValueError, match="needs an amaranth-boards platform"):
        BoardTop(graph, clock_hz=12e6).elaborate(None)


# ------------------------------------------------------------------------------ system test

def _session(model, pixels, selftest_image):
    """Steps of a host session: what to send, and how many reply bytes to wait for."""
    cfg = model.config
    geo = P.model_geometry(model)
    img = [P.image_bytes(pixels[k], cfg) for k in range(pixels.shape[0])]
    result_len = P.RESPONSE_HEADER + geo.result_bytes + 1
    err_len = P.RESPONSE_HEADER + 1
    bad_crc = bytearray(P.encode_request(P.CLASSIFY, img[1]))
    bad_crc[-1] ^= 0x5A
    out_of_range = bytearray(img[2])
    out_of_range[7] = 0x80  # pixel 3, channel 1: does not fit 7 bits
    return [
        {"name": "ping", "send": P.encode_request(P.PING),
         "reply_bytes": P.RESPONSE_HEADER + P.PING_PAYLOAD + 1},
        {"name": "image 0", "send": P.encode_request(P.CLASSIFY, img[0]), "reply_bytes": result_len},
        {"name": "bad checksum", "send": bytes(bad_crc), "reply_bytes": err_len},
        {"name": "image 1", "send": P.encode_request(P.CLASSIFY, img[1]), "reply_bytes": result_len},
        {"name": "unknown command", "send": P.encode_request(0x77, b"\x01\x02\x03"),
         "reply_bytes": err_len},
        {"name": "garbage", "send": bytes([0x00, 0xFF, P.SYNC_REQUEST, 0x13]), "reply_bytes": err_len},
        {"name": "bad length", "send": P.encode_request(P.CLASSIFY, img[0][:-2]),
         "reply_bytes": err_len},
        {"name": "truncated", "send": P.encode_request(P.CLASSIFY, img[0])[:20],
         "reply_bytes": err_len},
        {"name": "stop bit low", "send": P.encode_request(P.CLASSIFY, img[0]), "bad_stop_at": 9,
         "reply_bytes": err_len},
        {"name": "out of range", "send": P.encode_request(P.CLASSIFY, bytes(out_of_range)),
         "reply_bytes": err_len},
        {"name": "selftest", "send": P.encode_request(P.SELFTEST), "reply_bytes": result_len},
        {"name": "button", "button": True, "reply_bytes": 0},
        {"name": "image 2", "send": P.encode_request(P.CLASSIFY, img[2]), "reply_bytes": result_len},
    ]


def _expected(model, pixels, selftest_image):
    """Per step: the exact reply frame the board must send."""
    geo = P.model_geometry(model)
    gold = golden.run(model, pixels, taps=False)
    st = golden.run(model, selftest_image.unsqueeze(0), taps=False)

    def result(cmd, logits, pred):
        return P.encode_result(cmd, int(pred), [int(v) for v in logits], geo)

    img = [result(P.CLASSIFY, gold["logits"][k], gold["pred"][k]) for k in range(3)]
    return {
        "ping": P.encode_pong(geo), "image 0": img[0],
        "bad checksum": P.encode_error(P.CLASSIFY, P.ERR_CHECKSUM), "image 1": img[1],
        "unknown command": P.encode_error(0x77, P.ERR_COMMAND),
        "garbage": P.encode_error(0, P.ERR_SYNC),
        "bad length": P.encode_error(P.CLASSIFY, P.ERR_LENGTH),
        "truncated": P.encode_error(P.CLASSIFY, P.ERR_TIMEOUT),
        "stop bit low": P.encode_error(P.CLASSIFY, P.ERR_UART),
        "out of range": P.encode_error(P.CLASSIFY, P.ERR_RANGE),
        "selftest": result(P.SELFTEST, st["logits"][0], st["pred"][0]),
        "button": b"", "image 2": img[2],
    }, int(st["pred"][0]), [int(p) for p in gold["pred"]]


def _run_session(simulator: str, input_fifo: bool = True):
    model = board_model()
    graph = build_graph(model, {}, 1)
    selftest_image = default_selftest_image(model)
    gap = 3 * 10 * DIVISOR
    core = BoardCore(graph, divisor=DIVISOR, gap=gap, leds=LEDS, selftest_image=selftest_image,
                     input_fifo=input_fifo)
    pixels = random_pixels(model.config, 3, seed=11)
    steps = _session(model, pixels, selftest_image)
    stim = {"seed": 11, "divisor": DIVISOR, "timeout_cycles": 200_000, "quiet_cycles": 40 * 10 * DIVISOR,
            "steps": [{**s, "send": list(s.get("send", b""))} for s in steps]}
    res = run_cocotb(board_core_verilog(core), "sim.cocotb_tests.board", stim,
                     simulator=simulator, tag="board").data
    return model, pixels, selftest_image, res


@pytest.mark.sim
@pytest.mark.parametrize("input_fifo", [True, False], ids=["input-fifo", "no-input-fifo"])
def test_system_session_verilator(verilator, input_fifo):
    _check_session(*_run_session(verilator, input_fifo))


@pytest.mark.slow
def test_system_session_icarus():
    reason = simulator_missing_reason("icarus")
    if reason:
        pytest.skip(reason)
    _check_session(*_run_session("icarus"))


def _check_session(model, pixels, selftest_image, res):
    geo = P.model_geometry(model)
    expected, selftest_cls, classes = _expected(model, pixels, selftest_image)
    shown = led_pattern(selftest_cls, model.config.num_classes, LEDS)
    # The LED check can only tell a self-test from a classification if their classes differ.
    assert any(c != selftest_cls for c in classes), "pick images of another class"
    assert res["tx_errors"] == []
    assert res["powerup_leds"] == shown, "power-up self-test: LEDs"
    for step in res["steps"]:
        name, got = step["name"], bytes(step["bytes"])
        want = expected[name]
        if got != want:
            try:
                what = P.decode_response(got, geo).describe()
            except P.ProtocolError as e:
                what = f"undecodable ({e})"
            pytest.fail(f"step {name!r}: got {got.hex()} ({what}), expected {want.hex()} "
                        f"({P.decode_response(want, geo).describe()})")
        assert step["leds"] == shown, f"step {name!r}: LEDs {step['leds']:#06b}, want {shown:#06b}"
    assert res["steps"][-2]["busy_after_press"] == 1, "the button started no self-test"
    assert res["total_bytes"] == sum(len(v) for v in expected.values()), "stray reply bytes"
    pong = P.decode_response(expected["ping"], geo).geometry
    assert pong == geo


def test_session_judge_catches_a_wrong_reply():
    """The judge of the system test fails on a wrong logit, a wrong LED or a stray byte."""
    model = board_model()
    pixels = random_pixels(model.config, 3, seed=11)
    image = default_selftest_image(model)
    expected, selftest_cls, _ = _expected(model, pixels, image)
    shown = led_pattern(selftest_cls, model.config.num_classes, LEDS)
    names = [s["name"] for s in _session(model, pixels, image)]

    def res(**change):
        steps = [{"name": n, "bytes": list(expected[n]), "leds": shown, "busy_after_press": 1}
                 for n in names]
        for name, frame in change.items():
            next(s for s in steps if s["name"] == name.replace("_", " "))["bytes"] = list(frame)
        return {"tx_errors": [], "powerup_leds": shown, "steps": steps,
                "total_bytes": sum(len(s["bytes"]) for s in steps)}

    _check_session(model, pixels, image, res())
    geo = P.model_geometry(model)
    r = P.decode_response(expected["image 1"], geo)
    wrong = P.encode_result(P.CLASSIFY, r.cls, [r.logits[0] + 1, *r.logits[1:]], geo)
    with pytest.raises(pytest.fail.Exception, match="image 1"):
        _check_session(model, pixels, image, res(image_1=wrong))
    bad = res()
    bad["steps"][3]["leds"] = 0
    with pytest.raises(AssertionError, match="LEDs"):
        _check_session(model, pixels, image, bad)
    bad = res()
    bad["total_bytes"] += 1
    with pytest.raises(AssertionError, match="stray"):
        _check_session(model, pixels, image, bad)

