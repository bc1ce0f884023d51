"""Train a float SAFormer on a DataSplit (digits by default): seeded, on the GPU when torch
sees one, held-out evaluation every epoch, best checkpoint kept, resumable.

The checkpoint (`quant/checkpoint.py`) holds the best epoch's state dict, the
config, its test accuracy, the data's fingerprint, and (`train_state`) the last
epoch's weights, optimiser, schedule and random state so `--resume` continues
the run exactly where it stopped.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from hwgen.errors import HwgenError
from quant.checkpoint import load_checkpoint, make_checkpoint
from quant.config import ModelConfig, get_config
from quant.config_file import require_same_config
from quant.data import to_model_input
from quant.datasets import DataSplit, digits_data
from quant.model import SAFormer

# The recipe. Measured: 96.7 / 97.5 / 98.1 % float test accuracy for seeds 0 / 1 / 2, about
# 40 s on 2 idle cores (BENCHMARKS.md).
DEFAULT_EPOCHS = 60
BATCH = 32
LR = 5e-3
WEIGHT_DECAY = 1e-4
# One intra-op thread: the tensors are tiny (batch 32, 8x8 images), so a second thread
# gains little on an idle machine, and on a busy 2-core machine (simulators running beside
# us) two spinning OpenMP threads made an epoch 20x slower (measured: 110 s vs 5.7 s).
THREADS = 1


def shift_augment(x: torch.Tensor, g: torch.Generator, max_shift: int = 1) -> torch.Tensor:
    """Shift every sample [..., H, W] (images [B, C, H, W] or frames [B, T, 2, H, W]) by a
    random (dy, dx) in [-max_shift, max_shift], zero fill."""
    shape = x.shape
    x = x.reshape(shape[0], -1, *shape[-2:])
    b, _, h, w = x.shape
    pad = nn.functional.pad(x, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=g)
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=g)
    rows = (dy[:, None] + torch.arange(h)[None, :])  # [B, H]
    cols = (dx[:, None] + torch.arange(w)[None, :])  # [B, W]
    idx_b = torch.arange(b)[:, None, None]
    return pad[idx_b, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).reshape(shape)


@torch.no_grad()
def evaluate(model: SAFormer, pixels: torch.Tensor, labels: torch.Tensor, batch: int = 360) -> float:
    model.eval()
    correct = 0
    device = next(model.parameters()).device
    for i in range(0, len(labels), batch):
        logits = model(to_model_input(model.cfg, pixels[i:i + batch]).to(device)).cpu()
        correct += int((logits.argmax(-1) == labels[i:i + batch]).sum())
    return correct / max(1, len(labels))


class TrainError(HwgenError):
    """A training run that cannot start or resume (bad epochs, a checkpoint of other data)."""


def train_digits(out: Path, epochs: int | None = None, seed: int = 0, progress: bool = True,
                 cfg: ModelConfig | None = None) -> dict:
    """The repo's recipe on scikit-learn's digits (the bundled checkpoint's run)."""
    cfg = cfg or get_config("digits-tiny")
    return train_model(cfg, digits_data(cfg), out, epochs, seed, progress)


def train_model(cfg: ModelConfig, data: DataSplit, out: Path, epochs: int | None = None,
                seed: int = 0, progress: bool = True, resume: Path | None = None,
                device: str | None = None, stop_after: int | None = None) -> dict:
    """Train on `data`'s train part, evaluate on its test part after every epoch, and write
    `out` after every epoch (best weights + state to resume). CPU runs use THREADS threads.
    `stop_after`: end this run after that many epochs (a time-boxed run, resumed later).

    Returns {'test_accuracy' (best), 'best_epoch', 'seconds' (training loop), 'epochs',
    'device'}.
    """
    epochs = DEFAULT_EPOCHS if epochs is None else epochs
    if not isinstance(epochs, int) or epochs < 1:
        raise TrainError(f"epochs must be >= 1, not {epochs!r}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        return _train(cfg, data, Path(out), epochs, seed, progress, resume, torch.device(device),
                      stop_after)
    finally:
        torch.set_num_threads(before)


def _resume_state(path: Path, cfg: ModelConfig, data: DataSplit, epochs: int) -> dict:
    model, ckpt = load_checkpoint(path)
    where = f"--resume {path}"
    require_same_config(model.cfg, cfg, where)
    state = ckpt.get("train_state")
    if not isinstance(state, dict):
        raise TrainError(f"{where}: the checkpoint has no training state to resume from")
    if ckpt.get("data_fingerprint") != data.fingerprint:
        raise TrainError(f"{where}: trained on other data (fingerprint "
                         f"{ckpt.get('data_fingerprint')}, --data gives {data.fingerprint})")
    if state["epochs"] != epochs:
        raise TrainError(f"{where}: the run was for {state['epochs']} epochs, not {epochs} "
                         "(the learning-rate schedule spans the whole run)")
    if state["epoch"] >= epochs:
        raise TrainError(f"{where}: all {epochs} epochs are done already; nothing to resume")
    return {"ckpt": ckpt, **state}


def _train(cfg: ModelConfig, data: DataSplit, out: Path, epochs: int, seed: int, progress: bool,
           resume: Path | None, device: torch.device, stop_after: int | None) -> dict:
    state = _resume_state(Path(resume), cfg, data, epochs) if resume else None
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)  # on the CPU: the same run on any device
    model = SAFormer(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    n_train = len(data.train_labels)
    steps_per_epoch = -(-n_train // BATCH)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=epochs * steps_per_epoch,
                                                pct_start=0.1)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    x_train = to_model_input(cfg, data.train_pixels)
    best_acc, best_epoch, best_state, first = -1.0, 0, None, 0
    if state is not None:
        model.load_state_dict(state["last_state_dict"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        g.set_state(state["generator"])
        best_acc, best_epoch, first = state["ckpt"]["test_accuracy"], state["best_epoch"], state["epoch"]
        best_state = state["ckpt"]["state_dict"]
    start = time.perf_counter()
    last = epochs if stop_after is None else min(epochs, first + stop_after)
    bar = tqdm(range(first, last), desc=f"train {cfg.name}", unit="epoch", disable=not progress,
               initial=first, total=last)
    for epoch in bar:
        model.train()
        order = torch.randperm(n_train, generator=g)
        total, correct = 0.0, 0
        for i in range(0, len(order), BATCH):
            idx = order[i:i + BATCH]
            x = shift_augment(x_train[idx], g).to(device)
            y = data.train_labels[idx].to(device)
            logits = model(x)
            loss = loss_fn(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            correct += int((logits.argmax(-1) == y).sum())
        acc = evaluate(model, data.test_pixels, data.test_labels)
        if acc > best_acc:
            best_acc, best_epoch = acc, epoch + 1
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        bar.set_postfix(loss=f"{total / n_train:.3f}", train_acc=f"{100 * correct / n_train:.1f}%",
                        test_acc=f"{100 * acc:.1f}%", best=f"{100 * best_acc:.1f}%")
        train_state = {"epoch": epoch + 1, "epochs": epochs, "best_epoch": best_epoch,
                       "last_state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                       "optimizer": _to_cpu(opt.state_dict()), "scheduler": sched.state_dict(),
                       "generator": g.get_state()}
        _write(out, model, best_state, best_acc, {
            "seed": seed, "epochs": epochs, "best_epoch": best_epoch,
            "data_source": data.source, "data_fingerprint": data.fingerprint,
            "train_state": train_state})
    return {"test_accuracy": best_acc, "best_epoch": best_epoch,
            "seconds": time.perf_counter() - start, "epochs": epochs, "device": str(device)}


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


def _write(out: Path, model: SAFormer, best_state: dict, best_acc: float, extra: dict) -> None:
    """Write the checkpoint to a temporary file, then rename: an interrupted run leaves the
    previous epoch's checkpoint intact."""
    ckpt = make_checkpoint(model, best_acc, extra)
    ckpt["state_dict"] = best_state
    tmp = out.with_name(out.name + ".tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(ckpt, tmp)
        os.replace(tmp, out)
    except OSError as e:
        raise TrainError(f"cannot write checkpoint {out}: {e.strerror or e}") from None
