"""`hwgen train` on users' configs and data (quant/train.py): seeded, best epoch kept, the
data's fingerprint recorded, `--resume` continues a run exactly."""

import pytest
import torch

from hwgen.cli.main import main
from quant.checkpoint import load_checkpoint
from quant.config import get_config
from quant.config_file import config_to_toml
from quant.datasets import load_data
from quant.train import TrainError, evaluate, train_model
from tests.test_user_data import write_digits_folder, write_digits_npz

SMALL = get_config("digits-tiny").replace(name="digits-small", dim=8, heads=2)


@pytest.fixture(scope="module")
def png(tmp_path_factory):
    return write_digits_folder(tmp_path_factory.mktemp("png"), per_class=12)


def _toml(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(config_to_toml(SMALL))
    return path


def test_train_cli_on_folder(tmp_path, capsys, png):
    out = tmp_path / "m.pt"
    argv = ["train", "-q", "--config", str(_toml(tmp_path)), "--data", str(png), "--epochs", "3",
            "-o", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "best epoch" in text and "on cpu" in text
    model, ckpt = load_checkpoint(out)
    assert model.cfg == SMALL
    data = load_data(png, SMALL)
    assert ckpt["data_fingerprint"] == data.fingerprint and ckpt["data_source"] == str(png)
    assert ckpt["train_state"]["epoch"] == 3
    # the kept weights are the best epoch's: re-evaluated, they give the recorded accuracy
    assert evaluate(model, data.test_pixels, data.test_labels) == ckpt["test_accuracy"]
    # seeded: the same run gives the same weights
    out2 = tmp_path / "m2.pt"
    assert main([*argv[:-1], str(out2)]) == 0
    a, b = load_checkpoint(out)[1]["state_dict"], load_checkpoint(out2)[1]["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_continues_exactly(tmp_path, png):
    data = load_data(png, SMALL)
    straight, part = tmp_path / "straight.pt", tmp_path / "part.pt"
    train_model(SMALL, data, straight, epochs=3, progress=False)
    train_model(SMALL, data, part, epochs=3, progress=False, stop_after=2)
    assert load_checkpoint(part)[1]["train_state"]["epoch"] == 2
    resumed = tmp_path / "resumed.pt"
    train_model(SMALL, data, resumed, epochs=3, progress=False, resume=part)
    a = load_checkpoint(straight)[1]
    b = load_checkpoint(resumed)[1]
    for key in ("state_dict",):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key])
    last_a, last_b = a["train_state"]["last_state_dict"], b["train_state"]["last_state_dict"]
    assert all(torch.equal(last_a[k], last_b[k]) for k in last_a)
    assert a["test_accuracy"] == b["test_accuracy"]
    with pytest.raises(TrainError, match="all 3 epochs are done already"):
        train_model(SMALL, data, tmp_path / "x.pt", epochs=3, progress=False, resume=resumed)


def test_resume_refuses_other_data_config_or_epochs(tmp_path, capsys, png):
    part = tmp_path / "part.pt"
    train_model(SMALL, load_data(png, SMALL), part, epochs=3, progress=False, stop_after=1)
    toml = str(_toml(tmp_path))
    out = tmp_path / "out.pt"
    cases = [
        (["--config", toml, "--data", str(write_digits_npz(tmp_path / "d.npz")), "--epochs", "3"],
         "trained on other data (fingerprint"),
        (["--config", "digits-tiny", "--data", str(png), "--epochs", "3"],
         "config field 'name' is 'digits-small', but --config says 'digits-tiny'"),
        (["--config", toml, "--data", str(png), "--epochs", "4"],
         "the run was for 3 epochs, not 4"),
    ]
    for extra, message in cases:
        assert main(["train", "-q", *extra, "--resume", str(part), "-o", str(out)]) == 1
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()
