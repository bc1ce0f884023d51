"""LinearEngine (weights from the memory port, `MemPortSignature`) against the golden
quant.golden.spike_linear, under gaps and backpressure on every stream and on the memory port
(a testbench responder), and with MemPortRAM / PipelinedMemPortRAM behind it in the top; its
cycle model, next to the memory's, checked beat by beat, and its free-flow cycle count exactly.
"""

import pytest
import torch
from support import check_estimate, yosys_stats

from quant.golden import spike_linear
from quant.ir import signed_bits
from rtl_templates.common import pack_spikes
from rtl_templates.linear_engine import LinearEngine, memory_image, pack_engine_values
from rtl_templates.memport import MemPortRAM, MemPortSignature
from rtl_templates.memport_pipelined import PipelinedMemPortRAM
from sim.memory_sim import (
    ResponderModel,
    model_cycles,
    network_cycles,
    verify_memory_block,
    verify_with_ram,
)
from sim.runner import SimulationFailed


def _engine(out, n_in, tokens, T, pe, simd, beat_bits, max_burst, kind="random", seed=0,
            base_addr=0, mode="dense", addr_bits=16):
    g = torch.Generator().manual_seed(seed)
    if kind == "random":
        w = torch.randint(-127, 128, (out, n_in), generator=g)
        b = torch.randint(-3000, 3001, (out,), generator=g)
    else:  # rows of all +127 / all -127, biases beyond the weights' range
        w = torch.tensor([[127 if o % 2 == 0 else -127] * n_in for o in range(out)])
        b = torch.tensor([(-1) ** o * 100_000 for o in range(out)])
    acc = signed_bits(int((b + w.clamp(max=0).sum(1)).min()), int((b + w.clamp(min=0).sum(1)).max()))
    e = LinearEngine(w.tolist(), b.tolist(), tokens=tokens, time_steps=T, weight_bits=8,
                     acc_bits=acc, pe=pe, simd=simd, beat_bits=beat_bits, max_burst=max_burst,
                     base_addr=base_addr, addr_bits=addr_bits, mode=mode)
    return e, w, b


def _images(e, w, b, images, seed):
    g = torch.Generator().manual_seed(seed)
    s = (torch.rand(images, e.tokens, e.time_steps, e.in_features, generator=g) < 0.3).long()
    s[0, 1] = 0  # a token without spikes, and one with every spike
    s[-1, 0] = 1
    ins, exp = [], []
    for m in range(images):
        ins += pack_spikes(s[m])
        exp += pack_engine_values(spike_linear(s[m], w, b).tolist(), e.acc_bits, e.pe)
    return {"i": ins}, {"o": exp}


# fold: rows of 3 beats, tiles of 12 beats in requests of 8, 4; unroll: one tile (both
# buffers alternate over images), a two-stage tree, T = 1, extreme sums; serial: pe = simd
# = 1, a row per beat, latency 1; event: one row per set bit (in = 40: the encoder's 16-bit
# chunks), an all-zero token costs one operation per position.
CASES = {
    "event-fold": dict(args=(6, 12, 4, 2, 3, 1, 8, 8), mode="event", seed=4, latency=6),
    "event-wide-extreme": dict(args=(6, 40, 3, 1, 6, 1, 16, 64), mode="event", kind="extreme",
                               seed=5, latency=2),
    "fold": dict(args=(6, 12, 4, 2, 2, 3, 16, 8), seed=1, base_addr=100, latency=6),
    "unroll-extreme": dict(args=(6, 12, 3, 1, 6, 12, 32, 64), kind="extreme", seed=2,
                           latency=11),
    "serial": dict(args=(3, 5, 3, 2, 1, 1, 8, 4), seed=3, latency=1),
}


@pytest.mark.sim
@pytest.mark.parametrize("name", list(CASES))
def test_linear_engine(verilator, name):
    case = CASES[name]
    e, w, b = _engine(*case["args"], kind=case.get("kind", "random"), seed=case["seed"],
                      base_addr=case.get("base_addr", 0), mode=case.get("mode", "dense"))
    ins, exp = _images(e, w, b, 3, case["seed"])
    words, lat = memory_image(e), case["latency"]
    run = verify_memory_block(e, ins, exp, words=words, latency=lat, simulator=verilator,
                              tag="lengine")
    P = e.positions
    counts = [[bin(x).count("1") for x in ins["i"][m * P:(m + 1) * P]] for m in range(3)]
    assert run.cycles == e.cycles(3, lat, counts if e.mode == "event" else None)
    verify_memory_block(e, ins, exp, words=words, latency=lat, simulator=verilator,
                        seed=case["seed"], gap=0.3, backpressure=0.4, mem_stall=0.3,
                        mem_gap=0.4, tag="lengine")
    verify_memory_block(e, ins, exp, words=words, latency=lat, simulator=verilator, seed=99,
                        gap=0.05, backpressure=0.7, mem_stall=0.6, mem_gap=0.1, tag="lengine")


# MemPortRAM / PipelinedMemPortRAM in the top: their latency, beat interval and refresh gaps
# (and the pipelined one's read buffer) cost cycles, never results; the engine's model next
# to the memory's predicts every output beat.
RAM_CASES = {
    "fold-ram": dict(case="fold", ram=MemPortRAM, latency=5, interval=2, refresh_period=61,
                     refresh_cycles=7),
    "event-fold-pipelined": dict(case="event-fold", ram=PipelinedMemPortRAM, latency=9,
                                 buffer=8, refresh_period=97, refresh_cycles=15),
}


@pytest.mark.sim
@pytest.mark.parametrize("name", list(RAM_CASES))
def test_linear_engine_with_memport_ram(verilator, name):
    spec = dict(RAM_CASES[name])
    case, ram = CASES[spec.pop("case")], spec.pop("ram")
    e, w, b = _engine(*case["args"], kind=case.get("kind", "random"), seed=case["seed"],
                      base_addr=case.get("base_addr", 0), mode=case.get("mode", "dense"),
                      addr_bits=8)
    ins, exp = _images(e, w, b, 3, case["seed"])
    free = verify_with_ram(e, ins, exp, words=memory_image(e), ram_class=ram,
                           simulator=verilator, tag="lengine-ram", **spec)
    slow = verify_with_ram(e, ins, exp, words=memory_image(e), ram_class=ram,
                           simulator=verilator, seed=7, gap=0.3, backpressure=0.5,
                           tag="lengine-ram", **spec)
    assert slow.cycles > free.cycles  # the gaps and stalls did cost cycles


@pytest.mark.sim
def test_linear_engine_checks_can_fail(verilator):
    """A wrong output value fails the scoreboard; a wrong latency fails the cycle model."""
    e, w, b = _engine(*CASES["fold"]["args"], seed=1, base_addr=100)
    ins, exp = _images(e, w, b, 1, 5)
    bad = {"o": list(exp["o"])}
    bad["o"][7] ^= 1
    with pytest.raises(SimulationFailed, match="mismatch at beat 7"):
        verify_memory_block(e, ins, bad, words=memory_image(e), latency=6, simulator=verilator,
                            tag="lengine")
    run = verify_memory_block(e, ins, exp, words=memory_image(e), latency=6, simulator=verilator,
                              tag="lengine")
    assert model_cycles(e, run, 7)["o"] != run.out_cycles["o"]


def test_memory_image_and_requests():
    w = [[1, -2, 3, -4], [5, 6, -7, 7]]
    e = LinearEngine(w, [0, 0], tokens=3, time_steps=1, weight_bits=4, acc_bits=6, pe=2,
                     simd=2, beat_bits=8, max_burst=2, base_addr=10, addr_bits=8)
    # rows (gated_sum.weight_rows) 0x65E1, 0x79C3, split into bytes, low first
    assert memory_image(e) == [0xE1, 0x65, 0xC3, 0x79]
    assert e.requests() == [(10, 2), (12, 2)]
    assert pack_engine_values([[[1, -1]], [[2, 3]]], 6, 2) == [1 | (63 << 6), 2 | (3 << 6)]
    # The one memory port: the engine is its initiator.
    assert e.mem.signature == MemPortSignature(addr_width=8, data_width=8, max_burst=2)
    assert set(e.mem.signature.members) == {"req", "w", "r"}


def test_cycles_closed_form_equals_model_in_free_flow():
    """The closed form against the cycle model on shapes too big to simulate cheaply."""
    for args, lat in (((48, 64, 16, 4, 8, 4, 16, 64), 20), ((32, 32, 4, 1, 32, 8, 32, 16), 3)):
        e, _, _ = _engine(*args)
        memory = ResponderModel(addr_width=16, max_burst=e.max_burst, latency=lat)
        fired = network_cycles(e, memory, {"i": [0] * (2 * e.positions)}, {}, {},
                               2 * e.groups * e.positions)
        assert fired[-1] == e.cycles(2, lat)


def test_rejects_bad_parameters():
    w, b = [[1, 2, 3, 4]] * 4, [0] * 4
    ok = dict(tokens=2, time_steps=2, weight_bits=8, acc_bits=12)
    with pytest.raises(ValueError, match=r"beat_bits \(16\) must divide a tile row of pe \* simd"):
        LinearEngine(w, b, pe=1, simd=1, beat_bits=16, **ok)
    with pytest.raises(ValueError, match=r"pe \(3\) must divide 4"):
        LinearEngine(w, b, pe=3, **ok)
    with pytest.raises(ValueError, match="must fit addr_bits"):
        LinearEngine(w, b, pe=2, simd=1, beat_bits=16, base_addr=255, addr_bits=8, **ok)
    with pytest.raises(TypeError, match="max_burst must be an integer >= 2, not 0"):
        LinearEngine(w, b, pe=2, beat_bits=16, max_burst=0, **ok)
    with pytest.raises(ValueError, match="max_burst must be a power of two, not 12"):
        LinearEngine(w, b, pe=2, beat_bits=16, max_burst=12, **ok)
    with pytest.raises(ValueError, match="simd must be 1 in event mode, not 2"):
        LinearEngine(w, b, pe=2, simd=2, beat_bits=16, mode="event", **ok)
    with pytest.raises(ValueError, match=r"tokens \* time_steps must be >= 3"):
        LinearEngine(w, b, pe=2, beat_bits=16, tokens=2, time_steps=1, weight_bits=8,
                     acc_bits=12)
    with pytest.raises(ValueError, match="mode must be one of 'dense', 'event', not 'sparse'"):
        LinearEngine(w, b, pe=2, beat_bits=16, mode="sparse", **ok)
    e = LinearEngine(w, b, pe=2, beat_bits=16, mode="event", **ok)
    assert e.ops_per_tile([0, 3, 1, 4]) == 1 + 3 + 1 + 4
    assert e.stages == 3  # the encoder's address register, the tile read, the tree


RESOURCE_DESIGNS = {
    "engine 64->32 pe4 simd8 w16": lambda: _engine(32, 64, 16, 4, 4, 8, 16, 64)[0],
    "engine 384->48 pe8 simd16 w16": lambda: _engine(48, 384, 64, 4, 8, 16, 16, 64)[0],
    "event engine 384->48 pe16 w16": lambda: _engine(48, 384, 64, 4, 16, 1, 16, 64,
                                                     mode="event")[0],
}


@pytest.mark.slow
@pytest.mark.parametrize("family", ["ecp5"])
@pytest.mark.parametrize("name", list(RESOURCE_DESIGNS))
def test_resource_estimate_against_yosys(name, family):
    block = RESOURCE_DESIGNS[name]()
    check_estimate(name, block, family, yosys_stats()(block, family))
