"""Event-frame input (`input = "frames"`): data, float model, quantiser, golden model, QAT
and model file on moving-digit events generated here (quant/events.py), through the CLI."""

import json
import zipfile

import numpy as np
import pytest
import torch

from hwgen.cli.main import main
from hwgen.errors import ModelFileError
from quant import golden
from quant.checkpoint import load_checkpoint
from quant.config import get_config
from quant.config_file import config_to_toml, load_config_file
from quant.data import load_digits_split
from quant.datasets import load_data
from quant.events import events_from_images
from quant.model_file import encode_model, load_model
from quant.qat import fake_quant_logits
from quant.quantize import quantize_model

FRAMES = get_config("digits-tiny").replace(name="digits-events", image_channels=2,
                                           input="frames")


def write_events_npz(path, train: int = 720, test: int = 180, **override):
    """Moving-digit events of the first `train` / `test` digits images of each part."""
    d = load_digits_split()
    x = events_from_images(torch.cat([d.train_pixels[:train], d.test_pixels[:test]]),
                           FRAMES.time_steps)
    arrays = {"x": x.numpy(), "y": torch.cat([d.train_labels[:train], d.test_labels[:test]]).numpy(),
              "split": np.r_[np.zeros(train), np.ones(test)]}
    arrays.update(override)
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """digits-events trained 8 short epochs through `hwgen train`, quantised through the CLI."""
    tmp = tmp_path_factory.mktemp("frames")
    toml = tmp / "frames.toml"
    toml.write_text(config_to_toml(FRAMES))
    data = write_events_npz(tmp / "events.npz")
    ckpt, hwq = tmp / "m.pt", tmp / "m.hwq"
    assert main(["train", "-q", "--config", str(toml), "--data", str(data), "--epochs", "8",
                 "-o", str(ckpt)]) == 0
    assert main(["quantize", str(ckpt), "--config", str(toml), "--data", str(data),
                 "-o", str(hwq)]) == 0
    return toml, data, ckpt, hwq


def test_toml_round_trip_keeps_input(tmp_path):
    path = tmp_path / "f.toml"
    path.write_text(config_to_toml(FRAMES))
    assert 'input = "frames"' in path.read_text()
    assert load_config_file(path) == FRAMES
    assert "input" not in config_to_toml(get_config("digits-tiny"))


def test_train_quantize_inspect_frames(trained, capsys):
    toml, data, ckpt, hwq = trained
    model = load_model(hwq)
    assert model.config == FRAMES and not model.stem[0].conv.pixel_input
    split = load_data(data, FRAMES)
    acc = float((golden.predict(model, split.test_pixels) == split.test_labels).double().mean())
    assert acc > 0.3  # 10 classes: well above chance after 8 short epochs (float 41.7 %)
    assert main(["inspect", str(hwq), "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "input event frames 4x2x8x8" in out and f"{100 * acc:.2f} %" in out
    assert "pixel input" not in out


def test_frames_model_file_is_version_2(trained):
    hwq = trained[3]
    with zipfile.ZipFile(hwq) as z:
        manifest = json.loads(z.read("manifest.json"))
    assert manifest["version"] == 2 and manifest["config"]["input"] == "frames"
    assert encode_model(load_model(hwq)) == hwq.read_bytes()


def test_golden_equals_float_spike_conv_and_fake_quant(trained):
    float_model, _ = load_checkpoint(trained[2])
    x = load_data(trained[1], FRAMES).test_pixels[:60]
    for bits in (8, 4):
        with torch.no_grad():
            fake = fake_quant_logits(float_model, x, bits)
        gold = golden.run(quantize_model(float_model, bits), x, taps=False)["logits"]
        assert torch.equal(fake.to(torch.int64), gold)


def test_plan_of_the_trained_frames_model(trained, capsys):
    # simulated bit-exact in tests/test_frames_hardware.py (a smaller frames config)
    assert main(["plan", "--model", str(trained[3])]) == 0
    assert "stem.0.conv" in capsys.readouterr().out


@pytest.mark.parametrize(("override", "message"), [
    ({"x": np.full((900, 4, 2, 8, 8), 2, np.uint8)}, "event frames must be 0/1; sample 0 holds 2"),
    ({"x": np.zeros((900, 3, 2, 8, 8), np.uint8)}, "needs (N, 4, 2, 8, 8)"),
    ({"x": np.zeros((900, 2, 8, 8), np.uint8)}, "needs (N, 4, 2, 8, 8)"),
])
def test_bad_frames_refused(tmp_path, capsys, override, message):
    toml = tmp_path / "f.toml"
    toml.write_text(config_to_toml(FRAMES))
    path = write_events_npz(tmp_path / "e.npz", **override)
    out = tmp_path / "m.pt"
    assert main(["train", "-q", "--config", str(toml), "--data", str(path), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_image_folder_refused_for_frames(tmp_path, capsys):
    toml = tmp_path / "f.toml"
    toml.write_text(config_to_toml(FRAMES))
    (tmp_path / "imgs" / "0").mkdir(parents=True)
    assert main(["train", "-q", "--config", str(toml), "--data", str(tmp_path / "imgs"),
                 "-o", str(tmp_path / "m.pt")]) == 1
    assert "reads event frames; give them as an .npz" in capsys.readouterr().err


def test_frames_config_needs_two_channels():
    with pytest.raises(ValueError, match="input 'frames' needs image_channels = 2"):
        get_config("digits-tiny").replace(input="frames")


def test_frames_in_a_version_1_file_refused(trained, tmp_path):
    src = trained[3]
    with zipfile.ZipFile(src) as z:
        manifest, blob = json.loads(z.read("manifest.json")), z.read("tensors.bin")
    manifest["version"] = 1
    bad = tmp_path / "v1.hwq"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("manifest.json", json.dumps(manifest))
        z.writestr("tensors.bin", blob)
    with pytest.raises(ModelFileError, match="'config.input' is 'frames', which needs version 2"):
        load_model(bad)


@pytest.mark.slow
def test_sim_trained_frames_model_on_digit_events(trained, capsys, verilator):
    """The trained digits-events model on its own moving-digit events, bit-exact on the
    accelerator (about 80 s on a busy machine: the Verilator build of the 8x8 design)."""
    _, data, _, hwq = trained
    assert main(["sim", "--model", str(hwq), "--data", str(data), "--images", "3",
                 "--board", "ulx3s-85f"]) == 0
    assert "images passed: 3/3 bit-exact" in capsys.readouterr().out
