"""Whole accelerators of 40 random chain networks and 40 random graph networks (forks, Add and
Concat joins, the lookup activations), random foldings, gaps and stalls, in Amaranth's simulator:
every layer's stream equals the integer golden model's, element for element, and none deadlocks."""

import onnx
import pytest

from cnnhw.frontend import load_model
from cnnhw.hardware import Network
from cnnhw.quant import QuantOptions, quantize_graph
from cnnhw.verify import expected_streams
from netgen import GRAPH_ACTIVATIONS, random_graph_network, random_network, random_plan
from tests.gateware.harness import assert_bit_exact, simulate

SEEDS = range(40)


def build(seed, tmp_path):
    spec = random_network(seed)
    onnx.save(spec.model, tmp_path / f"net{seed}.onnx")
    graph = load_model(tmp_path / f"net{seed}.onnx")
    options = QuantOptions(weight_bits=spec.bits, activation_bits=spec.bits)
    qgraph = quantize_graph(graph, options, spec.calibration())
    return spec, qgraph, random_plan(qgraph, seed, minimal_rings=True)


def test_the_random_networks_cover_what_they_must(tmp_path):
    features = set()
    for seed in SEEDS:
        features |= random_network(seed).features
    required = {"kernel1", "kernel3", "kernel5", "stride1", "stride2", "dilation2", "pad:symmetric",
                "pad:asymmetric", "pad:SAME_UPPER", "pad:SAME_LOWER", "pad:VALID", "pad:none", "depthwise", "grouped",
                "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "dense", "input_bits8", "input_bits4",
                "signed_input", "unsigned_input", "channels1", "channels16"}
    assert required <= features, sorted(required - features)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_network_is_bit_exact(seed, tmp_path):
    spec, qgraph, plan = build(seed, tmp_path)
    accelerator = Network(qgraph, plan).accelerator()
    expected = expected_streams(qgraph, spec.calibration(2))
    probes, outputs, classes, _ = simulate(accelerator, expected, seed)
    assert_bit_exact(accelerator, expected, probes, outputs, classes)


def build_graph(seed, tmp_path):
    spec = random_graph_network(seed)
    onnx.save(spec.model, tmp_path / f"graph{seed}.onnx")
    qgraph = quantize_graph(load_model(tmp_path / f"graph{seed}.onnx"), QuantOptions(), spec.calibration())
    return spec, qgraph, random_plan(qgraph, seed, minimal_rings=True)


def test_the_random_graph_networks_cover_what_they_must():
    features = set()
    for seed in SEEDS:
        features |= random_graph_network(seed).features
    required = {"residual", "projection", "concat", "branch:1x1", "branch:3x3", "branch:pool"}
    required |= {f"act:{name}" for name in GRAPH_ACTIVATIONS}
    assert required <= features, sorted(required - features)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_graph_network_is_bit_exact(seed, tmp_path):
    spec, qgraph, plan = build_graph(seed, tmp_path)
    assert not qgraph.is_chain
    accelerator = Network(qgraph, plan).accelerator()
    expected = expected_streams(qgraph, spec.calibration(2))
    probes, outputs, classes, _ = simulate(accelerator, expected, seed)
    assert_bit_exact(accelerator, expected, probes, outputs, classes)
