"""UART receiver and transmitter: 8 data bits, no parity, one stop bit (8N1), LSB first.

``divisor`` is clock cycles per bit (``clock_hz / baud``, a whole number of at least
``MIN_CYCLES_PER_BIT``: :func:`cycles_per_bit`). The receiver samples the middle of each bit after a
two-flop synchroniser; a byte arriving while the previous one is still unread is dropped and
counted in ``overrun`` (the protocol's checksum then rejects the frame). The transmitter takes a
byte whenever it is idle.
"""

from __future__ import annotations

from amaranth import Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out


#: The receiver's fewest clock cycles per bit: its start edge passes a two-flop synchroniser, and
#: with four cycles a bit the sample still lands within a quarter bit of the middle.
MIN_CYCLES_PER_BIT = 4
#: How far a clock's bit time may be from the baud rate's (the far end samples mid-bit too).
BAUD_TOLERANCE = 0.01


def cycles_per_bit(clock_hz: float, baud: int) -> int | None:
    """Clock cycles per bit at ``baud``, or None when this clock cannot make the rate (not a whole
    number of cycles within ``BAUD_TOLERANCE``, or fewer than ``MIN_CYCLES_PER_BIT``)."""
    divisor = round(clock_hz / baud)
    if divisor < MIN_CYCLES_PER_BIT or abs(clock_hz / divisor - baud) > BAUD_TOLERANCE * baud:
        return None
    return divisor


class UARTReceiver(wiring.Component):
    """``rx`` (the pin, idle high) in; ``o``: received bytes; ``framing_error`` pulses on a bad stop bit."""

    def __init__(self, divisor: int):
        if divisor < MIN_CYCLES_PER_BIT:
            raise ValueError(f"a UART bit needs at least {MIN_CYCLES_PER_BIT} clock cycles, not {divisor}")
        self.divisor = divisor
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(unsigned(8))), "framing_error": Out(1),
                          "overrun": Out(1)})

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)
        timer = Signal(range(self.divisor * 3 // 2 + 1))
        bits = Signal(range(10))
        shift = Signal(8)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        m.d.sync += [self.framing_error.eq(0), self.overrun.eq(0)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    # Wait 1.5 bits from the start edge: the middle of data bit 0.
                    m.d.sync += [timer.eq(self.divisor * 3 // 2 - 2), bits.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shift.eq(rx << 7 | shift >> 1), bits.eq(bits + 1), timer.eq(self.divisor - 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(rx):
                        with m.If(self.o.valid & ~self.o.ready):
                            m.d.sync += self.overrun.eq(1)
                        with m.Else():
                            m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
                    with m.Else():
                        m.d.sync += self.framing_error.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
        return m


class UARTTransmitter(wiring.Component):
    """``i``: bytes to send; ``tx``: the pin (idle high). Takes a byte when idle; 10 bits per byte."""

    def __init__(self, divisor: int):
        if divisor < 1:
            raise ValueError(f"divisor must be positive, not {divisor}")
        self.divisor = divisor
        super().__init__({"i": In(stream.Signature(unsigned(8))), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        frame = Signal(10, init=0x3FF)  # start bit, 8 data bits (LSB first), stop bit
        left = Signal(range(11))
        m.d.comb += [self.tx.eq(frame[0]), self.i.ready.eq(left == 0)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [frame.eq((1 << 9) | (self.i.payload << 1)), left.eq(10), timer.eq(self.divisor - 1)]
        with m.Elif(left != 0):
            with m.If(timer == 0):
                m.d.sync += [frame.eq((1 << 9) | (frame >> 1)), left.eq(left - 1), timer.eq(self.divisor - 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m
