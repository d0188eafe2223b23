"""The board top without board specifics: UART receiver and transmitter, the serial front end
(the framed protocol) and the accelerator. ``rx``/``tx`` are the UART pins; ``busy`` and
``last_class`` drive LEDs. The platform wrapper (pins, PLL) lives with the build flow.

When the plan keeps weights in SPRAM, the top also holds the :class:`WeightLoader` and an ``spi``
port for the configuration flash: the loader fills SPRAM from the weight image at
``weights_offset`` after reset, and the front end answers LOADING_WEIGHTS / BAD_WEIGHTS until
the image has been read and checked (:meth:`Accelerator.weight_image` is that image).
"""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..errors import CnnhwError
from .accelerator import Accelerator
from .loader import SPIFlashSignature, WeightLoader
from .serial import SerialFrontEnd
from .uart import MIN_CYCLES_PER_BIT, UARTReceiver, UARTTransmitter, cycles_per_bit


def uart_divisor(clock_hz: float, baud: int) -> int:
    """Clock cycles per UART bit (:func:`cycles_per_bit`); CnnhwError when the clock cannot make ``baud``."""
    divisor = cycles_per_bit(clock_hz, baud)
    if divisor is None:
        raise CnnhwError(f"a {clock_hz / 1e6:g} MHz clock cannot make {baud} baud (cycles per bit "
                         f"{clock_hz / baud:.2f}; need a whole number >= {MIN_CYCLES_PER_BIT}): choose another "
                         f"baud rate or clock")
    return divisor


class BoardTop(wiring.Component):
    def __init__(self, accelerator: Accelerator, clock_hz: float, baud: int, timeout_s: float = 0.05,
                 weights_offset: int | None = None, image_buffers: int = 2):
        """``weights_offset``: where the weight image is in the flash (the board profile's); needed
        only when the accelerator keeps weights in SPRAM. ``image_buffers``: the serial front end's."""
        self.accelerator = accelerator
        divisor = uart_divisor(clock_hz, baud)
        self.image_elements = accelerator.image_elements
        if accelerator.i.payload.shape().width > 8:
            raise CnnhwError("the serial protocol sends one byte per input element: use at most 8 input bits")
        self.front = SerialFrontEnd(self.image_elements, self.accelerator.i.payload.shape(),
                                    self.accelerator.o.payload.shape(), self.accelerator.classes,
                                    timeout_cycles=max(16 * divisor, int(timeout_s * clock_hz)),
                                    image_buffers=image_buffers)
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
        image = self.accelerator.weight_image()
        if image is not None:
            m.submodules.loader = loader = WeightLoader(image, self.weights_offset, self.clock_hz)
            wiring.connect(m, loader.load, self.accelerator.load)
            wiring.connect(m, loader.spi, wiring.flipped(self.spi))
            m.d.comb += self.front.status.eq(loader.status)
        return m
