"""Requantizer: turns each ``pe``-wide accumulator word of a MatrixVectorUnit into ``pe``
output elements, one per cycle burst, in channel order, via a :class:`Rescaler`.

Channel ``c`` of an output pixel is lane ``c % pe`` of the ``c // pe``-th word; the
multiplier is ``requant.multipliers[c]`` (all rules from ``cnnhw.quant.arith``).
Throughput: one element per ``Rescaler.cycles_per_value`` cycles; a word is taken as soon as
the previous one has been handed over (one word of buffering).
"""

from __future__ import annotations

from amaranth import Module, Mux, Shape, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..quant.arith import Requantizer
from .rescale import Rescaler, RescalerParameters


def requant_terms(acc_bits: int, pe: int) -> dict[str, float]:
    """The logic-cell model's terms of the unit itself (``cnnhw.plan.logic``; its Rescaler has its
    own): picking one of ``pe`` accumulators."""
    return {"lane_select_bits": (pe - 1) * acc_bits}


class RequantUnit(wiring.Component):
    def __init__(self, requant: Requantizer, rescaler: RescalerParameters, pe: int, out: Shape):
        """``rescaler``: the requantizer's (``RescalerParameters.for_rule``), for accumulators of
        ``rescaler.value_bits`` bits."""
        self.requant = requant
        self.pe = pe
        self.channels = len(requant.multipliers)
        self.acc_shape = signed(rescaler.value_bits)
        self.rescaler = Rescaler(rescaler, requant, self.acc_shape, out)
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(self.acc_shape, pe))),
            "o": Out(stream.Signature(Shape.cast(out))),
        })

    def memories(self):
        return self.rescaler.memories()

    def elaborate(self, platform):
        m = Module()
        m.submodules.rescaler = rescaler = self.rescaler
        # The accumulator word is copied in as soon as the previous one is fully handed over, so the
        # MatrixVectorUnit never waits for the serialisation (it would stall pe * rescale cycles per fold).
        # From four lanes on, the copy shifts down one lane per value handed over, so the rescaler always
        # reads lane 0: a 2:1 multiplexer per bit that shares a logic cell with its flip-flop, instead of
        # a pe:1 multiplexer on the read side (265 fewer logic cells for mnist-8's conv2 at pe = 16).
        # With two or three lanes the multiplexer is as small, and LeNet-5 packed 17 cells smaller.
        shifting = self.pe >= 4
        held = Signal(data.ArrayLayout(self.acc_shape, self.pe))
        full = Signal()
        lane = Signal(range(max(self.pe, 2)))
        channel = Signal(range(max(self.channels, 2)))
        handed = rescaler.i.valid & rescaler.i.ready
        last_lane = lane == self.pe - 1
        m.d.comb += [
            rescaler.i.valid.eq(full),
            rescaler.i.payload.value.eq(held[0] if shifting else held[lane]),
            rescaler.i.payload.index.eq(channel),
            self.i.ready.eq(~full | (handed & last_lane)),
        ]
        with m.If(handed):
            m.d.sync += [lane.eq(Mux(last_lane, 0, lane + 1)),
                         channel.eq(Mux(channel == self.channels - 1, 0, channel + 1))]
            if shifting:
                m.d.sync += [held[index].eq(held[index + 1]) for index in range(self.pe - 1)]
            with m.If(last_lane):
                m.d.sync += full.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [held.eq(self.i.payload), full.eq(1)]
        wiring.connect(m, wiring.flipped(self.o), rescaler.o)
        return m
