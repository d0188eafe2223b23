"""The planner on synthetic budgets: more multipliers never make the plan slower, a tighter budget
never overflows it (or the refusal names what is missing), user overrides are honoured, and the
result is deterministic."""

from dataclasses import replace

import onnx
import pytest

from cnnhw.boards import load_board
from cnnhw.errors import CnnhwError, DoesNotFitError
from cnnhw.frontend import load_model
from cnnhw.plan import HardwarePlan, LayerPlan, predict_cycles
from cnnhw.plan.budget import plan_for_board
from cnnhw.plan.costs import needs, plan_costs
from cnnhw.quant import QuantOptions, quantize_graph
from conftest import MNIST8
from netgen import random_network


@pytest.fixture(scope="module")
def mnist8():
    return quantize_graph(load_model(MNIST8 / "mnist-8.onnx"), QuantOptions(), input_range=(0, 255))


def _network(seed, tmp_path):
    spec = random_network(seed)
    onnx.save(spec.model, tmp_path / f"net{seed}.onnx")
    return quantize_graph(load_model(tmp_path / f"net{seed}.onnx"), QuantOptions(), spec.calibration())


def _board(dsp, ebr):
    board = load_board("icebreaker")
    return replace(board, budget={**board.budget, "dsp": dsp, "ebr": ebr})


def _cycles(qgraph, plan):
    return max(predict_cycles(qgraph, plan).values())


def test_more_multipliers_never_make_the_plan_slower(mnist8):
    previous = None
    for dsp in range(3, 17):
        plan = plan_for_board(mnist8, _board(dsp, 60))
        cycles = _cycles(mnist8, plan)
        assert previous is None or cycles <= previous, (dsp, cycles, previous)
        previous = cycles
    assert previous == 39_200  # 16 DSPs, packed two products each, and room in block RAM


@pytest.mark.parametrize("seed", [1, 4, 7])
def test_a_tighter_budget_never_overflows(seed, tmp_path):
    qgraph = _network(seed, tmp_path)
    for dsp in (1, 2, 3, 5, 8):
        for ebr in (4, 8, 12, 30):
            board = _board(dsp, ebr)
            try:
                plan = plan_for_board(qgraph, board)
            except DoesNotFitError as error:
                assert "does not fit" in str(error) and error.details is not None
                continue
            used = needs(plan_costs(qgraph, plan, board))
            assert used["dsp"] <= dsp and used["ebr"] <= ebr, (dsp, ebr, used)


def test_the_planner_balances_stages(mnist8):
    plan = plan_for_board(mnist8, load_board("icebreaker"))
    cycles = predict_cycles(mnist8, plan)
    # conv2 (627,200 MACs) gets 8 products in 4 packed DSPs, conv1 (156,800 MACs) just enough (2) to keep
    # up (after growing to 4 while it was as slow as conv2, it is trimmed back), the dense layer 1:
    # 7 DSPs, 78,400 cycles (0.80x the 8-DSP bound of 98,320).
    conv1, conv2 = plan.for_layer("Convolution28"), plan.for_layer("Convolution110")
    assert (conv2.pe * conv2.simd, conv2.packed) == (8, True)
    assert (conv1.pe * conv1.simd, conv1.packed) == (2, False)
    assert cycles["Convolution110"] == max(cycles.values()) <= 1.3 * 98_320
    assert plan == plan_for_board(mnist8, load_board("icebreaker"))  # deterministic


def test_overrides_are_honoured(mnist8):
    fixed = HardwarePlan((LayerPlan("Convolution110", pe=2, simd=1, digit_bits=4, overlap=True),))
    plan = plan_for_board(mnist8, load_board("icebreaker"), fixed=fixed)
    assert plan.for_layer("Convolution110") == fixed.layers[0]
    assert _cycles(mnist8, plan) == predict_cycles(mnist8, plan)["Convolution110"] == 313_600


def test_impossible_overrides_are_clear_errors(mnist8):
    with pytest.raises(CnnhwError, match=r"plan: pe 3 of layer 'Convolution110' must divide 16"):
        plan_for_board(mnist8, load_board("icebreaker"), fixed=HardwarePlan((LayerPlan("Convolution110", pe=3),)))
    too_big = HardwarePlan((LayerPlan("Convolution110", pe=16, simd=8),))
    with pytest.raises(DoesNotFitError, match=r"DSP \(SB_MAC16\) 130 > 8"):
        plan_for_board(mnist8, load_board("icebreaker"), fixed=too_big)
