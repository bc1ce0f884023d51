"""Human-readable summary of an integer model (`hwgen inspect`)."""

from __future__ import annotations

from quant import golden
from quant.config import get_config
from quant.data import load_digits_split
from quant.ir import IntModel
from quant.model_file import UP5K_BRAM_BITS, layer_of, layout

KIND_LABEL = {"conv3x3": "conv3x3", "linear": "spike linear", "dwconv3x3": "depthwise 3x3",
              "lif": "LIF", "head": "head linear"}


def is_digits_tiny(model: IntModel) -> bool:
    return model.config == get_config("digits-tiny")


def digits_test_accuracy(model: IntModel) -> float:
    """Golden-model accuracy on the fixed digits test split (360 images)."""
    data = load_digits_split()
    pred = golden.predict(model, data.test_pixels)
    return float((pred == data.test_labels).double().mean())


def summary(model: IntModel, accuracy: bool = True, data=None) -> str:
    """`data`: a quant.datasets.DataSplit whose test part the accuracy run uses (default:
    the digits test split, for digits-tiny only)."""
    cfg = model.config
    h, w = cfg.grid
    lines = [
        f"{cfg.name}: SAFormer-{cfg.depth}-{cfg.dim}, T={cfg.time_steps}, {cfg.heads} heads, "
        f"mlp ratio {cfg.mlp_ratio}, SASA {cfg.sasa_mode.value} mode",
        (f"input event frames {cfg.time_steps}x2x{cfg.image_size[0]}x{cfg.image_size[1]} "
         "(0/1, one per time step)" if cfg.frames else
         f"input {cfg.image_channels}x{cfg.image_size[0]}x{cfg.image_size[1]} "
         f"({cfg.pixel_bits}-bit pixels)") + f", token grid {h}x{w} ({cfg.tokens} tokens), "
        f"{cfg.num_classes} classes",
        f"weights {model.weight_bits}-bit signed; residual stream U {model.u_bits}-bit signed",
        "",
        f"{'layer':<20} {'kind':<14} {'shape':<14} {'width':<11} thresholds / notes",
    ]
    pools = dict(enumerate(cfg.stem_pool))
    for spec in layout(cfg):
        layer = layer_of(model, spec.name)
        shape = "x".join(str(n) for n in spec.tensors.get("weight", spec.tensors.get("vth")))
        if spec.kind == "lif":
            vth = layer.vth
            width = f"state {layer.state_bits}"
            note = f"vth {int(vth.min())}..{int(vth.max())}"
            if layer.input_shift:
                note += f", input << {layer.input_shift}"
        else:
            width = f"acc {layer.acc_bits}"
            b = layer.bias
            note = f"bias {int(b.min())}..{int(b.max())}"
            if spec.kind == "conv3x3" and layer.pixel_input:
                note += ", pixel input (multiplies)"
        lines.append(f"{spec.name:<20} {KIND_LABEL[spec.kind]:<14} {shape:<14} {width:<11} {note}")
        if spec.name.startswith("stem.") and spec.name.endswith(".lif") and pools[int(spec.name.split(".")[1])]:
            lines.append(f"{spec.name[:-4] + '.pool':<20} {'max-pool 2x2':<14} {'':<14} {'':<11} OR of 4 spikes")
    bits = model.weight_memory_bits()
    fits = bits <= UP5K_BRAM_BITS
    lines += [
        "",
        f"parameters: {model.parameter_count():,} (weights and biases; thresholds not counted)",
        f"weight memory: {bits:,} bits at {model.weight_bits} bits per weight",
        f"iCE40 UP5K block RAM (30 x 4 kbit = {UP5K_BRAM_BITS:,} bits): weights "
        + (f"fit ({100 * bits / UP5K_BRAM_BITS:.0f} % used)" if fits
           else f"do NOT fit ({bits - UP5K_BRAM_BITS:,} bits over)"),
    ]
    for key, value in sorted(model.meta.items()):
        if isinstance(value, float) and "accuracy" in key:
            value = f"{100 * value:.2f} %"
        lines.append(f"meta.{key}: {value}")
    if accuracy and data is not None:
        acc = float((golden.predict(model, data.test_pixels) == data.test_labels).double().mean())
        lines.append(f"golden model accuracy on the test part of {data.source} "
                     f"({len(data.test_labels)} images): {100 * acc:.2f} %")
    elif accuracy:
        if is_digits_tiny(model):
            acc = digits_test_accuracy(model)
            lines.append(f"golden model accuracy on the digits test split (360 images): {100 * acc:.2f} %")
        else:
            lines.append(f"(no accuracy run: config {cfg.name!r} is not digits-tiny)")
    return "\n".join(lines)
