"""The planner on synthetic budgets: more multipliers never make the plan slower, a tighter budget
never overflows it (or the refusal names what is missing), user overrides are honoured, and the
result is deterministic."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest

from cnnhw.boards import load_board
from cnnhw.errors import CnnhwError, DoesNotFitError
from cnnhw.frontend import load_model
from cnnhw.plan import HardwarePlan, LayerPlan, predict_cycles, predict_cycles_per_inference
from cnnhw.plan.budget import _plan_for_board, plan_for_board
from cnnhw.plan.costs import needs, plan_costs
from cnnhw.plan.logic import typical_error
from cnnhw.quant import QuantOptions, quantize_graph
from cnnhw.quant.qgraph import QConv
from conftest import EXAMPLES, MNIST8
from netgen import random_network


@pytest.fixture(scope="module")
def mnist8():
    return quantize_graph(load_model(MNIST8 / "mnist-8.onnx"), QuantOptions(), input_range=(0, 255))


def _network(seed, tmp_path):
    spec = random_network(seed)
    onnx.save(spec.model, tmp_path / f"net{seed}.onnx")
    return quantize_graph(load_model(tmp_path / f"net{seed}.onnx"), QuantOptions(), spec.calibration())


def _board(dsp, ebr, logic_cells=5280):
    board = load_board("icebreaker")
    return replace(board, budget={**board.budget, "dsp": dsp, "ebr": ebr, "logic_cells": logic_cells})


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
            for logic_cells in (2500, 3500, 5280):
                board = _board(dsp, ebr, logic_cells)
                # Without a bound, the estimate may be over by the model's typical error (the build
                # decides); with one (what the build asks after a design was over), never.
                for bound, allowed in ((None, logic_cells * (1 + typical_error())), (logic_cells, logic_cells)):
                    try:
                        plan = plan_for_board(qgraph, board, max_logic_cells=bound)
                    except DoesNotFitError as error:
                        assert "does not fit" in str(error) and error.details is not None
                        continue
                    used = needs(plan_costs(qgraph, plan, board))
                    assert used["dsp"] <= dsp and used["ebr"] <= ebr and used["logic_cells"] <= allowed, \
                        (dsp, ebr, logic_cells, bound, used)


def test_the_planner_balances_stages(mnist8):
    plan = plan_for_board(mnist8, load_board("icebreaker"))
    cycles = predict_cycles(mnist8, plan)
    # conv2 (627,200 MACs) gets 16 products in all 8 DSPs (packed), conv1 (156,800 MACs) just enough (4)
    # to keep up and the dense layer 1: the DSPs have run out, so theirs are made of logic cells.
    # 39,200 cycles: 0.40x the 8-DSP bound of 98,320.
    conv1, conv2, dense = (plan.for_layer(name) for name in ("Convolution28", "Convolution110", "Times212"))
    assert (conv2.pe * conv2.simd, conv2.packed, conv2.logic_products) == (16, True, False)
    assert (conv1.pe * conv1.simd, conv1.logic_products) == (4, True)
    assert (dense.pe * dense.simd, dense.logic_products) == (1, True)
    assert cycles["Convolution110"] == cycles["Convolution28"] == max(cycles.values()) == 39_200
    used = needs(plan_costs(mnist8, plan, load_board("icebreaker")))
    assert used["dsp"] == 8 and used["logic_cells"] <= 5280
    assert plan == plan_for_board(mnist8, load_board("icebreaker"))  # deterministic


def test_products_are_made_of_logic_only_when_the_dsps_run_out(mnist8):
    plenty = plan_for_board(mnist8, _board(16, 60))
    assert not any(layer.logic_products for layer in plenty.layers)
    assert needs(plan_costs(mnist8, plenty, _board(16, 60)))["dsp"] <= 16
    # One DSP: the smallest plan without logic products needs three (one product per layer).
    scarce = plan_for_board(mnist8, _board(1, 30))
    used = needs(plan_costs(mnist8, scarce, _board(1, 30)))
    assert used["dsp"] <= 1 and used["logic_cells"] <= 5280 * (1 + typical_error())  # plan_for_board's margin
    assert sum(layer.logic_products for layer in scarce.layers) >= 2
    with pytest.raises(DoesNotFitError, match="logic cells"):  # and no room in logic either
        plan_for_board(mnist8, _board(1, 30, logic_cells=3000))


def test_weights_move_into_logic_only_when_block_ram_runs_out_and_the_luts_have_room(mnist8):
    """A board without SPRAM (ECP5): weights go to LUTs (``weights: logic``) when block RAM runs
    out, the layer that saves a block for the fewest bits first, and only while the estimated
    logic cells stay within the board's."""
    ecp5 = load_board("ulx3s-12f")
    roomy = plan_for_board(mnist8, ecp5)
    assert all(layer.weights == "rom" for layer in roomy.layers)
    tight = replace(ecp5, budget={**ecp5.budget, "ebr": 4})  # the smallest plan in ROM needs 8
    plan = plan_for_board(mnist8, tight)
    assert [layer.weights for layer in plan.layers] == ["rom", "logic", "logic"]
    used = needs(plan_costs(mnist8, plan, tight))
    assert used["ebr"] <= 4 and used["logic_cells"] <= ecp5.budget["logic_cells"] * (1 + typical_error("ecp5"))
    with pytest.raises(DoesNotFitError, match=r"block RAM \(DP16KD, 18 Kbit\) \d+ > 4\)"):  # LUTs not over
        plan_for_board(mnist8, replace(tight, budget={**tight.budget, "logic_cells": 6000}))


def test_overrides_are_honoured(mnist8):
    fixed = HardwarePlan((LayerPlan("Convolution110", pe=2, simd=1, digit_bits=4, overlap=True),))
    plan = plan_for_board(mnist8, load_board("icebreaker"), fixed=fixed)
    assert plan.for_layer("Convolution110") == fixed.layers[0]
    assert _cycles(mnist8, plan) == predict_cycles(mnist8, plan)["Convolution110"] == 313_600


def test_products_in_logic_can_be_asked_for(mnist8):
    fixed = HardwarePlan((LayerPlan("Times212", pe=2, simd=4, logic_products=True),))
    plan = plan_for_board(mnist8, load_board("icebreaker"), fixed=fixed)
    assert plan.for_layer("Times212") == fixed.layers[0]
    costs = {cost.name: cost for cost in plan_costs(mnist8, plan, load_board("icebreaker"))}
    assert (costs["Times212"].dsp, costs["Times212"].lut_products) == (0, 8)
    both = HardwarePlan((LayerPlan("Times212", packed=True, logic_products=True),))
    with pytest.raises(CnnhwError, match="either packed into DSPs or made of logic"):
        plan_for_board(mnist8, load_board("icebreaker"), fixed=both)


def test_impossible_overrides_are_clear_errors(mnist8):
    with pytest.raises(CnnhwError, match=r"plan: pe 3 of layer 'Convolution110' must divide 16"):
        plan_for_board(mnist8, load_board("icebreaker"), fixed=HardwarePlan((LayerPlan("Convolution110", pe=3),)))
    too_big = HardwarePlan((LayerPlan("Convolution110", pe=16, simd=8),))
    with pytest.raises(DoesNotFitError, match=r"DSP \(SB_MAC16\) 130 > 8"):
        plan_for_board(mnist8, load_board("icebreaker"), fixed=too_big)


def test_a_rescaler_that_sets_the_pace_gets_more_bits_per_cycle():
    """MLPerf Tiny's ResNet-8 on the ULX3S-85F: TFLite's 31-bit multipliers at 4 bits per cycle
    take 14 cycles a value (8 digits, 2, and 4 finish stages), 224 a pixel of 16 channels, more than any folding's MAC words; the
    planner gives those rescalers a whole multiply (a pipeline: a value per cycle) and grows the
    foldings until the first convolution's 27 x 16 MACs a pixel at 6 products per cycle set the
    pace, well under the slowest stage of rescalers left at 4 bits."""
    resnet8 = Path(__file__).parent / "data" / "mlperf_tiny" / "pretrainedResnet_quant.tflite"
    qgraph = quantize_graph(load_model(resnet8), QuantOptions())
    board = load_board("ulx3s-85f")
    plan = plan_for_board(qgraph, board)
    narrow = plan_for_board(qgraph, board, fixed=HardwarePlan(tuple(
        LayerPlan(layer.name, 1, 3, 4) for layer in plan.layers[:1])))  # 144 MAC words a pixel
    first = plan.for_layer(plan.layers[0].name)
    assert first.digit_bits >= 31 and narrow.for_layer(first.name).digit_bits == 4
    assert _cycles(qgraph, plan) == 27 * 16 // 6 * 32 * 32 < _cycles(qgraph, narrow) == 14 * 16 * 32 * 32
    assert needs(plan_costs(qgraph, plan, board))["dsp"] <= board.budget["dsp"]


def test_depthwise_convolutions_take_channels_in_parallel():
    """MLPerf Tiny's KWS DS-CNN on the ULX3S-85F: each of its four depthwise 3x3 convolutions over
    25x5x64 (72,000 MACs) takes several channels per cycle, one product each, so the whole plan is
    within 10 % of the DSP bound (MACs / 156 DSPs), where one product per cycle would take 72,000
    cycles per inference."""
    kws = Path(__file__).parent / "data" / "mlperf_tiny" / "kws_ref_model.tflite"
    graph = load_model(kws)
    qgraph = quantize_graph(graph, QuantOptions())
    board = load_board("ulx3s-85f")
    plan = plan_for_board(qgraph, board)
    cycles = predict_cycles(qgraph, plan)
    depthwise = [layer for layer in qgraph.layers if isinstance(layer, QConv) and layer.groups > 1]
    assert len(depthwise) == 4
    for layer in depthwise:
        folding = plan.for_layer(layer.name)
        assert folding.pe > 1 and folding.simd == 1
        assert cycles[layer.name] == 25 * 5 * 64 * 9 // folding.pe
    assert max(cycles.values()) <= 1.1 * graph.macs / board.budget["dsp"]
    assert needs(plan_costs(qgraph, plan, board))["dsp"] <= board.budget["dsp"]


def test_lenet_fits_the_ulx3s_12f_with_rom_tables_in_luts():
    """LeNet-5's weights alone take 30 of the 12F's 32 block RAMs: the planner keeps the small
    layers' weights and a bias table in LUTs until block RAM fits, within the 12,096 LUT4s."""
    import numpy as np

    examples = Path(__file__).parent.parent / "examples"
    qgraph = quantize_graph(load_model(examples / "lenet.onnx"), QuantOptions(),
                            np.load(examples / "lenet.calib.npz")["x"])
    board = load_board("ulx3s-12f")
    plan = plan_for_board(qgraph, board)
    used = needs(plan_costs(qgraph, plan, board))
    assert used["ebr"] <= 32 and used["logic_cells"] <= 12_096 * (1 + typical_error("ecp5"))
    in_luts = [layer for layer in plan.layers if layer.weights == "logic" or layer.biases_in_logic]
    assert in_luts and any(layer.biases_in_logic for layer in plan.layers)


def test_the_front_end_keeps_one_image_buffer_when_the_second_would_slow_the_plan(mnist8):
    """mnist-8 on the iCEBreaker: the second image buffer's two block RAMs would push conv2's weights
    out of block RAM (a slower plan, 78,400 cycles); with one buffer conv2 keeps 16 products (39,200).
    LeNet-5, whose dense weights are in SPRAM either way, keeps two."""
    board = load_board("icebreaker")
    plan = plan_for_board(mnist8, board)
    assert plan.image_buffers == 1 and predict_cycles_per_inference(mnist8, plan) == 39_200
    double = _plan_for_board(mnist8, board, HardwarePlan((), image_buffers=2))  # what two would give
    assert predict_cycles_per_inference(mnist8, double) == 78_400
    assert plan_for_board(load_quantized_lenet(), board).image_buffers == 2
    fixed_single = plan_for_board(mnist8, board, fixed=HardwarePlan((), image_buffers=1))
    assert fixed_single.image_buffers == 1


def load_quantized_lenet():
    return quantize_graph(load_model(EXAMPLES / "lenet.onnx"), QuantOptions(),
                          np.load(EXAMPLES / "lenet.calib.npz")["x"])
