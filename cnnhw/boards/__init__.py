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
from ..families import Family, family
from ..inputs import read_bytes

HERE = Path(__file__).resolve().parent
BUDGET_KEYS = ("logic_cells", "dsp", "ebr", "spram", "io")


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    platform: str  # "module:Class" of the amaranth-boards platform
    family: Family  # cnnhw.families: the tools, primitives and yosys rules of the board's FPGA
    device: str
    package: str
    budget: dict[str, int]
    input_mhz: float
    pll: tuple  # the family's PLL settings (each with ``mhz``), one per frequency the build may try
    uart_bauds: tuple[int, ...]  # the rates the board's USB-serial bridge makes exactly, fastest first
    flash: dict[str, int]  # the weight image's flash layout (boards with SPRAM; see _flash)
    source: Path
    ebr_aspects: tuple[tuple[int, int], ...]  # (depth, width) configurations of one block RAM
    programmers: dict[str, list[str]]  # tool -> command line writing {bitstream} to the board's flash
    first_try_mhz: float  # where the timing search starts (flow/build.py: the search, and the choice)
    programmers_at_offset: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    # tool -> command line writing {file} at byte {offset} of the flash (the weight image)
    ebr_lane_width: int = 0  # the block RAM width whose writes have per-bit enables (0: none)
    speed: str = ""  # the speed grade nextpnr times the device at (ECP5)
    leds: tuple[tuple[str, int, str], tuple[tuple[str, int, str], ...]] = (("led_r", 0, ""), (("led_g", 0, ""),))
    # (busy LED, class LEDs) as amaranth-boards resources (name, number, subsignal or "")
    uart_pins: dict[str, str] = dataclasses.field(default_factory=dict)
    # rx/tx pins (and io_type) of a UART the profile adds where the platform declares none

    @property
    def clocks_mhz(self) -> list[float]:
        return sorted(p.mhz for p in self.pll)

    def link_baud(self, clock_hz: float) -> int:
        """The serial link's rate for a design clocked at ``clock_hz``: the fastest the bridge makes
        that is a whole number of clock cycles per bit for the UART (``gateware.uart.cycles_per_bit``)."""
        from ..gateware.uart import cycles_per_bit

        for baud in self.uart_bauds:
            if cycles_per_bit(clock_hz, baud) is not None:
                return baud
        raise CnnhwError(f"a {clock_hz / 1e6:g} MHz clock makes none of the {self.name}'s baud rates "
                         f"({', '.join(f'{b:,}' for b in self.uart_bauds)}) in whole cycles per bit; choose "
                         f"another clock (or list a rate in {self.source.name})")

    def pll_for(self, mhz: float):
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
        fpga = family(facts["family"])
        budget = {key: int(facts["budget"][key]) for key in BUDGET_KEYS}
        clock = facts["clock"]
        input_mhz = float(clock["input_mhz"])
        pll = fpga.read_pll(clock, input_mhz, path)
        uart = facts["uart"]
        board = Board(facts["name"], facts["description"], facts["platform"], fpga, facts["device"],
                      facts["package"], budget, input_mhz, pll,
                      tuple(sorted((int(baud) for baud in uart["bauds"]), reverse=True)),
                      _flash(facts), path,
                      tuple((int(d), int(w)) for d, w in facts["memories"]["ebr"]["aspects"]),
                      {tool: [str(part) for part in command] for tool, command in facts["programmers"].items()},
                      float(clock.get("first_try_mhz", max(p.mhz for p in pll))),
                      {tool: [str(part) for part in command]
                       for tool, command in facts.get("programmers_at_offset", {}).items()},
                      int(facts["memories"]["ebr"].get("lane_width", 0)), str(facts.get("speed", "")),
                      _leds(facts["leds"]),
                      {key: str(uart[key]) for key in ("rx_pin", "tx_pin", "io_type") if uart.get("add_resource")})
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as error:
        raise CnnhwError(f"board profile {path} is malformed ({type(error).__name__}: {error}); "
                         f"compare it with {HERE / 'icebreaker.json'}") from None
    board.pll_for(board.first_try_mhz)
    if not board.uart_bauds or min(board.uart_bauds) <= 0:
        raise CnnhwError(f"board profile {path} lists no baud rates (uart.bauds); compare it with "
                         f"{HERE / 'icebreaker.json'}")
    for setting in board.pll:  # every clock the build may try makes a rate
        board.link_baud(setting.mhz * 1e6)
    return board


def _flash(facts: dict) -> dict[str, int]:
    """The profile's ``flash`` layout (``size_bytes``, ``bitstream_bytes``, ``weights_offset``): where
    the weight image of a plan with weights in SPRAM goes, so a board with SPRAM needs it; a board
    without (ECP5) may leave it out."""
    flash = {key: int(value) for key, value in facts.get("flash", {}).items()}
    missing = [key for key in ("size_bytes", "bitstream_bytes", "weights_offset") if key not in flash]
    if facts["budget"]["spram"] and missing:
        raise KeyError(f"flash.{missing[0]}")  # the caller names the profile
    return flash


def _leds(facts: dict) -> tuple[tuple[str, int, str], tuple[tuple[str, int, str], ...]]:
    """The profile's ``leds``: amaranth-boards resources, ``"name"``, ``"name/number"``, or one
    subsignal of a resource, ``"name/number.subsignal"`` (an RGB LED's ``rgb_led/0.r``)."""
    def resource(text: str) -> tuple[str, int, str]:
        text, _, subsignal = str(text).partition(".")
        name, _, number = text.partition("/")
        return name, int(number or 0), subsignal

    return resource(facts["busy"]), tuple(resource(led) for led in facts["class"])
