"""The hardware-op layer (cnnhw/hardware): each op's declared memories are exactly the memories
its hardware creates, planning creates no hardware at all, and a plan is checked by the ops."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import onnx
import pytest
from amaranth.back import rtlil
from amaranth.lib import wiring

from cnnhw.boards import load_board
from cnnhw.errors import CnnhwError
from cnnhw.frontend import load_model
from cnnhw.hardware import HardwarePlan, LayerPlan, Network, WeightHome, with_folding
from cnnhw.plan.budget import plan_for_board
from cnnhw.plan.costs import plan_costs
from cnnhw.quant import QuantOptions, quantize_graph
from conftest import EXAMPLES
from netgen import random_network, random_plan


def _qgraph(seed, tmp_path):
    spec = random_network(seed)
    onnx.save(spec.model, tmp_path / "net.onnx")
    return quantize_graph(load_model(tmp_path / "net.onnx"),
                          QuantOptions(weight_bits=spec.bits, activation_bits=spec.bits), spec.calibration())


def _lenet():
    return quantize_graph(load_model(EXAMPLES / "lenet.onnx"), QuantOptions(),
                          np.load(EXAMPLES / "lenet.calib.npz")["x"])


def created_memories(component) -> Counter:
    """(width, depth) of every memory in the RTLIL of ``component`` (no platform: SPRAM weights are
    plain memories there, initialized as after a load)."""
    text = rtlil.convert(component)
    return Counter((int(width), int(depth)) for width, depth in re.findall(r"^\s*memory width (\d+) size (\d+) ",
                                                                           text, flags=re.M))


@pytest.mark.parametrize("seed", [1, 7, 13, 20, 27])
def test_declared_memories_are_the_created_memories(seed, tmp_path):
    qgraph = _qgraph(seed, tmp_path)
    network = Network(qgraph, random_plan(qgraph, seed, minimal_rings=True))
    declared = Counter((shape.width, shape.depth) for owner, shape in network.memories() if owner != "serial")
    assert created_memories(network.accelerator()) == declared


def test_lenet_plan_memories_with_spram_are_the_created_memories():
    qgraph = _lenet()
    network = Network(qgraph, plan_for_board(qgraph, load_board("icebreaker")))
    assert network.spram_blocks(), "the plan keeps weights in SPRAM (the case this test is for)"
    declared = Counter((shape.width, shape.depth) for owner, shape in network.memories() if owner != "serial")
    assert created_memories(network.accelerator()) == declared


def test_planning_creates_no_hardware(monkeypatch):
    """The planner prices a plan from its ops alone: not one Amaranth component is made."""
    qgraph = _lenet()
    board = load_board("icebreaker")

    def refuse(*args, **kwargs):
        raise AssertionError("the planner created a component")

    monkeypatch.setattr(wiring.Component, "__init__", refuse)
    plan = plan_for_board(qgraph, board)
    costs = plan_costs(qgraph, plan, board)
    assert sum(cost.dsp for cost in costs) <= board.budget["dsp"]


def test_an_op_checks_its_part_of_the_plan():
    qgraph = _lenet()
    with pytest.raises(CnnhwError, match=r"plan: pe 7 of layer '/conv1/Conv' must divide 6 \(choose from \[1, 2, 3, 6\]\)"):
        Network(qgraph, HardwarePlan((LayerPlan("/conv1/Conv", pe=7),)))
    with pytest.raises(CnnhwError, match="has no weights to place in spram"):
        Network(qgraph, HardwarePlan((LayerPlan("/MaxPool", weights="spram"),)))
    with pytest.raises(CnnhwError, match="no layer named 'nope'"):
        Network(qgraph, HardwarePlan((LayerPlan("nope"),)))


def test_weight_homes_are_an_enum_and_json_keeps_the_word():
    plan = with_folding(HardwarePlan(()), "fc", weights="spram")
    assert plan.layers[0].weights is WeightHome.SPRAM
    assert plan.to_json()["layers"][0]["weights"] == "spram"
    assert HardwarePlan.from_json(plan.to_json()) == plan


def test_ops_answer_the_cost_questions_a_layer_owns():
    qgraph = _lenet()
    network = Network(qgraph, HardwarePlan((LayerPlan("/conv1/Conv", pe=3, simd=1, packed=True),
                                            LayerPlan("/fc1/Gemm", pe=2, weights="spram"))))
    conv = network.op("/conv1/Conv")
    # 6x28x28 outputs of 1x5x5 windows: 25 window words per pixel, 2 folds of 3 channels.
    assert conv.cycles == 28 * 28 * 2 * 25
    assert (conv.products, conv.product_dsps) == (3, 2)
    dense = network.op("/fc1/Gemm")
    assert dense.weight_bits_per_cycle == 2 * 8
    assert network.spram_blocks() == {"/fc1/Gemm": 2}  # 60 folds x 400 words: two banks of 16,384
    flatten = network.op("/Flatten")
    assert not flatten.has_stage and flatten.cycles == 0
