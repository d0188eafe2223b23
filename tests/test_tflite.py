"""TFLite int8 models (the MLPerf Tiny reference models, as published): imported with their own
integers, the integer model equals TFLite's reference kernels on every intermediate tensor, and
the hardware computes them bit for bit (Verilator for the MLPerf models, Amaranth's simulator for
written ones); TFLite's arithmetic rules against literal transcriptions of its C++; damaged files
refused in one line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import tflite
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnhw.errors import ModelError, UnsupportedModelError
from cnnhw.flow.verilog import export_verilog
from cnnhw.frontend import load_model
from cnnhw.golden.evaluate import layer_errors
from cnnhw.golden.int_ref import run_int
from cnnhw.ir.reference import run_float
from cnnhw.hardware import Network, hardware_refusal
from cnnhw.quant import quantize_graph
from cnnhw.quant.tflite_arith import (TFLiteAverage, doubling_high_mul, multiply_by_quantized_multiplier,
                                      quantize_multiplier, rounding_divide_by_pot)
from cnnhw.sim.runner import simulate_export
from cnnhw.verify import expected_streams, first_mismatch
from netgen import random_plan
from tests.gateware.harness import assert_bit_exact, simulate
from tflite_writer import ModelWriter

DATA = Path(__file__).parent / "data" / "mlperf_tiny"
MODELS = {"kws": DATA / "kws_ref_model.tflite", "resnet8": DATA / "pretrainedResnet_quant.tflite"}


def _reference(path: Path):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # TFLite's reference kernels: the default XNNPACK delegate rounds differently.
    interpreter = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                              experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    return interpreter


def _operator_outputs(path: Path) -> list[int]:
    """The tensor each operator writes, in the file's order."""
    subgraph = tflite.Model.GetRootAsModel(path.read_bytes(), 0).Subgraphs(0)
    return [int(subgraph.Operators(k).OutputsAsNumpy()[0]) for k in range(subgraph.OperatorsLength())]


def _nchw(tensor: np.ndarray) -> np.ndarray:
    return np.transpose(tensor, (0, 3, 1, 2)) if tensor.ndim == 4 else tensor


def assert_same_as_reference(path: Path, count: int, seed: int) -> None:
    """Run TFLite's reference kernels and cnnhw's integer model on ``count`` random inputs over the
    input type's whole range, and compare every layer's integers with the tensor the operator it
    comes from writes (a flatten in cnnhw's (C, H, W) order, TFLite's being (H, W, C))."""
    qgraph = quantize_graph(load_model(path))
    interpreter, outputs = _reference(path), _operator_outputs(path)
    detail = interpreter.get_input_details()[0]
    info = np.iinfo(detail["dtype"])
    rng = np.random.default_rng(seed)
    images = rng.integers(info.min, info.max + 1, size=(count, *detail["shape"][1:])).astype(detail["dtype"])
    # cnnhw's data are real values in (N, C, H, W); the input quantizer gives the integers back.
    ours = run_int(qgraph, _nchw((images.astype(np.float64) - qgraph.input.zero_point) * qgraph.input.scale),
                   every_layer=True)
    assert np.array_equal(ours[0], _nchw(images))
    expected = {layer.name: [] for layer in qgraph.layers}
    for image in images:
        interpreter.set_tensor(detail["index"], image[None])
        interpreter.invoke()
        for layer in qgraph.layers:
            want = _nchw(interpreter.get_tensor(outputs[int(layer.name.rsplit("_", 1)[1])]))[0]
            if layer.label == "Reshape":
                c, h, w = layer.in_shape
                want = want.reshape(h, w, c).transpose(2, 0, 1)
            expected[layer.name].append(want)
    for layer, got in zip(qgraph.layers, ours[1:]):
        mismatch = first_mismatch(layer.name, np.stack(expected[layer.name]).ravel().tolist(), got.ravel().tolist())
        assert mismatch is None, str(mismatch)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_integer_model_equals_tflites_reference_kernels_on_every_tensor(name):
    """200 random int8 inputs over the whole range: every layer's integers (convolutions, depthwise
    convolutions, ADDs, the average pool, the fully connected layer) equal the tensor the TFLite
    operator it comes from writes."""
    assert_same_as_reference(MODELS[name], 200, seed=200)


@pytest.mark.parametrize("name, params, macs", [("kws", 22_604, 2_656_768), ("resnet8", 77_706, 12_501_632)])
def test_the_import_has_the_published_sizes_and_its_own_formats(name, params, macs):
    graph = load_model(MODELS[name])
    assert (graph.params, graph.macs) == (params, macs)  # MLCommons' figures
    qgraph = quantize_graph(graph)
    assert qgraph is graph.integer_model and qgraph.dropped == "Softmax"
    assert all(str(layer.out_format) == "s8" for layer in qgraph.layers)
    assert all(layer.requant.rule == "tflite" for layer in qgraph.layers if hasattr(layer, "requant"))
    if name == "kws":
        assert (qgraph.input.scale, qgraph.input.zero_point) == (pytest.approx(0.5847029), 83)
        labels = [layer.label for layer in qgraph.layers]
        assert labels == ["Conv"] * 9 + ["AvgPool", "Reshape", "Dense"]
    else:
        assert [layer.label for layer in qgraph.layers].count("Add") == 3 and not qgraph.is_chain


def test_the_float_view_is_the_dequantized_model():
    """``predict --golden float`` runs the dequantized weights: on ResNet-8 every layer's integers,
    dequantized with their zero points, are within 20 dB of it (measured 23.7 to 32.8 dB on 50
    random inputs). (KWS's int8 activations saturate on random inputs, which are no MFCCs: the float
    view does not, so the comparison would measure the saturation.)"""
    qgraph = quantize_graph(load_model(MODELS["resnet8"]))
    images = np.random.default_rng(4).integers(-128, 128, size=(50, *qgraph.graph.input_shape))
    errors = layer_errors(qgraph, (images - qgraph.input.zero_point) * qgraph.input.scale)
    assert min(error.sqnr_db for error in errors) >= 20, [(e.name, round(e.sqnr_db, 1)) for e in errors]


def _real_inputs(qgraph, count: int, seed: int) -> np.ndarray:
    """``count`` random inputs over the input type's whole range, as the real values cnnhw's data
    files hold (N, C, H, W)."""
    fmt = qgraph.input.format
    images = np.random.default_rng(seed).integers(fmt.lo, fmt.hi + 1, size=(count, *qgraph.graph.input_shape))
    return ((images - qgraph.input.zero_point) * qgraph.input.scale).astype(np.float32)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_hardware_computes_the_models_integers_bit_for_bit(name, cli, tmp_path):
    """``cnnhw sim`` on 5 random inputs, a random plan (folding, packed or logic products, rescaler
    digits, line buffers): every layer's stream in Verilator equals the integer model, which
    equals TFLite's reference kernels (above): input zero point padding, per-channel shifts, ADD,
    the average pool and the fully connected layer's single rounding included."""
    qgraph = quantize_graph(load_model(MODELS[name]))
    assert hardware_refusal(qgraph.graph) is None
    (tmp_path / "plan.json").write_text(random_plan(qgraph, seed=len(name)).dumps())
    np.savez(tmp_path / "x.npz", x=_real_inputs(qgraph, 5, seed=5))
    result = cli("sim", "--model", MODELS[name], "--inputs", tmp_path / "x.npz", "--plan", tmp_path / "plan.json",
                 "-o", tmp_path / "rtl", "--json", tmp_path / "sim.json")
    assert result.returncode == 0, result.stdout + result.stderr
    facts = json.loads((tmp_path / "sim.json").read_text())
    assert (facts["images"], facts["bit_exact"], facts["simulator"]) == (5, True, "verilator")


# ------------------------------------------------------------------ the rules, against TFLite's C++

INT32 = st.integers(-(1 << 31), (1 << 31) - 1)


def _c_division(a: int, b: int) -> int:
    """C's integer division: truncation towards zero."""
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b > 0) else -quotient


def _srdhm(a: int, b: int) -> int:
    """gemmlowp's SaturatingRoundingDoublingHighMul, line by line."""
    if a == b == -(1 << 31):
        return (1 << 31) - 1
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return _c_division(ab + nudge, 1 << 31)


def _rdbpot(x: int, exponent: int) -> int:
    """gemmlowp's RoundingDivideByPOT, line by line (int32 two's complement)."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


@given(INT32, st.integers(0, (1 << 31) - 1))
def test_doubling_high_mul_is_gemmlowps(a, b):
    assert int(doubling_high_mul(np.int64(a) * np.int64(b))) == _srdhm(a, b)


@given(INT32, st.integers(0, 31))
def test_rounding_divide_by_pot_rounds_half_away_from_zero(x, exponent):
    got = int(rounding_divide_by_pot(np.int64(x), exponent))
    assert got == _rdbpot(x, exponent)
    exact = x / 2 ** exponent
    assert got == int(math.copysign(math.floor(abs(exact) + 0.5), exact))


@given(st.floats(1e-9, 1e4, allow_nan=False))
def test_quantize_multiplier_is_a_q31_fraction_and_an_exponent(real):
    m0, shift = quantize_multiplier(real)
    assert 1 << 30 <= m0 < 1 << 31
    assert abs(m0 * 2.0 ** (shift - 31) - real) <= real * 2.0 ** -30


@given(st.integers(-(1 << 20), 1 << 20), st.integers(1 << 30, (1 << 31) - 1), st.integers(-20, 3))
def test_multiply_by_quantized_multiplier_is_tflites(x, m0, shift):
    left, right = max(shift, 0), max(-shift, 0)
    assert int(multiply_by_quantized_multiplier(np.int64(x), m0, shift)) == _rdbpot(_srdhm(x * (1 << left), m0), right)


def _average_pool(total: int, count: int) -> int:
    """TFLite's reference AveragePool (integer_ops/pooling.h), line by line, before the clamp."""
    return (total + count // 2) // count if total > 0 else _c_division(total - count // 2, count)


@pytest.mark.parametrize("counts, element", [((1, 2, 3, 4, 6, 9), (-128, 127)), ((25, 64, 125), (-128, 127)),
                                             ((4, 8, 16), (0, 255))])
def test_the_average_without_a_divider_is_tflites_division(counts, element):
    """Every window sum a pool of these counts and this input format can have: the multiply,
    add and shift of ``TFLiteAverage`` equal TFLite's C division, rounding half away from zero."""
    divider = TFLiteAverage.for_windows(-1 << 20, 1 << 20, counts, *element)  # no clamp: the division alone
    for count in counts:
        sums = np.arange(count * element[0], count * element[1] + 1)
        want = [_average_pool(int(total), count) for total in sums]
        assert divider(sums, np.full(sums.shape, count)).tolist() == want


# ------------------------------------------------------------------ bad files


def _patched_last_opcode(tmp_path, code: int) -> Path:
    """The KWS model with its last operator's opcode (SOFTMAX) changed to ``code``."""
    data = bytearray(MODELS["kws"].read_bytes())
    model = tflite.Model.GetRootAsModel(bytes(data), 0)
    subgraph = model.Subgraphs(0)
    opcode = model.OperatorCodes(subgraph.Operators(subgraph.OperatorsLength() - 1).OpcodeIndex())
    table = opcode._tab
    for slot, size in ((4, 1), (10, 4)):  # deprecated_builtin_code (int8), builtin_code (int32)
        offset = table.Offset(slot)
        if offset:
            data[table.Pos + offset:table.Pos + offset + size] = code.to_bytes(size, "little", signed=True)
    path = tmp_path / "patched.tflite"
    path.write_bytes(bytes(data))
    return path


def test_an_unsupported_operator_is_named_with_its_index(tmp_path):
    path = _patched_last_opcode(tmp_path, tflite.BuiltinOperator.TANH)
    with pytest.raises(UnsupportedModelError, match=r"TANH \(operator 12\) is not supported"):
        load_model(path)


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b"\x18\x00\x00\x00ONNX" + bytes(40), "not a TFLite flatbuffer"),
    (None, "truncated or corrupt"),
])
def test_a_damaged_file_is_one_clear_error(content, message, tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(MODELS["kws"].read_bytes()[:2000] if content is None else content)
    with pytest.raises(ModelError, match=message):
        load_model(path)


def test_predict_and_inspect_take_a_tflite_model(cli, tmp_path):
    model = tmp_path / "kws.tflite"
    model.write_bytes(MODELS["kws"].read_bytes())
    images = np.random.default_rng(3).integers(-128, 128, size=(4, 1, 49, 10))
    np.savez(tmp_path / "x.npz", x=((images - 83) * 0.5847029).astype(np.float32))
    result = cli("predict", "--model", model, "--inputs", tmp_path / "x.npz", "--golden", "int", "-o",
                 tmp_path / "p.npz")
    assert result.returncode == 0, result.stderr
    interpreter = _reference(MODELS["kws"])
    logits = []
    for image in images:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"],
                               image.transpose(1, 2, 0)[None].astype(np.int8))
        interpreter.invoke()
        logits.append(interpreter.get_tensor(_operator_outputs(MODELS["kws"])[11])[0])
    assert np.array_equal(np.load(tmp_path / "p.npz")["classes"], np.argmax(logits, axis=1))
    result = cli("inspect", "--model", model, "--json", tmp_path / "inspect.json")
    assert result.returncode == 0, result.stderr
    assert "integers: the model's own integers (TFLite int8); input s8, scale 0.584703, zero point 83" in result.stdout
    facts = json.loads((tmp_path / "inspect.json").read_text())
    assert facts["own_integers"]["input_zero_point"] == 83 and facts["hardware"]["supported"]


# ------------------------------------------------------------------ small models against the reference

B, PADDING = tflite.BuiltinOperator, tflite.Padding
ACTIVATION = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}


def _same_as_reference(writer, x: int, y: int, seed: int, tmp_path) -> None:
    """Write the model and compare it with TFLite's reference kernels on 3 random inputs."""
    path = tmp_path / "model.tflite"
    path.write_bytes(writer.write([x], [y]))
    assert_same_as_reference(path, 3, seed)


def _scales(draw, count: int) -> list[float]:
    return [draw(st.floats(0.002, 0.05)) for _ in range(count)]


@st.composite
def _depthwise(draw):
    channels, multiplier = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    return dict(channels=channels, multiplier=multiplier, size=(draw(st.integers(3, 7)), draw(st.integers(3, 7))),
                kernel=draw(st.integers(1, 3)), stride=draw(st.integers(1, 2)),
                padding=draw(st.sampled_from([PADDING.SAME, PADDING.VALID])),
                activation=draw(st.sampled_from(sorted(ACTIVATION))), zero_point=draw(st.integers(-128, 127)),
                in_scale=draw(st.floats(0.01, 0.2)), weight_scales=_scales(draw, channels * multiplier),
                out_scale=draw(st.floats(0.02, 0.3)), out_zero=draw(st.integers(-128, 127)),
                seed=draw(st.integers(0, 1000)))


def _depthwise_model(case: dict):
    """x -> DEPTHWISE_CONV_2D -> y, as ``case`` (:func:`_depthwise`) says."""
    rng = np.random.default_rng(case["seed"])
    c, m, (h, w), k = case["channels"], case["multiplier"], case["size"], case["kernel"]
    writer = ModelWriter()
    x = writer.tensor([1, h, w, c], scale=case["in_scale"], zero_point=case["zero_point"])
    weights = writer.tensor([1, k, k, c * m], data=rng.integers(-127, 128, size=(1, k, k, c * m)),
                            scale=case["weight_scales"], zero_point=[0] * (c * m), axis=3)
    bias = writer.tensor([c * m], tflite.TensorType.INT32, data=rng.integers(-3000, 3000, c * m),
                         scale=[case["in_scale"] * s for s in case["weight_scales"]], zero_point=[0] * (c * m))
    out_h, out_w = ((h - k) // case["stride"] + 1, (w - k) // case["stride"] + 1) \
        if case["padding"] == PADDING.VALID else (-(-h // case["stride"]), -(-w // case["stride"]))
    y = writer.tensor([1, out_h, out_w, c * m], scale=case["out_scale"], zero_point=case["out_zero"])
    writer.operator(B.DEPTHWISE_CONV_2D, [x, weights, bias], [y], "DepthwiseConv2DOptions", Padding=case["padding"],
                    StrideW=case["stride"], StrideH=case["stride"], DepthMultiplier=m,
                    FusedActivationFunction=ACTIVATION[case["activation"]], DilationWFactor=1, DilationHFactor=1)
    return writer, x, y


@settings(max_examples=100, deadline=None)
@given(_depthwise())
def test_depthwise_convolution_with_a_channel_multiplier_is_tflites(tmp_path_factory, case):
    """Any depth multiplier, stride, SAME padding (which inserts the input's zero point) or VALID,
    fused activations, per-channel weight scales: TFLite's reference DEPTHWISE_CONV_2D, exactly."""
    _same_as_reference(*_depthwise_model(case), case["seed"], tmp_path_factory.mktemp("dw"))


def _residual_model(channels: int, kernel: int, stride: int, zero_point: int, per_channel: bool, in_scale: float,
                    skip_scale: float, unsigned: bool, seed: int):
    """CONV_2D (SAME, an even or odd kernel) beside a 1x1 CONV_2D, their ADD with a fused ReLU,
    MAX_POOL_2D, RESHAPE and FULLY_CONNECTED; int8, or uint8 with asymmetric weights."""
    rng = np.random.default_rng(seed)
    h = w = 6
    out = -(-h // stride)
    kind, offset = (tflite.TensorType.UINT8, 128) if unsigned else (tflite.TensorType.INT8, 0)
    writer = ModelWriter()
    x = writer.tensor([1, h, w, channels], kind, scale=in_scale, zero_point=zero_point + offset)
    count = channels if per_channel and not unsigned else 1
    weight_scales = list(rng.uniform(0.005, 0.03, count))

    def weights(shape, scale):
        zero = int(rng.integers(100, 156)) if unsigned else 0
        data = rng.integers(-127, 128, size=shape) + offset
        return writer.tensor(shape, kind, data=data, scale=scale, zero_point=[zero] * len(np.atleast_1d(scale)))

    def conv(source, k, s, scale, zero, padding):
        kernel_weights = weights((channels, k, k, channels), weight_scales)
        bias = writer.tensor([channels], tflite.TensorType.INT32, data=rng.integers(-2000, 2000, channels),
                             scale=[in_scale * s_w for s_w in weight_scales], zero_point=[0] * count)
        size = -(-h // s)
        y = writer.tensor([1, size, size, channels], kind, scale=scale, zero_point=zero + offset)
        writer.operator(B.CONV_2D, [source, kernel_weights, bias], [y], "Conv2DOptions", Padding=padding, StrideW=s,
                        StrideH=s, FusedActivationFunction=0, DilationWFactor=1, DilationHFactor=1)
        return y

    long = conv(x, kernel, stride, 0.08, int(rng.integers(-20, 20)), PADDING.SAME)
    short = conv(x, 1, stride, skip_scale, int(rng.integers(-20, 20)), PADDING.VALID if stride == 1 else PADDING.SAME)
    added = writer.tensor([1, out, out, channels], kind, scale=0.1, zero_point=-128 + offset)
    writer.operator(B.ADD, [long, short], [added], "AddOptions", FusedActivationFunction=ACTIVATION["RELU"])
    pooled_size = -(-out // 2)
    pooled = writer.tensor([1, pooled_size, pooled_size, channels], kind, scale=0.1, zero_point=-128 + offset)
    writer.operator(B.MAX_POOL_2D, [added], [pooled], "Pool2DOptions", Padding=PADDING.SAME, StrideW=2, StrideH=2,
                    FilterWidth=2, FilterHeight=2, FusedActivationFunction=0)
    flat = writer.tensor([1, pooled_size * pooled_size * channels], kind, scale=0.1, zero_point=-128 + offset)
    shape = writer.tensor([2], tflite.TensorType.INT32, data=[1, pooled_size * pooled_size * channels])
    writer.operator(B.RESHAPE, [pooled, shape], [flat])
    fc_w = weights((3, pooled_size * pooled_size * channels), 0.01)
    fc_b = writer.tensor([3], tflite.TensorType.INT32, data=rng.integers(-500, 500, 3), scale=0.001, zero_point=0)
    y = writer.tensor([1, 3], kind, scale=0.2, zero_point=5 + offset)
    writer.operator(B.FULLY_CONNECTED, [flat, fc_w, fc_b], [y], "FullyConnectedOptions", FusedActivationFunction=0)
    return writer, x, y


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 3), st.integers(2, 4), st.integers(1, 2), st.integers(-128, 127), st.booleans(),
       st.floats(0.005, 0.2), st.floats(0.005, 0.2), st.booleans(), st.integers(0, 1000))
def test_convolution_pads_with_the_input_zero_point_and_add_takes_two_scales(tmp_path_factory, channels, kernel,
                                                                           stride, zero_point, per_channel, in_scale,
                                                                           skip_scale, unsigned, seed):
    """CONV_2D with SAME padding of an even kernel (the odd pad after), a non-zero input zero point,
    per-channel or per-tensor weights; a 1x1 CONV_2D beside it; their ADD, of two different scales
    and zero points, with a fused ReLU; then MAX_POOL_2D, a RESHAPE of the (H, W, C) map and
    FULLY_CONNECTED: TFLite's reference kernels, exactly. In int8 (symmetric weights), or in uint8
    (TFLite's older kernels: uint8 weights with a zero point, per tensor)."""
    model = _residual_model(channels, kernel, stride, zero_point, per_channel, in_scale, skip_scale, unsigned, seed)
    _same_as_reference(*model, seed, tmp_path_factory.mktemp("conv"))


def _pad_concat_model(zero_point: int, unsigned: bool, seed: int):
    """PAD (rows and columns, TFLite's zero point) -> DEPTHWISE_CONV_2D (VALID, stride 2) beside a
    CONV_2D (SAME, stride 2), their CONCATENATION of the channels (one quantization), then a
    1x1 CONV_2D."""
    rng = np.random.default_rng(seed)
    kind, offset = (tflite.TensorType.UINT8, 128) if unsigned else (tflite.TensorType.INT8, 0)
    in_scale, joined_q = 0.04, dict(scale=0.06, zero_point=-3 + offset)
    writer = ModelWriter()
    x = writer.tensor([1, 7, 7, 2], kind, scale=in_scale, zero_point=zero_point + offset)
    padded = writer.tensor([1, 9, 9, 2], kind, scale=in_scale, zero_point=zero_point + offset)
    paddings = writer.tensor([4, 2], tflite.TensorType.INT32, data=[[0, 0], [1, 1], [1, 1], [0, 0]])
    writer.operator(B.PAD, [x, paddings], [padded], "PadOptions")

    def operands(shape, axis, x_scale):
        """Weights (per channel along ``axis`` in int8, per tensor with a zero point in uint8) and bias."""
        channels = shape[axis]
        scales = [0.02] if unsigned else list(rng.uniform(0.005, 0.03, channels))
        zeros = [int(rng.integers(100, 156))] if unsigned else [0] * channels
        w = writer.tensor(shape, kind, data=rng.integers(-127, 128, size=shape) + offset, scale=scales,
                          zero_point=zeros, axis=axis)
        b = writer.tensor([channels], tflite.TensorType.INT32, data=rng.integers(-2000, 2000, channels),
                          scale=[x_scale * s for s in scales], zero_point=[0] * len(scales))
        return [w, b]

    depthwise = writer.tensor([1, 4, 4, 2], kind, **joined_q)
    writer.operator(B.DEPTHWISE_CONV_2D, [padded, *operands([1, 3, 3, 2], 3, in_scale)], [depthwise],
                    "DepthwiseConv2DOptions", Padding=PADDING.VALID, StrideW=2, StrideH=2, DepthMultiplier=1,
                    DilationWFactor=1, DilationHFactor=1)
    conv = writer.tensor([1, 4, 4, 3], kind, **joined_q)
    writer.operator(B.CONV_2D, [x, *operands([3, 3, 3, 2], 0, in_scale)], [conv], "Conv2DOptions",
                    Padding=PADDING.SAME, StrideW=2, StrideH=2, DilationWFactor=1, DilationHFactor=1)
    joined = writer.tensor([1, 4, 4, 5], kind, **joined_q)
    writer.operator(B.CONCATENATION, [depthwise, conv], [joined], "ConcatenationOptions", Axis=3)
    y = writer.tensor([1, 4, 4, 2], kind, scale=0.1, zero_point=7 + offset)
    writer.operator(B.CONV_2D, [joined, *operands([2, 1, 1, 5], 0, joined_q["scale"])], [y], "Conv2DOptions",
                    Padding=PADDING.VALID, StrideW=1, StrideH=1, DilationWFactor=1, DilationHFactor=1)
    return writer, x, y


@settings(max_examples=30, deadline=None)
@given(st.integers(-128, 127), st.booleans(), st.integers(0, 1000))
def test_pad_and_concatenation_are_tflites(tmp_path_factory, zero_point, unsigned, seed):
    """PAD before a depthwise convolution (padding with the input zero point), CONCATENATION of two
    branches: TFLite's reference kernels, exactly, in int8 and uint8."""
    _same_as_reference(*_pad_concat_model(zero_point, unsigned, seed), seed, tmp_path_factory.mktemp("pad"))


@pytest.mark.parametrize("model", [
    _pad_concat_model(-77, False, seed=6),
    _pad_concat_model(30, True, seed=7),
    _depthwise_model(dict(channels=3, multiplier=2, size=(6, 5), kernel=3, stride=1, padding=PADDING.SAME,
                          activation="RELU6", zero_point=-37, in_scale=0.05, weight_scales=[0.01, 0.02, 0.005] * 2,
                          out_scale=0.04, out_zero=-128, seed=1)),
    _depthwise_model(dict(channels=2, multiplier=3, size=(7, 7), kernel=2, stride=2, padding=PADDING.SAME,
                          activation="NONE", zero_point=90, in_scale=0.1, weight_scales=[0.02] * 6, out_scale=0.2,
                          out_zero=3, seed=2)),
    _residual_model(3, 4, 1, 45, True, 0.03, 0.11, False, seed=3),
    _residual_model(2, 3, 2, -100, False, 0.15, 0.006, False, seed=4),
    _residual_model(2, 2, 1, 60, False, 0.05, 0.02, True, seed=5),
], ids=["pad-concat", "pad-concat-uint8", "depthwise-x2-same", "depthwise-x3-stride2", "residual-per-channel", "residual-stride2", "residual-uint8"])
def test_the_hardware_computes_written_models_bit_for_bit(model, tmp_path):
    """Amaranth's simulator, random plans, gaps and stalls: padding with a non-zero input zero point,
    depth multipliers, ADD of two scales, uint8 with weight zero points, every stream ``==`` the
    integer model (which equals TFLite's reference kernels: the hypothesis tests above)."""
    writer, x, y = model
    path = tmp_path / "model.tflite"
    path.write_bytes(writer.write([x], [y]))
    assert_same_as_reference(path, 2, seed=0)
    qgraph = quantize_graph(load_model(path))
    accelerator = Network(qgraph, random_plan(qgraph, seed=3, minimal_rings=True)).accelerator()
    expected = expected_streams(qgraph, _real_inputs(qgraph, 2, seed=1))
    probes, outputs, classes, _ = simulate(accelerator, expected, seed=2)
    assert_bit_exact(accelerator, expected, probes, outputs, classes)


@pytest.mark.parametrize("seed", [1, 4])
def test_the_pipelined_rules_take_the_modelled_cycles_in_verilator(seed, tmp_path):
    """A residual TFLite model (per-channel shifts, two roundings, ADD's pipelined rescaling) under
    a random plan, in Verilator: bit for bit, and the timing model gives every stage's last
    element of the first image, the class and the cycles between classes exactly (each Rescaler's
    and the Add's settling stages counted as the gateware builds them)."""
    from test_sim import check_timeline

    writer, x, y = _residual_model(3, 3, 1, 7, True, 0.05, 0.03, False, seed=11)
    path = tmp_path / "model.tflite"
    path.write_bytes(writer.write([x], [y]))
    qgraph = quantize_graph(load_model(path))
    plan = random_plan(qgraph, seed=seed)
    export = export_verilog(qgraph, plan, tmp_path / "rtl")
    result = simulate_export(export, expected_streams(qgraph, _real_inputs(qgraph, 3, seed=seed)), tmp_path / "build",
                             timing_images=3, seed=seed)
    assert result.mismatches == [], "; ".join(map(str, result.mismatches))
    assert result.class_mismatches == 0
    check_timeline(result, Network(qgraph, plan), 3)


def _one_conv(kind: int, out_kind: int | None = None) -> ModelWriter:
    """x (1, 4, 4, 2) -> CONV_2D 1x1 -> y, the activations of ``kind`` (and ``out_kind``)."""
    writer = ModelWriter()
    x = writer.tensor([1, 4, 4, 2], kind, scale=0.1, zero_point=0)
    weights = writer.tensor([2, 1, 1, 2], data=np.ones((2, 1, 1, 2)), scale=0.01, zero_point=0)
    y = writer.tensor([1, 4, 4, 2], out_kind if out_kind is not None else kind, scale=0.1, zero_point=0)
    writer.operator(B.CONV_2D, [x, weights], [y], "Conv2DOptions", Padding=PADDING.VALID, StrideW=1, StrideH=1)
    return writer, x, y


@pytest.mark.parametrize("kinds, message", [
    ((tflite.TensorType.INT16,), "input 't0' is int16; cnnhw imports TFLite models quantized to int8 or uint8"),
    ((tflite.TensorType.INT8, tflite.TensorType.FLOAT32), "output 't2' is float32 and no DEQUANTIZE converts it"),
])
def test_activations_cnnhw_cannot_compute_are_refused_naming_the_tensor(kinds, message, tmp_path):
    writer, x, y = _one_conv(*kinds)
    path = tmp_path / "model.tflite"
    path.write_bytes(writer.write([x], [y]))
    with pytest.raises(UnsupportedModelError, match=message):
        load_model(path)


def test_a_pad_no_convolution_takes_is_refused(tmp_path):
    writer = ModelWriter()
    x = writer.tensor([1, 4, 4, 2], scale=0.1, zero_point=3)
    y = writer.tensor([1, 6, 6, 2], scale=0.1, zero_point=3)
    paddings = writer.tensor([4, 2], tflite.TensorType.INT32, data=[[0, 0], [1, 1], [1, 1], [0, 0]])
    writer.operator(B.PAD, [x, paddings], [y], "PadOptions")
    path = tmp_path / "pad.tflite"
    path.write_bytes(writer.write([x], [y]))
    with pytest.raises(UnsupportedModelError, match=r"PAD \(operator 0\) is read by no convolution"):
        load_model(path)


def test_a_float_tensor_between_int8_layers_is_refused_naming_it(tmp_path):
    writer = ModelWriter()
    x = writer.tensor([1, 4, 4, 2], scale=0.1, zero_point=0)
    weights = writer.tensor([2, 1, 1, 2], data=np.ones((2, 1, 1, 2)), scale=0.01, zero_point=0)
    middle = writer.tensor([1, 4, 4, 2], tflite.TensorType.FLOAT32)
    y = writer.tensor([1, 4, 4, 2], scale=0.1, zero_point=0)
    writer.operator(B.CONV_2D, [x, weights], [middle], "Conv2DOptions", Padding=PADDING.VALID, StrideW=1, StrideH=1)
    writer.operator(B.CONV_2D, [middle, weights], [y], "Conv2DOptions", Padding=PADDING.VALID, StrideW=1, StrideH=1)
    path = tmp_path / "model.tflite"
    path.write_bytes(writer.write([x], [y]))
    with pytest.raises(UnsupportedModelError, match="CONV_2D 'conv_2d_0' .operator 0.: tensor 't2' is float32; "
                                                    "cnnhw computes int8 and uint8"):
        load_model(path)


@pytest.mark.parametrize("unsigned", [False, True])
def test_a_float_input_quantized_by_the_model_is_tflites_quantize(unsigned, tmp_path):
    """A float input, QUANTIZE (float32 division, rounded half away from zero), a convolution,
    DEQUANTIZE to a float output (the converter's default edges): the integers equal TFLite's
    reference kernels, on inputs at and near every rounding tie."""
    kind, offset = (tflite.TensorType.UINT8, 128) if unsigned else (tflite.TensorType.INT8, 0)
    writer = ModelWriter()
    x = writer.tensor([1, 5, 5, 2], tflite.TensorType.FLOAT32)
    q = writer.tensor([1, 5, 5, 2], kind, scale=0.037, zero_point=-9 + offset)
    writer.operator(B.QUANTIZE, [x], [q])
    rng = np.random.default_rng(0)
    weights = writer.tensor([3, 3, 3, 2], kind, data=rng.integers(-127, 128, (3, 3, 3, 2)) + offset, scale=0.02,
                            zero_point=offset)
    bias = writer.tensor([3], tflite.TensorType.INT32, data=[-300, 20, 700], scale=0.037 * 0.02, zero_point=0)
    conv = writer.tensor([1, 5, 5, 3], kind, scale=0.09, zero_point=4 + offset)
    writer.operator(B.CONV_2D, [q, weights, bias], [conv], "Conv2DOptions", Padding=PADDING.SAME, StrideW=1,
                    StrideH=1)
    y = writer.tensor([1, 5, 5, 3], tflite.TensorType.FLOAT32)
    writer.operator(B.DEQUANTIZE, [conv], [y])
    path = tmp_path / "float_edges.tflite"
    path.write_bytes(writer.write([x], [y]))
    qgraph = quantize_graph(load_model(path))
    steps = rng.integers(-140, 140, size=(20, 5, 5, 2)) + rng.choice([0.0, 0.5, 0.4999, 0.5001], size=(20, 5, 5, 2))
    images = (steps * np.float32(0.037)).astype(np.float32)
    interpreter, outputs = _reference(path), _operator_outputs(path)
    ours = run_int(qgraph, _nchw(images), every_layer=True)
    for n, image in enumerate(images):
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image[None])
        interpreter.invoke()
        for name, tensor, got in (("input", outputs[0], ours[0][n]), ("conv", outputs[1], ours[1][n])):
            want = _nchw(interpreter.get_tensor(tensor))[0].astype(np.int64)
            mismatch = first_mismatch(name, want.ravel().tolist(), got.ravel().tolist())
            assert mismatch is None, str(mismatch)


def test_a_float_model_is_imported_as_float_and_quantized_by_cnnhw(tmp_path):
    """A float .tflite (CONV_2D with a fused ReLU, MAX_POOL_2D, RESHAPE, FULLY_CONNECTED, SOFTMAX):
    the float graph equals TFLite's reference kernels, and cnnhw quantizes it itself (calibration,
    its own rule), the hardware bit-exact with that integer model."""
    rng = np.random.default_rng(1)
    f32 = tflite.TensorType.FLOAT32
    writer = ModelWriter()
    x = writer.tensor([1, 8, 8, 2], f32)
    weights = writer.tensor([4, 3, 3, 2], f32, data=rng.normal(0, 0.3, (4, 3, 3, 2)))
    bias = writer.tensor([4], f32, data=rng.normal(0, 0.1, 4))
    conv = writer.tensor([1, 8, 8, 4], f32)
    writer.operator(B.CONV_2D, [x, weights, bias], [conv], "Conv2DOptions", Padding=PADDING.SAME, StrideW=1,
                    StrideH=1, FusedActivationFunction=ACTIVATION["RELU"])
    pooled = writer.tensor([1, 4, 4, 4], f32)
    writer.operator(B.MAX_POOL_2D, [conv], [pooled], "Pool2DOptions", Padding=PADDING.VALID, StrideW=2, StrideH=2,
                    FilterWidth=2, FilterHeight=2)
    flat = writer.tensor([1, 64], f32)
    writer.operator(B.RESHAPE, [pooled, writer.tensor([2], tflite.TensorType.INT32, data=[1, 64])], [flat])
    fc_w, fc_b = writer.tensor([3, 64], f32, data=rng.normal(0, 0.2, (3, 64))), writer.tensor([3], f32, data=[0.1] * 3)
    logits = writer.tensor([1, 3], f32)
    writer.operator(B.FULLY_CONNECTED, [flat, fc_w, fc_b], [logits], "FullyConnectedOptions")
    y = writer.tensor([1, 3], f32)
    writer.operator(B.SOFTMAX, [logits], [y], "SoftmaxOptions", Beta=1.0)
    path = tmp_path / "float.tflite"
    path.write_bytes(writer.write([x], [y]))
    graph = load_model(path)
    assert graph.integer_model is None
    images = rng.uniform(-1, 1, size=(6, 2, 8, 8)).astype(np.float32)
    interpreter = _reference(path)
    # Float against float (cnnhw's float64 reference, TFLite's float32 kernels: their sums round
    # differently), hence a tolerance; the integers below are compared with ==.
    for image, ours in zip(images, run_float(graph, images)):
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image.transpose(1, 2, 0)[None])
        interpreter.invoke()
        np.testing.assert_allclose(ours, interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0],
                                   rtol=1e-5, atol=1e-6)
    qgraph = quantize_graph(graph, calib=images, calib_label="calibration images")
    assert qgraph.calibration.startswith("calibration images") and qgraph.dropped == "Softmax"
    assert all(layer.requant.rule == "cnnhw" for layer in qgraph.layers if hasattr(layer, "requant"))
    accelerator = Network(qgraph, random_plan(qgraph, seed=4, minimal_rings=True)).accelerator()
    expected = expected_streams(qgraph, images[:2])
    probes, outputs, classes, _ = simulate(accelerator, expected, seed=5)
    assert_bit_exact(accelerator, expected, probes, outputs, classes)
