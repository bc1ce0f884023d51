"""Quantisation-aware fine-tuning (quant/qat.py): the fake-quantised forward is the integer
model, before and after fine-tuning, and `hwgen quantize --qat` reports all three accuracies."""

import numpy as np
import pytest
import torch

from hwgen.cli.main import main
from quant import golden
from quant.checkpoint import load_checkpoint
from quant.checkpoints import BUNDLED_CHECKPOINT
from quant.data import load_digits_split
from quant.datasets import DataSplit
from quant.model_file import load_model
from quant.qat import fake_quant_logits, fake_quant_predict, qat
from quant.quantize import quantize_model


@pytest.fixture(scope="module")
def small():
    """A seeded quarter of the digits split (360 train, 90 test images)."""
    d = load_digits_split()
    g = torch.Generator().manual_seed(0)
    tr = torch.randperm(len(d.train_labels), generator=g)[:360]
    te = torch.randperm(len(d.test_labels), generator=g)[:90]
    return DataSplit(d.train_pixels[tr], d.train_labels[tr], d.test_pixels[te],
                     d.test_labels[te], "digits quarter")


@pytest.mark.parametrize("bits", [8, 4])
def test_fake_quant_logits_are_the_integer_models(bits, small):
    model, _ = load_checkpoint(BUNDLED_CHECKPOINT)
    with torch.no_grad():
        fake = fake_quant_logits(model, small.test_pixels, bits)
    assert torch.equal(fake, fake.round())
    gold = golden.run(quantize_model(model, bits), small.test_pixels, taps=False)["logits"]
    assert torch.equal(fake.to(torch.int64), gold)


def test_after_qat_integer_model_agrees_with_fake_quant(small):
    torch.set_num_threads(1)
    model, _ = load_checkpoint(BUNDLED_CHECKPOINT)
    before = model.head.weight.detach().clone()
    qat(model, small, 4, epochs=1, progress=False)
    assert not torch.equal(before, model.head.weight)  # it did fine-tune
    fake = fake_quant_predict(model, small.test_pixels, 4)
    gold = golden.predict(quantize_model(model, 4), small.test_pixels)
    assert float((fake == gold).double().mean()) >= 0.95


def test_quantize_qat_cli(tmp_path, capsys, small):
    path = tmp_path / "small.npz"
    np.savez(path, x=torch.cat([small.train_pixels, small.test_pixels]).numpy(),
             y=torch.cat([small.train_labels, small.test_labels]).numpy(),
             split=np.r_[np.zeros(360), np.ones(90)].astype(np.uint8))
    out = tmp_path / "q.hwq"
    assert main(["quantize", str(BUNDLED_CHECKPOINT), "--bits", "4", "--qat", "1", "-q",
                 "--data", str(path), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    for label in ("float", "integer 4-bit post-training", "integer 4-bit QAT"):
        assert sum(line.strip().startswith(label) for line in text.splitlines()) == 1, label
    m = load_model(out)
    assert m.meta["qat_epochs"] == 1 and m.meta["bias_correction"] == "none (QAT)"
    qat_line = next(x for x in text.splitlines() if "QAT" in x)
    acc = float((golden.predict(m, small.test_pixels) == small.test_labels).double().mean())
    assert f"{100 * acc:6.2f} %" in qat_line
