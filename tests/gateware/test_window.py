"""SlidingWindow against the golden window order, on random geometry, gaps and stalls."""

import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from amaranth import signed, unsigned

from cnnhw.gateware.window import SlidingWindow, WindowGeometry
from cnnhw.ir import Pool2d
from tests.gateware.streams import get_n, put_all, run


def expected_words(images: np.ndarray, g: WindowGeometry):
    """(data tuple, inside, beyond) per word, in the documented order, from NumPy indexing;
    positions outside the input hold the geometry's ``pad_value``."""
    words = []
    cg = g.channels // g.groups
    for image in images:  # (H, W, C)
        for r in range(g.out_hw[0]):
            for c in range(g.out_hw[1]):
                for group in range(g.groups):
                    for ky in range(g.kernel[0]):
                        for kx in range(g.kernel[1]):
                            y = r * g.stride[0] - g.pads[0] + ky * g.dilation[0]
                            x = c * g.stride[1] - g.pads[1] + kx * g.dilation[1]
                            inside = 0 <= y < g.height and 0 <= x < g.width
                            beyond = (y >= g.height + g.pads[2] or x >= g.width + g.pads[3]
                                      or y < -g.pads[0] or x < -g.pads[1])
                            for w in range(cg // g.simd):
                                lo = group * cg + w * g.simd
                                lanes = (tuple(int(v) for v in image[y, x, lo:lo + g.simd]) if inside
                                         else (g.pad_value,) * g.simd)
                                words.append((lanes, int(inside), int(beyond)))
    return words


@st.composite
def geometries(draw):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    pads = tuple(draw(st.integers(0, s - 1)) for s in span * 2)
    height, width = draw(st.integers(span[0], 7)), draw(st.integers(span[1], 7))
    groups = draw(st.sampled_from([1, 1, 2]))
    simd = draw(st.sampled_from([1, 1, 2]))
    channels = groups * simd * draw(st.integers(1, 2))
    ceil = draw(st.booleans())
    pool = Pool2d("p", "max", kernel, stride, pads, dilation, ceil_mode=ceil)
    _, out_h, out_w = pool.output_shape((channels, height, width))
    pad_value = draw(st.sampled_from([0, 0, 3]))  # 0, or an input zero point (in both formats' range)
    return WindowGeometry(height, width, channels, kernel, stride, dilation, pads, (out_h, out_w), groups, simd,
                          pad_value=pad_value)


@settings(max_examples=25, deadline=None)
@given(geometries(), st.booleans(), st.integers(0, 2**32 - 1))
def test_window_words_match_numpy(geometry, is_signed, seed):
    rng = random.Random(seed)
    element = signed(5) if is_signed else unsigned(5)
    lo, hi = (-16, 15) if is_signed else (0, 31)
    images = np.random.default_rng(seed).integers(lo, hi + 1, size=(2, geometry.height, geometry.width,
                                                                     geometry.channels))
    expected = expected_words(images, geometry)
    dut = SlidingWindow(geometry, element)
    got = []

    async def producer(ctx):
        await put_all(ctx, dut.i, images.reshape(-1).tolist(), rng, gap=0.3)

    async def consumer(ctx):
        await get_n(ctx, dut.o, len(expected), rng, stall=0.3, out=got, max_cycles=50_000)

    run(dut, producer, consumer)
    decoded = [(tuple(int(v) for v in word.data), int(word.inside), int(word.beyond)) for word in got]
    for index, (want, have) in enumerate(zip(expected, decoded)):
        assert have == want, f"word {index}: expected {want}, got {have} ({geometry})"


def test_latency_from_the_last_needed_element_to_the_first_window_word():
    """``WindowGeometry.LATENCY`` (the latency model's figure) is what the unit takes: the first
    3x3 window needs input row 2 whole; its first word is offered that many cycles after row 2's
    last element is taken."""
    from amaranth import unsigned
    from amaranth.sim import Simulator

    geometry = WindowGeometry(6, 6, 1, (3, 3), out_hw=(4, 4))
    dut = SlidingWindow(geometry, unsigned(8))
    events = {}

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        sent = 0
        for cycle in range(100):
            ctx.set(dut.i.payload, sent)
            _, _, taken, offered = await ctx.tick().sample(dut.i.ready, dut.o.valid)
            if taken:
                if sent == 2 * 6 + 5:
                    events["last needed"] = cycle
                sent += 1
            if offered and "first word" not in events:
                events["first word"] = cycle

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    assert events["first word"] - events["last needed"] == WindowGeometry.LATENCY
