"""`cnnhw plan`: the plan `build` would make for a board, with its cost table, without building;
and `cnnhw sim --build DIR`, which simulates what a build built."""

import json

from cnnhw.hardware import HardwarePlan
from conftest import EXAMPLES, MNIST8


def test_plan_for_lenet_on_the_icebreaker(cli, tmp_path):
    result = cli("plan", "--model", EXAMPLES / "lenet.onnx", "--board", "icebreaker", "-o", "lenet.plan.json",
                 "--json", "facts.json")
    assert result.returncode == 0, result.stderr
    assert "the plan for the icebreaker (cost model)" in result.stdout
    facts = json.loads((tmp_path / "facts.json").read_text())
    for key in ("plan", "layer_costs", "predicted", "cycles_per_inference", "latency_cycles", "macs", "multipliers",
                "bound_cycles", "planning_seconds"):
        assert key in facts, key
    # The plan of the 8-DSP iCEBreaker: 13 products per cycle (packed pairs), the dense layers'
    # weights in SPRAM, conv2 the bottleneck at 40,000 cycles per image; two image buffers (four
    # block RAMs) in the serial front end, as one would not make the plan faster.
    assert facts["cycles_per_inference"] == 40_000 and facts["multipliers"] == 13
    assert facts["predicted"] == {"logic_cells": 5283, "dsp": 8, "ebr": 27, "spram": 3}
    assert facts["plan"]["image_buffers"] == 2
    layers = {layer["name"]: layer for layer in facts["plan"]["layers"]}
    assert (layers["/conv2/Conv"]["pe"], layers["/conv2/Conv"]["simd"], layers["/conv2/Conv"]["packed"]) == (2, 3, True)
    assert layers["/fc1/Gemm"]["weights"] == "spram"
    # -o writes a plan that --plan takes back, and planning with it fixed gives the same plan.
    written = json.loads((tmp_path / "lenet.plan.json").read_text())
    assert HardwarePlan.from_json(written).to_json() == facts["plan"]
    again = cli("plan", "--model", EXAMPLES / "lenet.onnx", "--board", "icebreaker", "--plan", "lenet.plan.json",
                "--json", "again.json")
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "again.json").read_text())["plan"] == facts["plan"]


def test_plan_for_mnist8_on_the_icebreaker(cli, tmp_path):
    result = cli("plan", "--model", MNIST8 / "mnist-8.onnx", "--board", "icebreaker", "--input-range", "0", "255",
                 "--json", "facts.json")
    assert result.returncode == 0, result.stderr
    facts = json.loads((tmp_path / "facts.json").read_text())
    # conv2's 16 products packed on the 8 DSPs; conv1's and the dense layer's made of logic cells.
    assert facts["cycles_per_inference"] == 39_200 and facts["predicted"]["dsp"] == 8
    layers = {layer["name"]: layer for layer in facts["plan"]["layers"]}
    assert (layers["Convolution110"]["pe"], layers["Convolution110"]["packed"]) == (16, True)
    assert layers["Convolution28"]["logic_products"] and layers["Times212"]["logic_products"]


def test_plan_output_may_not_be_the_plan_it_reads(cli, tmp_path):
    (tmp_path / "p.json").write_text(json.dumps({"layers": []}))
    result = cli("plan", "--model", EXAMPLES / "lenet.onnx", "--board", "icebreaker", "--plan", "p.json", "-o", "p.json")
    assert result.returncode == 2
    assert "-o" in result.error_line and "the plan file" in result.error_line


def test_sim_says_which_plan_it_verified(cli, tmp_path):
    import numpy as np
    import onnx

    from models import small_cnn

    model, _ = small_cnn(np.random.default_rng(5))
    onnx.save(model, tmp_path / "small.onnx")
    np.savez(tmp_path / "two.npz", x=np.random.default_rng(1).normal(size=(2, 2, 12, 10)).astype(np.float32))
    result = cli("sim", "--model", "small.onnx", "--inputs", "two.npz")
    assert result.returncode == 0, result.stderr
    assert "plan: cnnhw's default folding" in result.stderr and "--build DIR" in result.stderr


def test_sim_of_a_build_folder_that_is_not_a_build_is_refused(cli, tmp_path):
    (tmp_path / "notabuild").mkdir()
    np_file = tmp_path / "x.npz"
    import numpy as np

    np.savez(np_file, x=np.zeros((2, 1, 32, 32)))
    result = cli("sim", "--model", EXAMPLES / "lenet.onnx", "--inputs", "x.npz", "--build", "notabuild")
    assert result.returncode == 2
    assert "is not a finished cnnhw build" in result.error_line
