"""SASA is linear in the number of tokens: no N x N tensor exists, in the float model (forward
and backward) or in the golden model. Checked at N = 4096 tokens by recording the shape of
every tensor any aten op produces; a deliberately quadratic attention shows the check bites."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from quant import golden
from quant.config import ModelConfig, SasaMode
from quant.model import SASA, SAFormer
from quant.random_model import random_int_model

N_SIDE = 64
N = N_SIDE * N_SIDE  # 4096 tokens


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor (by element count) produced by any op while active."""

    def __init__(self):
        super().__init__()
        self.numel, self.shape, self.op = 0, None, None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.numel() > self.numel:
                self.numel, self.shape, self.op = t.numel(), tuple(t.shape), str(func)
        return out


def _config(mode: SasaMode) -> ModelConfig:
    # One 2x2 pool: a 128 x 128 image gives a 64 x 64 grid of 4096 tokens.
    return ModelConfig(name=f"n4096-{mode.value}", image_channels=1, image_size=(2 * N_SIDE, 2 * N_SIDE),
                       time_steps=2, depth=1, dim=16, heads=2, mlp_ratio=1, sasa_mode=mode,
                       stem_channels=(4,), stem_pool=(True,), num_classes=10)


def _assert_linear(rec: LargestTensor, bound: int, what: str) -> None:
    assert rec.shape is not None, f"{what}: nothing was recorded"
    assert rec.numel <= bound, f"{what}: {rec.op} made a tensor of shape {rec.shape}"
    assert rec.numel < N * N


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_recorder_catches_quadratic_attention():
    """The check can fail: softmax-style Q K^T attention at N = 4096 is caught."""
    g = torch.Generator().manual_seed(0)
    q = (torch.rand(1, 1, N, generator=g) < 0.3).float()  # one channel keeps the check quick
    with LargestTensor() as rec:
        scores = q.transpose(1, 2) @ q  # [1, N, N]
        del scores
    assert rec.shape == (1, N, N)
    with pytest.raises(AssertionError, match="made a tensor of shape"):
        _assert_linear(rec, N, "quadratic attention")


@pytest.mark.parametrize("mode", [SasaMode.CHANNEL, SasaMode.TOKEN])
def test_float_sasa_forward_backward_is_linear_in_tokens(mode):
    cfg = _config(mode)
    torch.manual_seed(1)
    sasa = SASA(cfg)
    T, B, D = cfg.time_steps, 1, cfg.dim
    s = (torch.rand(T, B, D, N_SIDE, N_SIDE) < 0.5).float()
    with LargestTensor() as rec:
        y = sasa(s)
        y.square().mean().backward()
    assert y.shape == (T, B, D, N_SIDE, N_SIDE)
    assert sasa.q.conv.weight.grad is not None and sasa.q.conv.weight.grad.abs().sum() > 0
    # Nothing bigger than a few [T, B, D, N] activations (the largest is the spike map itself).
    _assert_linear(rec, 2 * T * B * D * N, f"float SASA ({mode.value})")


@pytest.mark.parametrize("mode", [SasaMode.CHANNEL, SasaMode.TOKEN])
def test_golden_sasa_is_linear_in_tokens(mode):
    g = torch.Generator().manual_seed(2)
    T, B, D, heads = 2, 1, 16, 2
    q = (torch.rand(T, B, D, N, generator=g) < 0.5).to(torch.int64)
    k = (torch.rand(T, B, D, N, generator=g) < 0.5).to(torch.int64)
    with LargestTensor() as rec:
        counts = golden.and_popcount(q, k, heads, mode)
        attn = golden.lif(counts, torch.tensor(1), input_shift=1)
        y = golden.sasa_gate(q, k, attn, heads, mode)
    want = (T, B, heads, N) if mode == SasaMode.CHANNEL else (T, B, D)
    assert counts.shape == want and y.shape == (T, B, D, N)
    # Counts are exact: compare with a per-token (channel) / per-channel (token) recount.
    both = q & k
    if mode == SasaMode.CHANNEL:
        assert int(counts[1, 0, 1, 4095]) == int(both[1, 0, D // 2:, 4095].sum())
    else:
        assert int(counts[1, 0, 7]) == int(both[1, 0, 7].sum())
    _assert_linear(rec, T * B * D * N, f"golden SASA ({mode.value})")


@pytest.mark.parametrize("mode", [SasaMode.CHANNEL, SasaMode.TOKEN])
def test_whole_models_at_4096_tokens(mode):
    cfg = _config(mode)
    T, D, H = cfg.time_steps, cfg.dim, 2 * N_SIDE
    # The largest legitimate tensors are the stem's: [T, 1, C, 128, 128] and its 3x3 windows.
    stem_bound = T * cfg.stem_channels[0] * H * H * 9
    torch.manual_seed(3)
    model = SAFormer(cfg).eval()
    with torch.no_grad(), LargestTensor() as rec:
        logits = model(torch.rand(1, 1, H, H))
    assert logits.shape == (1, cfg.num_classes)
    _assert_linear(rec, stem_bound, f"float SAFormer ({mode.value})")

    int_model = random_int_model(cfg, seed=4)
    pixels = torch.randint(0, 256, (1, 1, H, H), generator=torch.Generator().manual_seed(5))
    with LargestTensor() as rec:
        out = golden.run(int_model, pixels, taps=False)
    assert out["logits"].shape == (1, cfg.num_classes)
    _assert_linear(rec, stem_bound, f"golden model ({mode.value})")
    assert T * D * N < stem_bound < N * N
