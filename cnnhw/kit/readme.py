"""The study kit's ``README.md``: the network layer by layer with its numbers, from the manifest.

Each layer's section gives its op, what it reads, its shapes, formats and MACs, its files, and its
arithmetic written with this layer's own constants (the rescaling rule as ``reference.py`` spells
it out), so that a reader can follow one value from the input to the class by hand.
"""

from __future__ import annotations


def _span(values) -> str:
    values = list(values)
    if len(set(values)) == 1:
        return f"{values[0]}"
    return f"{min(values)}..{max(values)} (per channel)"


def rule_text(rule: dict) -> str:
    """The rescaling rule of a layer, with its constants, as one formula."""
    kind = rule["rule"]
    if kind == "cnnhw":
        negative = (f"; where acc < 0, M = {_span(rule['negative_multipliers'])} (a fused LeakyReLU)"
                    if "negative_multipliers" in rule else "")
        return (f"y = clamp(round_shift(acc * M[c], {rule['shift']}), {rule['lo']}, {rule['hi']}) with "
                f"M[c] = {_span(rule['multipliers'])}, rounding {rule['rounding']}{negative}")
    if kind == "tflite":
        roundings = "one rounding" if rule["single_rounding"] else "two roundings (MultiplyByQuantizedMultiplier)"
        return (f"y = clamp(acc * m0[c] * 2^(shift[c] - 31){_plus(rule['offset'])}, {rule['lo']}, {rule['hi']}) with "
                f"m0[c] = {_span(rule['multipliers'])}, shift[c] = {_span(rule['shifts'])}, {roundings}")
    if kind == "onnxruntime":
        return (f"y = clamp(nearbyint(float32(acc) * scale[c]){_plus(rule['offset'])}, {rule['lo']}, {rule['hi']}) with "
                f"scale[c] = mantissa[c] * 2^-exponent[c] in float32, mantissa[c] = {_span(rule['mantissas'])}, "
                f"exponent[c] = {_span(rule['exponents'])}")
    if kind == "tflite_add":
        return (f"each input k: ((x_k + {rule['input_offsets']}[k]) << {rule['left_shift']}) * m_k * 2^(s_k - 31) "
                f"with m = {rule['input_multipliers']}, s = {rule['input_shifts']}; their sum * "
                f"{rule['output_multiplier']} * 2^({rule['output_shift']} - 31){_plus(rule['offset'])}, clamped to "
                f"[{rule['lo']}, {rule['hi']}]")
    if kind == "cnnhw_average":
        return (f"y = round_shift(sum * M[n], {rule['shift']}) with M[n] = round(2^{rule['shift']} / n) for a "
                f"window of n elements, rounding {rule['rounding']}")
    if kind == "tflite_average":
        return f"y = clamp(sum / n rounded half away from zero, {rule['lo']}, {rule['hi']})"
    return kind


def _plus(value: int) -> str:
    """`` + 4`` or `` - 128``: an offset written into a formula."""
    return f" + {value}" if value >= 0 else f" - {-value}"


def _shape(shape) -> str:
    return " x ".join(str(n) for n in shape)


def _layer_section(layer: dict) -> list[str]:
    lines = [f"### {layer['index']}. {layer['name']} ({layer['op']})", ""]
    reads = ", ".join(f"`{name}` ({_shape(shape)}, {fmt['name']})" for name, shape, fmt in
                      zip(layer["reads"], layer["in_shapes"], layer["in_formats"]))
    lines.append(f"- reads {reads}; writes {_shape(layer['out_shape'])} in {layer['out_format']['name']} "
                 f"(scale {layer['out_scale']:.6g}, zero point {layer['out_zero_point']})")
    op = layer["op"]
    if op == "Conv":
        weight = layer["tensors"]["weight"]
        lines.append(f"- weights {_shape(weight['shape'])} in {layer['weight_format']['name']}, stride "
                     f"{layer['stride']}, pads (top, left, bottom, right) {layer['pads']} filled with "
                     f"{layer['pad_value']}, dilation {layer['dilation']}, {layer['groups']} group(s); "
                     f"{layer['macs']:,} MACs per image")
        lines.append(f"- acc = bias[o] + sum of weight * input over the window, in {layer['acc_format']['name']}")
    elif op == "Dense":
        weight = layer["tensors"]["weight"]
        lines.append(f"- weights {_shape(weight['shape'])} in {layer['weight_format']['name']}; "
                     f"{layer['macs']:,} MACs per image")
        lines.append(f"- acc = bias[o] + sum of weight[o, i] * x[i], in {layer['acc_format']['name']}")
    elif op in ("MaxPool", "AvgPool"):
        lines.append(f"- {layer['kind']} over {layer['kernel']} windows, stride {layer['stride']}, pads {layer['pads']}"
                     f"{', ceil mode' if layer['ceil_mode'] else ''}"
                     f"{', padding counted' if layer.get('count_include_pad') and layer['kind'] != 'max' else ''}")
    elif op == "Clamp":
        lines.append(f"- y = clamp(x, {layer['lo']}, {layer['hi']})")
    elif "table_first_input" in layer:
        lines.append(f"- {layer['function']}: y = table[x - ({layer['table_first_input']})]")
    for key in ("rescale", "divide"):
        if key in layer:
            lines.append(f"- {rule_text(layer[key])}")
    for name, entry in layer["tensors"].items():
        if name == "weight_hw":
            lines.append(f"- `{entry['hex']}`: the {entry['words']:,} words of {entry['word_bits']} bits the "
                         f"hardware reads, in its order ({entry['order']}; `{entry['index']}`)")
        else:
            lines.append(f"- `{entry['npy']}`, `{entry['hex']}`: {name}, {_shape(entry['shape'])} "
                         f"{entry['order']}, {entry['format']['name']}")
    lines.append(f"- output: `{layer['output']['npy']}`, `{layer['output']['hex']}` {layer['output']['order']}")
    return lines + [""]


def readme(manifest: dict) -> str:
    source = manifest["input"]
    lines = [
        f"# {manifest['model']}: every integer of the quantized network", "",
        f"Exported by cnnhw from `{manifest['model_file']}` (quantization: {manifest['calibration']}). "
        f"{len(manifest['layers'])} layers, {manifest['macs']:,} multiply-accumulates per image. "
        f"The vectors are {manifest['vectors']['images']} images ({manifest['vectors']['source']}).", "",
        "## Run the references", "",
        "```sh",
        "python3 reference.py                     # NumPy only: every layer of every image compared, ==",
        "cc -std=c99 -O2 -o reference reference.c -lm && ./reference   # C99 only: the same from the .hex files",
        "```", "",
        "Both read the files of this folder (`manifest.json`; the C one `network.txt` and the `.hex` files), "
        "compute the network on integers, compare the quantized input and every layer's output with "
        "`vectors/`, and print the first difference (layer, image, index, expected, got) if there is one.", "",
        "## Files", "",
        "- `.npy`: NumPy arrays, in the narrowest integer type of their format; `.hex`: `$readmemh` files, one value "
        "per line in the array's row-major order, as two's complement of the format's width.",
        "- Weights in the model's order: a convolution's (out channel, in channel of its group, row, column), a dense "
        "layer's (output, input). `weight_hw.hex`: the words the generated hardware's matrix-vector unit reads, in "
        "the order it reads them; `weight_hw_index.npy` says which model-order weight each lane of each word is.",
        "- `round_shift(v, s)` is v / 2^s rounded to an integer (half up: (v + 2^(s-1)) >> s with a flooring shift); "
        "`clamp(v, lo, hi)` saturates.", "",
        "## The network", "",
        f"Input: {_shape(source['shape'])} real values, quantized as q = clamp(round(x / {source['scale']:.9g})"
        f"{_plus(source['zero_point'])}) in {source['format']['name']} (rounding {source['rounding']}"
        f"{', the division in float32' if source['float32'] else ''}): `{source['quantized']['npy']}`.", "",
    ]
    for layer in manifest["layers"]:
        lines += _layer_section(layer)
    output = manifest["output"]
    dropped = f" (the model's final {manifest['dropped']} is left to the host)" if manifest["dropped"] else ""
    lines.append(f"Output: `{output['layer']}`, real value = {output['scale']:.6g} * (q{_plus(-output['zero_point'])})"
                 f"{dropped}; " + ("the class is the index of the largest value." if manifest["has_classes"]
                                   else "the values are the result (no classes)."))
    return "\n".join(lines) + "\n"


def network_text(manifest: dict) -> str:
    """The manifest's network as ``key value...`` lines, one ``layer`` block per layer, for the C
    reference (which parses no JSON)."""
    def fmt(f):
        return f"{f['bits']} {int(f['signed'])}"

    source = manifest["input"]
    roundings = {"half_up": 0, "half_even": 1, "half_away": 2}
    lines = [f"images {manifest['vectors']['images']}",
             f"input {len(source['shape'])} {' '.join(map(str, source['shape']))} {fmt(source['format'])} "
             f"{source['quantized']['hex']}",
             f"quantize {source['scale']!r} {source['zero_point']} {roundings[source['rounding']]} "
             f"{int(source['float32'])} vectors/x.txt"]
    names = {"input": 0, **{layer["name"]: layer["index"] for layer in manifest["layers"]}}
    for layer in manifest["layers"]:
        lines.append(f"layer {layer['index']} {layer['op']}")
        lines.append(f"reads {len(layer['reads'])} {' '.join(str(names[name]) for name in layer['reads'])}")
        lines.append(f"out {len(layer['out_shape'])} {' '.join(map(str, layer['out_shape']))} "
                     f"{fmt(layer['out_format'])} {layer['output']['hex']}")
        for key in ("kernel", "stride", "pads", "dilation"):
            if key in layer:
                lines.append(f"{key} {' '.join(map(str, layer[key]))}")
        for key in ("groups", "pad_value", "lo", "hi", "table_first_input"):
            if key in layer:
                lines.append(f"{key} {layer[key]}")
        if "kind" in layer:
            lines.append(f"kind {layer['kind']}")
        if "count_include_pad" in layer:
            lines.append(f"count_include_pad {int(layer['count_include_pad'])}")
        for name, entry in layer["tensors"].items():
            if "shape" in entry:
                lines.append(f"tensor {name} {len(entry['shape'])} {' '.join(map(str, entry['shape']))} "
                             f"{fmt(entry['format'])} {entry['hex']}")
        for key in ("rescale", "divide"):
            if key in layer:
                lines.append(_rule_line(key, layer[key]))
        lines.append("end")
    return "\n".join(lines) + "\n"


def _rule_line(key: str, rule: dict) -> str:
    """A rule's scalar constants on one line: ``rescale RULE name value ...`` (lists: count then values)."""
    parts = [key, rule["rule"]]
    for name, value in rule.items():
        if name == "rule" or (isinstance(value, list) and name in ("multipliers", "negative_multipliers", "shifts",
                                                                    "mantissas", "exponents")):
            continue  # per-channel tables are tensors
        if isinstance(value, list):
            parts += [name, str(len(value)), *map(str, value)]
        elif isinstance(value, bool):
            parts += [name, str(int(value))]
        elif isinstance(value, str):
            parts += [name, {"half_up": "0", "half_even": "1"}.get(value, value)]
        else:
            parts += [name, str(value)]
    return " ".join(parts)
