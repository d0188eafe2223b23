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
