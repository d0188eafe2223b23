"""Rescaler: ``y = finish(value * M[index])``, the multiply-and-round step of requantization
and of average pooling, with the rounding/saturation taken from ``cnnhw.quant.arith``.

The product is built ``digit_bits`` multiplier bits per cycle (most significant first):
``digit_bits >= multiplier bits`` is one full multiply (a DSP with yosys ``-dsp``); fewer
bits trade cycles for logic. Throughput: one value per ``steps + 2`` cycles, where
``steps = ceil(multiplier_bits / digit_bits)``, plus one when the multipliers are in a memory.
Latency: the same. Handshake: ``i`` is taken when idle; ``o`` holds its payload until ``ready``.

The multiplier table is logic (a constant multiplexer) for up to ``TABLE_IN_LOGIC_MAX`` entries
and a ROM beyond (yosys puts a large one in block RAM): a dense layer's 100+ per-channel
multipliers cost hundreds of LUTs as logic. The ROM's synchronous read costs one cycle per value.
"""

from __future__ import annotations

import math

from amaranth import Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .memories import MemoryShape
from .tables import lookup

#: Largest multiplier table kept in logic (see the module docstring).
TABLE_IN_LOGIC_MAX = 32


def rescale_cycles(multiplier_bits: int, digit_bits: int, entries: int) -> int:
    """Cycles per value of a Rescaler (the cycle model uses this too)."""
    digit = max(1, min(digit_bits, multiplier_bits))
    return math.ceil(multiplier_bits / digit) + 2 + (entries > TABLE_IN_LOGIC_MAX)


def rescale_input(value: Shape, entries: int) -> data.StructLayout:
    return data.StructLayout({"value": value, "index": range(max(entries, 2))})


class Rescaler(wiring.Component):
    """``o = rule.finish(i.value * multipliers[i.index])`` (``negative_multipliers`` when ``value < 0``).

    ``rule`` is a :class:`cnnhw.quant.arith.Requantizer` or ``AverageDivider``: this unit only
    forms the exact product; the rule decides rounding and saturation.
    """

    def __init__(self, value: Shape, out: Shape, multipliers, rule, negative_multipliers=None, digit_bits: int = 4):
        self.value_shape = Shape.cast(value)
        self.out_shape = Shape.cast(out)
        self.multipliers = tuple(int(m) for m in multipliers)
        self.negative_multipliers = None if negative_multipliers is None else tuple(int(m) for m in negative_multipliers)
        self.rule = rule
        all_multipliers = self.multipliers + (self.negative_multipliers or ())
        self.multiplier_bits = max(1, max(m.bit_length() for m in all_multipliers))
        self.digit_bits = max(1, min(digit_bits, self.multiplier_bits))
        self.steps = math.ceil(self.multiplier_bits / self.digit_bits)
        super().__init__({
            "i": In(stream.Signature(rescale_input(self.value_shape, len(self.multipliers)))),
            "o": Out(stream.Signature(self.out_shape)),
        })

    @property
    def table_in_memory(self) -> bool:
        return len(self.multipliers) > TABLE_IN_LOGIC_MAX

    @property
    def cycles_per_value(self) -> int:
        return self.steps + 2 + self.table_in_memory

    def memories(self) -> list[MemoryShape]:
        if not self.table_in_memory:
            return []
        lanes = 1 if self.negative_multipliers is None else 2
        return [MemoryShape("rescale multipliers", lanes * self.multiplier_bits, len(self.multipliers), rom=True)]

    def elaborate(self, platform):
        m = Module()
        width = self.multiplier_bits
        digit = self.digit_bits
        padded = self.steps * digit  # the multiplier, padded at the top to whole digits
        product_bits = self.value_shape.width + width + 2
        value = Signal(signed(self.value_shape.width + 1))
        multiplier = Signal(unsigned(padded))
        product = Signal(signed(product_bits))
        steps_left = Signal(range(self.steps + 1))

        if self.table_in_memory:
            # Read in IDLE, at the index being offered; used in LOAD, the next cycle.
            words = [m_pos | (m_neg << width) for m_pos, m_neg in
                     zip(self.multipliers, self.negative_multipliers or [0] * len(self.multipliers))]
            table = Memory(shape=self.memories()[0].width, depth=len(words), init=words)
            m.submodules.table = table
            table_read = table.read_port()
            m.d.comb += table_read.addr.eq(self.i.payload.index)
            chosen = table_read.data[:width]
            if self.negative_multipliers is not None:
                chosen = Mux(value < 0, table_read.data[width:], chosen)
        else:
            chosen = lookup(self.multipliers, self.i.payload.index, unsigned(width))
            if self.negative_multipliers is not None:
                negative = lookup(self.negative_multipliers, self.i.payload.index, unsigned(width))
                chosen = Mux(self.i.payload.value < 0, negative, chosen)

        top_digit = multiplier[padded - digit:]
        if self.steps == 1:
            partial = value * top_digit  # one full multiply: what a DSP is for
        else:
            # A few bits per cycle: shifted adds, written out so that yosys keeps them in logic
            # instead of spending a DSP on a narrow product.
            partial = sum(Mux(top_digit[bit], value << bit, 0) for bit in range(digit))
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [value.eq(self.i.payload.value), product.eq(0), steps_left.eq(self.steps)]
                    if self.table_in_memory:
                        m.next = "LOAD"  # the table is read at this cycle's index
                    else:
                        m.d.sync += multiplier.eq(chosen)
                        m.next = "MULTIPLY"
            if self.table_in_memory:
                with m.State("LOAD"):
                    m.d.sync += multiplier.eq(chosen)
                    m.next = "MULTIPLY"
            with m.State("MULTIPLY"):
                m.d.sync += [product.eq((product << digit) + partial),
                             multiplier.eq(multiplier << digit), steps_left.eq(steps_left - 1)]
                with m.If(steps_left == 1):
                    m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(self.rule.finish(product, Mux))]
                with m.If(self.o.ready):
                    m.next = "IDLE"
        return m
