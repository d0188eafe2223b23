"""Stages that move data without computing on windows: a stand-alone clamp (ReLU/Clip not
fused into a layer), a lookup table (a smooth activation), and a flatten, which has no stage at all."""

from __future__ import annotations

from amaranth import Module

from ..families import ICE40, DspRule
from ..errors import UnsupportedModelError
from ..gateware.small import Clamp, Lookup
from ..quant.qgraph import QClamp, QLookup, QReshape
from .op import HardwareOp, Stage, chain, element_shape
from .timing import RegisterTiming


class ClampOp(HardwareOp):
    """``saturate(x, lo, hi)``, combinational: it never holds the stream up."""

    def __init__(self, layer: QClamp, plan, dsp: DspRule = ICE40.dsp):
        super().__init__(layer, plan, dsp)

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


class LookupOp(HardwareOp):
    """A smooth activation as a ROM of one entry per input integer (``gateware/small.Lookup``):
    one element per cycle, each ``Lookup.LATENCY`` cycle after it is taken. Like a clamp it never
    sets the pace (``cycles`` 0), and the stages after it see their rows at the pace before it."""

    def __init__(self, layer: QLookup, plan, dsp: DspRule = ICE40.dsp):
        super().__init__(layer, plan, dsp)

    def _lookup(self) -> Lookup:
        return Lookup(self.layer.table, element_shape(self.layer.out_format))

    def timing(self, upstream):
        return RegisterTiming(upstream, Lookup.LATENCY)

    def memories(self):
        return self._lookup().memories()

    def output_order(self, input_order):
        return input_order

    def logic_terms(self):
        return Lookup.logic_terms(self.layer.out_format.bits)

    def create(self, input_order, first_block: int = 0):
        return LookupStage(self.layer, self._lookup())


class LookupStage(Stage):
    def __init__(self, layer: QLookup, lookup: Lookup):
        super().__init__(layer)
        self.lookup = lookup

    def elaborate(self, platform):
        m = Module()
        chain(m, self, [self.lookup])
        return m


class FlattenOp(HardwareOp):
    """A reshape into a vector moves no data: the next dense layer reads its weights in the
    order the feature map streams. Any other reshape would need the stream reordered."""

    def __init__(self, layer: QReshape, plan, dsp: DspRule = ICE40.dsp):
        if len(layer.out_shape) != 1:
            raise UnsupportedModelError(
                f"Reshape '{layer.name}' to {layer.out_shape}: the hardware streams feature maps in HWC order "
                f"and supports reshapes into vectors (flatten) only"
            )
        super().__init__(layer, plan, dsp)

    @property
    def has_stage(self) -> bool:
        return False

    def output_order(self, input_order):
        return input_order
