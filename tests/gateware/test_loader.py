"""WeightLoader against a small SPI flash model (Amaranth simulator): the words it writes to the
SPRAM blocks, and the status it ends in, for a good image, an erased flash, another build's image,
a damaged payload, and a flash that stays asleep (the loader must wake it)."""

import zlib

import pytest

from cnnhw.gateware.loader import WeightLoader, load_cycles
from cnnhw.protocol.frames import Status
from cnnhw.protocol.weight_image import HEADER, WeightImage
from tests.gateware.streams import run

OFFSET = 0x100


class FlashModel:
    """SPI mode 0, commands 0xAB (wake) and 0x03 (read); starts in deep power-down and ignores a
    command within tRES1 (3 us) of waking, like the W25Q128JV."""

    def __init__(self, contents: bytes, clock_hz: float, asleep: bool = True, ignores_wake: bool = False):
        self.contents, self.asleep, self.ignores_wake = contents, asleep, ignores_wake
        self.wake_cycles = 3e-6 * clock_hz
        self.bits, self.command, self.address, self.reading, self.out = 0, 0, 0, False, []
        self.woke_at, self.ignoring = None, False

    def select(self, cycle: int) -> None:
        self.ignoring = self.woke_at is not None and cycle - self.woke_at < self.wake_cycles

    def rising(self, copi: int) -> None:
        if self.ignoring:
            return
        if self.bits < 8:
            self.command = (self.command << 1 | copi) & 0xFF
        elif self.bits < 32:
            self.address = (self.address << 1 | copi) & 0xFFFFFF
        self.bits += 1
        if self.bits == 32 and self.command == 0x03 and not self.asleep:
            self.reading = True
            self.out = []

    def falling(self) -> int:
        if not self.reading:
            return 1
        if not self.out:
            byte = self.contents[self.address] if self.address < len(self.contents) else 0xFF
            self.out = [(byte >> bit) & 1 for bit in range(7, -1, -1)]
            self.address += 1
        return self.out.pop(0)

    def deselect(self, cycle: int) -> None:
        if self.bits == 8 and self.command == 0xAB and not self.ignores_wake and not self.ignoring:
            self.asleep, self.woke_at = False, cycle
        self.bits, self.reading, self.out = 0, False, []


def load(image: WeightImage, flash_bytes: bytes, clock_hz: float = 1e6,
         **model) -> tuple[int, dict[tuple[int, int], int]]:
    dut = WeightLoader(image, OFFSET, clock_hz)  # at 1 MHz: 20 wake cycles, one cycle per half-bit
    flash = FlashModel(flash_bytes, clock_hz, **model)
    written, outcome = {}, {}

    async def bench(ctx):
        sck = cs_n = 1
        for cycle in range(dut.wake_cycles + 40 * dut.half_bit_cycles * (len(image.to_bytes()) + 30)):
            await ctx.tick()
            new_sck, new_cs_n, copi = ctx.get(dut.spi.sck), ctx.get(dut.spi.cs_n), ctx.get(dut.spi.copi)
            if new_cs_n and not cs_n:
                flash.deselect(cycle)
            elif not new_cs_n:
                if cs_n:
                    flash.select(cycle)
                if new_sck and not sck:
                    flash.rising(copi)
                elif sck and not new_sck:
                    ctx.set(dut.spi.cipo, flash.falling())
            sck, cs_n = new_sck, new_cs_n
            if ctx.get(dut.load.write):
                assert ctx.get(dut.load.loading)
                written[(ctx.get(dut.load.block), ctx.get(dut.load.addr))] = ctx.get(dut.load.data)
            if ctx.get(dut.status) != Status.LOADING_WEIGHTS:
                outcome["cycles"] = cycle + 1
                break
        outcome["status"] = ctx.get(dut.status)
        outcome["loading"] = ctx.get(dut.load.loading)

    run(dut, bench)
    assert not outcome["loading"]  # the SPRAM address buses are released in every case
    assert outcome["cycles"] <= load_cycles(image, clock_hz)  # the bound the board simulation waits for
    return outcome["status"], written


IMAGE = WeightImage.from_blocks([(0, [0x1234, 0xFFFF, 0x0001, 0x8000]), (1, [0xBEEF, 0x0000, 0x7F80])])


def flash_with(image_bytes: bytes) -> bytes:
    return bytes([0x55] * OFFSET) + image_bytes  # stand-in bitstream, then the image


@pytest.mark.parametrize("clock_hz", [1e6, 48e6])  # 48 MHz: two cycles per SCK half-period
def test_a_good_image_fills_every_block_word_and_ends_ready(clock_hz):
    status, written = load(IMAGE, flash_with(IMAGE.to_bytes()), clock_hz)
    assert status == Status.READY
    expected = {(block, address): word for block, words in enumerate([[0x1234, 0xFFFF, 0x0001, 0x8000],
                                                                     [0xBEEF, 0x0000, 0x7F80]])
                for address, word in enumerate(words)}
    assert written == expected


@pytest.mark.parametrize("case", ["erased flash", "another build's image", "a flipped payload bit",
                                  "a flash that is never woken"])
def test_a_bad_image_ends_in_bad_weights(case):
    contents, model = flash_with(IMAGE.to_bytes()), {}
    if case == "erased flash":
        contents = bytes([0xFF] * (OFFSET + len(IMAGE.to_bytes())))
    elif case == "another build's image":
        other = WeightImage.from_blocks([(0, [0x1234, 0xFFFF, 0x0001, 0x8001]), (1, [0xBEEF, 0x0000, 0x7F80])])
        contents = flash_with(other.to_bytes())
    elif case == "a flipped payload bit":
        damaged = bytearray(IMAGE.to_bytes())
        damaged[HEADER.size + 5] ^= 0x04
        assert zlib.crc32(damaged[HEADER.size:]) != IMAGE.crc32
        contents = flash_with(bytes(damaged))
    else:
        model = {"ignores_wake": True}
    status, _ = load(IMAGE, contents, **model)
    assert status == Status.BAD_WEIGHTS


def test_the_flash_is_given_time_to_wake(monkeypatch):
    """The model ignores commands within tRES1 of waking (as the W25Q128JV does): a loader that
    did not wait would read nothing, so the wait is needed and long enough."""
    import cnnhw.gateware.loader as loader

    monkeypatch.setattr(loader, "WAKE_US", 0)
    assert load(IMAGE, flash_with(IMAGE.to_bytes()), 48e6)[0] == Status.BAD_WEIGHTS  # 144 cycles of tRES1
