"""The model card (``cnnhw/card.py``) of a build's facts, without building: LeNet-5's plan for the
iCEBreaker with the facts ``build`` writes (its cost model, two clock attempts, a verification), then
the page is checked number by number against those facts, rendered in headless Chromium, and made
again by ``cnnhw report``. The card of a real build is checked in tests/test_build.py."""

import json
from pathlib import Path

import numpy as np
import pytest

from card_checks import assert_every_number_is_a_fact, assert_not_blank, chromium, render_in_chromium
from cnnhw.boards import load_board
from cnnhw.card import CARD_FILE, render_card, write_card
from cnnhw.flow.build import Attempt, build_facts
from cnnhw.frontend import load_model
from cnnhw.outputs import mark_folder, write_json
from cnnhw.plan.budget import plan_for_board
from cnnhw.quant import QuantOptions, quantize_graph
from cnnhw.report import model_facts
from cnnhw.runtime.flash import file_digest
from conftest import EXAMPLES


@pytest.fixture(scope="module")
def lenet_facts():
    """build.json's facts for LeNet-5 on the iCEBreaker, as ``build`` makes them from its attempts."""
    calibration = np.load(EXAMPLES / "lenet.calib.npz")["x"]
    qgraph = quantize_graph(load_model(EXAMPLES / "lenet.onnx"), QuantOptions(), calibration)
    board = load_board("icebreaker")
    plan = plan_for_board(qgraph, board)
    resources = {"logic_cells": (5_112, 5_280), "dsp": (8, 8), "ebr": (29, 30), "spram": (2, 4), "io": (9, 96),
                 "pll": (1, 1)}
    attempts = [Attempt(24.0, Path("a"), 25.71, True, resources, seconds={"synthesis": 61.2, "place_and_route": 140.35}),
                Attempt(25.5, Path("b"), 24.93, False, resources, seconds={"synthesis": 60.4, "place_and_route": 151.0},
                        seed=2)]
    facts = build_facts(qgraph, plan, board, attempts[0], attempts, 433.21)
    facts.update(bitstream="out/lenet.bin", refits=[], weight_image={"file": "out/weights.bin", "offset": 1 << 20,
                                                                     "bytes": 61_488, "crc32": 12345},
                 verified={"images": 4, "inputs": "calibration data lenet.calib.npz", "bit_exact": True,
                           "simulator": "verilator", "cycles_per_inference": facts["cycles_per_inference"],
                           "latency_cycles": facts["latency_cycles"], "seconds": 23.4},
                 **model_facts(qgraph, calibration[:32]))
    return json.loads(json.dumps(facts))  # as build.json holds them


def test_every_number_on_the_card_is_a_value_of_build_json(lenet_facts):
    page = render_card(lenet_facts)
    checked = assert_every_number_is_a_fact(page, lenet_facts)
    layers = len(lenet_facts["layer_costs"])
    assert checked > 10 * layers  # the layer table alone shows ten numbers a layer
    for key in ("fmax_mhz", "cycles_per_inference", "inferences_per_second", "resources.logic_cells.used",
                "predicted.logic_cells", "attempts.1.fmax_mhz", "quantization.layers.0.sqnr_db",
                "layer_costs.0.cycles", "verified.images"):
        assert f'data-key="{key}"' in page, key
    assert page.count("<svg") == 3  # resources, cycles per layer, quantization error


def test_a_number_that_differs_from_build_json_is_caught(lenet_facts):
    page = render_card(lenet_facts)
    shown = f'data-key="fmax_mhz">{lenet_facts["fmax_mhz"]:.1f}<'
    assert shown in page
    with pytest.raises(AssertionError):
        assert_every_number_is_a_fact(page.replace(shown, 'data-key="fmax_mhz">99.9<'), lenet_facts)
    with pytest.raises(AssertionError, match="name no build.json key"):
        assert_every_number_is_a_fact(page.replace("<h2>Resources</h2>", "<h2>Resources 7</h2>"), lenet_facts)


def test_the_card_is_the_same_bytes_for_the_same_facts(lenet_facts):
    assert render_card(lenet_facts) == render_card(json.loads(json.dumps(lenet_facts)))


def test_an_unverified_build_says_so(lenet_facts):
    page = render_card({**lenet_facts, "verified": None})
    assert "not verified (built with --no-verify)" in page
    assert_every_number_is_a_fact(page, {**lenet_facts, "verified": None})


def test_the_card_needs_nothing_from_the_network(lenet_facts):
    page = render_card(lenet_facts)
    assert "<script" not in page and "<link" not in page and "<img" not in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
        'xmlns:xlink="http://www.w3.org/1999/xlink"', "")
    assert "https://" not in page


@pytest.mark.skipif(chromium() is None, reason="Chromium is not installed (Debian: apt-get install chromium)")
def test_headless_chromium_renders_the_card(lenet_facts, tmp_path):
    page = write_card(tmp_path, lenet_facts)
    console = render_in_chromium(page, tmp_path / "card.png", tmp_path / "profile")
    assert console == "", console
    assert_not_blank(tmp_path / "card.png")


def test_cnnhw_report_makes_the_card_again_from_the_folder(cli, lenet_facts, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "lenet.bin").write_bytes(b"\0" * 64)
    (folder / "weights.bin").write_bytes(b"\0" * 61_488)
    facts = {**lenet_facts, "files": {name: file_digest(folder / name) for name in ("lenet.bin", "weights.bin")}}
    mark_folder(folder, "build")
    write_json(folder / "build.json", facts)
    result = cli("report", "out")
    assert result.returncode == 0, result.stderr
    assert (folder / CARD_FILE).read_text() == render_card(json.loads((folder / "build.json").read_text()))
    result = cli("report", "nowhere")
    assert result.returncode != 0 and "is not a finished cnnhw build" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_build_json_without_a_key_the_card_shows_is_one_clear_error(lenet_facts):
    from cnnhw.errors import CnnhwError

    for key in ("model", "layer_costs", "resources"):
        damaged = {k: v for k, v in lenet_facts.items() if k != key}
        with pytest.raises(CnnhwError, match="build it again"):
            render_card(damaged)
