"""The memory port and MemPortRAM: data under random request gaps and read backpressure (nothing
lost, duplicated or reordered), and its cycle model checked beat by beat in the same environment."""

import random

import pytest

from rtl_templates.memport import (
    MemPortRAM,
    MemPortSignature,
    pack_request,
    request_layout,
    unpack_request,
)
from rtl_templates.memport_pipelined import PipelinedMemPortRAM
from rtl_templates.timing import run_single
from sim.block_sim import verify_block


def _traffic(rng, ram: MemPortRAM, words: int, reads: int):
    """Write bursts over the first `words` words, then random read bursts inside them."""
    aw, mb = ram.port_signature.addr_width, ram.max_burst
    mem = [rng.randrange(1 << ram.data_width) for _ in range(words)]
    req, w, r = [], [], []
    addr = 0
    while addr < words:
        beats = min(rng.randint(1, mb), words - addr)
        req.append(pack_request(addr, beats, True, aw, mb))
        w += mem[addr:addr + beats]
        addr += beats
    for _ in range(reads):
        beats = rng.randint(1, mb)
        start = rng.randrange(words - beats + 1)
        req.append(pack_request(start, beats, False, aw, mb))
        r += mem[start:start + beats]
    return req, w, r


@pytest.mark.sim
@pytest.mark.parametrize("latency,interval,period,refresh", [(7, 2, 97, 9)])
def test_memport_ram_under_gaps_and_backpressure(verilator, latency, interval, period, refresh):
    ram = MemPortRAM(data_width=16, depth=256, max_burst=16, latency=latency, interval=interval,
                     refresh_period=period, refresh_cycles=refresh)
    req, w, r = _traffic(random.Random(latency), ram, words=200, reads=40)
    run = verify_block(ram, {"req": req, "w": w}, {"r": r}, words=True, simulator=verilator,
                       seed=latency, gap=0.3, backpressure=0.4, tag="memport")
    assert run.sim.data["outputs"]["r"] == r


@pytest.mark.sim
@pytest.mark.parametrize("latency,interval,period,refresh,buffer,row_words,row_cycles",
                         [(4, 1, 0, 0, 8, 0, 0), (9, 2, 131, 15, 4, 32, 3)])
def test_pipelined_memport_ram_under_gaps_and_backpressure(verilator, latency, interval, period,
                                                           refresh, buffer, row_words,
                                                           row_cycles):
    """Random bursts (the second case with row changes every 32 words, some inside a
    burst): every word right, the model exact on every beat."""
    ram = PipelinedMemPortRAM(data_width=16, depth=256, max_burst=16, latency=latency,
                              interval=interval, refresh_period=period, refresh_cycles=refresh,
                              buffer=buffer, row_words=row_words, row_cycles=row_cycles)
    req, w, r = _traffic(random.Random(latency + 1), ram, words=200, reads=40)
    run = verify_block(ram, {"req": req, "w": w}, {"r": r}, words=True, simulator=verilator,
                       seed=latency + 1, gap=0.3, backpressure=0.4, tag="memport")
    assert run.sim.data["outputs"]["r"] == r


def test_pipelined_memport_ram_row_changes_cost_row_cycles():
    """Two 8-word bursts over words 4 .. 19 with rows of 8 words: the stream pays
    row_cycles twice (entering word 8 and word 16), nothing else changes."""
    req = [pack_request(4, 8, False, 6, 8), pack_request(12, 8, False, 6, 8)]

    def fired(**rows):
        ram = PipelinedMemPortRAM(data_width=8, depth=64, max_burst=8, latency=9, buffer=9,
                                  **rows)
        return run_single(ram.model(), {"req": 2, "w": 0}, {"r": 16}, in_words={"req": req})["r"]

    flat, rowed = fired(), fired(row_words=8, row_cycles=3)
    assert rowed == [c + 3 * ((k + 4) // 8) for k, c in enumerate(flat)]


def test_pipelined_memport_ram_streams_back_to_back_bursts():
    """Bursts overlap: 4 bursts of 8 words come out as 32 consecutive cycles after the
    first word, where MemPortRAM pays latency - 1 between bursts."""
    latency = 9
    req = [pack_request(8 * k, 8, False, 6, 8) for k in range(4)]
    pipelined = PipelinedMemPortRAM(data_width=8, depth=64, max_burst=8, latency=latency,
                                    buffer=latency)
    got = run_single(pipelined.model(), {"req": 4, "w": 0}, {"r": 32}, in_words={"req": req})["r"]
    assert got == [1 + latency + k for k in range(32)]
    plain = MemPortRAM(data_width=8, depth=64, max_burst=8, latency=latency)
    got = run_single(plain.model(), {"req": 4, "w": 0}, {"r": 32}, in_words={"req": req})["r"]
    assert got[-1] == 1 + latency + 31 + 3 * (latency - 1)


def test_memport_ram_model_free_flowing_latency_and_rate():
    """Free flowing: first beat `latency` cycles after its request, then one per `interval`."""
    for latency, interval in ((2, 1), (5, 3)):
        ram = MemPortRAM(data_width=8, depth=64, max_burst=8, latency=latency, interval=interval)
        req = [pack_request(0, 8, False, 6, 8)]
        got = run_single(ram.model(), {"req": 1, "w": 0}, {"r": 8}, in_words={"req": req})["r"]
        # The request fires in cycle 1.
        assert got == [1 + latency + k * interval for k in range(8)]


def test_request_packing_matches_the_layout():
    layout = request_layout(10, 32)
    for addr, beats, write in ((0, 1, False), (1023, 32, True), (517, 9, False)):
        word = pack_request(addr, beats, write, 10, 32)
        const = layout.const({"addr": addr, "count": beats - 1, "write": int(write)})
        assert const.as_value().value == word
        assert unpack_request(word, 10, 32) == (addr, beats, write)


def test_memport_rejects_bad_parameters():
    with pytest.raises(ValueError, match="max_burst must be a power of two"):
        MemPortSignature(addr_width=8, data_width=16, max_burst=12)
    with pytest.raises(ValueError, match="depth must be a power of two"):
        MemPortRAM(data_width=16, depth=100)
    with pytest.raises(TypeError, match="latency must be an integer >= 2"):
        MemPortRAM(data_width=16, depth=64, latency=1)
    with pytest.raises(ValueError, match="refresh_cycles must be 1 .."):
        MemPortRAM(data_width=16, depth=64, refresh_period=10, refresh_cycles=10)
    with pytest.raises(TypeError, match="latency must be an integer >= 4"):
        PipelinedMemPortRAM(data_width=16, depth=64, latency=3)
    with pytest.raises(ValueError, match="beats must be 1 .. 8"):
        pack_request(0, 9, False, 6, 8)
