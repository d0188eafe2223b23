"""Whole models: mnist-8 from the ONNX model zoo, the example LeNet-5, and ONNX vs .npz."""

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from cnnhw.frontend import load_model
from cnnhw.golden import run_float
from conftest import EXAMPLES, MNIST8
from models import onnx_reference, onnxruntime_reference, relative_error, small_cnn, small_cnn_npz


def test_mnist8_matches_its_own_test_vector_and_onnx_reference():
    model = onnx.load(MNIST8 / "mnist-8.onnx")
    x = numpy_helper.to_array(onnx.load_tensor(str(MNIST8 / "test_data_set_0" / "input_0.pb")))
    zoo_output = numpy_helper.to_array(onnx.load_tensor(str(MNIST8 / "test_data_set_0" / "output_0.pb")))
    graph = load_model(MNIST8 / "mnist-8.onnx")
    ours = run_float(graph, x)
    assert relative_error(ours, onnx_reference(model, x).astype(np.float64)) <= 1e-5
    assert relative_error(ours, zoo_output.astype(np.float64)) <= 1e-5
    assert ours.argmax() == zoo_output.argmax()


def test_mnist8_classifies_the_ten_digits_as_labelled(cli, tmp_path):
    result = cli("predict", "--model", MNIST8 / "mnist-8.onnx", "--inputs", MNIST8 / "mnist_digits_10.npz",
                 "--golden", "float", "-o", "out.npz", "--json", "predict.json")
    assert result.returncode == 0, result.stderr
    facts = json.loads((tmp_path / "predict.json").read_text())
    labels = np.load(MNIST8 / "mnist_digits_10.npz")["y"]
    assert facts["images"] == 10 and facts["accuracy"] == 1.0
    out = np.load(tmp_path / "out.npz")
    assert out["logits"].shape == (10, 10) and out["logits"].dtype == np.float32
    assert out["classes"].tolist() == labels.tolist()


def test_mnist8_inspect_reports_786560_macs(cli, tmp_path):
    result = cli("inspect", "--model", MNIST8 / "mnist-8.onnx", "--json", "inspect.json")
    assert result.returncode == 0, result.stderr
    facts = json.loads((tmp_path / "inspect.json").read_text())
    assert facts["macs"] == 786_560
    assert facts["params"] == 5_994  # weights and biases (the file's 4 reshape-shape integers are not parameters)
    assert [layer["op"] for layer in facts["layers"]] == [
        "Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool", "Reshape", "Dense"]
    assert facts["layers"][5]["output_shape"] == [16, 4, 4]  # 3x3/3 max-pool floors 14 to 4
    assert "786,560" in result.stdout


def test_lenet_inspect_reports_416520_macs(cli, tmp_path):
    result = cli("inspect", EXAMPLES / "lenet.onnx", "--json", "inspect.json")  # model as positional works too
    assert result.returncode == 0, result.stderr
    facts = json.loads((tmp_path / "inspect.json").read_text())
    assert facts["macs"] == 416_520
    assert facts["params"] == 61_706
    assert facts["input_shape"] == [1, 32, 32] and facts["output_shape"] == [10]


def test_lenet_float_reference_matches_onnxruntime_on_the_test_split():
    import onnxruntime

    data = np.load(EXAMPLES / "lenet.test.npz")
    graph = load_model(EXAMPLES / "lenet.onnx")
    session = onnxruntime.InferenceSession(str(EXAMPLES / "lenet.onnx"), providers=["CPUExecutionProvider"])
    theirs = session.run(None, {"image": data["x"]})[0]
    ours = run_float(graph, data["x"])
    assert relative_error(ours, theirs.astype(np.float64)) <= 1e-5
    assert np.array_equal(ours.argmax(1), theirs.argmax(1))
    assert np.mean(ours.argmax(1) == data["y"]) >= 0.99  # the example is a usable classifier


def test_lenet_calibration_file_fits_the_model():
    from cnnhw.datafiles import load_data

    graph = load_model(EXAMPLES / "lenet.onnx")
    calib = load_data(EXAMPLES / "lenet.calib.npz", graph)
    assert len(calib.x) == 256 and calib.x.min() >= 0 and calib.x.max() <= 1


@pytest.mark.parametrize("opset", [7, 9, 11, 13, 17, 21])
def test_small_cnn_matches_onnxruntime_at_every_opset(opset, tmp_path):
    # onnxruntime, not onnx.reference: the latter cannot run BatchNormalization-7.
    rng = np.random.default_rng(opset)
    model, _ = small_cnn(rng, opset=opset)
    onnx.checker.check_model(model)
    onnx.save(model, tmp_path / "m.onnx")
    graph = load_model(tmp_path / "m.onnx")
    # BatchNorm folded into conv1; the MatMul's bias Add folded into fc2; Dropout and Identity gone.
    assert [layer.op.label for layer in graph] == [
        "Conv", "Relu", "MaxPool", "Conv", "Clip", "AvgPool", "Reshape", "Dense", "LeakyRelu", "Dense", "Softmax"]
    x = rng.normal(size=(3, 2, 12, 10)).astype(np.float32)
    assert relative_error(run_float(graph, x), onnxruntime_reference(model, x).astype(np.float64)) <= 1e-5


def test_same_network_as_onnx_and_npz_gives_identical_results(tmp_path):
    rng = np.random.default_rng(7)
    model, arrays = small_cnn(rng)
    onnx.save(model, tmp_path / "net.onnx")
    np.savez(tmp_path / "net.npz", **small_cnn_npz(arrays))
    from_onnx, from_npz = load_model(tmp_path / "net.onnx"), load_model(tmp_path / "net.npz")
    assert from_onnx.macs == from_npz.macs and from_onnx.params == from_npz.params
    x = rng.normal(size=(5, 2, 12, 10)).astype(np.float32)
    for ours, theirs in zip(run_float(from_onnx, x, every_layer=True), run_float(from_npz, x, every_layer=True)):
        assert np.array_equal(ours, theirs)
