"""The logic-cell model (cnnhw/plan/logic.py) and its calibration (bench/logic_calibration.py):
the stored coefficients belong to the terms the code computes today, the bench models' calibration
designs are estimated within the error the calibration states, and the estimate follows the
structure it models (more products, more logic)."""

import json
import sys

import numpy as np
import onnx
import pytest

from cnnhw.boards import load_board
from cnnhw.frontend import load_model
from cnnhw.plan import HardwarePlan
from cnnhw.plan.costs import logic_cells, logic_terms
from cnnhw.plan import logic
from cnnhw.hardware import with_folding
from cnnhw.quant import QuantOptions, quantize_graph
from conftest import EXAMPLES, MNIST8, ROOT
from models import small_cnn

#: A board of each family whose logic-cell model is calibrated (bench/logic_calibration.py --board).
CALIBRATED_ON = {"ice40": "icebreaker", "ecp5": "ulx3s-85f"}


def calibration(family: str) -> tuple[list[dict], dict]:
    """The family's stored samples and its fitted model."""
    sys.path.insert(0, str(ROOT / "bench"))
    import logic_calibration

    return (json.loads(logic_calibration.samples_file(family).read_text()),
            json.loads(logic.model_file(family).read_text()))


@pytest.fixture(scope="module")
def bench_models(tmp_path_factory):
    """The calibration's bench models, quantized as bench/logic_calibration.py quantizes them."""
    work = tmp_path_factory.mktemp("models")
    model, _ = small_cnn(np.random.default_rng(5))
    onnx.save(model, work / "tiny.onnx")
    return {
        "lenet": quantize_graph(load_model(EXAMPLES / "lenet.onnx"), QuantOptions(),
                                np.load(EXAMPLES / "lenet.calib.npz")["x"]),
        "mnist8": quantize_graph(load_model(MNIST8 / "mnist-8.onnx"), QuantOptions(), input_range=(0, 255)),
        "tiny": quantize_graph(load_model(work / "tiny.onnx"), QuantOptions(),
                               np.random.default_rng(1).normal(size=(64, 2, 12, 10))),
    }


@pytest.mark.parametrize("family", CALIBRATED_ON)
def test_every_term_the_code_computes_has_a_fitted_coefficient(family):
    SAMPLES, MODEL = calibration(family)
    used = {name for sample in SAMPLES for terms in sample["terms"].values() for name in terms}
    assert used <= set(MODEL["coefficients"]), sorted(used - set(MODEL["coefficients"]))
    assert MODEL["designs"] >= 40 and MODEL["error"]["mean_abs_percent"] <= 5


@pytest.mark.parametrize("family", CALIBRATED_ON)
def test_the_bench_models_designs_are_estimated_within_the_stated_error(bench_models, family):
    """For every calibration design of LeNet-5, mnist-8 and the tiny CNN: the terms recomputed from
    its plan are those the fit used (code and samples in step), and, for those in the fit's range,
    the estimate is within the calibration's stated largest error of the packed count."""
    SAMPLES, MODEL = calibration(family)
    board = load_board(CALIBRATED_ON[family])
    limit = MODEL["error"]["max_abs_percent"] / 100
    checked = 0
    for sample in SAMPLES:
        model = sample["name"].split("-")[0]
        if model not in bench_models:
            continue
        qgraph, plan = bench_models[model], HardwarePlan.from_json(sample["plan"])
        terms = logic_terms(qgraph, plan, board)
        assert terms.keys() == sample["terms"].keys(), sample["name"]
        for owner, amounts in terms.items():
            assert amounts == pytest.approx(sample["terms"][owner]), (sample["name"], owner)
        if sample["logic_cells"] > MODEL["fitted_up_to_logic_cells"]:
            continue
        estimate = sum(logic_cells(qgraph, plan, board).values())
        assert abs(estimate - sample["logic_cells"]) <= limit * sample["logic_cells"], \
            (sample["name"], estimate, sample["logic_cells"])
        checked += 1
    assert checked >= 15


def test_more_products_more_logic(bench_models):
    board = load_board("icebreaker")
    qgraph = bench_models["mnist8"]
    plan = HardwarePlan(())
    estimates = []
    for pe in (1, 2, 4, 8):
        plan = with_folding(plan, "Convolution110", pe=pe, packed=True)
        estimates.append(sum(logic_cells(qgraph, plan, board).values()))
    assert estimates == sorted(estimates) and estimates[0] < estimates[-1]
    on_dsps = sum(logic_cells(qgraph, with_folding(plan, "Times212", pe=2), board).values())
    in_logic = sum(logic_cells(qgraph, with_folding(plan, "Times212", pe=2, logic_products=True), board).values())
    assert in_logic > on_dsps + 200  # two 8x8 products from logic cells


@pytest.mark.parametrize("family", CALIBRATED_ON)
def test_the_calibration_script_states_its_command(family):
    sys.path.insert(0, str(ROOT / "bench"))
    import logic_calibration

    board = "" if family == "ice40" else f" --board {CALIBRATED_ON[family]}"
    assert calibration(family)[1]["command"] == logic_calibration.COMMAND + board
