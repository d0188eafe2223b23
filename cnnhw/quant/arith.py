"""The fixed-point arithmetic of cnnhw: its ONE definition.

Everything that computes on quantized integers (the golden model in ``cnnhw.golden`` and
the hardware generator in ``cnnhw.gateware``) takes its rules from this module, or, for a
model quantized by TFLite, from that rule set's one module (``cnnhw.quant.tflite_arith``: zero
points, per-channel multipliers and shifts, two roundings). Each rule object says which set it
belongs to (``rule``). cnnhw's own rules:

* **Formats.** A value is an integer in an :class:`IntFormat` (width, signedness) standing
  for ``integer * scale``. Zero points are always 0 (symmetric quantization), so padding,
  max-pooling and ReLU are exact on the integers.
* **Rounding.** :func:`round_shift` divides by ``2**shift`` and rounds, half up (towards
  +inf on ties) by default or half to even. It is written once, with operators that mean
  the same on NumPy integer arrays and on Amaranth values, so the gateware calls this very
  function on its signals.
* **Saturation.** :func:`saturate` clamps into a format's range (or a narrower ``[lo, hi]``).
* **Requantization.** ``y = saturate(round_shift(acc * M, shift), lo, hi)``, with an unsigned
  integer multiplier ``M`` per output channel and one ``shift`` per layer
  (:class:`Requantizer`). In power-of-two mode ``M`` is a power of two.
* **Lookup tables.** A smooth activation is a table with one entry per input integer,
  ``saturate(round(f(x * s_in) / s_out))`` (:class:`LookupTable`).

Changing a rule here changes the golden model and the hardware together; every test then
checks the new rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np

from ..errors import CnnhwError

ROUNDING_MODES = ("half_up", "half_even")


@dataclass(frozen=True)
class IntFormat:
    """A ``bits``-wide two's-complement (``signed``) or unsigned integer."""

    bits: int
    signed: bool

    def __post_init__(self):
        if not isinstance(self.bits, int) or not 1 <= self.bits <= 64:
            raise ValueError(f"bits must be an int from 1 to 64, not {self.bits!r}")

    @property
    def lo(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    def __str__(self) -> str:
        return f"{'s' if self.signed else 'u'}{self.bits}"

    @staticmethod
    def holding(lo: int, hi: int) -> "IntFormat":
        """The narrowest format that holds every integer in ``[lo, hi]``."""
        if lo >= 0:
            return IntFormat(max(1, int(hi).bit_length()), False)
        return IntFormat(max(int(hi).bit_length(), int(-lo - 1).bit_length()) + 1, True)


def check_rounding(rounding: str) -> str:
    if rounding not in ROUNDING_MODES:
        raise CnnhwError(f"rounding must be one of {', '.join(ROUNDING_MODES)}, not {rounding!r}")
    return rounding


def round_shift(value, shift: int, rounding: str = "half_up"):
    """``value / 2**shift`` rounded to an integer, for integer NumPy arrays or Amaranth values.

    * ``half_up``: ``floor(value / 2**shift + 1/2)``, computed as ``(value + 2**(shift-1)) >> shift``.
    * ``half_even``: ties go to the even neighbour: ``q = value >> shift``, then add 1 when the
      remainder exceeds one half, or equals one half and ``q`` is odd.

    ``>>`` is an arithmetic (flooring) shift on both NumPy signed integers and Amaranth signed
    values. ``shift == 0`` returns ``value`` unchanged.
    """
    if shift == 0:
        return value
    half = 1 << (shift - 1)
    if rounding == "half_up":
        return (value + half) >> shift
    if rounding == "half_even":
        quotient = value >> shift
        remainder = value & ((1 << shift) - 1)
        round_up = (remainder > half) | ((remainder == half) & ((quotient & 1) == 1))
        return quotient + round_up
    raise ValueError(f"unknown rounding {rounding!r}")


def round_real(value, rounding: str = "half_up") -> np.ndarray:
    """Round real numbers to integers with the same rule (quantizing inputs, weights, biases):
    one of ``ROUNDING_MODES``, or "half_away" (from zero: C's ``round``, which a TFLite model's
    QUANTIZE of its input uses)."""
    value = np.asarray(value, dtype=np.float64)
    if rounding == "half_away":
        return (np.sign(value) * np.floor(np.abs(value) + 0.5)).astype(np.int64)
    rounded = np.floor(value + 0.5) if rounding == "half_up" else np.rint(value)
    return rounded.astype(np.int64)


def shift_right(value, amount):
    """``floor(value / 2**amount)``, an arithmetic shift, on NumPy integers or Amaranth values.
    By an int amount on a signal it is as narrow as its result (``Value.shift_right``): Amaranth's
    ``>>`` keeps the operand's width, so every comparison and add after it would span the
    shifted-out bits too (a rounding after a 53-bit product then compares 54-bit values)."""
    if isinstance(amount, int) and hasattr(value, "shift_right"):
        return value.shift_right(amount)
    return value >> amount


def _numpy_select(condition, if_true, if_false):
    return np.where(condition, if_true, if_false)


def times(value, constant: int, stage: bool = False):
    """``value * constant``: the ``multiply`` of a join's ``sum_of`` on NumPy arrays. (The
    gateware's forms the product as shifted adds, ``cnnhw.gateware.branches.times_constant``,
    pipelined where the rule asks with ``stage``.)"""
    return value * constant


def _same(value, bits: int | None = None, stage: bool = False):
    """``keep`` for NumPy: a value is its own (``cnnhw.gateware.wires`` gives one a wire, or a
    pipeline register where ``stage``)."""
    return value


def channel_picker(acc: np.ndarray, channel_axis: int) -> Callable:
    """``at(table)`` for NumPy: each channel's entry of a per-channel table, shaped to broadcast
    along ``channel_axis`` of ``acc`` (a rule's ``finish`` reads its per-channel constants so)."""
    shape = [1] * acc.ndim
    shape[channel_axis] = -1
    count = acc.shape[channel_axis]
    return lambda table: np.resize(np.asarray(table, dtype=np.int64), count).reshape(shape)


def per_index(table, at: Callable | None):
    """A per-index table's value in a rule's ``finish``: the constant itself when every entry is
    equal (the hardware needs no table then), else ``at(table)``."""
    return table[0] if len(set(table)) == 1 else at(table)


def _span(values) -> str:
    """``low..high`` of some integers (one number when they are all equal), for reports."""
    low, high = min(values), max(values)
    return f"{low}" if low == high else f"{low}..{high}"


def saturate(value, lo: int, hi: int, select: Callable = _numpy_select):
    """Clamp into ``[lo, hi]``. ``select(cond, a, b)`` is ``np.where`` or Amaranth's ``Mux``."""
    return select(value < lo, lo, select(value > hi, hi, value))


@dataclass(frozen=True)
class Requantizer:
    """``acc (scale s_acc[c]) -> y (scale s_out)``: ``saturate(round_shift(acc * M[c], shift), lo, hi)``.

    ``multipliers[c]`` is for output channel ``c``; ``negative_multipliers`` (LeakyReLU) is used
    instead where ``acc < 0``. A join's requantizer (Add, Concat) has one multiplier per input
    instead: ``finish(sum(x[k] * M[k]))`` for a sum. ``lo``/``hi`` are the output format's range, narrowed by a fused
    ReLU/ReLU6/Clip. The product ``acc * M`` needs ``acc_bits + multiplier_bits`` bits.
    """

    multipliers: tuple[int, ...]
    shift: int
    lo: int
    hi: int
    rounding: str = "half_up"
    negative_multipliers: tuple[int, ...] | None = None

    #: Which rule set this is (``cnnhw.quant.tflite_arith`` has TFLite's, "tflite").
    rule = "cnnhw"

    def __post_init__(self):
        check_rounding(self.rounding)
        if self.shift < 0:
            raise ValueError(f"shift must be >= 0, not {self.shift}")
        if any(m < 0 for m in self.multipliers + (self.negative_multipliers or ())):
            raise ValueError("multipliers must be non-negative")

    @cached_property
    def multiplier_bits(self) -> int:
        return max(1, max(int(m).bit_length() for m in self.multipliers + (self.negative_multipliers or ())))

    def finish(self, product, select: Callable = _numpy_select, at: Callable | None = None,
               keep: Callable = _same):
        """The step after the multiply: ``saturate(round_shift(product, shift), lo, hi)``.

        The hardware computes ``product = acc * M[c]`` however it likes (a DSP, or a few
        bits per cycle), then calls this on its product signal with ``select=Mux`` and
        ``keep(value, bits=None, stage=False)`` giving an intermediate value a wire of its own,
        or a pipeline register where ``stage`` (``gateware.wires``; a rule puts one where its
        path would be too long for one cycle, and this one needs none). ``at`` (a per-channel
        table's entry, for rules whose finish differs by channel) is not needed."""
        return saturate(keep(round_shift(product, self.shift, self.rounding)), self.lo, self.hi, select)

    def finish_structure(self) -> tuple[list[tuple[int, int]], int]:
        """(entries, bits) of each per-index table :meth:`finish` reads, and its product-wide
        steps beyond a rounding and a clamp (``gateware.rescale.RescalerParameters``): none."""
        return [], 0

    def describe(self) -> str:
        """For reports: ``x M >> shift`` (the multipliers' range)."""
        return f"x {_span(self.multipliers)} >> {self.shift}"

    def facts(self) -> dict:
        """For JSON reports (DESIGN.md names the keys)."""
        return {"multipliers": list(self.multipliers), "shift": self.shift, "clamp": [self.lo, self.hi]}

    def sum_of(self, inputs, multiply: Callable = times, select: Callable = _numpy_select,
               keep: Callable = _same):
        """A join's sum (Add): ``finish(sum(x[k] * M[k]))``, of NumPy arrays, or of gateware values
        with ``multiply(value, constant, stage=False)`` forming products of constants, ``select =
        Mux`` and ``keep`` giving the sum a wire of its own (the rounding reads it several times).
        Not pipelined: one step from the inputs to the result."""
        products = [multiply(x, m) for x, m in zip(inputs, self.multipliers)]
        total = products[0]
        for product in products[1:]:
            total = total + product
        return self.finish(keep(total), select, keep=keep)

    def constant_products(self, in_bits) -> list[tuple[int, int]]:
        """(operand bits, constant) of each product :meth:`sum_of` forms."""
        return list(zip(in_bits, self.multipliers))

    def scalar(self, acc, channel: int, select: Callable = _numpy_select):
        """Requantize ``acc`` of one output ``channel`` (NumPy or Amaranth operands)."""
        product = acc * self.multipliers[channel]
        if self.negative_multipliers is not None:
            product = select(acc < 0, acc * self.negative_multipliers[channel], product)
        return self.finish(product, select)

    def __call__(self, acc: np.ndarray, channel_axis: int = 1) -> np.ndarray:
        """Requantize an int64 array whose ``channel_axis`` indexes output channels."""
        at = channel_picker(acc, channel_axis)
        product = acc * at(self.multipliers)
        if self.negative_multipliers is not None:
            product = np.where(acc < 0, acc * at(self.negative_multipliers), product)
        return self.finish(product)

    @staticmethod
    def for_ratios(ratios, multiplier_bits: int, lo: int, hi: int, rounding: str, power_of_two: bool,
                   negative_ratios=None, what: str = "layer") -> "Requantizer":
        """Fit multipliers and one shift to the real ratios ``s_acc[c] / s_out``.

        The shift is the largest that keeps every multiplier below ``2**multiplier_bits``, so
        the largest multiplier uses all its bits. In ``power_of_two`` mode every ratio is
        already a power of two and becomes ``M = 2**k`` exactly.
        """
        all_ratios = [float(r) for r in list(ratios) + list(negative_ratios if negative_ratios is not None else [])]
        largest = max(all_ratios)
        if not all(math.isfinite(r) and r >= 0 for r in all_ratios) or largest <= 0:
            raise CnnhwError(f"{what}: rescaling ratios {all_ratios[:4]}... cannot be represented")
        if power_of_two:
            exponents = [round(math.log2(r)) if r > 0 else None for r in all_ratios]
            shift = max(0, -min(e for e in exponents if e is not None))

            def fit(r):
                return 0 if r == 0 else 1 << (round(math.log2(r)) + shift)
        else:
            shift = multiplier_bits - 1 - math.floor(math.log2(largest))
            if round(largest * 2.0 ** shift) >= 1 << multiplier_bits:
                shift -= 1

            def fit(r):
                return int(round_real(r * 2.0 ** shift))
        if shift < 0:
            raise CnnhwError(
                f"{what}: the output scale is {largest:.3g}x finer than the accumulator's; {multiplier_bits}-bit "
                f"multipliers cannot represent that (use more multiplier bits or recalibrate)"
            )
        if shift > 62:
            raise CnnhwError(f"{what}: rescaling ratio {largest:.3g} is too small to represent (a dead layer?)")
        negatives = None if negative_ratios is None else tuple(fit(r) for r in negative_ratios)
        return Requantizer(tuple(fit(r) for r in ratios), shift, lo, hi, rounding, negatives)


@dataclass(frozen=True)
class AverageDivider:
    """Integer averaging: ``round_shift(window_sum * round(2**shift / count), shift)``.

    One multiplier per possible element count (windows at borders may hold fewer elements),
    indexed by ``count``. Exact integer rule shared by golden model and hardware.
    """

    shift: int
    multipliers: tuple[int, ...]  # multipliers[count] for count in 0..max_count (index 0 unused)
    rounding: str = "half_up"

    rule = "cnnhw"
    negative_multipliers = None

    @staticmethod
    def for_counts(max_count: int, rounding: str, shift: int = 16, what: str = "average pooling") -> "AverageDivider":
        """The divider for windows of 1..``max_count`` elements; beyond ``2**shift`` elements the
        multiplier ``round(2**shift / count)`` would be 0, so such a count is refused (before the
        table is built: its length grows with the count)."""
        if max_count > 1 << shift:
            raise CnnhwError(f"{what} averages {max_count:,} elements; cnnhw's divider multiplies by "
                             f"round(2**{shift} / count), which is 0 beyond {1 << shift:,} elements "
                             f"(pool in stages, or a smaller input)")
        return AverageDivider(shift, (0,) + tuple(int(round_real(2.0 ** shift / c)) for c in range(1, max_count + 1)),
                              rounding)

    @cached_property
    def multiplier_bits(self) -> int:
        return max(1, max(int(m).bit_length() for m in self.multipliers))

    def finish_structure(self) -> tuple[list[tuple[int, int]], int]:
        """(entries, bits) of each per-index table :meth:`finish` reads, and its product-wide
        steps beyond a rounding and a clamp (``gateware.rescale.RescalerParameters``): none."""
        return [], 0

    def describe(self) -> str:
        return f"avg: x M[n] >> {self.shift}"

    def finish(self, product, select: Callable = _numpy_select, at: Callable | None = None,
               keep: Callable = _same):
        """After ``product = sum * multipliers[count]``: ``round_shift(product, shift)``."""
        return round_shift(product, self.shift, self.rounding)

    def __call__(self, sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
        multipliers = np.asarray(self.multipliers, dtype=np.int64)[counts]
        return self.finish(sums * multipliers)


#: Inputs wider than this are refused by a lookup table (its entries double with each bit).
MAX_TABLE_INPUT_BITS = 12


@dataclass(frozen=True)
class LookupTable:
    """An element-wise function on integers: ``y = entries[x - in_format.lo]``, one entry for each
    integer of ``in_format`` (a smooth activation: sigmoid, tanh, ELU...).

    The entries are computed once (:meth:`for_function`) from the real function with the
    project's rounding and saturation; the golden model and the hardware both only index them."""

    in_format: IntFormat
    entries: tuple[int, ...]

    def __post_init__(self):
        if len(self.entries) != 1 << self.in_format.bits:
            raise ValueError(f"a table over {self.in_format} needs {1 << self.in_format.bits} entries, "
                             f"not {len(self.entries)}")

    @staticmethod
    def for_function(function: Callable, in_format: IntFormat, in_scale: float, out_format: IntFormat,
                     out_scale: float, rounding: str, what: str = "activation") -> "LookupTable":
        """``entries[k] = saturate(round(function((lo + k) * in_scale) / out_scale))``, in ``out_format``."""
        if in_format.bits > MAX_TABLE_INPUT_BITS:
            raise CnnhwError(f"{what}: its input is {in_format}; a lookup table takes inputs of up to "
                             f"{MAX_TABLE_INPUT_BITS} bits (use fewer activation bits)")
        steps = np.arange(in_format.lo, in_format.hi + 1, dtype=np.int64)
        real = function(steps.astype(np.float64) * in_scale)
        entries = saturate(round_real(np.asarray(real) / out_scale, rounding), out_format.lo, out_format.hi)
        return LookupTable(in_format, tuple(int(v) for v in entries))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.entries, dtype=np.int64)[np.asarray(x, dtype=np.int64) - self.in_format.lo]
