"""What an FPGA family is to cnnhw: its tools, its primitives and the rules yosys follows on it.

A :class:`Family` owns everything that differs between families and nothing that does not: the
accelerator's gateware is the same Amaranth on every family (yosys infers DSPs and block RAM from
``*`` and memories), so a family says how many DSPs a product takes (:class:`DspRule`), where a
memory lands and what it costs (:class:`MemoryPrimitive`), which commands synthesise, place and
pack a design, what nextpnr's report calls each resource, and which PLL makes a clock. Board
profiles (``cnnhw/boards/*.json``) name their family; nothing else in cnnhw names a family's
primitives.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DspRule:
    """What yosys spends on one ``a * b`` (a ``$mul`` of ``a_bits`` by ``b_bits``) on a family
    (``mul2dsp``): nothing when an operand is narrower than ``min_operand_bits`` or the product
    narrower than ``min_product_bits`` (logic builds those), else one DSP per ``piece_bits`` x
    ``piece_bits`` piece, where a remainder narrower than ``min_operand_bits`` is logic too
    (measured: 17 x 16 bits take one SB_MAC16 on iCE40, 19 x 18 one MULT18X18D on ECP5).
    ``packs_two_8x8``: the DSP can make two independent 8x8-bit products (``LayerPlan.packed``).
    ``registered_products``: a matrix-vector unit registers its weights and operands before the
    products and the products before the sum (``gateware/mvu.py``): on a large die the route from a
    block RAM's output through a DSP to the adder tree takes more than a cycle (ResNet-8 on the
    ECP5-85F: 28 ns, Fmax 35.5 MHz without these registers)."""

    primitive: str
    min_operand_bits: int
    min_product_bits: int
    piece_bits: int
    packs_two_8x8: bool
    registered_products: bool = False

    def dsps_of_product(self, a_bits: int, b_bits: int) -> int:
        if min(a_bits, b_bits) < self.min_operand_bits or a_bits + b_bits < self.min_product_bits:
            return 0
        return self._pieces(a_bits) * self._pieces(b_bits)

    def _pieces(self, bits: int) -> int:
        return bits // self.piece_bits + (bits % self.piece_bits >= self.min_operand_bits)


@dataclass(frozen=True)
class MemoryPrimitive:
    """A memory yosys' ``memory_libmap`` can map a ``width x depth`` memory onto, with its price.

    ``cost`` per primitive; ``aspects``: its (depth, width) configurations; ``lane_width``: the
    width whose writes can be enabled bit by bit, so that slices of a memory split in depth can
    share one primitive's lanes (0: never, but in a ROM); ``holds_rom``: it can be initialised
    and never written; ``budget_key``: the board budget it counts in (None: it is made of logic
    cells, and the logic model prices it); ``emulation``: memory_libmap's emulation points for
    our read port (a port of its own) and for a RAM's read beside its write."""

    name: str
    cost: float
    aspects: tuple[tuple[int, int], ...]
    lane_width: int
    holds_rom: bool
    budget_key: str | None
    own_read_port: int
    read_beside_write: int


@dataclass(frozen=True)
class Toolchain:
    """The executables of one family's flow (``kind``: "yowasp", from PyPI, or "system", on PATH)."""

    kind: str
    yosys: str
    nextpnr: str
    pack: str
    router: str = "router1"  # nextpnr's --router


class Family(ABC):
    """One FPGA family (see the module docstring). Subclasses are singletons named in profiles."""

    #: The profile's ``family`` value.
    name: str
    #: How yosys maps products onto this family's DSPs.
    dsp: DspRule
    #: Tool roles -> executable names, per toolchain kind ("yowasp", "system").
    tool_names: dict[str, dict[str, str]]
    #: nextpnr's ``--report`` cell types -> board budget keys (DESIGN.md: build JSON ``resources``).
    pnr_resources: dict[str, str]
    #: Budget keys -> what a table calls them on this family.
    resource_names: dict[str, str]
    #: The constraints file amaranth writes for the platform (".pcf", ".lpf").
    constraints_suffix: str
    #: The bitstream's file suffix.
    bitstream_suffix: str
    #: The budget key of the logic resource nextpnr counts and the logic model estimates.
    LOGIC_KEY = "logic_cells"
    #: The share of the logic cells a default plan may fill: the planner leaves the rest so that
    #: nextpnr's router converges (``plan_for_board``; a refit after packing still allows them all).
    plannable_logic_fraction: float = 1.0
    #: nextpnr's router for this family's place and route, unless the build names one (``--router``).
    default_router: str = "router1"

    @abstractmethod
    def synthesis_script(self, top: str) -> str:
        """The yosys script that reads ``{top}.il`` and writes ``{top}.json`` and ``synth_stat.json``."""

    @abstractmethod
    def nextpnr_device(self, board) -> list[str]:
        """nextpnr's device and package options for ``board``."""

    @abstractmethod
    def routed_output(self, top: str) -> tuple[list[str], str]:
        """nextpnr's option writing the routed design, and that file's name."""

    @abstractmethod
    def pack_command(self, tools: Toolchain, routed: str, bitstream: str) -> list[str]:
        """The command packing the routed design into the bitstream file."""

    @abstractmethod
    def synthesis_needs(self, cells: dict[str, int]) -> dict[str, int]:
        """What a synthesised netlist needs in budget units (logic as a lower bound; the packer
        counts the real number)."""

    @abstractmethod
    def read_pll(self, clock: dict, input_mhz: float, source: Path) -> tuple:
        """The profile's PLL settings (``clock``: its ``clock`` object), each with ``mhz``, checked
        against the family's PLL limits; CnnhwError naming the profile otherwise."""

    @abstractmethod
    def pll(self, m, setting, input_mhz: float, clock_in, clock_out) -> object:
        """Add the PLL making ``clock_out`` from the board's ``input_mhz`` clock pin ``clock_in`` (a
        requested pin, ``dir="-"``) to module ``m``; returns its lock signal."""

    @abstractmethod
    def memory_primitives(self, board) -> tuple[MemoryPrimitive, ...]:
        """The memories yosys may map a memory onto on ``board`` (the profile gives the block RAM's
        aspects), each priced as memory_libmap prices it."""
