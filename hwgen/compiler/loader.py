"""Read an integer model file and check that hwgen can build it, before any hardware exists.

`quant.model_file.load_model` refuses a malformed file; `check_supported`
refuses a well-formed model that the hardware blocks cannot implement, naming
the field, so no error ever surfaces from deep inside elaboration.
"""

from __future__ import annotations

from pathlib import Path

from hwgen.errors import HwgenError
from quant.checkpoints import BUNDLED_MODEL
from quant.config_file import resolve_config
from quant.ir import IntModel
from quant.model_file import load_model
from quant.random_model import random_int_model

MAX_PAYLOAD_BITS = 48  # widest value a stream lane carries (accumulators, membrane)
MAX_TIME_STEPS = 64


class UnsupportedModel(HwgenError):
    """A valid integer model that uses something the hardware does not implement."""


def check_supported(model: IntModel) -> IntModel:
    cfg = model.config

    def need(cond: bool, field: str, why: str) -> None:
        if not cond:
            raise UnsupportedModel(f"unsupported model: {field}: {why}")

    need(2 <= model.weight_bits <= 16, "weight_bits",
         f"must be 2..16, not {model.weight_bits}")
    need(cfg.time_steps <= MAX_TIME_STEPS, "config.time_steps",
         f"must be <= {MAX_TIME_STEPS}, not {cfg.time_steps}")
    need(cfg.num_classes >= 2, "config.num_classes", f"must be >= 2, not {cfg.num_classes}")
    need(cfg.pixel_bits <= 16, "config.pixel_bits", f"must be <= 16, not {cfg.pixel_bits}")
    need(bool(model.stem) and model.stem[0].conv.pixel_input != cfg.frames,
         "stem.0.conv.pixel_input", "the first stem conv must read event frames as spikes"
         if cfg.frames else "the first stem conv must read pixels")
    for i, stage in enumerate(model.stem[1:], start=1):
        need(not stage.conv.pixel_input, f"stem.{i}.conv.pixel_input",
             "only the first stem conv may read pixels")
    need(model.u_bits <= MAX_PAYLOAD_BITS, "u_bits",
         f"residual stream of {model.u_bits} bits exceeds {MAX_PAYLOAD_BITS}")
    for name, lif in model.named_lifs():
        need(lif.state_bits >= 2, f"{name}.state_bits", f"must be >= 2, not {lif.state_bits}")
        need(lif.state_bits <= MAX_PAYLOAD_BITS, f"{name}.state_bits",
             f"{lif.state_bits} bits exceeds {MAX_PAYLOAD_BITS}")
        need(0 <= lif.input_shift <= 8, f"{name}.input_shift",
             f"must be 0..8, not {lif.input_shift}")
        need(int(lif.vth.min()) >= 1, f"{name}.vth", "thresholds must be >= 1")
    for b, blk in enumerate(model.blocks):
        need(blk.q_lif.input_shift == blk.k_lif.input_shift, f"blocks.{b}.k_lif.input_shift",
             f"must equal q_lif's ({blk.q_lif.input_shift}): q and k share one LIF array")
        for layer in ("q", "k", "o", "dwc", "fc1", "fc2"):
            bits = getattr(blk, layer).acc_bits
            need(bits <= MAX_PAYLOAD_BITS, f"blocks.{b}.{layer}.acc_bits",
                 f"{bits} bits exceeds {MAX_PAYLOAD_BITS}")
    need(model.head.acc_bits <= MAX_PAYLOAD_BITS, "head.acc_bits",
         f"{model.head.acc_bits} bits exceeds {MAX_PAYLOAD_BITS}")
    return model


def load_supported(path: Path) -> IntModel:
    """The model in `path`, checked; raises a one-line HwgenError otherwise."""
    return check_supported(load_model(Path(path)))


def resolve_model(path: Path | str | None = None, config: str | None = None, *,
                  bits: int = 8, weight_seed: int = 0) -> IntModel:
    """The model a command works on, checked: the file `path`; or the config `config` (a
    reference config's name or a TOML file) with seeded random integer weights of `bits`
    bits; or the bundled digits-tiny."""
    if config and path:
        raise HwgenError("give either --model or --config, not both")
    if config:
        cfg = resolve_config(config)
        return check_supported(random_int_model(cfg, bits, seed=weight_seed))
    return load_supported(Path(path) if path else BUNDLED_MODEL)
