"""LIFLinear (a LIF array fused with the dense spike linear reading it) against the golden
`quant.golden.lif` then `quant.golden.spike_linear`, under gaps and backpressure, with its
cycle model checked beat by beat and its closed-form cycle count against free flow."""

import pytest
import torch
from support import check_estimate, yosys_stats

from quant.golden import lif, spike_linear
from quant.ir import signed_bits
from rtl_templates.common import pack_values
from rtl_templates.lif_linear import LIFLinear
from sim.block_sim import verify_block


def _case(n_in, out, T, pe, simd, lanes, seed, in_width=9, shift=1, tokens=10):
    g = torch.Generator().manual_seed(seed)
    lo, hi = -(1 << (in_width - 1)), (1 << (in_width - 1)) - 1
    x = torch.randint(lo, hi + 1, (tokens, T, n_in), generator=g)
    x[1] = 0  # no spikes at all
    x[2] = hi  # the most spikes
    x[3] = lo  # the most negative membranes
    vth = torch.randint(1, max(2, (hi << shift) // 2), (n_in,), generator=g)
    state_bits = signed_bits(min(lo << shift, 0), max(hi << shift, int(vth.max()) - 1, 0))
    w = torch.randint(-127, 128, (out, n_in), generator=g)
    b = torch.randint(-3000, 3001, (out,), generator=g)
    acc = signed_bits(int((b + w.clamp(max=0).sum(1)).min()), int((b + w.clamp(min=0).sum(1)).max()))
    s = lif(x.transpose(0, 1), vth, shift).transpose(0, 1)  # golden over t: [N, T, C]
    y = spike_linear(s, w, b)
    block = LIFLinear(w.tolist(), b.tolist(), time_steps=T, weight_bits=8, acc_bits=acc,
                      pe=pe, simd=simd, lanes=lanes, in_width=in_width, vth=vth.tolist(),
                      input_shift=shift, state_bits=state_bits)
    return block, {"i": pack_values(x, in_width, lanes)}, {"o": pack_values(y, acc, pe)}


# in=40: three spike rows per step (16 + 16 + 8); pe=out, simd=16: one operation per beat;
# T=1: the halves swap every step; lanes 1 and 16: a bit or a whole row per write.
CASES = {
    "serial": dict(n_in=12, out=6, T=3, pe=1, simd=1, lanes=1, seed=1),
    "rows": dict(n_in=40, out=6, T=2, pe=2, simd=4, lanes=8, seed=2),
    "unroll": dict(n_in=16, out=4, T=1, pe=4, simd=16, lanes=16, seed=3),
    "digits-fc": dict(n_in=32, out=32, T=4, pe=2, simd=2, lanes=1, seed=4),
}


@pytest.mark.sim
@pytest.mark.parametrize("name", list(CASES))
def test_lif_linear(verilator, name):
    case = CASES[name]
    block, inputs, expected = _case(**case)
    run = verify_block(block, inputs, expected, simulator=verilator, tag="lifl")
    assert run.cycles == block.cycles(10)
    verify_block(block, inputs, expected, simulator=verilator, seed=case["seed"], gap=0.3,
                 backpressure=0.4, tag="lifl")
    verify_block(block, inputs, expected, simulator=verilator, seed=99, gap=0.7,
                 backpressure=0.05, tag="lifl")
    verify_block(block, inputs, expected, simulator=verilator, seed=98, gap=0.05,
                 backpressure=0.8, tag="lifl")


@pytest.mark.sim
def test_lif_linear_icarus_and_verilator(simulator):
    block, inputs, expected = _case(**{**CASES["rows"], "tokens": 4})
    verify_block(block, inputs, expected, simulator=simulator, seed=5, gap=0.3,
                 backpressure=0.3, tag="lifl")


def test_cycles_closed_form():
    block, _, _ = _case(**CASES["serial"])
    assert block.collect_cycles == 12 * 3  # in/lanes * T
    assert block.compute_cycles == 6 * 3 * 12  # out/pe * T * in/simd
    assert block.cycles_per_token() == 216
    assert block.cycles(3) == 36 + 216 + 2 * 216 + block.latency


def test_rejects_bad_parameters():
    w, b = [[1] * 12] * 4, [0] * 4
    ok = dict(time_steps=2, weight_bits=8, acc_bits=10, in_width=8, vth=[3] * 12,
              state_bits=10)
    LIFLinear(w, b, lanes=4, simd=2, **ok)
    with pytest.raises(ValueError, match=r"lanes \(5\) must divide 12"):
        LIFLinear(w, b, lanes=5, **ok)
    with pytest.raises(ValueError, match="lanes must divide 16, not 12"):
        LIFLinear(w, b, lanes=12, **ok)
    with pytest.raises(ValueError, match="simd must divide 16, not 6"):
        LIFLinear(w, b, lanes=1, simd=6, **ok)
    with pytest.raises(ValueError, match="vth must be >= 1 everywhere, not 0"):
        LIFLinear(w, b, lanes=1, **{**ok, "vth": [0] * 12})


RESOURCE_DESIGNS = {
    "32->32 T4 serial": dict(n_in=32, out=32, T=4, pe=1, simd=1, lanes=1, seed=6),
    "32->32 T4 pe2 simd2": CASES["digits-fc"],
}


@pytest.mark.parametrize("name", ["32->32 T4 serial"])
def test_resource_estimate_ice40(name):
    block, _, _ = _case(**RESOURCE_DESIGNS[name])
    check_estimate(name, block, "ice40", yosys_stats()(block, "ice40"))


@pytest.mark.slow
@pytest.mark.parametrize("family", ["ice40", "ecp5"])
@pytest.mark.parametrize("name", list(RESOURCE_DESIGNS))
def test_resource_estimate_against_yosys(name, family):
    block, _, _ = _case(**RESOURCE_DESIGNS[name])
    check_estimate(name, block, family, yosys_stats()(block, family))
