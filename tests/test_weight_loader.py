"""WeightLoader: LOAD_WEIGHTS frames (made by hwgen.host.protocol) in, burst writes on the memory
port and one reply per frame out, under gaps on the byte stream and random stalls on req, w and
the replies: every request, word and reply byte exactly as predicted, nothing lost, duplicated
or written for a refused frame. Then the loader writes a LinearEngine's memory image into a
MemPortRAM (refresh gaps, one beat per two cycles) and the engine, reading its tiles from
there, computes bit-exact against quant.golden.spike_linear."""

from __future__ import annotations

import random

import pytest
import torch

from hwgen.host import protocol as P
from quant.golden import spike_linear
from quant.ir import signed_bits
from rtl_templates.common import pack_spikes
from rtl_templates.linear_engine import LinearEngine, memory_image, pack_engine_values
from rtl_templates.memport import MemPortRAM, WithMemory, pack_request
from rtl_templates.weight_loader import REPLY_BYTES, WeightLoader
from sim.block_sim import simulate_block
from sim.loader_sim import LoadThenRun


def _expect(loader: WeightLoader, frames: list[bytes], memory: dict | None = None):
    """What the loader must do for `frames`: its requests, write beats and reply bytes (and
    each frame's status), predicted with the host side's decoder (the board's checks in the
    board's order). `memory` (address -> word, missing words 0) is updated by the writes and
    answers the reads."""
    memory = {} if memory is None else memory
    req, w, replies, statuses = [], [], [], []
    for frame in frames:
        try:
            addr, words = P.decode_load_weights(frame, addr_width=loader.addr_width,
                                                data_width=loader.data_width,
                                                frame_words=loader.frame_words)
        except P.ProtocolError as err:
            statuses.append(err.status)
            replies += P.encode_error(err.cmd, err.status)
            continue
        statuses.append(P.OK)
        read = frame[1] == P.READ_WEIGHTS
        n = words if read else len(words)
        for k in range(0, n, loader.max_burst):
            beats = min(loader.max_burst, n - k)
            req.append(pack_request(addr + k, beats, not read, loader.addr_width,
                                    loader.max_burst))
        if read:
            got = [memory.get(addr + k, 0) for k in range(n)]
            replies += P.encode_response(P.READ_WEIGHTS, P.OK, b"".join(
                v.to_bytes(loader.word_bytes, "little") for v in got))
        else:
            memory.update({addr + k: v for k, v in enumerate(words)})
            replies += P.encode_response(P.LOAD_WEIGHTS, P.OK)
            w += words
    return req, w, replies, statuses


@pytest.mark.sim
def test_weight_loader_frames_under_stalls(verilator):
    loader = WeightLoader(addr_width=8, data_width=12, max_burst=4, frame_words=11, gap=40)
    rng = random.Random(3)
    image = [rng.randrange(1 << 12) for _ in range(40)]
    # words 231 .. 255: the last frame ends at the top of the 8-bit address space
    frames = P.load_weights_frames(image[:25], base_addr=231, data_width=12, frame_words=11)
    bad_crc = bytearray(P.load_weights_frames(image[25:], data_width=12, frame_words=11)[0])
    bad_crc[-1] ^= 0x10
    # 3 words and one byte: the checksum is right, the length not whole words
    ragged = P.encode_request(P.LOAD_WEIGHTS, P.load_weights_payload(0, [1, 2, 3], 12)[:-1])
    past_end = P.load_weights_frames([5, 6, 7], base_addr=254, data_width=12, frame_words=11)[0]
    wide = bytearray(P.load_weights_payload(9, [1, 2], 12))
    wide[-1] |= 0x10  # bit 12 of the second word
    frames += [bytes(bad_crc), ragged, past_end, P.encode_request(P.LOAD_WEIGHTS, bytes(wide))]
    frames += P.load_weights_frames(image[25:], base_addr=0, data_width=12, frame_words=11)
    frames.append(frames[0][:9])  # the line stops inside a frame: TIMEOUT
    req, w, replies, statuses = _expect(loader, frames)
    assert statuses == [P.OK] * 3 + [P.ERR_CHECKSUM, P.ERR_LENGTH, P.ERR_RANGE, P.ERR_RANGE,
                                     P.OK, P.OK, P.ERR_TIMEOUT]
    assert len(req) == 3 + 3 + 1 + 3 + 1  # bursts of at most 4 of frames of 11, 11, 3, 11, 4
    stream_bytes = [b for f in frames for b in f]
    for seed, gap, backpressure in ((1, 0.0, 0.0), (2, 0.3, 0.5)):
        run = simulate_block(loader, {"i": stream_bytes},
                             {"mem__req": req, "mem__w": w, "o": replies}, simulator=verilator,
                             seed=seed, gap=gap, backpressure=backpressure, tag="wloader")
        assert run.sim.data["outputs"]["mem__w"] == w
        if seed == 1:
            free_cycles = run.cycles
    # Free flowing, the loader takes a byte per cycle: the whole run is the bytes, the
    # writes, the replies and the final timeout.
    assert free_cycles < len(stream_bytes) + 2 * len(w) + 4 * len(req) \
        + REPLY_BYTES * len(frames) + loader.gap + 20


@pytest.mark.sim
def test_weight_loader_reads_back_what_it_wrote(verilator):
    """LOAD_WEIGHTS then READ_WEIGHTS frames into a MemPortRAM (latency 4, a beat every 3
    cycles, refresh gaps) in the top, under gaps on the bytes and stalls on the replies: the
    read replies carry the words written (and zeros where nothing was), bursts of 4 cut at
    any word; a READ_WEIGHTS past the end is a RANGE error, one of length 7 ends the run
    with a LENGTH error after the line went quiet."""
    loader = WeightLoader(addr_width=7, data_width=24, max_burst=4, frame_words=9, gap=48)
    ram = MemPortRAM(data_width=24, depth=128, max_burst=4, latency=4, interval=3,
                     refresh_period=53, refresh_cycles=5)
    rng = random.Random(8)
    image = [rng.randrange(1 << 24) for _ in range(30)]
    frames = P.load_weights_frames(image, base_addr=90, data_width=24, frame_words=9)
    frames += [P.read_weights_request(90, 30), P.read_weights_request(88, 5),
               P.read_weights_request(119, 9), P.read_weights_request(127, 1),
               P.read_weights_request(120, 9),
               P.encode_request(P.READ_WEIGHTS, bytes(7))]
    req, w, replies, statuses = _expect(loader, frames)
    assert statuses == [P.OK] * 8 + [P.ERR_RANGE, P.ERR_LENGTH]
    run = simulate_block(WithMemory(loader, ram), {"i": [b for f in frames for b in f]},
                         {"o": replies}, simulator=verilator, seed=9, gap=0.3,
                         backpressure=0.5, tag="wloader-ram")
    assert bytes(run.sim.data["outputs"]["o"]) == bytes(replies)


def _engine(seed: int):
    g = torch.Generator().manual_seed(seed)
    w = torch.randint(-127, 128, (6, 12), generator=g)
    b = torch.randint(-3000, 3001, (6,), generator=g)
    acc = signed_bits(int((b + w.clamp(max=0).sum(1)).min()),
                      int((b + w.clamp(min=0).sum(1)).max()))
    e = LinearEngine(w.tolist(), b.tolist(), tokens=4, time_steps=2, weight_bits=8,
                     acc_bits=acc, pe=2, simd=3, beat_bits=16, max_burst=8, base_addr=37,
                     addr_bits=8)
    return e, w, b


@pytest.mark.sim
def test_loaded_engine_bit_exact(verilator):
    """The loader fills a MemPortRAM (latency 5, a beat every 2 cycles, refresh gaps) with
    the engine's image in frames of 5 words (bursts of 8 cut by the frame size); then the
    engine reads its tiles from there: every output equals the golden model's."""
    e, w, b = _engine(1)
    words = memory_image(e)
    loader = WeightLoader(addr_width=8, data_width=16, max_burst=8, frame_words=5, gap=64)
    ram = MemPortRAM(data_width=16, depth=256, max_burst=8, latency=5, interval=2,
                     refresh_period=61, refresh_cycles=7)
    frames = P.load_weights_frames(words, base_addr=e.base_addr, data_width=16, frame_words=5)
    top = LoadThenRun(loader, e, ram, frames=len(frames))
    _, _, replies, statuses = _expect(loader, frames)
    assert statuses == [P.OK] * len(frames)
    g = torch.Generator().manual_seed(5)
    s = (torch.rand(3, e.tokens, e.time_steps, e.in_features, generator=g) < 0.3).long()
    ins, exp = [], []
    for m in range(3):
        ins += pack_spikes(s[m])
        exp += pack_engine_values(spike_linear(s[m], w, b).tolist(), e.acc_bits, e.pe)
    run = simulate_block(top, {"load_i": [x for f in frames for x in f], "i": ins},
                         {"load_o": replies, "o": exp}, simulator=verilator, seed=4, gap=0.3,
                         backpressure=0.4, tag="wloader-engine")
    assert run.sim.data["outputs"]["o"] == exp


def test_loader_rejects_bad_parameters():
    with pytest.raises(TypeError, match="gap must be an integer >= 2"):
        WeightLoader(addr_width=8, data_width=16, max_burst=4, gap=1)
    with pytest.raises(ValueError, match="length field"):
        WeightLoader(addr_width=8, data_width=16, max_burst=4, frame_words=40000, gap=8)
    with pytest.raises(ValueError, match="addr_width must be at most 32"):
        WeightLoader(addr_width=33, data_width=16, max_burst=4, gap=8)
    with pytest.raises(ValueError, match="max_burst must be a power of two"):
        WeightLoader(addr_width=8, data_width=16, max_burst=6, gap=8)


@pytest.mark.slow  # its own Verilator build of LiteDRAM's core
@pytest.mark.sim
def test_loaded_engine_through_litedram_bit_exact(verilator, generated):
    """The loader writes an engine's image (tiles straddling an SDRAM row) through the real
    controller into the chip model, in frames of 48 words (bursts of 32 and 16), under gaps
    on the byte stream and stalls on the replies; then the engine reads its weights from
    the SDRAM: bit-exact against quant.golden.spike_linear."""
    from sim.sdram_sim import simulate_loader_on_sdram

    g = torch.Generator().manual_seed(11)
    out, n_in, tokens, T = 16, 32, 4, 2
    w = torch.randint(-127, 128, (out, n_in), generator=g)
    b = torch.randint(-3000, 3001, (out,), generator=g)
    aw = generated.config.addr_width
    e = LinearEngine(w.tolist(), b.tolist(), tokens=tokens, time_steps=T, weight_bits=8,
                     acc_bits=16, pe=4, simd=4, beat_bits=16, max_burst=32,
                     base_addr=3 * 512 - 100, addr_bits=aw)
    loader = WeightLoader(addr_width=aw, data_width=16, max_burst=32, frame_words=48, gap=200)
    frames = P.load_weights_frames(memory_image(e), base_addr=e.base_addr, data_width=16,
                                   frame_words=48)
    _, _, replies, statuses = _expect(loader, frames)
    assert statuses == [P.OK] * len(frames)
    s = (torch.rand(2, tokens, T, n_in, generator=g) < 0.3).long()
    ins, exp = [], []
    for m in range(2):
        ins += pack_spikes(s[m])
        exp += pack_engine_values(spike_linear(s[m], w, b).tolist(), e.acc_bits, e.pe)
    d = simulate_loader_on_sdram(generated, loader, e, frames, replies, {"i": ins}, {"o": exp},
                                 seed=6, gap=0.3, backpressure=0.4)
    assert d["outputs"]["o"] == exp
    assert d["chip_commands"]["WRITE"] == len(memory_image(e))
    print(f"\nWeightLoader on LiteDRAM: {len(memory_image(e))} words in {len(frames)} frames "
          f"loaded by cycle {d['out_cycles']['load_o'][-1]}; build {d['build_seconds']:.0f} s, "
          f"run {d['sim_seconds']:.0f} s")


@pytest.mark.slow  # its own Verilator build of LiteDRAM's core; every byte over the UART pins
@pytest.mark.sim
def test_uart_loader_core_loads_and_reads_back_sdram(verilator, generated):
    """LoaderCore, the ULX3S loader top's logic, over its UART pins (8 cycles per bit): 80
    words in 3 frames, sent two at a time back to back (the host one frame ahead: the
    receive FIFO holds the second while the first is written and answered); the second
    is sent corrupted first (CHECKSUM, nothing written) and then intact; then two
    READ_WEIGHTS through LiteDRAM and the chip model return the words. Last, two frames
    back to back with a low stop bit in the third byte of the second, which arrives while
    the first is written and answered: the first OK, the second UART (once the line is
    quiet), and the memory is unchanged by the second."""
    from sim.sdram_sim import simulate_uart_loader

    rng = random.Random(12)
    image = [rng.randrange(1 << 16) for _ in range(80)]
    base = 3 * 512 - 30  # across an SDRAM row
    frames = P.load_weights_frames(image, base_addr=base, data_width=16, frame_words=32)
    bad = bytearray(frames[1])
    bad[20] ^= 0x04
    steps = [frames[0], bytes(bad), frames[1], frames[2],
             P.read_weights_request(base, 50), P.read_weights_request(base + 50, 30)]
    other = P.load_weights_frames(list(range(10)), base_addr=base + 100, data_width=16,
                                  frame_words=32)[0]
    dead = P.load_weights_frames([0xDEAD] * 5, base_addr=base, data_width=16,
                                 frame_words=32)[0]
    pipelined = [steps[0] + steps[1], steps[2] + steps[3], steps[4], steps[5],
                 other + dead, P.read_weights_request(base, 5)]
    aw = generated.config.addr_width
    loader = WeightLoader(addr_width=aw, data_width=16, max_burst=32, frame_words=32, gap=240)
    _, _, replies, statuses = _expect(loader, steps)
    assert statuses == [P.OK, P.ERR_CHECKSUM] + [P.OK] * 4
    replies += P.encode_response(P.LOAD_WEIGHTS, P.OK) + P.encode_error(0, P.ERR_UART)
    replies += P.encode_response(P.READ_WEIGHTS, P.OK, b"".join(
        v.to_bytes(2, "little") for v in image[:5]))
    reply_bytes = [12, 12, 6 + 100, 6 + 60, 12, 6 + 10]
    d = simulate_uart_loader(generated, pipelined, reply_bytes, divisor=8, frame_words=32,
                             max_burst=32, rx_fifo=16,
                             bad_stop_at=[None] * 4 + [len(other) + 2, None])
    assert bytes(d["received"]) == bytes(replies)
    got = P.read_weights_words(P.decode_response(bytes(d["received"][-94:-28])).payload, 16)
    assert got == image[50:]
    assert d["chip_commands"]["WRITE"] == 90
    print(f"\nLoaderCore over the UART pins: build {d['build_seconds']:.0f} s, "
          f"run {d['sim_seconds']:.0f} s")
