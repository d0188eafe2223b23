"""The iCEBreaker top elaborates with the platform's pins and the profile's PLL settings
(no toolchain run here: this checks what cnnhw hands to yosys)."""

import dataclasses
import re

import onnx
import pytest

from cnnhw.boards import load_board
from cnnhw.flow.platform_top import PlatformTop
from cnnhw.frontend import load_model
from cnnhw.hardware import Network
from cnnhw.plan import default_plan
from cnnhw.quant import QuantOptions, quantize_graph
from netgen import random_network


def test_icebreaker_top_uses_the_pll_and_the_uart_pins(tmp_path):
    from amaranth_boards.icebreaker import ICEBreakerPlatform

    spec = random_network(11)
    onnx.save(spec.model, tmp_path / "net.onnx")
    qgraph = quantize_graph(load_model(tmp_path / "net.onnx"), QuantOptions(), spec.calibration())
    board = load_board("icebreaker")
    pll = board.pll[0]
    top = Network(qgraph, default_plan(qgraph)).board_top(pll.mhz * 1e6, board.link_baud(pll.mhz * 1e6))
    plan = ICEBreakerPlatform().prepare(PlatformTop(top, board, pll), name="cnnhw_top")
    rtlil = plan.files["cnnhw_top.il"]
    rtlil = rtlil if isinstance(rtlil, str) else rtlil.decode()
    assert "SB_PLL40_PAD" in rtlil
    for name, value in (("DIVR", pll.divr), ("DIVF", pll.divf), ("DIVQ", pll.divq)):
        assert f"parameter \\{name} {value}" in rtlil or f"parameter \\{name} {value:d}" in rtlil, name
    pcf = plan.files["cnnhw_top.pcf"]
    pins = {line.split()[1]: line.split()[2] for line in pcf.splitlines() if line.startswith("set_io")}
    assert set(pins.values()) >= {"35", "6", "9", "11", "37"}  # clock, UART rx/tx, two LEDs


@pytest.mark.parametrize("name, pins", [
    ("ulx3s-85f", {"G2", "M1", "L4", "H3", "B2"}),  # clk25, the FT231X's rx/tx, LED 7 (busy), LED 0
    ("orangecrab-25f", {"A9", "N17", "M18", "K4", "M3"})])  # clk, the feather UART the profile adds, red, green
def test_ecp5_tops_use_the_ehxplll_and_the_profile_pins(name, pins, tmp_path):
    from cnnhw.flow.build import _board_files

    spec = random_network(11)
    onnx.save(spec.model, tmp_path / "net.onnx")
    qgraph = quantize_graph(load_model(tmp_path / "net.onnx"), QuantOptions(), spec.calibration())
    board = load_board(name)
    plan = dataclasses.replace(default_plan(qgraph), family="ecp5")
    files = _board_files(qgraph, plan, board, board.first_try_mhz, "cnnhw_top")
    rtlil = files["cnnhw_top.il"]
    rtlil = rtlil if isinstance(rtlil, str) else rtlil.decode()
    setting = board.pll_for(board.first_try_mhz)
    assert "EHXPLLL" in rtlil
    for parameter, value in (("CLKI_DIV", setting.clki_div), ("CLKFB_DIV", setting.clkfb_div),
                             ("CLKOP_DIV", setting.clkop_div), ("CLKOP_CPHASE", setting.clkop_cphase)):
        assert f"parameter \\p_{parameter} {value}" in rtlil or f"parameter \\{parameter} {value}" in rtlil, parameter
    lpf = files["cnnhw_top.lpf"]
    located = set(re.findall(r'LOCATE COMP "[^"]+" SITE "([^"]+)"', lpf))
    assert located >= pins, located
