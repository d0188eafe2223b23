"""Random small networks (as ONNX) with random foldings, for whole-accelerator tests.

``random_network(seed)`` is deterministic. Across seeds the networks cover kernels 1/3/5,
strides 1/2, explicit symmetric/asymmetric padding and auto_pad SAME_UPPER/SAME_LOWER/VALID,
dilation 2, depthwise and grouped convolution, max/average/global pooling, dense layers,
1..16 channels, several foldings per layer, and 8- and 4-bit inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper

from cnnhw.plan import HardwarePlan, LayerPlan
from models import make_model


@dataclass
class NetworkSpec:
    seed: int
    model: onnx.ModelProto
    input_shape: tuple[int, int, int]
    bits: int
    signed_input: bool
    features: set = field(default_factory=set)

    def calibration(self, count: int = 16) -> np.ndarray:
        rng = np.random.default_rng(self.seed + 1)
        low = -1.0 if self.signed_input else 0.0
        return rng.uniform(low, 1.0, size=(count, *self.input_shape))


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def random_network(seed: int) -> NetworkSpec:
    rng = np.random.default_rng(seed)
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    channels = int(pick([1, 2, 3, 4]))
    size = int(rng.integers(7, 11))
    height, width = size, int(rng.integers(7, 11))
    nodes, arrays, features = [], {}, set()
    tensor = "x"
    shape = [channels, height, width]

    def add(op, inputs, **attrs):
        nonlocal tensor
        name = f"{op.lower()}{len(nodes)}"
        out = f"t{len(nodes)}"
        nodes.append(helper.make_node(op, [tensor] + inputs, [out], name=name, **attrs))
        tensor = out
        return name

    for block in range(int(rng.integers(1, 3))):
        c, h, w = shape
        kernel = int(pick([k for k in (1, 3, 5) if k <= min(h, w)]))
        stride = int(pick([1, 2]))
        dilation = int(pick([1, 1, 2])) if kernel > 1 and (kernel - 1) * 2 + 1 <= min(h, w) else 1
        span = (kernel - 1) * dilation + 1
        kind = pick(["plain", "plain", "depthwise", "grouped"])
        if kind == "depthwise" and c > 1:
            groups, out_c = c, c * int(pick([1, 2]))
            features.add("depthwise")
        elif kind == "grouped" and c % 2 == 0 and c > 2:
            groups, out_c = 2, 2 * int(rng.integers(1, 5))
            features.add("grouped")
        else:
            groups, out_c = 1, int(rng.integers(1, 17 if block else 9))
            if seed % 10 == 7 and block == 0:
                out_c = 16  # the widest layer the issue asks for, in every tenth network
        padding = pick(["none", "symmetric", "asymmetric", "SAME_UPPER", "SAME_LOWER", "VALID"])
        attrs = dict(kernel_shape=[kernel, kernel], strides=[stride, stride], dilations=[dilation, dilation],
                     group=groups)
        if padding in ("SAME_UPPER", "SAME_LOWER", "VALID"):
            attrs["auto_pad"] = padding
        elif padding == "symmetric":
            p = int(rng.integers(0, span))
            attrs["pads"] = [p, p, p, p]
        elif padding == "asymmetric":
            attrs["pads"] = [int(v) for v in rng.integers(0, span, size=4)]
        features |= {f"kernel{kernel}", f"stride{stride}", f"dilation{dilation}", f"pad:{padding}"}
        arrays[f"w{len(nodes)}"] = rng.normal(size=(out_c, c // groups, kernel, kernel)).astype(np.float32)
        arrays[f"b{len(nodes)}"] = rng.normal(size=out_c).astype(np.float32) * 0.3
        add("Conv", [f"w{len(nodes)}", f"b{len(nodes)}"], **attrs)
        activation = pick(["Relu", "Relu", "Clip", "LeakyRelu", "none"])
        if activation == "Relu":
            add("Relu", [])
        elif activation == "Clip":
            arrays[f"lo{len(nodes)}"], arrays[f"hi{len(nodes)}"] = np.float32(0), np.float32(2)
            add("Clip", [f"lo{len(nodes)}", f"hi{len(nodes)}"])
        elif activation == "LeakyRelu":
            add("LeakyRelu", [], alpha=0.125)
        features.add(f"act:{activation}")
        # Output size after this conv.
        if padding in ("SAME_UPPER", "SAME_LOWER"):
            h, w = -(-h // stride), -(-w // stride)
        else:
            pads = attrs.get("pads", [0, 0, 0, 0])
            h = (h + pads[0] + pads[2] - span) // stride + 1
            w = (w + pads[1] + pads[3] - span) // stride + 1
        shape = [out_c, h, w]
        features.add(f"channels{out_c}")
        if min(h, w) >= 2 and rng.random() < 0.6:
            pool = pick(["MaxPool", "AveragePool"])
            pool_kernel = int(pick([2, 3])) if min(h, w) >= 3 else 2
            pool_stride = int(pick([1, 2]))
            pool_pad = int(pick([0, 1])) if pool_kernel == 3 else 0
            ceil = int(pick([0, 1]))
            pool_attrs = dict(kernel_shape=[pool_kernel] * 2, strides=[pool_stride] * 2, pads=[pool_pad] * 4,
                              ceil_mode=ceil)
            if pool == "AveragePool":
                pool_attrs["count_include_pad"] = int(pick([0, 1]))
            add(pool, [], **pool_attrs)
            features.add(pool)
            room = [s + 2 * pool_pad - pool_kernel for s in (h, w)]
            if ceil:
                sizes = []
                for s, r in zip((h, w), room):
                    out = -(-r // pool_stride) + 1
                    if (out - 1) * pool_stride >= s + pool_pad:
                        out -= 1
                    sizes.append(out)
                h, w = sizes
            else:
                h, w = room[0] // pool_stride + 1, room[1] // pool_stride + 1
            shape = [out_c, h, w]
        if min(shape[1:]) < 3:
            break
    ending = pick(["GlobalAveragePool", "GlobalMaxPool", "flatten", "flatten"])
    if ending != "flatten":
        add(ending, [])
        features.add(ending)
        shape = [shape[0], 1, 1]
    add("Flatten", [])
    features_in = int(np.prod(shape))
    for index in range(int(rng.integers(1, 3))):
        outputs = int(rng.integers(2, 11))
        arrays[f"w{len(nodes)}"] = rng.normal(size=(outputs, features_in)).astype(np.float32)
        arrays[f"b{len(nodes)}"] = rng.normal(size=outputs).astype(np.float32)
        add("Gemm", [f"w{len(nodes)}", f"b{len(nodes)}"], transB=1)
        features.add("dense")
        features_in = outputs
    nodes[-1].output[0] = "y"
    bits = int(pick([8, 8, 4]))
    signed_input = bool(rng.random() < 0.3)
    features |= {f"input_bits{bits}", "signed_input" if signed_input else "unsigned_input"}
    model = make_model(nodes, arrays, ["N", channels, height, width], ["N", features_in], opset=13)
    return NetworkSpec(seed, model, (channels, height, width), bits, signed_input, features)


#: The most cycles per image a random plan gives a conv or dense layer's stage, when a folding
#: among the drawn ones is that fast.
MAX_FOLDED_CYCLES = 2500
#: The rescaler digit widths a random plan draws from.
DIGIT_BITS = (1, 4, 16)


def random_plan(qgraph, seed: int, minimal_rings: bool = False) -> HardwarePlan:
    """A random valid folding for every conv/dense layer (random rescaler digit width, products
    packed two per DSP, or one per DSP, or made of logic cells); with
    ``minimal_rings``, conv and pooling line buffers are randomly the smallest that work."""
    from cnnhw.hardware.network import hardware_op
    from cnnhw.quant.qgraph import QConv, QDense, QGlobalPool, QPool

    rng = np.random.default_rng(seed + 7)
    packing = np.random.default_rng(seed + 11)
    in_logic = np.random.default_rng(seed + 13)
    hurry = np.random.default_rng(seed + 17)
    layers = []
    for layer in qgraph.layers:
        overlap = not (minimal_rings and rng.random() < 0.5)
        if isinstance(layer, (QConv, QDense)):
            outputs, inputs = hardware_op(layer, LayerPlan(layer.name)).folding_limits()
        elif isinstance(layer, (QPool, QGlobalPool)):
            layers.append(LayerPlan(layer.name, overlap=overlap))
            continue
        else:
            continue
        pe = int(rng.choice(_divisors(outputs)[:4]))
        simd = int(rng.choice(_divisors(inputs)[:4]))
        digit_bits = int(rng.choice(DIGIT_BITS))
        # A stage that this folding would keep busy for more than MAX_FOLDED_CYCLES per image gets a
        # faster folding, drawn apart so that the other layers' draws stay put: simulating a stage
        # that takes tens of thousands of cycles tests nothing that a shorter one does not.
        cycles = lambda f: hardware_op(layer, LayerPlan(layer.name, *f)).cycles  # noqa: E731
        if cycles((pe, simd, digit_bits)) > MAX_FOLDED_CYCLES:
            drawn = [(p, q, d) for p in _divisors(outputs)[:4] for q in _divisors(inputs)[:4] for d in DIGIT_BITS]
            faster = [f for f in drawn if cycles(f) <= MAX_FOLDED_CYCLES]
            pe, simd, digit_bits = faster[int(hurry.integers(len(faster)))] if faster else min(drawn, key=cycles)
        # Packed products (two per DSP) where the operands allow, drawn apart so the other draws stay put.
        packed = bool(layer.in_format.bits <= 8 and layer.weight_format.bits <= 8 and packing.random() < 0.5)
        logic = bool(not packed and in_logic.random() < 0.3)
        layers.append(LayerPlan(layer.name, pe, simd, digit_bits, overlap, packed,
                                logic_products=logic))
    return HardwarePlan(tuple(layers))


#: The activations a random graph network draws after its convolutions.
GRAPH_ACTIVATIONS = ("Relu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Selu", "none")


def random_graph_network(seed: int) -> NetworkSpec:
    """A small random network with branches: a stem convolution, then one or two blocks, each a
    residual (a fork, one to three 3x3 convolutions on the long path, Add, sometimes ReLU), a
    strided residual with a 1x1 projection on its short path, or an Inception-like block (two or
    three branches of 1x1, 3x3, or 3x3 max pool then 1x1, joined by Concat); activations drawn
    from :data:`GRAPH_ACTIVATIONS`; global pooling and a dense layer at the end."""
    rng = np.random.default_rng(1000 + seed)
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    nodes, arrays, features = [], {}, set()
    counter = [0]

    def node(op, inputs, **attrs):
        counter[0] += 1
        out = f"t{counter[0]}"
        nodes.append(helper.make_node(op, inputs, [out], name=f"{op.lower()}{counter[0]}", **attrs))
        return out

    def conv(x, c_in, c_out, kernel, stride=1, activation=None):
        key = f"w{counter[0] + 1}"
        arrays[key] = (rng.normal(size=(c_out, c_in, kernel, kernel)) / np.sqrt(c_in * kernel * kernel)).astype(np.float32)
        arrays[key + "b"] = (rng.normal(size=c_out) * 0.2).astype(np.float32)
        y = node("Conv", [x, key, key + "b"], kernel_shape=[kernel, kernel], strides=[stride, stride],
                 pads=[kernel // 2] * 4)
        activation = activation or pick(GRAPH_ACTIVATIONS)
        features.add(f"act:{activation}")
        return y if activation == "none" else node(activation, [y])

    channels, size = int(rng.integers(1, 3)), int(rng.integers(5, 8))
    width = int(rng.integers(2, 5))
    x = conv("x", channels, width, 3)
    h = w = size
    for _ in range(int(rng.integers(1, 3))):
        kind = pick(["residual", "residual", "projection", "concat"])
        features.add(kind)
        if kind == "residual":
            long = x
            for k in range(int(rng.integers(1, 4))):
                long = conv(long, width, width, 3)
            x = node("Add", [long, x] if rng.random() < 0.5 else [x, long])
            if rng.random() < 0.5:
                x = node("Relu", [x])
        elif kind == "projection":
            wider = width + int(rng.integers(0, 3))
            long = conv(conv(x, width, wider, 3, stride=2), wider, wider, 3)
            short = conv(x, width, wider, 1, stride=2, activation="none")
            x = node("Add", [long, short])
            width, h, w = wider, -(-h // 2), -(-w // 2)
        else:
            branches = []
            for _ in range(int(rng.integers(2, 4))):
                out = int(rng.integers(1, 4))
                shape = pick(["1x1", "3x3", "pool"])
                features.add(f"branch:{shape}")
                if shape == "pool":
                    pooled = node("MaxPool", [x], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
                    branches.append((conv(pooled, width, out, 1), out))
                else:
                    branches.append((conv(x, width, out, 1 if shape == "1x1" else 3), out))
            x = node("Concat", [b for b, _ in branches], axis=1)
            width = sum(out for _, out in branches)
    pool = pick(["GlobalAveragePool", "GlobalMaxPool"])
    x = node("Flatten", [node(pool, [x])], axis=1)
    classes = int(rng.integers(2, 6))
    arrays["fc"] = rng.normal(size=(classes, width)).astype(np.float32)
    node("Gemm", [x, "fc"], transB=1)
    nodes[-1].output[0] = "y"
    model = make_model(nodes, arrays, ["N", channels, size, size], ["N", classes], opset=14)
    return NetworkSpec(seed, model, (channels, size, size), 8, False, features)
