"""End to end on users' data written here: digits as PNG class folders and as an .npz, a
TOML config, `hwgen train` a few epochs, quantise, inspect, and simulate a few test images
bit-exact on the generated accelerator."""

import pytest

from hwgen.cli.main import main
from quant.config import get_config
from quant.config_file import config_to_toml
from tests.test_user_data import write_digits_folder, write_digits_npz


@pytest.mark.sim
def test_png_folder_train_quantize_inspect_sim(tmp_path, capsys, verilator):
    png = write_digits_folder(tmp_path / "png", per_class=40)
    toml = tmp_path / "mine.toml"
    toml.write_text(config_to_toml(get_config("digits-tiny").replace(name="my-digits", dim=16)))
    ckpt, hwq = tmp_path / "mine.pt", tmp_path / "mine.hwq"
    assert main(["train", "-q", "--config", str(toml), "--data", str(png), "--epochs", "3",
                 "-o", str(ckpt)]) == 0
    assert main(["quantize", str(ckpt), "--data", str(png), "-o", str(hwq)]) == 0
    assert main(["inspect", str(hwq), "--data", str(png)]) == 0
    assert "golden model accuracy on the test part of" in capsys.readouterr().out
    report = tmp_path / "sim.json"
    assert main(["sim", "--model", str(hwq), "--data", str(png), "--images", "3",
                 "--board", "ulx3s-85f", "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "images passed: 3/3 bit-exact" in out


def test_npz_train_quantize_inspect(tmp_path, capsys):
    npz = write_digits_npz(tmp_path / "d.npz")
    ckpt, hwq = tmp_path / "m.pt", tmp_path / "m.hwq"
    assert main(["train", "-q", "--data", str(npz), "--epochs", "1", "-o", str(ckpt)]) == 0
    assert main(["quantize", str(ckpt), "--data", str(npz), "--bits", "4", "-o", str(hwq)]) == 0
    assert main(["inspect", str(hwq), "--data", str(npz)]) == 0
    assert f"test part of {npz} (360 images)" in capsys.readouterr().out
