"""The integer model file: exact round trip, deterministic bytes, and a corpus of bad files
(and bad checkpoints) refused by the CLI with one line that names the problem."""

import io
import json
import subprocess
import sys
import zipfile

import pytest
import torch

from hwgen.cli.main import main
from hwgen.errors import ModelFileError
from quant.checkpoints import BUNDLED_CHECKPOINT, BUNDLED_MODEL
from quant.config import REFERENCE_CONFIGS, SasaMode
from quant.ir import FORMAT_VERSION
from quant.model_file import decode_model, encode_model, first_difference, load_model, save_model
from quant.random_model import random_int_model


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def good_bytes() -> bytes:
    return encode_model(random_int_model(REFERENCE_CONFIGS["digits-tiny"], seed=1))


# ------------------------------------------------------------------ round trip

@pytest.mark.parametrize(("config", "bits", "mode"), [
    ("digits-tiny", 8, SasaMode.CHANNEL), ("digits-tiny", 4, SasaMode.TOKEN),
    ("cifar-mid", 8, SasaMode.CHANNEL), ("cifar-paper", 8, SasaMode.TOKEN)])
def test_round_trip_is_identical(tmp_path, config, bits, mode):
    cfg = REFERENCE_CONFIGS[config].replace(sasa_mode=mode.value)
    model = random_int_model(cfg, weight_bits=bits, seed=2)
    model.meta.update({"note": "round trip", "float_test_accuracy": 0.1 + 0.2})
    path = tmp_path / "m.hwq"
    save_model(model, path)
    loaded = load_model(path)
    assert first_difference(model, loaded) is None
    assert encode_model(loaded) == path.read_bytes()  # same model, same bytes


def test_first_difference_sees_one_changed_weight():
    model = random_int_model(REFERENCE_CONFIGS["digits-tiny"], seed=2)
    other = decode_model(encode_model(model))
    other.blocks[0].fc2.weight[3, 5] += 1
    assert first_difference(model, other) == "blocks.0.fc2.weight"


def test_bundled_model_file_matches_bundled_checkpoint():
    """The shipped .hwq is what quantising the shipped checkpoint gives today."""
    from quant.quantize import quantize_checkpoint

    shipped = load_model(BUNDLED_MODEL)
    fresh = quantize_checkpoint(BUNDLED_CHECKPOINT, weight_bits=8)
    fresh.meta = shipped.meta  # meta also records the accuracy run
    assert first_difference(fresh, shipped) is None
    assert shipped.weight_memory_bits() <= 30 * 4096  # fits the UP5K block RAM


# ------------------------------------------------------------------ bad files

def _rezip(data: bytes, manifest=None, tensors: bytes | None = None, drop: str | None = None) -> bytes:
    """Rebuild an archive with an edited manifest (a function of the dict) or tensor blob."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        members = {n: z.read(n) for n in z.namelist()}
    if manifest is not None:
        m = json.loads(members["manifest.json"])
        manifest(m)
        members["manifest.json"] = json.dumps(m).encode()
    if tensors is not None:
        members["tensors.bin"] = tensors
    if drop:
        del members[drop]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, payload in members.items():
            z.writestr(name, payload)
    return out.getvalue()


def _set(path: str, value):
    def edit(m):
        *parents, last = path.split("/")
        d = m
        for p in parents:
            d = d[p]
        if value is _DELETE:
            del d[last]
        else:
            d[last] = value
    return edit


_DELETE = object()


def _flip_tensor_byte(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        blob = bytearray(z.read("tensors.bin"))
    blob[len(blob) // 2] ^= 0x40
    return _rezip(data, tensors=bytes(blob))


def _flip_stored_byte(data: bytes) -> bytes:
    """Damage the archive in place (zip CRC no longer matches)."""
    raw = bytearray(data)
    start = raw.find(b'"format"')
    raw[start + 2] ^= 0x01
    return bytes(raw)


BAD_FILES = {
    # name: (make bytes from good bytes, words the one-line message must contain)
    "truncated": (lambda d: d[: len(d) // 2], "truncated"),
    "not a zip": (lambda d: b"hello, I am a text file\n" * 10, "not a .hwq model file"),
    "crc damaged": (_flip_stored_byte, "corrupt"),
    "checksum": (_flip_tensor_byte, "checksum mismatch"),
    "missing member": (lambda d: _rezip(d, drop="tensors.bin"), "missing member 'tensors.bin'"),
    "not json": (lambda d: _bad_json(d), "not valid JSON"),
    "wrong format": (lambda d: _rezip(d, _set("format", "onnx")), "field 'format' is 'onnx'"),
    "wrong version": (lambda d: _rezip(d, _set("version", FORMAT_VERSION + 1)),
                      f"field 'version' is {FORMAT_VERSION + 1}"),
    "missing field": (lambda d: _rezip(d, _set("weight_bits", _DELETE)), "missing field 'weight_bits'"),
    "missing layer": (lambda d: _rezip(d, _set("layers/blocks.0.q", _DELETE)),
                      "missing field 'layers.blocks.0.q'"),
    "missing tensor": (lambda d: _rezip(d, _set("tensors/head.bias", _DELETE)),
                       "missing field 'tensors.head.bias'"),
    "bad shape": (lambda d: _rezip(d, _set("tensors/blocks.0.q.weight/shape", [32, 31])),
                  "'tensors.blocks.0.q.weight.shape' is [32, 31]"),
    "bad dtype": (lambda d: _rezip(d, _set("tensors/rpe.bias/dtype", "float32")),
                  "'tensors.rpe.bias.dtype' is 'float32'"),
    "unsupported tau": (lambda d: _rezip(d, _set("config/tau", 1.5)), "tau must be 2.0"),
    "unknown sasa mode": (lambda d: _rezip(d, _set("config/sasa_mode", "softmax")), "sasa_mode"),
    "narrow width": (lambda d: _rezip(d, _set("layers/blocks.0.fc1/acc_bits", 3)),
                     "'layers.blocks.0.fc1.acc_bits' is 3 bits"),
    "wrong kind": (lambda d: _rezip(d, _set("layers/rpe/kind", "linear")),
                   "'layers.rpe.kind' is 'linear'"),
    "bad type": (lambda d: _rezip(d, _set("u_bits", "wide")), "field 'u_bits' must be int"),
}


def _bad_json(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        blob = z.read("tensors.bin")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("manifest.json", b'{"format": "hwgen-int-model", "version": ')
        z.writestr("tensors.bin", blob)
    return out.getvalue()


def _run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_one_line_error(code: int, err: str, words: str) -> None:
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got: {err!r}"
    assert "Traceback" not in err
    assert words in lines[0], f"{words!r} not in {lines[0]!r}"


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_inspect_refuses_bad_file(tmp_path, capsys, good_bytes, case):
    make, words = BAD_FILES[case]
    path = tmp_path / f"{case.replace(' ', '_')}.hwq"
    path.write_bytes(make(good_bytes))
    with pytest.raises(ModelFileError):  # the library refuses it too
        load_model(path)
    code, out, err = _run_cli(["inspect", str(path), "--no-accuracy"], capsys)
    _assert_one_line_error(code, err, words)
    assert out == ""  # refused before anything is printed


def test_inspect_refuses_missing_file(tmp_path, capsys):
    code, _, err = _run_cli(["inspect", str(tmp_path / "nope.hwq")], capsys)
    _assert_one_line_error(code, err, "no such file")


def test_weights_beyond_weight_bits_are_refused(good_bytes):
    model = decode_model(good_bytes)
    model.blocks[0].o.weight[0, 0] = 200  # an 8-bit model holds |w| <= 127
    with pytest.raises(ModelFileError, match="blocks.0.o.weight"):
        decode_model(encode_model(model))


def test_thresholds_below_one_are_refused(good_bytes):
    model = decode_model(good_bytes)
    model.head.lif.vth[2] = 0
    with pytest.raises(ModelFileError, match="head.lif.vth"):
        decode_model(encode_model(model))


# ------------------------------------------------------------------ bad checkpoints

def _checkpoint_dict() -> dict:
    from quant.checkpoint import make_checkpoint
    from quant.model import SAFormer

    torch.manual_seed(0)
    return make_checkpoint(SAFormer(REFERENCE_CONFIGS["digits-tiny"]), 0.5)


def _saved(d) -> bytes:
    buf = io.BytesIO()
    torch.save(d, buf)
    return buf.getvalue()


def _edit(**changes):
    def make():
        d = _checkpoint_dict()
        for key, value in changes.items():
            if value is _DELETE:
                del d[key]
            else:
                d[key] = value
        return _saved(d)
    return make


def _bad_state():
    d = _checkpoint_dict()
    d["state_dict"]["blocks.0.fc1.conv.weight"] = torch.zeros(3, 3)
    return _saved(d)


def _nan_state():
    d = _checkpoint_dict()
    d["state_dict"]["head.weight"][0, 0] = float("nan")
    return _saved(d)


BAD_CHECKPOINTS = {
    "random bytes": (lambda: bytes(range(256)) * 8, "not a readable PyTorch checkpoint"),
    "truncated": (lambda: _saved(_checkpoint_dict())[:3000], "not a readable PyTorch checkpoint"),
    "wrong format": (_edit(format="something"), "field 'format' is 'something'"),
    "wrong version": (_edit(version=99), "field 'version' is 99"),
    "no state_dict": (_edit(state_dict=_DELETE), "'state_dict' is missing"),
    "bad config": (_edit(config={"name": "x"}), "field 'config'"),
    "bad shape": (_bad_state, "state_dict['blocks.0.fc1.conv.weight'] has shape [3, 3]"),
    "nan weight": (_nan_state, "NaN"),
}


@pytest.mark.parametrize("case", list(BAD_CHECKPOINTS))
def test_quantize_refuses_bad_checkpoint(tmp_path, capsys, case):
    make, words = BAD_CHECKPOINTS[case]
    ckpt = tmp_path / "bad.pt"
    ckpt.write_bytes(make())
    out_file = tmp_path / "out.hwq"
    code, out, err = _run_cli(["quantize", str(ckpt), "-o", str(out_file)], capsys)
    _assert_one_line_error(code, err, words)
    assert not out_file.exists()  # nothing written


def test_cli_subprocess_reports_bad_file_without_traceback(tmp_path, good_bytes):
    """End to end through the installed entry point: exit 1, one stderr line."""
    bad = tmp_path / "bad.hwq"
    bad.write_bytes(_rezip(good_bytes, _set("config/tau", 3.0)))
    proc = subprocess.run([sys.executable, "-m", "hwgen.cli.main", "inspect", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "tau must be 2.0" in proc.stderr and str(bad) in proc.stderr


def test_inspect_prints_summary(tmp_path, capsys, good_bytes):
    path = tmp_path / "ok.hwq"
    path.write_bytes(good_bytes)
    code, out, err = _run_cli(["inspect", str(path), "--no-accuracy"], capsys)
    assert code == 0 and err == ""
    for words in ("digits-tiny", "blocks.0.agg_lif", "weight memory: 64,832 bits",
                  "fit (53 % used)", "parameters: 8,346"):
        assert words in out


def test_save_to_unwritable_place_is_one_line(tmp_path, good_bytes):
    model = decode_model(good_bytes)
    with pytest.raises(ModelFileError, match="cannot write"):
        save_model(model, tmp_path / "no" / "such" / "dir" / "m.hwq")
