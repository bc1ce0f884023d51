"""Configs as TOML files (quant/config_file.py) and `hwgen config show`, through the CLI."""

import dataclasses

import pytest

from hwgen.cli.main import build_parser, main
from quant.checkpoints import BUNDLED_CHECKPOINT
from quant.config import REFERENCE_CONFIGS, ModelConfig
from quant.config_file import (
    FIELDS,
    ConfigError,
    config_to_toml,
    load_config_file,
    resolve_config,
)


def test_every_modelconfig_field_has_a_file_type():
    fields = {f.name for f in dataclasses.fields(ModelConfig)} - {"extra"}
    assert fields == set(FIELDS)


@pytest.mark.parametrize("name", sorted(REFERENCE_CONFIGS))
def test_show_reads_back_equal(tmp_path, capsys, name):
    assert main(["config", "show", name]) == 0
    text = capsys.readouterr().out
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert load_config_file(path) == REFERENCE_CONFIGS[name]
    assert resolve_config(str(path)) == REFERENCE_CONFIGS[name]


def _write(tmp_path, text: str):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return path


def _digits_toml(**changes) -> str:
    lines = config_to_toml(REFERENCE_CONFIGS["digits-tiny"]).splitlines()
    out = []
    for line in lines:
        key = line.split(" = ")[0]
        if key in changes:
            if changes[key] is not None:
                out.append(f"{key} = {changes[key]}")
        else:
            out.append(line)
    return "\n".join(out) + "\n"


@pytest.mark.parametrize(("text", "message"), [
    (_digits_toml() + "colour = 3\n", "unknown field 'colour'"),
    (_digits_toml(dim=None), "missing field 'dim'"),
    (_digits_toml(dim='"32"'), "field 'dim' must be an integer, not '32'"),
    (_digits_toml(vth="true"), "field 'vth' must be a number, not True"),
    (_digits_toml(image_size="[8]"), "field 'image_size' must be [height, width]"),
    (_digits_toml(stem_pool="[1]"), "field 'stem_pool' must be a list of booleans"),
    (_digits_toml(heads="3"), "dim (32) must be a multiple of heads (3)"),
    (_digits_toml(sasa_mode='"both"'), "sasa_mode must be 'channel' or 'token'"),
    ("dim = = 3\n", "not valid TOML"),
])
def test_bad_config_file_refused_by_name(tmp_path, capsys, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match="^config file .*" + message.replace("[", r"\[")
                       .replace("(", r"\(").replace(")", r"\)")):
        load_config_file(path)
    # the same through the CLI: one line on stderr, exit 1, nothing on stdout
    assert main(["config", "show", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and message in err


def test_unknown_config_name(capsys):
    assert main(["plan", "--config", "digits-huge"]) == 1
    assert "unknown config 'digits-huge'" in capsys.readouterr().err
    assert main(["config", "show", "missing.toml"]) == 1
    assert "no such file" in capsys.readouterr().err


def test_plan_takes_a_config_file(tmp_path, capsys):
    path = _write(tmp_path, _digits_toml(name='"my-digits"', dim="16"))
    assert main(["plan", "--config", str(path)]) == 0
    assert "blocks.0.fc2" in capsys.readouterr().out
    assert resolve_config(str(path)).dim == 16


def test_quantize_refuses_checkpoint_of_another_config(tmp_path, capsys):
    path = _write(tmp_path, _digits_toml(dim="16"))
    out = tmp_path / "m.hwq"
    assert main(["quantize", str(BUNDLED_CHECKPOINT), "--config", str(path), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "config field 'dim' is 32, but --config says 16" in err
    assert not out.exists()


@pytest.mark.parametrize(("command", "words"), [
    (["config", "show"], ["NAME|FILE"]),
    (["train"], ["--config NAME|FILE", "--data PATH", "--val-split", "--resume CKPT", "GPU"]),
    (["quantize"], ["--config NAME|FILE", "--data PATH", "--qat EPOCHS"]),
    (["inspect"], ["--data PATH"]),
    (["sim"], ["--data PATH", "--config NAME|FILE"]),
    (["run"], ["--data PATH"]),
])
def test_help_names_the_new_options(capsys, command, words):
    with pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for w in words:
        assert w in out, (command, w)
