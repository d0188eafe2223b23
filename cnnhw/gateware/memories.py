"""What blocks declare about themselves before elaboration, so the planner can price a design
without building anything: the shapes of their memories (every block that owns a ``Memory``
has a ``memories()`` method returning these, and its ``elaborate`` creates exactly those
memories), and the logic-cell model's terms (``cnnhw.plan.logic``), added with
:func:`add_terms`."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class MemoryShape:
    role: str  # what it holds, for reports: "line buffer", "weights", ...
    width: int  # bits per word
    depth: int  # words
    rom: bool = False  # read-only, contents from the bitstream (weights)
    spram: bool = False  # in SPRAM blocks (gateware/spram.py), loaded at boot: no block RAM
    logic: bool = False  # a ROM kept in LUTs whatever yosys would choose (rom_style "logic")


def counter_bits(n: int) -> int:
    """Width of a counter (or address) over ``n`` values."""
    return max(1, math.ceil(math.log2(max(n, 2))))


def add_terms(*parts: dict[str, float]) -> dict[str, float]:
    """The logic-cell terms of a block made of ``parts``: each term summed."""
    total: dict[str, float] = {}
    for part in parts:
        for name, amount in part.items():
            total[name] = total.get(name, 0) + amount
    return total


def times_constant(value, constant: int):
    """``value * constant`` for an address, as shifted adds of ``value`` (one per set bit of the
    non-negative ``constant``). A ``*`` would do the same arithmetic, but yosys maps every ``$mul``
    with two operands of 2 bits or more to an ECP5 MULT18X18D, a constant one included; an address
    computed here never takes a DSP on any family."""
    if constant < 0:
        raise ValueError(f"times_constant: {constant} is negative")
    terms = [value << bit for bit in range(constant.bit_length()) if constant >> bit & 1]
    return sum(terms[1:], terms[0]) if terms else 0
