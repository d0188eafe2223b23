"""Board profiles: everything cnnhw knows about a board, as data (``cnnhw/boards/<name>.json``).

A new board of a supported family needs a profile, not code. Profiles ship inside the package
(not a top-level ``boards/`` folder) so an installed cnnhw finds them; ``--board PATH.json``
takes a profile from anywhere.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import CnnhwError
from ..inputs import read_bytes

HERE = Path(__file__).resolve().parent
BUDGET_KEYS = ("logic_cells", "dsp", "ebr", "spram", "io")


@dataclass(frozen=True)
class PllSetting:
    mhz: float
    divr: int
    divf: int
    divq: int
    filter_range: int

    def output_mhz(self, input_mhz: float) -> float:
        """iCE40 PLL: f_out = f_in * (DIVF + 1) / ((DIVR + 1) * 2**DIVQ)."""
        return input_mhz * (self.divf + 1) / ((self.divr + 1) * 2 ** self.divq)


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    platform: str  # "module:Class" of the amaranth-boards platform
    family: str
    device: str
    package: str
    budget: dict[str, int]
    input_mhz: float
    pll: tuple[PllSetting, ...]
    uart_baud: int
    flash: dict[str, int]
    source: Path
    ebr_aspects: tuple[tuple[int, int], ...]  # (depth, width) configurations of one block RAM
    programmers: dict[str, list[str]]  # tool -> command line writing {bitstream} to the board's flash
    first_try_mhz: float  # where the timing search starts (DESIGN: build picks the fastest that meets timing)
    programmers_at_offset: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    # tool -> command line writing {file} at byte {offset} of the flash (the weight image)
    ebr_lane_width: int = 0  # the block RAM width whose writes have per-bit enables (0: none)

    @property
    def clocks_mhz(self) -> list[float]:
        return sorted(p.mhz for p in self.pll)

    def pll_for(self, mhz: float) -> PllSetting:
        for setting in self.pll:
            if abs(setting.mhz - mhz) < 1e-6:
                return setting
        raise CnnhwError(f"board {self.name} has no PLL setting for {mhz:g} MHz; choose from "
                         f"{', '.join(f'{f:g}' for f in self.clocks_mhz)} MHz (or add one to {self.source.name})")


def board_names() -> list[str]:
    return sorted(path.stem for path in HERE.glob("*.json"))


def load_board(name_or_path: str) -> Board:
    """A profile by name (``icebreaker``) or by path to a JSON file."""
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = HERE / f"{name_or_path}.json"
        if not path.is_file():
            raise CnnhwError(f"unknown board '{name_or_path}'; known boards: {', '.join(board_names())} "
                             f"(or give a profile file, --board my_board.json)")
    text = read_bytes(path, "board profile", limit=1 << 20)
    try:
        facts = json.loads(text.decode("utf-8"))
        budget = {key: int(facts["budget"][key]) for key in BUDGET_KEYS}
        clock = facts["clock"]
        pll = tuple(PllSetting(**setting) for setting in clock["pll"])
        board = Board(facts["name"], facts["description"], facts["platform"], facts["family"], facts["device"],
                      facts["package"], budget, float(clock["input_mhz"]), pll, int(facts["uart"]["baud"]),
                      {key: int(value) for key, value in facts["flash"].items()}, path,
                      tuple((int(d), int(w)) for d, w in facts["memories"]["ebr"]["aspects"]),
                      {tool: [str(part) for part in command] for tool, command in facts["programmers"].items()},
                      float(clock.get("first_try_mhz", max(p.mhz for p in pll))),
                      {tool: [str(part) for part in command]
                       for tool, command in facts.get("programmers_at_offset", {}).items()},
                      int(facts["memories"]["ebr"].get("lane_width", 0)))
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as error:
        raise CnnhwError(f"board profile {path} is malformed ({type(error).__name__}: {error}); "
                         f"compare it with {HERE / 'icebreaker.json'}") from None
    for setting in board.pll:
        actual = setting.output_mhz(board.input_mhz)
        if abs(actual - setting.mhz) > 1e-6:
            raise CnnhwError(f"board profile {path}: PLL setting for {setting.mhz} MHz gives {actual:g} MHz")
        # iCE40 PLL limits (Lattice TN1251): phase detector 10..133 MHz, VCO 533..1066 MHz.
        pfd = board.input_mhz / (setting.divr + 1)
        vco = pfd * (setting.divf + 1)
        if not (10 <= pfd <= 133 and 533 <= vco <= 1066 and 1 <= setting.divq <= 6):
            raise CnnhwError(f"board profile {path}: PLL setting for {setting.mhz} MHz is outside the iCE40 PLL's "
                             f"range (phase detector {pfd:g} MHz, VCO {vco:g} MHz, DIVQ {setting.divq})")
    board.pll_for(board.first_try_mhz)
    return board
