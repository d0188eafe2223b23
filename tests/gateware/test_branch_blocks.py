"""The blocks where branches leave and meet, each on its own in Amaranth's simulator with random
gaps and stalls and the stream rule checked on every port: the fork, the FIFO (registers and
memory), and the joins (Add, Concat) against the requantization rule."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from amaranth import Signal, signed, unsigned

from cnnhw.gateware.branches import (TREE_LEVELS_PER_STAGE, AddUnit, ConcatUnit, Fork, StreamFIFO, signed_digits,
                                     times_constant)
from cnnhw.gateware.wires import PipelineStages
from cnnhw.quant.arith import Requantizer
from cnnhw.quant.tflite_arith import TFLiteAdd
from tests.gateware.streams import get_n, put_all, run, run_monitored


@pytest.mark.parametrize("outputs", [2, 3])
def test_fork_gives_every_output_every_element(outputs):
    dut = Fork(unsigned(8), outputs)
    elements = list(range(40, 90))
    chooser = random.Random(outputs)
    got = [[] for _ in range(outputs)]

    async def producer(ctx):
        await put_all(ctx, dut.i, elements, chooser, 0.3)

    def consumer(k):
        async def bench(ctx):
            await get_n(ctx, getattr(dut, f"o{k}"), len(elements), chooser, 0.2 + 0.2 * k, got[k], 10_000)
        return bench

    run_monitored(dut, [("i", dut.i)] + [(f"o{k}", getattr(dut, f"o{k}")) for k in range(outputs)],
               [producer] + [consumer(k) for k in range(outputs)])
    assert all([int(v) for v in values] == elements for values in got)


@pytest.mark.parametrize("depth", [1, 3, 4, 5, 37])
def test_fifo_keeps_order_with_gaps_and_stalls(depth):
    dut = StreamFIFO(signed(9), depth)
    elements = [int(v) for v in np.random.default_rng(depth).integers(-256, 256, size=120)]
    got = []
    chooser = random.Random(depth)

    async def producer(ctx):
        await put_all(ctx, dut.i, elements, chooser, 0.2)

    async def consumer(ctx):
        await get_n(ctx, dut.o, len(elements), chooser, 0.5, got, 10_000)

    run_monitored(dut, [("i", dut.i), ("o", dut.o)], [producer, consumer])
    assert [int(v) for v in got] == elements


@pytest.mark.parametrize("depth", [3, 9])
def test_fifo_latency_and_depth_are_what_it_says(depth):
    """An element taken at cycle t is offered at t + latency; with the output stalled, exactly
    ``depth`` elements are taken."""
    dut = StreamFIFO(unsigned(8), depth)
    seen = {}

    async def bench(ctx):
        ctx.set(dut.o.ready, 0)
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, 7)
        taken = 0
        for cycle in range(depth + 6):
            _, _, ready, valid = await ctx.tick().sample(dut.i.ready, dut.o.valid)
            taken += int(ready)
            if valid and "first_valid" not in seen:
                seen["first_valid"] = cycle
        seen["taken"] = taken

    run(dut, bench)
    assert seen["taken"] == depth
    assert seen["first_valid"] == dut.latency  # taken at cycle 0, sampled at the end of each cycle


def _join_requant(multipliers, shift=9, lo=-128, hi=127):
    return Requantizer(tuple(multipliers), shift, lo, hi)


@given(st.integers(0, 1 << 40))
def test_signed_digits_are_the_non_adjacent_form(constant):
    digits = signed_digits(constant)
    assert sum(sign << bit for bit, sign in digits) == constant
    assert all(sign in (1, -1) for _, sign in digits)
    bits = [bit for bit, _ in digits]
    assert all(b - a >= 2 for a, b in zip(bits, bits[1:]))  # never two adjacent non-zero digits
    assert len(digits) <= bin(constant).count("1")


@given(st.integers(0, 1 << 40), st.lists(st.integers(-(1 << 30), 1 << 30), min_size=1, max_size=5))
def test_a_staged_product_of_a_constant_is_the_product(constant, values):
    """The balanced tree of signed digits sums to the product whatever the digits' signs (its
    registers as plain values), with a register after every ``TREE_LEVELS_PER_STAGE`` of its
    ``ceil(log2(digits))`` levels below the root, and as many more as asked for (``stages``)."""
    x = np.array(values, dtype=object)
    plain = times_constant(x, constant, stage=True, keep=lambda value, stage=False: value)
    assert list(plain) == [v * constant for v in values]
    levels = (len(signed_digits(constant)) - 1).bit_length()
    for padded in (None, max(levels - 1, 0) // TREE_LEVELS_PER_STAGE + 2):
        stages = PipelineStages()
        times_constant(Signal(signed(32)), constant, stage=True, keep=stages.keep, stages=padded)
        assert stages.depth == (padded or max(levels - 1, 0) // TREE_LEVELS_PER_STAGE)


def test_a_pipeline_refuses_a_value_that_mixes_register_depths():
    """Two registers of different depths hold parts of different elements: never combined."""
    stages = PipelineStages()
    operand = Signal(8)
    later = stages.keep(operand + 1, stage=True)
    with pytest.raises(ValueError, match=r"depths \[0, 1\]"):
        stages.keep(operand + later)


def _add_outputs(dut, a, b, seed: int) -> list[int]:
    """What an AddUnit gives for the input streams ``a`` and ``b``, with random gaps and stalls
    and the stream rule checked on every port."""
    got = []
    chooser = random.Random(seed)

    async def first(ctx):
        await put_all(ctx, dut.i0, a, chooser, 0.3)

    async def second(ctx):
        await put_all(ctx, dut.i1, b, chooser, 0.5)

    async def consumer(ctx):
        await get_n(ctx, dut.o, len(a), chooser, 0.3, got, 10_000)

    run_monitored(dut, [("i0", dut.i0), ("i1", dut.i1), ("o", dut.o)], [first, second, consumer])
    return [int(v) for v in got]


# 32767 is 2**15 - 1: its highest digit is one bit above the multiplier's width.
@pytest.mark.parametrize("multipliers, shift", [((700, 301), 9), ((32767, 1), 15)])
def test_add_unit_computes_the_requantized_sum(multipliers, shift):
    requant = _join_requant(multipliers, shift, lo=0, hi=255)
    dut = AddUnit([signed(8), unsigned(8)], unsigned(8), requant)
    rng = np.random.default_rng(1)
    a = [int(v) for v in rng.integers(-128, 128, size=80)]
    b = [int(v) for v in rng.integers(0, 256, size=80)]
    expected = requant.finish(np.array(a) * multipliers[0] + np.array(b) * multipliers[1])
    assert _add_outputs(dut, a, b, seed=2) == [int(v) for v in expected]


@pytest.mark.parametrize("scales, zeros, unsigned_inputs", [((0.05, 0.011), (-3, 17), False),
                                                           ((0.02, 0.02), (-128, 100), False),
                                                           ((0.1, 0.37), (128, 120), True)])
def test_add_unit_computes_tflites_add(scales, zeros, unsigned_inputs):
    """TFLite's ADD of two inputs of different scales and zero points (int8, or uint8), a fused
    ReLU's clamp and the output zero point: exactly ``TFLiteAdd``, every input pair's corner
    included."""
    lo, hi, shape = (0, 255, unsigned(8)) if unsigned_inputs else (-128, 127, signed(8))
    rule = TFLiteAdd.for_scales(scales, zeros, 0.09, lo + 5, lo + 5, hi)
    dut = AddUnit([shape, shape], shape, rule)
    rng = np.random.default_rng(7)
    a = [lo, hi, lo, hi] + [int(v) for v in rng.integers(lo, hi + 1, size=60)]
    b = [lo, hi, hi, lo] + [int(v) for v in rng.integers(lo, hi + 1, size=60)]
    assert _add_outputs(dut, a, b, seed=8) == [int(v) for v in rule.sum_of([np.array(a), np.array(b)])]


def test_concat_unit_interleaves_each_pixels_channels():
    channels = (2, 3, 1)
    requant = _join_requant([512, 1000, 333])
    dut = ConcatUnit([signed(8), unsigned(8), signed(6)], signed(8), requant, channels)
    rng = np.random.default_rng(3)
    pixels = 12
    streams = [[int(v) for v in rng.integers(lo, hi, size=pixels * c)]
               for (lo, hi), c in zip([(-128, 128), (0, 256), (-32, 32)], channels)]
    got = []
    chooser = random.Random(4)

    def producer(k):
        async def bench(ctx):
            await put_all(ctx, getattr(dut, f"i{k}"), streams[k], chooser, 0.4)
        return bench

    async def consumer(ctx):
        await get_n(ctx, dut.o, pixels * sum(channels), chooser, 0.3, got, 10_000)

    run_monitored(dut, [(f"i{k}", getattr(dut, f"i{k}")) for k in range(3)] + [("o", dut.o)],
               [producer(k) for k in range(3)] + [consumer])
    expected = []
    for p in range(pixels):
        for k, c in enumerate(channels):
            expected += [int(requant.finish(np.int64(v) * requant.multipliers[k]))
                         for v in streams[k][p * c:(p + 1) * c]]
    assert [int(v) for v in got] == expected
