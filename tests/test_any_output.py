"""Models whose output is not a class (a regression head, an autoencoder's reconstruction, a
decoder's map) report their output values; a class appears only where it means something (two or
more logits, or one logit: whether it is above 0); a binary classifier takes labels 0 and 1."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import helper

from cnnhw.frontend import load_model
from cnnhw.golden import classes_of, run_float
from cnnhw.golden.int_ref import run_int
from cnnhw.protocol.frames import Frame, FrameType, decode_result
from cnnhw.quant import QuantOptions, quantize_graph
from models import make_model

RNG = np.random.default_rng(21)


def _autoencoder(path):
    """dense 16 -> 6, ReLU, dense 6 -> 16: its output is shaped as its input (a reconstruction)."""
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="encode"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="decode")]
    arrays = {"w1": RNG.normal(size=(16, 6)).astype(np.float32), "b1": RNG.normal(size=6).astype(np.float32),
              "w2": RNG.normal(size=(6, 16)).astype(np.float32), "b2": RNG.normal(size=16).astype(np.float32)}
    onnx.save(make_model(nodes, arrays, ["N", 16], ["N", 16]), path)


def _binary(path, final_sigmoid: bool = False):
    nodes = [helper.make_node("Gemm", ["x", "w1"], ["h"], name="hidden"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Gemm", ["r", "w2"], ["g" if final_sigmoid else "y"], name="logit")]
    if final_sigmoid:
        nodes.append(helper.make_node("Sigmoid", ["g"], ["y"], name="probability"))
    arrays = {"w1": RNG.normal(size=(6, 8)).astype(np.float32), "w2": RNG.normal(size=(8, 1)).astype(np.float32)}
    onnx.save(make_model(nodes, arrays, ["N", 6], ["N", 1]), path)


def _decoder_map(path):
    """A 1x1 convolution: its output is a map of 4x4 positions (a segmentation-like output)."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1], name="head")]
    onnx.save(make_model(nodes, {"w": RNG.normal(size=(2, 3, 1, 1)).astype(np.float32)}, ["N", 3, 4, 4],
                         ["N", 2, 4, 4]), path)


def test_which_outputs_have_classes(tmp_path):
    _autoencoder(tmp_path / "ae.onnx")
    _binary(tmp_path / "binary.onnx")
    _decoder_map(tmp_path / "map.onnx")
    assert not load_model(tmp_path / "ae.onnx").has_classes
    assert not load_model(tmp_path / "map.onnx").has_classes
    assert load_model(tmp_path / "binary.onnx").has_classes


def test_predict_reports_an_autoencoders_outputs_and_no_class(cli, tmp_path):
    _autoencoder(tmp_path / "ae.onnx")
    x = RNG.normal(size=(5, 16))
    np.savez(tmp_path / "x.npz", x=x, y=np.zeros(5, dtype=np.int64))
    for golden in ("float", "int"):
        result = cli("predict", "--model", "ae.onnx", "--inputs", "x.npz", "--golden", golden, "--calib", "x.npz",
                     "-o", f"{golden}.npz", "--json", f"{golden}.json")
        assert result.returncode == 0, result.stderr
        assert "outputs of 5 images, 16 values each" in result.stdout and "class" not in result.stdout
        assert "the labels y are not used: model 'ae' gives values, not classes" in result.stderr
        facts = json.loads((tmp_path / f"{golden}.json").read_text())
        written = np.load(tmp_path / f"{golden}.npz")
        assert "classes" not in facts and "accuracy" not in facts and "classes" not in written
        assert facts["output_shape"] == [16]
        if golden == "float":
            expected = run_float(load_model(tmp_path / "ae.onnx"), x).astype(np.float32)
            assert np.array_equal(np.asarray(facts["outputs"], dtype=np.float32), expected)
        else:
            qgraph = quantize_graph(load_model(tmp_path / "ae.onnx"), QuantOptions(), x)
            expected = run_int(qgraph, x)
            assert facts["outputs"] == expected.tolist() and facts["output_scale"] == qgraph.output_scale
        assert np.array_equal(written["outputs"], expected)


def test_quantize_reports_the_output_error_of_a_model_without_classes(cli, tmp_path):
    _autoencoder(tmp_path / "ae.onnx")
    np.savez(tmp_path / "x.npz", x=RNG.normal(size=(20, 16)))
    result = cli("quantize", "--model", "ae.onnx", "--calib", "x.npz", "--eval", "x.npz", "--json", "q.json")
    assert result.returncode == 0, result.stderr
    assert "the model gives values, not classes" in result.stdout and "agreement" not in result.stdout
    facts = json.loads((tmp_path / "q.json").read_text())
    assert "agreement" not in facts and facts["output_sqnr_db"] == facts["layers"][-1]["sqnr_db"]


def test_a_binary_classifier_takes_labels_0_and_1(cli, tmp_path):
    """One logit: two classes. Label 1 was refused as 'not a class' when the classes were the
    number of outputs."""
    _binary(tmp_path / "binary.onnx")
    x = RNG.uniform(-1, 1, size=(30, 6))
    graph = load_model(tmp_path / "binary.onnx")
    y = classes_of(run_float(graph, x))
    assert set(y) == {0, 1}
    np.savez(tmp_path / "x.npz", x=x, y=y)
    result = cli("predict", "--model", "binary.onnx", "--inputs", "x.npz", "--json", "p.json")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "p.json").read_text())["accuracy"] == 1.0


def test_a_final_sigmoid_classifies_at_one_half_in_float_and_by_the_logit_in_integers(cli, tmp_path):
    """The float model's output is a probability (class 1 above 0.5, not above 0: every image would
    be class 1); the integer model dropped the Sigmoid and classifies its logit by its sign."""
    _binary(tmp_path / "binary.onnx", final_sigmoid=True)
    x = RNG.uniform(-1, 1, size=(40, 6))
    graph = load_model(tmp_path / "binary.onnx")
    probabilities = run_float(graph, x)
    y = (probabilities[:, 0] > 0.5).astype(np.int64)
    assert set(y) == {0, 1}
    np.savez(tmp_path / "x.npz", x=x, y=y)
    for golden in ("float", "int"):
        result = cli("predict", "--model", "binary.onnx", "--inputs", "x.npz", "--calib", "x.npz", "--golden",
                     golden, "--json", f"{golden}.json")
        assert result.returncode == 0, result.stderr
        facts = json.loads((tmp_path / f"{golden}.json").read_text())
        agreement = np.mean(np.asarray(facts["classes"]) == y)
        assert agreement == 1.0 if golden == "float" else agreement >= 0.9


def test_unsigned_outputs_decode_unsigned_on_the_link():
    """A last layer with a fused ReLU writes u16: 40,000 is two bytes 0x40 0x9C, not -25,536."""
    payload = (40000).to_bytes(2, "little") + (7).to_bytes(2, "little") + bytes([1])
    assert decode_result(Frame(FrameType.RESULT, payload), 2, 2, signed=False).logits == [40000, 7]
    assert decode_result(Frame(FrameType.RESULT, payload), 2, 2).logits == [40000 - 65536, 7]


@pytest.mark.parametrize("model", ["ae", "map"])
def test_sim_reports_the_outputs_and_no_class(model, cli, tmp_path):
    if model == "ae":
        _autoencoder(tmp_path / "m.onnx")
        x = RNG.normal(size=(3, 16))
    else:
        _decoder_map(tmp_path / "m.onnx")
        x = RNG.normal(size=(3, 3, 4, 4))
    np.savez(tmp_path / "x.npz", x=x)
    result = cli("sim", "--model", "m.onnx", "--inputs", "x.npz", "--calib", "x.npz", "--json", "s.json")
    assert result.returncode == 0, result.stderr
    assert "mismatching classes" not in result.stdout
    facts = json.loads((tmp_path / "s.json").read_text())
    qgraph = quantize_graph(load_model(tmp_path / "m.onnx"), QuantOptions(), x)
    assert facts["bit_exact"] and "classes" not in facts
    assert facts["outputs"] == run_int(qgraph, x).tolist()
