"""``cnnhw export`` (the study kit) and ``predict --layers``: the kit's references, run outside the
project (a plain Python with NumPy alone; the system's C compiler), reproduce every layer of the
golden model, bit for bit, on LeNet-5's whole test split and on mnist-8, KWS and ResNet-8; the
``.hex`` files load with ``$readmemh`` in Verilator; a changed weight is caught."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnhw.frontend import load_model
from cnnhw.golden import classes_of, run_float
from cnnhw.golden.int_ref import run_int
from cnnhw.quant import QuantOptions, quantize_graph
from conftest import EXAMPLES

ROOT = Path(__file__).resolve().parent.parent
MLPERF = ROOT / "tests" / "data" / "mlperf_tiny"
MNIST8 = ROOT / "tests" / "data" / "mnist8"


def plain_python(tmp_path: Path) -> tuple[list[str], dict]:
    """The interpreter this venv was made from, without any site-packages (``-S -s``), and NumPy
    alone on its path: cnnhw cannot be imported there."""
    import numpy

    only = tmp_path / "numpy_only"
    only.mkdir(exist_ok=True)
    package = Path(numpy.__file__).resolve().parent
    for name in (package.name, f"{package.name}.libs"):
        if (package.parent / name).exists() and not (only / name).exists():
            (only / name).symlink_to(package.parent / name)
    return [getattr(sys, "_base_executable", sys.executable), "-S", "-s"], {**os.environ, "PYTHONPATH": str(only)}


def run_python_reference(kit: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    command, env = plain_python(tmp_path)
    return subprocess.run([*command, "reference.py"], cwd=kit, env=env, capture_output=True, text=True, timeout=600)


def run_c_reference(kit: Path) -> subprocess.CompletedProcess:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    built = subprocess.run([compiler, "-std=c99", "-O2", "-Wall", "-Wextra", "-pedantic", "-Werror", "-o", "reference",
                            "reference.c", "-lm"], cwd=kit, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    return subprocess.run(["./reference"], cwd=kit, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def lenet_kit(tmp_path_factory):
    """The kit of the example LeNet-5 on its whole test split."""
    folder = tmp_path_factory.mktemp("kit")
    result = subprocess.run([sys.executable, "-m", "cnnhw", "export", "--model", str(EXAMPLES / "lenet.onnx"),
                             "--inputs", str(EXAMPLES / "lenet.test.npz"), "--images", "100000", "-o", "lenet"],
                            cwd=folder, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return folder / "lenet"


def test_the_kit_holds_the_golden_model_s_every_layer_on_the_whole_test_split(lenet_kit):
    manifest = json.loads((lenet_kit / "manifest.json").read_text())
    test = np.load(EXAMPLES / "lenet.test.npz")
    graph = load_model(EXAMPLES / "lenet.onnx")
    qgraph = quantize_graph(graph, QuantOptions(), np.load(EXAMPLES / "lenet.calib.npz")["x"])
    golden = run_int(qgraph, test["x"], every_layer=True)
    assert manifest["vectors"]["images"] == len(test["x"]) == 359
    assert np.array_equal(np.load(lenet_kit / manifest["input"]["quantized"]["npy"]), golden[0])
    for layer, values in zip(manifest["layers"], golden[1:]):
        assert np.array_equal(np.load(lenet_kit / layer["output"]["npy"]), values), layer["name"]
        # Every tensor's and every vector's .hex holds its .npy, value for value.
        for name, entry in [*((n, e) for n, e in layer["tensors"].items() if "shape" in e), ("output", layer["output"])]:
            array = np.load(lenet_kit / entry["npy"])
            words = np.array([int(word, 16) for word in (lenet_kit / entry["hex"]).read_text().split()], dtype=np.int64)
            assert list(array.shape) == entry["shape"] and words.size == array.size, (layer["name"], name)
            bits = entry["format"]["bits"]
            decoded = words - ((words >> (bits - 1)) & 1) * (1 << bits) if entry["format"]["signed"] else words
            assert np.array_equal(decoded, array.ravel()), (layer["name"], name)
    # The weights as the QGraph has them, and the classes as the golden model gives them.
    conv1 = manifest["layers"][0]
    assert np.array_equal(np.load(lenet_kit / conv1["tensors"]["weight"]["npy"]), qgraph.layers[0].weight)
    assert conv1["rescale"]["multipliers"] == list(qgraph.layers[0].requant.multipliers)
    last = np.load(lenet_kit / manifest["layers"][-1]["output"]["npy"])
    assert np.array_equal(classes_of(last), classes_of(golden[-1]))


def test_reference_py_in_a_plain_python_reproduces_every_layer_of_the_whole_test_split(lenet_kit, tmp_path):
    result = run_python_reference(lenet_kit, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every layer equal on 359 images" in result.stdout
    assert "/conv1/Conv: 1,688,736 values equal (359 images)" in result.stdout


def test_reference_c_reproduces_every_layer_of_the_whole_test_split(lenet_kit):
    result = run_c_reference(lenet_kit)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "layer 1: 1688736 values equal (359 images)" in result.stdout
    assert "every layer equal on 359 images" in result.stdout


def test_both_references_name_the_first_difference_of_a_changed_weight(lenet_kit, tmp_path):
    kit = tmp_path / "changed"
    shutil.copytree(lenet_kit, kit, ignore=shutil.ignore_patterns("reference"))
    manifest = json.loads((kit / "manifest.json").read_text())
    conv2 = manifest["layers"][2]["tensors"]["weight"]
    weights = np.load(kit / conv2["npy"])
    weights.flat[0] = -weights.flat[0] - 1
    np.save(kit / conv2["npy"], weights)
    lines = (kit / conv2["hex"]).read_text().splitlines()
    lines[0] = f"{int(weights.flat[0]) & 0xFF:02x}"
    (kit / conv2["hex"]).write_text("\n".join(lines) + "\n")
    python = run_python_reference(kit, tmp_path)
    assert python.returncode == 1 and python.stdout.splitlines()[-1].startswith("/conv2/Conv: image 0, index ")
    c = run_c_reference(kit)
    assert c.returncode == 1 and c.stdout.splitlines()[-1].startswith("layer 3: image 0, index ")


def test_the_hardware_words_are_the_model_s_weights_in_the_order_the_hardware_reads_them(lenet_kit):
    manifest = json.loads((lenet_kit / "manifest.json").read_text())
    matrices = [layer for layer in manifest["layers"] if "weight_hw" in layer["tensors"]]
    assert [layer["op"] for layer in matrices] == ["Conv", "Conv", "Dense", "Dense", "Dense"]
    for layer in matrices:
        entry, weight = layer["tensors"]["weight_hw"], np.load(lenet_kit / layer["tensors"]["weight"]["npy"])
        index = np.load(lenet_kit / entry["index"])
        words = [int(line, 16) for line in (lenet_kit / entry["hex"]).read_text().split()]
        lanes, bits = index.shape[1], entry["word_bits"] // index.shape[1]
        unpacked = np.array([[(word >> (bits * lane)) & ((1 << bits) - 1) for lane in range(lanes)] for word in words])
        unpacked = np.where(unpacked >= 1 << (bits - 1), unpacked - (1 << bits), unpacked)
        assert np.array_equal(unpacked, weight.ravel()[index]), layer["name"]
        assert sorted(index.ravel().tolist()) == list(range(weight.size))  # every weight, once


def test_the_hex_files_load_with_readmemh_in_verilator(lenet_kit, tmp_path):
    """A testbench reads a layer's weights, its hardware words and its output vector with
    ``$readmemh`` and prints them as signed or unsigned decimals; they equal the .npy files."""
    from cnnhw.sim.runner import prepare_environment

    manifest = json.loads((lenet_kit / "manifest.json").read_text())
    layer = manifest["layers"][2]  # conv2: s8 weights, u8 outputs
    weight, words, output = layer["tensors"]["weight"], layer["tensors"]["weight_hw"], layer["output"]
    count, word_bits, lanes = int(np.prod(weight["shape"])), words["word_bits"], np.load(lenet_kit / words["index"]).shape[1]
    values = 2 * int(np.prod(output["shape"][1:]))  # the first two images
    lane_bits = word_bits // lanes
    bench = tmp_path / "kit_bench.v"
    bench.write_text(f"""
module kit_bench;
  reg [7:0] weight [0:{count - 1}];
  reg [{word_bits - 1}:0] word [0:{words['words'] - 1}];
  reg [7:0] vector [0:{int(np.prod(output['shape'])) - 1}];
  reg [{lane_bits - 1}:0] lane_value;
  integer k, lane;
  initial begin
    $readmemh("{lenet_kit / weight['hex']}", weight);
    $readmemh("{lenet_kit / words['hex']}", word);
    $readmemh("{lenet_kit / output['hex']}", vector);
    for (k = 0; k < {count}; k = k + 1) $display("w %0d", $signed(weight[k]));
    for (k = 0; k < {words['words']}; k = k + 1)
      for (lane = 0; lane < {lanes}; lane = lane + 1) begin
        lane_value = word[k][lane * {lane_bits} +: {lane_bits}];
        $display("h %0d", $signed(lane_value));
      end
    for (k = 0; k < {values}; k = k + 1) $display("v %0d", vector[k]);
    $finish;
  end
endmodule
""")
    prepare_environment("verilator")
    built = subprocess.run(["verilator", "--binary", "-Wno-fatal", "--top-module", "kit_bench", "-Mdir",
                            str(tmp_path / "obj"), str(bench)], capture_output=True, text=True, cwd=tmp_path)
    assert built.returncode == 0, built.stdout + built.stderr
    ran = subprocess.run([str(tmp_path / "obj" / "Vkit_bench")], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    printed = {"w": [], "h": [], "v": []}
    for line in ran.stdout.splitlines():
        kind, _, number = line.partition(" ")
        if kind in printed:
            printed[kind].append(int(number))
    npy = np.load(lenet_kit / weight["npy"])
    assert printed["w"] == npy.ravel().tolist()
    assert printed["h"] == npy.ravel()[np.load(lenet_kit / words["index"])].ravel().tolist()
    assert printed["v"] == np.load(lenet_kit / output["npy"]).ravel()[:values].tolist()


@pytest.mark.parametrize("model, options", [
    (MNIST8 / "mnist-8.onnx", ["--input-range", "0", "255", "--inputs", str(MNIST8 / "mnist_digits_10.npz"),
                               "--images", "10"]),
    (MLPERF / "kws_ref_model.tflite", ["--images", "3"]),
    (MLPERF / "pretrainedResnet_quant.tflite", ["--images", "3"]),
], ids=["mnist-8", "kws", "resnet8"])
def test_the_kits_of_mnist8_kws_and_resnet8_are_reproduced_by_both_references(cli, tmp_path, model, options):
    result = cli("export", "--model", model, "-o", "kit", *options)
    assert result.returncode == 0, result.stderr
    kit = tmp_path / "kit"
    manifest = json.loads((kit / "manifest.json").read_text())
    images = manifest["vectors"]["images"]
    python = run_python_reference(kit, tmp_path)
    assert python.returncode == 0 and f"every layer equal on {images} images" in python.stdout, python.stdout
    c = run_c_reference(kit)
    assert c.returncode == 0 and f"every layer equal on {images} images" in c.stdout, c.stdout
    rules = {layer.get("rescale", {}).get("rule") for layer in manifest["layers"]} - {None}
    assert rules == ({"cnnhw"} if model.suffix == ".onnx" else {"tflite"} if "kws" in model.name
                     else {"tflite", "tflite_add"})
    readme = (kit / "README.md").read_text()
    assert all(f"({layer['op']})" in readme for layer in manifest["layers"])


def test_the_kit_of_a_model_quantized_by_onnxruntime_is_reproduced_by_both_references(cli, tmp_path):
    from test_onnx_quantized import VARIANTS, _quantize

    model = _quantize(VARIANTS[1], tmp_path)  # QDQ, int8, per channel
    result = cli("export", "--model", model, "--inputs", EXAMPLES / "lenet.test.npz", "--images", "40", "-o", "kit")
    assert result.returncode == 0, result.stderr
    kit = tmp_path / "kit"
    assert {layer["rescale"]["rule"] for layer in json.loads((kit / "manifest.json").read_text())["layers"]
            if "rescale" in layer} == {"onnxruntime"}
    assert "every layer equal on 40 images" in run_python_reference(kit, tmp_path).stdout
    assert "every layer equal on 40 images" in run_c_reference(kit).stdout


def test_a_kit_is_replaced_only_with_force_and_never_a_folder_cnnhw_did_not_write(cli, tmp_path):
    args = ("export", "--model", EXAMPLES / "lenet.onnx", "--images", "2", "-o", "kit")
    assert cli(*args).returncode == 0
    again = cli(*args)
    assert again.returncode == 2 and "-o kit is a study kit; pass --force to replace it" in again.error_line
    assert cli(*args, "--force").returncode == 0
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    refused = cli("export", "--model", EXAMPLES / "lenet.onnx", "-o", "mine", "--force")
    assert refused.returncode == 2 and "was not written by cnnhw as a kit folder" in refused.error_line
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"


def test_export_data_of_the_wrong_shape_is_one_line(cli, tmp_path):
    np.savez(tmp_path / "wrong.npz", x=np.zeros((2, 3, 32, 32), dtype=np.float32))
    result = cli("export", "--model", EXAMPLES / "lenet.onnx", "--inputs", "wrong.npz", "-o", "kit")
    assert result.returncode == 2 and "wrong.npz" in result.error_line and "(N, 1, 32, 32)" in result.error_line
    assert not (tmp_path / "kit").exists()


def test_predict_layers_adds_every_layer_integer_and_float(cli, tmp_path):
    result = cli("predict", "--model", EXAMPLES / "lenet.onnx", "--inputs", EXAMPLES / "lenet.sample.npz",
                 "--layers", "-o", "out.npz")
    assert result.returncode == 0, result.stderr
    arrays = np.load(tmp_path / "out.npz")
    graph = load_model(EXAMPLES / "lenet.onnx")
    qgraph = quantize_graph(graph, QuantOptions(), np.load(EXAMPLES / "lenet.calib.npz")["x"])
    x = np.load(EXAMPLES / "lenet.sample.npz")["x"]
    golden = run_int(qgraph, x, every_layer=True)
    assert arrays["layer_names"].tolist() == ["input", *(layer.name for layer in qgraph.layers)]
    for index, values in enumerate(golden):
        assert np.array_equal(arrays[f"layer_{index:02d}_int"], values)
    # Each layer's float tensor is the float model's output of the op the layer stands for.
    floats = dict(zip([layer.op.name for layer in qgraph.graph.layers], run_float(qgraph.graph, x, every_layer=True)))
    for index, layer in enumerate(qgraph.layers, start=1):
        assert np.array_equal(arrays[f"layer_{index:02d}_float"], floats[layer.source].astype(np.float32)), layer.name
    assert np.array_equal(arrays["layer_00_float"], x.astype(np.float32))
    assert "--layers adds every layer's tensors to the -o OUT.npz" in cli(
        "predict", "--model", EXAMPLES / "lenet.onnx", "--inputs", EXAMPLES / "lenet.sample.npz", "--layers").error_line


def _own_rule_models():
    """Models quantized by cnnhw whose kits use every op and every rule of cnnhw's own arithmetic."""
    import onnx

    from branchnets import inception, resnet
    from models import small_cnn
    from netgen import random_graph_network

    rng = np.random.default_rng(3)
    small, _ = small_cnn(np.random.default_rng(5))
    cases = [("small CNN", small, rng.normal(size=(16, 2, 12, 10)), QuantOptions()),
             ("small CNN, half even", small, rng.normal(size=(16, 2, 12, 10)), QuantOptions(rounding="half_even")),
             ("small CNN, per tensor, powers of two", small, rng.normal(size=(16, 2, 12, 10)),
              QuantOptions(per_channel=False, power_of_two=True)),
             ("residual", resnet(), rng.uniform(0, 1, size=(16, 3, 12, 12)), QuantOptions()),
             ("inception", inception(), rng.uniform(0, 1, size=(16, 2, 10, 10)), QuantOptions())]
    for seed in range(8):
        spec = random_graph_network(seed)
        cases.append((f"random graph {seed}", spec.model, spec.calibration(), QuantOptions()))
    for name, model, calibration, options in cases:
        yield name, onnx, model, calibration, options


def test_the_references_follow_every_op_and_rule_of_cnnhw_s_own_arithmetic(tmp_path):
    from cnnhw.hardware.network import default_plan
    from cnnhw.kit import export_kit

    covered = set()
    for index, (name, onnx, model, calibration, options) in enumerate(_own_rule_models()):
        onnx.save(model, tmp_path / f"m{index}.onnx")
        qgraph = quantize_graph(load_model(tmp_path / f"m{index}.onnx"), options, calibration)
        kit = tmp_path / f"kit{index}"
        manifest = export_kit(qgraph, calibration[:3], "test images", kit, default_plan(qgraph), f"m{index}.onnx")
        python, c = run_python_reference(kit, tmp_path), run_c_reference(kit)
        assert python.returncode == 0, (name, python.stdout)
        assert c.returncode == 0, (name, c.stdout)
        for layer in manifest["layers"]:
            covered.add(layer["op"] if "table_first_input" not in layer else "lookup")
            for key in ("rescale", "divide"):
                if key in layer:
                    covered.add(layer[key]["rule"] + ("+negative" if "negative_multipliers" in layer[key] else "")
                                + f"/{layer[key].get('rounding', '')}")
    assert {"Conv", "Dense", "MaxPool", "AvgPool", "GlobalAvgPool", "Reshape", "Add", "Concat", "lookup"} <= covered
    assert {"cnnhw/half_up", "cnnhw/half_even", "cnnhw+negative/half_up", "cnnhw_average/half_up",
            "cnnhw_average/half_even"} <= covered, covered


def test_the_python_reference_reads_the_manifest_format_the_kit_writes():
    from cnnhw.kit import KIT_FORMAT
    from cnnhw.kit import reference

    assert reference.FORMAT == KIT_FORMAT
