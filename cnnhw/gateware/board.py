"""The board top without board specifics: UART receiver and transmitter, the serial front end
(the framed protocol) and the accelerator. ``rx``/``tx`` are the UART pins; ``busy`` and
``last_class`` drive LEDs. The platform wrapper (pins, PLL) lives with the build flow.

When the plan keeps weights in SPRAM, the top also holds the :class:`WeightLoader` and an ``spi``
port for the configuration flash: the loader fills SPRAM from the weight image at
``weights_offset`` after reset, and the front end answers LOADING_WEIGHTS / BAD_WEIGHTS until
the image has been read and checked (:meth:`BoardTop.weight_image` is that image).
"""

from __future__ import annotations

import math

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..errors import CnnhwError
from ..plan import HardwarePlan
from ..quant.qgraph import QGraph
from .accelerator import Accelerator
from ..runtime.weight_image import WeightImage
from .loader import SPIFlashSignature, WeightLoader
from .memories import MemoryShape
from .serial import SerialFrontEnd
from .uart import UARTReceiver, UARTTransmitter


def uart_divisor(clock_hz: float, baud: int) -> int:
    """Clock cycles per UART bit; the baud rate must come out within 1 %."""
    divisor = round(clock_hz / baud)
    if divisor < 4 or abs(clock_hz / divisor - baud) > 0.01 * baud:
        raise CnnhwError(f"a {clock_hz / 1e6:g} MHz clock cannot make {baud} baud (cycles per bit "
                         f"{clock_hz / baud:.2f}; need a whole number >= 4): choose another baud rate or clock")
    return divisor


class BoardTop(wiring.Component):
    def __init__(self, qgraph: QGraph, plan: HardwarePlan, clock_hz: float, baud: int, timeout_s: float = 0.05,
                 weights_offset: int | None = None):
        """``weights_offset``: where the weight image is in the flash (the board profile's); needed
        only when the plan keeps weights in SPRAM."""
        self.accelerator = Accelerator(qgraph, plan)
        divisor = uart_divisor(clock_hz, baud)
        first = qgraph.layers[0]
        self.image_elements = math.prod(qgraph.graph.input_shape)
        if first.in_format.bits > 8:
            raise CnnhwError("the serial protocol sends one byte per input element: use at most 8 input bits")
        self.front = SerialFrontEnd(self.image_elements, self.accelerator.i.payload.shape(),
                                    self.accelerator.o.payload.shape(), self.accelerator.classes,
                                    timeout_cycles=max(16 * divisor, int(timeout_s * clock_hz)))
        self.receiver = UARTReceiver(divisor)
        self.transmitter = UARTTransmitter(divisor)
        members = {"rx": In(1, init=1), "tx": Out(1, init=1), "busy": Out(1),
                   "last_class": Out(self.front.last_class.shape())}
        self.clock_hz, self.weights_offset = clock_hz, weights_offset
        if self.accelerator.spram_stores():
            if weights_offset is None:
                raise CnnhwError("weights in SPRAM need a flash offset for the weight image (the board profile's "
                                 "flash.weights_offset)")
            members["spi"] = Out(SPIFlashSignature())
        super().__init__(members)

    def weight_image(self) -> WeightImage | None:
        """The image the loader expects in flash, or None when every weight is in a ROM."""
        stores = self.accelerator.spram_stores()
        if not stores:
            return None
        return WeightImage.from_blocks([block for store in stores for block in store.block_contents()])

    def memories(self) -> list[tuple[str, MemoryShape]]:
        return [("serial", shape) for shape in self.front.memories()] + self.accelerator.memories()

    def elaborate(self, platform):
        m = Module()
        m.submodules.accelerator = self.accelerator
        m.submodules.front = self.front
        m.submodules.receiver = self.receiver
        m.submodules.transmitter = self.transmitter
        m.d.comb += [self.receiver.rx.eq(self.rx), self.tx.eq(self.transmitter.tx), self.busy.eq(self.front.busy),
                     self.last_class.eq(self.front.last_class)]
        wiring.connect(m, self.receiver.o, self.front.rx_byte)
        wiring.connect(m, self.front.tx_byte, self.transmitter.i)
        wiring.connect(m, self.front.image, self.accelerator.i)
        wiring.connect(m, self.accelerator.o, self.front.logits)
        wiring.connect(m, self.accelerator.cls, self.front.cls)
        image = self.weight_image()
        if image is not None:
            m.submodules.loader = loader = WeightLoader(image, self.weights_offset, self.clock_hz)
            wiring.connect(m, loader.load, self.accelerator.load)
            wiring.connect(m, loader.spi, wiring.flipped(self.spi))
            m.d.comb += self.front.status.eq(loader.status)
        return m
