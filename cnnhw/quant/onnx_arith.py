"""onnxruntime's integer arithmetic for models quantized in ONNX (QDQ or QOperator: QLinearConv,
QGemm, QLinearMatMul), written once, so that cnnhw reproduces such a model's integers bit for bit.

onnxruntime requantizes an int32 accumulator in float32 (MLAS ``MlasRequantizeOutput``):
``y = clamp(nearbyint(float(acc) * scale) + zero_point)``, with ``scale`` the float32
``x_scale * w_scale[c] / y_scale`` (two float32 operations, as its kernels compute it) and
``nearbyint`` rounding half to even. Two roundings: the product to float32's 24 significant bits
(half to even), then to an integer (half to even). In integers, exactly:

* ``scale = m * 2**-exponent`` with ``m`` its 24-bit mantissa (:func:`float32_parts`);
* ``p = |acc| * m`` (exact), rounded half to even to 24 significant bits: at bit ``r1 =
  bit_length(p >> 24)`` (:func:`round_to_float32`);
* that rounded to an integer at bit ``exponent`` (half to even), the sign of ``acc`` put back, the
  zero point added, the output format's range (narrowed by a fused ReLU) the clamp.

This holds while ``float(acc)`` is exact, ``|acc| < 2**24`` (the importer refuses a layer whose
accumulator can reach it), and for normal float32 scales. The functions are written with ``+ - *
>> << & <`` and a ``select`` (``np.where`` or Amaranth's ``Mux``), as
:func:`cnnhw.quant.arith.round_shift` is, so that the gateware computes them on its signals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .arith import _numpy_select, _same, _span, channel_picker, per_index, saturate, shift_right

#: float32's significand: 24 bits (the leading one included).
MANTISSA_BITS = 24
#: The largest accumulator that float32 holds exactly is below this.
EXACT_ACCUMULATOR = 1 << MANTISSA_BITS


def float32_parts(value: float) -> tuple[int, int]:
    """A positive normal float32 as ``(m, exponent)`` with ``value == m * 2**-exponent`` and
    ``m`` in ``[2**23, 2**24)``."""
    value = np.float32(value)
    if not (np.isfinite(value) and value > 0) or value < np.finfo(np.float32).tiny:
        raise ValueError(f"{value} is not a positive normal float32")
    fraction, power = np.frexp(value)  # value = fraction * 2**power, fraction in [0.5, 1)
    return int(fraction * (1 << MANTISSA_BITS)), MANTISSA_BITS - int(power)


def requant_scale(x_scale, w_scale, y_scale) -> float:
    """``x_scale * w_scale / y_scale`` in float32, as onnxruntime's kernels compute it."""
    return float(np.float32(np.float32(x_scale) * np.float32(w_scale)) / np.float32(y_scale))


def smear_right(value, bits: int):
    """A non-negative ``value`` below ``2**bits`` with every bit below its highest set bit set
    too: ``(1 << bit_length(value)) - 1``, by ORs of shifted copies (no adder, no shifter)."""
    step = 1
    while step < bits:
        value = value | shift_right(value, step)
        step <<= 1
    return value


def round_to_float32(magnitude, select: Callable = _numpy_select, keep: Callable = _same):
    """A non-negative ``magnitude`` below ``2**48`` rounded half to even to float32's 24
    significant bits: at bit ``r = bit_length(magnitude >> 24)``.

    Without a shifter: ``low_mask = (1 << r) - 1`` smears the bits above the 24 kept, and ``half``
    (``1 << (r - 1)``) is its top bit. Rounding half to even is adding ``half - 1``, plus one when
    bit ``r`` is set (a tie then goes up, to even), and clearing the ``r`` low bits; ``half - 1
    + 1`` is ``half``, so the addend is a choice, not a sum. For ``r = 0`` the mask and the addend
    are 0 and ``magnitude`` is returned unchanged."""
    low_mask = keep(smear_right(shift_right(magnitude, MANTISSA_BITS), MANTISSA_BITS), MANTISSA_BITS)
    below_half = shift_right(low_mask, 1)
    half = keep(low_mask ^ below_half, MANTISSA_BITS)
    odd = (magnitude & (half << 1)) != 0  # bit r
    total = keep(magnitude + select(odd, half, below_half), 2 * MANTISSA_BITS + 1)
    return total ^ (total & low_mask)  # the low bits cleared


def round_half_even(value, position, select: Callable = _numpy_select, keep: Callable = _same):
    """A non-negative ``value`` over ``2**position``, rounded half to even (``position`` an int,
    an array, or an unsigned Amaranth value)."""
    quotient = keep(shift_right(value, position))
    remainder = keep(value & ((1 << position) - 1))
    half = (1 << position) >> 1
    odd = quotient & 1
    up = select(remainder > half, 1, select((remainder == half) & (position != 0), odd, 0))
    return keep(quotient + up)


@dataclass(frozen=True)
class OnnxRequantizer:
    """A QLinearConv's or QGemm's output, as onnxruntime computes it (see the module docstring):
    ``mantissas[c]`` and ``exponents[c]`` the float32 scale of output channel ``c`` (one entry per
    tensor), ``offset`` the output zero point, ``[lo, hi]`` the output format's range.

    As a Rescaler computes it: ``product = acc * mantissas[c]``, then :meth:`finish`."""

    mantissas: tuple[int, ...]
    exponents: tuple[int, ...]
    offset: int
    lo: int
    hi: int

    #: Which rule set this is (``cnnhw.quant.arith.Requantizer`` is "cnnhw").
    rule = "onnxruntime"
    negative_multipliers = None

    @staticmethod
    def for_scales(x_scale: float, w_scales, y_scale: float, offset: int, lo: int, hi: int) -> "OnnxRequantizer":
        parts = [float32_parts(requant_scale(x_scale, w, y_scale)) for w in w_scales]
        return OnnxRequantizer(tuple(m for m, _ in parts), tuple(e for _, e in parts), int(offset), int(lo), int(hi))

    @property
    def multipliers(self) -> tuple[int, ...]:
        return self.mantissas

    @property
    def multiplier_bits(self) -> int:
        return MANTISSA_BITS

    def finish(self, product, select: Callable = _numpy_select, at: Callable | None = None,
               keep: Callable = _same):
        """After ``product = acc * mantissas[c]`` (``|acc| < 2**24``): float32's rounding of the
        product, then ``nearbyint``, the zero point and the clamp. ``at(table)`` gives channel
        ``c``'s entry of a per-channel table (the exponents, when they differ); ``keep`` as in
        ``Requantizer.finish``."""
        # Pipeline stages (``keep(..., stage=True)``) after each carry chain or shifter across
        # the product, and after the clamp, so that what reads the result starts from a register.
        negative = keep(product < 0)
        magnitude = keep(select(negative, -product, product), 2 * MANTISSA_BITS, stage=True)
        kept = keep(round_to_float32(magnitude, select, keep), 2 * MANTISSA_BITS + 1, stage=True)
        rounded = keep(round_half_even(kept, per_index(self.exponents, at), select, keep), stage=True)
        signed_rounded = keep(select(negative, -rounded, rounded) + self.offset, stage=True)
        return keep(saturate(signed_rounded, self.lo, self.hi, select), stage=True)

    def finish_structure(self) -> tuple[list[tuple[int, int]], int]:
        """The exponents' table when they differ by channel, and the finish's product-wide steps
        beyond what cnnhw's rescaler terms price (``gateware.rescale.RescalerParameters``): the
        magnitude and the first rounding's mask, choice and add, four; two more per bit of the
        exponents' spread when they differ by channel (a shifter and its remainder). Measured on
        LeNet-5 quantized by onnxruntime (five rescalers, the smallest plan): 6,788 logic cells
        packed per tensor (6,808 estimated), 8,313 per channel (7,996)."""
        exponents = self.exponents
        if len(set(exponents)) == 1:
            return [], 4
        spread = (max(exponents) - min(exponents)).bit_length()
        return [(len(exponents), max(exponents).bit_length())], 4 + 2 * spread

    def __call__(self, acc: np.ndarray, channel_axis: int = 1) -> np.ndarray:
        at = channel_picker(acc, channel_axis)
        return self.finish(acc.astype(np.int64) * at(self.mantissas), at=at)

    def describe(self) -> str:
        return f"onnxruntime: float32 x m 2^-({_span(self.exponents)}), half even twice, {self.offset:+d}"

    def facts(self) -> dict:
        return {"rule": self.rule, "multipliers": list(self.mantissas), "exponents": list(self.exponents),
                "offset": self.offset, "clamp": [self.lo, self.hi]}
