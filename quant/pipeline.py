"""What `hwgen quantize` does, for any caller: a float checkpoint to an integer model and
its accuracy report, post-training or quantisation-aware, on the user's data or digits."""

from __future__ import annotations

from pathlib import Path

from quant.checkpoint import load_checkpoint
from quant.config import ModelConfig
from quant.config_file import require_same_config
from quant.datasets import DataSplit, load_data
from quant.ir import IntModel
from quant.qat import quantize_with_qat
from quant.quantize import quantize_checkpoint, report_accuracy


def checkpoint_config(path: Path, expected: ModelConfig | None = None) -> ModelConfig:
    """The config a float checkpoint records (ModelFileError if the file is bad); with
    `expected`, a ConfigError naming the first field in which they differ."""
    cfg = load_checkpoint(Path(path))[0].cfg
    if expected is not None:
        require_same_config(cfg, expected, f"checkpoint {path}")
    return cfg


def quantize_with_report(checkpoint: Path, weight_bits: int = 8, *,
                         data: DataSplit | str | Path | None = None, val_split: float = 0.2,
                         config: ModelConfig | None = None, qat_epochs: int | None = None,
                         seed: int = 0, progress: bool = True) -> tuple[IntModel, str]:
    """(integer model, accuracy report as printable lines) of `checkpoint`.

    `data`: a DataSplit, or a path (image folder or .npz) read against the checkpoint's
    config, split by `val_split`; None reads digits. `config`: refuse the checkpoint
    unless it records this config. `qat_epochs`: fine-tune quantisation-aware for that many
    epochs (quant/qat.py) and report float, post-training and QAT accuracy; else
    post-training only (at 8 bits, the 4-bit accuracy is reported too).
    """
    checkpoint = Path(checkpoint)
    cfg = checkpoint_config(checkpoint, config)
    if data is not None and not isinstance(data, DataSplit):
        data = load_data(data, cfg, val_split)
    if qat_epochs:
        model, report = quantize_with_qat(checkpoint, weight_bits, qat_epochs, data, seed=seed,
                                          progress=progress)
        return model, report.lines()
    model = quantize_checkpoint(checkpoint, weight_bits=weight_bits, data=data)
    other = (4,) if weight_bits == 8 else ()
    return model, report_accuracy(checkpoint, model, other_bits=other, data=data)
