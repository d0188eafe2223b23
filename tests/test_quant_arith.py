"""The one definition of the fixed-point arithmetic, against exact rational arithmetic."""

from fractions import Fraction
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnhw.errors import CnnhwError
from cnnhw.golden.int_ref import apply_int
from cnnhw.quant.arith import AverageDivider, IntFormat, Requantizer, round_real, round_shift, saturate
from cnnhw.quant.qgraph import QDense, QConv
from cnnhw.quant.quantize import accumulator_format


def exact_round(value: Fraction, rounding: str) -> int:
    if rounding == "half_up":
        return math.floor(value + Fraction(1, 2))
    return round(value)  # Python rounds Fractions half to even


@settings(max_examples=2000)
@given(st.integers(-(2**45), 2**45), st.integers(0, 40), st.sampled_from(["half_up", "half_even"]))
def test_round_shift_is_exact_rational_rounding(value, shift, rounding):
    expected = exact_round(Fraction(value, 2**shift), rounding)
    assert int(round_shift(np.int64(value), shift, rounding)) == expected
    assert round_shift(value, shift, rounding) == expected  # plain Python ints follow the same rule


@settings(max_examples=2000)
@given(st.integers(-(2**30), 2**30), st.integers(1, 2**16 - 1), st.integers(0, 30),
       st.sampled_from(["half_up", "half_even"]), st.integers(-200, 0), st.integers(0, 200))
def test_requantizer_is_exact_rational_arithmetic(acc, multiplier, shift, rounding, lo, hi):
    requant = Requantizer((multiplier,), shift, lo, hi, rounding)
    expected = min(max(exact_round(Fraction(acc * multiplier, 2**shift), rounding), lo), hi)
    assert int(requant(np.array([[acc]], dtype=np.int64))[0, 0]) == expected
    assert int(requant.scalar(np.int64(acc), 0)) == expected


@given(st.integers(-(2**30), 2**30), st.integers(1, 2**15), st.integers(1, 2**15), st.integers(0, 24))
def test_leaky_requantizer_uses_the_negative_multiplier_below_zero(acc, positive, negative, shift):
    requant = Requantizer((positive,), shift, -(2**62), 2**62, "half_up", (negative,))
    multiplier = negative if acc < 0 else positive
    assert int(requant.scalar(np.int64(acc), 0)) == exact_round(Fraction(acc * multiplier, 2**shift), "half_up")


def test_rounding_ties():
    ties = np.array([-5, -3, -1, 1, 3, 5], dtype=np.int64)  # x / 2 = -2.5, -1.5, -0.5, 0.5, 1.5, 2.5
    assert round_shift(ties, 1, "half_up").tolist() == [-2, -1, 0, 1, 2, 3]
    assert round_shift(ties, 1, "half_even").tolist() == [-2, -2, 0, 0, 2, 2]
    assert round_real(ties / 2, "half_up").tolist() == [-2, -1, 0, 1, 2, 3]
    assert round_real(ties / 2, "half_even").tolist() == [-2, -2, 0, 0, 2, 2]


@pytest.mark.parametrize("rounding", ["half_up", "half_even"])
def test_the_same_round_shift_builds_hardware_that_agrees(rounding):
    """round_shift on Amaranth values (what the gateware uses) equals round_shift on NumPy."""
    from amaranth import Module, Mux, Signal, signed
    from amaranth.sim import Simulator

    module = Module()
    value = Signal(signed(20))
    shifted = Signal(signed(20))
    clamped = Signal(signed(20))
    module.d.comb += [shifted.eq(round_shift(value, 4, rounding)),
                      clamped.eq(saturate(round_shift(value, 4, rounding), -100, 100, Mux))]
    values = list(range(-600, 600, 7)) + [-(2**19), 2**19 - 1 - 8, 8, -8, 24, -24, 40]
    results = []

    async def bench(ctx):
        for v in values:
            ctx.set(value, v)
            results.append((ctx.get(shifted), ctx.get(clamped)))

    simulator = Simulator(module)
    simulator.add_testbench(bench)
    simulator.run()
    array = np.array(values, dtype=np.int64)
    expected_shift = round_shift(array, 4, rounding)
    expected_clamp = saturate(expected_shift, -100, 100)
    assert [r[0] for r in results] == expected_shift.tolist()
    assert [r[1] for r in results] == expected_clamp.tolist()


def test_int_format_holding_is_minimal():
    assert IntFormat.holding(0, 255) == IntFormat(8, False)
    assert IntFormat.holding(-128, 127) == IntFormat(8, True)
    assert IntFormat.holding(-129, 0) == IntFormat(9, True)
    assert IntFormat.holding(0, 256) == IntFormat(9, False)
    assert (IntFormat(8, True).lo, IntFormat(8, True).hi, IntFormat(4, False).hi) == (-128, 127, 15)


@given(st.floats(1e-3, 2**15), st.integers(4, 20))
def test_multipliers_use_their_bits(ratio, bits):
    if ratio >= 2**bits - 0.5:  # even with shift 0 the multiplier would need bits + 1 bits
        with pytest.raises(CnnhwError, match=f"{bits}-bit multipliers cannot represent that"):
            Requantizer.for_ratios([ratio], bits, -10, 10, "half_up", False)
        return
    requant = Requantizer.for_ratios([ratio, ratio / 3], bits, -10, 10, "half_up", False)
    assert 2 ** (bits - 1) <= requant.multipliers[0] < 2**bits
    assert abs(requant.multipliers[0] / 2**requant.shift - ratio) <= 2.0 ** -requant.shift


def test_power_of_two_multipliers_are_exact():
    requant = Requantizer.for_ratios([2.0**-7, 2.0**-3, 1.0], 16, 0, 255, "half_up", True)
    assert [m / 2**requant.shift for m in requant.multipliers] == [2.0**-7, 2.0**-3, 1.0]


def test_average_divider_on_every_count():
    divider = AverageDivider.for_counts(9, "half_up")
    sums = np.arange(-300, 300, dtype=np.int64)
    for count in range(1, 10):
        got = divider(sums, np.full(sums.shape, count))
        # The rule is round(sum * round(2^16 / count) / 2^16); within half a step of the true mean.
        assert np.max(np.abs(got - sums / count)) <= 0.5 + 300 * 2.0**-16


@st.composite
def integer_layers(draw):
    signed_input = draw(st.booleans())
    in_bits = draw(st.integers(2, 8))
    weight_bits = draw(st.integers(2, 8))
    limit = 2 ** (weight_bits - 1) - 1
    outputs, fan_in = draw(st.integers(1, 4)), draw(st.integers(1, 40))
    weights = draw(st.lists(st.integers(-limit, limit), min_size=outputs * fan_in, max_size=outputs * fan_in))
    bias = draw(st.lists(st.integers(-(2**20), 2**20), min_size=outputs, max_size=outputs))
    return (IntFormat(in_bits, signed_input), np.array(weights, np.int64).reshape(outputs, fan_in),
            np.array(bias, np.int64))


@settings(max_examples=300, deadline=None)
@given(integer_layers(), st.integers(0, 2**32 - 1))
def test_accumulators_never_overflow_and_the_bound_is_reached(layer, seed):
    in_format, weight, bias = layer
    acc_format = accumulator_format(weight, bias, in_format, "test")
    requant = Requantizer((1,) * len(bias), 0, -(2**62), 2**62)
    dense = QDense("d", "d", (weight.shape[1],), (weight.shape[0],), in_format, IntFormat(64, True), 1.0, 1.0,
                   weight=weight, bias=bias, weight_format=IntFormat(8, True), acc_format=acc_format, requant=requant)
    rng = np.random.default_rng(seed)
    # Worst cases: per output channel, x = hi where w > 0 and lo where w < 0 (and the reverse).
    largest = np.where(weight > 0, in_format.hi, in_format.lo)
    smallest = np.where(weight > 0, in_format.lo, in_format.hi)
    random = rng.integers(in_format.lo, in_format.hi + 1, size=(50, weight.shape[1]))
    x = np.concatenate([largest, smallest, random])
    acc = apply_int(dense, x)  # raises AccumulatorOverflow if any accumulator leaves acc_format
    reached = [acc[c, c] for c in range(len(bias))] + [acc[len(bias) + c, c] for c in range(len(bias))]
    assert max(reached) > acc_format.hi // 2 or min(reached) < acc_format.lo // 2 or acc_format.bits <= 2


def test_conv_accumulator_worst_case_patch():
    weight = np.array([[[[3, -2, 1], [0, -1, 2], [1, 1, -3]]]], dtype=np.int64)
    in_format = IntFormat(8, False)
    acc_format = accumulator_format(weight, np.array([5]), in_format, "conv")
    conv = QConv("c", "c", (1, 3, 3), (1, 1, 1), in_format, IntFormat(64, True), 1.0, 1.0, weight=weight,
                 bias=np.array([5]), weight_format=IntFormat(4, True), acc_format=acc_format,
                 requant=Requantizer((1,), 0, -(2**62), 2**62))
    patch = np.where(weight[0] > 0, 255, 0)[None]  # (1, 1, 3, 3): the largest possible accumulator
    assert int(apply_int(conv, patch).ravel()[0]) == 255 * (3 + 1 + 2 + 1 + 1) + 5
    assert acc_format.hi >= 255 * 8 + 5 > acc_format.hi // 2
