"""The top for a real board: the PLL, a power-on reset, the UART pins, LEDs and (with weights in
SPRAM) the SPI flash pins around a BoardTop.

Only this module requests pins (DESIGN.md principle 6); everything board specific comes from the
board profile (its family's PLL, its LEDs, a UART the platform lacks) and the amaranth-boards
platform (pin names).
"""

from __future__ import annotations

from amaranth import ClockDomain, ClockSignal, Elaboratable, Module, ResetSignal, Signal
from amaranth.build import Attrs, Pins, Resource, Subsignal
from amaranth.lib import io

from ..boards import Board
from ..gateware.board import BoardTop

#: iCE40 block RAMs read as zero for about 3 us after configuration: hold reset well past that
#: (on every family: the PLL's lock is not the end of its settling either).
POWER_ON_RESET_US = 20


class PlatformTop(Elaboratable):
    def __init__(self, board_top: BoardTop, board: Board, pll):
        self.board_top = board_top
        self.board = board
        self.pll = pll

    def elaborate(self, platform):
        m = Module()
        pll, board = self.pll, self.board
        clock_pin = platform.request(platform.default_clk, dir="-")
        m.domains.sync = sync = ClockDomain("sync")
        m.domains.por = ClockDomain("por", reset_less=True)
        locked = board.family.pll(m, pll, board.input_mhz, clock_pin, sync.clk)
        platform.add_clock_constraint(sync.clk, pll.mhz * 1e6)
        # Reset until the PLL has locked and the block RAMs have woken up.
        hold = int(POWER_ON_RESET_US * pll.mhz)
        timer = Signal(range(hold + 1))
        m.d.comb += ClockSignal("por").eq(sync.clk)
        with m.If(~locked):
            m.d.por += timer.eq(0)
        with m.Elif(timer != hold):
            m.d.por += timer.eq(timer + 1)
        m.d.comb += ResetSignal("sync").eq(timer != hold)

        if board.uart_pins:
            pins = board.uart_pins
            platform.add_resources([Resource("uart", 0, Subsignal("rx", Pins(pins["rx_pin"], dir="i")),
                                             Subsignal("tx", Pins(pins["tx_pin"], dir="o")),
                                             Attrs(IO_TYPE=pins["io_type"]))])
        uart = platform.request("uart", 0, dir="-")  # rx and tx only; a DTR or RTS stays unconnected
        m.submodules.rx = rx = io.Buffer("i", uart.rx)
        m.submodules.tx = tx = io.Buffer("o", uart.tx)
        busy, class_leds = board.leds
        requested = {}  # an RGB LED's resource is requested once, its colours used apart

        def led_pins(name: str, number: int, subsignal: str):
            if (name, number) not in requested:
                requested[name, number] = platform.request(name, number, dir="-")
            pins = requested[name, number]
            return getattr(pins, subsignal) if subsignal else pins

        m.submodules.busy_led = busy_led = io.Buffer("o", led_pins(*busy))
        top = self.board_top
        # The class's low bits, one per LED the profile gives.
        for bit, spec in enumerate(class_leds[:len(top.last_class)]):
            led = io.Buffer("o", led_pins(*spec))
            m.submodules["class_led" if bit == 0 else f"class_led{bit}"] = led
            m.d.comb += led.o.eq(top.last_class[bit])
        m.submodules.board = top
        m.d.comb += [top.rx.eq(rx.i), tx.o.eq(top.tx), busy_led.o.eq(top.busy)]
        if "spi" in top.signature.members:
            self._connect_flash(m, platform, top.spi)
        return m

    @staticmethod
    def _connect_flash(m: Module, platform, spi) -> None:
        """The weight loader's SPI bus onto the configuration flash's pins (single-bit SPI).
        amaranth-boards declares chip select, write protect and hold active low (``PinsN``): the
        buffers take "asserted" and invert, so write protect and hold are driven inactive."""
        flash = platform.request("spi_flash_1x", 0, dir="-")
        m.submodules.flash_cs = cs = io.Buffer("o", flash.cs)
        m.submodules.flash_clk = clk = io.Buffer("o", flash.clk)
        m.submodules.flash_copi = copi = io.Buffer("o", flash.copi)
        m.submodules.flash_cipo = cipo = io.Buffer("i", flash.cipo)
        m.d.comb += [cs.o.eq(~spi.cs_n), clk.o.eq(spi.sck), copi.o.eq(spi.copi), spi.cipo.eq(cipo.i)]
        for name in ("wp", "hold"):
            if hasattr(flash, name):
                m.submodules[f"flash_{name}"] = pin = io.Buffer("o", getattr(flash, name))
                m.d.comb += pin.o.eq(0)
