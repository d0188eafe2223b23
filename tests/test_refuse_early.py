"""What the hardware cannot take is said before anyone quantizes: ``inspect`` gives the verdict and
the reason, ``quantize`` and ``predict`` warn, ``sim`` refuses; a degenerate data-free quantization
is an error that asks for calibration data; image models take data as (N, C, H, W)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import EXAMPLES
from models import make_model

RNG = np.random.default_rng(31)
UNSTREAMABLE = "Reshape 'to447' to (4, 4, 7): the hardware streams feature maps in HWC order"


def _reshape_at_output(path):
    """A conv whose output is reshaped to (4, 4, 7): the golden models compute it, the hardware
    streams no such reshape."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1], name="conv"),
             helper.make_node("Reshape", ["c", "shape"], ["y"], name="to447")]
    arrays = {"w": RNG.normal(size=(7, 1, 1, 1)).astype(np.float32), "shape": np.array([-1, 4, 4, 7])}
    onnx.save(make_model(nodes, arrays, ["N", 1, 4, 4], ["N", 4, 4, 7]), path)


def _deep_mlp(path, depth: int = 4, width: int = 64):
    """Dense layers whose data-free interval bounds outgrow their values by a factor of about
    ``sqrt(width)`` each: after four, 8-bit integers round every value to 0."""
    rng = np.random.default_rng(3)  # the message names the layer: the weights must not depend on test order
    nodes, arrays, tensor = [], {}, "x"
    for k in range(depth):
        arrays[f"w{k}"] = (rng.normal(size=(width, width)) / 8).astype(np.float32)
        nodes += [helper.make_node("MatMul", [tensor, f"w{k}"], [f"m{k}"], name=f"fc{k}"),
                  helper.make_node("Relu", [f"m{k}"], [f"r{k}"], name=f"relu{k}")]
        tensor = f"r{k}"
    arrays["out"] = rng.normal(size=(width, 10)).astype(np.float32)
    nodes.append(helper.make_node("MatMul", [tensor, "out"], ["y"], name="logits"))
    onnx.save(make_model(nodes, arrays, ["N", width], ["N", 10]), path)


def test_inspect_says_whether_the_hardware_can_take_the_model(cli, tmp_path):
    _reshape_at_output(tmp_path / "r.onnx")
    result = cli("inspect", "--model", "r.onnx", "--json", "r.json")
    assert result.returncode == 0, result.stderr
    assert f"hardware: cnnhw cannot build it: {UNSTREAMABLE}" in " ".join(result.stdout.split())
    facts = json.loads((tmp_path / "r.json").read_text())["hardware"]
    assert not facts["supported"] and facts["reason"].startswith(UNSTREAMABLE)

    shutil.copy(EXAMPLES / "lenet.onnx", tmp_path / "lenet.onnx")
    result = cli("inspect", "--model", "lenet.onnx", "--json", "lenet.json")
    assert result.returncode == 0 and "hardware: every layer has a stage" in result.stdout
    assert json.loads((tmp_path / "lenet.json").read_text())["hardware"] == {"supported": True, "reason": None}


def test_quantize_and_predict_warn_and_sim_refuses(cli, tmp_path):
    _reshape_at_output(tmp_path / "r.onnx")
    np.savez(tmp_path / "x.npz", x=RNG.uniform(0, 1, size=(4, 1, 4, 4)))
    warning = "the hardware cannot take this model (sim and build will refuse it): " + UNSTREAMABLE
    for command in (("quantize",), ("predict", "--inputs", "x.npz", "--golden", "int")):
        result = cli(*command, "--model", "r.onnx", "--calib", "x.npz")
        assert result.returncode == 0, result.stderr
        assert warning in result.stderr
    result = cli("sim", "--model", "r.onnx", "--inputs", "x.npz", "--calib", "x.npz")
    assert result.returncode == 2 and UNSTREAMABLE in result.error_line


def test_a_degenerate_data_free_quantization_asks_for_calibration_data(cli, tmp_path):
    """Without data the deep MLP's fourth layer gave 0 for every image (and its logits only their
    biases) with nothing but 'accuracy may suffer'."""
    _deep_mlp(tmp_path / "mlp.onnx")
    x = RNG.uniform(0, 1, size=(32, 64))
    np.savez(tmp_path / "x.npz", x=x)
    result = cli("quantize", "--model", "mlp.onnx", "--eval", "x.npz")
    assert result.returncode == 2
    assert result.error_line == ("cnnhw: error: data-free quantization: layer 'fc3' gives 0 for every one of 16 "
                                 "probe images in [0, 1]; the ranges derived from the input range alone are too "
                                 "loose for this model: pass --calib DATA with real images")
    assert cli("quantize", "--model", "mlp.onnx", "--calib", "x.npz", "--eval", "x.npz").returncode == 0


def test_a_data_free_lenet_passes_the_check(cli, tmp_path):
    shutil.copy(EXAMPLES / "lenet.onnx", tmp_path / "lenet.onnx")  # no lenet.calib.npz beside it
    result = cli("quantize", "--model", "lenet.onnx", "--eval", EXAMPLES / "lenet.test.npz", "--json", "q.json")
    assert result.returncode == 0, result.stderr
    assert "data-free bounds" in result.stderr and json.loads((tmp_path / "q.json").read_text())["agreement"] > 0.5


def test_the_output_sqnr_floor_refuses_what_no_zero_layer_shows():
    """The floor, on a quantization whose output is about all error though not all zeros: a dense
    layer of eight inputs at 2 bits (its steps are a quarter of the data-free bound)."""
    from cnnhw.errors import CnnhwError
    from cnnhw.golden.evaluate import DATA_FREE_SQNR_FLOOR_DB, check_data_free
    from cnnhw.ir import Dense, Graph
    from cnnhw.quant import QuantOptions, quantize_graph

    graph = Graph("g", (8,), (Dense("fc", np.random.default_rng(8).normal(size=(4, 8)), np.zeros(4)),))
    for bits, refused in ((2, True), (3, False)):
        qgraph = quantize_graph(graph, QuantOptions(weight_bits=bits, activation_bits=bits, output_bits=bits),
                                input_range=(0.0, 1.0))
        if refused:
            with pytest.raises(CnnhwError, match=f"the output's SQNR is -0.0 dB on 16 probe images in \\[0, 1\\], "
                                                 f"below the floor of {DATA_FREE_SQNR_FLOOR_DB:g} dB"):
                check_data_free(qgraph, (0.0, 1.0))
        else:
            check_data_free(qgraph, (0.0, 1.0))


def test_predict_takes_nchw_for_a_keras_model_that_reshapes_its_input(cli, tmp_path):
    """tf2onnx writes a (N, 28, 28) input reshaped to NHWC and transposed: cnnhw's data files stay
    (N, 1, 28, 28) (or (N, 28, 28)), never the file's (N, 28, 28, 1)."""
    nodes = [helper.make_node("Reshape", ["input_1", "shape"], ["r"], "sequential/reshape/Reshape"),
             helper.make_node("Transpose", ["r"], ["t"], "sequential/conv2d/Conv2D__6", perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["t", "kernel"], ["c"], "sequential/conv2d/Conv2D", kernel_shape=[3, 3]),
             helper.make_node("GlobalAveragePool", ["c"], ["g"], "pool"),
             helper.make_node("Flatten", ["g"], ["y"], "flatten")]
    inits = [numpy_helper.from_array(np.array([-1, 28, 28, 1], dtype=np.int64), "shape"),
             numpy_helper.from_array(RNG.normal(size=(3, 1, 3, 3)).astype(np.float32), "kernel")]
    graph = helper.make_graph(nodes, "keras", [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["N", 28, 28])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "k.onnx")
    x = RNG.uniform(0, 1, size=(3, 1, 28, 28))
    np.savez(tmp_path / "nchw.npz", x=x)
    np.savez(tmp_path / "plane.npz", x=x[:, 0])
    np.savez(tmp_path / "nhwc.npz", x=x.transpose(0, 2, 3, 1))
    for name in ("nchw", "plane"):
        result = cli("predict", "--model", "k.onnx", "--inputs", f"{name}.npz", "--json", f"{name}.json")
        assert result.returncode == 0, result.stderr
    assert (json.loads((tmp_path / "nchw.json").read_text())["outputs"]
            == json.loads((tmp_path / "plane.json").read_text())["outputs"])
    result = cli("predict", "--model", "k.onnx", "--inputs", "nhwc.npz")
    assert result.returncode == 2 and "x has shape (3, 28, 28, 1), but model 'k' takes (N, 1, 28, 28)" in result.error_line
