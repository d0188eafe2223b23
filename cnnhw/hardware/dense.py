"""Dense (fully connected): Packer -> MatrixVectorUnit -> RequantUnit."""

from __future__ import annotations

import numpy as np
from amaranth import Module

from ..families import ICE40, DspRule
from ..gateware.memories import add_terms
from ..gateware.small import Packer
from ..quant.qgraph import QDense
from .matrix import MatrixOp, MatrixStage
from .op import chain, element_shape
from .timing import DenseSource


class DenseOp(MatrixOp):
    """``pe`` outputs in parallel, ``simd`` inputs per product word: the packer gathers ``simd``
    input elements into a word, the MVU computes ``outputs / pe`` folds over the whole input
    (its window), the requantizer serialises each fold's ``pe`` accumulators.

    Cycles per image: the slowest of the input (one element per cycle), the MVU (one word per
    cycle) and the rescaler. The columns of the weight matrix are put in the input stream's order,
    so the dense layer reads a flattened feature map as it streams (HWC)."""

    def __init__(self, layer: QDense, plan, dsp: DspRule = ICE40.dsp):
        super().__init__(layer, plan, dsp)
        self.matrix = self.matrix_parameters(1, *layer.weight.shape)

    def folding_limits(self):
        return self.layer.weight.shape

    @property
    def cycles(self) -> int:
        outputs, inputs = self.layer.weight.shape
        return max(inputs, self.matrix.cycles_per_window, outputs * self.rescaler.cycles_per_value)

    def timing(self, upstream):
        return self.matrix_timing(DenseSource(upstream, self.matrix.inputs, self.plan.simd))

    def logic_terms(self):
        return add_terms(Packer.logic_terms(self.layer.in_format.bits, self.plan.simd), super().logic_terms())

    def window_weights(self, weight: np.ndarray, input_order=None) -> np.ndarray:
        return weight[:, input_order][None]  # columns in stream order

    def create(self, input_order, first_block: int = 0):
        return DenseStage(self, input_order, first_block)


class DenseStage(MatrixStage):
    """``order[j]`` is the golden (C-order) index of the ``j``-th element of the input stream."""

    def __init__(self, op: DenseOp, order, first_block: int = 0):
        layer = op.layer
        super().__init__(op, op.window_weights(layer.weight, order), first_block)
        self.packer = Packer(element_shape(layer.in_format), op.plan.simd)

    def elaborate(self, platform):
        m = Module()
        chain(m, self, [self.packer, self.mvu, self.requant])
        self.connect_load(m)
        return m
