"""The top for a real board: the PLL, a power-on reset, the UART pins, LEDs and (with weights in
SPRAM) the SPI flash pins around a BoardTop.

Only this module requests pins (DESIGN.md principle 6); everything board specific comes from the
board profile (PLL divider settings) and the amaranth-boards platform (pin names).
"""

from __future__ import annotations

from amaranth import ClockDomain, ClockSignal, Elaboratable, Instance, Module, ResetSignal, Signal
from amaranth.lib import io

from ..boards import PllSetting
from ..gateware.board import BoardTop

#: iCE40 block RAMs read as zero for about 3 us after configuration: hold reset well past that.
POWER_ON_RESET_US = 20


class PlatformTop(Elaboratable):
    def __init__(self, board_top: BoardTop, pll: PllSetting):
        self.board_top = board_top
        self.pll = pll

    def elaborate(self, platform):
        m = Module()
        pll = self.pll
        clock_pin = platform.request(platform.default_clk, dir="-")
        m.domains.sync = sync = ClockDomain("sync")
        m.domains.por = ClockDomain("por", reset_less=True)
        locked = Signal()
        m.submodules.pll = Instance(
            "SB_PLL40_PAD",
            p_FEEDBACK_PATH="SIMPLE", p_DIVR=pll.divr, p_DIVF=pll.divf, p_DIVQ=pll.divq,
            p_FILTER_RANGE=pll.filter_range,
            io_PACKAGEPIN=clock_pin.io, i_RESETB=1, i_BYPASS=0,
            o_PLLOUTGLOBAL=sync.clk, o_LOCK=locked,
        )
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

        uart = platform.request("uart", 0, dir={"rx": "-", "tx": "-"})
        m.submodules.rx = rx = io.Buffer("i", uart.rx)
        m.submodules.tx = tx = io.Buffer("o", uart.tx)
        m.submodules.busy_led = busy_led = io.Buffer("o", platform.request("led_r", 0, dir="-"))
        m.submodules.class_led = class_led = io.Buffer("o", platform.request("led_g", 0, dir="-"))
        m.submodules.board = top = self.board_top
        m.d.comb += [top.rx.eq(rx.i), tx.o.eq(top.tx), busy_led.o.eq(top.busy), class_led.o.eq(top.last_class[0])]
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
