"""The accelerator: pipeline stages chained by streams, plus the class.

Ports:

* ``i``: quantized input elements (the input quantizer's integers), one image after another,
  each image in HWC order (row by row, channels innermost);
* ``o``: the output elements of each image, in :attr:`Accelerator.output_order`;
* ``cls``: one class index per image (argmax of the output, first index on ties);
* ``probe<k>_data`` / ``probe<k>_fire``: the output stream of stage ``k`` (``fire`` = a
  transfer happens this cycle), so a testbench can check every layer, not only the last;
* ``load`` (only when some weights are in SPRAM): the loader's bus to every SPRAM block
  (:mod:`cnnhw.gateware.spram`); the accelerator must not be fed before the load is done.

Every stream has backpressure; any stage may stall without loss or duplication. The stages come
made (``cnnhw.hardware`` creates one per layer); this module only chains them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..protocol.weight_image import WeightImage
from .small import Argmax
from .spram import LoadSignature, SpramWeights, drive_load


class Accelerator(wiring.Component):
    def __init__(self, stages: Sequence[tuple[str, wiring.Component]], image_elements: int, output_order: np.ndarray):
        """``stages``: (layer name, stage) in stream order, each with ``i`` and ``o`` element streams
        (and a ``load`` port and a ``spram`` attribute when its weights are in SPRAM);
        ``image_elements``: input elements per image; ``output_order``: the golden (C-order) index
        of each element of ``o``."""
        if not stages:
            raise ValueError("an accelerator needs at least one stage")
        self.stages = list(stages)
        self.image_elements = image_elements
        self.output_order = np.asarray(output_order)
        self.classes = len(self.output_order)
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
        stores = [getattr(stage, "spram", None) for _, stage in self.stages]
        return [store for store in stores if store is not None]

    def weight_image(self) -> WeightImage | None:
        """The image the loader expects in flash, or None when every weight is in a ROM."""
        stores = self.spram_stores()
        if not stores:
            return None
        return WeightImage.from_blocks([block for store in stores for block in store.block_contents()])

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
