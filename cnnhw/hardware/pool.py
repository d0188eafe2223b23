"""Pooling: max pooling over whole tiles (TiledMaxPool), and any other pooling, global pooling
included, as SlidingWindow -> PoolReducer (max, or average with its divider's Rescaler)."""

from __future__ import annotations

from amaranth import Module

from ..families import ICE40, DspRule
from ..gateware.memories import add_terms
from ..gateware.pool import PoolReducer, ReducerParameters
from ..gateware.tiled_pool import TileGeometry, TiledMaxPool
from ..gateware.window import SlidingWindow, WindowGeometry
from ..quant.qgraph import QGlobalPool, QPool
from .op import HardwareOp, Stage, chain, element_shape
from .timing import ReducerTiming, TiledPoolTiming, WindowSource


class TiledMaxPoolOp(HardwareOp):
    """Max pooling with stride = kernel, no padding or dilation (``QPool.tiled``): one input
    element per cycle, never waiting; one row of partial maxima instead of a line buffer."""

    def __init__(self, layer: QPool, plan, dsp: DspRule = ICE40.dsp):
        super().__init__(layer, plan, dsp)
        channels, in_h, in_w = layer.in_shape
        self.tiles = TileGeometry(in_h, in_w, channels, layer.kernel)

    @property
    def cycles(self) -> int:
        return self.tiles.cycles_per_image

    def timing(self, upstream):
        return TiledPoolTiming(self.tiles, upstream)

    def memories(self):
        return self.tiles.memories(self.layer.in_format.bits)

    def logic_terms(self):
        return self.tiles.logic_terms(self.layer.in_format.bits)

    def create(self, input_order, first_block: int = 0):
        return PoolStage(self.layer, [TiledMaxPool(self.tiles, element_shape(self.layer.in_format))])


class WindowPoolOp(HardwareOp):
    """Pooling over sliding windows (any kernel, stride, padding, dilation, ceil mode; global
    pooling is one window the size of the input): the window unit emits each channel's window
    as its own group, the reducer takes its maximum or its average.

    Cycles per image: the slowest of the input (one element per cycle), the window unit (one
    element per cycle, waiting at image boundaries without overlap) and the divider's rescaler."""

    windowed = True

    def __init__(self, layer: QPool | QGlobalPool, plan, dsp: DspRule = ICE40.dsp):
        super().__init__(layer, plan, dsp)
        channels, in_h, in_w = layer.in_shape
        _, out_h, out_w = layer.out_shape
        if isinstance(layer, QGlobalPool):
            kernel, stride, dilation, pads, count_pads = (in_h, in_w), (1, 1), (1, 1), (0, 0, 0, 0), False
        else:
            kernel, stride, dilation, pads, count_pads = (layer.kernel, layer.stride, layer.dilation, layer.pads,
                                                          layer.count_include_pad)
        self.geometry = WindowGeometry(in_h, in_w, channels, kernel, stride, dilation, pads, (out_h, out_w),
                                       groups=channels, simd=1, overlap=plan.overlap)
        # An average's running sum: one bit beyond the sum's format (its sign), 32 bits for a max
        # pool (whose reducer keeps no sum).
        sum_bits = layer.sum_format.bits + 1 if layer.sum_format is not None else 32
        self.reducer = ReducerParameters(layer.kind, kernel[0] * kernel[1],
                                         layer.in_format.bits, count_pads, layer.divider, sum_bits, plan.digit_bits,
                                         dsp)

    @property
    def rescales(self) -> bool:  # type: ignore[override]
        return self.reducer.rescaler is not None

    @property
    def cycles(self) -> int:
        channels, in_h, in_w = self.layer.in_shape
        rescale = 0
        if self.reducer.rescaler is not None:
            rescale = self.geometry.out_hw[0] * self.geometry.out_hw[1] * channels * \
                self.reducer.rescaler.cycles_per_value
        return max(channels * in_h * in_w, self.geometry.cycles_per_image + self.boundary_wait(self.geometry.boundary_rows),
                   rescale)

    def timing(self, upstream):
        window = self.geometry.kernel[0] * self.geometry.kernel[1]  # words: one channel's window
        return ReducerTiming(self.reducer.rescaler, WindowSource(self.geometry, upstream, window))

    def memories(self):
        return [self.geometry.line_buffer(self.layer.in_format.bits), *self.reducer.memories()]

    @property
    def dsps(self) -> int:
        return self.reducer.rescaler.dsps if self.reducer.rescaler is not None else 0

    def logic_terms(self):
        return add_terms(self.geometry.logic_terms(self.layer.in_format.bits), self.reducer.logic_terms())

    def create(self, input_order, first_block: int = 0):
        element = element_shape(self.layer.in_format)
        return PoolStage(self.layer, [SlidingWindow(self.geometry, element), PoolReducer(self.reducer, element)])


class PoolStage(Stage):
    def __init__(self, layer, parts):
        super().__init__(layer)
        self.parts = parts

    def elaborate(self, platform):
        m = Module()
        chain(m, self, self.parts)
        return m
