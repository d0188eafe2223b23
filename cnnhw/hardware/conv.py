"""Convolution: SlidingWindow -> MatrixVectorUnit -> RequantUnit (plain, grouped, depthwise)."""

from __future__ import annotations

import math

import numpy as np
from amaranth import Module
from amaranth.lib import wiring

from ..families import ICE40, DspRule
from ..gateware.memories import add_terms
from ..gateware.window import SlidingWindow, WindowGeometry
from ..quant.qgraph import QConv
from .matrix import MatrixOp, MatrixStage
from .op import element_shape
from .timing import WindowSource


class ConvOp(MatrixOp):
    """``pe`` output channels of a group in parallel, ``simd`` channels of a window position per
    product word; the window unit emits each output pixel's window (group by group), the MVU
    folds it over the group's channels, the requantizer serialises the ``pe`` accumulators.

    A depthwise convolution (one output channel per input channel) takes ``pe`` channels in
    parallel instead, one product each per cycle (``simd`` is 1): the window unit emits words of
    ``pe`` channels, ``channels / pe`` groups of them per window, and a diagonal MVU
    (``MatrixParameters.diagonal``) multiplies lane ``p`` of each word by channel ``p``'s weight.

    Cycles per image: the slowest of its parts: the input (one element per cycle), the window
    unit and the MVU (one word per cycle; both also wait at image boundaries without overlap,
    ``HardwareOp.boundary_wait``) and the rescaler (``cycles_per_value`` per output)."""

    windowed = True

    def __init__(self, layer: QConv, plan, dsp: DspRule = ICE40.dsp):
        super().__init__(layer, plan, dsp)
        in_c, in_h, in_w = layer.in_shape
        out_c, out_h, out_w = layer.out_shape
        groups, simd = (in_c // plan.pe, plan.pe) if self.depthwise else (layer.groups, plan.simd)
        self.geometry = WindowGeometry(in_h, in_w, in_c, layer.kernel, layer.stride, layer.dilation, layer.pads,
                                       (out_h, out_w), groups, simd, plan.overlap, layer.pad_value)
        inputs = math.prod(layer.weight.shape[1:]) * (plan.pe if self.depthwise else 1)
        self.matrix = self.matrix_parameters(groups, out_c // groups, inputs, simd, self.depthwise)

    @property
    def depthwise(self) -> bool:
        """One output channel per input channel, each its own group (PE over channels, ``simd`` 1)."""
        layer = self.layer
        return 1 < layer.groups == layer.in_shape[0] == layer.out_shape[0]

    def folding_limits(self):
        if self.depthwise:
            return self.layer.groups, 1
        return self.layer.weight.shape[0] // self.layer.groups, self.layer.weight.shape[1]

    @property
    def pixels(self) -> int:
        return self.layer.out_shape[1] * self.layer.out_shape[2]

    @property
    def cycles(self) -> int:
        in_c, in_h, in_w = self.layer.in_shape
        wait = self.boundary_wait(self.geometry.boundary_rows)
        # The MVU waits only for what its buffered windows do not cover (``window_lead``).
        mvu_wait = max(0, wait + WindowGeometry.LATENCY - self.matrix.window_lead) if wait else 0
        return max(in_c * in_h * in_w, self.geometry.cycles_per_image + wait,
                   self.pixels * self.matrix.cycles_per_window + mvu_wait,
                   self.pixels * self.layer.out_shape[0] * self.rescaler.cycles_per_value)

    def timing(self, upstream):
        return self.matrix_timing(WindowSource(self.geometry, upstream, self.matrix.words))

    def memories(self):
        return [self.geometry.line_buffer(self.layer.in_format.bits), *super().memories()]

    def logic_terms(self):
        return add_terms(self.geometry.logic_terms(self.layer.in_format.bits), super().logic_terms())

    def create(self, input_order, first_block: int = 0):
        return ConvStage(self, first_block)


    def window_weights(self, weight: np.ndarray, input_order=None) -> np.ndarray:
        layer = self.layer
        if not self.depthwise:
            # (out, in/groups, kh, kw) -> (groups, out/groups, kh * kw * in/groups) in window order (ky, kx, ci).
            return weight.transpose(0, 2, 3, 1).reshape(layer.groups, self.matrix.outputs, -1)
        # (channels, 1, kh, kw) -> (channels / pe, pe, kh * kw * pe): channel p of a group is
        # lane p of each of its window's words; the MVU reads only these diagonal weights.
        mx = self.matrix
        taps = math.prod(layer.kernel)
        kernels = weight.reshape(mx.groups, mx.pe, taps)
        weights = np.zeros((mx.groups, mx.pe, taps * mx.pe), dtype=kernels.dtype)
        for lane in range(mx.pe):
            weights[:, lane, lane::mx.pe] = kernels[:, lane, :]
        return weights


class ConvStage(MatrixStage):
    def __init__(self, op: ConvOp, first_block: int = 0):
        layer = op.layer
        super().__init__(op, op.window_weights(layer.weight), first_block)
        self.window = SlidingWindow(op.geometry, element_shape(layer.in_format))

    def elaborate(self, platform):
        m = Module()
        m.submodules.window, m.submodules.mvu, m.submodules.requant = self.window, self.mvu, self.requant
        wiring.connect(m, wiring.flipped(self.i), self.window.i)
        m.d.comb += [self.mvu.i.valid.eq(self.window.o.valid), self.mvu.i.payload.eq(self.window.o.payload.data),
                     self.window.o.ready.eq(self.mvu.i.ready)]
        wiring.connect(m, self.mvu.o, self.requant.i)
        wiring.connect(m, self.requant.o, wiring.flipped(self.o))
        self.connect_load(m)
        return m
