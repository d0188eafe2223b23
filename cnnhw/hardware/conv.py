"""Convolution: SlidingWindow -> MatrixVectorUnit -> RequantUnit (plain, grouped, depthwise)."""

from __future__ import annotations

import math

from amaranth import Module
from amaranth.lib import wiring

from ..gateware.memories import add_terms
from ..gateware.mvu import MatrixParameters, MatrixVectorUnit
from ..gateware.rescale import RescalerParameters
from ..gateware.requant import RequantUnit, requant_terms
from ..gateware.spram import drive_load
from ..gateware.window import SlidingWindow, WindowGeometry
from ..quant.qgraph import QConv
from .op import HardwareOp, Stage, element_shape, window_row_times


class ConvOp(HardwareOp):
    """``pe`` output channels of a group in parallel, ``simd`` channels of a window position per
    product word; the window unit emits each output pixel's window (group by group), the MVU
    folds it over the group's channels, the requantizer serialises the ``pe`` accumulators.

    Cycles per image: the slowest of its parts: the input (one element per cycle), the window
    unit and the MVU (one word per cycle; both also wait at image boundaries without overlap,
    ``HardwareOp.boundary_wait``) and the rescaler (``cycles_per_value`` per output)."""

    foldable = windowed = rescales = True

    def __init__(self, layer: QConv, plan):
        super().__init__(layer, plan)
        in_c, in_h, in_w = layer.in_shape
        out_c, out_h, out_w = layer.out_shape
        self.geometry = WindowGeometry(in_h, in_w, in_c, layer.kernel, layer.stride, layer.dilation, layer.pads,
                                       (out_h, out_w), layer.groups, plan.simd, plan.overlap)
        self.matrix = MatrixParameters(layer.groups, out_c // layer.groups, math.prod(layer.weight.shape[1:]),
                                       plan.pe, plan.simd, layer.in_format.bits, layer.in_format.signed,
                                       layer.weight_format.bits, layer.acc_format.bits, plan.packed,
                                       plan.logic_products, plan.weights)
        self.rescaler = RescalerParameters.for_rule(layer.requant, layer.acc_format.bits, plan.digit_bits)

    def folding_limits(self):
        return self.layer.weight.shape[0] // self.layer.groups, self.layer.weight.shape[1]

    @property
    def packable(self) -> bool:
        return self.layer.in_format.bits <= 8 and self.layer.weight_format.bits <= 8

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

    def row_times(self, rows):
        # After a row's last window word: the window's read and FIFO, the MVU's pipeline and the
        # rescaling of its last word.
        drain = WindowGeometry.LATENCY + MatrixParameters.LATENCY + self.plan.pe * self.rescaler.cycles_per_value
        return window_row_times(rows, self.layer.out_shape[1], self.geometry.span[0], self.geometry.stride[0],
                                self.geometry.pads[0], self.cycles, drain)

    def memories(self):
        return [self.geometry.line_buffer(self.layer.in_format.bits), *self.matrix.memories(),
                *self.rescaler.memories()]

    @property
    def products(self) -> int:
        return self.matrix.products

    @property
    def dsps(self) -> int:
        return self.matrix.dsps + self.rescaler.dsps

    @property
    def product_dsps(self) -> int:
        return self.matrix.dsps

    @property
    def products_in_logic(self) -> int:
        return self.matrix.products_in_logic

    @property
    def weight_bits_per_cycle(self) -> int:
        return self.matrix.weight_bits_per_cycle

    def logic_terms(self):
        return add_terms(self.geometry.logic_terms(self.layer.in_format.bits), self.matrix.logic_terms(),
                         requant_terms(self.layer.acc_format.bits, self.plan.pe), self.rescaler.logic_terms())

    def create(self, input_order, first_block: int = 0):
        return ConvStage(self, first_block)


class ConvStage(Stage):
    def __init__(self, op: ConvOp, first_block: int = 0):
        layer = op.layer
        super().__init__(layer, spram=op.matrix.home == "spram")
        groups = layer.groups
        # (out, in/groups, kh, kw) -> (groups, out/groups, kh * kw * in/groups) in window order (ky, kx, ci).
        weights = layer.weight.transpose(0, 2, 3, 1).reshape(groups, op.matrix.outputs, -1)
        self.window = SlidingWindow(op.geometry, element_shape(layer.in_format))
        self.mvu = MatrixVectorUnit(op.matrix, weights, layer.bias, first_block)
        self.spram = self.mvu.spram
        self.requant = RequantUnit(layer.requant, layer.acc_format.bits, op.plan.pe, element_shape(layer.out_format),
                                   op.plan.digit_bits)

    def elaborate(self, platform):
        m = Module()
        m.submodules.window, m.submodules.mvu, m.submodules.requant = self.window, self.mvu, self.requant
        wiring.connect(m, wiring.flipped(self.i), self.window.i)
        m.d.comb += [self.mvu.i.valid.eq(self.window.o.valid), self.mvu.i.payload.eq(self.window.o.payload.data),
                     self.window.o.ready.eq(self.mvu.i.ready)]
        wiring.connect(m, self.mvu.o, self.requant.i)
        wiring.connect(m, self.requant.o, wiring.flipped(self.o))
        if self.spram is not None:
            drive_load(m, self.mvu.load, self.load)
        return m
