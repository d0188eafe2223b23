"""Stages that move data without computing on windows: a stand-alone clamp (ReLU/Clip not
fused into a layer), and a flatten, which has no stage at all."""

from __future__ import annotations

from amaranth import Module

from ..errors import UnsupportedModelError
from ..gateware.small import Clamp
from ..quant.qgraph import QClamp, QReshape
from .op import HardwareOp, Stage, chain, element_shape


class ClampOp(HardwareOp):
    """``saturate(x, lo, hi)``, combinational: it never holds the stream up."""

    def __init__(self, layer: QClamp, plan):
        super().__init__(layer, plan)

    def output_order(self, input_order):
        return input_order  # element-wise: the stream order stays as it is

    def logic_terms(self):
        return Clamp.logic_terms(self.layer.in_format.bits)

    def create(self, input_order, first_block: int = 0):
        return ClampStage(self.layer)


class ClampStage(Stage):
    def __init__(self, layer: QClamp):
        super().__init__(layer)
        self.clamp = Clamp(element_shape(layer.in_format), layer.lo, layer.hi)

    def elaborate(self, platform):
        m = Module()
        chain(m, self, [self.clamp])
        return m


class FlattenOp(HardwareOp):
    """A reshape into a vector moves no data: the next dense layer reads its weights in the
    order the feature map streams. Any other reshape would need the stream reordered."""

    def __init__(self, layer: QReshape, plan):
        if len(layer.out_shape) != 1:
            raise UnsupportedModelError(
                f"Reshape '{layer.name}' to {layer.out_shape}: the hardware streams feature maps in HWC order "
                f"and supports reshapes into vectors (flatten) only"
            )
        super().__init__(layer, plan)

    @property
    def has_stage(self) -> bool:
        return False

    def output_order(self, input_order):
        return input_order
