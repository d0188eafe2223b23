"""The board top without board specifics: UART receiver and transmitter, the serial front end
(the framed protocol) and the accelerator. ``rx``/``tx`` are the UART pins; ``busy`` and
``last_class`` drive LEDs. The platform wrapper (pins, PLL) lives with the build flow.
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
    def __init__(self, qgraph: QGraph, plan: HardwarePlan, clock_hz: float, baud: int, timeout_s: float = 0.05):
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
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "busy": Out(1),
                          "last_class": Out(self.front.last_class.shape())})

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
        return m
