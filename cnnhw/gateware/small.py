"""Small stream stages: packing scalars into SIMD words, clamping, lookup tables, and the class (argmax)."""

from __future__ import annotations

from amaranth import Module, Mux, Shape, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..quant.arith import LookupTable, saturate
from .memories import MemoryShape


class Packer(wiring.Component):
    """``simd`` consecutive elements in, one word out (lane 0 first). Throughput: 1 element/cycle."""

    @staticmethod
    def logic_terms(element_bits: int, simd: int) -> dict[str, float]:
        """The logic-cell model's terms (``cnnhw.plan.logic``): the word register."""
        return {"packer_bits": simd * element_bits}

    def __init__(self, element: Shape, simd: int):
        self.element, self.simd = Shape.cast(element), simd
        super().__init__({"i": In(stream.Signature(self.element)),
                          "o": Out(stream.Signature(data.ArrayLayout(self.element, simd)))})

    def elaborate(self, platform):
        m = Module()
        lane = Signal(range(max(self.simd, 2)))
        word = Signal(data.ArrayLayout(self.element, self.simd))
        m.d.comb += self.o.payload.eq(word)
        take = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(take)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & take):
            m.d.sync += word[lane].eq(self.i.payload)
            with m.If(lane == self.simd - 1):
                m.d.sync += [lane.eq(0), self.o.valid.eq(1)]
            with m.Else():
                m.d.sync += lane.eq(lane + 1)
        return m


class Clamp(wiring.Component):
    """``o = saturate(i, lo, hi)`` (a ReLU/Clip not fused into a layer). Combinational pass-through."""

    @staticmethod
    def logic_terms(element_bits: int) -> dict[str, float]:
        """The logic-cell model's terms (``cnnhw.plan.logic``): the comparators."""
        return {"reducer_bits": element_bits}

    def __init__(self, element: Shape, lo: int, hi: int):
        self.element, self.lo, self.hi = Shape.cast(element), lo, hi
        super().__init__({"i": In(stream.Signature(self.element)), "o": Out(stream.Signature(self.element))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.o.valid.eq(self.i.valid), self.i.ready.eq(self.o.ready),
                     self.o.payload.eq(saturate(self.i.payload, self.lo, self.hi, Mux))]
        return m


class Lookup(wiring.Component):
    """``o = table(i)``: each element's entry of a :class:`~cnnhw.quant.arith.LookupTable`, read from a
    ROM. ``LATENCY`` cycle after an element is taken its entry is offered; a new element is taken
    in any cycle in which the output register is empty or being read (1 element per cycle)."""

    LATENCY = 1

    @staticmethod
    def logic_terms(out_bits: int) -> dict[str, float]:
        """The logic-cell model's terms (``cnnhw.plan.logic``): the output register, a word register
        like a packer's (the ROM is priced with the memories)."""
        return {"packer_bits": out_bits}

    def __init__(self, table: LookupTable, out_shape: Shape):
        self.table, self.out_shape = table, Shape.cast(out_shape)
        in_format = table.in_format
        in_shape = Shape(in_format.bits, in_format.signed)
        super().__init__({"i": In(stream.Signature(in_shape)), "o": Out(stream.Signature(self.out_shape))})

    def memories(self) -> list[MemoryShape]:
        return [MemoryShape("activation table", self.out_shape.width, len(self.table.entries), rom=True)]

    def elaborate(self, platform):
        m = Module()
        (shape,) = self.memories()
        m.submodules.rom = rom = Memory(shape=self.out_shape, depth=shape.depth, init=self.table.entries)
        read = rom.read_port()
        advance = ~self.o.valid | self.o.ready
        bits = self.table.in_format.bits
        # Entry k is for the integer lo + k: the address is the input minus lo, modulo the depth.
        address = (self.i.payload - self.table.in_format.lo).as_unsigned()[:bits]
        m.d.comb += [self.i.ready.eq(advance), read.en.eq(advance), read.addr.eq(address),
                     self.o.payload.eq(read.data)]
        with m.If(advance):
            m.d.sync += self.o.valid.eq(self.i.valid)
        return m


class Argmax(wiring.Component):
    """Logits pass through from ``i`` to ``o``; after the last of every ``classes`` logits, ``cls``
    carries the index of the largest (the first one on ties, as NumPy's argmax), or with a single
    logit whether it is above 0 (``cnnhw.golden.classes_of``), ``LATENCY`` cycles after that logit
    was offered."""

    LATENCY = 1

    def __init__(self, element: Shape, classes: int):
        self.element, self.classes = Shape.cast(element), classes
        super().__init__({"i": In(stream.Signature(self.element)), "o": Out(stream.Signature(self.element)),
                          "cls": Out(stream.Signature(range(max(classes, 2))))})

    def elaborate(self, platform):
        m = Module()
        index = Signal(range(max(self.classes, 2)))
        best = Signal(self.element)
        best_index = Signal.like(self.cls.payload)
        last = index == self.classes - 1
        blocked = last & self.cls.valid  # the previous class has not been read yet
        m.d.comb += [self.o.valid.eq(self.i.valid & ~blocked), self.o.payload.eq(self.i.payload),
                     self.i.ready.eq(self.o.ready & ~blocked)]
        with m.If(self.cls.ready):
            m.d.sync += self.cls.valid.eq(0)
        better = (index == 0) | (self.i.payload > best)
        new_best_index = Mux(better, index, best_index) if self.classes > 1 else self.i.payload > 0
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [best.eq(Mux(better, self.i.payload, best)), best_index.eq(new_best_index),
                         index.eq(Mux(last, 0, index + 1))]
            with m.If(last):
                m.d.sync += [self.cls.valid.eq(1), self.cls.payload.eq(new_best_index)]
        return m
