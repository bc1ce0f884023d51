"""Head against the golden quant.golden.head_logits and argmax_first over several foldings,
several images in a row (the logits must restart from the bias), under gaps and backpressure,
with its cycle model checked beat by beat and its closed-form cycle count in free flow."""

import pytest
import torch
from amaranth.hdl import Value
from support import check_estimate, yosys_stats

from quant.golden import argmax_first, head_logits
from quant.ir import signed_bits
from rtl_templates.common import pack_spikes
from rtl_templates.head import Head, result_layout
from sim.block_sim import verify_block

CLASSES = 10


def _weights(D, T, N, kind, seed):
    g = torch.Generator().manual_seed(seed)
    if kind == "random":
        w = torch.randint(-127, 128, (CLASSES, D), generator=g)
        b = torch.randint(-20_000, 20_001, (CLASSES,), generator=g)
    else:  # "extreme": all +127 / all -127 rows, large biases, and ties (classes 3 and 7)
        w = torch.tensor([[127 if k in (3, 7) or k % 2 == 0 else -127] * D for k in range(CLASSES)])
        b = torch.tensor([-100_000 if k in (0, 1) else 5000 if k == 9 else 1000 if k in (3, 7)
                          else 0 for k in range(CLASSES)])
        w[9] = -127
    lo = (b + T * N * w.clamp(max=0).sum(1)).min()
    hi = (b + T * N * w.clamp(min=0).sum(1)).max()
    return w, b, signed_bits(int(lo), int(hi))


def _images(images, T, N, D, seed):
    """[images, N, T, D] spikes: random images, with an all-zero and an all-one image."""
    g = torch.Generator().manual_seed(seed)
    s = (torch.rand(images, N, T, D, generator=g) < torch.rand(images, 1, 1, 1, generator=g)).long()
    s[1] = 0
    s[2] = 1
    return s


def _expected(s, w, b, acc_bits):
    logits = head_logits(s.permute(2, 0, 3, 1), w, b)  # golden layout [T, B, D, N]
    classes = argmax_first(logits)
    layout = result_layout(CLASSES, acc_bits)
    return [Value.cast(layout.const({"cls": int(c), "logits": lg.tolist()})).value
            for c, lg in zip(classes, logits, strict=True)], classes


CASES = {
    "fold": dict(D=12, T=2, N=3, pe=2, simd=3, weights="random", seed=1),
    "unroll-extreme": dict(D=12, T=1, N=2, pe=CLASSES, simd=12, weights="extreme", seed=2),
    "serial": dict(D=4, T=2, N=2, pe=1, simd=1, weights="random", seed=3),
    # Pipelined (ECP5 timing): the read registered, the tree registered every 2 levels.
    "unroll-extreme-pipelined": dict(D=12, T=1, N=2, pe=CLASSES, simd=12, weights="extreme",
                                     seed=2, pipelined=True),
}


def _case(name, images, seed):
    c = CASES[name]
    w, b, acc = _weights(c["D"], c["T"], c["N"], c["weights"], c["seed"])
    block = Head(w.tolist(), b.tolist(), time_steps=c["T"], tokens=c["N"], weight_bits=8,
                 acc_bits=acc, pe=c["pe"], simd=c["simd"], pipelined=c.get("pipelined", False),
                 mode=c.get("mode", "dense"))
    s = _images(images, c["T"], c["N"], c["D"], seed)
    expected, classes = _expected(s, w, b, acc)
    words = pack_spikes(s.reshape(images * c["N"], c["T"], c["D"]))
    if c.get("mode") == "event":  # each image's beat popcounts, in stream order
        return block, {"i": words}, {"o": expected}, classes, s.sum(-1).reshape(images, -1).tolist()
    return block, {"i": words}, {"o": expected}, classes


@pytest.mark.sim
@pytest.mark.parametrize("name", list(CASES))
def test_head(verilator, name):
    block, inputs, expected, classes = _case(name, 6, seed=CASES[name]["seed"])
    run = verify_block(block, inputs, expected, simulator=verilator, tag="head")
    assert run.cycles == block.cycles(6)
    fires = run.out_cycles["o"]
    assert [fires[k + 1] - fires[k] for k in range(5)] == [block.cycles_per_image()] * 5
    verify_block(block, inputs, expected, simulator=verilator, seed=4, gap=0.3,
                 backpressure=0.5, tag="head")
    verify_block(block, inputs, expected, simulator=verilator, seed=5, gap=0.05,
                 backpressure=0.9, tag="head")
    if name.startswith("unroll-extreme"):
        # The directed images: all-zero spikes -> the biases decide (class 9);
        # all-one -> classes 3 and 7 tie at the maximum and the first wins.
        assert classes[1].item() == 9 and classes[2].item() == 3


# Event mode: D = 20 spans two of the priority encoder's 16-bit chunks.
EVENT_CASES = {
    "event-fold": dict(D=12, T=2, N=3, pe=2, simd=1, weights="random", seed=4, mode="event"),
    "event-extreme-pipelined": dict(D=20, T=1, N=2, pe=5, simd=1, weights="extreme", seed=2,
                                    mode="event", pipelined=True),
}
CASES.update(EVENT_CASES)


@pytest.mark.sim
@pytest.mark.parametrize("name", list(EVENT_CASES))
def test_head_event(verilator, name):
    """Event mode: bit-exact, the model (reading the beats) beat by beat under gaps and
    backpressure, the closed form per image from the beats' popcounts in free flow."""
    block, inputs, expected, classes, counts = _case(name, 6, seed=CASES[name]["seed"])
    run = verify_block(block, inputs, expected, words=True, simulator=verilator, tag="head_ev")
    assert run.cycles == block.cycles(6, counts)
    fires = run.out_cycles["o"]
    assert [fires[k + 1] - fires[k] for k in range(5)] == [
        block.cycles_per_image(c) for c in counts[1:]]
    assert block.cycles_per_image(counts[1]) == block.beats + block.stages + CLASSES + 2
    verify_block(block, inputs, expected, words=True, simulator=verilator, seed=4, gap=0.3,
                 backpressure=0.5, tag="head_ev")
    verify_block(block, inputs, expected, words=True, simulator=verilator, seed=5, gap=0.05,
                 backpressure=0.9, tag="head_ev")
    if CASES[name]["weights"] == "extreme":
        assert classes[1].item() == 9 and classes[2].item() == 3


def test_head_event_figures():
    w, b = [[1, -1, 2, 0]] * 10, [0] * 10
    block = Head(w, b, time_steps=2, tokens=3, weight_bits=8, acc_bits=8, pe=2, mode="event")
    assert block.stages == 3 and block.beat_ops(0) == 1 and block.beat_ops(3) == 5 * 3
    assert block.cycles_per_image([0, 1, 4, 0, 0, 2]) == (1 + 5 + 20 + 1 + 1 + 10) + 3 + 10 + 2
    with pytest.raises(ValueError, match="spike_counts must be 6 counts in"):
        block.cycles_per_image([0, 1])
    with pytest.raises(ValueError, match="simd must be 1 in event mode, not 2"):
        Head(w, b, time_steps=2, tokens=3, weight_bits=8, acc_bits=8, simd=2, mode="event")
    with pytest.raises(ValueError, match="mode must be one of 'dense', 'event', not 'sparse'"):
        Head(w, b, time_steps=2, tokens=3, weight_bits=8, acc_bits=8, mode="sparse")


@pytest.mark.sim
def test_head_icarus_and_verilator(simulator):
    block, inputs, expected, _ = _case("fold", 3, seed=11)
    verify_block(block, inputs, expected, simulator=simulator, seed=6, gap=0.3,
                 backpressure=0.3, tag="head")


def test_result_layout():
    layout = result_layout(10, 12)
    assert layout.size == 4 + 10 * 12
    word = Value.cast(layout.const({"cls": 9, "logits": [-1] + [0] * 9})).value
    assert word == 9 | (0xFFF << 4)  # cls in the low bits, then logits[0], logits[1], ...


def test_head_rejects_bad_parameters():
    w, b = [[1, -1, 2, 0]] * 10, [0] * 10
    ok = dict(time_steps=2, tokens=3, weight_bits=8, acc_bits=8)
    with pytest.raises(ValueError, match=r"pe \(3\) must divide 10"):
        Head(w, b, pe=3, **ok)
    with pytest.raises(ValueError, match=r"simd \(3\) must divide 4"):
        Head(w, b, simd=3, **ok)
    # bias + T*N * [-1, 3] = [-6, 18]
    with pytest.raises(ValueError, match=r"acc_bits must be >= 6 \(outputs span \[-6, 18\]\), not 5"):
        Head(w, b, time_steps=2, tokens=3, weight_bits=8, acc_bits=5)
    with pytest.raises(TypeError, match="tokens must be an integer >= 1, not None"):
        Head(w, b, time_steps=2, tokens=None, weight_bits=8, acc_bits=8)
    with pytest.raises(ValueError, match="weight must fit signed 4 bits, not -9"):
        Head([[-9, 0, 0, 0]] * 10, b, time_steps=1, tokens=1, weight_bits=4, acc_bits=8)


RESOURCE_DESIGNS = {  # (D, T, N, pe, simd): block RAM, soft-logic ROM, full unroll
    "64 pe2 simd4": (64, 4, 16, 2, 4),
    "32 pe5 simd2": (32, 4, 16, 5, 2),
    "64 pe10 simd8": (64, 4, 16, 10, 8),
}


@pytest.mark.slow
@pytest.mark.parametrize("family", ["ice40", "ecp5"])
@pytest.mark.parametrize("name", list(RESOURCE_DESIGNS))
def test_resource_estimate_against_yosys(name, family):
    D, T, N, pe, simd = RESOURCE_DESIGNS[name]
    g = torch.Generator().manual_seed(0)
    w = torch.randint(-127, 128, (CLASSES, D), generator=g)
    b = torch.randint(-20_000, 20_001, (CLASSES,), generator=g)
    acc = signed_bits(int((b + T * N * w.clamp(max=0).sum(1)).min()),
                      int((b + T * N * w.clamp(min=0).sum(1)).max()))
    block = Head(w.tolist(), b.tolist(), time_steps=T, tokens=N, weight_bits=8, acc_bits=acc,
                 pe=pe, simd=simd)
    check_estimate(f"head {name}", block, family, yosys_stats()(block, family))
