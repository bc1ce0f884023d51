"""Float checkpoints written by `hwgen train`: save, and load with every field checked.

A checkpoint is a `torch.save`d dict: format marker, version, config dict,
state dict and the float test accuracy. Loading never unpickles arbitrary
objects (`weights_only=True`); anything wrong is a one-line ModelFileError.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from hwgen.errors import ModelFileError
from quant.config import ModelConfig
from quant.model import SAFormer

CHECKPOINT_FORMAT = "hwgen-float-checkpoint"
CHECKPOINT_VERSION = 1


def make_checkpoint(model: SAFormer, accuracy: float, extra: dict | None = None) -> dict:
    return {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "config": model.cfg.to_dict(), "state_dict": model.state_dict(),
            "test_accuracy": float(accuracy), **(extra or {})}


def save_checkpoint(model: SAFormer, accuracy: float, path: Path, extra: dict | None = None) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(make_checkpoint(model, accuracy, extra), path)
    except OSError as e:
        raise ModelFileError(f"cannot write checkpoint {path}: {e.strerror or e}") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:160]


def load_checkpoint(path: Path) -> tuple[SAFormer, dict]:
    """Return the float model (eval mode) and the raw checkpoint dict, or raise ModelFileError."""
    path = Path(path)
    where = f"checkpoint {path}"
    if not path.is_file():
        raise ModelFileError(f"{where}: no such file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a damaged file
        raise ModelFileError(f"{where}: not a readable PyTorch checkpoint (corrupt or truncated: "
                             f"{_first_line(e)})") from None
    if not isinstance(ckpt, dict):
        raise ModelFileError(f"{where}: expected a dict, found {type(ckpt).__name__}")
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(f"{where}: field 'format' is {ckpt.get('format')!r}, "
                             f"expected {CHECKPOINT_FORMAT!r}")
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise ModelFileError(f"{where}: field 'version' is {ckpt.get('version')!r}; "
                             f"this hwgen reads version {CHECKPOINT_VERSION}")
    for key, kind in (("config", dict), ("state_dict", dict)):
        if not isinstance(ckpt.get(key), kind):
            raise ModelFileError(f"{where}: field {key!r} is missing or not a {kind.__name__}")
    try:
        cfg = ModelConfig.from_dict(ckpt["config"])
    except (ValueError, TypeError) as e:
        raise ModelFileError(f"{where}: field 'config': {_first_line(e)}") from None
    with torch.device("meta"):  # shapes only: a bogus config cannot allocate anything
        expected = SAFormer(cfg).state_dict()
    state = ckpt["state_dict"]
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing:
        raise ModelFileError(f"{where}: state_dict is missing {missing[0]!r}"
                             + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))
    if unexpected:
        raise ModelFileError(f"{where}: state_dict has unexpected entry {unexpected[0]!r}")
    for key, ref in expected.items():
        value = state[key]
        if not isinstance(value, torch.Tensor):
            raise ModelFileError(f"{where}: state_dict[{key!r}] is not a tensor")
        if value.shape != ref.shape:
            raise ModelFileError(f"{where}: state_dict[{key!r}] has shape {list(value.shape)}, "
                                 f"config {cfg.name!r} needs {list(ref.shape)}")
        if value.dtype != ref.dtype:
            raise ModelFileError(f"{where}: state_dict[{key!r}] has dtype {value.dtype}, "
                                 f"expected {ref.dtype}")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ModelFileError(f"{where}: state_dict[{key!r}] holds NaN or infinity")
    model = SAFormer(cfg)
    model.load_state_dict(state)
    model.eval()
    acc = ckpt.get("test_accuracy")
    if acc is not None and not (isinstance(acc, float) and math.isfinite(acc)):
        raise ModelFileError(f"{where}: field 'test_accuracy' must be a number, not {acc!r}")
    return model, ckpt
