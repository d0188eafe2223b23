"""Logic cells a plan takes, estimated before anything is synthesised.

The estimate is linear in a few *terms* per block, each an amount the block's structure scales
with (bits of accumulators, of adders, of partial products, of registers, of tables and memories
kept in logic, and one per control unit). Each block states its own terms (``logic_terms()`` of
``WindowGeometry``, ``MatrixParameters``, ``RescalerParameters``, ... in ``cnnhw.gateware``; a
hardware op adds up its blocks'); this module prices memories and holds the coefficients:

* ``board``: the UART, the serial front end, the argmax and glue, once;
  ``loader`` and ``spram_block``: the weight loader and its load bus, when weights are in SPRAM;
* a window unit (conv, and pooling that is not tiled): ``window`` (its counters and control,
  scaled by ``window_address_bits``, the width of its line-buffer address) and ``window_word_bits``
  (``simd`` elements: packing register, 3-entry FIFO);
* a matrix-vector unit: ``mvu`` (control, scaled by ``mvu_address_bits``), ``mvu_buffered`` (the
  ping-pong window buffer's control, with several folds), ``accumulator_bits`` (``pe`` accumulators
  and the bias select), ``sum_bits`` (one adder of accumulator width per product),
  ``logic_product_bits`` (``in_bits * weight_bits`` per product the plan builds from logic cells,
  ``logic_products``), ``narrow_product_bits`` (the same for products too narrow for a DSP, which
  yosys builds itself), ``table_bits`` (bias tables of up to 32 entries in logic), ``packer_bits``
  (a dense layer's input packer);
* a rescaler (requantizer, average): ``rescaler`` (control, rounding, saturation), ``rescale_bits``
  (value, multiplier and product registers and the product's adder), ``rescale_digit_bits``
  (``digit_bits`` shifted adds of the value, unless the whole multiply is on a DSP),
  ``table_bits`` (multiplier tables in logic), ``lane_select_bits`` (the requantizer picking one of
  ``pe`` accumulators);
* pooling: ``tiled_pool`` plus ``reducer_bits`` (the running maximum or sum); clamps:
  ``reducer_bits``;
* memories yosys builds from logic rather than block RAM (``costs.ebr_blocks`` returns 0):
  ``rom_logic_bits`` (bits / 16: a LUT4 holds 16 bits of ROM) and ``ram_logic_bits`` (bits: a
  flip-flop each, plus its read multiplexer); memories in several block RAMs or SPRAM banks stacked
  in depth: ``read_select_bits`` (word width times the extra blocks: the read multiplexer);
  distributed RAM (ECP5): ``lutram_units`` (TRELLIS_DPR16X4 cells, each 16 x 4 bits).

The coefficients (logic cells per unit of each term) are fitted per family by
``bench/logic_calibration.py`` on whole designs (the family's yosys synthesis then nextpnr
``--pack-only``, which counts the same logic cells as placement: ICESTORM_LC on iCE40,
TRELLIS_COMB on ECP5) and stored beside this module (``logic_cells.json`` for iCE40,
``logic_cells_<family>.json`` for the others), with the error of the fit on designs left out of
it.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CnnhwError
from ..gateware.memories import MemoryShape
from ..gateware.spram import SPRAM_DEPTH

if TYPE_CHECKING:
    from .costs import Placement

#: Where the fitted coefficients live (``bench/logic_calibration.py`` writes it).
MODEL_FILE = Path(__file__).with_name("logic_cells.json")


def memory_terms(shape: MemoryShape, placed: "Placement") -> dict[str, float]:
    """A memory yosys builds from logic (``placed`` is ``costs.IN_LOGIC``, not SPRAM) costs logic
    cells; one in primitives stacked in depth a read multiplexer per bit of each extra slice; one
    in SPRAM banks the same. Distributed RAM (a primitive with no ``budget_key``, the ECP5's
    TRELLIS_DPR16X4) sits in logic cells itself: ``lutram_units`` of them."""
    if shape.spram:
        banks = math.ceil(shape.depth / SPRAM_DEPTH)
        return {"read_select_bits": shape.width * (banks - 1)}
    if placed.primitive is not None:
        terms = {"read_select_bits": shape.width * (placed.slices - 1)}
        if placed.primitive.budget_key is None:
            terms["lutram_units"] = placed.blocks
        return terms
    size = shape.width * shape.depth
    return {"rom_logic_bits": size / 16} if shape.rom else {"ram_logic_bits": size}


def model_file(family: str) -> Path:
    """Where a family's fitted coefficients live (``bench/logic_calibration.py`` writes them)."""
    return MODEL_FILE if family == "ice40" else MODEL_FILE.with_name(f"logic_cells_{family}.json")


@cache
def _fitted(family: str) -> dict:
    path = model_file(family)
    if not path.is_file():
        raise CnnhwError(f"no logic-cell model for the {family} family ({path.name}): "
                         f"fit one with bench/logic_calibration.py --board <a board of the family>")
    return json.loads(path.read_text())


def coefficients(family: str = "ice40") -> dict[str, float]:
    """Logic cells per unit of each term (from the family's model file)."""
    return _fitted(family)["coefficients"]


def typical_error(family: str = "ice40") -> float:
    """The model's mean relative error on designs left out of its fit (the family's model file)."""
    return _fitted(family)["error"]["mean_abs_percent"] / 100


def estimate(terms: dict[str, float], family: str = "ice40") -> int:
    """Logic cells for one owner's terms."""
    model = coefficients(family)
    return round(sum(model.get(name, 0.0) * amount for name, amount in terms.items()))
