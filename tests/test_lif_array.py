"""LIFArray against the golden integer LIF (quant.golden.lif), under gaps and backpressure,
with its cycle model checked beat by beat."""

import random

import pytest
import torch

from quant.golden import lif
from quant.ir import signed_bits
from rtl_templates.common import pack_spikes, pack_values
from rtl_templates.lif_array import LIFArray
from sim.block_sim import verify_block


def _case(channels, lanes, T, in_width, shift, tokens, seed, repeat=False, kind="random",
          storage="registers", pipelined=False):
    g = torch.Generator().manual_seed(seed)
    lo, hi = -(1 << (in_width - 1)), (1 << (in_width - 1)) - 1
    steps = 1 if repeat else T
    if kind == "random":
        x = torch.randint(lo, hi + 1, (tokens, steps, channels), generator=g)
    elif kind == "zero":
        x = torch.zeros(tokens, steps, channels, dtype=torch.int64)
    elif kind == "max":
        x = torch.full((tokens, steps, channels), hi, dtype=torch.int64)
    else:  # "min"
        x = torch.full((tokens, steps, channels), lo, dtype=torch.int64)
    vth = torch.randint(1, max(2, (hi << shift) // 2), (channels,), generator=g)
    state_bits = signed_bits(min(lo << shift, 0), max(hi << shift, int(vth.max()) - 1, 0))
    xt = x.expand(tokens, T, channels) if repeat else x
    spikes = lif(xt.transpose(0, 1), vth, shift).transpose(0, 1)  # golden over t: [T, N, C]
    block = LIFArray(channels=channels, lanes=lanes, time_steps=T, in_width=in_width,
                     vth=vth.tolist(), input_shift=shift, state_bits=state_bits, repeat=repeat,
                     storage=storage, pipelined=pipelined)
    return block, pack_values(x, in_width, lanes), pack_spikes(spikes)


@pytest.mark.sim
@pytest.mark.parametrize("channels,lanes,T,in_width,shift,repeat", [
    (8, 2, 4, 10, 0, False),
    (12, 3, 5, 7, 1, False),
    (16, 16, 1, 9, 0, False),
    (6, 1, 3, 12, 0, True),
])
def test_lif_array_random(verilator, channels, lanes, T, in_width, shift, repeat):
    block, words, spikes = _case(channels, lanes, T, in_width, shift, 40, seed=channels,
                                 repeat=repeat)
    verify_block(block, {"i": words}, {"o": spikes}, simulator=verilator,
                 seed=channels, gap=0.3, backpressure=0.3, tag="lif")


@pytest.mark.sim
@pytest.mark.parametrize("channels,lanes,T,repeat", [(8, 2, 4, False), (36, 4, 3, False),
                                                     (16, 1, 2, True)])
def test_lif_array_block_storage(simulator, channels, lanes, T, repeat):
    block, words, spikes = _case(channels, lanes, T, 9, 0, 12, seed=channels, repeat=repeat,
                                 storage="block")
    run = verify_block(block, {"i": words}, {"o": spikes}, simulator=simulator,
                       seed=channels, gap=0.3, backpressure=0.3, tag="lifb")
    free = verify_block(block, {"i": words}, {"o": spikes}, simulator=simulator, tag="lifb")
    assert free.cycles == 12 * block.cycles_per_token() < run.cycles


@pytest.mark.sim
@pytest.mark.parametrize("channels,lanes,T,repeat,storage", [
    (24, 2, 2, False, "registers"),  # 12 groups, T = 2: group advances two cycles apart
    (40, 1, 3, False, "block"),
    (18, 3, 4, True, "registers"),
])
def test_lif_array_pipelined_thresholds(verilator, channels, lanes, T, repeat, storage):
    """The ECP5 build (thresholds from a ROM read a cycle ahead): bit-exact and its cycle
    model exact under gaps and backpressure, the same free-flow cycles as without."""
    block, words, spikes = _case(channels, lanes, T, 9, 0, 10, seed=channels, repeat=repeat,
                                 storage=storage, pipelined=True)
    assert block._registered_vth
    verify_block(block, {"i": words}, {"o": spikes}, simulator=verilator,
                 seed=channels, gap=0.3, backpressure=0.3, tag="lifp")
    free = verify_block(block, {"i": words}, {"o": spikes}, simulator=verilator, tag="lifp")
    assert free.cycles == 10 * block.cycles_per_token()


@pytest.mark.sim
@pytest.mark.parametrize("kind", ["zero", "max", "min"])
@pytest.mark.parametrize("pipelined", [False, True])
def test_lif_array_edge_cases(verilator, kind, pipelined):
    """Extreme inputs; pipelined, the membranes are cleared after each token's last step
    (two groups: no threshold ROM) instead of read as 0 at its first."""
    block, words, spikes = _case(8, 4, 4, 8, 0, 6, seed=1, kind=kind, pipelined=pipelined)
    verify_block(block, {"i": words}, {"o": spikes}, simulator=verilator, seed=2,
                 gap=0.2, backpressure=0.2, tag="lif")


@pytest.mark.sim
def test_lif_array_icarus_and_free_flow_cycles(simulator):
    block, words, spikes = _case(8, 2, 4, 10, 0, 10, seed=5)
    run = verify_block(block, {"i": words}, {"o": spikes}, simulator=simulator, tag="lif")
    # Free flow: the closed-form estimate is exact.
    assert run.cycles == 10 * block.cycles_per_token()


def test_lif_array_rejects_bad_parameters():
    with pytest.raises(ValueError, match="lanes"):
        LIFArray(channels=8, lanes=3, time_steps=4, in_width=8, vth=[1] * 8, state_bits=10)
    with pytest.raises(ValueError, match="vth must have 8 entries"):
        LIFArray(channels=8, lanes=2, time_steps=4, in_width=8, vth=[1] * 7, state_bits=10)
    with pytest.raises(ValueError, match="vth must be >= 1"):
        LIFArray(channels=2, lanes=2, time_steps=4, in_width=8, vth=[0, 1], state_bits=10)
    with pytest.raises(ValueError, match="lanes must divide 16 with block storage"):
        LIFArray(channels=6, lanes=3, time_steps=4, in_width=8, vth=[1] * 6, state_bits=10,
                 storage="block")
    with pytest.raises(ValueError, match="storage must be one of"):
        LIFArray(channels=6, lanes=3, time_steps=4, in_width=8, vth=[1] * 6, state_bits=10,
                 storage="lut")
    with pytest.raises(TypeError, match="time_steps must be an integer"):
        LIFArray(channels=2, lanes=2, time_steps=0, in_width=8, vth=[1, 1], state_bits=10)


def test_seeded_inputs_differ():
    # Guards the test generator itself: different seeds give different stimulus.
    assert _case(8, 2, 4, 10, 0, 5, seed=1)[1] != _case(8, 2, 4, 10, 0, 5, seed=2)[1]
    random.Random(0)


def test_lif_lanes_takes_exactly_one_of_first_and_last():
    from amaranth import Module, Signal

    from rtl_templates.lif_array import lif_lanes, membranes

    v = membranes(1, 8)
    for when in ({}, {"first": Signal(), "last": Signal()}):
        with pytest.raises(ValueError, match="exactly one of first and last"):
            lif_lanes(Module(), [Signal(4)], v, [Signal(8)], step=Signal(), input_shift=0,
                      **when)
