"""`hwgen run` without hardware: a fake board answers through the protocol encoder with the
golden model (and with scripted faults); pyserial's loop:// and a missing device check the
real port path."""

from __future__ import annotations

import pytest
import torch

from hwgen.cli import main as cli
from hwgen.host import client as R
from hwgen.host import protocol as P
from quant import golden
from quant.checkpoints import BUNDLED_MODEL
from quant.config import get_config
from quant.data import sample_images
from quant.model_file import load_model
from quant.random_model import random_int_model


class FakeBoard:
    """A programmed board in software, with pyserial's read/write: each write is one
    request frame; replies come from the golden model via hwgen.host.protocol. Faults are
    keyed by the request number (0 = the first request, usually PING)."""

    def __init__(self, model, *, silent=(), corrupt=(), error=(), wrong_logit=(),
                 selftest_image=None):
        self.model = model
        self.geo = P.model_geometry(model)
        self.selftest_image = (R.builtin_image(model) if selftest_image is None
                               else selftest_image)
        self.faults = {"silent": set(silent), "corrupt": set(corrupt), "error": set(error),
                       "wrong_logit": set(wrong_logit)}
        self.requests = 0
        self.out = bytearray()
        self.closed = False
        self.memory: dict[int, int] = {}  # external memory, written by LOAD_WEIGHTS
        self.flip_word = None  # a word address whose bit 0 READ_WEIGHTS flips (a bad cell)

    def _answer(self, frame: bytes) -> bytes:
        if frame[1] in (P.LOAD_WEIGHTS, P.READ_WEIGHTS):  # the board's WeightLoader
            try:
                addr, words = P.decode_load_weights(frame, addr_width=24, data_width=16,
                                                    frame_words=1024)
            except P.ProtocolError as e:
                return P.encode_error(e.cmd, e.status)
            if frame[1] == P.READ_WEIGHTS:
                got = [self.memory.get(addr + k, 0) ^ (addr + k == self.flip_word)
                       for k in range(words)]
                return P.encode_response(P.READ_WEIGHTS, P.OK,
                                         b"".join(v.to_bytes(2, "little") for v in got))
            self.memory.update({addr + k: v for k, v in enumerate(words)})
            return P.encode_response(P.LOAD_WEIGHTS, P.OK)
        try:
            req = P.decode_request(frame, self.geo)
        except P.ProtocolError as e:
            return P.encode_error(e.cmd, e.status)
        if req.cmd == P.PING:
            return P.encode_pong(self.geo)
        if req.cmd == P.SELFTEST:
            pixels = self.selftest_image.unsqueeze(0)
        else:
            pixels = P.sample_from_bytes(req.payload, self.model.config).unsqueeze(0)
        g = golden.run(self.model, pixels, taps=False)
        logits = g["logits"][0].tolist()
        if self.requests in self.faults["wrong_logit"]:
            logits[0] += 1
        return P.encode_result(req.cmd, int(g["pred"][0]), logits, self.geo)

    def write(self, data: bytes) -> int:
        n, self.requests = self.requests, self.requests + 1
        if n in self.faults["silent"]:
            return len(data)
        if n in self.faults["error"]:
            reply = P.encode_error(data[1], P.ERR_CHECKSUM)
        else:
            reply = bytearray(self._answer(bytes(data)))
            if n in self.faults["corrupt"]:
                reply[-2] ^= 0x01
        self.out += reply
        return len(data)

    def read(self, n: int) -> bytes:
        chunk = bytes(self.out[:n])
        del self.out[:n]
        return chunk  # empty: a timeout

    def reset_input_buffer(self) -> None:
        self.out.clear()

    def close(self) -> None:
        self.closed = True


@pytest.fixture(scope="module")
def digits():
    torch.set_num_threads(1)
    return load_model(BUNDLED_MODEL)


def test_fake_board_answers_like_the_golden_model(digits):
    """The fake itself: a known digits image classified as the golden model says."""
    pixels, labels = sample_images(digits, 2)
    board = FakeBoard(digits)
    client = R.BoardClient(board, P.model_geometry(digits))
    r = client.classify(pixels[1], digits.config)
    g = golden.run(digits, pixels[1:2], taps=False)
    assert r.cls == int(g["pred"][0]) and list(r.logits) == g["logits"][0].tolist()


def test_run_images_all_match(digits):
    pixels, labels = sample_images(digits, 4)
    lines = []
    board = FakeBoard(digits)
    report = R.run_images(board, digits, pixels, labels, out=lines.append)
    assert (report.images, report.matches, report.selftest_ok) == (4, 4, True)
    assert report.retried == []
    assert lines[0].startswith("self-test: class ") and lines[0].endswith("ok")
    assert lines[1].startswith("image 0: class ") and "MISMATCH" not in "".join(lines)
    assert board.requests == 2 + 4  # PING, SELFTEST, 4 x CLASSIFY
    summary = R.format_summary(report)
    assert summary.startswith("4/4 images match the golden model")
    assert "accuracy" in summary and "images/s" in summary


def test_a_corrupt_reply_and_an_error_frame_are_retried(digits, monkeypatch):
    monkeypatch.setattr(R.time, "sleep", lambda s: None)
    pixels, labels = sample_images(digits, 3)
    board = FakeBoard(digits, corrupt={2}, error={4})
    report = R.run_images(board, digits, pixels, labels, out=lambda s: None)
    assert report.matches == 3
    assert len(report.retried) == 2
    assert "malformed reply to CLASSIFY" in report.retried[0]
    assert "CLASSIFY error CHECKSUM" in report.retried[1]
    assert "2 request(s) retried" in R.format_summary(report)


def test_a_silent_board_is_a_one_line_error(digits, monkeypatch):
    monkeypatch.setattr(R.time, "sleep", lambda s: None)
    board = FakeBoard(digits, silent={0, 1})
    pixels, labels = sample_images(digits, 1)
    with pytest.raises(R.BoardError, match="^no reply to PING within the timeout$"):
        R.run_images(board, digits, pixels, labels, out=lambda s: None)


def test_another_model_on_the_board_is_refused(digits):
    other = random_int_model(get_config("digits-tiny").replace(num_classes=4), 8, seed=0)
    pixels, labels = sample_images(digits, 1)
    with pytest.raises(R.BoardError, match="another model: classes 4 on the board, 10 here"):
        R.run_images(FakeBoard(other), digits, pixels, labels, out=lambda s: None)


def test_same_shape_other_weights_warns_and_mismatches(digits):
    other = random_int_model(digits.config, 8, seed=3)
    pixels, labels = sample_images(digits, 3)
    lines = []
    report = R.run_images(FakeBoard(other), digits, pixels, labels, out=lines.append)
    assert lines[0].startswith("warning: the board was built from another model file")
    assert report.matches < 3 or not report.selftest_ok


def _cli(monkeypatch, board, *argv):
    monkeypatch.setattr(R, "open_link", lambda port, baud, timeout: board)
    return cli.main(["run", "--port", "fake", *argv])


def test_cli_run_prints_each_image_and_a_summary(digits, monkeypatch, capsys):
    board = FakeBoard(digits)
    assert _cli(monkeypatch, board, "--images", "3") == 0
    out = capsys.readouterr().out
    assert "image 2: class" in out and "3/3 images match the golden model" in out
    assert board.closed


def test_cli_run_fails_on_a_wrong_logit(digits, monkeypatch, capsys):
    board = FakeBoard(digits, wrong_logit={3})  # PING, SELFTEST, image 0, image 1 <-
    assert _cli(monkeypatch, board, "--images", "2") == 1
    cap = capsys.readouterr()
    assert "image 1: class" in cap.out and "MISMATCH" in cap.out and "golden [" in cap.out
    assert cap.err.strip() == "hwgen run: error: 1 of 2 images differ(s) from the golden model"


def test_cli_run_loads_weights_first(digits, monkeypatch, capsys, tmp_path):
    """--load-weights: the memory image file's two segments land in the board's memory in
    frames of --frame-words (one frame corrupted on the way back and resent), then the
    images run as usual."""
    monkeypatch.setattr(R.time, "sleep", lambda s: None)
    image = [(7 * k + 3) % 65536 for k in range(700)]
    text = P.format_memory_image(image, base_addr=0x1F0) + "@20000 // second segment\nbeef 12\n"
    path = tmp_path / "weights.hex"
    path.write_text(text)
    assert P.parse_memory_image(text, 16) == [(0x1F0, image), (0x20000, [0xBEEF, 0x12])]
    board = FakeBoard(digits, corrupt={1})  # the second LOAD_WEIGHTS reply
    assert _cli(monkeypatch, board, "--images", "1", "--load-weights", str(path),
                "--frame-words", "250") == 0
    want = {0x1F0 + k: v for k, v in enumerate(image)} | {0x20000: 0xBEEF, 0x20001: 0x12}
    assert board.memory == want
    out = capsys.readouterr().out
    assert "weights: 702 words in 4 LOAD_WEIGHTS frames written in" in out
    assert "1/1 images match the golden model" in out
    # 4 frames, one ahead: the lost reply of frame 1 makes frames 1 and 2 go again; then
    # PING, SELFTEST, 1 image
    assert board.requests == 6 + 3
    board = FakeBoard(digits, corrupt={1})
    assert _cli(monkeypatch, board, "--images", "1", "--load-weights", str(path),
                "--frame-words", "250", "--frames-ahead", "0") == 0
    assert board.memory == want
    assert board.requests == 5 + 3  # one at a time: only frame 1 goes again
    capsys.readouterr()

    board = FakeBoard(digits)
    assert _cli(monkeypatch, board, "--images", "1", "--load-weights", str(path),
                "--verify-weights") == 0
    assert "; 702 words read back equal" in capsys.readouterr().out
    assert board.requests == 2 + 2 + 3  # 1 + 1 frames written, 1 + 1 read back
    board = FakeBoard(digits)
    board.flip_word = 0x1F0 + 600
    assert _cli(monkeypatch, board, "--load-weights", str(path), "--verify-weights") == 1
    assert capsys.readouterr().err.strip() == (
        f"hwgen run: error: the word at {0x1F0 + 600:#x} reads back as "
        f"{image[600] ^ 1:#x}, not {image[600]:#x}")


def test_cli_run_only_loads_with_images_0(digits, monkeypatch, capsys, tmp_path):
    """--images 0: a board that only loads (the ULX3S weight-loader top) gets LOAD_WEIGHTS
    and READ_WEIGHTS frames and nothing else."""
    path = tmp_path / "w.hex"
    path.write_text(P.format_memory_image(list(range(1300)), base_addr=16))
    board = FakeBoard(digits)
    assert _cli(monkeypatch, board, "--images", "0", "--load-weights", str(path),
                "--verify-weights") == 0
    assert "1300 words in 2 LOAD_WEIGHTS frames" in capsys.readouterr().out
    assert board.requests == 4 and board.memory == {16 + k: k for k in range(1300)}
    assert cli.main(["run", "--port", "loop://", "--images", "0"]) == 1
    assert "0 only with --load-weights" in capsys.readouterr().err


def test_cli_run_refuses_a_bad_memory_image(digits, monkeypatch, capsys, tmp_path):
    path = tmp_path / "w.hex"
    path.write_text("@10\n12\n12345\n")
    assert _cli(monkeypatch, FakeBoard(digits), "--load-weights", str(path)) == 1
    assert capsys.readouterr().err.strip() == (
        f"hwgen run: error: memory image '{path}': line 3: word 12345 does not fit 16 bits")
    assert _cli(monkeypatch, FakeBoard(digits), "--load-weights", str(tmp_path / "none")) == 1
    assert "cannot read memory image" in capsys.readouterr().err
    # A board whose loader buffers fewer words than the frames carry answers LENGTH.
    path.write_text("1\n" * 1100)
    assert _cli(monkeypatch, FakeBoard(digits), "--load-weights", str(path),
                "--frame-words", "1100") == 1
    assert capsys.readouterr().err.strip() == (
        "hwgen run: error: board answered LOAD_WEIGHTS error LENGTH to LOAD_WEIGHTS")


def test_cli_run_missing_port_is_one_line(capsys):
    assert cli.main(["run", "--port", "/dev/no-such-hwgen-port", "--images", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("hwgen run: error: cannot open serial port '/dev/no-such-hwgen-port'")
    assert "\n" not in err


def test_cli_run_on_a_port_nobody_answers(capsys, monkeypatch):
    """pyserial's loop:// echoes our own request back: never a reply frame."""
    monkeypatch.setattr(R.time, "sleep", lambda s: None)
    assert cli.main(["run", "--port", "loop://", "--timeout", "0.05", "--images", "1"]) == 1
    assert capsys.readouterr().err.strip() == (
        "hwgen run: error: no reply to PING within the timeout")


def test_cli_run_checks_its_options(capsys):
    assert cli.main(["run", "--port", "loop://", "--images", "0"]) == 1
    assert "--images must be at least 1, not 0" in capsys.readouterr().err


def test_the_self_test_image_is_the_board_tops():
    from hwgen.targets.board_top import default_selftest_image

    model = random_int_model(get_config("digits-tiny"), 8, seed=0)
    assert torch.equal(default_selftest_image(model), R.builtin_image(model))
    other = random_int_model(get_config("cifar-mid"), 8, seed=0)
    assert torch.equal(default_selftest_image(other), R.builtin_image(other))
