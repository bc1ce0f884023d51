"""The compiler's commands end to end through the CLI: `hwgen plan`, `hwgen verilog` (byte
for byte reproducible) and `hwgen sim` on the bundled model; bad targets refused with one
line."""

import json

import pytest

from hwgen.cli.main import main


def test_plan_table_for_the_icebreaker(capsys):
    assert main(["plan", "--board", "icebreaker"]) == 0
    out = capsys.readouterr().out
    assert "plan for digits-tiny on iCE40UP5K (LUT/LC ceiling 95%)" in out
    assert "lif_linear" in out  # the MLP's LIF arrays fused on the iCE40
    assert "latency" in out and "(exact" in out and "images/s at 12 MHz" in out


@pytest.mark.parametrize(("argv", "words"), [
    (["plan", "--config", "cifar-paper", "--board", "icebreaker"],
     ["cifar-paper does not fit iCE40UP5K even fully folded", "limit"]),
    (["plan", "--board", "icebreaker", "--max-util", "60"],
     ["digits-tiny does not fit iCE40UP5K", "LC"]),
    (["plan", "--board", "nosuchboard"], ["unknown board 'nosuchboard'"]),
    (["plan", "--max-util", "120"], ["--max-util must be a percentage in 1..100, not 120"]),
    (["sim", "--event-driven", "blocks.0.q"], ["'blocks.0.q' cannot run event-driven"]),
])
def test_bad_targets_are_refused_with_one_line(capsys, argv, words):
    assert main(argv) != 0
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)


def test_verilog_is_byte_identical(tmp_path, capsys):
    a, b = tmp_path / "a.v", tmp_path / "b.v"
    argv = ["verilog", "--config", "digits-tiny", "--weight-seed", "2", "--board", "ulx3s-85f"]
    assert main([*argv, "-o", str(a)]) == 0
    assert main([*argv, "-o", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes() and b"module" in a.read_bytes()
    assert main([*argv[:4], "3", *argv[5:], "-o", str(b)]) == 0  # other weights
    assert a.read_bytes() != b.read_bytes()


@pytest.mark.sim
def test_sim_on_the_bundled_model(tmp_path, capsys, verilator):
    report = tmp_path / "sim.json"
    assert main(["sim", "--images", "4", "--board", "ulx3s-85f", "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "images passed: 4/4 bit-exact" in out, out
    assert "largest prediction error 0.00%" in out
    data = json.loads(report.read_text())
    assert data["passed"] == 4 and data["cycles"] == data["predicted_cycles"]
