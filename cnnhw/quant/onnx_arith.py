"""onnxruntime's integer arithmetic for models quantized in ONNX (QDQ or QOperator: QLinearConv,
QGemm, QLinearMatMul), written once, so that cnnhw reproduces such a model's integers bit for bit.

onnxruntime requantizes an int32 accumulator in float32 (MLAS ``MlasRequantizeOutput``):
``y = clamp(nearbyint(float(acc) * scale) + zero_point)``, with ``scale`` the float32
``x_scale * w_scale[c] / y_scale`` (two float32 operations, as its kernels compute it) and
``nearbyint`` rounding half to even. Two roundings: the product to float32's 24 significant bits
(half to even), then to an integer (half to even). In integers, exactly:

* ``scale = m * 2**-exponent`` with ``m`` its 24-bit mantissa (:func:`float32_parts`);
* ``p = |acc| * m`` (exact), rounded half to even to 24 significant bits: at bit ``r1 =
  bit_length(p >> 24)``;
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

from .arith import _numpy_select, _same, _span, channel_picker, per_index, saturate

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


def bit_length(value, bits: int, select: Callable = _numpy_select, keep: Callable = _same):
    """The number of bits of a non-negative ``value`` below ``2**bits``: a binary search by
    selects (NumPy arrays or Amaranth values; ``keep`` as in ``Requantizer.finish``)."""
    length = 0
    step = 1 << max(0, bits - 1).bit_length()
    while step > 1:
        step >>= 1
        big = keep((value >> step) != 0)
        value = keep(select(big, value >> step, value))
        length = length + select(big, step, 0)
    return keep(length + select(value != 0, 1, 0), bits.bit_length())


def round_half_even(value, position, select: Callable = _numpy_select, keep: Callable = _same):
    """A non-negative ``value`` over ``2**position``, rounded half to even (``position`` an int,
    an array, or an unsigned Amaranth value)."""
    quotient = keep(value >> position)
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
        negative = keep(product < 0)
        magnitude = keep(select(negative, -product, product), 2 * MANTISSA_BITS)
        first = bit_length(magnitude >> MANTISSA_BITS, MANTISSA_BITS, select, keep)  # float32 keeps 24 bits
        kept = keep(round_half_even(magnitude, first, select, keep) << first, 2 * MANTISSA_BITS + 1)
        rounded = round_half_even(kept, per_index(self.exponents, at), select, keep)
        return saturate(keep(select(negative, -rounded, rounded) + self.offset), self.lo, self.hi, select)

    def finish_structure(self) -> tuple[list[tuple[int, int]], int]:
        """The exponents' table when they differ by channel, and the first rounding's variable
        shift: five stages across the product, there and back (the second rounding's shift, by a
        per-channel exponent, is priced with them: measured, ``cnnhw.gateware.rescale``)."""
        exponents = self.exponents
        varying = len(set(exponents)) > 1
        tables = [(len(exponents), max(exponents).bit_length())] if varying else []
        return tables, 2 * (MANTISSA_BITS + 1).bit_length()

    def __call__(self, acc: np.ndarray, channel_axis: int = 1) -> np.ndarray:
        at = channel_picker(acc, channel_axis)
        return self.finish(acc.astype(np.int64) * at(self.mantissas), at=at)

    def describe(self) -> str:
        return f"onnxruntime: float32 x m 2^-({_span(self.exponents)}), half even twice, {self.offset:+d}"

    def facts(self) -> dict:
        return {"rule": self.rule, "multipliers": list(self.mantissas), "exponents": list(self.exponents),
                "offset": self.offset, "clamp": [self.lo, self.hi]}
