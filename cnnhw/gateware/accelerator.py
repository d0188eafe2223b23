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
made (``cnnhw.hardware`` creates one per layer); this module only connects them: each stage's
input ports (``i``, or ``i0``, ``i1``... for a join) to the streams they read, through a
:class:`~cnnhw.gateware.branches.Fork` where a stream has several readers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..protocol.weight_image import WeightImage
from .branches import Fork
from .small import Argmax
from .spram import LoadSignature, SpramWeights, drive_load


def input_ports(stage: wiring.Component) -> list:
    """A stage's input streams: ``i``, or a join's ``i0``, ``i1``..."""
    members = stage.signature.members
    if "i" in members:
        return [stage.i]
    return [getattr(stage, f"i{k}") for k in range(sum(1 for name in members if name.startswith("i")
                                                           and name[1:].isdigit()))]


class Accelerator(wiring.Component):
    def __init__(self, stages: Sequence[tuple[str, wiring.Component]], image_elements: int, output_order: np.ndarray,
                 sources: Sequence[Sequence[int]] | None = None):
        """``stages``: (layer name, stage) in a topological order, each with ``i`` (a join: ``i0``,
        ``i1``...) and ``o`` element streams (and a ``load`` port and a ``spram`` attribute when its
        weights are in SPRAM); ``sources``: for each stage, the stage each input port reads (-1:
        the accelerator's input; default: a chain, each stage reading the one before); the last
        stage's output is the accelerator's; ``image_elements``: input elements per image;
        ``output_order``: the golden (C-order) index of each element of ``o``."""
        if not stages:
            raise ValueError("an accelerator needs at least one stage")
        self.stages = list(stages)
        self.sources = [list(s) for s in sources] if sources is not None else [[k - 1] for k in range(len(stages))]
        self.image_elements = image_elements
        self.output_order = np.asarray(output_order)
        self.classes = len(self.output_order)
        last = self.stages[-1][1]
        reader = next((port for (_, stage), reads in zip(self.stages, self.sources)
                       for port, source in zip(input_ports(stage), reads) if source == -1), None)
        if reader is None:
            raise ValueError("no stage reads the accelerator's input")
        members = {
            "i": In(stream.Signature(reader.payload.shape())),
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
        outputs = {-1: wiring.flipped(self.i)}
        for index, (_, stage) in enumerate(self.stages):
            m.submodules[f"stage{index}"] = stage
            outputs[index] = stage.o
            m.d.comb += [getattr(self, f"probe{index}_data").eq(stage.o.payload),
                         getattr(self, f"probe{index}_fire").eq(stage.o.valid & stage.o.ready)]
            if "load" in stage.signature.members:
                drive_load(m, stage.load, self.load)
        # Every stream goes to its readers (the last stage's also to the argmax): one directly, several
        # through a fork.
        readers: dict[int, list] = {}
        for (_, stage), reads in zip(self.stages, self.sources):
            for port, source in zip(input_ports(stage), reads):
                readers.setdefault(source, []).append(port)
        m.submodules.argmax = self.argmax
        readers.setdefault(len(self.stages) - 1, []).append(self.argmax.i)
        for source, ports in readers.items():
            stream_out = outputs[source]
            if len(ports) > 1:
                fork = Fork(stream_out.payload.shape(), len(ports))
                m.submodules[f"fork{source + 1}"] = fork
                wiring.connect(m, stream_out, fork.i)
                for port, fork_port in zip(ports, fork.ports()):
                    wiring.connect(m, fork_port, port)
            else:
                wiring.connect(m, stream_out, ports[0])
        wiring.connect(m, self.argmax.o, wiring.flipped(self.o))
        wiring.connect(m, self.argmax.cls, wiring.flipped(self.cls))
        return m
