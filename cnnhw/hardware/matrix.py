"""What convolution and dense layers share: a MatrixVectorUnit and a RequantUnit, and the costs
that come from them."""

from __future__ import annotations

import numpy as np

from ..families import ICE40, DspRule
from ..gateware.memories import add_terms
from ..gateware.mvu import MatrixParameters, MatrixVectorUnit
from ..gateware.rescale import RescalerParameters
from ..gateware.requant import RequantUnit, requant_terms
from ..gateware.spram import drive_load
from .op import HardwareOp, Stage, element_shape
from .timing import MatrixTiming, rescaler_timing


class MatrixOp(HardwareOp):
    """A layer of products (``self.matrix``, set by the subclass before asking for costs) whose
    accumulators are requantized (``self.rescaler``): PE/SIMD folding, packed or logic products,
    weights in ROM or SPRAM, a rescaler's digits."""

    foldable = rescales = True
    matrix: MatrixParameters

    def __init__(self, layer, plan, dsp: DspRule = ICE40.dsp):
        super().__init__(layer, plan, dsp)
        self.rescaler = RescalerParameters.for_rule(layer.requant, layer.acc_format.bits, plan.digit_bits, dsp,
                                                    layer.out_format.bits)

    @property
    def packable(self) -> bool:
        return self.layer.in_format.bits <= 8 and self.layer.weight_format.bits <= 8

    def matrix_parameters(self, groups: int, outputs: int, inputs: int, simd: int | None = None,
                          diagonal: bool = False) -> MatrixParameters:
        """The MVU of the plan's folding (``simd``: the word width, when it is not the plan's)."""
        layer, plan = self.layer, self.plan
        return MatrixParameters(groups, outputs, inputs, plan.pe, plan.simd if simd is None else simd,
                                layer.in_format.bits, layer.in_format.signed, layer.weight_format.bits,
                                layer.acc_format.bits, plan.packed, plan.logic_products, plan.weights, self.dsp,
                                plan.biases_in_logic, diagonal)

    def window_weights(self, weight: np.ndarray, input_order=None) -> np.ndarray:
        """``weight`` (any array of the layer's weight shape: the weights, or their indices) as its
        MatrixVectorUnit takes them: ``(groups, outputs, inputs)``, the inputs in the order of a
        window (``input_order``: the stream order of the layer's input, for a dense layer)."""
        raise NotImplementedError

    def matrix_timing(self, source) -> MatrixTiming:
        """The latency model of its MatrixVectorUnit and RequantUnit, fed by ``source``."""
        return MatrixTiming(self.matrix, self.plan.pe, rescaler_timing(self.rescaler), source)

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
        return add_terms(self.matrix.logic_terms(), requant_terms(self.layer.acc_format.bits, self.plan.pe),
                         self.rescaler.logic_terms())


class MatrixStage(Stage):
    """A stage with a MatrixVectorUnit (``weights`` in its window order) and a RequantUnit; with
    weights in SPRAM its ``load`` port reaches the MVU."""

    def __init__(self, op: MatrixOp, weights, first_block: int):
        layer = op.layer
        super().__init__(layer, spram=op.matrix.home == "spram")
        self.mvu = MatrixVectorUnit(op.matrix, weights, layer.bias, first_block)
        self.spram = self.mvu.spram
        self.requant = RequantUnit(layer.requant, op.rescaler, op.plan.pe, element_shape(layer.out_format))

    def connect_load(self, m) -> None:
        if self.spram is not None:
            drive_load(m, self.mvu.load, self.load)
