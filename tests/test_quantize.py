"""Quantizing whole models: accuracy against float, options, calibration sources, errors."""

import json

import numpy as np
import onnx
import pytest
from onnx import helper

from cnnhw.errors import CnnhwError
from cnnhw.frontend import load_model
from cnnhw.golden import run_float
from cnnhw.golden.int_ref import run_int
from cnnhw.quant import QuantOptions, quantize_graph
from conftest import EXAMPLES, MNIST8
from models import make_model


def test_lenet_8bit_keeps_its_accuracy(cli, tmp_path):
    result = cli("quantize", "--model", EXAMPLES / "lenet.onnx", "--eval", EXAMPLES / "lenet.test.npz",
                 "--json", "q.json")
    assert result.returncode == 0, result.stderr
    facts = json.loads((tmp_path / "q.json").read_text())
    assert facts["calibration"].startswith("lenet.calib.npz, 256 images")  # found beside the model
    assert facts["accuracy_int"] >= facts["accuracy_float"] - 0.01
    assert facts["agreement"] >= 0.98
    assert [layer["op"] for layer in facts["layers"]] == [
        "Conv", "MaxPool", "Conv", "MaxPool", "Reshape", "Dense", "Dense", "Dense"]
    assert facts["layers"][0]["activation"] == "Relu" and facts["layers"][-1]["output_format"] == "s16"
    assert all(layer["sqnr_db"] > 30 for layer in facts["layers"])


def _digits():
    data = np.load(EXAMPLES / "lenet.test.npz")
    return data["x"].astype(np.float64), data["y"]


def constructed_cnn(tmp_path):
    """A classifier the test builds itself: random 3x3 conv (pad 1) + BatchNorm with the data's
    statistics + ReLU, a stride-2 conv (pad 1) + BatchNorm + ReLU, a 3x3/2 average pool with
    padding (border windows count fewer elements), and a ridge-regression readout (Gemm)."""
    x, y = _digits()
    fit_x, fit_y = x[:220], y[:220]
    rng = np.random.default_rng(5)
    w1 = rng.normal(size=(8, 1, 3, 3))
    w2 = rng.normal(size=(12, 8, 3, 3)) / 6
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("BatchNormalization", ["c1", "s1", "b1", "m1", "v1"], ["n1"], name="bn1"),
             helper.make_node("Relu", ["n1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                              name="conv2"),
             helper.make_node("BatchNormalization", ["c2", "s2", "b2", "m2", "v2"], ["n2"], name="bn2"),
             helper.make_node("Relu", ["n2"], ["r2"], name="relu2"),
             helper.make_node("AveragePool", ["r2"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                              name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1, name="readout")]
    arrays = {"w1": w1.astype(np.float32), "w2": w2.astype(np.float32)}

    def partial(upto):
        model = make_model(nodes[:upto], arrays, ["N", 1, 32, 32], opset=13, output_name=nodes[upto - 1].output[0])
        onnx.save(model, tmp_path / "partial.onnx")
        return run_float(load_model(tmp_path / "partial.onnx"), fit_x)

    for index, conv in ((1, "1"), (2, "2")):
        features = partial(1 if index == 1 else 4)
        arrays.update({f"s{conv}": np.ones(features.shape[1], np.float32),
                       f"b{conv}": np.full(features.shape[1], 0.2, np.float32),
                       f"m{conv}": features.mean(axis=(0, 2, 3)).astype(np.float32),
                       f"v{conv}": features.var(axis=(0, 2, 3)).astype(np.float32)})
    features = partial(8).reshape(len(fit_x), -1)
    design = np.hstack([features, np.ones((len(features), 1))])
    targets = np.eye(10)[fit_y]
    solution = np.linalg.solve(design.T @ design + 1.0 * np.eye(design.shape[1]), design.T @ targets)
    arrays["w3"] = solution[:-1].T.astype(np.float32)
    arrays["b3"] = solution[-1].astype(np.float32)
    model = make_model(nodes, arrays, ["N", 1, 32, 32], ["N", 10], opset=13)
    onnx.save(model, tmp_path / "constructed.onnx")
    return tmp_path / "constructed.onnx", fit_x, x[220:], y[220:]


def test_model_with_batchnorm_stride2_padding_and_average_pooling(tmp_path):
    path, calib, test_x, test_y = constructed_cnn(tmp_path)
    graph = load_model(path)
    assert [layer.op.label for layer in graph] == ["Conv", "Relu", "Conv", "Relu", "AvgPool", "Reshape", "Dense"]
    qgraph = quantize_graph(graph, QuantOptions(), calib)
    float_classes = run_float(graph, test_x).argmax(axis=1)
    int_classes = run_int(qgraph, test_x).argmax(axis=1)
    float_accuracy = np.mean(float_classes == test_y)
    assert float_accuracy >= 0.9  # the constructed network is a real classifier
    assert np.mean(int_classes == test_y) >= float_accuracy - 0.01
    assert np.mean(int_classes == float_classes) >= 0.98


def test_mnist8_at_8_bits_classifies_its_digits_as_float_does(cli, tmp_path):
    result = cli("predict", "--model", MNIST8 / "mnist-8.onnx", "--inputs", MNIST8 / "mnist_digits_10.npz",
                 "--golden", "int", "--input-range", "0", "255", "-o", "int.npz")
    assert result.returncode == 0, result.stderr
    assert "data-free bounds" in result.stderr  # no calibration data: said, not silent
    graph = load_model(MNIST8 / "mnist-8.onnx")
    digits = np.load(MNIST8 / "mnist_digits_10.npz")
    float_classes = run_float(graph, digits["x"][:, None].astype(np.float32)).argmax(axis=1)
    out = np.load(tmp_path / "int.npz")
    assert out["logits"].dtype == np.int64
    assert out["classes"].tolist() == float_classes.tolist() == digits["y"].tolist()


def test_predict_int_is_the_integer_model(cli, tmp_path):
    result = cli("predict", "--model", EXAMPLES / "lenet.onnx", "--inputs", EXAMPLES / "lenet.test.npz",
                 "--golden", "int", "-o", "int.npz", "--json", "p.json")
    assert result.returncode == 0, result.stderr
    graph = load_model(EXAMPLES / "lenet.onnx")
    qgraph = quantize_graph(graph, QuantOptions(), np.load(EXAMPLES / "lenet.calib.npz")["x"])
    expected = run_int(qgraph, np.load(EXAMPLES / "lenet.test.npz")["x"])
    assert np.array_equal(np.load(tmp_path / "int.npz")["logits"], expected)
    assert json.loads((tmp_path / "p.json").read_text())["output_scale"] == qgraph.output_scale


@pytest.mark.parametrize("options", [
    QuantOptions(power_of_two=True),
    QuantOptions(per_channel=False),
    QuantOptions(rounding="half_even"),
    QuantOptions(weight_bits=4, activation_bits=4),
    QuantOptions(weight_bits=2, activation_bits=3),
    QuantOptions(calibration="percentile", percentile=99.9),
])
def test_options_give_consistent_integer_models(options):
    graph = load_model(EXAMPLES / "lenet.onnx")
    qgraph = quantize_graph(graph, options, np.load(EXAMPLES / "lenet.calib.npz")["x"])
    x, _ = _digits()
    outputs = run_int(qgraph, x[:40], every_layer=True)  # raises if an accumulator overflows
    for layer, value in zip(qgraph.layers, outputs[1:]):
        assert value.min() >= layer.out_format.lo and value.max() <= layer.out_format.hi
        if hasattr(layer, "weight"):
            assert np.abs(layer.weight).max() <= 2 ** (options.weight_bits - 1) - 1
            if options.power_of_two:
                assert all(m & (m - 1) == 0 for m in layer.requant.multipliers)
            if not options.per_channel:
                assert len(set(layer.weight_scales)) == 1


def test_data_free_bounds_never_saturate_inputs_in_range():
    """Without calibration data, interval bounds hold every reachable value: nothing clips."""
    graph = load_model(EXAMPLES / "lenet.onnx")
    qgraph = quantize_graph(graph, QuantOptions(), input_range=(0.0, 1.0))
    assert qgraph.calibration == "data-free bounds from input range [0, 1]"
    x = np.random.default_rng(0).uniform(0, 1, size=(20, 1, 32, 32))
    floats = dict(zip((layer.op.name for layer in qgraph.graph.layers),
                      run_float(qgraph.graph, x, every_layer=True)))
    for layer in qgraph.layers:
        assert np.max(np.abs(floats[layer.source])) <= max(abs(layer.out_format.lo), layer.out_format.hi) * layer.out_scale


def test_unrepresentable_ranges_are_a_clear_error(tmp_path):
    # x1 - x2 + 1e-9 on data where x1 == x2: the output range is a billionth of the products',
    # so the requantizer would need a multiplier of millions.
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1, name="tiny")]
    model = make_model(nodes, {"w": np.array([[1.0, -1.0]], np.float32), "b": np.array([1e-9], np.float32)},
                       ["N", 2])
    onnx.save(model, tmp_path / "m.onnx")
    calib = np.tile(np.linspace(0, 1, 16)[:, None], (1, 2))
    with pytest.raises(CnnhwError, match="multipliers cannot represent that"):
        quantize_graph(load_model(tmp_path / "m.onnx"), QuantOptions(), calib)


@pytest.mark.parametrize("args, fragment", [
    (["--weight-bits", "9"], "weight bits must be an int from 2 to 8, not 9"),
    (["--act-bits", "1"], "activation bits must be an int from 2 to 8, not 1"),
    (["--calib-method", "percentile", "--percentile", "30"], "percentile must be in (50, 100], not 30.0"),
])
def test_bad_options(cli, args, fragment):
    result = cli("quantize", "--model", EXAMPLES / "lenet.onnx", *args)
    assert result.returncode == 2 and fragment in result.error_line


def test_bad_calibration_data(cli, tmp_path):
    np.savez(tmp_path / "wrong.npz", x=np.zeros((4, 1, 28, 28), np.float32))
    result = cli("quantize", "--model", EXAMPLES / "lenet.onnx", "--calib", "wrong.npz")
    assert result.returncode == 2
    assert "calibration data wrong.npz: x has shape (4, 1, 28, 28), but model 'lenet' takes" in result.error_line
    nan = np.zeros((4, 1, 32, 32), np.float32)
    nan[0, 0, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", x=nan)
    result = cli("quantize", "--model", EXAMPLES / "lenet.onnx", "--calib", "nan.npz")
    assert result.returncode == 2 and "calibration data nan.npz: x contains NaN or Inf" in result.error_line


def test_softmax_is_dropped_and_reported(tmp_path):
    nodes = [helper.make_node("Gemm", ["x", "w"], ["g"], transB=1, name="fc"),
             helper.make_node("Softmax", ["g"], ["y"], axis=1, name="softmax")]
    model = make_model(nodes, {"w": np.eye(3, dtype=np.float32)}, ["N", 3])
    onnx.save(model, tmp_path / "m.onnx")
    qgraph = quantize_graph(load_model(tmp_path / "m.onnx"), QuantOptions(), np.eye(3))
    assert qgraph.dropped == "Softmax" and [layer.label for layer in qgraph.layers] == ["Dense"]


def test_a_product_wider_than_int64_is_refused():
    """The golden model computes ``acc * M`` in int64: a wider product would wrap silently."""
    from cnnhw.quant.quantize import check_product_bits

    check_product_bits(48, 16, "Conv 'c'")  # exactly 64 bits: fits
    with pytest.raises(CnnhwError, match=r"Conv 'c': its requantization product needs 48 \+ 17 bits, more than "
                                         r"the 64 the integer model computes in"):
        check_product_bits(48, 17, "Conv 'c'")


def test_a_layer_without_relu_stays_signed_when_its_calibration_is_positive(tmp_path):
    """A one-logit model whose calibration images all give a positive logit: the output format is
    still signed, so an image with a negative logit keeps its sign (it came out 0, as u16)."""
    weight = np.array([[1.0, -1.0]])
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="logit", transB=1)]
    model = make_model(nodes, {"w": weight.astype(np.float32), "b": np.zeros(1, np.float32)}, ["N", 2], "y")
    onnx.save(model, tmp_path / "m.onnx")
    graph = load_model(tmp_path / "m.onnx")
    calibration = np.array([[1.0, 0.0], [0.9, 0.1], [0.7, 0.2]])  # logits 1.0, 0.8, 0.5
    qgraph = quantize_graph(graph, QuantOptions(), calibration)
    assert qgraph.layers[-1].out_format.signed
    x = np.array([[0.1, 0.9], [0.8, 0.1]])  # logits -0.8 and 0.7
    logits = run_int(qgraph, x) * qgraph.layers[-1].out_scale
    assert np.sign(logits).reshape(-1).tolist() == [-1, 1]
    assert np.allclose(logits, run_float(graph, x), atol=0.01)  # within the 8-bit input's steps
