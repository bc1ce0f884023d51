"""Users' data (`--data PATH`): an image folder or an `.npz`, checked against a config.

Either source becomes a `DataSplit` of uint8 pixels [N, C, H, W] and int64
labels, train and test part, plus a fingerprint the checkpoint records. Images
are never resized or converted: anything that disagrees with the config is a
one-line DataError naming the first offending file or array entry. Without a
path, the digits split (quant/data.py) is the data. Formats: docs/usage.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from hwgen.errors import HwgenError
from quant.config import ModelConfig
from quant.data import load_digits_split

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DEFAULT_VAL_SPLIT = 0.2
SPLIT_SEED = 0  # fixed, so train, quantize, inspect and sim all see the same test part
MODE_CHANNELS = {"L": 1, "RGB": 3}  # the Pillow modes that are 8-bit pixels, as they are


class DataError(HwgenError):
    """User data that is missing, unreadable or does not fit the config."""


@dataclass(frozen=True)
class DataSplit:
    """Pixels uint8 [N, C, H, W] (event frames: [N, T, 2, H, W] of 0/1); labels int64 [N];
    `source` says where they came from."""

    train_pixels: torch.Tensor
    train_labels: torch.Tensor
    test_pixels: torch.Tensor
    test_labels: torch.Tensor
    source: str
    classes: tuple[str, ...] | None = None  # class folder names, in label order

    @property
    def fingerprint(self) -> str:
        """SHA-256 (hex, 16 digits) over both parts' pixels and labels, in order."""
        h = hashlib.sha256()
        for t in (self.train_pixels, self.train_labels, self.test_pixels, self.test_labels):
            a = t.contiguous().numpy()
            h.update(str((a.dtype.str, a.shape)).encode())
            h.update(a.tobytes())
        return h.hexdigest()[:16]


def _check_val_split(val_split: float) -> None:
    if not (isinstance(val_split, (int, float)) and 0 < val_split < 1):
        raise DataError(f"--val-split must be a fraction between 0 and 1, not {val_split!r}")


def _split(n: int, val_split: float, where: str) -> np.ndarray:
    """Boolean mask of the test part: a seeded random round(n * val_split) of n samples."""
    _check_val_split(val_split)
    n_test = int(round(n * val_split))
    if n_test < 1 or n_test >= n:
        raise DataError(f"{where}: {n} samples cannot be split {1 - val_split:.2f}/"
                        f"{val_split:.2f} into non-empty train and test parts")
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    mask = np.zeros(n, dtype=bool)
    mask[order[:n_test]] = True
    return mask


def _check_pixels(x: np.ndarray, cfg: ModelConfig, where: str) -> None:
    limit = (1 << cfg.pixel_bits) - 1
    if cfg.pixel_bits < 8 and int(x.max(initial=0)) > limit:
        first = int(np.argmax(x.reshape(len(x), -1).max(1) > limit))
        raise DataError(f"{where}: sample {first} has pixels above {limit}, the maximum of "
                        f"the config's {cfg.pixel_bits}-bit pixels")


def _check_labels(y: np.ndarray, cfg: ModelConfig, where: str) -> None:
    bad = np.flatnonzero((y < 0) | (y >= cfg.num_classes))
    if len(bad):
        raise DataError(f"{where}: label y[{bad[0]}] = {int(y[bad[0]])} is outside 0.."
                        f"{cfg.num_classes - 1} (config {cfg.name!r} has {cfg.num_classes} "
                        "classes)")


# --------------------------------------------------------------------------- .npz

def load_npz(path: Path, cfg: ModelConfig, val_split: float = DEFAULT_VAL_SPLIT) -> DataSplit:
    """`x` uint8 (N, C, H, W), `y` integers (N,), optional `split` (N,) of 0 = train, 1 = test."""
    where = f"data {path}"
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:  # numpy raises several types for a damaged archive
        raise DataError(f"{where}: not a readable .npz ({str(e).splitlines()[0][:120]})") from None
    for key in ("x", "y"):
        if key not in arrays:
            raise DataError(f"{where}: array {key!r} missing (found: "
                            f"{', '.join(sorted(arrays)) or 'none'})")
    x, y = arrays["x"], arrays["y"]
    if cfg.frames:  # event frames (N, T, 2, H, W) of 0/1, tonic's frame layout
        want = (cfg.time_steps, 2, *cfg.image_size)
        if x.dtype == np.bool_:
            x = x.astype(np.uint8)
    else:
        want = (cfg.image_channels, *cfg.image_size)
    if x.dtype != np.uint8:
        raise DataError(f"{where}: x must be uint8{' or bool' if cfg.frames else ''}, "
                        f"not {x.dtype}")
    if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want:
        raise DataError(f"{where}: x has shape {tuple(x.shape)}, config {cfg.name!r} needs "
                        f"(N, {', '.join(map(str, want))})")
    if cfg.frames and x.max(initial=0) > 1:
        first = int(np.argmax(x.reshape(len(x), -1).max(1) > 1))
        raise DataError(f"{where}: event frames must be 0/1; sample {first} holds "
                        f"{int(x[first].max())}")
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{where}: y must be integers of shape ({len(x)},), not {y.dtype} "
                        f"{tuple(y.shape)}")
    if len(x) < 2:
        raise DataError(f"{where}: needs at least 2 samples, has {len(x)}")
    _check_labels(y, cfg, where)
    if not cfg.frames:
        _check_pixels(x, cfg, where)
    if "split" in arrays:
        split = arrays["split"]
        if split.shape != y.shape or not np.isin(split, (0, 1)).all():
            raise DataError(f"{where}: split must be ({len(x)},) of 0 (train) and 1 (test)")
        test = split.astype(bool)
        for part, mask in (("train", ~test), ("test", test)):
            if not mask.any():
                raise DataError(f"{where}: split leaves the {part} part empty")
    else:
        test = _split(len(x), val_split, where)
    x_t, y_t = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64))
    test_t = torch.from_numpy(test)
    return DataSplit(x_t[~test_t], y_t[~test_t], x_t[test_t], y_t[test_t], str(path))


# --------------------------------------------------------------------------- image folders

def _class_folders(root: Path) -> list[Path]:
    return sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def read_image(path: Path, cfg: ModelConfig) -> np.ndarray:
    """One image as uint8 (C, H, W), exactly as stored, or DataError naming the file."""
    try:
        with Image.open(path) as img:
            img.load()
            mode, size = img.mode, img.size
            a = np.asarray(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"image {path}: cannot be read (corrupt or not an image: "
                        f"{str(e).splitlines()[0][:100]})") from None
    channels = MODE_CHANNELS.get(mode)
    if channels is None:
        raise DataError(f"image {path}: Pillow mode {mode!r} is not 8-bit greyscale ('L') or "
                        f"RGB; convert it (hwgen never converts images silently)")
    if channels != cfg.image_channels:
        raise DataError(f"image {path}: has {channels} channel(s) (mode {mode}), config "
                        f"{cfg.name!r} needs {cfg.image_channels}")
    h, w = cfg.image_size
    if size != (w, h):
        raise DataError(f"image {path}: is {size[1]}x{size[0]} (HxW), config {cfg.name!r} "
                        f"needs {h}x{w} (images are never resized)")
    a = a.reshape(h, w, channels).transpose(2, 0, 1)
    _check_pixels(a[None], cfg, f"image {path}")
    return np.ascontiguousarray(a, dtype=np.uint8)


def _read_classes(root: Path, cfg: ModelConfig, classes: list[str] | None = None):
    folders = _class_folders(root)
    names = [p.name for p in folders]
    if not folders:
        raise DataError(f"data {root}: no class sub-folders")
    if classes is not None and names != classes:
        raise DataError(f"data {root}: class folders {names} differ from the train part's "
                        f"{classes}")
    if len(folders) > cfg.num_classes:
        raise DataError(f"data {root}: {len(folders)} class folders, but config {cfg.name!r} "
                        f"has {cfg.num_classes} classes (labels out of range)")
    xs, ys = [], []
    for label, folder in enumerate(folders):
        files = _image_files(folder)
        if not files:
            raise DataError(f"data {folder}: empty class folder (no {'/'.join(IMAGE_SUFFIXES)} "
                            "images)")
        xs += [read_image(f, cfg) for f in files]
        ys += [label] * len(files)
    return np.stack(xs), np.asarray(ys, dtype=np.int64), names


def load_image_folder(root: Path, cfg: ModelConfig,
                      val_split: float = DEFAULT_VAL_SPLIT) -> DataSplit:
    """Class sub-folders in sorted name order (torchvision's ImageFolder), either inside
    `train/` and `test/` or directly in `root` (then split by a seeded `val_split`)."""
    if cfg.frames:
        raise DataError(f"data {root}: config {cfg.name!r} reads event frames; give them as "
                        "an .npz with x of shape (N, T, 2, H, W)")
    train, test = root / "train", root / "test"
    if train.is_dir() and test.is_dir():
        x_tr, y_tr, names = _read_classes(train, cfg)
        x_te, y_te, _ = _read_classes(test, cfg, names)
    else:
        x, y, names = _read_classes(root, cfg)
        mask = _split(len(x), val_split, f"data {root}")
        x_tr, y_tr, x_te, y_te = x[~mask], y[~mask], x[mask], y[mask]
    t = torch.from_numpy
    return DataSplit(t(x_tr), t(y_tr), t(x_te), t(y_te), str(root), tuple(names))


# --------------------------------------------------------------------------- entry point

def digits_data(cfg: ModelConfig) -> DataSplit:
    """The default data: scikit-learn's digits, if the config reads 1x8x8 images of 10+ classes."""
    if (cfg.image_channels, cfg.image_size) != (1, (8, 8)) or cfg.num_classes < 10:
        raise DataError(f"config {cfg.name!r} reads {cfg.image_channels}x{cfg.image_size[0]}x"
                        f"{cfg.image_size[1]} images of {cfg.num_classes} classes, not the "
                        "default digits (1x8x8, 10 classes): give --data PATH")
    d = load_digits_split()
    return DataSplit(d.train_pixels, d.train_labels, d.test_pixels, d.test_labels, "digits")


def load_data(path: str | Path | None, cfg: ModelConfig,
              val_split: float = DEFAULT_VAL_SPLIT) -> DataSplit:
    """`--data PATH` (image folder or .npz) checked against `cfg`; None means digits."""
    _check_val_split(val_split)
    if path is None:
        return digits_data(cfg)
    path = Path(path)
    if path.is_dir():
        return load_image_folder(path, cfg, val_split)
    if path.is_file():
        if path.suffix.lower() != ".npz":
            raise DataError(f"data {path}: neither a folder of class folders nor a .npz file")
        return load_npz(path, cfg, val_split)
    raise DataError(f"data {path}: no such file or folder")
