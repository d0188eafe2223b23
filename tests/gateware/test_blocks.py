"""Blocks that whole networks use, each on its own against NumPy, with random input gaps and
output stalls, and the stream rule checked on every port (``StreamMonitor``): the matrix-vector
unit with several folds and groups, the requantizer's lanes, the pool reducer, the packer, a
lookup table, the argmax and the register FIFO."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth import signed, unsigned

from cnnhw.families import ECP5
from cnnhw.gateware.fifo import RegisterFIFO
from cnnhw.gateware.mvu import MatrixParameters, MatrixVectorUnit, WeightHome
from cnnhw.gateware.pool import PoolReducer, ReducerParameters
from cnnhw.gateware.requant import RequantUnit
from cnnhw.gateware.rescale import RescalerParameters
from cnnhw.gateware.small import Argmax, Lookup, Packer
from cnnhw.quant.arith import AverageDivider, IntFormat, LookupTable, Requantizer
from tests.gateware.streams import get_n, put_all, run, run_monitored


def _stream_through(dut, payloads, count: int, seed, max_cycles: int = 20_000) -> list:
    """``payloads`` into ``dut.i`` with random gaps, ``count`` outputs out of ``dut.o`` with random
    stalls, both ports under the stream monitor."""
    got = []
    chooser = random.Random(seed)

    async def producer(ctx):
        await put_all(ctx, dut.i, payloads, chooser, 0.3)

    async def consumer(ctx):
        await get_n(ctx, dut.o, count, chooser, 0.3, got, max_cycles)

    run_monitored(dut, [("i", dut.i), ("o", dut.o)], [producer, consumer])
    return got


@pytest.mark.parametrize("groups, outputs, inputs, pe, simd, signed_input, constants", [
    (1, 6, 12, 2, 3, False, {}),  # three folds: the ping-pong window buffer
    (2, 4, 9, 1, 3, True, {}),  # two groups of four folds each
    (1, 5, 8, 5, 2, True, {}),  # one fold: words straight from the stream
    (3, 2, 4, 2, 4, False, {}),  # depthwise-like: one word per group
    (1, 40, 4, 1, 4, True, {}),  # 40 banks: the bias table is a ROM
    (1, 40, 4, 1, 4, True, {"biases_in_logic": True, "home": WeightHome.LOGIC}),  # both kept in LUTs
    # ECP5: weights, operands and products registered (two more stages under the global stall)
    (1, 6, 12, 2, 3, False, {"dsp": ECP5.dsp}),
    (1, 5, 8, 5, 2, True, {"dsp": ECP5.dsp}),
    (1, 40, 4, 1, 4, True, {"dsp": ECP5.dsp}),
    (2, 4, 9, 1, 3, True, {"dsp": ECP5.dsp, "logic_products": True}),
    # diagonal (depthwise, 4 channels per group): lane p of each word times channel p's weight only
    (3, 4, 36, 4, 4, True, {"diagonal": True}),
    (2, 4, 12, 4, 4, False, {"diagonal": True, "packed": True}),
    (3, 4, 36, 4, 4, True, {"diagonal": True, "dsp": ECP5.dsp}),
])
def test_matrix_vector_unit_computes_every_fold(groups, outputs, inputs, pe, simd, signed_input, constants):
    rng = np.random.default_rng(groups * 100 + outputs * 10 + inputs)
    weights = rng.integers(-127, 128, size=(groups, outputs, inputs))
    bias = rng.integers(-5000, 5000, size=groups * outputs)
    lo, hi = (-128, 127) if signed_input else (0, 255)
    windows = rng.integers(lo, hi + 1, size=(3, groups, inputs))
    parameters = MatrixParameters(groups, outputs, inputs, pe, simd, 8, signed_input, 8, 28, **constants)
    assert parameters.biases_in_memory == (groups * outputs // pe > 32 and not constants.get("biases_in_logic"))
    dut = MatrixVectorUnit(parameters, weights, bias)
    if parameters.diagonal:
        # The unit is given the whole matrix and must read the diagonal lanes only.
        weights = weights * (np.arange(outputs)[:, None] == np.arange(inputs)[None, :] % simd)
    words = [[int(v) for v in window[g, k * simd:(k + 1) * simd]]
             for window in windows for g in range(groups) for k in range(inputs // simd)]
    expected = []
    for window in windows:
        for g in range(groups):
            for fold in range(outputs // pe):
                channels = range(fold * pe, (fold + 1) * pe)
                expected.append([int(weights[g, c] @ window[g] + bias[g * outputs + c]) for c in channels])
    got = _stream_through(dut, words, len(expected), 7, 20_000)
    assert [[int(v) for v in word] for word in got] == expected


@pytest.mark.parametrize("pe, digit_bits", [(1, 16), (3, 4), (5, 1)])
def test_requant_unit_serialises_lanes_in_channel_order(pe, digit_bits):
    rng = np.random.default_rng(pe)
    channels = pe * 2
    requant = Requantizer(tuple(int(m) for m in rng.integers(1000, 60000, size=channels)), 20, -128, 127)
    dut = RequantUnit(requant, RescalerParameters.for_rule(requant, 24, digit_bits, out_bits=8), pe, signed(8))
    accumulators = rng.integers(-(2**23), 2**23, size=(4, channels))
    words = [[int(v) for v in row[fold * pe:(fold + 1) * pe]] for row in accumulators for fold in range(2)]
    expected = [int(requant.scalar(np.int64(v), c)) for row in accumulators for c, v in enumerate(row)]
    got = _stream_through(dut, words, len(expected), pe, 20_000)
    assert [int(v) for v in got] == expected


@pytest.mark.parametrize("kind, count_include_pad", [("max", False), ("avg", False), ("avg", True)])
def test_pool_reducer_matches_numpy(kind, count_include_pad):
    rng = np.random.default_rng(3)
    window = 6
    divider = AverageDivider.for_counts(window, "half_up") if kind == "avg" else None
    parameters = ReducerParameters(kind, window, 8, count_include_pad, divider, 12, 4)
    dut = PoolReducer(parameters, signed(8))
    values = rng.integers(-128, 128, size=(5, window))
    inside = rng.random(size=(5, window)) < 0.7
    inside[:, 0] = True  # every window holds one input position at least
    beyond = ~inside & (rng.random(size=(5, window)) < 0.5)
    words = [{"data": [int(v) if i else 0], "inside": int(i), "beyond": int(b)}
             for row_v, row_i, row_b in zip(values, inside, beyond) for v, i, b in zip(row_v, row_i, row_b)]
    expected = []
    for row_v, row_i, row_b in zip(values, inside, beyond):
        if kind == "max":
            expected.append(int(row_v[row_i].max()))
        else:
            counted = row_i | (~row_b if count_include_pad else False)
            total = int(np.where(row_i, row_v, 0).sum())
            expected.append(int(divider(np.array([total]), np.array([int(counted.sum())]))[0]))
    got = _stream_through(dut, words, len(expected), kind == "avg", 20_000)
    assert [int(v) for v in got] == expected


@pytest.mark.parametrize("simd", [1, 3, 4])
def test_packer_gathers_words_in_lane_order(simd):
    dut = Packer(unsigned(8), simd)
    elements = list(range(7, 7 + simd * 5))
    got = _stream_through(dut, elements, 5, simd, 5_000)
    assert [[int(v) for v in word] for word in got] == [elements[k:k + simd] for k in range(0, len(elements), simd)]


@pytest.mark.parametrize("in_format, out_format", [(IntFormat(8, True), IntFormat(8, False)),
                                                   (IntFormat(4, False), IntFormat(6, True))])
def test_lookup_gives_each_elements_entry(in_format, out_format):
    rng = np.random.default_rng(in_format.bits)
    entries = tuple(int(v) for v in rng.integers(out_format.lo, out_format.hi + 1, size=1 << in_format.bits))
    table = LookupTable(in_format, entries)
    dut = Lookup(table, signed(out_format.bits) if out_format.signed else unsigned(out_format.bits))
    elements = [int(v) for v in rng.integers(in_format.lo, in_format.hi + 1, size=60)] + [in_format.lo, in_format.hi]
    got = _stream_through(dut, elements, len(elements), in_format.bits)
    assert [int(v) for v in got] == [int(v) for v in table(np.array(elements))]


def test_argmax_takes_the_first_of_equal_logits():
    classes = 4
    dut = Argmax(signed(16), classes)
    logits = [[3, 9, 9, 1], [-5, -7, -5, -9], [0, 0, 0, 0], [-1, 2, 30000, 5]]
    got_logits, got_classes = [], []
    chooser = random.Random(1)

    async def producer(ctx):
        await put_all(ctx, dut.i, [v for row in logits for v in row], chooser, 0.3)

    async def logit_reader(ctx):
        await get_n(ctx, dut.o, 16, chooser, 0.3, got_logits, 5_000)

    async def class_reader(ctx):
        await get_n(ctx, dut.cls, 4, chooser, 0.5, got_classes, 5_000)

    run_monitored(dut, [("i", dut.i), ("o", dut.o), ("cls", dut.cls)], [producer, logit_reader, class_reader])
    assert [int(v) for v in got_logits] == [v for row in logits for v in row]
    assert [int(c) for c in got_classes] == [int(np.argmax(row)) for row in logits]


def test_register_fifo_keeps_order_and_never_drops():
    dut = RegisterFIFO(8, 3)
    values = list(range(40))
    got = []
    rng = random.Random(5)

    async def writer(ctx):
        for value in values:
            while rng.random() < 0.3:
                ctx.set(dut.w_en, 0)
                await ctx.tick()
            ctx.set(dut.w_en, 1)
            ctx.set(dut.w_data, value)
            await ctx.tick().until(dut.w_rdy)
        ctx.set(dut.w_en, 0)

    async def reader(ctx):
        for _ in range(2_000):
            if len(got) == len(values):
                break
            take = rng.random() >= 0.4
            ctx.set(dut.r_en, take)
            _, _, data, ready, level = await ctx.tick().sample(dut.r_data, dut.r_rdy, dut.level)
            assert level <= 3
            if take and ready:
                got.append(int(data))
        ctx.set(dut.r_en, 0)

    run(dut, writer, reader)
    assert got == values


def test_the_stream_monitor_catches_a_stream_that_breaks_the_rule():
    """A source that offers a new payload every cycle whether or not the last was taken."""
    from amaranth import Module, Signal
    from amaranth.lib import stream, wiring
    from amaranth.lib.wiring import Out

    class Careless(wiring.Component):
        def __init__(self):
            super().__init__({"o": Out(stream.Signature(8))})

        def elaborate(self, platform):
            m = Module()
            count = Signal(8)
            m.d.sync += count.eq(count + 1)
            m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(count)]
            return m

    dut = Careless()
    got = []
    chooser = random.Random(2)

    async def consumer(ctx):
        await get_n(ctx, dut.o, 20, chooser, 0.5, got, 1_000)

    with pytest.raises(AssertionError, match="o: the payload changed before the transfer"):
        run_monitored(dut, [("o", dut.o)], [consumer])
