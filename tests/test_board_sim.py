"""The whole board top in cocotb + Verilator (`cnnhw sim --board`): bytes into the UART pin,
replies out of the TX pin decoded by the protocol code `cnnhw run` uses, compared with the golden
model; bad frames, a cut-off frame and a reset mid-image recover; on the iCEBreaker (iCE40) and the
ULX3S-12F (ECP5). Plus: the reply checker finds a wrong logit (so the simulation test can fail)."""

import json
from dataclasses import replace

import numpy as np
import onnx
import pytest

from cnnhw.boards import load_board
from cnnhw.frontend import load_model
from cnnhw.plan.budget import plan_for_board
from cnnhw.quant import QuantOptions, quantize_graph
from cnnhw.protocol.frames import FrameType, Status, encode
from cnnhw.sim.board import check_replies, scenario
from cnnhw.verify import expected_streams
from conftest import MNIST8, ROOT
from netgen import random_network


@pytest.mark.long
def test_mnist8_board_top_classifies_over_the_uart(cli, tmp_path):
    digits = np.load(MNIST8 / "mnist_digits_10.npz")
    np.savez(tmp_path / "five.npz", x=digits["x"][:5], y=digits["y"][:5])
    result = cli("sim", "--model", MNIST8 / "mnist-8.onnx", "--input-range", "0", "255", "--board", "icebreaker",
                 "--inputs", "five.npz", "--json", "board.json")
    assert result.returncode == 0, result.stderr
    _assert_the_scenario_passed(json.loads((tmp_path / "board.json").read_text()), 5)


def _assert_the_scenario_passed(facts: dict, images: int) -> None:
    """Every image classified as the golden model says, and every step of the scenario passed."""
    double = facts["plan"]["image_buffers"] == 2  # then two images go back to back as well
    assert facts["bit_exact"] and facts["classified"] == facts["results"] == images + 2 * double
    assert facts["mismatches"] == []
    steps = {check["step"]: check["passed"] for check in facts["checks"]}
    for step in ("status request", "bad checksum", "half a frame, then silence", "wrong length",
                 *(["two images back to back"] if double else []), "half a frame, then reset", "image 2 after a reset"):
        assert steps[step], step
    assert all(steps.values())


@pytest.mark.long
def test_lenet_board_top_loads_its_weights_from_flash_then_classifies(cli, tmp_path):
    """From power-up: the loader reads the weight image from the SPI flash model into SPRAM (yosys'
    SB_SPRAM256KA models, empty until then); images sent meanwhile get LOADING_WEIGHTS; then three
    images are classified exactly; a reset reloads; a second run with one payload bit of the image
    flipped answers BAD_WEIGHTS to an image, never a class."""
    sample = np.load(ROOT / "examples" / "lenet.sample.npz")
    np.savez(tmp_path / "three.npz", x=sample["x"][:3])
    result = cli("sim", "--model", ROOT / "examples" / "lenet.onnx", "--board", "icebreaker", "--inputs", "three.npz",
                 "--json", "board.json")
    assert result.returncode == 0, result.stderr
    facts = json.loads((tmp_path / "board.json").read_text())
    assert facts["plan"]["image_buffers"] == 2  # so two images go back to back as well
    assert facts["bit_exact"] and facts["classified"] == facts["results"] == 3 + 2 and facts["mismatches"] == []
    assert any(layer["weights"] == "spram" for layer in facts["plan"]["layers"]) and facts["weight_image_bytes"] > 0
    steps = {check["step"]: check["passed"] for check in facts["checks"]}
    for step in ("status while the weights load", "an image while the weights load", "status once loaded",
                 "half a frame, then reset (the weights reload)", "image 2 after a reset",
                 "corrupted weight image: status once loaded", "corrupted weight image: an image with bad weights"):
        assert steps[step], step
    assert all(steps.values())


@pytest.mark.long
def test_the_ulx3s_12f_board_top_classifies_over_the_uart(cli, tmp_path):
    """`cnnhw sim --board` on an ECP5 profile: the board top the bitstream is built from (without
    the EHXPLLL and IO buffers), driven through its UART pins, every reply equal to the golden
    model, and the bad frames recovered from. The top instantiates no vendor primitive: yosys
    infers the MULT18X18Ds and DP16KDs from this same Verilog, so nothing in it goes unsimulated."""
    from models import small_cnn

    model, _ = small_cnn(np.random.default_rng(5))
    onnx.save(model, tmp_path / "small.onnx")
    np.savez(tmp_path / "small.calib.npz", x=np.random.default_rng(1).normal(size=(64, 2, 12, 10)).astype(np.float32))
    np.savez(tmp_path / "three.npz", x=np.random.default_rng(2).normal(size=(3, 2, 12, 10)).astype(np.float32))
    result = cli("sim", "--model", "small.onnx", "--board", "ulx3s-12f", "--inputs", "three.npz", "--json", "board.json",
                 "-o", "sim")
    assert result.returncode == 0, result.stderr
    facts = json.loads((tmp_path / "board.json").read_text())
    _assert_the_scenario_passed(facts, 3)
    assert facts["clock_mhz"] == load_board("ulx3s-12f").first_try_mhz
    top = next((tmp_path / "sim").rglob("cnnhw_board.v")).read_text()
    assert not [name for name in ("MULT18X18D", "DP16KD", "PDPW16KD", "EHXPLLL", "TRELLIS_IO") if name in top]


def _golden_replies(steps, logits, classes, logit_bytes):
    """What a correct board sends for each step (built from the golden model with the protocol)."""
    replies = []
    for step in steps:
        reply = b""
        for kind, want in step.expect:
            if kind == FrameType.RESULT:
                payload = b"".join(v.to_bytes(logit_bytes, "little", signed=True) for v in logits[want])
                reply += encode(kind, payload + bytes([classes[want]]))
            else:
                reply += encode(kind, want)
        replies.append(reply)
    return replies


def test_the_reply_checker_finds_the_first_wrong_logit(tmp_path):
    spec = random_network(3)
    onnx.save(spec.model, tmp_path / "net.onnx")
    qgraph = quantize_graph(load_model(tmp_path / "net.onnx"), QuantOptions(), spec.calibration())
    plan = replace(plan_for_board(qgraph, load_board("icebreaker")), image_buffers=2)
    x = spec.calibration(3)
    expected = expected_streams(qgraph, x)
    classes = len(expected.outputs) // 3
    logits = [expected.outputs[k * classes:(k + 1) * classes] for k in range(3)]
    logit_bytes = 2
    steps = scenario(qgraph, plan, expected.inputs, 3, logit_bytes, 5000, 8)
    assert steps[0].expect == [(FrameType.STATUS, bytes([Status.READY]))]
    replies = _golden_replies(steps, logits, expected.classes, logit_bytes)
    classified, failures, _ = check_replies(steps, replies, logits, expected.classes, logit_bytes)
    # Image 0, image 1 after the bad checksum, images 0 and 1 back to back, image 2 after the reset.
    assert (classified, failures) == (5, [])

    wrong = [list(row) for row in logits]
    wrong[2][1] += 1  # the board computed one logit of image 2 off by one
    replies = _golden_replies(steps, wrong, expected.classes, logit_bytes)
    classified, failures, checks = check_replies(steps, replies, logits, expected.classes, logit_bytes)
    assert failures == [f"image 2 after a reset: layer 'logits of image 2', element 1: expected {logits[2][1]}, "
                        f"got {logits[2][1] + 1}"]
    assert classified == 4 and [label for label, ok in checks if not ok] == ["image 2 after a reset"]

    silent = [r if "silence" not in step.label else b"" for step, r in zip(steps, replies)]
    _, failures, _ = check_replies(steps, silent, logits, expected.classes, logit_bytes)
    assert any(f.startswith("half a frame, then silence: expected 1 reply frame(s), got 0") for f in failures)


@pytest.mark.long
def test_a_result_of_hundreds_of_values_arrives_whole(cli, tmp_path):
    """A dense layer of 300 outputs: each RESULT frame is 608 bytes on the wire, far longer than a
    classifier's, and every byte of it is waited for and compared (the wait is simulated time); the
    first image's class is above 255, so it needs the class field's second byte."""
    rng = np.random.default_rng(0)
    weight, bias = _save_dense(tmp_path / "wide.onnx", 16, 300, rng)
    x = rng.normal(size=(64, 16)).astype(np.float32)
    classes = (x @ weight.T + bias).argmax(axis=1)
    first_high = int(np.flatnonzero(classes >= 256)[0])
    np.savez(tmp_path / "wide.calib.npz", x=x)
    np.savez(tmp_path / "three.npz", x=x[[first_high, 0, 1]])
    result = cli("sim", "--model", "wide.onnx", "--board", "ulx3s-12f", "--inputs", "three.npz", "--json", "board.json",
                 "-o", "sim")
    assert result.returncode == 0, result.stderr
    _assert_the_scenario_passed(json.loads((tmp_path / "board.json").read_text()), 3)


def test_a_result_longer_than_a_frame_is_refused_before_any_work(cli, tmp_path):
    """33,000 outputs of 2 bytes do not fit the 65,535 bytes a frame's length field can say."""
    rng = np.random.default_rng(1)
    _save_dense(tmp_path / "huge.onnx", 1, 33_000, rng)
    np.savez(tmp_path / "x.npz", x=rng.normal(size=(2, 1)).astype(np.float32))
    result = cli("sim", "--model", "huge.onnx", "--board", "ulx3s-85f", "--inputs", "x.npz", "--calib", "x.npz",
                 "-o", "sim")
    assert result.returncode != 0
    assert "a result of 66,002 bytes does not fit one frame of the serial protocol (at most 65,535)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "sim").exists()


def _save_dense(path, inputs: int, outputs: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """One Gemm layer of random weights, as ONNX; returns (weight, bias)."""
    from onnx import TensorProto, helper, numpy_helper

    weight = rng.normal(size=(outputs, inputs)).astype(np.float32)
    bias = rng.normal(size=outputs).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)], path.stem,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, inputs])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, outputs])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return weight, bias
