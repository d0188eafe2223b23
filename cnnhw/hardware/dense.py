"""Dense (fully connected): Packer -> MatrixVectorUnit -> RequantUnit."""

from __future__ import annotations

from amaranth import Module

from ..gateware.memories import add_terms
from ..gateware.mvu import MatrixParameters, MatrixVectorUnit
from ..gateware.rescale import RescalerParameters
from ..gateware.requant import RequantUnit, requant_terms
from ..gateware.small import Packer
from ..gateware.spram import drive_load
from ..quant.qgraph import QDense
from .op import HardwareOp, Stage, chain, element_shape


class DenseOp(HardwareOp):
    """``pe`` outputs in parallel, ``simd`` inputs per product word: the packer gathers ``simd``
    input elements into a word, the MVU computes ``outputs / pe`` folds over the whole input
    (its window), the requantizer serialises each fold's ``pe`` accumulators.

    Cycles per image: the slowest of the input (one element per cycle), the MVU (one word per
    cycle) and the rescaler. The columns of the weight matrix are put in the input stream's order,
    so the dense layer reads a flattened feature map as it streams (HWC)."""

    foldable = rescales = True

    def __init__(self, layer: QDense, plan):
        super().__init__(layer, plan)
        outputs, inputs = layer.weight.shape
        self.matrix = MatrixParameters(1, outputs, inputs, plan.pe, plan.simd, layer.in_format.bits,
                                       layer.in_format.signed, layer.weight_format.bits, layer.acc_format.bits,
                                       plan.packed, plan.logic_products, plan.weights)
        self.rescaler = RescalerParameters.for_rule(layer.requant, layer.acc_format.bits, plan.digit_bits)

    def folding_limits(self):
        return self.layer.weight.shape

    @property
    def packable(self) -> bool:
        return self.layer.in_format.bits <= 8 and self.layer.weight_format.bits <= 8

    @property
    def cycles(self) -> int:
        outputs, inputs = self.layer.weight.shape
        return max(inputs, self.matrix.cycles_per_window, outputs * self.rescaler.cycles_per_value)

    def row_times(self, rows):
        # The first fold runs while the input arrives (one word per element group), the other
        # folds after its last element; then the last word is rescaled.
        folds, words = self.matrix.folds, self.matrix.words
        first_fold = max(rows[-1], rows[0] + words)
        return [first_fold + (folds - 1) * words + self.plan.pe * self.rescaler.cycles_per_value
                + MatrixParameters.LATENCY]

    def memories(self):
        return [*self.matrix.memories(), *self.rescaler.memories()]

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
        return add_terms(Packer.logic_terms(self.layer.in_format.bits, self.plan.simd), self.matrix.logic_terms(),
                         requant_terms(self.layer.acc_format.bits, self.plan.pe), self.rescaler.logic_terms())

    def create(self, input_order, first_block: int = 0):
        return DenseStage(self, input_order, first_block)


class DenseStage(Stage):
    """``order[j]`` is the golden (C-order) index of the ``j``-th element of the input stream."""

    def __init__(self, op: DenseOp, order, first_block: int = 0):
        layer = op.layer
        super().__init__(layer, spram=op.matrix.home == "spram")
        weights = layer.weight[:, order][None]  # columns in stream order
        element = element_shape(layer.in_format)
        self.packer = Packer(element, op.plan.simd)
        self.mvu = MatrixVectorUnit(op.matrix, weights, layer.bias, first_block)
        self.spram = self.mvu.spram
        self.requant = RequantUnit(layer.requant, layer.acc_format.bits, op.plan.pe, element_shape(layer.out_format),
                                   op.plan.digit_bits)

    def elaborate(self, platform):
        m = Module()
        chain(m, self, [self.packer, self.mvu, self.requant])
        if self.spram is not None:
            drive_load(m, self.mvu.load, self.load)
        return m
