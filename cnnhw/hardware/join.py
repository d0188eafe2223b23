"""Joins: the layers where branches meet (Add, Concat). Each reads two or more streams; every input
but the one from the longest branch comes through a FIFO (``gateware/branches.StreamFIFO``), so
that a short branch can run ahead while the long one fills its line buffers. The network decides
which input is the longest and how deep each FIFO must be (from the timing model) and tells the
op (``first_input``, ``fifo_depths``); the op owns the FIFOs' memories and logic."""

from __future__ import annotations

import math

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..families import ICE40, DspRule
from ..errors import UnsupportedModelError
from ..gateware.branches import AddUnit, ConcatUnit, StreamFIFO
from ..gateware.memories import add_terms
from ..gateware.streams import stream_order
from ..quant.qgraph import QJoin
from .op import HardwareOp, element_shape
from .timing import AddTiming, ConcatTiming, FIFOTiming


class JoinOp(HardwareOp):
    """Base of the joins: one element per cycle out (``cycles`` = output elements), each offered
    :meth:`latency` cycles after its inputs are taken."""

    def __init__(self, layer: QJoin, plan, dsp: DspRule = ICE40.dsp):
        super().__init__(layer, plan, dsp)
        self.inputs = len(layer.in_formats)
        #: The input from the longest branch (no FIFO); set by the network.
        self.first_input = 0
        self._fifo_depths: dict[int, int] | None = None

    def set_branches(self, first_input: int, fifo_depths: dict[int, int]) -> None:
        self.first_input, self._fifo_depths = first_input, dict(fifo_depths)

    @property
    def fifo_depths(self) -> dict[int, int]:
        """Entries of each input's FIFO but ``first_input``'s, as the network sized them
        (``Network.joins``); asked before that, an error rather than a guess."""
        if self._fifo_depths is None:
            raise RuntimeError(f"join '{self.name}': its FIFOs are not sized yet; ask the network's joins")
        return self._fifo_depths

    @property
    def latency(self) -> int:
        """Cycles from the take of an element's inputs to its offer (the unit's own figure)."""
        raise NotImplementedError

    @property
    def cycles(self) -> int:
        return math.prod(self.layer.out_shape)

    def fifo_latency(self, index: int) -> int:
        return StreamFIFO.latency_of(self.fifo_depths[index])

    def buffered(self, upstreams, fifo_latency=None, all_buffered: bool = False):
        """The input producers, every input but the first one (or every one) through its FIFO."""
        latency = fifo_latency or self.fifo_latency
        return [producer if k == self.first_input and not all_buffered else FIFOTiming(producer, latency(k))
                for k, producer in enumerate(upstreams)]

    def _fifo_widths(self) -> list[tuple[int, int]]:
        """(width, depth) of each input FIFO."""
        return [(self.layer.in_formats[k].bits, depth) for k, depth in sorted(self.fifo_depths.items())]

    def memories(self):
        return [shape for width, depth in self._fifo_widths() for shape in StreamFIFO.memories_of(width, depth)]

    def fifo_logic_terms(self) -> dict[str, float]:
        return add_terms(*(StreamFIFO.logic_terms(width, depth) for width, depth in self._fifo_widths()))

    def create(self, input_order, first_block: int = 0):
        return JoinStage(self.layer, self._unit(), {k: StreamFIFO(element_shape(self.layer.in_formats[k]), depth)
                                                    for k, depth in self.fifo_depths.items()})

    def _unit(self):
        raise NotImplementedError


class AddOp(JoinOp):
    """``requant.finish(i0 * M[0] + i1 * M[1])``, element by element (``gateware/branches.AddUnit``)."""

    def _unit(self) -> AddUnit:
        layer = self.layer
        return AddUnit([element_shape(f) for f in layer.in_formats], element_shape(layer.out_format), layer.requant)

    @property
    def latency(self) -> int:
        layer = self.layer
        return AddUnit.latency_of([element_shape(f) for f in layer.in_formats], layer.requant)

    def timing_of(self, upstreams, fifo_latency=None, all_buffered: bool = False):
        return AddTiming(self.buffered(upstreams, fifo_latency, all_buffered), self.first_input, self.latency)

    def output_order_of(self, orders):
        if any(len(order) != len(orders[0]) or (order != orders[0]).any() for order in orders[1:]):
            raise UnsupportedModelError(f"Add '{self.name}': its inputs stream in different orders (one through a "
                                        f"flatten); the hardware adds streams of one order")
        return orders[0]

    def logic_terms(self):
        layer = self.layer
        return add_terms(AddUnit.logic_terms([f.bits for f in layer.in_formats], layer.requant),
                         self.fifo_logic_terms())


class ConcatOp(JoinOp):
    """Each pixel's channels of every input in turn (``gateware/branches.ConcatUnit``); vectors are
    one pixel of all their values."""

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(shape[0] for shape in self.layer.in_shapes)

    def _unit(self) -> ConcatUnit:
        layer = self.layer
        return ConcatUnit([element_shape(f) for f in layer.in_formats], element_shape(layer.out_format),
                          layer.requant, self.channels)

    @property
    def latency(self) -> int:
        return ConcatUnit.LATENCY

    def timing_of(self, upstreams, fifo_latency=None, all_buffered: bool = False):
        return ConcatTiming(self.buffered(upstreams, fifo_latency, all_buffered), self.channels, self.first_input,
                            self.latency)

    def output_order_of(self, orders):
        for order, shape in zip(orders, self.layer.in_shapes):
            if len(order) != math.prod(shape) or (order != stream_order(shape)).any():
                raise UnsupportedModelError(f"Concat '{self.name}': an input streams out of its own order (after a "
                                            f"flatten); the hardware concatenates feature maps and vectors as they "
                                            f"stream")
        return stream_order(self.layer.out_shape)

    def logic_terms(self):
        layer = self.layer
        return add_terms(ConcatUnit.logic_terms([f.bits for f in layer.in_formats], layer.requant, self.channels),
                         self.fifo_logic_terms())


class JoinStage(wiring.Component):
    """A join's stage: ``i0`` ... streams in the inputs' formats, ``o`` in the output's; each input
    in ``fifos`` passes its FIFO first. ``layer`` is the quantized layer it computes."""

    def __init__(self, layer: QJoin, unit, fifos: dict[int, StreamFIFO]):
        self.layer, self.unit, self.fifos = layer, unit, fifos
        super().__init__({**{f"i{k}": In(stream.Signature(element_shape(f))) for k, f in enumerate(layer.in_formats)},
                          "o": Out(stream.Signature(element_shape(layer.out_format)))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = self.unit
        for k in range(len(self.layer.in_formats)):
            port = wiring.flipped(getattr(self, f"i{k}"))
            if k in self.fifos:
                m.submodules[f"fifo{k}"] = fifo = self.fifos[k]
                wiring.connect(m, port, fifo.i)
                port = fifo.o
            wiring.connect(m, port, getattr(self.unit, f"i{k}"))
        wiring.connect(m, self.unit.o, wiring.flipped(self.o))
        return m
