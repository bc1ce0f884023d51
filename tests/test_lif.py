"""LIF neurons (float and integer) against SpikingJelly's LIFNode equations, written out here
step by step in plain Python: tau = 2, decay_input, hard reset to 0, `>=` threshold, V0 = 0."""

import math
import random

import pytest
import torch

from quant import golden
from quant.model import LIF, spike


def reference_lif(xs: list[float], vth: float, tau: float = 2.0) -> list[int]:
    """SpikingJelly LIFNode (decay_input=True, v_reset=0): one neuron, one step at a time."""
    v, out = 0.0, []
    for x in xs:
        h = v + (x - v) / tau  # neuronal_charge
        s = 1 if h >= vth else 0  # neuronal_fire (Heaviside, >=)
        v = 0.0 if s else h  # hard reset to v_reset = 0
        out.append(s)
    return out


def reference_int_lif(xs: list[int], vth: int, input_shift: int = 0) -> tuple[list[int], list[int]]:
    """docs/arithmetic.md: X' = X << shift; H = floor((X' + V) / 2); S = H >= vth; V = S ? 0 : H.

    Returns (spikes, every H) so the state can be compared too.
    """
    v, out, hs = 0, [], []
    for x in xs:
        h = ((x << input_shift) + v) // 2  # Python // floors toward minus infinity
        s = 1 if h >= vth else 0
        v = 0 if s else h
        out.append(s)
        hs.append(h)
    return out, hs


@pytest.mark.parametrize("vth", [1.0, 0.5, 0.3])
def test_float_lif_matches_spikingjelly_equations(vth):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 5, 7, generator=g, dtype=torch.float64) * 1.5 + 0.6
    got = LIF(vth)(x)
    n_spikes = 0
    for i in range(5):
        for j in range(7):
            want = reference_lif(x[:, i, j].tolist(), vth)
            assert got[:, i, j].tolist() == want, (i, j)
            n_spikes += sum(want)
    assert 0 < n_spikes < x.numel()  # the data exercise both outcomes


def test_float_lif_fires_exactly_at_threshold():
    # H = (0 + 2) / 2 = 1.0 >= 1.0 fires; then V resets to 0: H = 0.99 does not.
    x = torch.tensor([[2.0], [1.98], [1.98]], dtype=torch.float64)
    assert LIF(1.0)(x).flatten().tolist() == [1.0, 0.0, 1.0]


def test_surrogate_gradient_is_sigmoid_derivative():
    x = torch.tensor([-1.0, -0.25, 0.0, 0.25, 1.0], dtype=torch.float64, requires_grad=True)
    s = spike(x, 4.0)
    assert s.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    s.sum().backward()
    sg = torch.sigmoid(4.0 * x.detach())
    assert torch.allclose(x.grad, 4.0 * sg * (1 - sg))
    assert x.grad[2] == pytest.approx(1.0)  # 4 * 0.5 * 0.5


@pytest.mark.parametrize("input_shift", [0, 1, 2])
def test_integer_lif_matches_reference(input_shift):
    rng = random.Random(7 + input_shift)
    T, C = 6, 40
    xs = [[rng.randint(-300, 300) for _ in range(C)] for _ in range(T)]
    vth = [rng.randint(1, 200) for _ in range(C)]
    got = golden.lif(torch.tensor(xs), torch.tensor(vth), input_shift)
    total = 0
    for c in range(C):
        want, _ = reference_int_lif([xs[t][c] for t in range(T)], vth[c], input_shift)
        assert got[:, c].tolist() == want, c
        total += sum(want)
    assert 0 < total < T * C


def test_integer_lif_rounds_toward_minus_infinity():
    # X = -3 then 0: H = floor(-3/2) = -2 (not -1), then floor((0 - 2)/2) = -1.
    _, hs = reference_int_lif([-3, 0], vth=5)
    assert hs == [-2, -1]
    # 3 then 0 with vth 2: H = 1 (no spike), then floor((0 + 1)/2) = 0.
    assert golden.lif(torch.tensor([[3], [0], [4]]), torch.tensor([2])).flatten().tolist() == [0, 0, 1]


def test_integer_lif_state_width_is_checked():
    # vth 100 never fires on X = 60: H climbs 30, 45, 52, 56; 56 needs 7 signed bits.
    x = torch.full((4, 1), 60)
    golden.lif(x, torch.tensor([100]), state_bits=8)
    with pytest.raises(golden.WidthError):
        golden.lif(x, torch.tensor([100]), state_bits=6)  # X' = 60 itself leaves 6 bits


def test_integer_lif_tracks_float_lif_in_scale():
    """An integer LIF with vth = round(V_th / s) is the float LIF on X * s, up to the
    floor of the halving: with a fine scale the spike trains agree almost everywhere."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 2000, generator=g, dtype=torch.float64) + 0.8
    s = 1 / 256
    x_int = torch.round(x / s).to(torch.int64)
    want = LIF(1.0)(x_int.double() * s)
    got = golden.lif(x_int, torch.tensor(round(1.0 / s)))
    agree = float((got.double() == want).double().mean())
    assert agree > 0.99
    assert 0.1 < float(want.mean()) < 0.9


def test_attention_neuron_integer_equals_float():
    """V_th = 0.5 on an exact count is input_shift = 1, vth = 1 in integers: identical spikes."""
    g = torch.Generator().manual_seed(5)
    counts = torch.randint(0, 4, (6, 300), generator=g)
    want = LIF(0.5)(counts.double())
    got = golden.lif(counts, torch.tensor(1), input_shift=1)
    assert torch.equal(got.double(), want)
    assert torch.equal(got, (counts >= 1).to(torch.int64))  # fires iff the count is >= 1
    assert math.isclose(float(want.mean()), float((counts >= 1).double().mean()))
