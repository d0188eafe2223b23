"""A few-entry FIFO in flip-flops (same ports as ``amaranth.lib.fifo.SyncFIFO``).

Amaranth's FIFOs keep their entries in a ``Memory``, which yosys places in a block RAM however
small it is; on an iCE40 that spends a whole 4 Kbit EBR on four words. Here the entries are
registers. ``r_data`` is valid whenever ``r_rdy``; reads and writes may happen in the same cycle.
"""

from __future__ import annotations

from amaranth import Array, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class RegisterFIFO(wiring.Component):
    def __init__(self, width: int, depth: int):
        self.width, self.depth = width, depth
        super().__init__({
            "w_data": In(width), "w_en": In(1), "w_rdy": Out(1),
            "r_data": Out(width), "r_en": In(1), "r_rdy": Out(1),
            "level": Out(range(depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        entries = Array(Signal(self.width, name=f"entry{k}") for k in range(self.depth))
        head = Signal(range(self.depth))  # next to read
        tail = Signal(range(self.depth))  # next to write
        do_write = self.w_en & self.w_rdy
        do_read = self.r_en & self.r_rdy
        m.d.comb += [self.w_rdy.eq(self.level != self.depth), self.r_rdy.eq(self.level != 0),
                     self.r_data.eq(entries[head])]
        with m.If(do_write):
            m.d.sync += [entries[tail].eq(self.w_data), tail.eq(Mux(tail == self.depth - 1, 0, tail + 1))]
        with m.If(do_read):
            m.d.sync += head.eq(Mux(head == self.depth - 1, 0, head + 1))
        m.d.sync += self.level.eq(self.level + do_write - do_read)
        return m
