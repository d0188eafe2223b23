#!/usr/bin/env python3
"""The quantized network of this study kit, in Python and NumPy alone.

Run it in the kit's folder:  python3 reference.py

It reads manifest.json (the network layer by layer) and the weights/ files, quantizes the images
vectors/x.npy, runs every layer on integers, and compares the quantized input and every layer's
output with the vectors/ files that cnnhw's golden model wrote: every value, with ==. It prints one
line per layer and, at the first difference, the layer, the image, the index, the value expected
and the value computed, and exits with status 1.

Everything is int64 NumPy arithmetic but two steps that are float by definition: quantizing the
input (x / scale, rounded) and the "onnxruntime" rescaling rule (onnxruntime multiplies in
float32). One short function per op; the rescaling rules come first.
"""

import json
import sys
from pathlib import Path

import numpy as np

KIT = Path(__file__).resolve().parent
#: The manifest this file reads (cnnhw's kit/__init__.py: KIT_FORMAT).
FORMAT = "cnnhw study kit 1"


def load(entry):
    """A tensor of the kit (a manifest entry with its "npy" file), as int64."""
    return np.load(KIT / entry["npy"]).astype(np.int64)


# ---------------------------------------------------------------------- rounding
def round_shift(value, shift, rounding):
    """value / 2**shift rounded to an integer: "half_up" is floor(value / 2**shift + 1/2);
    "half_even" sends a tie to the even neighbour."""
    if shift == 0:
        return value
    half = 1 << (shift - 1)
    if rounding == "half_up":
        return (value + half) >> shift  # >> on int64 is a flooring (arithmetic) shift
    quotient = value >> shift
    remainder = value & ((1 << shift) - 1)
    return quotient + ((remainder > half) | ((remainder == half) & (quotient % 2 == 1)))


def round_real(value, rounding):
    """A real number to the nearest integer: ties up, to even, or away from zero."""
    if rounding == "half_up":
        return np.floor(value + 0.5).astype(np.int64)
    if rounding == "half_even":
        return np.rint(value).astype(np.int64)
    return (np.sign(value) * np.floor(np.abs(value) + 0.5)).astype(np.int64)  # "half_away"


def per_channel(table, value, axis=1):
    """A per-channel table shaped to broadcast along ``axis`` of ``value``."""
    shape = [1] * value.ndim
    shape[axis] = -1
    return np.asarray(table).reshape(shape)  # integers stay int64, float32 scales float32


# ---------------------------------------------------------------------- rescaling rules
def rescale_cnnhw(rule, acc):
    """cnnhw's rule: clamp(round_shift(acc * M[c], shift), lo, hi); M[c] from the negative table
    where acc < 0 (a fused LeakyReLU)."""
    product = acc * per_channel(rule["multipliers"], acc)
    if "negative_multipliers" in rule:
        product = np.where(acc < 0, acc * per_channel(rule["negative_multipliers"], acc), product)
    return np.clip(round_shift(product, rule["shift"], rule["rounding"]), rule["lo"], rule["hi"])


def doubling_high_mul(a, b):
    """TFLite's SaturatingRoundingDoublingHighMul: (a * b + 2**30) >> 31 (b > 0)."""
    return (a * b + (1 << 30)) >> 31


def rounding_divide_by_pot(value, exponent):
    """TFLite's RoundingDivideByPOT: value / 2**exponent, rounded half away from zero."""
    mask = (1 << exponent) - 1
    remainder = value & mask
    threshold = (mask >> 1) + (value < 0)
    return (value >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(value, m0, shift):
    """TFLite's MultiplyByQuantizedMultiplier: value * m0 * 2**(shift - 31), two roundings."""
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    return rounding_divide_by_pot(doubling_high_mul(value << left, m0), right)


def rescale_tflite(rule, acc):
    """TFLite's conv/fully connected rule: clamp(acc * m0[c] * 2**(shift[c] - 31) + offset, lo, hi),
    rounded twice (MultiplyByQuantizedMultiplier) or once (TFLITE_SINGLE_ROUNDING)."""
    m0, shift = per_channel(rule["multipliers"], acc), per_channel(rule["shifts"], acc)
    if rule["single_rounding"]:
        total = 31 - shift
        scaled = (acc * m0 + (1 << (total - 1))) >> total
    else:
        scaled = multiply_by_quantized_multiplier(acc, m0, shift)
    return np.clip(scaled + rule["offset"], rule["lo"], rule["hi"])


def rescale_onnxruntime(rule, acc):
    """onnxruntime's rule (MlasRequantizeOutput): clamp(nearbyint(float32(acc) * scale[c]) + offset),
    scale[c] = mantissa[c] * 2**-exponent[c] as a float32, the product rounded to float32."""
    scale = np.ldexp(np.asarray(rule["mantissas"], dtype=np.float32), -np.asarray(rule["exponents"], dtype=np.int32))
    product = acc.astype(np.float32) * per_channel(scale.astype(np.float32), acc)  # float32 times float32
    return np.clip(np.rint(product).astype(np.int64) + rule["offset"], rule["lo"], rule["hi"])


RESCALE = {"cnnhw": rescale_cnnhw, "tflite": rescale_tflite, "onnxruntime": rescale_onnxruntime}


def divide(rule, sums, counts):
    """An average: the window sums over their element counts."""
    if rule["rule"] == "cnnhw_average":  # sum * round(2**shift / count), then >> shift rounded
        multipliers = np.asarray(rule["multipliers"], dtype=np.int64)[counts]
        return round_shift(sums * multipliers, rule["shift"], rule["rounding"])
    # "tflite_average": sum / count rounded half away from zero, then the fused activation's clamp
    quotient = np.sign(sums) * ((np.abs(sums) + counts // 2) // counts)
    return np.clip(quotient, rule["lo"], rule["hi"])


# ---------------------------------------------------------------------- ops
def quantize_input(x, spec):
    """The only float step: clamp(round(x / scale) + zero_point) (the division in float32 when the
    model's own quantizer does it so)."""
    fmt = spec["format"]
    lo, hi = (-(1 << (fmt["bits"] - 1)), (1 << (fmt["bits"] - 1)) - 1) if fmt["signed"] else (0, (1 << fmt["bits"]) - 1)
    kind = np.float32 if spec["float32"] else np.float64
    zero = spec["zero_point"]
    steps = np.clip(np.asarray(x, dtype=kind) / kind(spec["scale"]), lo - zero - 1, hi - zero + 1)
    return np.clip(round_real(steps, spec["rounding"]) + zero, lo, hi)


def conv(layer, x):
    """acc[n, o, r, s] = bias[o] + sum over the group's channels c and taps (i, j) of
    weight[o, c, i, j] * x_padded[n, c, r * stride + i * dilation, s * stride + j * dilation]."""
    weight, bias = load(layer["tensors"]["weight"]), load(layer["tensors"]["bias"])
    top, left, bottom, right = layer["pads"]
    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=layer["pad_value"])
    out_channels, group_channels, kh, kw = weight.shape
    (sh, sw), (dh, dw), (oh, ow) = layer["stride"], layer["dilation"], layer["out_shape"][1:]
    group_outputs = out_channels // layer["groups"]
    acc = np.zeros((len(x), out_channels, oh, ow), dtype=np.int64)
    for g in range(layer["groups"]):
        ins, outs = slice(g * group_channels, (g + 1) * group_channels), slice(g * group_outputs, (g + 1) * group_outputs)
        for i in range(kh):
            for j in range(kw):
                tap = padded[:, ins, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
                acc[:, outs] += np.einsum("nchw,oc->nohw", tap, weight[outs, :, i, j])
    acc += bias[None, :, None, None]
    return RESCALE[layer["rescale"]["rule"]](layer["rescale"], acc)


def dense(layer, x):
    """acc[n, o] = bias[o] + sum over i of weight[o, i] * x[n, i]."""
    weight, bias = load(layer["tensors"]["weight"]), load(layer["tensors"]["bias"])
    return RESCALE[layer["rescale"]["rule"]](layer["rescale"], x @ weight.T + bias)


def windows(layer, x, pad_value):
    """Every pooling window: (N, C, taps, out_h, out_w); a ceil-mode window reaching past the
    padding reads ``pad_value`` there too."""
    (kh, kw), (sh, sw), (dh, dw) = layer["kernel"], layer["stride"], layer["dilation"]
    top, left, bottom, right = layer["pads"]
    oh, ow = layer["out_shape"][1:]
    extra_h = max(0, (oh - 1) * sh + (kh - 1) * dh + 1 - (x.shape[2] + top + bottom))
    extra_w = max(0, (ow - 1) * sw + (kw - 1) * dw + 1 - (x.shape[3] + left + right))
    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom + extra_h), (left, right + extra_w)), constant_values=pad_value)
    return np.stack([padded[:, :, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
                     for i in range(kh) for j in range(kw)], axis=2)


def pool(layer, x, in_format):
    """Max pooling (padding holds the format's minimum: it never wins), or average pooling: each
    window's sum over the elements it counts (padding only with count_include_pad)."""
    if layer["kind"] == "max":
        lowest = -(1 << (in_format["bits"] - 1)) if in_format["signed"] else 0
        return windows(layer, x, lowest).max(axis=2)
    sums = windows(layer, x, 0).sum(axis=2)
    inside = np.ones((1, 1) + x.shape[2:], dtype=np.int64)
    top, left, bottom, right = layer["pads"]
    counted = np.pad(inside, ((0, 0), (0, 0), (top, bottom), (left, right)),
                     constant_values=1 if layer["count_include_pad"] else 0)
    counts = windows({**layer, "pads": [0, 0, 0, 0]}, counted, 0).sum(axis=2)
    return divide(layer["divide"], sums, np.broadcast_to(counts, sums.shape))


def global_pool(layer, x):
    if layer["kind"] == "max":
        return x.max(axis=(2, 3), keepdims=True)
    sums = x.sum(axis=(2, 3), keepdims=True)
    return divide(layer["divide"], sums, np.full(sums.shape, x.shape[2] * x.shape[3]))


def add(layer, inputs):
    """The sum of the inputs at the output scale. cnnhw: clamp(round_shift(sum(x[k] * M[k]), shift)).
    TFLite: each (x[k] + offset[k]) << 20 rescaled by its multiplier, the sum rescaled to the
    output, plus its zero point, clamped."""
    rule = layer["rescale"]
    if rule["rule"] == "cnnhw":
        total = sum(x * m for x, m in zip(inputs, rule["multipliers"]))
        return np.clip(round_shift(total, rule["shift"], rule["rounding"]), rule["lo"], rule["hi"])
    total = sum(multiply_by_quantized_multiplier((x + offset) << rule["left_shift"], m, s) for x, offset, m, s in
                zip(inputs, rule["input_offsets"], rule["input_multipliers"], rule["input_shifts"]))
    out = multiply_by_quantized_multiplier(total, rule["output_multiplier"], rule["output_shift"])
    return np.clip(out + rule["offset"], rule["lo"], rule["hi"])


def concat(layer, inputs):
    """Each input rescaled on its own, clamp(round_shift(x[k] * M[k], shift)), then all of them
    along the channels."""
    rule = layer["rescale"]
    return np.concatenate([np.clip(round_shift(x * m, rule["shift"], rule["rounding"]), rule["lo"], rule["hi"])
                           for x, m in zip(inputs, rule["multipliers"])], axis=1)


def run_layer(layer, inputs):
    op, x = layer["op"], inputs[0]
    if op == "Conv":
        return conv(layer, x)
    if op == "Dense":
        return dense(layer, x)
    if op in ("MaxPool", "AvgPool"):
        return pool(layer, x, layer["in_formats"][0])
    if op in ("GlobalMaxPool", "GlobalAvgPool"):
        return global_pool(layer, x)
    if op == "Reshape":
        return x.reshape((len(x),) + tuple(layer["out_shape"]))
    if op == "Clamp":
        return np.clip(x, layer["lo"], layer["hi"])
    if op == "Add":
        return add(layer, inputs)
    if op == "Concat":
        return concat(layer, inputs)
    if "table" in layer["tensors"]:  # a smooth activation: one output per input integer
        return load(layer["tensors"]["table"])[x - layer["table_first_input"]]
    raise SystemExit(f"reference.py: no op {op!r} (layer {layer['name']})")


def first_difference(expected, got):
    """(image, index within the image, expected, got) of the first value that differs, or None."""
    expected, got = expected.reshape(len(expected), -1), got.reshape(len(got), -1)
    where = np.argwhere(expected != got)
    if not len(where):
        return None
    image, index = where[0]
    return int(image), int(index), int(expected[image, index]), int(got[image, index])


def main():
    manifest = json.loads((KIT / "manifest.json").read_text())
    if manifest.get("format") != FORMAT:
        raise SystemExit(f"reference.py reads a manifest of format {FORMAT!r}, not {manifest.get('format')!r}")
    x = np.load(KIT / manifest["input"]["images"])
    outputs = {"input": quantize_input(x, manifest["input"])}
    checks = [("input", outputs["input"], load(manifest["input"]["quantized"]))]
    for layer in manifest["layers"]:
        outputs[layer["name"]] = run_layer(layer, [outputs[name] for name in layer["reads"]])
        checks.append((layer["name"], outputs[layer["name"]], load(layer["output"])))
    for name, got, expected in checks:
        if got.shape != expected.shape:
            print(f"{name}: shape {got.shape}, expected {expected.shape}")
            return 1
        difference = first_difference(expected, got)
        if difference is not None:
            image, index, want, value = difference
            print(f"{name}: image {image}, index {index}: expected {want}, got {value}")
            return 1
        print(f"{name}: {got.size:,} values equal ({len(got)} images)")
    last = outputs[manifest["layers"][-1]["name"]].reshape(len(x), -1)
    if manifest["has_classes"]:
        classes = (last[:, 0] > manifest["output"]["zero_point"]).astype(int) if last.shape[1] == 1 else last.argmax(1)
        print("classes:", " ".join(str(c) for c in classes[:20]) + (" ..." if len(classes) > 20 else ""))
    print(f"every layer equal on {len(x)} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
