"""Typed configuration of a SAFormer (../docs/model.md) and the reference configs.

A config fixes every shape of the network; the float model, the quantiser, the
integer model file and the hardware compiler all read the same object.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum


class SasaMode(StrEnum):
    """How SASA aggregates Q AND K (SPEC §2)."""

    CHANNEL = "channel"  # per token, popcount over the channels of a head: fully streaming
    TOKEN = "token"  # per channel, popcount over all tokens of a time step: global


class InputKind(StrEnum):
    """What one sample is (SPEC §2, input encoding)."""

    IMAGE = "image"  # pixels [C, H, W], fed at every time step (direct encoding)
    FRAMES = "frames"  # event frames [T, 2, H, W] of 0/1 spikes, one per time step


@dataclass(frozen=True)
class ModelConfig:
    """Shapes and hyper-parameters of one SAFormer-L-D.

    The stem is ``len(stem_channels)`` conv3x3+BN+LIF stages; stage ``i`` is
    followed by a 2x2 spike max-pool when ``stem_pool[i]``. A relative-position
    conv3x3+BN then maps ``stem_channels[-1]`` to ``dim`` channels and starts
    the membrane residual stream.
    """

    name: str
    image_channels: int
    image_size: tuple[int, int]  # (height, width) of the input image
    time_steps: int
    depth: int  # L: number of SAFormer blocks
    dim: int  # D: channels of the residual stream
    heads: int
    mlp_ratio: int
    sasa_mode: SasaMode
    stem_channels: tuple[int, ...]
    stem_pool: tuple[bool, ...]
    num_classes: int
    vth: float = 1.0  # LIF threshold of every neuron but the attention one
    attn_vth: float = 0.5  # threshold of the SASA attention neuron
    tau: float = 2.0  # LIF time constant: the integer model needs tau == 2 (a 1-bit shift)
    pixel_bits: int = 8  # input pixels are unsigned integers of this width
    # "frames": image_channels are the 2 event polarities and the stem's first conv reads
    # spikes. Written to files only when not "image", so image configs read as before.
    input: InputKind = InputKind.IMAGE
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        def need(cond: bool, what: str) -> None:
            if not cond:
                raise ValueError(f"config {self.name!r}: {what}")

        for key in ("image_channels", "time_steps", "depth", "dim", "heads", "mlp_ratio",
                    "num_classes", "pixel_bits"):
            value = getattr(self, key)
            need(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                 f"{key} must be a positive integer, not {value!r}")
        need(len(self.image_size) == 2 and all(isinstance(s, int) and s >= 1
                                               for s in self.image_size),
             f"image_size must be (height, width), not {self.image_size!r}")
        need(self.dim % self.heads == 0,
             f"dim ({self.dim}) must be a multiple of heads ({self.heads})")
        need(len(self.stem_channels) >= 1, "stem_channels must name at least one stage")
        need(len(self.stem_pool) == len(self.stem_channels),
             "stem_pool must have one flag per stem stage")
        need(all(isinstance(c, int) and c >= 1 for c in self.stem_channels),
             f"stem_channels must be positive integers, not {self.stem_channels!r}")
        need(self.tau == 2.0, f"tau must be 2.0 (a 1-bit shift in integers), not {self.tau!r}")
        need(self.vth > 0 and self.attn_vth > 0, "thresholds must be positive")
        h, w = self.image_size
        for pooled in self.stem_pool:
            if pooled:
                need(h % 2 == 0 and w % 2 == 0,
                     f"a 2x2 pool needs an even grid, got {h}x{w}")
                h, w = h // 2, w // 2
        if not isinstance(self.sasa_mode, SasaMode):
            object.__setattr__(self, "sasa_mode", SasaMode(self.sasa_mode))
        if not isinstance(self.input, InputKind):
            object.__setattr__(self, "input", InputKind(self.input))
        need(self.input == InputKind.IMAGE or self.image_channels == 2,
             f"input 'frames' needs image_channels = 2 (the event polarities), not "
             f"{self.image_channels}")

    @property
    def frames(self) -> bool:
        """True when a sample is event frames [T, 2, H, W] (the first conv reads spikes)."""
        return self.input == InputKind.FRAMES

    @property
    def grid(self) -> tuple[int, int]:
        """(H, W) of the token grid after the stem's pools."""
        h, w = self.image_size
        for pooled in self.stem_pool:
            if pooled:
                h, w = h // 2, w // 2
        return h, w

    @property
    def tokens(self) -> int:
        h, w = self.grid
        return h * w

    @property
    def hidden(self) -> int:
        return self.dim * self.mlp_ratio

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    def stem_grids(self) -> list[tuple[int, int]]:
        """Input grid (H, W) of every stem stage."""
        grids = []
        h, w = self.image_size
        for pooled in self.stem_pool:
            grids.append((h, w))
            if pooled:
                h, w = h // 2, w // 2
        return grids

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sasa_mode"] = self.sasa_mode.value
        d["image_size"] = list(self.image_size)
        d["stem_channels"] = list(self.stem_channels)
        d["stem_pool"] = list(self.stem_pool)
        d.pop("extra")
        if self.input == InputKind.IMAGE:
            d.pop("input")  # files of image configs stay as they were before `input` existed
        else:
            d["input"] = self.input.value
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(sorted(unknown))}")
        missing = {"name", "image_channels", "image_size", "time_steps", "depth", "dim",
                   "heads", "mlp_ratio", "sasa_mode", "stem_channels", "stem_pool",
                   "num_classes"} - set(d)
        if missing:
            raise ValueError(f"config is missing field(s): {', '.join(sorted(missing))}")
        d = dict(d)
        try:
            d["sasa_mode"] = SasaMode(d["sasa_mode"])
        except ValueError:
            raise ValueError(f"sasa_mode must be 'channel' or 'token', not {d['sasa_mode']!r}") from None
        if "input" in d:
            try:
                d["input"] = InputKind(d["input"])
            except ValueError:
                raise ValueError(f"input must be 'image' or 'frames', not {d['input']!r}") from None
        d["image_size"] = tuple(d["image_size"])
        d["stem_channels"] = tuple(d["stem_channels"])
        d["stem_pool"] = tuple(bool(p) for p in d["stem_pool"])
        return cls(**d)

    def replace(self, **changes) -> ModelConfig:
        d = self.to_dict()
        d.update(changes)
        return ModelConfig.from_dict(d)


REFERENCE_CONFIGS: dict[str, ModelConfig] = {
    # Trained in the repo on scikit-learn's digits; sized so the whole accelerator fits
    # the iCE40 UP5K: its weights (about 65 kbit at 8 bits) take 22 of the 30 block RAMs,
    # and an MLP ratio of 1 keeps the spike buffers within its 5,280 logic cells.
    "digits-tiny": ModelConfig(
        name="digits-tiny", image_channels=1, image_size=(8, 8), time_steps=4,
        depth=1, dim=32, heads=2, mlp_ratio=1, sasa_mode=SasaMode.CHANNEL,
        stem_channels=(8,), stem_pool=(True,), num_classes=10),
    # Sized for the ECP5-85F's 208 x 18 kbit block RAM: about 2.2 Mbit of 8-bit weights.
    "cifar-mid": ModelConfig(
        name="cifar-mid", image_channels=3, image_size=(32, 32), time_steps=4,
        depth=2, dim=128, heads=4, mlp_ratio=2, sasa_mode=SasaMode.CHANNEL,
        stem_channels=(16, 32), stem_pool=(True, True), num_classes=10),
    "cifar-paper": ModelConfig(
        name="cifar-paper", image_channels=3, image_size=(32, 32), time_steps=4,
        depth=4, dim=384, heads=12, mlp_ratio=4, sasa_mode=SasaMode.CHANNEL,
        stem_channels=(96, 192), stem_pool=(True, True), num_classes=10),
}


def get_config(name: str) -> ModelConfig:
    try:
        return REFERENCE_CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown config {name!r}; known: {', '.join(REFERENCE_CONFIGS)}") from None
