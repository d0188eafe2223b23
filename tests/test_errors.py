"""Bad input gets one clear line on stderr and a non-zero exit, never a traceback."""

import json
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from conftest import EXAMPLES, MNIST8
from models import make_model


def conv_model(**overrides):
    """x (N, 1, 8, 8) -> Conv 3x3 -> y, with parts replaceable per test."""
    nodes = overrides.get("nodes") or [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")]
    return make_model(nodes, {"w": np.ones((2, 1, 3, 3), np.float32)}, overrides.get("shape", ["N", 1, 8, 8]))


def expect_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    line = result.error_line
    for fragment in fragments:
        assert fragment in line, line
    return line


@pytest.mark.parametrize("command", ["inspect", "predict"])
def test_missing_model(cli, command):
    extra = ["--inputs", "x.npz"] if command == "predict" else []
    expect_error(cli(command, "--model", "nope.onnx", *extra), "model file nope.onnx not found")


def test_no_model_given(cli):
    expect_error(cli("inspect"), "no model given; pass --model")


def test_unknown_model_format(cli, tmp_path):
    (tmp_path / "model.h5").write_bytes(b"x")
    expect_error(cli("inspect", "--model", "model.h5"), "unknown model format '.h5'")


def test_empty_model(cli, tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"")
    expect_error(cli("inspect", "--model", "m.onnx"), "m.onnx is empty")


def test_corrupt_model(cli, tmp_path):
    (tmp_path / "m.onnx").write_bytes(os.urandom(64) + b"\xff" * 64)
    line = expect_error(cli("inspect", "--model", "m.onnx"))
    assert "not a valid ONNX model" in line or "holds no ONNX graph" in line


@pytest.mark.parametrize("keep", [0.25, 0.5, 0.9])
def test_truncated_model(cli, tmp_path, keep):
    data = (MNIST8 / "mnist-8.onnx").read_bytes()
    (tmp_path / "m.onnx").write_bytes(data[: int(len(data) * keep)])
    expect_error(cli("inspect", "--model", "m.onnx"), "m.onnx")


def test_unsupported_op_names_op_node_and_supported_list(cli, tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Erf", ["c"], ["y"], name="gate")]
    onnx.save(conv_model(nodes=nodes), tmp_path / "m.onnx")
    expect_error(cli("inspect", "--model", "m.onnx"), "unsupported op 'Erf' at node 'gate'",
                 "Conv", "MaxPool", "Gemm")


def test_custom_domain_op(cli, tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Quant", ["c"], ["y"], name="q", domain="qonnx.custom_op.general")]
    model = conv_model(nodes=nodes)
    model.opset_import.append(helper.make_opsetid("qonnx.custom_op.general", 1))
    onnx.save(model, tmp_path / "m.onnx")
    expect_error(cli("inspect", "--model", "m.onnx"), "unsupported op 'qonnx.custom_op.general::Quant' at node 'q'")


def test_symbolic_spatial_size(cli, tmp_path):
    onnx.save(conv_model(shape=["N", 1, "height", 8]), tmp_path / "m.onnx")
    expect_error(cli("inspect", "--model", "m.onnx"), "symbolic size 'height' in dimension 2",
                 "export with a fixed input size")


def test_more_than_one_input(cli, tmp_path):
    model = conv_model()
    model.graph.input.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 1, 8, 8]))
    onnx.save(model, tmp_path / "m.onnx")
    expect_error(cli("inspect", "--model", "m.onnx"), "has 2 inputs (x, z)", "exactly one image input")


def test_more_than_one_output(cli, tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv"),
             helper.make_node("Relu", ["y"], ["r"], name="relu")]
    model = conv_model(nodes=nodes)
    model.graph.output.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, None))
    onnx.save(model, tmp_path / "m.onnx")
    expect_error(cli("inspect", "--model", "m.onnx"), "has 2 outputs (y, r)", "exactly one output")


def test_a_branching_network_is_inspected_and_simulated(cli, tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Add", ["c", "r"], ["y"], name="skip")]
    onnx.save(conv_model(nodes=nodes), tmp_path / "m.onnx")
    result = cli("inspect", "--model", "m.onnx")
    assert result.returncode == 0 and "reads conv, relu" in " ".join(result.stdout.split())
    assert "hardware: every layer has a stage" in result.stdout
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).uniform(0, 1, size=(3, 1, 8, 8)))
    result = cli("sim", "--model", "m.onnx", "--inputs", "x.npz", "--calib", "x.npz")
    assert result.returncode == 0, result.stderr


def test_transpose_mid_network(cli, tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Transpose", ["c"], ["y"], perm=[0, 2, 3, 1], name="to_nhwc")]
    onnx.save(conv_model(nodes=nodes), tmp_path / "m.onnx")
    expect_error(cli("inspect", "--model", "m.onnx"), "Transpose node 'to_nhwc'", "only on the model input")


def test_opset_out_of_range(cli, tmp_path):
    model = conv_model()
    model.opset_import[0].version = 6
    onnx.save(model, tmp_path / "m.onnx")
    expect_error(cli("inspect", "--model", "m.onnx"), "opset 6", "opsets 7 to")


def test_weights_computed_at_run_time(cli, tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "r"], ["y"], name="conv")]
    onnx.save(conv_model(nodes=nodes), tmp_path / "m.onnx")
    expect_error(cli("inspect", "--model", "m.onnx"), "Conv node 'conv'")


def _model_with_external_weight(tmp_path, location):
    model = conv_model()
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value=location)
    folder = tmp_path / "model"
    folder.mkdir()
    onnx.save(model, folder / "m.onnx")
    return folder / "m.onnx"


@pytest.mark.parametrize("location", ["../secret.bin", "sub/../../secret.bin", "/etc/hostname"])
def test_external_data_outside_the_model_folder_is_refused_unread(cli, tmp_path, location):
    path = _model_with_external_weight(tmp_path, location)
    if not location.startswith("/"):
        # A FIFO: opening it for reading would block, so the test hangs (and fails) if cnnhw reads it.
        os.mkfifo(tmp_path / "secret.bin")
    expect_error(cli("inspect", "--model", path), "tensor 'w'", "outside the model's folder", "refuses")


def test_external_data_inside_the_folder_is_read(cli, tmp_path):
    path = _model_with_external_weight(tmp_path, "weights.bin")
    expect_error(cli("inspect", "--model", path), "external data file 'weights.bin'", "not found")
    (path.parent / "weights.bin").write_bytes(np.ones(18, np.float32).tobytes()[:40])
    expect_error(cli("inspect", "--model", path), "truncated")
    (path.parent / "weights.bin").write_bytes(np.ones(18, np.float32).tobytes())
    result = cli("inspect", "--model", path, "--json", "facts.json")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "facts.json").read_text())["macs"] == 2 * 6 * 6 * 9


def _lenet_like_npz(tmp_path, **changes):
    architecture = {"format": "cnnhw-npz", "version": 1, "input": [1, 8, 8],
                    "layers": [{"type": "conv", "name": "conv1"}, {"type": "relu"}, {"type": "flatten"},
                               {"type": "dense", "name": "fc"}]}
    arrays = {"conv1.weight": np.ones((2, 1, 3, 3)), "conv1.bias": np.zeros(2), "fc.weight": np.ones((10, 72)),
              "fc.bias": np.zeros(10)}
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(tmp_path / "net.npz", architecture=json.dumps(architecture), **arrays)
    return "net.npz"


def test_npz_model_loads(cli, tmp_path):
    result = cli("inspect", "--model", _lenet_like_npz(tmp_path), "--json", "facts.json")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "facts.json").read_text())["macs"] == 2 * 36 * 9 + 720


@pytest.mark.parametrize("changes, fragments", [
    ({"conv1.weight": None}, ["layer 'conv1' (conv) needs array 'conv1.weight'"]),
    ({"conv1.weight": np.ones((2, 3, 3))}, ["'conv1.weight' must be (out, in/groups, kh, kw)", "(2, 3, 3)"]),
    ({"conv1.bias": np.zeros(3)}, ["bias of Conv 'conv1' has shape (3,), expected (2,)"]),
    ({"fc.weight": np.ones((10, 70))}, ["Dense 'fc' expects a vector of 70 features, got shape (72,)"]),
    ({"conv1.wieght": np.ones(1)}, ["arrays ['conv1.wieght'] are not used by any layer"]),
    ({"fc.weight": np.full((10, 72), np.nan)}, ["weights of Dense 'fc' contains NaN"]),
])
def test_npz_with_missing_or_misshaped_arrays(cli, tmp_path, changes, fragments):
    expect_error(cli("inspect", "--model", _lenet_like_npz(tmp_path, **changes)), *fragments)


def test_npz_without_architecture(cli, tmp_path):
    np.savez(tmp_path / "net.npz", w=np.ones(3))
    expect_error(cli("inspect", "--model", "net.npz"), "no 'architecture' array", "docs/commands.md")


def test_npz_that_is_not_an_archive(cli, tmp_path):
    (tmp_path / "net.npz").write_bytes(b"PK\x03\x04 not really a zip")
    expect_error(cli("inspect", "--model", "net.npz"), "not a readable .npz archive")


@pytest.mark.parametrize("x, fragment", [
    (np.zeros((3, 1, 30, 30), np.float32), "x has shape (3, 1, 30, 30), but model 'lenet' takes (N, 1, 32, 32)"),
    (np.zeros((3, 32, 32, 1), np.float32), "x has shape (3, 32, 32, 1)"),
    (np.zeros((0, 1, 32, 32), np.float32), "x holds no images"),
    (np.full((1, 1, 32, 32), np.inf, np.float32), "x contains NaN or Inf"),
])
def test_data_that_does_not_fit_the_model(cli, tmp_path, x, fragment):
    np.savez(tmp_path / "data.npz", x=x)
    expect_error(cli("predict", "--model", EXAMPLES / "lenet.onnx", "--inputs", "data.npz"), fragment)


def test_data_files_that_are_missing_or_wrong(cli, tmp_path):
    model = EXAMPLES / "lenet.onnx"
    expect_error(cli("predict", "--model", model, "--inputs", "none.npz"), "inputs none.npz not found")
    np.savez(tmp_path / "nox.npz", images=np.zeros((1, 1, 32, 32)))
    expect_error(cli("predict", "--model", model, "--inputs", "nox.npz"), "no array 'x' (found ['images'])")
    np.savez(tmp_path / "bady.npz", x=np.zeros((2, 32, 32)), y=np.zeros(3, np.int64))
    expect_error(cli("predict", "--model", model, "--inputs", "bady.npz"), "y has shape (3,); expected (2,)")
    (tmp_path / "text.npz").write_text("not numpy")
    expect_error(cli("predict", "--model", model, "--inputs", "text.npz"), "not a .npz archive")


def test_failed_run_writes_no_output(cli, tmp_path):
    np.savez(tmp_path / "data.npz", x=np.zeros((2, 1, 30, 30), np.float32))
    result = cli("predict", "--model", EXAMPLES / "lenet.onnx", "--inputs", "data.npz", "-o", "out.npz",
                 "--json", "out.json")
    expect_error(result, "x has shape")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.npz"]
