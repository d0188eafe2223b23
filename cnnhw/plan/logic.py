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
  in depth: ``read_select_bits`` (word width times the extra blocks: the read multiplexer).

The coefficients (logic cells per unit of each term) are fitted by ``bench/logic_calibration.py``
on whole designs (yosys ``synth_ice40 -dsp`` then ``nextpnr-ice40 --pack-only``, which counts
the same logic cells as placement) and stored in ``logic_cells.json`` beside this module, with the
error of the fit on designs left out of it.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

from ..gateware.memories import MemoryShape
from ..gateware.spram import SPRAM_DEPTH

#: Where the fitted coefficients live (``bench/logic_calibration.py`` writes it).
MODEL_FILE = Path(__file__).with_name("logic_cells.json")


def memory_terms(shape: MemoryShape, ebr: tuple[int, int]) -> dict[str, float]:
    """A memory yosys builds from logic (no block RAM, not SPRAM) costs logic cells; one in block
    RAMs stacked in depth (``ebr``: blocks, stacked) a read multiplexer per bit; one in SPRAM
    banks the same."""
    if shape.spram:
        banks = math.ceil(shape.depth / SPRAM_DEPTH)
        return {"read_select_bits": shape.width * (banks - 1)}
    blocks, stacked = ebr
    if blocks:
        return {"read_select_bits": shape.width * (stacked - 1)}
    size = shape.width * shape.depth
    return {"rom_logic_bits": size / 16} if shape.rom else {"ram_logic_bits": size}


@cache
def _fitted() -> dict:
    return json.loads(MODEL_FILE.read_text())


def coefficients() -> dict[str, float]:
    """Logic cells per unit of each term (from ``logic_cells.json``)."""
    return _fitted()["coefficients"]


def typical_error() -> float:
    """The model's mean relative error on designs left out of its fit (``logic_cells.json``)."""
    return _fitted()["error"]["mean_abs_percent"] / 100


def estimate(terms: dict[str, float]) -> int:
    """Logic cells for one owner's terms."""
    model = coefficients()
    return round(sum(model.get(name, 0.0) * amount for name, amount in terms.items()))
