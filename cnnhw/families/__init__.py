"""FPGA families (:mod:`cnnhw.families.base`): what differs between them, in one module each."""

from __future__ import annotations

from ..errors import CnnhwError
from .base import DspRule, Family, MemoryPrimitive, Toolchain
from .ecp5 import ECP5
from .ice40 import ICE40

FAMILIES: dict[str, Family] = {family.name: family for family in (ICE40, ECP5)}

__all__ = ["DspRule", "Family", "MemoryPrimitive", "Toolchain", "FAMILIES", "ICE40", "ECP5", "family"]


def family(name: str) -> Family:
    """The family a profile or a plan names."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise CnnhwError(f"unknown FPGA family '{name}'; cnnhw knows {', '.join(FAMILIES)}") from None
