"""Configs as TOML files: read one strictly, write one, resolve `--config NAME|FILE`.

A config file holds one `ModelConfig` as top-level keys (docs/usage.md). Every
field is type-checked before the config's own checks run; an unknown, missing
or mistyped field is a one-line ConfigError naming it. Fields with a default
in `ModelConfig` (thresholds, tau, pixel_bits, input = "image") may be left out.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import MISSING, fields
from pathlib import Path

from hwgen.errors import HwgenError
from quant.config import REFERENCE_CONFIGS, ModelConfig


class ConfigError(HwgenError):
    """A config file or name that cannot be read or does not describe a valid SAFormer."""


# field -> (kind, description). Kinds: str, int, float, pair (two ints), ints, bools.
FIELDS: dict[str, tuple[str, str]] = {
    "name": ("str", "a string"),
    "image_channels": ("int", "an integer"),
    "image_size": ("pair", "[height, width], two integers"),
    "time_steps": ("int", "an integer"),
    "depth": ("int", "an integer"),
    "dim": ("int", "an integer"),
    "heads": ("int", "an integer"),
    "mlp_ratio": ("int", "an integer"),
    "sasa_mode": ("str", "a string ('channel' or 'token')"),
    "stem_channels": ("ints", "a list of integers"),
    "stem_pool": ("bools", "a list of booleans"),
    "num_classes": ("int", "an integer"),
    "vth": ("float", "a number"),
    "attn_vth": ("float", "a number"),
    "tau": ("float", "a number"),
    "pixel_bits": ("int", "an integer"),
    "input": ("str", "a string ('image' or 'frames')"),
}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _type_ok(kind: str, v) -> bool:
    if kind == "str":
        return isinstance(v, str)
    if kind == "int":
        return _is_int(v)
    if kind == "float":
        return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)
    if kind == "pair":
        return isinstance(v, list) and len(v) == 2 and all(_is_int(x) for x in v)
    if kind == "ints":
        return isinstance(v, list) and all(_is_int(x) for x in v)
    if kind == "bools":
        return isinstance(v, list) and all(isinstance(x, bool) for x in v)
    raise AssertionError(kind)


def required_fields() -> list[str]:
    return [f.name for f in fields(ModelConfig)
            if f.name in FIELDS and f.default is MISSING and f.default_factory is MISSING]


def config_from_mapping(d: dict, where: str) -> ModelConfig:
    """Check every field of `d` by name and type, then build the config (ConfigError if bad)."""
    for key in d:
        if key not in FIELDS:
            raise ConfigError(f"{where}: unknown field {key!r} (known: {', '.join(FIELDS)})")
    for key in required_fields():
        if key not in d:
            raise ConfigError(f"{where}: missing field {key!r}")
    for key, value in d.items():
        kind, desc = FIELDS[key]
        if not _type_ok(kind, value):
            raise ConfigError(f"{where}: field {key!r} must be {desc}, not {value!r}")
    values = {k: float(v) if FIELDS[k][0] == "float" else v for k, v in d.items()}
    try:
        return ModelConfig.from_dict(values)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{where}: {str(e).splitlines()[0]}") from None


def load_config_file(path: Path) -> ModelConfig:
    path = Path(path)
    where = f"config file {path}"
    if not path.is_file():
        raise ConfigError(f"{where}: no such file")
    try:
        with path.open("rb") as f:
            d = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: not valid TOML ({str(e).splitlines()[0]})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{where}: cannot read ({e})") from None
    return config_from_mapping(d, where)


def resolve_config(spec: str) -> ModelConfig:
    """A reference config's name, or a TOML file's path (ConfigError if neither)."""
    if spec in REFERENCE_CONFIGS:
        return REFERENCE_CONFIGS[spec]
    if spec.endswith(".toml") or Path(spec).exists():
        return load_config_file(Path(spec))
    raise ConfigError(f"unknown config {spec!r}: neither a reference config "
                      f"({', '.join(REFERENCE_CONFIGS)}) nor a TOML file")


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)  # finite floats: Python's repr is valid TOML (1.0, 0.5, 1e-05)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML form for {v!r}")


def config_to_toml(cfg: ModelConfig) -> str:
    """Every field of `cfg` as TOML (reads back to an equal config). Written by hand: the
    config is flat scalars and lists, so a writer dependency would buy nothing."""
    d = cfg.to_dict()
    lines = [f"# SAFormer-{cfg.depth}-{cfg.dim} config for hwgen (docs/usage.md); "
             "fields: quant/config.py ModelConfig"]
    lines += [f"{key} = {_toml_value(d[key])}" for key in FIELDS if key in d]
    return "\n".join(lines) + "\n"


def require_same_config(found: ModelConfig, wanted: ModelConfig, where: str) -> None:
    """ConfigError naming the first field in which `found` (e.g. a checkpoint's) differs."""
    a, b = ({"input": "image", **c.to_dict()} for c in (found, wanted))
    for key in FIELDS:
        if a.get(key) != b.get(key):
            raise ConfigError(f"{where}: config field {key!r} is {a.get(key)!r}, but --config "
                              f"says {b.get(key)!r}")
