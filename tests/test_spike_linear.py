"""SpikeLinear against the golden quant.golden.spike_linear, dense and event-driven, over several
foldings, under gaps and backpressure, with its cycle model checked beat by beat and its
closed-form cycle count checked against free-flow simulation.

Each design is one Verilator build (the weights are in the Verilog), so each case streams
random tokens and the directed tokens (all-zero, all-one spikes) through the same design.
"""

import pytest
import torch
from support import check_estimate, yosys_stats

from quant.golden import spike_linear
from quant.ir import signed_bits
from rtl_templates.common import pack_spikes, pack_values
from rtl_templates.gated_sum import weight_rows
from rtl_templates.spike_linear import SpikeLinear
from sim.block_sim import verify_block


def _weights(out, n_in, kind, seed):
    g = torch.Generator().manual_seed(seed)
    if kind == "random":
        w = torch.randint(-127, 128, (out, n_in), generator=g)
        b = torch.randint(-3000, 3001, (out,), generator=g)
    else:  # "extreme": rows of all +127 and all -127, biases far beyond the weights' range
        w = torch.tensor([[127 if o % 2 == 0 else -127] * n_in for o in range(out)])
        b = torch.tensor([(-1) ** o * 100_000 for o in range(out)])
    lo = (b + w.clamp(max=0).sum(1)).min()
    hi = (b + w.clamp(min=0).sum(1)).max()
    return w, b, signed_bits(int(lo), int(hi))


def _spikes(tokens, T, n_in, seed, rate=0.3):
    """Random tokens with an all-zero and an all-one token in the middle (state must carry)."""
    g = torch.Generator().manual_seed(seed)
    s = (torch.rand(tokens, T, n_in, generator=g) < rate).long()
    s[1] = 0
    s[2] = 1
    if tokens > 4:
        s[4, 0] = 1  # one step all ones, the others random
        s[4, 1:] = 0
    return s


def _block(case):
    w, b, acc = _weights(case["out"], case["in"], case["weights"], case["seed"])
    block = SpikeLinear(w.tolist(), b.tolist(), time_steps=case["T"], weight_bits=8, acc_bits=acc,
                        pe=case["pe"], simd=case["simd"], mode=case["mode"],
                        pipelined=case.get("pipelined", False))
    return block, w, b


def _stimulus(block, w, b, tokens, seed, rate=0.3):
    s = _spikes(tokens, block.time_steps, block.in_features, seed, rate)
    expected = pack_values(spike_linear(s, w, b), block.acc_bits, block.pe)
    return s, {"i": pack_spikes(s)}, {"o": expected}


# in=12, out=6 and smaller: odd sizes; pe=out and simd=in: full unroll (a two-stage tree);
# pe=simd=1: full fold; T=1: the bubble between tokens; event in=40: the priority encoder's
# 16-bit chunks (16 + 16 + 8).
CASES = {
    "dense-fold": dict(mode="dense", **{"in": 12}, out=6, T=3, pe=2, simd=3, weights="random", seed=1),
    "dense-unroll-extreme": dict(mode="dense", **{"in": 12}, out=6, T=1, pe=6, simd=12,
                                 weights="extreme", seed=2),
    "dense-serial": dict(mode="dense", **{"in": 5}, out=3, T=2, pe=1, simd=1, weights="random", seed=3),
    "event-fold": dict(mode="event", **{"in": 12}, out=6, T=3, pe=3, simd=1, weights="random", seed=4),
    "event-unroll-extreme": dict(mode="event", **{"in": 40}, out=6, T=1, pe=6, simd=1,
                                 weights="extreme", seed=5),
    # T=1 with three groups: the next beat's word is the same slot until the last group.
    "event-T1-groups": dict(mode="event", **{"in": 20}, out=6, T=1, pe=2, simd=1,
                            weights="random", seed=8),
    # Pipelined (ECP5 timing): the read registered, the tree registered every 2 levels.
    "dense-unroll-extreme-pipelined": dict(mode="dense", **{"in": 12}, out=6, T=2, pe=6,
                                           simd=12, weights="extreme", seed=6, pipelined=True),
    "event-fold-pipelined": dict(mode="event", **{"in": 12}, out=6, T=3, pe=3, simd=1,
                                 weights="random", seed=7, pipelined=True),
}


@pytest.mark.sim
@pytest.mark.parametrize("name", list(CASES))
def test_spike_linear(verilator, name):
    case = CASES[name]
    block, w, b = _block(case)
    tokens = 12
    s, inputs, expected = _stimulus(block, w, b, tokens, seed=case["seed"])
    event = case["mode"] == "event"
    # Free flow: the closed-form count is exact (event mode: given the spike counts).
    run = verify_block(block, inputs, expected, words=event, simulator=verilator, tag="slin")
    counts = s.sum(-1).tolist() if event else None
    assert run.cycles == block.cycles(tokens, counts)
    verify_block(block, inputs, expected, words=event, simulator=verilator, seed=case["seed"],
                 gap=0.3, backpressure=0.4, tag="slin")
    verify_block(block, inputs, expected, words=event, simulator=verilator, seed=99,
                 gap=0.05, backpressure=0.8, tag="slin")


@pytest.mark.sim
@pytest.mark.parametrize("name", ["dense-fold", "event-fold"])
def test_spike_linear_icarus_and_verilator(simulator, name):
    case = CASES[name]
    block, w, b = _block(case)
    _, inputs, expected = _stimulus(block, w, b, 5, seed=7)
    verify_block(block, inputs, expected, words=case["mode"] == "event", simulator=simulator,
                 seed=8, gap=0.3, backpressure=0.3, tag="slin")


def test_event_cycles_follow_spike_counts():
    block, _, _ = _block(CASES["event-fold"])
    G = block.groups  # 2
    assert block.cycles_per_token([0, 0, 0]) == G * 3  # an empty step still emits the bias
    assert block.cycles_per_token([5, 0, 12]) == G * (5 + 1 + 12)
    dense, _, _ = _block(CASES["dense-fold"])
    assert dense.cycles_per_token() == 3 * 3 * 4  # groups * T * in/simd
    unroll, _, _ = _block(CASES["dense-unroll-extreme"])
    assert unroll.cycles_per_token() == 1 + 1  # T = 1: one bubble cycle per token
    with pytest.raises(ValueError, match="spike_counts must be given in event mode"):
        block.cycles_per_token()
    with pytest.raises(ValueError, match="spike_counts must be 3 counts"):
        block.cycles_per_token([1, 2, 13])


def test_memory_layout():
    w = [[1, -2, 3, -4], [5, 6, -7, 7]]
    block = SpikeLinear(w, [0, 0], time_steps=2, weight_bits=4, acc_bits=6, pe=2, simd=2)
    assert block.memory_shape() == (2, 2 * 2 * 4)
    # Row k: lane 0's two weights, then lane 1's (4 bits each, two's complement).
    assert weight_rows(block.weight, 2, 2, 4) == [0x6_5_E_1, 0x7_9_C_3]
    event = SpikeLinear(w, [0, 0], time_steps=2, weight_bits=4, acc_bits=6, pe=1, mode="event")
    assert event.memory_shape() == (2 * 4, 4)
    assert weight_rows(event.weight, 1, 1, 4)[:5] == [0x1, 0xE, 0x3, 0xC, 0x5]


def test_rejects_bad_parameters():
    w, b = [[1, 2, 3]] * 4, [0] * 4
    ok = dict(time_steps=2, weight_bits=8, acc_bits=10)
    with pytest.raises(ValueError, match=r"pe \(3\) must divide 4"):
        SpikeLinear(w, b, pe=3, **ok)
    with pytest.raises(ValueError, match=r"simd \(2\) must divide 3"):
        SpikeLinear(w, b, simd=2, **ok)
    with pytest.raises(ValueError, match="simd must be 1 in event mode, not 3"):
        SpikeLinear(w, b, simd=3, mode="event", **ok)
    with pytest.raises(ValueError, match="mode must be one of 'dense', 'event', not 'sparse'"):
        SpikeLinear(w, b, mode="sparse", **ok)
    with pytest.raises(ValueError, match="weight must fit signed 8 bits, not 200"):
        SpikeLinear([[200, 0, 0]] * 4, b, **ok)
    with pytest.raises(ValueError, match="bias must have 4 entries, not 3"):
        SpikeLinear(w, [0] * 3, **ok)
    with pytest.raises(ValueError, match=r"acc_bits must be >= 5 \(outputs span \[2, 8\]\), not 4"):
        SpikeLinear(w, [2] * 4, time_steps=2, weight_bits=8, acc_bits=4)
    with pytest.raises(ValueError, match="weight must be a non-empty"):
        SpikeLinear([1, 2, 3], b, **ok)
    with pytest.raises(TypeError, match="time_steps must be an integer >= 1, not 0"):
        SpikeLinear(w, b, time_steps=0, weight_bits=8, acc_bits=10)
    with pytest.raises(TypeError, match="pe must be an integer >= 1, not 1.5"):
        SpikeLinear(w, b, pe=1.5, **ok)


def _sized(n_in, out, T, pe, simd, mode, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randint(-127, 128, (out, n_in), generator=g)
    b = torch.randint(-2000, 2001, (out,), generator=g)
    acc = signed_bits(int((b + w.clamp(max=0).sum(1)).min()), int((b + w.clamp(min=0).sum(1)).max()))
    return SpikeLinear(w.tolist(), b.tolist(), time_steps=T, weight_bits=8, acc_bits=acc, pe=pe,
                       simd=simd, mode=mode)


RESOURCE_DESIGNS = {  # digits-tiny sizes; the last one's memory is small enough for soft logic
    "dense 64->32 pe2 simd4": lambda: _sized(64, 32, 4, 2, 4, "dense"),
    "dense 64->32 pe1 simd16": lambda: _sized(64, 32, 4, 1, 16, "dense"),
    "event 64->32 pe8": lambda: _sized(64, 32, 4, 8, 1, "event"),
    "dense 12->6 pe2 simd3": lambda: _sized(12, 6, 3, 2, 3, "dense"),
}


@pytest.mark.slow
@pytest.mark.parametrize("family", ["ice40", "ecp5"])
@pytest.mark.parametrize("name", list(RESOURCE_DESIGNS))
def test_resource_estimate_against_yosys(name, family):
    block = RESOURCE_DESIGNS[name]()
    check_estimate(name, block, family, yosys_stats()(block, family))
