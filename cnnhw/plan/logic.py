"""Logic cells a plan takes, estimated before anything is synthesised.

The estimate is linear in a few *terms* per block, each an amount the block's structure scales
with (bits of accumulators, of adders, of partial products, of registers, of tables and memories
kept in logic, and one per control unit):

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
from ..gateware.rescale import TABLE_IN_LOGIC_MAX
from ..gateware.spram import SPRAM_DEPTH
from ..quant.qgraph import QClamp, QConv, QDense, QGlobalPool, QGraph, QPool
from .plan import HardwarePlan, LayerPlan

#: Where the fitted coefficients live (``bench/logic_calibration.py`` writes it).
MODEL_FILE = Path(__file__).with_name("logic_cells.json")
#: yosys ``synth_ice40 -dsp``: products narrower than this stay in logic.
DSP_MIN_PRODUCT_BITS = 11


def bits(n: int) -> int:
    """Width of a counter over ``n`` values."""
    return max(1, math.ceil(math.log2(max(n, 2))))


def products_in_logic(layer, folding: LayerPlan) -> bool:
    """Whether a conv/dense layer's products are logic cells (asked for, or too narrow for a DSP)."""
    return folding.logic_products or narrow_products(layer, folding)


def narrow_products(layer, folding: LayerPlan) -> bool:
    """Products too narrow for yosys to put on a DSP (it builds them from logic itself)."""
    narrow = layer.in_format.bits + layer.weight_format.bits < DSP_MIN_PRODUCT_BITS
    return narrow and not folding.packed and not folding.logic_products


def rescaler_dsps(value_bits: int, multiplier_bits: int, digit_bits: int) -> int:
    """DSPs of a rescaler (``gateware/rescale.py``): none while it multiplies a few bits per cycle
    (shifted adds in logic); a whole multiplier per cycle is a ``*`` of the ``value_bits + 1``-bit
    value by the multiplier, which ``synth_ice40 -dsp`` maps to DSPs when the product is at least 11
    bits wide (both operands at least 2), one per 16x16-bit piece (``mul2dsp``)."""
    digit = max(1, min(digit_bits, multiplier_bits))
    if digit < multiplier_bits or digit < 2 or value_bits + 1 + digit < DSP_MIN_PRODUCT_BITS:
        return 0
    return math.ceil((value_bits + 1) / 16) * math.ceil(digit / 16)


def _add(terms: dict[str, float], **amounts: float) -> None:
    for name, amount in amounts.items():
        terms[name] = terms.get(name, 0) + amount


def _table(entries: int, width: int) -> float:
    """A constant table of ``entries`` words kept in logic (one entry: a constant, free)."""
    return 0 if entries < 2 else width * math.ceil(entries / 16)


def _window(terms, in_shape, rows: int, simd: int, element_bits: int) -> None:
    channels, _, width = in_shape
    _add(terms, window=1, window_address_bits=bits(rows * width * channels // simd),
         window_word_bits=simd * element_bits)


def _rescaler(terms, value_bits: int, multiplier_bits: int, digit_bits: int, entries: int, tables: int) -> None:
    digit = max(1, min(digit_bits, multiplier_bits))
    _add(terms, rescaler=1, rescale_bits=2 * value_bits + 2 * multiplier_bits)
    if not rescaler_dsps(value_bits, multiplier_bits, digit_bits):
        _add(terms, rescale_digit_bits=(value_bits + 1) * digit)
    if entries <= TABLE_IN_LOGIC_MAX:
        _add(terms, table_bits=tables * _table(entries, multiplier_bits))


def _matrix(terms, layer, folding: LayerPlan, outputs: int, inputs: int, groups: int) -> None:
    acc = layer.acc_format.bits
    count = folding.pe * folding.simd
    folds, words = outputs // folding.pe, inputs // folding.simd
    banks = groups * folds
    _add(terms, mvu=1, mvu_address_bits=bits(banks * words), mvu_buffered=int(folds > 1),
         accumulator_bits=folding.pe * acc, sum_bits=count * acc)
    product_bits = count * layer.in_format.bits * layer.weight_format.bits
    if folding.logic_products:
        _add(terms, logic_product_bits=product_bits)
    elif narrow_products(layer, folding):
        _add(terms, narrow_product_bits=product_bits)
    if banks <= TABLE_IN_LOGIC_MAX:
        _add(terms, table_bits=folding.pe * _table(banks, acc))
    requant = layer.requant
    _add(terms, lane_select_bits=(folding.pe - 1) * acc)
    _rescaler(terms, acc, requant_multiplier_bits(requant), folding.digit_bits, len(requant.multipliers),
              1 if requant.negative_multipliers is None else 2)


def requant_multiplier_bits(requant) -> int:
    return max(1, max(int(m).bit_length() for m in tuple(requant.multipliers) + tuple(requant.negative_multipliers or ())))


def layer_rescaler_dsps(layer, folding: LayerPlan) -> int:
    """DSPs of a layer's rescaler (requantizer of a conv/dense layer, divider of an average pool)."""
    if isinstance(layer, (QConv, QDense)):
        return rescaler_dsps(layer.acc_format.bits, requant_multiplier_bits(layer.requant), folding.digit_bits)
    if isinstance(layer, (QPool, QGlobalPool)) and layer.divider is not None:
        return rescaler_dsps(_sum_bits(layer), max(int(m).bit_length() for m in layer.divider.multipliers),
                             folding.digit_bits)
    return 0


def _sum_bits(layer) -> int:
    """Width of an average pool's running sum (``gateware/stages.PoolStage``)."""
    return layer.sum_format.bits + 1 if layer.sum_format is not None else 32


def layer_terms(layer, folding: LayerPlan) -> dict[str, float]:
    """The terms of one layer's stage (see the module docstring)."""
    terms: dict[str, float] = {}
    if isinstance(layer, QConv):
        span = (layer.kernel[0] - 1) * layer.dilation[0] + 1
        rows = (2 if folding.overlap else 1) * span + layer.stride[0]
        _window(terms, layer.in_shape, rows, folding.simd, layer.in_format.bits)
        groups = layer.groups
        _matrix(terms, layer, folding, layer.weight.shape[0] // groups, math.prod(layer.weight.shape[1:]), groups)
    elif isinstance(layer, QDense):
        _add(terms, packer_bits=folding.simd * layer.in_format.bits)
        _matrix(terms, layer, folding, *layer.weight.shape, groups=1)
    elif isinstance(layer, QPool) and layer.tiled:
        _add(terms, tiled_pool=1, reducer_bits=layer.in_format.bits)
    elif isinstance(layer, (QPool, QGlobalPool)):
        channels, height, _ = layer.in_shape
        span = height if isinstance(layer, QGlobalPool) else (layer.kernel[0] - 1) * layer.dilation[0] + 1
        stride = 1 if isinstance(layer, QGlobalPool) else layer.stride[0]
        _window(terms, layer.in_shape, (2 if folding.overlap else 1) * span + stride, 1, layer.in_format.bits)
        if layer.divider is None:
            _add(terms, reducer_bits=layer.in_format.bits)
        else:
            sum_bits = _sum_bits(layer)
            _add(terms, reducer_bits=sum_bits)
            multipliers = layer.divider.multipliers
            _rescaler(terms, sum_bits, max(int(m).bit_length() for m in multipliers), folding.digit_bits,
                      len(multipliers), 1)
    elif isinstance(layer, QClamp):
        _add(terms, reducer_bits=layer.in_format.bits)
    return terms


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


def plan_terms(qgraph: QGraph, plan: HardwarePlan, memories: list[tuple[str, MemoryShape, tuple[int, int]]],
               spram_blocks: int) -> dict[str, dict[str, float]]:
    """Terms per owner: each layer's name, and "board". ``memories``: (owner, shape, (EBRs, EBRs
    stacked in depth))."""
    owners: dict[str, dict[str, float]] = {"board": {"board": 1}}
    if spram_blocks:
        _add(owners["board"], loader=1, spram_block=spram_blocks)
    for layer in qgraph.layers:
        terms = layer_terms(layer, plan.for_layer(layer.name))
        if terms:
            owners[layer.name] = terms
    for owner, shape, ebr in memories:
        key = owner if owner in owners else "board"
        for name, amount in memory_terms(shape, ebr).items():
            _add(owners[key], **{name: amount})
    return owners


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
