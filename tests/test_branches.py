"""Graphs with branches: a tensor read by several ops (a fork), and ops that join two or more
(Add, Concat). The IR keeps them as a graph in topological order; the passes fold only within a
branch; the float reference equals onnxruntime; quantization brings every input of a join to
one output scale with the one requantization rule; the integer model computes it."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from branchnets import BRANCH_NETWORKS, long_and_short, resnet
from cnnhw.errors import UnsupportedModelError
from cnnhw.flow.verilog import export_verilog
from cnnhw.gateware.memories import MemoryShape
from cnnhw.hardware import Network
from cnnhw.plan import default_plan
from cnnhw.sim.runner import simulate_export
from cnnhw.verify import expected_streams
from cnnhw.frontend import load_model
from cnnhw.golden import run_float
from cnnhw.golden.evaluate import layer_errors
from cnnhw.golden.int_ref import run_int
from cnnhw.ir import Conv2d, Graph, Relu
from cnnhw.ir.graph import INPUT
from cnnhw.ir.ops import Add, Concat
from cnnhw.quant import QuantOptions, quantize_graph
from cnnhw.quant.arith import round_shift, saturate
from cnnhw.quant.qgraph import QAdd, QConcat
from models import make_model, onnxruntime_reference, relative_error

RNG = np.random.default_rng(41)


def _load(model: onnx.ModelProto, tmp_path):
    onnx.save(model, tmp_path / f"{model.graph.name}.onnx")
    return load_model(tmp_path / f"{model.graph.name}.onnx")


def _images(graph, count: int = 24):
    return RNG.uniform(0, 1, size=(count, *graph.input_shape))


@pytest.mark.parametrize("name", sorted(BRANCH_NETWORKS))
def test_branch_networks_compute_what_onnxruntime_computes(name, tmp_path):
    model = BRANCH_NETWORKS[name]()
    graph = _load(model, tmp_path)
    assert not graph.is_chain
    x = _images(graph, 6).astype(np.float32)
    assert relative_error(run_float(graph, x), onnxruntime_reference(model, x)) <= 1e-5


def test_the_resnet_keeps_its_joins_and_folds_every_batchnorm(tmp_path):
    graph = _load(resnet(), tmp_path)
    labels = [layer.op.label for layer in graph.layers]
    assert labels.count("Add") == 2 and "Affine" not in labels and labels.count("Conv") == 6
    projection = next(layer for layer in graph.layers if layer.op.name.endswith("downsample.0/Conv"))
    assert projection.op.stride == (2, 2) and projection.op.kernel == (1, 1)
    second_join = [layer for layer in graph.layers if isinstance(layer.op, Add)][1]
    assert projection.op.name in second_join.inputs


def test_a_fork_is_not_folded_into_one_branch(tmp_path):
    """A conv read by a BatchNormalization and by a skip Add: the normalisation belongs to one
    branch only, so it must not become part of the conv (the skip would see it too)."""
    channels = 3
    arrays = {"w": RNG.normal(size=(channels, 1, 3, 3)).astype(np.float32),
              "s": RNG.uniform(0.5, 2, channels).astype(np.float32), "b": RNG.normal(size=channels).astype(np.float32),
              "m": RNG.normal(size=channels).astype(np.float32), "v": RNG.uniform(0.5, 2, channels).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"], name="bn"),
             helper.make_node("Relu", ["n"], ["r"], name="relu"),
             helper.make_node("Add", ["c", "r"], ["y"], name="skip")]
    model = make_model(nodes, arrays, ["N", 1, 6, 6], ["N", channels])
    graph = _load(model, tmp_path)
    assert [layer.op.label for layer in graph.layers] == ["Conv", "Affine", "Relu", "Add"]
    x = _images(graph, 4).astype(np.float32)
    assert relative_error(run_float(graph, x), onnxruntime_reference(model, x)) <= 1e-5


def test_segments_are_the_chains_between_forks_and_joins():
    conv = Conv2d("conv", np.ones((2, 1, 1, 1)), np.zeros(2))
    ops = (conv, Relu("relu"), Conv2d("left", np.ones((2, 2, 1, 1)), np.zeros(2)), Relu("left_relu"),
           Add("join"), Relu("out"))
    reads = ((INPUT,), ("conv",), ("relu",), ("left",), ("left_relu", "relu"), ("join",))
    graph = Graph("g", (1, 3, 3), ops, op_inputs=reads)
    assert [[layer.op.name for layer in s] for s in graph.segments()] == [["conv", "relu"], ["left", "left_relu"],
                                                                         ["join", "out"]]
    assert graph.consumers("relu") == ["left", "join"]
    # "left_relu" holds its input and output while relu's output waits for the join: 18 * 3.
    assert graph.working_values == 54 and graph.layers[3].working_values == 36


def test_an_unused_branch_and_a_read_of_a_later_layer_are_refused():
    with pytest.raises(UnsupportedModelError, match="the output of Relu 'c' is not used"):
        Graph("g", (2, 3, 3), (Relu("a"), Relu("b"), Relu("c"), Add("d")),
              op_inputs=((INPUT,), ("a",), ("a",), ("b", "a")))
    with pytest.raises(Exception, match="layer 'b' reads 'c', which no earlier layer writes"):
        Graph("g", (2, 3, 3), (Relu("a"), Relu("b"), Relu("c")), op_inputs=((INPUT,), ("c",), ("b",)))


def test_joins_check_their_shapes():
    with pytest.raises(UnsupportedModelError, match="adds tensors of shapes"):
        Add("a").output_shape_of(((2, 3, 3), (2, 1, 1)))
    with pytest.raises(Exception, match="all sizes but the channels must agree"):
        Concat("c").output_shape_of(((2, 3, 3), (2, 3, 4)))
    assert Concat("c").output_shape_of(((2, 3, 3), (5, 3, 3), (1, 3, 3))) == (8, 3, 3)


@pytest.mark.parametrize("node, message", [
    (helper.make_node("Concat", ["c", "c2"], ["y"], axis=2, name="rows"), "concatenates along axis 2"),
    (helper.make_node("Mul", ["c", "c2"], ["y"], name="gate"), "only to add or concatenate them"),
])
def test_what_two_tensors_cannot_do_is_refused_naming_the_node(node, message, tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["c2"], name="relu"), node]
    onnx.save(make_model(nodes, {"w": np.ones((2, 1, 1, 1), np.float32)}, ["N", 1, 4, 4]), tmp_path / "m.onnx")
    with pytest.raises(UnsupportedModelError, match=message) as error:
        load_model(tmp_path / "m.onnx")
    assert node.name in str(error.value)


@pytest.mark.parametrize("name", sorted(BRANCH_NETWORKS))
def test_quantized_joins_bring_their_inputs_to_one_scale(name, tmp_path):
    """Each join's output is its inputs' sum (or concatenation) at the output scale: within half a
    step, and a step of multiplier rounding, of the exact sum of the dequantized inputs."""
    graph = _load(BRANCH_NETWORKS[name](), tmp_path)
    x = _images(graph)
    qgraph = quantize_graph(graph, QuantOptions(), x)
    outputs = dict(zip(["<input>"] + [layer.name for layer in qgraph.layers], run_int(qgraph, x, every_layer=True)))
    joins = [(layer, reads) for layer, reads in zip(qgraph.layers, qgraph.layer_inputs) if isinstance(layer, (QAdd, QConcat))]
    assert joins
    for layer, reads in joins:
        inputs = [outputs[name] * scale for name, scale in zip(reads, layer.in_scales)]
        exact = sum(inputs) if isinstance(layer, QAdd) else np.concatenate(inputs, axis=1)
        low, high = layer.requant.lo * layer.out_scale, layer.requant.hi * layer.out_scale
        error = np.abs(np.clip(exact, low, high) - outputs[layer.name] * layer.out_scale) / layer.out_scale
        assert error.max() <= 0.5 + 0.01, (layer.name, error.max())
        # The rule itself: one multiplier per input, one rounding shift.
        products = [outputs[name] * m for name, m in zip(reads, layer.requant.multipliers)]
        rounded = [round_shift(p, layer.requant.shift) for p in products]
        if isinstance(layer, QAdd):
            expected = saturate(round_shift(products[0] + products[1], layer.requant.shift), layer.requant.lo,
                                layer.requant.hi)
        else:
            expected = np.concatenate([saturate(r, layer.requant.lo, layer.requant.hi) for r in rounded], axis=1)
        assert np.array_equal(outputs[layer.name], expected)


@pytest.mark.parametrize("name", sorted(BRANCH_NETWORKS))
def test_branch_networks_quantize_to_a_close_integer_model(name, tmp_path):
    graph = _load(BRANCH_NETWORKS[name](), tmp_path)
    x = _images(graph, 64)
    qgraph = quantize_graph(graph, QuantOptions(), x)
    assert min(error.sqnr_db for error in layer_errors(qgraph, x)) > 20


def test_a_relu_after_an_add_is_its_clamp_and_makes_it_unsigned(tmp_path):
    graph = _load(long_and_short(), tmp_path)
    qgraph = quantize_graph(graph, QuantOptions(), _images(graph))
    (join,) = [layer for layer in qgraph.layers if isinstance(layer, QAdd)]
    assert join.activation == "Relu" and join.requant.lo == 0 and not join.out_format.signed
    assert join.source == "/join_relu/Relu"


def _quantized(name, tmp_path, images: int = 16):
    graph = _load(BRANCH_NETWORKS[name](), tmp_path)
    x = np.random.default_rng(5).uniform(0, 1, size=(images, *graph.input_shape))
    return quantize_graph(graph, QuantOptions(), x), x


@pytest.mark.parametrize("name", sorted(BRANCH_NETWORKS))
def test_branch_networks_are_bit_exact_in_amaranths_simulator(name, tmp_path):
    """Forks, FIFOs and joins with random gaps and stalls: every layer's stream equals the golden
    model's, and nothing deadlocks (the FIFOs are as deep as the timing model says they must be).
    Up to 32 products per layer: another folding than the Verilator test's below, and a third of
    the cycles to simulate."""
    from tests.gateware.harness import assert_bit_exact, simulate

    qgraph, x = _quantized(name, tmp_path)
    network = Network(qgraph, default_plan(qgraph, 32))
    assert all(op.fifo_depths for op in network.joins)
    accelerator = network.accelerator()
    expected = expected_streams(qgraph, x[:2])
    probes, outputs, classes, _ = simulate(accelerator, expected, seed=3, gap=0.3, stall=0.3)
    assert_bit_exact(accelerator, expected, probes, outputs, classes)


@pytest.mark.parametrize("name", sorted(BRANCH_NETWORKS))
def test_branch_networks_in_verilator_take_the_modelled_cycles(name, tmp_path):
    """The exported Verilog, bit for bit with gaps and stalls; the timing model gives every stage's
    last element of the first image, the class, and the cycles between classes exactly."""
    from test_sim import check_timeline

    qgraph, x = _quantized(name, tmp_path)
    plan = default_plan(qgraph)
    export = export_verilog(qgraph, plan, tmp_path / "rtl")
    result = simulate_export(export, expected_streams(qgraph, x[:3]), tmp_path / "build", timing_images=3, seed=2)
    assert result.mismatches == [], "; ".join(map(str, result.mismatches))
    assert result.class_mismatches == 0
    network = Network(qgraph, plan)
    check_timeline(result, network, 3)
    assert result.cycles_per_inference == network.cycles_per_inference


def test_a_fifo_holds_what_the_timing_model_says_and_the_planner_counts_it(tmp_path):
    qgraph, _ = _quantized("long_and_short", tmp_path)
    network = Network(qgraph, default_plan(qgraph))
    (join,) = network.joins
    (depth,) = join.fifo_depths.values()
    assert join.first_input == 1  # the three convolutions, not the fork itself
    assert ("/join/Add", MemoryShape("branch FIFO", 8, depth)) in network.memories()


@pytest.mark.parametrize("name", sorted(BRANCH_NETWORKS))
@pytest.mark.parametrize("products", [1, 4, 16])
def test_the_planners_bound_on_branch_fifos_is_no_smaller_than_their_timed_size(name, products, tmp_path):
    """The planner judges candidates with every join's FIFOs bounded by an image of their input
    (``Network.bounded_branches``): those memories hold at least the bits the timing model sizes."""
    qgraph, _ = _quantized(name, tmp_path)
    plan = default_plan(qgraph, products)
    bits = {}
    for bounded in (False, True):
        network = Network(qgraph, plan, bounded_branches=bounded)
        bits[bounded] = sum(shape.width * shape.depth for join in network.joins for shape in join.memories())
    assert bits[False] > 0 and bits[True] >= bits[False], bits
