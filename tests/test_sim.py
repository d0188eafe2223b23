"""The exported Verilog of whole networks in cocotb + Verilator: every layer's stream equals the
golden model's (==), with random input gaps and output stalls, and the measured cycles per
inference agree with the plan's prediction.

The cycle rule: an image takes as long as the slowest stage (``cnnhw.hardware.Network``).
On the plans the planner chooses (20 random networks under several budgets, the PyTorch CIFAR-10
tutorial network with a non-overlapped first stage) the measured steady state (images back to
back) must be within 2 % of it, on random foldings within 5 %; on every network here it is exact
but for a few cycles. The latency model (``cnnhw.hardware.timing``) is exact: the cycle of every
stage's last element of the first image, of its class, and the cycles between the classes of
images sent back to back equal the simulation's.
"""

import dataclasses
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from cnnhw.boards import load_board
from cnnhw.errors import DoesNotFitError
from cnnhw.flow.verilog import export_verilog
from cnnhw.frontend import load_model
from cnnhw.hardware import Network, with_folding
from cnnhw.plan import default_plan, predict_cycles
from cnnhw.plan.budget import plan_for_board
from cnnhw.plan.costs import needs, plan_costs
from cnnhw.quant import QuantOptions, quantize_graph
from cnnhw.sim.runner import simulate_export
from cnnhw.verify import expected_streams
from conftest import EXAMPLES, MNIST8
from models import cifar10_tutorial
from netgen import random_graph_network, random_network, random_plan

CYCLE_TOLERANCE = 0.05
#: On the planner's plans (``test_planner_plans_take_the_predicted_cycles``).
PLANNED_CYCLE_TOLERANCE = 0.02


def check_cycles(measured: float, predicted: int, tolerance: float = CYCLE_TOLERANCE) -> None:
    assert abs(measured - predicted) <= tolerance * predicted, (measured, predicted)


def check_timeline(result, network: Network, timed_images: int) -> None:
    """The timing model (``Network.timeline``) gives the simulation's every stamp: each stage's last
    element of the first image, its class, and the cycles between the classes of the images sent
    back to back."""
    assert result.stage_latencies == network.stage_latencies()
    assert result.latency_cycles == network.latency()
    assert result.cycles_per_inference == network.interval(timed_images)


def test_lenet_20_test_images_bit_exact(cli, tmp_path):
    data = np.load(EXAMPLES / "lenet.test.npz")
    np.savez(tmp_path / "images.npz", x=data["x"][:20], y=data["y"][:20])
    result = cli("sim", "--model", EXAMPLES / "lenet.onnx", "--inputs", "images.npz", "--json", "sim.json")
    assert result.returncode == 0, result.stdout + result.stderr
    facts = json.loads((tmp_path / "sim.json").read_text())
    assert facts["bit_exact"] and facts["images"] == 20 and facts["mismatches"] == []
    assert facts["simulator"] == "verilator"
    check_cycles(facts["cycles_per_inference"], facts["predicted_cycles_per_inference"])
    assert facts["latency_cycles"] == facts["predicted_latency_cycles"]
    stages = facts["stage_latency_cycles"]
    assert stages == facts["predicted_stage_latency_cycles"]
    assert len(stages) == 7  # two conv + pool pairs, three dense layers
    assert sorted(p.name for p in (tmp_path / "rtl_out" / "lenet").iterdir()) == [
        ".cnnhw", "cnnhw_lenet.v", "manifest.json", "sim_build"]
    manifest = json.loads((tmp_path / "rtl_out" / "lenet" / "manifest.json").read_text())
    assert manifest["streams"]["i"]["format"] == {"bits": 8, "signed": False}
    assert [stage["op"] for stage in manifest["stages"]] == ["Conv", "MaxPool", "Conv", "MaxPool", "Dense", "Dense",
                                                             "Dense"]


def test_mnist8_ten_digits_bit_exact(cli, tmp_path):
    result = cli("sim", "--model", MNIST8 / "mnist-8.onnx", "--inputs", MNIST8 / "mnist_digits_10.npz",
                 "--input-range", "0", "255", "--json", "sim.json", "-o", "rtl")
    assert result.returncode == 0, result.stdout + result.stderr
    facts = json.loads((tmp_path / "sim.json").read_text())
    assert facts["bit_exact"] and facts["images"] == 10
    check_cycles(facts["cycles_per_inference"], facts["predicted_cycles_per_inference"])
    assert facts["latency_cycles"] == facts["predicted_latency_cycles"]
    assert facts["stage_latency_cycles"] == facts["predicted_stage_latency_cycles"]
    assert (tmp_path / "rtl" / "cnnhw_mnist_8.v").is_file()


@pytest.mark.parametrize("seed", [1, 13])
def test_random_network_rtl_bit_exact(seed, tmp_path):
    spec = random_network(seed)
    onnx.save(spec.model, tmp_path / "net.onnx")
    qgraph = quantize_graph(load_model(tmp_path / "net.onnx"),
                            QuantOptions(weight_bits=spec.bits, activation_bits=spec.bits), spec.calibration())
    plan = random_plan(qgraph, seed)
    export = export_verilog(qgraph, plan, tmp_path / "rtl")
    expected = expected_streams(qgraph, spec.calibration(5))
    result = simulate_export(export, expected, tmp_path / "build", timing_images=4, seed=seed)
    assert result.mismatches == [], "; ".join(map(str, result.mismatches))
    assert result.class_mismatches == 0
    check_cycles(result.cycles_per_inference, max(predict_cycles(qgraph, plan).values()))
    check_timeline(result, Network(qgraph, plan), 4)


@pytest.mark.parametrize("seed", [0, 1, 2, 10, 18, 32])
def test_random_graph_network_rtl_bit_exact(seed, tmp_path):
    """Random graph networks (forks, Add and Concat joins, lookup activations) under random
    foldings: bit-exact, and the timing model within 2 % of the simulation's latency and cycles
    between classes."""
    spec = random_graph_network(seed)
    onnx.save(spec.model, tmp_path / "net.onnx")
    qgraph = quantize_graph(load_model(tmp_path / "net.onnx"), QuantOptions(), spec.calibration())
    plan = random_plan(qgraph, seed)
    export = export_verilog(qgraph, plan, tmp_path / "rtl")
    result = simulate_export(export, expected_streams(qgraph, spec.calibration(3)), tmp_path / "build",
                             timing_images=3, seed=seed)
    assert result.mismatches == [], "; ".join(map(str, result.mismatches))
    assert result.class_mismatches == 0
    network = Network(qgraph, plan)
    check_cycles(result.latency_cycles, network.latency(), PLANNED_CYCLE_TOLERANCE)
    check_cycles(result.cycles_per_inference, network.interval(3), PLANNED_CYCLE_TOLERANCE)
    check_cycles(result.cycles_per_inference, network.cycles_per_inference, PLANNED_CYCLE_TOLERANCE)


#: The budgets the planner plans the random networks for, in turn: the iCEBreaker's, few DSPs
#: (products packed, or made of logic cells), and the fewest block RAMs it can plan for.
BUDGETS = ("board", "dsp2", "dsp1", "least_ebr", "least_ebr_dsp2")


def _budget(qgraph, kind: str):
    board = load_board("icebreaker")
    if "dsp" in kind:
        board = dataclasses.replace(board, budget={**board.budget, "dsp": int(kind[-1])})
    if kind.startswith("least_ebr"):
        used = needs(plan_costs(qgraph, plan_for_board(qgraph, board), board))["ebr"]
        for ebr in range(used - 1, 0, -1):
            tighter = dataclasses.replace(board, budget={**board.budget, "ebr": ebr})
            try:
                plan_for_board(qgraph, tighter)
            except DoesNotFitError:
                break
            board = tighter
    return board


def _simulate_plan(qgraph, plan, images, folder, seed):
    export = export_verilog(qgraph, plan, folder / "rtl")
    expected = expected_streams(qgraph, images)
    result = simulate_export(export, expected, folder / "build", timing_images=len(images), seed=seed)
    assert result.mismatches == [], "; ".join(map(str, result.mismatches))
    assert result.class_mismatches == 0
    return result


@pytest.mark.parametrize("seed", range(20))
def test_planner_plans_take_the_predicted_cycles(seed, tmp_path):
    spec = random_network(seed)
    onnx.save(spec.model, tmp_path / "net.onnx")
    qgraph = quantize_graph(load_model(tmp_path / "net.onnx"),
                            QuantOptions(weight_bits=spec.bits, activation_bits=spec.bits), spec.calibration())
    plan = plan_for_board(qgraph, _budget(qgraph, BUDGETS[seed % len(BUDGETS)]))
    result = _simulate_plan(qgraph, plan, spec.calibration(3), tmp_path, seed)
    network = Network(qgraph, plan)
    check_cycles(result.cycles_per_inference, network.cycles_per_inference, PLANNED_CYCLE_TOLERANCE)
    check_timeline(result, network, 3)


def test_cifar10_tutorial_network_takes_the_predicted_cycles(tmp_path):
    """The PyTorch CIFAR-10 tutorial network (3->6 conv 5x5, pool, 6->16 conv 5x5, pool, dense
    120/84/10) with random weights: on the iCEBreaker the planner gives up both convolutions'
    line-buffer overlap. conv2's rows come from conv1, so the two stall one another at every image
    boundary (``Network.coupled``); the plan's cycles per inference come from the timing model's
    steady state, and the simulation takes exactly those (146,834, against 176,412 when the
    planner kept conv2's overlap)."""
    onnx.save(cifar10_tutorial(np.random.default_rng(0)), tmp_path / "cifar.onnx")
    rng = np.random.default_rng(1)
    qgraph = quantize_graph(load_model(tmp_path / "cifar.onnx"), QuantOptions(),
                            rng.uniform(0, 1, size=(32, 3, 32, 32)))
    plan = plan_for_board(qgraph, load_board("icebreaker"))
    network = Network(qgraph, plan)
    assert network.coupled() == ["conv2"] and not plan.for_layer("conv1").overlap
    result = _simulate_plan(qgraph, plan, rng.uniform(0, 1, size=(2, 3, 32, 32)), tmp_path, 3)
    check_timeline(result, network, 2)
    assert result.cycles_per_inference == network.cycles_per_inference


def test_a_plan_with_coupled_stages_takes_the_modelled_cycles(tmp_path):
    """The CIFAR-10 network with both convolutions non-overlapped, as a user's plan may have it:
    conv2's rows come from conv1, and the two stall one another at every image boundary. The
    timing model gives the simulation's every stamp, and ``cycles_per_inference`` is its steady
    state, below what conv2's own cycles (an upper estimate there) say."""
    onnx.save(cifar10_tutorial(np.random.default_rng(0)), tmp_path / "cifar.onnx")
    rng = np.random.default_rng(1)
    qgraph = quantize_graph(load_model(tmp_path / "cifar.onnx"), QuantOptions(),
                            rng.uniform(0, 1, size=(32, 3, 32, 32)))
    plan = default_plan(qgraph)
    plan = with_folding(plan, "conv1", pe=6, simd=1, overlap=False)
    plan = with_folding(plan, "conv2", pe=1, simd=2, overlap=False)
    network = Network(qgraph, plan)
    assert network.coupled() == ["conv2"]
    result = _simulate_plan(qgraph, plan, rng.uniform(0, 1, size=(3, 3, 32, 32)), tmp_path, 5)
    check_timeline(result, network, 3)
    assert network.cycles_per_inference < max(network.cycles().values())
    check_cycles(result.cycles_per_inference, network.cycles_per_inference, PLANNED_CYCLE_TOLERANCE)


def test_verilog_is_byte_identical_for_identical_inputs(tmp_path):
    graph = load_model(MNIST8 / "mnist-8.onnx")
    qgraph = quantize_graph(graph, QuantOptions(), input_range=(0, 255))
    first = export_verilog(qgraph, default_plan(qgraph), tmp_path / "a")
    again = quantize_graph(load_model(MNIST8 / "mnist-8.onnx"), QuantOptions(), input_range=(0, 255))
    second = export_verilog(again, default_plan(again), tmp_path / "b")
    digest = lambda path: hashlib.sha256(path.read_bytes()).hexdigest()  # noqa: E731
    assert digest(first.verilog) == digest(second.verilog)
    assert digest(first.manifest) == digest(second.manifest)
    assert str(tmp_path) not in first.verilog.read_text()  # no paths of the machine that made it


def test_export_replaces_the_folder_whole(tmp_path):
    graph = load_model(MNIST8 / "mnist-8.onnx")
    qgraph = quantize_graph(graph, QuantOptions(), input_range=(0, 255))
    (tmp_path / "rtl").mkdir()
    (tmp_path / "rtl" / "stale.v").write_text("// from an older run")
    export_verilog(qgraph, default_plan(qgraph), tmp_path / "rtl")
    assert sorted(p.name for p in (tmp_path / "rtl").iterdir()) == [".cnnhw", "cnnhw_mnist_8.v", "manifest.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["rtl"]  # no staging folders left behind


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog (iverilog) is not installed")
def test_icarus_when_installed(tmp_path):
    spec = random_network(13)
    onnx.save(spec.model, tmp_path / "net.onnx")
    qgraph = quantize_graph(load_model(tmp_path / "net.onnx"), QuantOptions(), spec.calibration())
    export = export_verilog(qgraph, default_plan(qgraph), tmp_path / "rtl")
    expected = expected_streams(qgraph, spec.calibration(2))
    result = simulate_export(export, expected, tmp_path / "build", "icarus")
    assert result.bit_exact


def test_missing_icarus_is_a_clear_error(cli, tmp_path):
    # A PATH with nothing but this Python's folder: iverilog cannot be found, installed or not.
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    result = cli("sim", "--model", MNIST8 / "mnist-8.onnx", "--inputs", MNIST8 / "mnist_digits_10.npz",
                 "--input-range", "0", "255", "--simulator", "icarus", env=env)
    assert result.returncode == 2
    assert "Icarus Verilog (iverilog) is not installed" in result.error_line


def test_impossible_plan_is_a_clear_error(cli, tmp_path):
    plan = {"layers": [{"name": "Convolution28", "pe": 3, "simd": 1, "digit_bits": 4}]}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    result = cli("sim", "--model", MNIST8 / "mnist-8.onnx", "--inputs", MNIST8 / "mnist_digits_10.npz",
                 "--input-range", "0", "255", "--plan", "plan.json")
    assert result.returncode == 2
    assert "plan: pe 3 of layer 'Convolution28' must divide 8 (choose from [1, 2, 4, 8])" in result.error_line


def test_a_one_logit_model_classifies_by_the_sign_of_its_logit(tmp_path):
    """A binary classifier with one logit: the class is 1 when the logit is above 0 (not always 0,
    the index of the only logit), in the golden model and in the hardware's Argmax alike."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(rng.normal(size=(8, 6)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(size=(1, 8)).astype(np.float32), "w2")]
    nodes = [helper.make_node("Gemm", ["x", "w1"], ["h"], "hidden", transB=1),
             helper.make_node("Relu", ["h"], ["r"], "relu"),
             helper.make_node("Gemm", ["r", "w2"], ["y"], "logit", transB=1)]
    graph = helper.make_graph(nodes, "binary", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "binary.onnx")
    x = rng.uniform(-1, 1, size=(16, 6))
    qgraph = quantize_graph(load_model(tmp_path / "binary.onnx"), QuantOptions(), x)
    expected = expected_streams(qgraph, x[:8])
    assert set(expected.classes) == {0, 1}
    export = export_verilog(qgraph, default_plan(qgraph), tmp_path / "rtl")
    result = simulate_export(export, expected, tmp_path / "build")
    assert result.bit_exact and result.class_mismatches == 0
