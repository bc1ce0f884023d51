"""The external-weight board core (issue 10): the classifier and the weight loader on one
UART, the accelerator's body engine and the loader on one memory. A host session in cocotb
loads a small model's weights over the UART, reads some back, classifies, then loads other
weights and classifies again; every reply is judged against the golden model. The blocks
that route frames, replies and the memory (rtl_templates.frame_route) are checked alone
under random stalls first."""

from __future__ import annotations

import dataclasses
import random

import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from hwgen.compiler.builder import graph_memory_image
from hwgen.compiler.engine_body import body_memory_image
from hwgen.compiler.style import plan_styled
from hwgen.compiler.target import Target
from hwgen.host import protocol as P
from hwgen.targets.board_top import BoardCore, board_core_verilog, default_selftest_image
from hwgen.targets.boards import get_board
from hwgen.targets.dram.controller import SDRAMController
from quant import golden
from quant.config import get_config
from quant.random_model import random_int_model, random_pixels
from rtl_templates.common import bits_for
from rtl_templates.frame_route import FrameDemux, ReplyMux
from rtl_templates.memport import MemPortRAM
from sim.loader_sim import BoardOnMemory
from sim.runner import run_cocotb
from sim.sdram_sim import sdram_sim_verilog

ULX3S = Target.for_board(get_board("ulx3s-85f"))
DIVISOR = 6
FRAME_WORDS = 64


# ------------------------------------------------------------------------------ fast tier

def _drive(dut, frames_in: list[int], outs: dict, stall: float, seed: int, extra=None):
    """Run `dut` with `frames_in` bytes offered on ``i`` (seeded gaps) and seeded stalls on
    the outputs named in `outs` (name -> list collecting the bytes)."""
    rng = random.Random(seed)
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def feed(ctx):
        for byte in frames_in:
            while rng.random() < stall:
                await ctx.tick()
            ctx.set(dut.i.payload, byte)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)

    async def drain(ctx):
        for _ in range(len(frames_in) * 6 + 400):
            for name in outs:
                ctx.set(getattr(dut, name).ready, rng.random() >= stall)
            await ctx.delay(1e-9)
            for name, got in outs.items():
                port = getattr(dut, name)
                if ctx.get(port.valid) and ctx.get(port.ready):
                    got.append(ctx.get(port.payload))
            if extra:
                extra(ctx)
            await ctx.tick()

    sim.add_testbench(feed)
    sim.add_testbench(drain)
    sim.run()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frame_demux_routes_whole_frames_by_command(seed):
    frames = [P.encode_request(P.LOAD_WEIGHTS, bytes(range(9))),
              P.encode_request(P.CLASSIFY, bytes([0xA5] * 5)),
              P.encode_request(P.READ_WEIGHTS, bytes(6)),
              P.encode_request(P.PING), P.encode_request(P.LOAD_WEIGHTS, bytes([0x5A] * 300))]
    dut = FrameDemux(b_commands=(P.LOAD_WEIGHTS, P.READ_WEIGHTS), gap=50)
    a, b = [], []

    def allow(ctx):
        ctx.set(dut.b_allowed, 1)

    _drive(dut, [x for f in frames for x in f], {"a": a, "b": b}, 0.3, seed, allow)
    assert bytes(a) == frames[1] + frames[3]
    assert bytes(b) == frames[0] + frames[2] + frames[4]


@pytest.mark.parametrize("seed", [0, 1])
def test_reply_mux_keeps_replies_whole(seed):
    ra = [P.encode_error(P.CLASSIFY, P.ERR_CHECKSUM), P.encode_response(P.PING, P.OK, bytes(11))]
    rb = [P.encode_response(P.READ_WEIGHTS, P.OK, bytes(range(40))),
          P.encode_error(P.LOAD_WEIGHTS, P.OK)]
    dut = ReplyMux()
    rng = random.Random(seed)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    got = []

    def source(port, replies):
        async def run(ctx):
            for byte in b"".join(replies):
                while rng.random() < 0.4:
                    await ctx.tick()
                ctx.set(port.payload, byte)
                ctx.set(port.valid, 1)
                await ctx.tick().until(port.ready)
                ctx.set(port.valid, 0)
        return run

    async def sink(ctx):
        for _ in range(2000):
            ctx.set(dut.o.ready, rng.random() < 0.6)
            await ctx.delay(1e-9)
            if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                got.append(ctx.get(dut.o.payload))
            await ctx.tick()

    sim.add_testbench(source(dut.a, ra))
    sim.add_testbench(source(dut.b, rb))
    sim.add_testbench(sink)
    sim.run()
    out, replies = bytes(got), []
    while out:
        n = out[3] | out[4] << 8
        replies.append(out[:n + 6])
        out = out[n + 6:]
    assert sorted(replies) == sorted(ra + rb)
    assert [r for r in replies if r in ra] == ra and [r for r in replies if r in rb] == rb


# ------------------------------------------------------------------------------ system test

def _model(weights: str = "external"):
    """One block; for "external-all" a two-stage stem, its second conv and the RPE on conv
    engines sharing the port with the body."""
    cfg = get_config("digits-tiny").replace(depth=1, dim=16, heads=2, mlp_ratio=1)
    if weights == "external-all":  # (seed 6: its negated body keeps the accumulator widths)
        cfg = cfg.replace(stem_channels=(4, 8), stem_pool=(True, True))
        return random_int_model(cfg, seed=6)
    return random_int_model(cfg, seed=5)


def _negated(model):
    """The same model with every body weight negated: the same accumulator widths (their
    bounds depend on |w|), so the same hardware, other results."""
    blocks = []
    for blk in model.blocks:
        layers = {k: dataclasses.replace(getattr(blk, k), weight=-getattr(blk, k).weight)
                  for k in ("q", "k", "o", "fc1", "fc2")}
        blocks.append(dataclasses.replace(blk, **layers))
    return dataclasses.replace(model, blocks=blocks)


def _board(model, addr_bits: int | None = None, weights: str = "external"):
    """The board core of `model`'s external-weight plan, its body spec and memory image; the
    memory port has `addr_bits` (default: just enough, and one more)."""
    plan = plan_styled(model, ULX3S, weights=weights, calib=2).plan
    assert plan.body.front == (weights == "external-all")
    words = graph_memory_image(plan.graph(model).for_models_only())
    if weights == "external":
        assert words == body_memory_image(model, plan.body)
    spec = dataclasses.replace(plan.body, addr_bits=addr_bits or bits_for(len(words) - 1) + 1)
    graph = dataclasses.replace(plan, body=spec).graph(model)
    gap = 3 * 10 * DIVISOR
    core = BoardCore(graph, divisor=DIVISOR, gap=gap, leds=4, frame_words=FRAME_WORDS)
    return core, spec, words


def test_negated_model_has_the_same_hardware():
    model = _model()
    core, _, words = _board(model)
    core2, _, words2 = _board(_negated(model))
    assert words != words2
    assert verilog.convert(core.accelerator) == verilog.convert(core2.accelerator)


def _results(model, pixels, cmd=P.CLASSIFY):
    geo = P.model_geometry(model)
    gold = golden.run(model, pixels, taps=False)
    return [P.encode_result(cmd, int(gold["pred"][k]), [int(v) for v in gold["logits"][k]], geo)
            for k in range(pixels.shape[0])]


def _session(model, words, other, other_words, back: int = 40):
    """The host session's steps (what to send, how many reply bytes to wait for) and the
    reply each must get: load `model`'s weights, read some back, classify, a refused load,
    then `other`'s weights and classify again, and the self-test."""
    cfg, geo = model.config, P.model_geometry(model)
    pixels = random_pixels(cfg, 3, seed=7)
    img = [P.encode_request(P.CLASSIFY, P.image_bytes(pixels[k], cfg)) for k in range(3)]
    ok = P.encode_error(P.LOAD_WEIGHTS, P.OK)
    load = P.load_weights_frames(words, data_width=16, frame_words=FRAME_WORDS)
    load2 = P.load_weights_frames(other_words, data_width=16, frame_words=FRAME_WORDS)
    bad = bytearray(load2[0])
    bad[-1] ^= 0x11
    steps, expected = [], []

    def step(name, send, reply):
        steps.append({"name": name, "send": list(send), "reply_bytes": len(reply)})
        expected.append(reply)

    step("ping", P.encode_request(P.PING), P.encode_pong(geo))
    for k, f in enumerate(load):
        step(f"load {k}", f, ok)
    step("read back", P.read_weights_request(3, back),
         P.encode_response(P.READ_WEIGHTS, P.OK,
                           b"".join(w.to_bytes(2, "little") for w in words[3:3 + back])))
    first = _results(model, pixels)
    step("image 0", img[0], first[0])
    step("image 1", img[1], first[1])
    step("bad load", bytes(bad), P.encode_error(P.LOAD_WEIGHTS, P.ERR_CHECKSUM))
    step("image 2", img[2], first[2])  # the refused frame wrote nothing
    for k, f in enumerate(load2):
        step(f"reload {k}", f, ok)
    second = _results(other, pixels)
    step("image 0 again", img[0], second[0])
    step("image 1 again", img[1], second[1])
    st = _results(other, default_selftest_image(model).unsqueeze(0), P.SELFTEST)[0]
    step("selftest", P.encode_request(P.SELFTEST), st)
    assert first != second, "pick images the negated weights classify otherwise"
    return steps, expected


def _judge(res: dict, expected: list[bytes]) -> None:
    assert res["tx_errors"] == []
    assert res["powerup_leds"] == 0, "no power-up self-test without weights"
    for s, want in zip(res["steps"], expected, strict=True):
        got = bytes(s["bytes"])
        assert got == want, f"step {s['name']!r}: got {got.hex()}, expected {want.hex()}"
    assert res["total_bytes"] == sum(map(len, expected)), "stray reply bytes"


def _board_session(memory_of, addr_bits: int | None = None, weights: str = "external"):
    """The session on the board core with the memory `memory_of(spec)` makes."""
    model = _model(weights)
    other = _negated(model)
    core, spec, words = _board(model, addr_bits, weights)
    steps, expected = _session(model, words, other, _board(other, None, weights)[2])
    stim = {"seed": 1, "divisor": DIVISOR, "timeout_cycles": 400_000,
            "quiet_cycles": 40 * 10 * DIVISOR, "steps": steps}
    return BoardOnMemory(core, memory_of(spec)), stim, expected


@pytest.mark.sim
@pytest.mark.parametrize("weights", ["external", "external-all"])
def test_board_loads_weights_then_classifies_on_one_uart(verilator, weights):
    """On the memory-port model (the controller's latency, a beat a cycle); with
    "external-all" the conv engines and the body share the port through the arbiter, and
    the loaded image holds all their weights."""
    top, stim, expected = _board_session(lambda spec: MemPortRAM(
        data_width=16, depth=1 << spec.addr_bits, max_burst=spec.max_burst,
        latency=spec.latency), weights=weights)
    res = run_cocotb(board_core_verilog(top), "sim.cocotb_tests.board", stim,
                     simulator=verilator, tag=f"board-{weights}").data
    _judge(res, expected)


@pytest.mark.slow  # its own Verilator build of LiteDRAM's core; every byte over the UART pins
@pytest.mark.sim
def test_board_loads_weights_then_classifies_through_litedram(verilator, generated):
    """The same session through the real controller (LiteDRAM) on the SDRAM chip model
    (CAS latency, tRCD, tRP, refresh checked by it)."""
    top, stim, expected = _board_session(lambda spec: SDRAMController(
        generated, max_burst=spec.max_burst), generated.config.addr_width)
    stim.update(period_ns=1e9 / generated.config.sys_clk_freq, timeout=3_000_000)
    res = run_cocotb(sdram_sim_verilog(top, "memory.core"), "sim.cocotb_tests.sdram", stim,
                     simulator=verilator, tag="board-external-sdram",
                     testcase="sdram_board_session").data
    _judge(res, expected)
    assert res["chip_commands"]["REF"] > 0, "the run saw no refresh"


def test_ulx3s_external_top_elaborates_with_the_controller(generated):
    """The board top of `hwgen build --weights external`: the body's port is the SDRAM's
    (24-bit word addresses), LiteDRAM's Verilog goes into the build, 2 Mbaud at 50 MHz."""
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    from hwgen.targets.dram.accelerator_top import ULX3SExternalTop, board_body
    from hwgen.targets.dram.litedram_core import CORE_NAME

    model = _model()
    plan = plan_styled(model, ULX3S, weights="external", calib=2).plan
    top = ULX3SExternalTop(board_body(plan).graph(model), generated)
    platform = ULX3S_85F_Platform()
    for name, text in top.extra_files.items():
        platform.add_file(name, text)
    files = platform.build(top, name="top", do_build=False).files
    assert f"{CORE_NAME}.v" in files and "module \\top" in files["top.il"]
    assert top.core.mem.signature.addr_width == generated.config.addr_width == 24
    assert top.divisor == 25


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_memport_share_switches_without_mixing_beats(seed):
    """`a` reads bursts; `use_b` rises while some of its beats are still owed (they are
    dropped, never given to `b`); `b` writes and reads; `a` gets the port back and reads
    the new words. Random stalls on every stream."""
    from amaranth import Module
    from amaranth.lib import wiring

    from rtl_templates.frame_route import MemPortShare
    from rtl_templates.memport import pack_request

    depth, burst = 64, 8
    init = [(7 * k + 3) & 0xFFFF for k in range(depth)]
    share = MemPortShare(addr_width=6, data_width=16, max_burst=burst)
    ram = MemPortRAM(data_width=16, depth=depth, max_burst=burst, latency=4, init=init)
    m = Module()
    m.submodules.share, m.submodules.ram = share, ram
    wiring.connect(m, share.mem, ram)
    rng = random.Random(seed)
    sim = Simulator(m)
    sim.add_clock(1e-8)
    got = {"a1": [], "b": [], "a2": []}
    phase = {"now": "a1"}
    new = [0xBEE0 + k for k in range(burst)]

    async def request(ctx, port, addr, beats, write):
        ctx.set(port.req.payload.as_value(), pack_request(addr, beats, write, 6, burst))
        ctx.set(port.req.valid, 1)
        await ctx.tick().until(port.req.ready)
        ctx.set(port.req.valid, 0)

    async def initiator(ctx):
        for k in range(3):  # a: three reads; the switch comes while beats are owed
            await request(ctx, share.a, 8 * k, burst, False)
        while len(got["a1"]) < 3:
            await ctx.tick()
        ctx.set(share.use_b, 1)
        phase["now"] = "b"
        await request(ctx, share.b, 40, burst, True)
        for w in new:
            ctx.set(share.b.w.payload, w)
            ctx.set(share.b.w.valid, 1)
            await ctx.tick().until(share.b.w.ready)
        ctx.set(share.b.w.valid, 0)
        await request(ctx, share.b, 40, burst, False)
        while len(got["b"]) < burst:
            await ctx.tick()
        for _ in range(3):
            await ctx.tick()
        ctx.set(share.use_b, 0)
        phase["now"] = "a2"
        await request(ctx, share.a, 38, burst, False)
        while len(got["a2"]) < burst:
            await ctx.tick()

    async def readers(ctx):
        for _ in range(3000):
            ra, rb = rng.random() < 0.5, rng.random() < 0.5
            ctx.set(share.a.r.ready, ra)
            ctx.set(share.b.r.ready, rb)
            await ctx.delay(1e-9)
            if ctx.get(share.a.r.valid) and ra:
                got["a2" if phase["now"] == "a2" else "a1"].append(ctx.get(share.a.r.payload))
            if ctx.get(share.b.r.valid) and rb:
                got["b"].append(ctx.get(share.b.r.payload))
            await ctx.tick()

    sim.add_testbench(initiator)
    sim.add_testbench(readers)
    sim.run()
    assert got["a1"] == init[:len(got["a1"])] and 3 <= len(got["a1"]) < 3 * burst
    assert got["b"] == new
    assert got["a2"] == init[38:40] + new[:burst - 2]
