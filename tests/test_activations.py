"""The smooth activations (Sigmoid, Tanh, HardSigmoid, HardSwish, Elu, Selu) as integer lookup tables:
the float op equals onnxruntime's, the table is the float function rounded once, the golden model
only indexes it, and the hardware's ROM stage computes it bit for bit with gaps and stalls."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from cnnhw.flow.verilog import export_verilog
from cnnhw.frontend import load_model
from cnnhw.golden import run_float
from cnnhw.golden.int_ref import run_int
from cnnhw.hardware import Network
from cnnhw.ir import Elu, HardSigmoid, HardSwish, Selu, Sigmoid, Tanh
from cnnhw.plan import default_plan
from cnnhw.quant import QuantOptions, quantize_graph
from cnnhw.quant.arith import IntFormat, LookupTable, round_real, saturate
from cnnhw.quant.qgraph import QLookup
from cnnhw.sim.runner import simulate_export
from cnnhw.verify import expected_streams
from models import make_model, onnxruntime_reference, relative_error
from test_sim import check_timeline

#: (ONNX node attributes, the cnnhw op it becomes) for each activation, with non-default attributes
#: where it has any.
ACTIVATIONS = {
    "Sigmoid": ({}, Sigmoid("s")),
    "Tanh": ({}, Tanh("t")),
    "HardSigmoid": ({"alpha": 0.25, "beta": 0.4}, HardSigmoid("h", 0.25, 0.4)),
    "HardSwish": ({}, HardSwish("hs")),
    "Elu": ({"alpha": 0.7}, Elu("e", 0.7)),
    "Selu": ({}, Selu("se")),
}


def _network(activation: str, attrs: dict, rng, classes: int = 4, opset: int = 14):
    """conv 3x3 -> activation -> max pool -> flatten -> dense -> activation -> dense."""
    arrays = {"w1": rng.normal(size=(3, 2, 3, 3)).astype(np.float32), "b1": rng.normal(size=3).astype(np.float32),
              "w2": rng.normal(size=(12, 6)).astype(np.float32), "b2": rng.normal(size=6).astype(np.float32),
              "w3": rng.normal(size=(6, classes)).astype(np.float32)}
    node = helper.make_node
    nodes = [node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], name="conv1"),
             node(activation, ["c1"], ["a1"], name="act1", **attrs),
             node("MaxPool", ["a1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="pool1"),
             node("Flatten", ["p1"], ["f"], axis=1, name="flatten"),
             node("Gemm", ["f", "w2", "b2"], ["g"], name="fc1"),
             node(activation, ["g"], ["a2"], name="act2", **attrs),
             node("MatMul", ["a2", "w3"], ["y"], name="fc2")]
    return make_model(nodes, arrays, ["N", 2, 6, 6], ["N", classes], opset=opset)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_each_activation_imports_and_computes_what_onnxruntime_computes(activation, tmp_path):
    attrs, op = ACTIVATIONS[activation]
    rng = np.random.default_rng(5)
    model = _network(activation, attrs, rng)
    onnx.save(model, tmp_path / "net.onnx")
    graph = load_model(tmp_path / "net.onnx")
    assert [layer.op.label for layer in graph.layers].count(activation) == 2
    imported = next(layer.op for layer in graph.layers if layer.op.label == activation)
    assert imported.describe() == op.describe()
    x = rng.uniform(-2, 2, size=(8, 2, 6, 6)).astype(np.float32)
    assert relative_error(run_float(graph, x), onnxruntime_reference(model, x)) <= 1e-5


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_the_table_is_the_float_function_rounded_once(activation):
    """Every entry is ``saturate(round(f(x * s_in) / s_out))``; the image of the input format's range
    fills the output format without saturating."""
    _, op = ACTIVATIONS[activation]
    in_format, in_scale = IntFormat(8, True), 4.0 / 127
    lo, hi = op.image(in_format.lo * in_scale, in_format.hi * in_scale)
    out_format = IntFormat(8, signed=lo < 0)
    out_scale = max(abs(lo), abs(hi)) / out_format.hi
    table = LookupTable.for_function(op.function, in_format, in_scale, out_format, out_scale, "half_up")
    for x in (-128, -37, -1, 0, 1, 64, 127):
        real = op.function(np.float64(x * in_scale)) / out_scale
        assert table(np.array([x]))[0] == saturate(int(round_real(real)), out_format.lo, out_format.hi)
    entries = np.asarray(table.entries)
    assert entries.min() >= out_format.lo and entries.max() <= out_format.hi
    assert max(abs(int(entries.min())), abs(int(entries.max()))) == out_format.hi  # the range is filled


def test_the_image_of_an_interval_includes_the_turning_points():
    assert HardSwish("h").image(-4, 4) == (-0.375, 4.0)
    assert HardSwish("h").image(0.5, 1.0) == pytest.approx((0.5 * (0.5 / 6 + 0.5), 1 * (1 / 6 + 0.5)))
    assert Elu("e", -0.5).image(-10, 1) == pytest.approx((0.0, 1.0))  # a negative alpha turns at 0
    assert Sigmoid("s").image(-800, 800) == (0.0, 1.0)  # no overflow far from 0


def test_a_table_over_a_wide_input_is_refused():
    with pytest.raises(Exception, match="a lookup table takes inputs of up to 12 bits"):
        LookupTable.for_function(np.tanh, IntFormat(16, True), 1.0, IntFormat(8, True), 1 / 127, "half_up")


def test_the_layer_before_a_final_table_writes_activation_bits_not_logits(tmp_path):
    """A Tanh after the last dense layer (a regression head) reads 8-bit values: a 16-bit input
    would need a table of 65,536 entries."""
    rng = np.random.default_rng(2)
    nodes = [helper.make_node("Gemm", ["x", "w"], ["g"], name="fc"), helper.make_node("Tanh", ["g"], ["y"], name="tanh")]
    onnx.save(make_model(nodes, {"w": rng.normal(size=(5, 3)).astype(np.float32)}, ["N", 5], ["N", 3]),
              tmp_path / "m.onnx")
    qgraph = quantize_graph(load_model(tmp_path / "m.onnx"), QuantOptions(), rng.normal(size=(16, 5)))
    dense, tanh = qgraph.layers
    assert (str(dense.out_format), str(tanh.in_format), str(tanh.out_format)) == ("s8", "s8", "s8")
    assert isinstance(tanh, QLookup) and tanh.label == "Tanh"


def test_a_final_sigmoid_of_one_output_is_dropped_but_not_of_several(tmp_path):
    rng = np.random.default_rng(4)
    for outputs, dropped in ((1, "Sigmoid"), (3, "")):
        nodes = [helper.make_node("Gemm", ["x", "w"], ["g"], name="fc"),
                 helper.make_node("Sigmoid", ["g"], ["y"], name="sigmoid")]
        onnx.save(make_model(nodes, {"w": rng.normal(size=(5, outputs)).astype(np.float32)}, ["N", 5],
                             ["N", outputs]), tmp_path / "m.onnx")
        qgraph = quantize_graph(load_model(tmp_path / "m.onnx"), QuantOptions(), rng.normal(size=(16, 5)))
        assert qgraph.dropped == dropped
        assert [layer.label for layer in qgraph.layers] == ["Dense"] + (["Sigmoid"] if not dropped else [])


def test_the_golden_model_indexes_the_table(tmp_path):
    rng = np.random.default_rng(6)
    onnx.save(_network("Tanh", {}, rng), tmp_path / "net.onnx")
    x = rng.uniform(-2, 2, size=(6, 2, 6, 6))
    qgraph = quantize_graph(load_model(tmp_path / "net.onnx"), QuantOptions(), x)
    outputs = run_int(qgraph, x, every_layer=True)
    for index, layer in enumerate(qgraph.layers):
        if isinstance(layer, QLookup):
            before, after = outputs[index], outputs[index + 1]
            assert np.array_equal(after, np.asarray(layer.table.entries)[before - layer.in_format.lo])


def _every_activation_network(rng, classes: int = 4):
    """Each activation once, after a convolution or a dense layer: conv 3x3 -> Sigmoid -> conv 1x1
    -> Tanh -> conv 3x3 -> HardSigmoid -> max pool -> flatten -> dense -> HardSwish -> dense -> Elu
    -> dense -> Selu -> dense."""
    node = helper.make_node
    arrays, nodes, x = {}, [], "x"
    layers = [("Conv", (3, 2, 3, 3)), ("Conv", (3, 3, 1, 1)), ("Conv", (3, 3, 3, 3)), ("Gemm", (12, 6)),
              ("Gemm", (6, 6)), ("Gemm", (6, 6))]
    for k, ((op, shape), activation) in enumerate(zip(layers, ORDER)):
        arrays[f"w{k}"] = (rng.normal(size=shape) / np.sqrt(np.prod(shape[1:] if op == "Conv" else shape[:1])))
        arrays[f"b{k}"] = rng.normal(size=shape[0] if op == "Conv" else shape[1]) * 0.2
        pads = {"pads": [shape[2] // 2] * 4, "kernel_shape": list(shape[2:])} if op == "Conv" else {}
        nodes.append(node(op, [x, f"w{k}", f"b{k}"], [f"l{k}"], name=f"layer{k}", **pads))
        nodes.append(node(activation, [f"l{k}"], [f"a{k}"], name=f"act{k}", **ACTIVATIONS[activation][0]))
        x = f"a{k}"
        if k == 2:
            nodes += [node("MaxPool", [x], ["p"], kernel_shape=[3, 3], strides=[3, 3], name="pool"),
                      node("Flatten", ["p"], ["f"], axis=1, name="flatten")]
            x = "f"
    arrays["w_out"] = rng.normal(size=(6, classes))
    nodes.append(node("MatMul", [x, "w_out"], ["y"], name="fc_out"))
    arrays = {name: value.astype(np.float32) for name, value in arrays.items()}
    return make_model(nodes, arrays, ["N", 2, 6, 6], ["N", classes], opset=14)


#: The order the activations take in ``_every_activation_network``.
ORDER = ["Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Selu"]


def test_every_activation_is_bit_exact_in_verilator_with_gaps_and_stalls(tmp_path):
    """One network with each activation once (one Verilator build, not six): float equals
    onnxruntime, and every layer of the RTL equals the golden model, with gaps and stalls and the
    timing model's cycles exactly."""
    rng = np.random.default_rng(11)
    model = _every_activation_network(rng)
    onnx.save(model, tmp_path / "net.onnx")
    graph = load_model(tmp_path / "net.onnx")
    x = rng.uniform(-2, 2, size=(16, 2, 6, 6))
    assert relative_error(run_float(graph, x.astype(np.float32)), onnxruntime_reference(model, x.astype(np.float32))) \
        <= 1e-5
    qgraph = quantize_graph(graph, QuantOptions(), x)
    assert [layer.label for layer in qgraph.layers if isinstance(layer, QLookup)] == ORDER
    plan = default_plan(qgraph)
    export = export_verilog(qgraph, plan, tmp_path / "rtl")
    result = simulate_export(export, expected_streams(qgraph, x[:3]), tmp_path / "build", timing_images=3, seed=3)
    assert result.mismatches == [], "; ".join(map(str, result.mismatches))
    assert result.class_mismatches == 0
    check_timeline(result, Network(qgraph, plan), 3)
