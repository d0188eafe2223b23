"""Board profiles are data: they load, their PLL settings are consistent, mistakes are clear."""

import importlib
import json

import pytest

from cnnhw.boards import board_names, load_board
from cnnhw.errors import CnnhwError


def test_icebreaker_profile():
    board = load_board("icebreaker")
    assert board.budget == {"logic_cells": 5280, "dsp": 8, "ebr": 30, "spram": 4, "io": 39}
    assert board.clocks_mhz == [12.0 + 3 * k for k in range(13)]  # 3 Mbaud needs a multiple of 3 MHz
    assert board.pll_for(24.0).divf == 63
    assert board.flash["weights_offset"] >= board.flash["bitstream_bytes"]
    module, name = board.platform.split(":")
    platform = getattr(importlib.import_module(module), name)
    assert platform.device == board.device and platform.package == board.package


@pytest.mark.parametrize("name", board_names())
def test_every_profile_loads(name):
    assert load_board(name).name == name


def test_boards_command(cli, tmp_path):
    result = cli("boards", "--json", "boards.json")
    assert result.returncode == 0 and "icebreaker" in result.stdout
    facts = json.loads((tmp_path / "boards.json").read_text())
    assert facts["boards"][0]["budget"]["dsp"] == 8


def test_unknown_board():
    with pytest.raises(CnnhwError, match="unknown board 'ulx3s'; known boards: icebreaker"):
        load_board("ulx3s")


def test_malformed_profile(tmp_path):
    facts = json.loads(load_board("icebreaker").source.read_text())
    del facts["budget"]["dsp"]
    (tmp_path / "mine.json").write_text(json.dumps(facts))
    with pytest.raises(CnnhwError, match="mine.json is malformed .KeyError: 'dsp'."):
        load_board(str(tmp_path / "mine.json"))


def test_inconsistent_pll_setting(tmp_path):
    facts = json.loads(load_board("icebreaker").source.read_text())
    facts["clock"]["pll"][0]["divq"] = 3
    (tmp_path / "mine.json").write_text(json.dumps(facts))
    with pytest.raises(CnnhwError, match="PLL setting for 12.0 MHz gives 96 MHz"):
        load_board(str(tmp_path / "mine.json"))


def test_pll_setting_outside_the_vco_range(tmp_path):
    facts = json.loads(load_board("icebreaker").source.read_text())
    facts["clock"]["pll"][0].update(mhz=6.0, divf=31)  # 12 * 32 / 64 = 6 MHz, but the VCO would run at 384 MHz
    (tmp_path / "mine.json").write_text(json.dumps(facts))
    with pytest.raises(CnnhwError, match="6.0 MHz is outside the iCE40 PLL's range .phase detector 12 MHz, VCO 384 MHz"):
        load_board(str(tmp_path / "mine.json"))


@pytest.mark.parametrize("name, mhz, baud", [
    ("icebreaker", 12, 3_000_000), ("icebreaker", 24, 6_000_000), ("icebreaker", 36, 6_000_000),
    ("icebreaker", 48, 12_000_000), ("icebreaker", 33, 3_000_000), ("ulx3s-85f", 60, 3_000_000),
    ("ulx3s-12f", 45, 3_000_000), ("orangecrab-25f", 48, 1_000_000)])
def test_the_link_runs_at_the_fastest_rate_the_bridge_and_the_clock_both_make(name, mhz, baud):
    """The FT2232H makes 12, 8, 6, 4 and 3 Mbaud; the UART needs a whole number of at least four
    clock cycles per bit: at 24 MHz, 12 and 8 Mbaud are 2 and 3 cycles, so 6 Mbaud (4 cycles)."""
    board = load_board(name)
    assert board.link_baud(mhz * 1e6) == baud
    assert (mhz * 1e6 / baud).is_integer() and mhz * 1e6 / baud >= 4


def test_a_profile_whose_clocks_make_none_of_its_rates_is_refused(tmp_path):
    facts = json.loads(load_board("icebreaker").source.read_text())
    facts["uart"]["bauds"] = [7_000_000]
    (tmp_path / "mine.json").write_text(json.dumps(facts))
    with pytest.raises(CnnhwError, match="a 12 MHz clock makes none of the icebreaker's baud rates .7,000,000."):
        load_board(str(tmp_path / "mine.json"))
