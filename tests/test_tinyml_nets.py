"""MLPerf Tiny's other two reference shapes (``tinyml_nets``: a MobileNet-style network on
96x96x3 and the dense autoencoder whose output is the reconstruction): they compute what
onnxruntime computes, plan for the ULX3S-85F within its budget, and their Verilog is bit-exact
in Verilator and takes the cycles the timing model gives. Their 85F builds are in ``bench/``
(``bench/bench.py --board ulx3s-85f --models mobilenet autoencoder``)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from cnnhw.boards import load_board
from cnnhw.flow.verilog import export_verilog
from cnnhw.frontend import load_model
from cnnhw.golden import run_float
from cnnhw.hardware import Network
from cnnhw.ir import Conv2d
from cnnhw.plan import default_plan
from cnnhw.plan.budget import plan_for_board
from cnnhw.plan.costs import needs, plan_costs
from cnnhw.quant import QuantOptions, quantize_graph
from cnnhw.sim.runner import simulate_export
from cnnhw.verify import expected_streams
from models import onnxruntime_reference, relative_error
from tinyml_nets import dense_autoencoder, mobilenet

NETWORKS = {"mobilenet": mobilenet, "autoencoder": dense_autoencoder}


def _quantized(name: str, tmp_path):
    model = NETWORKS[name]()
    onnx.save(model, tmp_path / f"{name}.onnx")
    graph = load_model(tmp_path / f"{name}.onnx")
    calibration = np.random.default_rng(7).normal(size=(16, *graph.input_shape)).astype(np.float32)
    return model, graph, quantize_graph(graph, QuantOptions(), calibration), calibration


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_the_tinyml_shapes_compute_what_onnxruntime_computes_and_fit_the_85f(name, tmp_path):
    model, graph, qgraph, x = _quantized(name, tmp_path)
    assert relative_error(run_float(graph, x[:4]), onnxruntime_reference(model, x[:4])) <= 1e-5
    if name == "mobilenet":
        depthwise = [op for op in graph.ops if isinstance(op, Conv2d) and op.groups > 1 and op.groups == op.weight.shape[0]]
        assert graph.input_shape == (3, 96, 96) and len(depthwise) == 13
        assert graph.ops[0].stride == (2, 2)
    else:
        assert graph.input_shape == (640,) and qgraph.layers[-1].out_shape == (640,)
    board = load_board("ulx3s-85f")
    used = needs(plan_costs(qgraph, plan_for_board(qgraph, board), board))
    assert all(used[key] <= board.budget[key] for key in used), used


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_the_tinyml_shapes_are_bit_exact_in_verilator(name, tmp_path):
    """One product per layer (the 85F plan's build is the bench's): every layer's stream equal to
    the golden model's, and the cycles between outputs as the timing model gives them."""
    _, _, qgraph, x = _quantized(name, tmp_path)
    plan = default_plan(qgraph)
    export = export_verilog(qgraph, plan, tmp_path / "rtl")
    result = simulate_export(export, expected_streams(qgraph, x[:2]), tmp_path / "build", timing_images=2, seed=1)
    assert result.mismatches == [], "; ".join(map(str, result.mismatches))
    assert result.cycles_per_inference == Network(qgraph, plan).cycles_per_inference
