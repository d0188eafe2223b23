"""TFLite's integer arithmetic: the rule set of models quantized by the TFLite converter, written
once, as TFLite's reference kernels compute it (``tensorflow/lite/kernels/internal/common.h`` and
``reference/integer_ops``), so that cnnhw reproduces such a model's integers bit for bit.

* **Values.** An int8 (or uint8) tensor holds ``q`` standing for ``scale * (q - zero_point)``.
  Weights are symmetric (zero point 0), per output channel or per tensor; biases are int32 in
  units of ``input_scale * weight_scale``.
* **Multipliers.** A real rescaling factor becomes ``(m0, shift)`` with ``m0`` a Q31 number in
  ``[2**30, 2**31)`` and ``real = m0 * 2**(shift - 31)`` (:func:`quantize_multiplier`).
* **Rescaling.** ``MultiplyByQuantizedMultiplier(x, m0, shift)``: ``x`` shifted left by
  ``max(shift, 0)``, then ``SaturatingRoundingDoublingHighMul`` (``x * m0 / 2**31``, rounded half
  up: :func:`doubling_high_mul`), then ``RoundingDivideByPOT`` by ``max(-shift, 0)`` (rounded
  half away from zero: :func:`rounding_divide_by_pot`). Two roundings, not one: no single
  multiply-and-shift reproduces them.
* **Layers.** A convolution or fully connected layer's output is
  ``clamp(rescale(acc, m0[c], shift[c]) + output_zero_point, act_min, act_max)``
  (:class:`TFLiteRequantizer`); ADD brings each input to a common scale with 20 bits of headroom
  before it sums them (:class:`TFLiteAdd`); AVERAGE_POOL_2D divides the window sum by its element
  count, rounding half away from zero (:class:`TFLiteAverage`).

Everything is written with ``+ - * >> & <`` and a ``select`` (``np.where`` or Amaranth's
``Mux``), as :func:`cnnhw.quant.arith.round_shift` is, so that the golden model (NumPy int64
arrays) and the gateware (signals) run the same code: a rule's ``finish`` reads a per-channel
constant through ``at(table)`` (NumPy indexing, or a lookup at the hardware's channel index) and
gives intermediate values their own wires through ``keep``; ADD's ``sum_of`` takes the products of
constants from ``multiply``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np

from .arith import _numpy_select, _same, _span, channel_picker, per_index, saturate, shift_right, times

#: ``m0`` of a multiplier is a Q31 number: 31 bits.
MULTIPLIER_BITS = 31
#: ADD's headroom: each input is shifted left by 20 bits before it is rescaled (int8 kernels).
ADD_LEFT_SHIFT = 20
#: TFLite accumulates and rescales in int32.
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: ``(m0, shift)`` with ``real ~= m0 * 2**(shift - 31)``,
    ``m0`` in ``[2**30, 2**31)`` rounded half away from zero (``std::round``); (0, 0) for 0 or a
    factor below ``2**-32``; a factor of ``2**30`` or more saturates to ``(2**31 - 1, 30)``."""
    if real == 0:
        return 0, 0
    fraction, shift = math.frexp(real)
    m0 = int(math.floor(abs(fraction) * (1 << 31) + 0.5)) * (1 if fraction > 0 else -1)
    if m0 == 1 << 31:
        m0 //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        return (1 << 31) - 1, 30
    return m0, shift


def doubling_high_mul(product):
    """``SaturatingRoundingDoublingHighMul(a, b)`` from the exact product ``a * b``:
    ``(a * b + nudge) / 2**31`` truncated, with ``nudge = 2**30`` (or ``1 - 2**30`` below 0),
    which is ``floor(a * b / 2**31 + 1/2)`` for every product: rounding half up. (It saturates
    only for ``a == b == -2**31``; multipliers are positive, so that never happens here.)"""
    return shift_right(product + (1 << 30), 31)


def rounding_divide_by_pot(value, exponent, select: Callable = _numpy_select, keep: Callable = _same):
    """``RoundingDivideByPOT(x, exponent)``: ``x / 2**exponent`` rounded half away from zero
    (``exponent`` >= 0, an int or an array of them). ``keep``: as in ``finish``; with an exponent
    that varies (a per-channel table on the hardware), the shift and the comparison that rounds
    are each a pipeline stage before the add (together, a barrel shifter, the mask's comparison
    and the add were ResNet-8's critical path on the ECP5-85F: 17.0 ns)."""
    mask = (1 << exponent) - 1
    remainder = value & mask
    threshold = (mask >> 1) + select(value < 0, 1, 0)
    staged = not isinstance(exponent, int)
    rounds_up = keep(remainder > threshold, stage=staged)
    return keep(shift_right(value, exponent), stage=staged) + select(rounds_up, 1, 0)


def multiply_by_quantized_multiplier(value, m0, shift, select: Callable = _numpy_select):
    """TFLite's ``MultiplyByQuantizedMultiplier(x, m0, shift)`` with two roundings:
    ``value`` an int32 quantity (NumPy int64 array), ``m0``/``shift`` ints or arrays that
    broadcast against it."""
    left = np.maximum(shift, 0)
    right = np.maximum(-np.asarray(shift), 0)
    return rounding_divide_by_pot(doubling_high_mul((value << left) * m0), right, select)


def multiply_by_quantized_multiplier_once(value, m0, shift):
    """The same factor with one rounding (TFLite's ``TFLITE_SINGLE_ROUNDING`` form):
    ``floor(value * m0 / 2**(31 - shift) + 1/2)``."""
    total = 31 - np.asarray(shift)
    return (value * m0 + (1 << (total - 1))) >> total


@dataclass(frozen=True)
class TFLiteRequantizer:
    """A convolution's or fully connected layer's output: ``clamp(multiply_by_quantized_multiplier(
    acc, quantized_multipliers[c], shifts[c]) + offset, lo, hi)``, ``c`` the output channel (one
    entry for a per-tensor layer), ``offset`` the output zero point, ``[lo, hi]`` the fused
    activation's range (TFLite's ``CalculateActivationRangeQuantized``).

    As a Rescaler computes it: ``product = acc * multipliers[c]``, where ``multipliers[c]`` is
    ``m0 << max(shift, 0)`` (TFLite's left shift of ``acc`` moved into the constant: the product
    is the same), then :meth:`finish` with ``right_shifts[c] = max(-shift, 0)``.

    ``single_rounding``: the factor applied with one rounding
    (:func:`multiply_by_quantized_multiplier_once`), as TFLite's reference FULLY_CONNECTED kernel
    computes it (measured: ai-edge-litert 2.3's reference kernels round CONV_2D and
    DEPTHWISE_CONV_2D twice and FULLY_CONNECTED once; on the MLPerf Tiny models the two differ in
    35 of 4,400 fully connected outputs of 200 random inputs, the single rounding in none)."""

    quantized_multipliers: tuple[int, ...]
    shifts: tuple[int, ...]
    offset: int
    lo: int
    hi: int
    single_rounding: bool = False

    #: Which rule set this is (``cnnhw.quant.arith.Requantizer`` is "cnnhw").
    rule = "tflite"
    negative_multipliers = None

    @staticmethod
    def for_scales(input_scale: float, weight_scales, output_scale: float, offset: int, lo: int,
                   hi: int, single_rounding: bool = False) -> "TFLiteRequantizer":
        """Each channel's factor ``input_scale * weight_scale[c] / output_scale``, in double from the
        file's float32 scales (TFLite's ``PopulateConvolutionQuantizationParams``; the reference
        FULLY_CONNECTED kernel agrees, measured on models whose float32 and double products give
        different multipliers)."""
        pairs = [quantize_multiplier(float(input_scale) * float(scale) / float(output_scale)) for scale in weight_scales]
        return TFLiteRequantizer(tuple(m for m, _ in pairs), tuple(s for _, s in pairs), int(offset), int(lo), int(hi),
                                 single_rounding)

    @cached_property
    def multipliers(self) -> tuple[int, ...]:
        """What the accumulator is multiplied by, per channel: ``m0 << max(shift, 0)``."""
        return tuple(m << max(s, 0) for m, s in zip(self.quantized_multipliers, self.shifts))

    @cached_property
    def right_shifts(self) -> tuple[int, ...]:
        return tuple(max(-s, 0) for s in self.shifts)

    @cached_property
    def multiplier_bits(self) -> int:
        return max(1, max(m.bit_length() for m in self.multipliers))

    def finish(self, product, select: Callable = _numpy_select, at: Callable | None = None,
               keep: Callable = _same):
        """After ``product = acc * multipliers[c]``: the rounding(s), the zero point and the clamp.
        ``at(table)`` gives channel ``c``'s entry of a per-channel table (NumPy, or a lookup on
        the hardware's channel index); per-tensor rules never call it. ``keep``: as
        :meth:`cnnhw.quant.arith.Requantizer.finish`."""
        right = per_index(self.right_shifts, at)
        # Pipeline stages (``keep(..., stage=True)``) after each carry chain across the product
        # (the rounding's add; then the shift, its rounding and the zero point) and after the
        # clamp, so that what reads the result starts from a register.
        if self.single_rounding:
            scaled = shift_right(keep(product + (1 << (right + (MULTIPLIER_BITS - 1))), stage=True),
                                 right + MULTIPLIER_BITS)
        else:
            scaled = rounding_divide_by_pot(keep(doubling_high_mul(product), stage=True), right, select, keep)
        return keep(saturate(keep(scaled + self.offset, stage=True), self.lo, self.hi, select), stage=True)

    def finish_structure(self) -> tuple[list[tuple[int, int]], int]:
        """(entries, bits) of each per-index table :meth:`finish` reads, and its product-wide
        steps beyond what cnnhw's rescaler terms price (``gateware.rescale.RescalerParameters``):
        a shifter stage per bit of the right shifts' spread when they differ by channel (measured
        on whole designs: a depthwise layer with per-channel shifts, 1,663 logic cells packed,
        1,670 estimated so)."""
        rights = self.right_shifts
        if len(set(rights)) == 1:
            return [], 0
        return [(len(rights), max(rights).bit_length())], (max(rights) - min(rights)).bit_length()

    def __call__(self, acc: np.ndarray, channel_axis: int = 1) -> np.ndarray:
        at = channel_picker(acc, channel_axis)
        return self.finish(acc.astype(np.int64) * at(self.multipliers), at=at)

    def describe(self) -> str:
        roundings = "1 rounding" if self.single_rounding else "2 roundings"
        return f"tflite: x m0 2^({_span(self.shifts)}-31), {roundings}, {self.offset:+d}"

    def facts(self) -> dict:
        return {"rule": self.rule, "multipliers": list(self.quantized_multipliers), "shifts": list(self.shifts),
                "offset": self.offset, "clamp": [self.lo, self.hi], "single_rounding": self.single_rounding}

    def largest_left_shift(self) -> int:
        return max(0, *self.shifts)


def _rescale_by_constant(value, m0: int, shift: int, multiply: Callable, select: Callable, keep: Callable):
    """``multiply_by_quantized_multiplier(value, m0, shift)`` for a constant ``(m0, shift)``,
    with ``multiply(value, constant, stage)`` forming the product (``*``, or shifted adds in
    gateware, pipelined). A pipeline stage after the product, after its first rounding and after
    the second: each is a carry chain across a 50-bit value."""
    product = keep(multiply(value, m0 << max(shift, 0), stage=True), stage=True)
    high = keep(doubling_high_mul(product), stage=True)
    return keep(rounding_divide_by_pot(high, max(-shift, 0), select), stage=True)


@dataclass(frozen=True)
class TFLiteAdd:
    """TFLite's int8 ADD: each input ``k`` becomes ``multiply_by_quantized_multiplier((q_k -
    zero_k) << 20, m_k, shift_k)`` (its scale over twice the larger input scale), the two are
    summed, and the sum is rescaled to the output: ``clamp(multiply_by_quantized_multiplier(sum,
    m_out, shift_out) + offset, lo, hi)``."""

    input_offsets: tuple[int, ...]  # minus each input's zero point
    input_multipliers: tuple[int, ...]
    input_shifts: tuple[int, ...]
    output_multiplier: int
    output_shift: int
    offset: int
    lo: int
    hi: int

    rule = "tflite"

    @staticmethod
    def for_scales(input_scales, input_zeros, output_scale: float, output_zero: int, lo: int,
                   hi: int) -> "TFLiteAdd":
        """TFLite's ``PrepareGeneralSubOp``/ADD ``Prepare`` for int8."""
        twice_max = 2 * max(float(s) for s in input_scales)
        inputs = [quantize_multiplier(float(s) / twice_max) for s in input_scales]
        m_out, shift_out = quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * float(output_scale)))
        return TFLiteAdd(tuple(-int(z) for z in input_zeros), tuple(m for m, _ in inputs), tuple(s for _, s in inputs),
                         m_out, shift_out, int(output_zero), int(lo), int(hi))

    def describe(self) -> str:
        return f"tflite add: each << {ADD_LEFT_SHIFT} x m 2^(s-31), sum x m 2^({self.output_shift}-31), {self.offset:+d}"

    def facts(self) -> dict:
        return {"rule": self.rule, "input_offsets": list(self.input_offsets),
                "input_multipliers": list(self.input_multipliers), "input_shifts": list(self.input_shifts),
                "multipliers": [self.output_multiplier], "shifts": [self.output_shift], "offset": self.offset,
                "clamp": [self.lo, self.hi]}

    def constant_products(self, in_bits) -> list[tuple[int, int]]:
        """(operand bits, constant) of each product :meth:`sum_of` forms: an input plus its
        offset times its multiplier (its shift by 20 puts zeros below, which cost no adder bits);
        the sum times the output multiplier. Each rescaled input is at most its operand shifted
        by 20 (its factor is below 1: its scale over twice the larger one), so the sum of ``n``
        has ``(n - 1).bit_length()`` bits more."""
        operands = [bits + 1 for bits in in_bits]
        products = [(b, m << max(s, 0)) for b, m, s in zip(operands, self.input_multipliers, self.input_shifts)]
        sum_bits = max(operands) + ADD_LEFT_SHIFT + (len(operands) - 1).bit_length()
        return products + [(sum_bits, self.output_multiplier << max(self.output_shift, 0))]

    def sum_of(self, inputs, multiply: Callable = times, select: Callable = _numpy_select,
               keep: Callable = _same):
        """The output from the inputs (NumPy arrays, or gateware values with ``multiply(value,
        constant, stage)`` forming products of constants, ``select = Mux`` and ``keep`` giving an
        intermediate value a wire of its own, or a pipeline register with ``stage``). Pipelined:
        each input's rescaling (:func:`_rescale_by_constant`), their sum, the output's rescaling,
        the zero point and the clamp each end in a register."""
        scaled = [_rescale_by_constant((x + offset) << ADD_LEFT_SHIFT, m, shift, multiply, select, keep)
                  for x, offset, m, shift in zip(inputs, self.input_offsets, self.input_multipliers, self.input_shifts)]
        total = scaled[0]
        for term in scaled[1:]:
            total = total + term
        out = _rescale_by_constant(keep(total, stage=True), self.output_multiplier, self.output_shift, multiply,
                                   select, keep)
        return keep(saturate(keep(out + self.offset, stage=True), self.lo, self.hi, select), stage=True)


@dataclass(frozen=True)
class TFLiteAverage:
    """TFLite's integer AVERAGE_POOL_2D: the window sum ``s`` (of ``q`` itself: the input and
    output share their scale and zero point) over its element count ``n`` (padding not counted),
    rounded half away from zero (C's ``(s + n/2) / n`` above 0, ``(s - n/2) / n`` below), then
    clamped to the fused activation's ``[lo, hi]``.

    As a Rescaler computes it, without a divider: ``product = s * multipliers[n]`` with
    ``multipliers[n] = ceil(2**shift / n)``, then ``(|product| + halves[n]) >> shift`` with the
    sign of ``s``, ``halves[n] = (n // 2) * multipliers[n]``. That is ``floor((|s| + n // 2) / n)``
    exactly for every ``|s| + n // 2 < 2**magnitude_bits``, because ``2**shift >= n *
    2**magnitude_bits``: the multiplier's excess over ``2**shift / n`` is below 1, so it adds less
    than ``1/n`` to the quotient, which never reaches the next integer.

    ``counts``: the element counts the layer's windows have (one, without padding). The tables
    have an entry for every ``n`` up to the largest; entries of counts that never occur repeat
    the first one's, so that a layer with one count has constant tables."""

    lo: int
    hi: int
    counts: tuple[int, ...]
    magnitude_bits: int

    rule = "tflite"
    negative_multipliers = None

    @staticmethod
    def for_windows(lo: int, hi: int, counts, element_lo: int, element_hi: int) -> "TFLiteAverage":
        """For windows of ``counts`` elements (those that occur), each in ``[element_lo, element_hi]``."""
        counts = tuple(sorted({int(n) for n in counts}))
        largest = max(counts) * max(abs(element_lo), abs(element_hi)) + max(counts) // 2
        return TFLiteAverage(int(lo), int(hi), counts, largest.bit_length())

    @property
    def shift(self) -> int:
        return self.magnitude_bits + (max(self.counts) - 1).bit_length()

    def _table(self, entry: Callable[[int, int], int]) -> tuple[int, ...]:
        """``entry(n, ceil(2**shift / n))`` for ``n`` in ``0..max(counts)`` (a count that never
        occurs takes the first one's)."""
        def of(n):
            return entry(n, -(-(1 << self.shift) // n))
        return tuple(of(n if n in self.counts else self.counts[0]) for n in range(max(self.counts) + 1))

    @cached_property
    def multipliers(self) -> tuple[int, ...]:
        """``multipliers[n]`` for ``n`` in ``0..max(counts)``."""
        return self._table(lambda n, multiplier: multiplier)

    @cached_property
    def halves(self) -> tuple[int, ...]:
        return self._table(lambda n, multiplier: (n // 2) * multiplier)

    @cached_property
    def multiplier_bits(self) -> int:
        return max(m.bit_length() for m in self.multipliers)

    def finish_structure(self) -> tuple[list[tuple[int, int]], int]:
        """The halves' table, when the windows have several counts; no variable shift."""
        halves = self.halves
        return ([], 0) if len(set(halves)) == 1 else ([(len(halves), max(halves).bit_length())], 0)

    def describe(self) -> str:
        return "tflite avg: sum / n, half away"

    def finish(self, product, select: Callable = _numpy_select, at: Callable | None = None,
               keep: Callable = _same):
        """After ``product = s * multipliers[n]`` (``at(table)`` picks entry ``n`` of a table)."""
        negative = keep(product < 0)
        magnitude = keep(select(negative, -product, product), stage=True)
        quotient = shift_right(magnitude + per_index(self.halves, at), self.shift)
        return keep(saturate(keep(select(negative, -quotient, quotient), stage=True), self.lo, self.hi, select),
                    stage=True)

    def __call__(self, sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
        sums, counts = sums.astype(np.int64), np.asarray(counts, dtype=np.int64)
        if not np.isin(counts, self.counts).all():
            raise ValueError(f"window counts must be among {self.counts}")

        def at(table):
            return np.asarray(table, dtype=np.int64)[counts]
        return self.finish(sums * at(self.multipliers), at=at)


def activation_range(activation: str, scale: float, zero_point: int, qmin: int, qmax: int) -> tuple[int, int]:
    """TFLite's ``CalculateActivationRangeQuantized``: the integers a fused activation (``NONE``,
    ``RELU``, ``RELU6``, ``RELU_N1_TO_1``) lets through, each bound ``zero_point + round(bound /
    scale)`` (half away from zero), within ``[qmin, qmax]``."""

    def quantize(value: float) -> int:
        steps = float(np.float32(value) / np.float32(scale))
        return zero_point + int(math.copysign(math.floor(abs(steps) + 0.5), steps))

    bounds = {"NONE": (None, None), "RELU": (0.0, None), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}[activation]
    lo = qmin if bounds[0] is None else max(qmin, quantize(bounds[0]))
    hi = qmax if bounds[1] is None else min(qmax, quantize(bounds[1]))
    return lo, hi
