"""ResidualAdd (the membrane residual join, with and without its skid register) against plain
integer addition, under gaps and backpressure on every input and the output, with its cycle
model checked beat by beat."""

import pytest
import torch

from rtl_templates.common import pack_values
from rtl_templates.residual_add import ResidualAdd
from sim.block_sim import verify_block


def _values(g, width, shape):
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    return torch.randint(lo, hi + 1, shape, generator=g)


@pytest.mark.sim
@pytest.mark.parametrize("skid", [False, True], ids=["plain", "skid"])
@pytest.mark.parametrize("widths,lanes", [((10, 8, 9), 4), ((12, 12), 3)])
def test_residual_add(simulator, widths, lanes, skid):
    g = torch.Generator().manual_seed(len(widths))
    shape = (30, 4, 12)  # tokens, T, channels
    xs = [_values(g, w, shape) for w in widths]
    out_width = max(widths) + 2
    block = ResidualAdd(widths, out_width, lanes, skid=skid)
    inputs = {f"i{k}": pack_values(x, w, lanes) for k, (x, w) in enumerate(zip(xs, widths, strict=True))}
    expected = {"o": pack_values(sum(xs), out_width, lanes)}
    verify_block(block, inputs, expected, simulator=simulator, seed=4, gap=0.3,
                 backpressure=0.3, tag="radd")


@pytest.mark.sim
@pytest.mark.parametrize("skid", [False, True], ids=["plain", "skid"])
def test_residual_add_extremes(verilator, skid):
    shape = (4, 2, 4)
    lo = torch.full(shape, -(1 << 7))
    hi = torch.full(shape, (1 << 7) - 1)
    block = ResidualAdd((8, 8, 8), 10, 2, skid=skid)
    for a, b, c in ((lo, lo, lo), (hi, hi, hi), (hi, lo, hi)):
        run = verify_block(block, {"i0": pack_values(a, 8, 2), "i1": pack_values(b, 8, 2),
                                   "i2": pack_values(c, 8, 2)},
                           {"o": pack_values(a + b + c, 10, 2)}, simulator=verilator, tag="radd")
        assert run.cycles == 16 + 1  # one beat per cycle plus the output register


def test_residual_add_rejects_bad_parameters():
    with pytest.raises(ValueError, match="2 or 3 inputs"):
        ResidualAdd((8,), 9, 2)
    with pytest.raises(ValueError, match="out_width must be >="):
        ResidualAdd((8, 12), 10, 2)
