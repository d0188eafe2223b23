"""The accelerator: one stage per quantized layer, chained by streams, plus the class.

Ports:

* ``i``: quantized input elements (the input quantizer's integers), one image after another,
  each image in HWC order (row by row, channels innermost);
* ``o``: the output elements of each image, in :attr:`Accelerator.output_order`;
* ``cls``: one class index per image (argmax of the output, first index on ties);
* ``probe<k>_data`` / ``probe<k>_fire``: the output stream of stage ``k`` (``fire`` = a
  transfer happens this cycle), so a testbench can check every layer, not only the last;
* ``load`` (only when some weights are in SPRAM): the loader's bus to every SPRAM block
  (:mod:`cnnhw.gateware.spram`); the accelerator must not be fed before the load is done.

Every stream has backpressure; any stage may stall without loss or duplication.
"""

from __future__ import annotations

import numpy as np
from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..errors import UnsupportedModelError
from ..plan import HardwarePlan, check_plan
from ..quant.qgraph import QClamp, QConv, QDense, QGlobalPool, QGraph, QPool, QReshape
from ..verify import stream_order
from .memories import MemoryShape
from .small import Argmax
from .spram import LoadSignature, SpramWeights, drive_load
from .stages import ClampStage, ConvStage, DenseStage, PoolStage


def _spram_of(stage) -> SpramWeights | None:
    """The stage's SPRAM weight memory, if it has one (conv and dense stages may)."""
    mvu = getattr(stage, "mvu", None)
    return None if mvu is None else mvu.spram


class Accelerator(wiring.Component):
    def __init__(self, qgraph: QGraph, plan: HardwarePlan):
        check_plan(plan, qgraph)
        self.qgraph, self.plan = qgraph, plan
        self.stages: list[tuple[str, wiring.Component]] = []
        order = stream_order(qgraph.graph.input_shape)
        blocks = 0  # SPRAM blocks given out so far, numbered in stage order
        for layer in qgraph.layers:
            folding = plan.for_layer(layer.name)
            if isinstance(layer, QConv):
                stage = ConvStage(layer, folding.pe, folding.simd, folding.digit_bits, folding.overlap, folding.packed,
                                  folding.weights, blocks, folding.logic_products)
            elif isinstance(layer, QDense):
                stage = DenseStage(layer, order, folding.pe, folding.simd, folding.digit_bits, folding.packed,
                                   folding.weights, blocks, folding.logic_products)
            elif isinstance(layer, (QPool, QGlobalPool)):
                stage = PoolStage(layer, folding.digit_bits, folding.overlap)
            elif isinstance(layer, QClamp):
                self.stages.append((layer.name, ClampStage(layer)))
                continue  # element-wise: the stream order stays as it is
            elif isinstance(layer, QReshape):
                if len(layer.out_shape) != 1:
                    raise UnsupportedModelError(
                        f"Reshape '{layer.name}' to {layer.out_shape}: the hardware streams feature maps in HWC order "
                        f"and supports reshapes into vectors (flatten) only"
                    )
                continue  # a flatten moves no data: the next dense layer reads its weights in stream order
            else:
                raise UnsupportedModelError(f"{layer.label} '{layer.name}' has no hardware stage")
            order = stream_order(layer.out_shape)
            self.stages.append((layer.name, stage))
            if _spram_of(stage) is not None:
                blocks += _spram_of(stage).blocks
        if not self.stages:
            raise UnsupportedModelError(f"model '{qgraph.graph.name}' has no layer to build hardware for")
        self.output_order = order
        self.classes = int(np.prod(qgraph.layers[-1].out_shape))
        first, last = self.stages[0][1], self.stages[-1][1]
        members = {
            "i": In(stream.Signature(first.i.payload.shape())),
            "o": Out(stream.Signature(last.o.payload.shape())),
            "cls": Out(stream.Signature(range(max(self.classes, 2)))),
        }
        for index, (_, stage) in enumerate(self.stages):
            members[f"probe{index}_data"] = Out(stage.o.payload.shape())
            members[f"probe{index}_fire"] = Out(1)
        if self.spram_stores():
            members["load"] = In(LoadSignature())
        self.argmax = Argmax(last.o.payload.shape(), self.classes)
        super().__init__(members)

    def spram_stores(self) -> list[SpramWeights]:
        """The SPRAM weight memories, in block order (empty when every weight is in a ROM)."""
        return [_spram_of(stage) for _, stage in self.stages if _spram_of(stage) is not None]

    def memories(self) -> list[tuple[str, MemoryShape]]:
        """Every memory of every stage, with the stage's layer name."""
        return [(name, shape) for name, stage in self.stages for shape in stage.memories()]

    def elaborate(self, platform):
        m = Module()
        previous = wiring.flipped(self.i)
        for index, (_, stage) in enumerate(self.stages):
            m.submodules[f"stage{index}"] = stage
            wiring.connect(m, previous, stage.i)
            m.d.comb += [getattr(self, f"probe{index}_data").eq(stage.o.payload),
                         getattr(self, f"probe{index}_fire").eq(stage.o.valid & stage.o.ready)]
            if "load" in stage.signature.members:
                drive_load(m, stage.load, self.load)
            previous = stage.o
        m.submodules.argmax = self.argmax
        wiring.connect(m, previous, self.argmax.i)
        wiring.connect(m, self.argmax.o, wiring.flipped(self.o))
        wiring.connect(m, self.argmax.cls, wiring.flipped(self.cls))
        return m
