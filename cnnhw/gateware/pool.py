"""Pool reducer: max or average over each window of a SlidingWindow (one channel per window).

Input: window words of one element (``simd = 1``, ``groups = channels``), so each run of
``window`` words is one channel of one output pixel. Max ignores positions outside the input
(padding never wins). Average sums (outside positions hold 0) and counts input positions,
plus padding when ``count_include_pad``, never positions past the padding; then a Rescaler
divides as ``AverageDivider`` says.

Throughput: one input word per cycle; the average adds a Rescaler per output.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Module, Mux, Shape, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..ir.ops import PoolKind, pool_kind
from ..quant.arith import AverageDivider
from .memories import MemoryShape, add_terms
from ..families import ICE40, DspRule
from .rescale import Rescaler, RescalerParameters, rescale_input
from .window import window_payload


@dataclass(frozen=True)
class ReducerParameters:
    """``kind`` (max or average) over windows of ``window`` words; an average sums in
    ``sum_bits`` and divides with ``divider``, ``digit_bits`` multiplier bits per cycle."""

    kind: PoolKind
    window: int
    element_bits: int
    count_include_pad: bool = False
    divider: AverageDivider | None = None
    sum_bits: int = 32
    digit_bits: int = 4
    dsp: DspRule = ICE40.dsp

    def __post_init__(self):
        object.__setattr__(self, "kind", pool_kind(self.kind, "a pool reducer's"))
        if (self.kind == PoolKind.AVG) != (self.divider is not None):
            raise ValueError("an average pool needs a divider, a max pool none")

    @property
    def rescaler(self) -> RescalerParameters | None:
        if self.divider is None:
            return None
        return RescalerParameters.for_rule(self.divider, self.sum_bits, self.digit_bits, self.dsp, self.element_bits)

    def memories(self) -> list[MemoryShape]:
        return self.rescaler.memories() if self.rescaler is not None else []

    def logic_terms(self) -> dict[str, float]:
        """The logic-cell model's terms (``cnnhw.plan.logic``): the running maximum or sum, and the
        divider's rescaler."""
        terms = {"reducer_bits": self.element_bits if self.divider is None else self.sum_bits}
        if self.rescaler is not None:
            terms = add_terms(terms, self.rescaler.logic_terms())
        return terms


class PoolReducer(wiring.Component):
    def __init__(self, parameters: ReducerParameters, element: Shape):
        self.parameters = parameters
        self.kind = parameters.kind
        self.window = parameters.window
        self.element = Shape.cast(element)
        self.count_include_pad = parameters.count_include_pad
        self.divider = parameters.divider
        self.sum_shape = signed(parameters.sum_bits)
        self.rescaler = None
        if self.kind == PoolKind.AVG:
            self.rescaler = Rescaler(parameters.rescaler, self.divider, self.sum_shape, self.element)
        super().__init__({
            "i": In(stream.Signature(window_payload(self.element, 1))),
            "o": Out(stream.Signature(self.element)),
        })

    def memories(self):
        return self.rescaler.memories() if self.rescaler is not None else []

    def elaborate(self, platform):
        m = Module()
        position = Signal(range(max(self.window, 2)))
        first = position == 0
        last = position == self.window - 1
        word = self.i.payload
        element = word.data[0]
        if self.kind == PoolKind.MAX:
            out = self.o
        else:
            m.submodules.rescaler = rescaler = self.rescaler
            wiring.connect(m, wiring.flipped(self.o), rescaler.o)
            out = rescaler.i

        held = Signal(self.element if self.kind == PoolKind.MAX else rescale_input(self.sum_shape, len(self.divider.multipliers)))
        m.d.comb += out.payload.eq(held)
        valid = Signal()
        m.d.comb += out.valid.eq(valid)
        take = ~valid | out.ready
        m.d.comb += self.i.ready.eq(take)
        with m.If(out.ready):
            m.d.sync += valid.eq(0)

        if self.kind == PoolKind.MAX:
            best = Signal(self.element, init=self.element_min())
            candidate = Mux(word.inside, element, self.element_min())
            new_best = Mux(first | (candidate > best), candidate, best)
            with m.If(self.i.valid & take):
                m.d.sync += [best.eq(new_best), position.eq(Mux(last, 0, position + 1))]
                with m.If(last):
                    m.d.sync += [held.eq(new_best), valid.eq(1)]
        else:
            total = Signal(self.sum_shape)
            count = Signal(range(self.window + 1))
            counted = word.inside | (~word.beyond if self.count_include_pad else 0)
            new_total = Mux(first, 0, total) + element
            new_count = Mux(first, 0, count) + counted
            with m.If(self.i.valid & take):
                m.d.sync += [total.eq(new_total), count.eq(new_count), position.eq(Mux(last, 0, position + 1))]
                with m.If(last):
                    m.d.sync += [held.value.eq(new_total), held.index.eq(new_count), valid.eq(1)]
        return m

    def element_min(self) -> int:
        return -(1 << (self.element.width - 1)) if self.element.signed else 0
