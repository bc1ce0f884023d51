"""Users' data (`--data`, quant/datasets.py): image folders and .npz files, and every bad
input of issue 11 refused through the CLI with one line, exit 1 and nothing written."""

import numpy as np
import pytest
import torch
from PIL import Image

from hwgen.cli.main import main
from hwgen.errors import HwgenError
from quant.checkpoints import BUNDLED_CHECKPOINT, BUNDLED_MODEL
from quant.config import get_config
from quant.data import calibration_images, load_digits_split, sample_images
from quant.datasets import DataError, load_data
from quant.model_file import load_model

CFG = get_config("digits-tiny")


def write_digits_folder(root, per_class: int | None = None, split: bool = True):
    """The digits split as PNG class folders (train/ and test/, or flat)."""
    d = load_digits_split()
    for part, x, y in (("train", d.train_pixels, d.train_labels),
                       ("test", d.test_pixels, d.test_labels)):
        count = {}
        for k in range(len(y)):
            label = int(y[k])
            count[label] = count.get(label, 0) + 1
            if per_class is not None and count[label] > per_class:
                continue
            folder = root / part / str(label) if split else root / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x[k, 0].numpy(), mode="L").save(folder / f"{part}{k:04d}.png")
    return root


def write_digits_npz(path, with_split: bool = True, **override):
    d = load_digits_split()
    arrays = {"x": np.concatenate([d.train_pixels.numpy(), d.test_pixels.numpy()]),
              "y": np.concatenate([d.train_labels.numpy(), d.test_labels.numpy()])}
    if with_split:
        arrays["split"] = np.r_[np.zeros(len(d.train_labels)), np.ones(len(d.test_labels))]
    arrays.update(override)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def test_folder_with_train_test_equals_digits(tmp_path):
    data = load_data(write_digits_folder(tmp_path / "png"), CFG)
    d = load_digits_split()
    assert data.classes == tuple(str(c) for c in range(10))
    # same images, grouped by class (sorted folder order): compare as multisets per class
    for c in range(10):
        a = data.test_pixels[data.test_labels == c].reshape(-1, 64)
        b = d.test_pixels[d.test_labels == c].reshape(-1, 64)
        assert sorted(map(tuple, a.tolist())) == sorted(map(tuple, b.tolist()))
    assert len(data.train_labels) == 1437


def test_npz_with_split_equals_digits(tmp_path):
    data = load_data(write_digits_npz(tmp_path / "d.npz"), CFG)
    d = load_digits_split()
    assert torch.equal(data.test_pixels, d.test_pixels)
    assert torch.equal(data.train_labels, d.train_labels)
    assert data.fingerprint == load_data(None, CFG).fingerprint


def test_flat_folder_seeded_val_split(tmp_path):
    root = write_digits_folder(tmp_path / "flat", per_class=10, split=False)
    a, b = load_data(root, CFG, 0.25), load_data(root, CFG, 0.25)
    assert a.fingerprint == b.fingerprint  # seeded: the same split every time
    assert len(a.test_labels) == round(0.25 * len(a.train_labels + 0) / 0.75)
    assert load_data(root, CFG, 0.5).fingerprint != a.fingerprint


def test_npz_without_split_uses_val_split(tmp_path):
    data = load_data(write_digits_npz(tmp_path / "d.npz", with_split=False), CFG, 0.2)
    assert len(data.test_labels) == round(0.2 * 1797)


def _fails(capsys, argv, message):
    assert main(argv) == 1
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert message in lines[0], lines[0]


def _bad_folder(tmp_path, kind):
    root = write_digits_folder(tmp_path / "png", per_class=3)
    victim = sorted((root / "train" / "3").iterdir())[0]
    if kind == "empty":
        for f in (root / "test" / "7").iterdir():
            f.unlink()
        return root, f"{root / 'test' / '7'}: empty class folder"
    if kind == "corrupt":
        victim.write_bytes(b"\x89PNG\r\n\x1a\n not really")
        return root, f"image {victim}: cannot be read"
    if kind == "size":
        Image.new("L", (9, 8)).save(victim)
        return root, f"image {victim}: is 8x9 (HxW), config 'digits-tiny' needs 8x8"
    if kind == "channels":
        Image.new("RGB", (8, 8)).save(victim)
        return root, f"image {victim}: has 3 channel(s) (mode RGB), config 'digits-tiny' needs 1"
    if kind == "classes":
        for extra in ("10", "11"):
            for part in ("train", "test"):
                (root / part / extra).mkdir()
                Image.new("L", (8, 8)).save(root / part / extra / "a.png")
        return root, "12 class folders, but config 'digits-tiny' has 10 classes"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["empty", "corrupt", "size", "channels", "classes"])
@pytest.mark.parametrize("command", ["quantize", "inspect", "train"])
def test_bad_folder_refused(tmp_path, capsys, kind, command):
    root, message = _bad_folder(tmp_path, kind)
    out = tmp_path / "out.file"
    argv = {"quantize": ["quantize", str(BUNDLED_CHECKPOINT), "-o", str(out)],
            "inspect": ["inspect", str(BUNDLED_MODEL)],
            "train": ["train", "-q", "--epochs", "1", "-o", str(out)]}[command]
    _fails(capsys, [*argv, "--data", str(root)], message)
    assert not out.exists()


@pytest.mark.parametrize(("override", "message"), [
    ({"x": None}, "array 'x' missing"),
    ({"y": None}, "array 'y' missing"),
    ({"y": np.full(1797, 10)}, "label y[0] = 10 is outside 0..9"),
    ({"x": np.zeros((1797, 1, 8, 8), np.float32)}, "x must be uint8, not float32"),
    ({"x": np.zeros((1797, 3, 8, 8), np.uint8)}, "x has shape (1797, 3, 8, 8), config "
                                                 "'digits-tiny' needs (N, 1, 8, 8)"),
    ({"split": np.full(1797, 2)}, "split must be (1797,) of 0 (train) and 1 (test)"),
    ({"split": np.zeros(1797)}, "split leaves the test part empty"),
])
def test_bad_npz_refused(tmp_path, capsys, override, message):
    path = write_digits_npz(tmp_path / "d.npz", **override)
    out = tmp_path / "m.hwq"
    _fails(capsys, ["quantize", str(BUNDLED_CHECKPOINT), "-o", str(out), "--data", str(path)],
           message)
    assert not out.exists()


def test_missing_and_unknown_paths(tmp_path, capsys):
    out = tmp_path / "m.hwq"
    for path, message in ((tmp_path / "nope", "no such file or folder"),
                          (tmp_path / "nope.npz", "no such file or folder")):
        _fails(capsys, ["quantize", str(BUNDLED_CHECKPOINT), "-o", str(out), "--data", str(path)],
               f"data {path}: {message}")
    (tmp_path / "data.csv").write_text("1,2\n")
    _fails(capsys, ["inspect", str(BUNDLED_MODEL), "--data", str(tmp_path / "data.csv")],
           "neither a folder of class folders nor a .npz file")
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    _fails(capsys, ["inspect", str(BUNDLED_MODEL), "--data", str(tmp_path / "bad.npz")],
           "not a readable .npz")
    _fails(capsys, ["inspect", str(BUNDLED_MODEL), "--data", str(tmp_path), "--val-split", "1.5"],
           "--val-split must be a fraction between 0 and 1, not 1.5")
    assert not out.exists()


@pytest.mark.parametrize("images", ["0", "-3"])
def test_run_images_below_one_refused(capsys, images):
    _fails(capsys, ["run", "--images", images, "--port", "loop://"],
           f"--images must be at least 1, not {images}")


@pytest.mark.parametrize("images", ["0", "-3"])
def test_sim_images_below_one_refused(tmp_path, capsys, images):
    """A usage error (argparse's positive_int, as for --calib): exit 2, one line naming the
    option, before anything is planned or simulated."""
    report = tmp_path / "r.json"
    with pytest.raises(SystemExit) as e:
        main(["sim", "--images", images, "--report", str(report)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"hwgen sim: error: argument --images: must be a positive integer, not "
                   f"'{images}' (see 'hwgen sim --help')"]
    assert not report.exists()


def test_sim_and_run_read_the_data(tmp_path):
    """sim and run take their images from the test part of --data; the planner's
    calibration images stay the default ones (sim plans as build does)."""
    flat = write_digits_npz(tmp_path / "d.npz", with_split=False)
    data = load_data(flat, CFG, 0.5)
    model = load_model(BUNDLED_MODEL)
    pixels, labels = sample_images(model, 3, data=data)
    assert torch.equal(pixels, data.test_pixels[:3].to(torch.int64))
    assert labels == data.test_labels[:3].tolist()
    assert calibration_images(model, 5, seed=1)[1] == "5 digits training images (seed 1)"
    with pytest.raises(HwgenError, match="the test part of .* has 898 images, not 899"):
        sample_images(model, 899, data=data)


def test_digits_default_refuses_other_shapes(capsys):
    with pytest.raises(DataError, match="give --data PATH"):
        load_data(None, get_config("cifar-mid"))


def test_quantize_and_inspect_on_user_data(tmp_path, capsys):
    root = write_digits_folder(tmp_path / "png")
    out = tmp_path / "m.hwq"
    assert main(["quantize", str(BUNDLED_CHECKPOINT), "-o", str(out), "--data", str(root)]) == 0
    text = capsys.readouterr().out
    assert f"test part of {root} (360 images)" in text and "float model           96.67 %" in text
    assert main(["inspect", str(out), "--data", str(write_digits_npz(tmp_path / "d.npz"))]) == 0
    assert "(360 images): 96.39 %" in capsys.readouterr().out
