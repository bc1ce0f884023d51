"""The integer model file (.hwq): write, read with every field checked, summarise.

Format (docs/model_file.md): a zip archive holding `manifest.json` (format,
version, config, widths, meta, layer records, tensor table, checksum) and
`tensors.bin` (raw little-endian integer arrays). `load_model` refuses a bad
file with a one-line ModelFileError naming the field, before anything else.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hwgen.errors import ModelFileError
from quant.config import ModelConfig, SasaMode
from quant.ir import (
    FORMAT_NAME,
    FORMAT_VERSION,
    READ_VERSIONS,
    Block,
    Conv3x3Layer,
    DWConvLayer,
    Head,
    IntModel,
    LIFLayer,
    LinearLayer,
    StemStage,
    derive_widths,
)

MANIFEST = "manifest.json"
TENSORS = "tensors.bin"
DTYPES = ("int8", "int16", "int32", "int64")  # stored little-endian
UP5K_BRAM_BITS = 30 * 4096  # iCE40 UP5K: 30 EBR blocks of 4 kbit
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed, so the same model gives the same bytes
_BLOCK_LAYERS = ("attn_lif", "q", "q_lif", "k", "k_lif", "agg_lif", "o", "dwc",
                 "mlp_lif", "fc1", "fc1_lif", "fc2")


# ------------------------------------------------------------------ layout

@dataclass(frozen=True)
class LayerSpec:
    """One layer of the file: its name, kind, and the shape of each of its tensors."""

    name: str
    kind: str  # conv3x3 | linear | dwconv3x3 | lif | head
    tensors: dict[str, tuple[int, ...]]


_SCALARS = {  # the integer fields each layer kind stores in its manifest record
    "conv3x3": ("acc_bits", "pixel_bits"),
    "linear": ("acc_bits",),
    "dwconv3x3": ("acc_bits",),
    "lif": ("state_bits", "input_shift"),
    "head": ("acc_bits",),
}


def layout(cfg: ModelConfig) -> list[LayerSpec]:
    """Every layer of a model with this config, in dataflow order, with its tensor shapes."""
    specs = []
    cin = cfg.image_channels
    for i, cout in enumerate(cfg.stem_channels):
        specs.append(LayerSpec(f"stem.{i}.conv", "conv3x3",
                               {"weight": (cout, cin, 3, 3), "bias": (cout,)}))
        specs.append(LayerSpec(f"stem.{i}.lif", "lif", {"vth": (cout,)}))
        cin = cout
    d, hid = cfg.dim, cfg.hidden
    specs.append(LayerSpec("rpe", "conv3x3", {"weight": (d, cin, 3, 3), "bias": (d,)}))
    agg = cfg.heads if cfg.sasa_mode == SasaMode.CHANNEL else d
    for b in range(cfg.depth):
        p = f"blocks.{b}"

        def lin(n_out: int, n_in: int) -> dict[str, tuple[int, ...]]:
            return {"weight": (n_out, n_in), "bias": (n_out,)}

        specs += [
            LayerSpec(f"{p}.attn_lif", "lif", {"vth": (d,)}),
            LayerSpec(f"{p}.q", "linear", lin(d, d)), LayerSpec(f"{p}.q_lif", "lif", {"vth": (d,)}),
            LayerSpec(f"{p}.k", "linear", lin(d, d)), LayerSpec(f"{p}.k_lif", "lif", {"vth": (d,)}),
            LayerSpec(f"{p}.agg_lif", "lif", {"vth": (agg,)}),
            LayerSpec(f"{p}.o", "linear", lin(d, d)),
            LayerSpec(f"{p}.dwc", "dwconv3x3", {"weight": (d, 3, 3), "bias": (d,)}),
            LayerSpec(f"{p}.mlp_lif", "lif", {"vth": (d,)}),
            LayerSpec(f"{p}.fc1", "linear", lin(hid, d)),
            LayerSpec(f"{p}.fc1_lif", "lif", {"vth": (hid,)}),
            LayerSpec(f"{p}.fc2", "linear", lin(d, hid)),
        ]
    specs.append(LayerSpec("head.lif", "lif", {"vth": (d,)}))
    specs.append(LayerSpec("head", "head", {"weight": (cfg.num_classes, d),
                                            "bias": (cfg.num_classes,)}))
    return specs


def layer_of(model: IntModel, name: str):
    parts = name.split(".")
    if parts[0] == "stem":
        return getattr(model.stem[int(parts[1])], parts[2])
    if parts[0] == "blocks":
        return getattr(model.blocks[int(parts[1])], parts[2])
    if name == "head.lif":
        return model.head.lif
    return model.rpe if name == "rpe" else model.head


# ------------------------------------------------------------------ writing

def _smallest_dtype(t: torch.Tensor) -> str:
    lo, hi = (int(t.min()), int(t.max())) if t.numel() else (0, 0)
    for name in DTYPES:
        info = np.iinfo(name)
        if info.min <= lo and hi <= info.max:
            return name
    raise ValueError("value beyond int64")  # unreachable for int64 tensors


def encode_model(model: IntModel) -> bytes:
    """The .hwq bytes of `model`: deterministic (same model, same bytes)."""
    blob = io.BytesIO()
    layers, tensors = {}, {}
    for spec in layout(model.config):
        layer = layer_of(model, spec.name)
        record = {"kind": spec.kind}
        for key in _SCALARS[spec.kind]:
            record[key] = int(getattr(layer, key))
        if spec.kind == "conv3x3":
            record["pixel_input"] = bool(layer.pixel_input)
        layers[spec.name] = record
        for field in spec.tensors:
            t = getattr(layer, field).to(torch.int64)
            dtype = _smallest_dtype(t)
            raw = t.numpy().astype(np.dtype(dtype).newbyteorder("<")).tobytes()
            tensors[f"{spec.name}.{field}"] = {"dtype": dtype, "shape": list(t.shape),
                                               "offset": blob.tell(), "nbytes": len(raw)}
            blob.write(raw)
    data = blob.getvalue()
    manifest = {
        # Version 1 for image models: their files stay readable by older hwgen, byte for byte.
        "format": FORMAT_NAME, "version": FORMAT_VERSION if model.config.frames else 1,
        "config": model.config.to_dict(),
        "weight_bits": model.weight_bits, "u_bits": model.u_bits, "meta": model.meta,
        "layers": layers, "tensors": tensors, "tensors_sha256": hashlib.sha256(data).hexdigest(),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for member, payload in ((MANIFEST, json.dumps(manifest, indent=1).encode() + b"\n"),
                                (TENSORS, data)):
            info = zipfile.ZipInfo(member, date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            z.writestr(info, payload)
    return out.getvalue()


def save_model(model: IntModel, path: Path) -> None:
    """Write `model` to `path` atomically (a failed write leaves no partial file)."""
    path = Path(path)
    data = encode_model(model)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # plain open: honours the umask
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ModelFileError(f"cannot write {path}: {e.strerror or e}") from None


# ------------------------------------------------------------------ reading

class _Reader:
    """Checks one manifest field at a time; every failure names the field."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, msg: str) -> ModelFileError:
        return ModelFileError(f"{self.where}: {msg}".replace("\n", " "))

    def get(self, d: dict, key: str, kind: type | tuple[type, ...], path: str):
        if key not in d:
            raise self.fail(f"missing field '{path}'")
        value = d[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self.fail(f"field '{path}' must be {names}, not {value!r}"[:200])
        return value

    def int_in(self, d: dict, key: str, lo: int, hi: int, path: str) -> int:
        value = self.get(d, key, int, path)
        if not lo <= value <= hi:
            raise self.fail(f"field '{path}' must be in [{lo}, {hi}], not {value}")
        return value


def decode_model(data: bytes, where: str = "model file") -> IntModel:
    """Parse and check .hwq bytes; raise ModelFileError naming the first problem."""
    r = _Reader(where)
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise r.fail("not a .hwq model file (no zip directory: truncated or not this format)") from None
    with z:
        names = set(z.namelist())
        for member in (MANIFEST, TENSORS):
            if member not in names:
                raise r.fail(f"missing member '{member}' (not a .hwq model file?)")
        try:
            manifest_bytes = z.read(MANIFEST)
            blob = z.read(TENSORS)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise r.fail(f"corrupt archive member ({str(e)[:120]})") from None
    try:
        m = json.loads(manifest_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise r.fail(f"{MANIFEST} is not valid JSON ({str(e)[:120]})") from None
    if not isinstance(m, dict):
        raise r.fail(f"{MANIFEST} must hold a JSON object")
    fmt = m.get("format")
    if fmt != FORMAT_NAME:
        raise r.fail(f"field 'format' is {fmt!r}, expected {FORMAT_NAME!r}")
    version = m.get("version")
    if version not in READ_VERSIONS or isinstance(version, bool):
        raise r.fail(f"field 'version' is {version!r}; this hwgen reads versions "
                     f"{', '.join(map(str, READ_VERSIONS))}")
    try:
        cfg = ModelConfig.from_dict(r.get(m, "config", dict, "config"))
    except (ValueError, TypeError) as e:
        raise r.fail(f"unsupported field 'config': {str(e)[:160]}") from None
    if cfg.frames and version < 2:
        raise r.fail("field 'config.input' is 'frames', which needs version 2, not "
                     f"{version}")
    weight_bits = r.int_in(m, "weight_bits", 2, 16, "weight_bits")
    u_bits = r.int_in(m, "u_bits", 1, 64, "u_bits")
    meta = r.get(m, "meta", dict, "meta")
    layers = r.get(m, "layers", dict, "layers")
    table = r.get(m, "tensors", dict, "tensors")
    digest = r.get(m, "tensors_sha256", str, "tensors_sha256")
    if hashlib.sha256(blob).hexdigest() != digest:
        raise r.fail(f"checksum mismatch: {TENSORS} does not match 'tensors_sha256' (corrupt file)")

    specs = layout(cfg)
    expected_layers = {s.name for s in specs}
    expected_tensors = {f"{s.name}.{f}" for s in specs for f in s.tensors}
    for name in layers:
        if name not in expected_layers:
            raise r.fail(f"unexpected layer 'layers.{name}' for config {cfg.name!r}")
    for name in table:
        if name not in expected_tensors:
            raise r.fail(f"unexpected tensor 'tensors.{name}' for config {cfg.name!r}")

    def tensor(name: str, shape: tuple[int, ...]) -> torch.Tensor:
        entry = r.get(table, name, dict, f"tensors.{name}")
        path = f"tensors.{name}"
        dtype = r.get(entry, "dtype", str, f"{path}.dtype")
        if dtype not in DTYPES:
            raise r.fail(f"field '{path}.dtype' is {dtype!r}, must be one of {', '.join(DTYPES)}")
        got = r.get(entry, "shape", list, f"{path}.shape")
        if got != list(shape):
            raise r.fail(f"field '{path}.shape' is {got!r}, config {cfg.name!r} needs {list(shape)}")
        offset = r.int_in(entry, "offset", 0, len(blob), f"{path}.offset")
        nbytes = r.int_in(entry, "nbytes", 0, len(blob), f"{path}.nbytes")
        itemsize = np.dtype(dtype).itemsize
        count = int(np.prod(shape, dtype=np.int64))
        if nbytes != count * itemsize:
            raise r.fail(f"field '{path}.nbytes' is {nbytes}, shape and dtype need {count * itemsize}")
        if offset + nbytes > len(blob):
            raise r.fail(f"tensor '{name}' runs past the end of {TENSORS}")
        arr = np.frombuffer(blob, dtype=np.dtype(dtype).newbyteorder("<"), count=count, offset=offset)
        return torch.from_numpy(arr.astype(np.int64)).reshape(shape)

    qmax = (1 << (weight_bits - 1)) - 1
    built: dict[str, object] = {}
    for spec in specs:
        rec = r.get(layers, spec.name, dict, f"layers.{spec.name}")
        kind = r.get(rec, "kind", str, f"layers.{spec.name}.kind")
        if kind != spec.kind:
            raise r.fail(f"field 'layers.{spec.name}.kind' is {kind!r}, expected {spec.kind!r}")
        sc = {key: r.int_in(rec, key, 0, 64, f"layers.{spec.name}.{key}")
              for key in _SCALARS[kind]}
        ts = {f: tensor(f"{spec.name}.{f}", shape) for f, shape in spec.tensors.items()}
        if "weight" in ts and ts["weight"].numel() and int(ts["weight"].abs().max()) > qmax:
            raise r.fail(f"tensor '{spec.name}.weight' holds values beyond {weight_bits}-bit "
                         f"(|w| <= {qmax})")
        if kind == "lif":
            if ts["vth"].numel() and int(ts["vth"].min()) < 1:
                raise r.fail(f"tensor '{spec.name}.vth' holds thresholds below 1")
            if sc["input_shift"] > 8:
                raise r.fail(f"field 'layers.{spec.name}.input_shift' must be in [0, 8], "
                             f"not {sc['input_shift']}")
            built[spec.name] = LIFLayer(ts["vth"], sc["state_bits"], sc["input_shift"])
        elif kind == "conv3x3":
            pixel = r.get(rec, "pixel_input", bool, f"layers.{spec.name}.pixel_input")
            reads_pixels = spec.name == "stem.0.conv" and not cfg.frames
            if pixel != reads_pixels:
                raise r.fail(f"field 'layers.{spec.name}.pixel_input' must be "
                             f"{reads_pixels}, not {pixel}")
            if pixel and sc["pixel_bits"] != cfg.pixel_bits:
                raise r.fail(f"field 'layers.{spec.name}.pixel_bits' is {sc['pixel_bits']}, "
                             f"config says {cfg.pixel_bits}")
            built[spec.name] = Conv3x3Layer(ts["weight"], ts["bias"], pixel, sc["pixel_bits"],
                                            sc["acc_bits"])
        elif kind == "linear":
            built[spec.name] = LinearLayer(ts["weight"], ts["bias"], sc["acc_bits"])
        elif kind == "dwconv3x3":
            built[spec.name] = DWConvLayer(ts["weight"], ts["bias"], sc["acc_bits"])
        else:
            built[spec.name] = (ts["weight"], ts["bias"], sc["acc_bits"])

    stem = [StemStage(built[f"stem.{i}.conv"], built[f"stem.{i}.lif"], pool)
            for i, pool in enumerate(cfg.stem_pool)]
    blocks = [Block(**{n: built[f"blocks.{b}.{n}"] for n in _BLOCK_LAYERS})
              for b in range(cfg.depth)]
    hw, hb, hbits = built["head"]
    model = IntModel(config=cfg, weight_bits=weight_bits, stem=stem, rpe=built["rpe"],
                     blocks=blocks, head=Head(built["head.lif"], hw, hb, hbits), u_bits=u_bits,
                     meta=meta)
    _check_widths(model, r)
    return model


def _width_fields(model: IntModel) -> list[tuple[str, int]]:
    out = [("u_bits", model.u_bits), ("head.acc_bits", model.head.acc_bits)]
    for spec in layout(model.config):
        layer = layer_of(model, spec.name)
        key = "state_bits" if spec.kind == "lif" else "acc_bits"
        if spec.kind != "head":
            out.append((f"layers.{spec.name}.{key}", getattr(layer, key)))
    return out


def _check_widths(model: IntModel, r: _Reader) -> None:
    """Declared widths must hold the worst case (wider is allowed, narrower could overflow)."""
    needed = dict(_width_fields(derive_widths(model)))
    for name, declared in _width_fields(model):
        if declared < needed[name]:
            raise r.fail(f"field '{name}' is {declared} bits, the worst case needs {needed[name]}")


def load_model(path: Path) -> IntModel:
    """Read and check a .hwq file; ModelFileError (one line, naming the problem) if it is bad."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        return decode_model(data, str(path))
    except ModelFileError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError) as e:
        # Last line of defence: a malformed file must never surface as a traceback.
        raise ModelFileError(f"{path}: malformed model file ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:120] if str(e) else ''})") from None


def first_difference(a: IntModel, b: IntModel) -> str | None:
    """None if the two models are identical (every tensor, width, config and meta), else where."""
    if a.config != b.config:
        return "config"
    for key in ("weight_bits", "u_bits", "meta"):
        if getattr(a, key) != getattr(b, key):
            return key
    for spec in layout(a.config):
        la, lb = layer_of(a, spec.name), layer_of(b, spec.name)
        for key in _SCALARS[spec.kind] + (("pixel_input",) if spec.kind == "conv3x3" else ()):
            if getattr(la, key) != getattr(lb, key):
                return f"{spec.name}.{key}"
        for key in spec.tensors:
            ta, tb = getattr(la, key), getattr(lb, key)
            if ta.dtype != tb.dtype or not torch.equal(ta, tb):
                return f"{spec.name}.{key}"
    if [s.pool for s in a.stem] != [s.pool for s in b.stem]:
        return "stem pool"
    return None
