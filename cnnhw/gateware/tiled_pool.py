"""Max pooling over non-overlapping tiles (stride = kernel, no padding, no dilation), the pooling
of most CNNs (LeNet, mnist-8), without a sliding window.

The input streams in HWC order (channels innermost). Each output element is the maximum of one
``kh x kw`` tile of one channel; its running maximum lives in a small memory of ``out_w *
channels`` partials (one output row), updated as the tile's elements pass: the first element
of a tile writes its partial, the others read, compare and write back, and the last one sends
the maximum out instead. Rows and columns past the last whole tile (floor mode) are consumed
and ignored. So outputs leave in HWC order, as the next stage expects.

Throughput: one input element per cycle (the cycle model's ``channels * in_h * in_w``).
Latency: 2 cycles (``TileGeometry.LATENCY``). Handshake: the whole unit advances only when its output register is free or
being read (a global stall), so nothing is lost or duplicated.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Module, Mux, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .memories import MemoryShape


@dataclass(frozen=True)
class TileGeometry:
    """A ``height x width x channels`` input cut into ``kernel`` tiles."""

    height: int
    width: int
    channels: int
    kernel: tuple[int, int]

    #: Cycles from a tile's last element in to its maximum out.
    LATENCY = 2

    def __post_init__(self):
        if self.out_h < 1 or self.out_w < 1:
            raise ValueError(f"a {self.kernel[0]}x{self.kernel[1]} tile does not fit a {self.height}x{self.width} input")

    @property
    def out_h(self) -> int:
        return self.height // self.kernel[0]

    @property
    def out_w(self) -> int:
        return self.width // self.kernel[1]

    @property
    def elements(self) -> int:
        """Input elements per image."""
        return self.channels * self.height * self.width

    @property
    def cycles_per_image(self) -> int:
        """One input element per cycle, never waiting."""
        return self.elements

    def memories(self, element_bits: int) -> list[MemoryShape]:
        return [MemoryShape("pool partials", element_bits, max(2, self.out_w * self.channels))]

    def logic_terms(self, element_bits: int) -> dict[str, float]:
        """The logic-cell model's terms (``cnnhw.plan.logic``): control and the comparator."""
        return {"tiled_pool": 1, "reducer_bits": element_bits}


class TiledMaxPool(wiring.Component):
    def __init__(self, geometry: TileGeometry, element: Shape):
        self.geometry = geometry
        self.in_h, self.in_w, self.channels = geometry.height, geometry.width, geometry.channels
        self.kh, self.kw = geometry.kernel
        self.out_h, self.out_w = geometry.out_h, geometry.out_w
        self.element = Shape.cast(element)
        super().__init__({"i": In(stream.Signature(self.element)), "o": Out(stream.Signature(self.element))})

    def memories(self) -> list[MemoryShape]:
        return self.geometry.memories(self.element.width)

    def elaborate(self, platform):
        m = Module()
        shape = self.memories()[0]
        partials = Memory(shape=self.element, depth=shape.depth, init=[])
        m.submodules.partials = partials
        write = partials.write_port()
        read = partials.read_port(transparent_for=(write,))  # a partial written as it is read again

        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)
        accept = self.i.valid & advance

        # Stage A: where the incoming element belongs.
        channel = Signal(range(max(self.channels, 2)))
        x, y = Signal(range(max(self.in_w, 2))), Signal(range(max(self.in_h, 2)))
        kx, ky = Signal(range(max(self.kw, 2))), Signal(range(max(self.kh, 2)))
        address = Signal(range(shape.depth))  # out_x * channels + channel
        tile_base = Signal(range(shape.depth))  # out_x * channels
        m.d.comb += [self.i.ready.eq(advance), read.addr.eq(address), read.en.eq(advance)]
        with m.If(accept):
            with m.If(channel != self.channels - 1):
                m.d.sync += [channel.eq(channel + 1), address.eq(address + 1)]
            with m.Elif(x != self.in_w - 1):
                m.d.sync += [channel.eq(0), x.eq(x + 1)]
                with m.If(kx == self.kw - 1):  # the next column starts the next tile
                    m.d.sync += [kx.eq(0), address.eq(address + 1), tile_base.eq(address + 1)]
                with m.Else():
                    m.d.sync += [kx.eq(kx + 1), address.eq(tile_base)]
            with m.Else():  # end of a row
                m.d.sync += [channel.eq(0), x.eq(0), kx.eq(0), address.eq(0), tile_base.eq(0),
                             y.eq(Mux(y == self.in_h - 1, 0, y + 1)),
                             ky.eq(Mux((ky == self.kh - 1) | (y == self.in_h - 1), 0, ky + 1))]

        # Stage B: combine with the partial read for it, then write back or send out.
        valid_b, first_b, last_b = Signal(), Signal(), Signal()
        value_b = Signal(self.element)
        address_b = Signal.like(address)
        used = (x < self.out_w * self.kw) & (y < self.out_h * self.kh)
        with m.If(advance):
            m.d.sync += [valid_b.eq(accept & used), first_b.eq((kx == 0) & (ky == 0)),
                         last_b.eq((kx == self.kw - 1) & (ky == self.kh - 1)), value_b.eq(self.i.payload),
                         address_b.eq(address)]
        best = Signal(self.element)
        m.d.comb += best.eq(Mux(first_b | (value_b > read.data), value_b, read.data))
        m.d.comb += [write.addr.eq(address_b), write.data.eq(best), write.en.eq(advance & valid_b & ~last_b)]
        with m.If(advance):
            m.d.sync += self.o.valid.eq(valid_b & last_b)
            with m.If(valid_b & last_b):
                m.d.sync += self.o.payload.eq(best)
        return m
