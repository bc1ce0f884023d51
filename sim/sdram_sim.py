"""Simulate the real SDRAM path: LiteDRAM (generated) + init driver + adapter against `SDRAMChip`.

`simulate_sdram` builds the controller's Verilog with LiteDRAM's core and the ECP5
primitive models, writes a seeded random pattern through the memory port, reads it
back in bursts under random backpressure and then at full speed, and returns what
the cocotb test measured (cycles to init, per-burst cycles, achieved bandwidth).
`simulate_engine_on_sdram` runs an external-weight engine through the same path: its
weights written into the SDRAM through the memory port, then read by the engine;
`simulate_loader_on_sdram` the same with the weights written by a `WeightLoader` from
LOAD_WEIGHTS frames.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from amaranth import Module, Mux, Shape
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwgen.targets.dram.controller import SDRAMController, stream_timing
from hwgen.targets.dram.litedram_core import Generated
from hwgen.targets.dram.uart_loader import LoaderCore
from rtl_templates.memport import pack_request
from rtl_templates.memport_pipelined import PipelinedMemPortRAM
from sim.block_sim import make_pattern
from sim.ecp5_models import ECP5_SIM_MODELS
from sim.loader_sim import LoadThenRun
from sim.memory_sim import network_cycles
from sim.runner import SimResult, SimulationFailed, run_cocotb


def _dq_buffers(core_verilog: str, width: int) -> list[str]:
    """Instance names of the TRELLIS_IO buffer of each dq bit, found in the generated core."""
    found = dict((int(bit), name) for name, bit in re.findall(
        r"TRELLIS_IO\s*#\([^;]*?\)\s*(\w+)\s*\(\s*(?://[^\n]*\s*)?\.B\s*\(sdram_dq\[(\d+)\]\)",
        core_verilog))
    if sorted(found) != list(range(width)):
        raise SimulationFailed(f"generated core: TRELLIS_IO buffers found for dq bits "
                               f"{sorted(found)}, expected 0..{width - 1}")
    return [found[b] for b in range(width)]


def sdram_sim_verilog(ctrl, core_path: str = "core") -> str:
    """A testbench top `top`: `ctrl` (an `SDRAMController`, or a component holding one whose
    LiteDRAM instance is at `core_path`) as `sdram_ctrl`, with its dq pad played by the
    ports ``chip_dq`` (in) and ``phy_dq_o``/``phy_dq_oe`` (out: what the PHY's pad
    buffers drive); then LiteDRAM's core and the ECP5 models."""
    ctrl_v = verilog.convert(ctrl, name="sdram_ctrl", emit_src=False)
    width = ctrl.generated.config.data_width
    decls, conns = ["input clk", "input rst"], [".clk(clk)", ".rst(rst)"]
    for path, member in ctrl.signature.members.flatten():
        if not member.is_port:
            continue
        name = "__".join(map(str, path))
        bits = Shape.cast(member.shape).width
        rng = f"[{bits - 1}:0] " if bits > 1 else ""
        decls.append(f"{'input' if member.flow == In else 'output'} {rng}{name}")
        conns.append(f".{name}({name})")
    decls += [f"input [{width - 1}:0] chip_dq", f"output [{width - 1}:0] phy_dq_o",
              f"output [{width - 1}:0] phy_dq_oe"]
    conns.append(".sdram_dq(pad)")
    lines = [f"module top({', '.join(decls)});", f"  wire [{width - 1}:0] pad = chip_dq;",
             f"  sdram_ctrl u({', '.join(conns)});"]
    for bit, inst in enumerate(_dq_buffers(ctrl.generated.verilog, width)):
        lines.append(f"  assign phy_dq_o[{bit}] = u.{core_path}.{inst}.I;")
        lines.append(f"  assign phy_dq_oe[{bit}] = ~u.{core_path}.{inst}.T;")
    lines.append("endmodule")
    return "\n".join([ctrl_v, "\n".join(lines), ctrl.generated.verilog, ECP5_SIM_MODELS])


@dataclass
class SDRAMRun:
    sim: SimResult
    requests: dict

    @property
    def data(self) -> dict:
        return self.sim.data


def _random_traffic(rng, sig, words: int, bursts: int, burst: int):
    """Nine regions anywhere in the chip (LiteDRAM maps column, then bank, then row bits
    from the bottom; one region straddles a row boundary), then random bursts inside them:
    row changes and bank interleaving get exercised."""
    mask = (1 << sig.data_width) - 1
    cols = 512
    span = words // 8
    regions = [rng.randrange((1 << sig.addr_width) - span) for _ in range(8)]
    regions.append(rng.randrange(1, (1 << sig.addr_width) // cols) * cols - span // 2)
    mem: dict[int, int] = {}
    writes, wdata = [], []
    for start in regions:
        for addr in range(start, start + span, burst):
            beats = min(burst, start + span - addr)
            writes.append(pack_request(addr, beats, True, sig.addr_width, burst))
            for a in range(addr, addr + beats):
                mem[a] = rng.randrange(mask + 1)
                wdata.append(mem[a])
    reads, rdata = [], []
    for _ in range(bursts):
        base = rng.choice(regions)
        beats = rng.randint(burst // 2, burst)
        start = base + rng.randrange(span - beats + 1)
        reads.append(pack_request(start, beats, False, sig.addr_width, burst))
        rdata += [mem[a] for a in range(start, start + beats)]
    return writes, wdata, reads, rdata


def _sequential_traffic(rng, sig, words: int, burst: int):
    """`words` consecutive words from a random row start, written and then read back in
    order in full bursts: how an engine streams a layer's weights."""
    mask = (1 << sig.data_width) - 1
    words -= words % burst
    start = rng.randrange(((1 << sig.addr_width) - words) // 512) * 512
    data = [rng.randrange(mask + 1) for _ in range(words)]
    reqs = [(a, burst) for a in range(start, start + words, burst)]
    writes = [pack_request(a, n, True, sig.addr_width, burst) for a, n in reqs]
    reads = [pack_request(a, n, False, sig.addr_width, burst) for a, n in reqs]
    return writes, data, reads, list(data)


def simulate_sdram(generated: Generated, *, seed: int = 0, words: int = 512, bursts: int = 24,
                   burst: int = 32, gap: float = 0.3, backpressure: float = 0.4,
                   read_buffer: int = 32, timeout: int = 100_000,
                   timings: dict | None = None, pattern: str = "random") -> SDRAMRun:
    """Write `words` words, read them back in bursts of up to `burst` words twice (under
    gaps/backpressure, then free flowing); the cocotb test raises at the first wrong word
    and the chip model at the first protocol or timing violation. `pattern` "random":
    `bursts` random bursts over scattered regions; "sequential": all words in order.
    `timings` overrides fields of the chip's `SDRAMTimings` (a stricter chip must make
    the run fail)."""
    if pattern not in ("random", "sequential"):
        raise ValueError(f"pattern must be 'random' or 'sequential', not {pattern!r}")
    ctrl = SDRAMController(generated, max_burst=burst, read_buffer=read_buffer)
    sig = ctrl.port_signature
    rng = random.Random(seed)
    if pattern == "random":
        writes, wdata, reads, rdata = _random_traffic(rng, sig, words, bursts, burst)
    else:
        writes, wdata, reads, rdata = _sequential_traffic(rng, sig, words, burst)
    stimulus = {
        "seed": seed, "timeout": timeout, "period_ns": 1e9 / generated.config.sys_clk_freq,
        "writes": writes, "wdata": wdata, "reads": reads, "rdata": rdata,
        "idle": {"req": make_pattern(rng, gap), "w": make_pattern(rng, gap)},
        "stall": make_pattern(rng, backpressure),
        "addr_width": sig.addr_width, "max_burst": burst, "timings": timings or {},
    }
    sim = run_cocotb(sdram_sim_verilog(ctrl), "sim.cocotb_tests.sdram", stimulus,
                     tag="sdram", testcase="sdram_path")
    return SDRAMRun(sim, {"writes": len(writes), "reads": len(reads)})


def simulate_memtest(generated: Generated, *, words: int = 1024, max_burst: int = 64,
                     timeout: int = 200_000, flip_read: int | None = None) -> dict:
    """The board's self-test logic (`MemTestCore`) against the chip model: cycles to init and
    to done, and whether MemTest saw every word right (`flip_read`: corrupt that read word
    on the bus, which MemTest must notice)."""
    from hwgen.targets.dram.board import MemTestCore

    core = MemTestCore(generated, words=words, max_burst=max_burst)
    stimulus = {"timeout": timeout, "period_ns": 1e9 / generated.config.sys_clk_freq,
                "flip_read": flip_read}
    sim = run_cocotb(sdram_sim_verilog(core, "ctrl.core"), "sim.cocotb_tests.sdram", stimulus,
                     tag="sdram-memtest", testcase="sdram_memtest")
    return sim.data


class EngineOnSDRAM(wiring.Component):
    """A testbench top: `engine` (the initiator of a `MemPortSignature`, e.g. a LinearEngine)
    and a host port sharing one `SDRAMController`. ``sel`` low gives the controller to
    ``host`` (the testbench writes the weights through it), high to the engine.

    Ports: ``host`` (memory side of the port), ``sel``, ``init_done``, the engine's ``i``
    and ``o``, the SDRAM pins. The controller is ``ctrl`` (its LiteDRAM at ``ctrl.core``).
    """

    def __init__(self, generated: Generated, engine, *, read_buffer: int = 32):
        self.generated, self.engine = generated, engine
        sig = engine.mem.signature
        self.ctrl = SDRAMController(generated, max_burst=sig.max_burst, read_buffer=read_buffer)
        if sig != self.ctrl.port_signature:
            raise ValueError(f"the engine's port {sig!r} must be the controller's "
                             f"{self.ctrl.port_signature!r}")
        members = {"host": In(sig), "sel": In(1), "init_done": Out(1),
                   "i": engine.signature.members["i"], "o": engine.signature.members["o"]}
        members.update({p: Out(w) for p, w in self.ctrl.pins.items()})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        ctrl, engine = self.ctrl, self.engine
        m.submodules.ctrl, m.submodules.engine = ctrl, engine
        h, e, c, sel = self.host, engine.mem, ctrl.port, self.sel
        m.d.comb += [
            c.req.payload.as_value().eq(Mux(sel, e.req.payload.as_value(),
                                            h.req.payload.as_value())),
            c.req.valid.eq(Mux(sel, e.req.valid, h.req.valid)),
            c.w.payload.eq(Mux(sel, e.w.payload, h.w.payload)),
            c.w.valid.eq(Mux(sel, e.w.valid, h.w.valid)),
            c.r.ready.eq(Mux(sel, e.r.ready, h.r.ready)),
            e.req.ready.eq(sel & c.req.ready), h.req.ready.eq(~sel & c.req.ready),
            e.w.ready.eq(sel & c.w.ready), h.w.ready.eq(~sel & c.w.ready),
            e.r.valid.eq(sel & c.r.valid), h.r.valid.eq(~sel & c.r.valid),
            e.r.payload.eq(c.r.payload), h.r.payload.eq(c.r.payload),
            self.init_done.eq(ctrl.init_done),
        ]
        wiring.connect(m, wiring.flipped(self.i), engine.i)
        wiring.connect(m, engine.o, wiring.flipped(self.o))
        m.d.comb += [getattr(self, p).eq(getattr(ctrl, p)) for p in ctrl.pins]
        return m


def engine_memory_model(generated: Generated, engine, read_buffer: int = 32):
    """The memory-port model the engine's SDRAM prediction uses: `PipelinedMemPortRAMModel`
    with `stream_timing` (the fit to this controller's sequential streams)."""
    sig = engine.mem.signature
    ram = PipelinedMemPortRAM(data_width=sig.data_width, depth=1 << sig.addr_width,
                              max_burst=sig.max_burst, buffer=read_buffer,
                              **stream_timing(generated.config))
    ram._MustUse__silence = True  # only its model is used, never its hardware
    return ram.model()


def simulate_engine_on_sdram(generated: Generated, engine, words, inputs: dict, expected: dict,
                             *, seed: int = 0, gap: float = 0.3, backpressure: float = 0.4,
                             read_buffer: int = 32, timeout: int = 400_000) -> dict:
    """Write `words` (the engine's memory image) into the SDRAM through the host port, give
    the port to the engine and run `inputs` twice: free flowing (the cycles measured, from
    the cycle the engine got the port: its first request may fire in cycle 0, its input
    from cycle 1), then under seeded input gaps and output stalls; every output beat is
    checked against `expected` in both passes. Returns the test's result and the
    prediction of the engine's model next to `engine_memory_model` (``predicted``)."""
    sig = engine.mem.signature
    top = EngineOnSDRAM(generated, engine, read_buffer=read_buffer)
    writes, wdata, addr = [], [int(w) for w in words], engine.base_addr
    end = engine.base_addr + len(words)
    while addr < end:
        beats = min(sig.max_burst, end - addr)
        writes.append(pack_request(addr, beats, True, sig.addr_width, sig.max_burst))
        addr += beats
    rng = random.Random(seed)
    stimulus = {
        "seed": seed, "timeout": timeout, "period_ns": 1e9 / generated.config.sys_clk_freq,
        "writes": writes, "wdata": wdata,
        "inputs": {k: [int(x) for x in v] for k, v in inputs.items()},
        "outputs": {k: [int(x) for x in v] for k, v in expected.items()},
        "idle": {k: make_pattern(rng, gap) for k in sorted(inputs)},
        "stall": {k: make_pattern(rng, backpressure) for k in sorted(expected)},
    }
    sim = run_cocotb(sdram_sim_verilog(top, "ctrl.core"), "sim.cocotb_tests.sdram", stimulus,
                     tag="sdram-engine", testcase="sdram_engine")
    beats = len(stimulus["outputs"]["o"])
    predicted = network_cycles(engine, engine_memory_model(generated, engine, read_buffer),
                               stimulus["inputs"], {}, {}, beats)
    return {**sim.data, "predicted": predicted, "sim_seconds": sim.run_seconds,
            "build_seconds": sim.build_seconds}


def simulate_loader_on_sdram(generated: Generated, loader, engine, frames: list[bytes],
                             replies: list[int], inputs: dict, expected: dict, *,
                             seed: int = 0, gap: float = 0.0, backpressure: float = 0.0,
                             read_buffer: int = 32, timeout: int = 400_000) -> dict:
    """`loader` (a WeightLoader) writes `frames` (LOAD_WEIGHTS requests) into the SDRAM
    through the real controller, answering with `replies`; then `engine` reads its weights
    from there and must produce `expected` from `inputs` (`LoadThenRun`). The byte stream
    and the engine's input see seeded gaps, the replies and the engine's output seeded
    stalls; every beat is checked. Returns the run's result (out_cycles of ``load_o`` and
    ``o``, chip command counts)."""
    sig = engine.mem.signature
    ctrl = SDRAMController(generated, max_burst=sig.max_burst, read_buffer=read_buffer)
    top = LoadThenRun(loader, engine, ctrl, frames=len(frames), memory_port=ctrl.port)
    ins = {"load_i": [b for f in frames for b in f], **inputs}
    outs = {"load_o": list(replies), **expected}
    rng = random.Random(seed)
    stimulus = {
        "seed": seed, "timeout": timeout, "period_ns": 1e9 / generated.config.sys_clk_freq,
        "inputs": {k: [int(x) for x in v] for k, v in ins.items()},
        "outputs": {k: [int(x) for x in v] for k, v in outs.items()},
        "idle": {k: make_pattern(rng, gap) for k in sorted(ins)},
        "stall": {k: make_pattern(rng, backpressure) for k in sorted(outs)},
    }
    sim = run_cocotb(sdram_sim_verilog(top, "memory.core"), "sim.cocotb_tests.sdram", stimulus,
                     tag="sdram-loader", testcase="sdram_loader")
    return {**sim.data, "sim_seconds": sim.run_seconds, "build_seconds": sim.build_seconds}


def simulate_uart_loader(generated: Generated, steps: list[bytes], reply_bytes: list[int], *,
                         divisor: int = 8, frame_words: int = 32, max_burst: int = 32,
                         rx_fifo: int = 64, bad_stop_at: list | None = None,
                         timeout: int = 400_000) -> dict:
    """`LoaderCore` (UartRx -> WeightLoader -> UartTx on the SDRAM controller) against the chip
    model, driven over its UART pins: each step's bytes (back to back), then a wait for its
    `reply_bytes` reply bytes (`bad_stop_at`: per step, the index of a byte sent with a low
    stop bit, or None). Returns every byte received on ``tx``, the chip's command
    counts and the cycle each step's replies were complete (``step_cycles``, counted from
    init_done)."""
    core = LoaderCore(generated, divisor=divisor, gap=0, frame_words=frame_words,
                      max_burst=max_burst, rx_fifo=rx_fifo)
    stimulus = {"seed": 0, "timeout": timeout, "period_ns": 1e9 / generated.config.sys_clk_freq,
                "divisor": divisor, "steps": [list(s) for s in steps],
                "reply_bytes": list(reply_bytes), "bad_stop_at": bad_stop_at}
    sim = run_cocotb(sdram_sim_verilog(core, "ctrl.core"), "sim.cocotb_tests.sdram", stimulus,
                     tag="sdram-uart-loader", testcase="sdram_uart_loader")
    return {**sim.data, "sim_seconds": sim.run_seconds, "build_seconds": sim.build_seconds}
