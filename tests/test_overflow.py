"""No accumulator leaves its declared width (docs/arithmetic.md §Widths).

Two angles: (1) every layer of each reference config is driven, on its own,
with the input that reaches its worst-case bound, and the declared width must
hold that value and be no wider than needed; (2) whole models run through
`golden.run(check_widths=True)`, including an extreme model whose neurons all
fire so every accumulator on the positive path sits exactly at its bound.
"""

from dataclasses import replace

import pytest
import torch

from quant import golden
from quant.config import REFERENCE_CONFIGS, SasaMode
from quant.ir import Conv3x3Layer, DWConvLayer, IntModel, LIFLayer, LinearLayer, derive_widths
from quant.random_model import random_int_model, random_pixels

CONFIGS = list(REFERENCE_CONFIGS)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Integer matmuls scale badly across threads on a shared 2-core machine (and pytest -n 2
    # already keeps both cores busy).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _fits(t: torch.Tensor, bits: int) -> bool:
    return bool(t.min() >= -(1 << (bits - 1)) and t.max() < (1 << (bits - 1)))


def _assert_width_is_tight(name: str, values: torch.Tensor, bits: int) -> None:
    """`values` holds the layer's extremes: they fit `bits` and do not fit `bits - 1`."""
    assert _fits(values, bits), f"{name}: [{int(values.min())}, {int(values.max())}] leaves {bits} bits"
    assert not _fits(values, bits - 1), f"{name}: {bits} bits declared, {bits - 1} would do"


def _extreme_rows(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """The output channels holding the lowest and the highest bound."""
    return torch.stack([lo.argmin(), hi.argmax()])


def _linear_extremes(layer: LinearLayer) -> torch.Tensor:
    """Drive the spike vectors that minimise and maximise the extreme output channels."""
    w = layer.weight
    want_lo, want_hi = layer.output_range()
    lo_row, hi_row = _extreme_rows(want_lo, want_hi)
    s = torch.stack([w[lo_row] < 0, w[hi_row] > 0]).to(torch.int64)  # [2, in]
    y = golden.spike_linear(s, w, layer.bias)  # [2, out]
    got = torch.stack([y[0, lo_row], y[1, hi_row]])
    assert got.tolist() == [int(want_lo.min()), int(want_hi.max())]
    return got


def _conv_extremes(layer: Conv3x3Layer) -> torch.Tensor:
    """A 3x3 input whose centre window selects all negative (positive) weights of a channel."""
    w = layer.weight  # [out, in, 3, 3]
    xmax = (1 << layer.pixel_bits) - 1 if layer.pixel_input else 1
    want_lo, want_hi = layer.output_range()
    lo_row, hi_row = _extreme_rows(want_lo, want_hi)
    x = torch.stack([w[lo_row] < 0, w[hi_row] > 0]).to(torch.int64) * xmax  # [2, in, 3, 3]
    y = golden.conv3x3(x, w, layer.bias)[:, :, 1, 1]  # centre output: [2, out]
    got = torch.stack([y[0, lo_row], y[1, hi_row]])
    assert got.tolist() == [int(want_lo.min()), int(want_hi.max())]
    return got


def _dwconv_extremes(layer: DWConvLayer) -> torch.Tensor:
    w = layer.weight  # [C, 3, 3]
    s = torch.stack([(w < 0), (w > 0)]).to(torch.int64)  # [2, C, 3, 3]: every channel at once
    y = golden.dwconv3x3(s, w, layer.bias)[:, :, 1, 1]  # [2, C]
    want_lo, want_hi = layer.output_range()
    assert torch.equal(y[0], want_lo) and torch.equal(y[1], want_hi)
    return y.flatten()


def _drive_lif(name: str, lif: LIFLayer, lo: torch.Tensor, hi: torch.Tensor, T: int) -> None:
    """Constant extreme inputs for T steps: the state must stay inside state_bits."""
    x = torch.stack([lo, hi, torch.zeros_like(hi)]).expand(T, 3, -1).clone()
    vth = lif.vth.reshape(1, -1) if lif.vth.numel() == x.shape[-1] else lif.vth
    golden.lif(x, vth, lif.input_shift, lif.state_bits, name)  # raises WidthError on overflow
    x_shifted = x << lif.input_shift
    assert _fits(x_shifted, lif.state_bits)


def _per_layer(model: IntModel) -> None:
    cfg = model.config
    T = cfg.time_steps
    for i, stage in enumerate(model.stem):
        ext = _conv_extremes(stage.conv)
        _assert_width_is_tight(f"stem.{i}.conv", ext, stage.conv.acc_bits)
        lo, hi = stage.conv.output_range()
        _drive_lif(f"stem.{i}.lif", stage.lif, lo, hi, T)
    ext = _conv_extremes(model.rpe)
    _assert_width_is_tight("rpe", ext, model.rpe.acc_bits)
    assert _fits(ext, model.u_bits)
    for b, blk in enumerate(model.blocks):
        for name in ("q", "k", "o", "fc1", "fc2"):
            layer = getattr(blk, name)
            _assert_width_is_tight(f"blocks.{b}.{name}", _linear_extremes(layer), layer.acc_bits)
        _assert_width_is_tight(f"blocks.{b}.dwc", _dwconv_extremes(blk.dwc), blk.dwc.acc_bits)
        for name, src in (("q_lif", blk.q), ("k_lif", blk.k), ("fc1_lif", blk.fc1)):
            lo, hi = src.output_range()
            _drive_lif(f"blocks.{b}.{name}", getattr(blk, name), lo, hi, T)
        # The attention neuron's worst case: a full count at every step.
        full = cfg.head_dim if cfg.sasa_mode == SasaMode.CHANNEL else cfg.tokens
        n = blk.agg_lif.channels
        _drive_lif(f"blocks.{b}.agg_lif", blk.agg_lif, torch.zeros(n, dtype=torch.int64),
                   torch.full((n,), full), T)


@pytest.mark.parametrize(("config", "weight_bits"), [(c, 8) for c in CONFIGS]
                         + [("digits-tiny", 4), ("cifar-mid", 4)])
def test_every_layer_at_its_worst_case(config, weight_bits):
    _per_layer(random_int_model(REFERENCE_CONFIGS[config], weight_bits=weight_bits, seed=11))


def _extreme_model(cfg, weight_bits: int = 8) -> IntModel:
    """All weights +qmax, biases 0, every threshold 1: every neuron fires at every step,
    so each accumulator on the positive path reaches its upper bound at interior tokens."""
    base = random_int_model(cfg, weight_bits=weight_bits, seed=0)
    qmax = (1 << (weight_bits - 1)) - 1

    def maxed(layer):
        return replace(layer, weight=torch.full_like(layer.weight, qmax),
                       bias=torch.zeros_like(layer.bias))

    def fire(lif: LIFLayer) -> LIFLayer:
        return replace(lif, vth=torch.ones_like(lif.vth))

    stem = [replace(s, conv=maxed(s.conv), lif=fire(s.lif)) for s in base.stem]
    blocks = [replace(b, **{n: maxed(getattr(b, n)) for n in ("q", "k", "o", "dwc", "fc1", "fc2")},
                      **{n: fire(getattr(b, n)) for n in ("attn_lif", "q_lif", "k_lif", "mlp_lif",
                                                             "fc1_lif")})
              for b in base.blocks]
    head = replace(base.head, lif=fire(base.head.lif), weight=torch.full_like(base.head.weight, qmax),
                   bias=torch.zeros_like(base.head.bias))
    return derive_widths(replace(base, stem=stem, rpe=maxed(base.rpe), blocks=blocks, head=head))


@pytest.mark.parametrize("config", CONFIGS)
def test_extreme_model_reaches_declared_widths(config):
    cfg = REFERENCE_CONFIGS[config]
    model = _extreme_model(cfg)
    h, w = cfg.image_size
    pixels = torch.full((1, cfg.image_channels, h, w), (1 << cfg.pixel_bits) - 1)
    out = golden.run(model, pixels, check_widths=True)
    T, N = cfg.time_steps, cfg.tokens
    # Every neuron fired at every step, and the values sit on their bounds.
    assert bool((out["head.lif"] == 1).all())
    assert int(out["logits"].max()) == int(model.head.weight.sum(1).max()) * T * N
    assert int(out["stem.0.conv"].max()) == int(model.stem[0].conv.output_range()[1].max())
    last = f"blocks.{cfg.depth - 1}.u_mlp"
    assert not _fits(out[last], model.u_bits - 1), "the residual stream does not need u_bits"
    # One bit less on the residual stream and the same run must be refused.
    with pytest.raises(golden.WidthError):
        golden.run(replace(model, u_bits=model.u_bits - 1), pixels, check_widths=True)


@pytest.mark.parametrize(("config", "mode"), [
    ("digits-tiny", SasaMode.CHANNEL), ("digits-tiny", SasaMode.TOKEN),
    ("cifar-mid", SasaMode.CHANNEL), ("cifar-mid", SasaMode.TOKEN),
    ("cifar-paper", SasaMode.CHANNEL)])
def test_random_models_on_extreme_pixels(config, mode):
    cfg = REFERENCE_CONFIGS[config].replace(sasa_mode=mode.value)
    model = random_int_model(cfg, seed=3)
    h, w = cfg.image_size
    top = (1 << cfg.pixel_bits) - 1
    checker = (torch.arange(h)[:, None] + torch.arange(w)[None, :]) % 2 * top
    pixels = torch.cat([
        torch.full((1, cfg.image_channels, h, w), top),
        torch.zeros(1, cfg.image_channels, h, w, dtype=torch.int64),
        checker.expand(1, cfg.image_channels, h, w),
        random_pixels(cfg, 1 if config == "cifar-paper" else 3, seed=4),
    ])
    if config == "cifar-paper":  # paper scale: the two most extreme images only
        pixels = pixels[[0, 3]]
    out = golden.run(model, pixels, check_widths=True)
    assert out["pred"].shape == (pixels.shape[0],)
    spikes = out["blocks.0.attn_lif"].double().mean()
    assert 0 < spikes < 1  # the random model is alive: the check ran on real activity
