"""Rescaler (requantization and average division) against cnnhw.quant.arith and TFLite's rules
(cnnhw.quant.tflite_arith), every digit width, multiplier tables in logic and in a ROM."""

import random

import numpy as np
import pytest
from amaranth import signed, unsigned
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnhw.families import ECP5, ICE40
from cnnhw.gateware.rescale import TABLE_IN_LOGIC_MAX, Rescaler, RescalerParameters
from cnnhw.hardware.timing import NEVER, PipelinedRescalerTiming
from cnnhw.quant.arith import AverageDivider, Requantizer
from cnnhw.quant.onnx_arith import OnnxRequantizer
from cnnhw.quant.tflite_arith import TFLiteAverage, TFLiteRequantizer
from tests.gateware.streams import get_n, put_all, run


def _rescaler(rule, value, out, digit_bits, dsp=ICE40.dsp) -> Rescaler:
    """The Rescaler of ``rule`` as a stage builds it: from the rule's own parameters."""
    return Rescaler(RescalerParameters.for_rule(rule, value.width, digit_bits, dsp, out.width), rule, value, out)


def _rescale(dut, values, indices, seed):
    """What the Rescaler gives for these values and indices, with random gaps and stalls."""
    got = []
    chooser = random.Random(seed)

    async def producer(ctx):
        await put_all(ctx, dut.i, [{"value": int(v), "index": int(c)} for v, c in zip(values, indices)], chooser, 0.3)

    async def consumer(ctx):
        await get_n(ctx, dut.o, len(values), chooser, 0.3, got, 20_000)

    run(dut, producer, consumer)
    return [int(v) for v in got]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 2**16 - 1), min_size=1, max_size=4)  # a table in logic
       | st.lists(st.integers(1, 2**16 - 1), min_size=TABLE_IN_LOGIC_MAX + 1, max_size=40),  # a ROM
       st.integers(0, 24),
       st.sampled_from(["half_up", "half_even"]), st.sampled_from([1, 3, 4, 8, 16, 32]), st.booleans(),
       st.integers(0, 2**32 - 1))
def test_rescaler_matches_the_requantizer(multipliers, shift, rounding, digit_bits, leaky, seed):
    rng = np.random.default_rng(seed)
    negatives = tuple(int(m) // 8 for m in multipliers) if leaky else None
    requant = Requantizer(tuple(multipliers), shift, -100, 27000, rounding, negatives)
    dut = _rescaler(requant, signed(20), signed(16), digit_bits)
    values = rng.integers(-(2**19), 2**19, size=24)
    indices = rng.integers(0, len(multipliers), size=24)
    values[:2] = [-(2**19), 2**19 - 1]  # the extremes of the input format
    expected = [int(requant.scalar(np.int64(v), int(c))) for v, c in zip(values, indices)]
    assert _rescale(dut, values, indices, seed) == expected


def test_rescaler_divides_averages_as_the_golden_model():
    divider = AverageDivider.for_counts(9, "half_up")
    dut = _rescaler(divider, signed(14), unsigned(8), 4)
    cases = [(s, c) for c in range(1, 10) for s in (0, 1, c // 2, c * 255 - 1, c * 128 + c // 2)]
    expected = [int(divider(np.array([s]), np.array([c]))[0]) for s, c in cases]
    assert _rescale(dut, [s for s, _ in cases], [c for _, c in cases], 3) == expected


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4) | st.integers(TABLE_IN_LOGIC_MAX + 1, 40), st.booleans(), st.booleans(),
       st.sampled_from([4, 8, 32]), st.sampled_from([ICE40.dsp, ECP5.dsp]), st.integers(0, 2**32 - 1))
def test_rescaler_computes_tflites_requantization(channels, per_channel_shifts, single_rounding, digit_bits, dsp,
                                                  seed):
    """Per-channel (or shared) multipliers and shifts, a left shift among them, two roundings or
    one, an output zero point and a fused activation's clamp: exactly ``TFLiteRequantizer`` (on
    ECP5 a whole multiply is partial products, added a cycle later)."""
    rng = np.random.default_rng(seed)
    multipliers = tuple(int(m) for m in rng.integers(1 << 30, 1 << 31, size=channels))
    shifts = tuple(int(s) for s in (rng.integers(-12, 2, size=channels) if per_channel_shifts
                                    else np.full(channels, rng.integers(-12, 2))))
    requant = TFLiteRequantizer(multipliers, shifts, int(rng.integers(-128, 128)), -128, int(rng.integers(0, 128)),
                                single_rounding)
    dut = _rescaler(requant, signed(24), signed(8), digit_bits, dsp)
    values = rng.integers(-(2**23), 2**23, size=30)
    values[:4] = [-(2**23), 2**23 - 1, 0, -1]
    indices = rng.integers(0, channels, size=30)
    every_channel = requant(np.repeat(values[:, None], channels, axis=1), channel_axis=1)
    expected = [int(every_channel[n, c]) for n, c in enumerate(indices)]
    assert _rescale(dut, values, indices, seed) == expected


@pytest.mark.parametrize("counts", [(9,), (4, 6, 9), (125,)])
def test_rescaler_divides_as_tflites_average(counts):
    """Window sums over the whole int8 range, rounded half away from zero, for one window count
    (constant tables) and for several (the borders of a padded pool)."""
    divider = TFLiteAverage.for_windows(-128, 127, counts, -128, 127)
    dut = _rescaler(divider, signed(16), signed(8), 8)
    cases = [(s, c) for c in counts for s in (0, 1, -1, c // 2, -(c // 2), c // 2 + 1, -(c // 2) - 1, c * 127,
                                               c * -128, c * 5 + c // 2, -(c * 5 + c // 2))]
    expected = [int(divider(np.array([s]), np.array([c]))[0]) for s, c in cases]
    assert _rescale(dut, [s for s, _ in cases], [c for _, c in cases], 5) == expected


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 4), st.booleans(), st.sampled_from([4, 24]), st.integers(0, 2**32 - 1))
def test_rescaler_computes_onnxruntimes_float32_requantization(channels, per_channel, digit_bits, seed):
    """Per-channel (or shared) float32 scales, accumulators over the whole range float32 holds
    exactly (the extremes included), a zero point and the clamp: exactly ``OnnxRequantizer``."""
    rng = np.random.default_rng(seed)
    scales = rng.uniform(1e-5, 0.05, size=channels if per_channel else 1)
    requant = OnnxRequantizer.for_scales(1.0, np.resize(scales, channels), 1.0, int(rng.integers(-128, 128)), -128, 127)
    dut = _rescaler(requant, signed(25), signed(8), digit_bits)
    indices = rng.integers(0, channels, size=40)
    # Most near a half step of the output (where the two roundings matter), the rest anywhere.
    halves = (rng.integers(-140, 140, size=40) + 0.5) / np.resize(scales, channels)[indices]
    values = np.where(np.arange(40) < 30, np.round(halves) + rng.integers(-1, 2, size=40),
                      rng.integers(-(2**24) + 1, 2**24, size=40)).astype(np.int64)
    values[:4] = [-(2**24) + 1, 2**24 - 1, 0, -1]
    every_channel = requant(np.repeat(values[:, None], channels, axis=1), channel_axis=1)
    expected = [int(every_channel[n, c]) for n, c in enumerate(indices)]
    assert _rescale(dut, values, indices, seed) == expected


@pytest.mark.parametrize("channels, single_rounding, dsp", [
    (4, True, ICE40.dsp), (TABLE_IN_LOGIC_MAX + 3, False, ICE40.dsp),
    (4, True, ECP5.dsp), (TABLE_IN_LOGIC_MAX + 3, False, ECP5.dsp),  # partial products registered, then added
])
def test_a_pipelined_rescaler_takes_a_value_per_cycle_as_its_timing_model_says(channels, single_rounding, dsp):
    """A whole multiply per value (a pipeline, multipliers in logic and in a ROM): the input offered
    in every cycle, the consumer ready at random. Every take and every hand-over happens in the
    cycle ``PipelinedRescalerTiming`` gives, the results are TFLite's, and while the consumer is
    always ready a value goes in every cycle."""
    rng = np.random.default_rng(channels)
    multipliers = tuple(int(m) for m in rng.integers(1 << 30, 1 << 31, size=channels))
    shifts = tuple(int(s) for s in rng.integers(-12, 2, size=channels))
    requant = TFLiteRequantizer(multipliers, shifts, 3, -128, 127, single_rounding)
    dut = _rescaler(requant, signed(24), signed(8), 32, dsp)
    assert dut.parameters.pipelined and dut.parameters.cycles_per_value == 1
    assert len(dut.parameters.product_pieces) == (4 if dsp.registered_products else 0)  # 25 x 31 bits
    values = rng.integers(-(2**23), 2**23, size=60)
    indices = rng.integers(0, channels, size=60)
    ready = [True] * 30 + [bool(r) for r in rng.random(400) < 0.4]  # keeping up, then a slow consumer
    takes, transfers, got = [], [], []

    async def bench(ctx):
        sent = 0
        for cycle, consumer_ready in enumerate(ready):
            if sent < len(values):
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, {"value": int(values[sent]), "index": int(indices[sent])})
            else:
                ctx.set(dut.i.valid, 0)
            ctx.set(dut.o.ready, consumer_ready)
            _, _, i_ready, o_valid, payload = await ctx.tick().sample(dut.i.ready, dut.o.valid, dut.o.payload)
            if sent < len(values) and i_ready:
                takes.append(cycle)
                sent += 1
            if o_valid and consumer_ready:
                transfers.append(cycle)
                got.append(int(payload))

    run(dut, bench)
    every_channel = requant(np.repeat(values[:, None], channels, axis=1), channel_axis=1)
    expected = [int(every_channel[n, c]) for n, c in enumerate(indices)]
    assert got == expected[:len(got)] and len(got) > 40
    model = PipelinedRescalerTiming(dut.parameters.latency, dut.parameters.queue_entries)
    stalls = [(cycle, cycle + 1) for cycle, r in enumerate(ready) if not r]
    predicted_takes, predicted_transfers = [], []
    for _ in got:
        taken = model.earliest_take(predicted_takes[-1] + 1 if predicted_takes else 0)
        predicted_takes.append(taken)
        predicted_transfers.append(model.result(taken, NEVER, stalls))
    assert takes[:len(got)] == predicted_takes
    assert transfers == predicted_transfers
    assert takes[:20] == list(range(20))
