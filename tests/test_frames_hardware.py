"""Event-frame input on the hardware side: the stem's first conv is a spike conv fed by the
accelerator's input stream, the UART payload carries the frames (docs/protocol.md), and
`hwgen sim` / `hwgen run` work on a frames model."""

import dataclasses

import pytest
import torch

from hwgen.cli.main import main
from hwgen.compiler.builder import build_graph
from hwgen.compiler.twin import tap_words
from hwgen.host import client as R
from hwgen.host import protocol as P
from hwgen.targets.board_top import (
    BoardCore,
    board_core_verilog,
    default_selftest_image,
    pixel_words,
)
from quant import golden
from quant.config import ModelConfig
from quant.config_file import config_to_toml
from quant.ir import derive_widths
from quant.model_file import save_model
from quant.random_model import random_int_model, random_pixels
from sim.runner import run_cocotb
from tests.test_board_top import DIVISOR, LEDS, _check_session, _session
from tests.test_run import FakeBoard

TINY = ModelConfig(name="tiny-events", image_channels=2, image_size=(4, 4), time_steps=2,
                   depth=1, dim=8, heads=2, mlp_ratio=1, sasa_mode="channel",
                   stem_channels=(4,), stem_pool=(True,), num_classes=4, input="frames")


def test_first_conv_is_a_spike_conv_on_the_input():
    graph = build_graph(random_int_model(TINY, 8, seed=3), {}, 1)
    first = graph.nodes["stem.0.conv"]
    assert first.kind == "spike_conv" and graph.input == ("stem.0.conv", "i")
    assert graph.input_tap.kind == "spikes" and graph.input_tap.steps == TINY.time_steps
    assert "pixel_conv" not in {n.kind for n in graph.nodes.values()}


def test_uart_payload_is_the_input_stream():
    model = random_int_model(TINY, 8, seed=3)
    graph = build_graph(model, {}, 1)
    frames = random_pixels(TINY, 2, seed=4)
    taps = golden.run(model, frames)
    for k in range(2):
        data = P.image_bytes(frames[k], TINY)
        geo = P.model_geometry(model)
        assert len(data) == geo.image_bytes == 4 * 4 * 2 * 2
        assert torch.equal(P.sample_from_bytes(data, TINY), frames[k])
        assert pixel_words(frames[k], TINY) == tap_words(graph.input_tap, taps, frames, k)
    with pytest.raises(ValueError, match=r"event \(0, 0, 0, 0\) must be 0 or 1, not 2"):
        P.image_bytes(torch.full((2, 2, 4, 4), 2), TINY)


def test_run_on_a_fake_frames_board(tmp_path, monkeypatch, capsys):
    model = random_int_model(TINY, 8, seed=3)
    path = tmp_path / "tiny.hwq"
    save_model(model, path)
    board = FakeBoard(model)
    monkeypatch.setattr(R, "open_link", lambda port, baud, timeout: board)
    assert main(["run", "--port", "fake", "--model", str(path), "--images", "3"]) == 0
    assert "3/3 images match the golden model" in capsys.readouterr().out


@pytest.mark.sim
def test_sim_frames_model_bit_exact(tmp_path, capsys, verilator):
    toml = tmp_path / "tiny.toml"
    toml.write_text(config_to_toml(TINY))
    assert main(["sim", "--config", str(toml), "--images", "3", "--board", "ulx3s-85f"]) == 0
    out = capsys.readouterr().out
    assert "images passed: 3/3 bit-exact" in out and "largest prediction error 0.00%" in out


@pytest.mark.sim
def test_board_session_with_frames(verilator):
    """The UART board core with a frames model: requests through the pins, replies judged
    against the golden model (as tests/test_board_top.py does for pixels)."""
    # Random tiny models' logits are mostly their biases: without them, seed 3 gives the
    # frames classes 2, 2, 3 and the self-test class 2, so the LEDs tell them apart.
    model = random_int_model(TINY, 8, seed=3)
    model = derive_widths(dataclasses.replace(
        model, head=dataclasses.replace(model.head, bias=torch.zeros_like(model.head.bias))))
    graph = build_graph(model, {}, 1)
    image = default_selftest_image(model)
    core = BoardCore(graph, divisor=DIVISOR, gap=3 * 10 * DIVISOR, leds=LEDS, selftest_image=image)
    frames = random_pixels(TINY, 3, seed=11)
    steps = _session(model, frames, image)
    stim = {"seed": 11, "divisor": DIVISOR, "timeout_cycles": 200_000,
            "quiet_cycles": 40 * 10 * DIVISOR,
            "steps": [{**s, "send": list(s.get("send", b""))} for s in steps]}
    res = run_cocotb(board_core_verilog(core), "sim.cocotb_tests.board", stim,
                     simulator=verilator, tag="board-frames").data
    _check_session(model, frames, image, res)
