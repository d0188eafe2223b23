"""ONNX models quantized by onnxruntime's ``quantize_static``, QDQ and QOperator, per tensor and per
channel: imported with their own integers, the integer model equals onnxruntime (its fused
kernels, ``session.x64quantprecision=1``) on every intermediate tensor of the whole LeNet-5 test
split, and the hardware computes them bit for bit; what cannot be reproduced exactly is refused
naming the node."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnhw.errors import UnsupportedModelError
from cnnhw.frontend import load_model
from cnnhw.golden.int_ref import run_int
from cnnhw.quant import quantize_graph
from cnnhw.quant.onnx_arith import OnnxRequantizer, float32_parts, round_half_even, round_to_float32, smear_right
from cnnhw.verify import first_mismatch

EXAMPLES = Path(__file__).parent.parent / "examples"
#: (format, activation type, per channel): QDQ in int8 (onnxruntime's advice for x86), QOperator
#: in uint8 activations (its QGemm takes no int8 activations on the CPU).
VARIANTS = [("QDQ", "QInt8", False), ("QDQ", "QInt8", True), ("QOperator", "QUInt8", False),
            ("QOperator", "QUInt8", True)]
IDS = [f"{fmt}-{'per_channel' if pc else 'per_tensor'}" for fmt, _, pc in VARIANTS]


def _quantize(variant, folder: Path) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    fmt, activations, per_channel = variant
    images = np.load(EXAMPLES / "lenet.calib.npz")["x"][:64].astype(np.float32)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"image": images[k:k + 1]} for k in range(len(images))])

        def get_next(self):
            return next(self.batches, None)

    path = folder / f"lenet-{fmt}-{'pc' if per_channel else 'pt'}.onnx"
    source = folder / "lenet.onnx"  # quantize_static writes a scratch model beside its input
    source.write_bytes((EXAMPLES / "lenet.onnx").read_bytes())
    quantize_static(str(source), str(path), Reader(), quant_format=getattr(QuantFormat, fmt),
                    per_channel=per_channel, activation_type=getattr(QuantType, activations),
                    weight_type=QuantType.QInt8)
    return path


@pytest.fixture(scope="module", params=VARIANTS, ids=IDS)
def quantized_lenet(request, tmp_path_factory):
    return _quantize(request.param, tmp_path_factory.mktemp("quantized"))


def _session(model, optimized: Path | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Without it, onnxruntime's int8 kernels on x86 without VNNI saturate in 16 bits (TOOLCHAIN.md).
    options.add_session_config_entry("session.x64quantprecision", "1")
    if optimized is not None:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _onnxruntime(model, x: np.ndarray, folder: Path) -> dict[str, np.ndarray]:
    """The integers onnxruntime computes, by node name (the input's QuantizeLinear as "input").

    The model is fused as onnxruntime fuses it (QLinearConv, QGemm, integer MaxPool:
    ``ORT_ENABLE_EXTENDED``, written out), and the fused model's tensors are read: asking the QDQ
    model itself for an inner tensor would keep onnxruntime from fusing the node that writes it
    (it would run the float op between a DequantizeLinear and a QuantizeLinear instead). An int8
    QDQ model is fused to uint8 activations (zero points + 128: the same integers plus 128)."""
    _session(model, folder / "fused.onnx")
    fused = onnx.load(folder / "fused.onnx")
    names = {node.output[0]: ("input" if node.op_type == "QuantizeLinear" else node.name)
             for node in fused.graph.node if node.op_type != "DequantizeLinear"}
    del fused.graph.output[:]
    for tensor in names:
        fused.graph.output.append(onnx.helper.make_empty_tensor_value_info(tensor))
    return dict(zip(names.values(), _session(fused).run(None, {model.graph.input[0].name: x})))


def test_the_integer_model_equals_onnxruntime_on_every_tensor_of_the_test_split(quantized_lenet, tmp_path):
    """All 359 test images: every layer's integers (convolutions, max pools, the flatten, the dense
    layers) equal the tensor onnxruntime's fused kernels write, and so do the classes."""
    model = onnx.load(quantized_lenet)
    qgraph = quantize_graph(load_model(quantized_lenet))
    x = np.load(EXAMPLES / "lenet.test.npz")["x"].astype(np.float32)
    expected = _onnxruntime(model, x, tmp_path)
    logits = _session(model).run(None, {"image": x})[0]  # the model as given: the same classes
    ours = run_int(qgraph, x, every_layer=True)
    assert np.array_equal(np.argmax(logits, axis=1), np.argmax(ours[-1], axis=1))
    formats = [qgraph.input.format] + [layer.out_format for layer in qgraph.layers]
    for name, fmt, got in zip(["input"] + [layer.name for layer in qgraph.layers], formats, ours):
        want = expected[name].astype(np.int64) - (128 if fmt.signed and expected[name].dtype == np.uint8 else 0)
        mismatch = first_mismatch(name, want.ravel().tolist(), got.ravel().tolist())
        assert mismatch is None, str(mismatch)


def test_quantize_reports_the_models_own_formats(quantized_lenet, cli, tmp_path):
    result = cli("quantize", "--model", quantized_lenet, "--json", tmp_path / "q.json")
    assert result.returncode == 0, result.stderr
    assert "the model's own integers (ONNX" in result.stdout and "onnxruntime" in result.stdout
    facts = json.loads((tmp_path / "q.json").read_text())
    assert all(layer["rule"] == "onnxruntime" for layer in facts["layers"] if "rule" in layer)


def test_the_hardware_computes_the_quantized_lenet_bit_for_bit(quantized_lenet, cli, tmp_path):
    """``cnnhw sim`` in Verilator on 5 test images: every layer's stream equals the integer model."""
    model = quantized_lenet
    x = np.load(EXAMPLES / "lenet.test.npz")["x"][:5]
    np.savez(tmp_path / "x.npz", x=x)
    result = cli("sim", "--model", model, "--inputs", tmp_path / "x.npz", "-o", tmp_path / "rtl", "--json",
                 tmp_path / "sim.json")
    assert result.returncode == 0, result.stdout + result.stderr
    facts = json.loads((tmp_path / "sim.json").read_text())
    assert (facts["images"], facts["bit_exact"], facts["simulator"]) == (5, True, "verilator")


# ------------------------------------------------------------------ the rule, against float32 itself

@settings(max_examples=500, deadline=None)
@given(st.integers(-(1 << 24) + 1, (1 << 24) - 1), st.floats(2.0 ** -23, 8.0, width=32), st.integers(-128, 127))
def test_the_requantization_is_onnxruntimes_float32_arithmetic(acc, scale, zero_point):
    """``nearbyint(float32(acc) * float32(scale)) + zero_point``, clamped (MLAS' requantization),
    for any accumulator float32 holds exactly."""
    m, exponent = float32_parts(scale)
    rule = OnnxRequantizer((m,), (exponent,), zero_point, -128, 127)
    product = np.float32(acc) * np.float32(scale)
    want = int(np.clip(np.rint(product) + zero_point, -128, 127)) if np.isfinite(product) else None
    if want is not None:
        assert int(rule(np.array([[acc]]))[0, 0]) == want


@given(st.integers(0, (1 << 40) - 1), st.integers(0, 30))
def test_smearing_and_rounding_half_to_even(value, position):
    assert int(smear_right(np.int64(value), 41)) == (1 << value.bit_length()) - 1
    assert int(round_half_even(np.int64(value), position)) == int(np.rint(value / 2 ** position))  # exact in double


@given(st.integers(0, (1 << 48) - 1))
def test_the_product_is_rounded_to_float32s_24_significant_bits(magnitude):
    """float32's own rounding of an exact integer (half to even), without a shifter."""
    assert int(round_to_float32(np.int64(magnitude))) == int(np.float32(magnitude))


# ------------------------------------------------------------------ refusals

def _with_node(path: Path, tmp_path: Path, op_type: str) -> Path:
    """The quantized model with its first Flatten replaced by ``op_type`` (a node cnnhw refuses)."""
    model = onnx.load(path)
    node = next(n for n in model.graph.node if n.op_type == "Flatten")
    node.op_type = op_type
    out = tmp_path / f"{op_type}.onnx"
    onnx.save(model, out)
    return out


@pytest.mark.parametrize("op_type, message", [
    ("QLinearAdd", "QLinearAdd node '/Flatten.*gives results that depend on which CPU kernel runs"),
    ("AveragePool", "AveragePool node '/Flatten.*does not reproduce yet"),
    ("Sigmoid", "Sigmoid node '/Flatten.*is not supported in a quantized model"),
])
def test_what_cannot_be_reproduced_exactly_is_refused_naming_the_node(op_type, message, tmp_path):
    path = _quantize(VARIANTS[0], tmp_path)
    with pytest.raises(UnsupportedModelError, match=message):
        load_model(_with_node(path, tmp_path, op_type))


def test_an_accumulator_float32_cannot_hold_exactly_is_refused(tmp_path):
    """A QLinearMatMul of 1,280 inputs, full-range uint8 activations and int8 weights: its
    accumulator can pass 2**24, where onnxruntime's float32 requantization rounds it."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    constants = {"s": np.float32(0.02), "z": np.uint8(128), "ws": np.float32(0.01), "wz": np.int8(0),
                 "w": rng.choice([-127, 127], size=(1280, 4)).astype(np.int8), "ys": np.float32(0.5),
                 "yz": np.uint8(128)}
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flatten"),
             helper.make_node("QuantizeLinear", ["f", "s", "z"], ["q"], name="quantize"),
             helper.make_node("QLinearMatMul", ["q", "s", "z", "w", "ws", "wz", "ys", "yz"], ["y"], name="matmul"),
             helper.make_node("DequantizeLinear", ["y", "ys", "yz"], ["out"], name="dequantize")]
    graph = helper.make_graph(nodes, "wide", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 32, 40])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4])],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in constants.items()])
    path = tmp_path / "wide.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    with pytest.raises(UnsupportedModelError, match="Flatten node 'flatten'"):
        load_model(path)  # a float Flatten before the input's QuantizeLinear: not the model's integers
    nodes[0:2] = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q4"], name="quantize"),
                  helper.make_node("Flatten", ["q4"], ["q"], name="flatten")]
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    with pytest.raises(UnsupportedModelError, match="QLinearMatMul node 'matmul': its accumulator can reach "
                                                    "20,807,680, past 2\\^24"):
        load_model(path)
