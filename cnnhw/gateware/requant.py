"""Requantizer: turns each ``pe``-wide accumulator word of a MatrixVectorUnit into ``pe``
output elements, one per cycle burst, in channel order, via a :class:`Rescaler`.

Channel ``c`` of an output pixel is lane ``c % pe`` of the ``c // pe``-th word; the
multiplier is ``requant.multipliers[c]`` (all rules from ``cnnhw.quant.arith``).
Throughput: one element per ``Rescaler.cycles_per_value`` cycles.
"""

from __future__ import annotations

from amaranth import Module, Mux, Shape, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..quant.arith import Requantizer
from .rescale import Rescaler


class RequantUnit(wiring.Component):
    def __init__(self, requant: Requantizer, acc_bits: int, pe: int, out: Shape, digit_bits: int = 4):
        self.requant = requant
        self.pe = pe
        self.channels = len(requant.multipliers)
        self.acc_shape = signed(acc_bits)
        self.rescaler = Rescaler(self.acc_shape, out, requant.multipliers, requant, requant.negative_multipliers,
                                 digit_bits)
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(self.acc_shape, pe))),
            "o": Out(stream.Signature(Shape.cast(out))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.rescaler = rescaler = self.rescaler
        lane = Signal(range(max(self.pe, 2)))
        channel = Signal(range(max(self.channels, 2)))
        m.d.comb += [
            rescaler.i.valid.eq(self.i.valid),
            rescaler.i.payload.value.eq(self.i.payload[lane]),
            rescaler.i.payload.index.eq(channel),
            self.i.ready.eq(rescaler.i.ready & (lane == self.pe - 1)),
        ]
        with m.If(rescaler.i.valid & rescaler.i.ready):
            if self.pe > 1:
                m.d.sync += lane.eq(Mux(lane == self.pe - 1, 0, lane + 1))
            m.d.sync += channel.eq(Mux(channel == self.channels - 1, 0, channel + 1))
        wiring.connect(m, wiring.flipped(self.o), rescaler.o)
        return m

