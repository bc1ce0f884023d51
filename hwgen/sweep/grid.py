"""The sweep's grid: axes from the command line and/or a TOML file, expanded into trials.

A trial is a `TrialSpec`, a frozen value naming everything its result depends on besides
hwgen's own sources and tool versions (those enter the trial's key, hwgen.sweep.trial).
The grid is the Cartesian product of its axes; docs/sweep.md gives the TOML format.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from hwgen.errors import HwgenError
from hwgen.targets.boards import get_board
from quant.config import REFERENCE_CONFIGS

STAGES = ("plan", "sim", "build")
SIMULATORS = ("verilator", "icarus")
WEIGHT_BITS = (4, 8)

# The axes of a grid, in the order trials are listed, and the trial options beside them.
AXES = ("model", "bits", "weight_seed", "board", "max_util", "target_fps", "event_driven")
OPTIONS = ("stage", "images", "simulator", "seed")
RESOURCES = ("cpus", "memory", "timeout")


class GridError(HwgenError):
    """A grid that names something unknown or is malformed; the message says which axis."""


@dataclass(frozen=True)
class TrialSpec:
    """One trial's inputs.

    `model` is a reference config name (random weights of `bits` bits, seed
    `weight_seed`), a config file (.toml, same), an integer model file (.hwq: its own
    bits; `bits` and `weight_seed` are None) or a float checkpoint (.pt: quantised at
    `bits`; `weight_seed` None). `event_driven` is "" (all dense), "all" (every spike
    linear) or a comma-separated list of spike linears. `images` are simulated
    bit-exact at stage "sim" and drive the report's activity at stage "build".
    """

    model: str
    board: str
    bits: int | None = 8
    weight_seed: int | None = 0
    max_util: float | None = None  # percent; None: the board's default ceiling
    target_fps: float | None = None
    event_driven: str = ""
    stage: str = "plan"
    images: int = 4
    simulator: str = "verilator"
    seed: int = 0

    @property
    def model_kind(self) -> str:
        """"config", "config-file", "model-file" or "checkpoint"."""
        return model_kind(self.model)

    @property
    def label(self) -> str:
        """A short human name: model, bits, board and the non-default knobs."""
        name = Path(self.model).stem if self.model_kind != "config" else self.model
        parts = [name]
        if self.bits is not None:
            parts.append(f"w{self.bits}")
        if self.weight_seed:
            parts.append(f"s{self.weight_seed}")
        parts.append(self.board)
        if self.max_util is not None:
            parts.append(f"util{self.max_util:g}")
        if self.target_fps is not None:
            parts.append(f"fps{self.target_fps:g}")
        if self.event_driven:
            parts.append(f"event[{self.event_driven}]")
        return " ".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrialSpec:
        return cls(**d)


def model_kind(model: str) -> str:
    suffix = Path(model).suffix.lower()
    return {".toml": "config-file", ".hwq": "model-file", ".pt": "checkpoint"}.get(
        suffix, "config")


def _event_choice(value) -> str:
    """Canonical event-driven choice: "", "all" or sorted comma-separated layers."""
    if isinstance(value, list | tuple):
        layers = [str(x).strip() for x in value]
    elif isinstance(value, str):
        if value.strip().lower() in ("", "none", "dense"):
            return ""
        if value.strip().lower() == "all":
            return "all"
        layers = [x.strip() for x in value.split(",")]
    else:
        raise GridError(f"event_driven: each choice must be a string or a list of layer "
                        f"names, not {value!r}")
    return ",".join(sorted({x for x in layers if x}))


def _check_model(model: str) -> str:
    kind = model_kind(model)
    if kind == "config":
        if model not in REFERENCE_CONFIGS:
            raise GridError(f"model: unknown config {model!r}; known: "
                            f"{', '.join(REFERENCE_CONFIGS)} (or give a .toml, .hwq or .pt file)")
        return model
    path = Path(model).expanduser().resolve()
    if not path.is_file():
        raise GridError(f"model: no such file {model!r}")
    return str(path)  # absolute: trials run in other processes, maybe on other machines


def _number(axis: str, value, kind=float):
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise GridError(f"{axis}: must be a number, not {value!r}")
    try:
        return kind(value)
    except ValueError:
        raise GridError(f"{axis}: must be a number, not {value!r}") from None


def _axis_values(axis: str, values: list) -> list:
    """Check and normalise one axis's values (order kept, duplicates dropped)."""
    if not isinstance(values, list) or not values:
        raise GridError(f"{axis}: must be a non-empty list, not {values!r}")
    out = []
    for v in values:
        if axis == "model":
            if not isinstance(v, str):
                raise GridError(f"model: must be a config name or a file, not {v!r}")
            v = _check_model(v)
        elif axis == "board":
            if not isinstance(v, str):
                raise GridError(f"board: must be a board name, not {v!r}")
            get_board(v)  # UnknownBoard names the supported ones
        elif axis == "bits":
            v = _number(axis, v, int)
            if v not in WEIGHT_BITS:
                raise GridError(f"bits: must be 4 or 8, not {v!r}")
        elif axis == "weight_seed":
            v = _number(axis, v, int)
        elif axis == "max_util":
            v = _number(axis, v)
            if not 1 <= v <= 100:
                raise GridError(f"max_util: must be a percentage in 1..100, not {v:g}")
        elif axis == "target_fps":
            v = None if isinstance(v, str) and v.lower() == "none" else _number(axis, v)
            if v is not None and v <= 0:
                raise GridError(f"target_fps: must be positive, not {v:g}")
        elif axis == "event_driven":
            v = _event_choice(v)
        if v not in out:
            out.append(v)
    return out


@dataclass
class Grid:
    """Axes (axis -> values) and trial options; `trials()` expands them."""

    axes: dict[str, list]
    options: dict
    resources: dict

    def trials(self) -> list[TrialSpec]:
        """Every combination of the axes, each once. Integer model files carry their own
        bits and checkpoints take no weight seed: those axes collapse for them."""
        if "model" not in self.axes or "board" not in self.axes:
            raise GridError("a sweep needs at least one model (--model/--config or grid.model) "
                            "and one board (--board or grid.board)")
        names = [a for a in AXES if a in self.axes]
        out: list[TrialSpec] = []
        for combo in itertools.product(*(self.axes[a] for a in names)):
            spec = TrialSpec(**dict(zip(names, combo, strict=True)), **self.options)
            if spec.model_kind == "model-file":
                spec = replace(spec, bits=None, weight_seed=None)
            elif spec.model_kind == "checkpoint":
                spec = replace(spec, weight_seed=None)
            if spec not in out:
                out.append(spec)
        return out


def _check_options(options: dict) -> dict:
    out = {}
    for key, value in options.items():
        if key == "stage":
            if value not in STAGES:
                raise GridError(f"stage: must be one of {', '.join(STAGES)}, not {value!r}")
        elif key == "simulator":
            if value not in SIMULATORS:
                raise GridError(f"simulator: must be one of {', '.join(SIMULATORS)}, "
                                f"not {value!r}")
        elif key in ("images", "seed"):
            value = _number(key, value, int)
            if key == "images" and value < 1:
                raise GridError(f"images: must be >= 1, not {value}")
        out[key] = value
    return out


def load_toml(path: Path) -> dict:
    """A grid file's tables: [grid] (axes), [trial] (options), [resources]."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise GridError(f"grid file {path} not found") from None
    except tomllib.TOMLDecodeError as e:
        raise GridError(f"grid file {path}: {e}") from None
    allowed = {"grid": AXES, "trial": OPTIONS, "resources": RESOURCES}
    for table, keys in data.items():
        if table not in allowed:
            raise GridError(f"grid file {path}: unknown table [{table}] "
                            f"(known: {', '.join(allowed)})")
        for key in keys:
            if key not in allowed[table]:
                raise GridError(f"grid file {path}: unknown key {key!r} in [{table}] "
                                f"(known: {', '.join(allowed[table])})")
    return data


def make_grid(toml_path: Path | None = None, axes: dict | None = None,
              options: dict | None = None, resources: dict | None = None) -> Grid:
    """The grid of a TOML file (if any) with the command line's axes and options on top
    (an axis given on the command line replaces the file's)."""
    data = load_toml(toml_path) if toml_path else {}
    merged_axes = dict(data.get("grid", {}))
    for key, value in data.get("grid", {}).items():
        if not isinstance(value, list):  # a single value is a one-point axis
            merged_axes[key] = [value]
    merged_axes.update({k: v for k, v in (axes or {}).items() if v is not None})
    checked = {a: _axis_values(a, merged_axes[a]) for a in AXES if a in merged_axes}
    opts = _check_options({**data.get("trial", {}),
                           **{k: v for k, v in (options or {}).items() if v is not None}})
    res = {**data.get("resources", {}), **{k: v for k, v in (resources or {}).items()
                                           if v is not None}}
    return Grid(checked, opts, res)


SPEC_FIELDS = tuple(f.name for f in fields(TrialSpec))
