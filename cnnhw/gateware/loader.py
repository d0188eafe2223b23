"""The weight loader: after configuration, copy the weight image from the SPI flash into SPRAM.

Sequence (SPI mode 0, ``sck`` = clock / 2 up to 40 MHz, slower above; every output a register):

1. wake the flash: command 0xAB (release from deep power-down; the iCE40 sends the flash to
   sleep after configuring itself), then wait ``WAKE_US`` (the W25Q128's tRES1 is 3 us);
2. read: command 0x03 and the 24-bit address ``offset``, then stream the image (header, payload)
   in one transfer, one byte per 16 cycles;
3. header: its 16 bytes must equal this build's (``WeightImage.header``: magic, version, block
   count, length, CRC-32); the first byte that differs ends the load as bad weights (an erased
   flash fails at byte 0);
4. payload: every two bytes make one 16-bit word, written to the next address of the current
   SPRAM block (``layout`` gives each block's word count) through the ``load`` bus; the CRC-32 of
   the payload is computed on the way (one bit per cycle, eight cycles per byte, while the next
   byte shifts in);
5. the CRC must equal the header's: then ``status`` becomes READY, else BAD_WEIGHTS.

``status`` (:class:`cnnhw.protocol.frames.Status`) is LOADING_WEIGHTS from reset until then; the
serial front end answers with it instead of classifying, so a half-loaded or damaged image can
never produce a class. ``load.loading`` is high while the loader owns the SPRAM address buses.
Duration: about ``16 * (20 + image bytes)`` cycles (LeNet-5's 61 KB: 47 ms at 21 MHz).
"""

from __future__ import annotations

import math

from amaranth import Array, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..protocol.frames import Status
from ..protocol.weight_image import IMAGE_CRC, WeightImage
from .spram import LoadSignature

#: Flash commands (JEDEC, every SPI NOR flash).
RELEASE_POWER_DOWN, READ = 0xAB, 0x03
#: Wait after waking the flash (tRES1 is 3 us on the iCEBreaker's W25Q128JV; margin for others).
WAKE_US = 20
#: Shortest half SCK period: from the falling edge (the flash's data changes) to the sample, the pads
#: and the flash's clock-to-output (W25Q128JV tCLQV 7 ns) take about 20 ns. Up to 40 MHz one cycle.
MIN_HALF_BIT_NS = 25
#: IMAGE_CRC is reflected (bytes least significant bit first), so its register shifts right with the
#: polynomial's bits reversed (0xEDB88320 for CRC-32).
assert IMAGE_CRC.reflect_input and IMAGE_CRC.reflect_output
CRC_POLYNOMIAL_REFLECTED = int(f"{IMAGE_CRC.polynomial:0{IMAGE_CRC.crc_width}b}"[::-1], 2)


def wake_cycles(clock_hz: float) -> int:
    """Cycles the loader waits after waking the flash."""
    return max(2, int(WAKE_US * 1e-6 * clock_hz))


def half_bit_cycles(clock_hz: float) -> int:
    """Cycles per half SCK period (MIN_HALF_BIT_NS or more)."""
    return max(1, math.ceil(MIN_HALF_BIT_NS * 1e-9 * clock_hz))


def load_cycles(image: WeightImage, clock_hz: float) -> int:
    """An upper bound of the loader's time from reset to its verdict: the wake command and wait,
    then the read command, header and payload, 16 half-bits a byte, and the last CRC bits."""
    return 16 * half_bit_cycles(clock_hz) * (1 + 4 + len(image.to_bytes())) + wake_cycles(clock_hz) + 100


class SPIFlashSignature(wiring.Signature):
    """The controller's side of a single-bit SPI bus."""

    def __init__(self):
        super().__init__({"sck": Out(1), "cs_n": Out(1, init=1), "copi": Out(1), "cipo": In(1)})


class WeightLoader(wiring.Component):
    def __init__(self, image: WeightImage, offset: int, clock_hz: float):
        if not 0 <= offset < 1 << 24:
            raise ValueError(f"flash offset {offset:#x} does not fit a 24-bit address")
        self.image, self.offset = image, offset
        self.wake_cycles, self.half_bit_cycles = wake_cycles(clock_hz), half_bit_cycles(clock_hz)
        super().__init__({"spi": Out(SPIFlashSignature()), "load": Out(LoadSignature()),
                          "status": Out(Status, init=Status.LOADING_WEIGHTS)})

    def elaborate(self, platform):
        m = Module()
        spi, load = self.spi, self.load
        header = self.image.header
        layout = self.image.layout
        command = [READ, (self.offset >> 16) & 0xFF, (self.offset >> 8) & 0xFF, self.offset & 0xFF]
        total = len(command) + len(header) + len(self.image.payload)

        # ------------------------------------------------------------ the byte engine
        # Each bit takes two half-bits of `half_bit_cycles` cycles: sck low with copi set, then sck
        # high (the flash samples copi on that rising edge; cipo, which the flash changed on the
        # falling edge, is sampled too, a half-bit after it: that must cover the pads and the
        # flash's clock-to-output, hence MIN_HALF_BIT_NS).
        active = Signal()
        step = Signal(4)  # half-bit within the byte
        out_byte = Signal(8)  # the byte being sent
        shift_in = Signal(8)
        got = Signal()  # shift_in holds a whole byte (one cycle)
        tick = Signal()  # the engine moves on by a half-bit
        if self.half_bit_cycles == 1:
            m.d.comb += tick.eq(1)
        else:
            prescale = Signal(range(self.half_bit_cycles))
            m.d.sync += prescale.eq(Mux(~active | tick, 0, prescale + 1))
            m.d.comb += tick.eq(prescale == self.half_bit_cycles - 1)
        m.d.sync += got.eq(0)
        with m.If(active & tick):
            m.d.sync += [step.eq(step + 1), got.eq(step == 15)]
            with m.If(~step[0]):
                m.d.sync += [spi.sck.eq(0), spi.copi.eq(out_byte.bit_select(~step[1:], 1))]
            with m.Else():
                m.d.sync += [spi.sck.eq(1), shift_in.eq((shift_in << 1) | spi.cipo)]
        with m.Elif(~active):
            m.d.sync += [spi.sck.eq(0), step.eq(0)]

        received = Signal(range(total + 1))  # bytes of this transfer completed (also: the byte being sent)
        with m.If(got):
            m.d.sync += received.eq(received + 1)

        # ------------------------------------------------------------ IMAGE_CRC of the payload
        # A bit per cycle, as a shift register: ``amaranth.lib.crc``'s Processor computes the same
        # as an XOR matrix in a few more logic cells, which LeNet-5's 8-DSP plan does not have.
        crc = Signal(IMAGE_CRC.crc_width, init=int(f"{IMAGE_CRC.initial_crc:0{IMAGE_CRC.crc_width}b}"[::-1], 2))
        crc_byte = Signal(8)
        crc_bits = Signal(range(9))  # bits of crc_byte still to fold in
        with m.If(crc_bits != 0):
            feedback = crc[0] ^ crc_byte[0]
            m.d.sync += [crc.eq((crc >> 1) ^ Mux(feedback, CRC_POLYNOMIAL_REFLECTED, 0)), crc_byte.eq(crc_byte >> 1),
                         crc_bits.eq(crc_bits - 1)]

        # ------------------------------------------------------------ writing words
        block = Signal(range(max(len(layout), 2)))
        address = Signal(14)
        low = Signal(8)  # the first byte of a word
        odd = Signal()  # the next payload byte is a word's high byte
        block_words = Array(Const(words - 1, 14) for words in layout)
        m.d.sync += load.write.eq(0)

        wait = Signal(range(self.wake_cycles + 1))
        expected_header = Array(Const(value, 8) for value in header)
        header_index = Signal(range(len(header) + 1))
        with m.FSM(name="loader"):
            with m.State("WAKE"):
                m.d.sync += [spi.cs_n.eq(0), active.eq(1), out_byte.eq(RELEASE_POWER_DOWN), load.loading.eq(1)]
                m.next = "WAKING"
            with m.State("WAKING"):
                with m.If(got):
                    m.d.sync += [spi.cs_n.eq(1), active.eq(0), wait.eq(0)]
                    m.next = "WAIT"
            with m.State("WAIT"):
                m.d.sync += wait.eq(wait + 1)
                with m.If(wait == self.wake_cycles):
                    m.d.sync += [spi.cs_n.eq(0), active.eq(1), received.eq(0), out_byte.eq(command[0])]
                    m.next = "COMMAND"
            with m.State("COMMAND"):
                with m.If(active & tick & (step == 15)):  # byte `received` ends: the next one goes out
                    m.d.sync += out_byte.eq(Array(Const(b, 8) for b in command[1:] + [0])[received])
                with m.If(got & (received == len(command) - 1)):
                    m.d.sync += header_index.eq(0)
                    m.next = "HEADER"
            with m.State("HEADER"):
                with m.If(got):
                    m.d.sync += header_index.eq(header_index + 1)
                    with m.If(shift_in != expected_header[header_index]):
                        m.d.sync += [spi.cs_n.eq(1), active.eq(0), load.loading.eq(0),
                                     self.status.eq(Status.BAD_WEIGHTS)]
                        m.next = "DONE"
                    with m.Elif(header_index == len(header) - 1):
                        m.d.sync += [block.eq(0), address.eq(0), odd.eq(0)]
                        m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                with m.If(got):
                    m.d.sync += [crc_byte.eq(shift_in), crc_bits.eq(8), odd.eq(~odd)]
                    with m.If(~odd):
                        m.d.sync += low.eq(shift_in)
                    with m.Else():
                        # The bus is registered as a whole: block, address and data of one word go
                        # together (block may move on in this same cycle).
                        m.d.sync += [load.write.eq(1), load.block.eq(block), load.addr.eq(address),
                                     load.data.eq((shift_in << 8) | low)]
                        with m.If(address == block_words[block]):
                            m.d.sync += [address.eq(0), block.eq(block + 1)]
                        with m.Else():
                            m.d.sync += address.eq(address + 1)
                    with m.If(received == total - 1):
                        m.d.sync += [spi.cs_n.eq(1), active.eq(0)]
                        m.next = "CHECK"
            with m.State("CHECK"):
                with m.If(crc_bits == 0):
                    m.d.sync += [load.loading.eq(0),
                                 self.status.eq(Mux(crc == self.image.crc32 ^ IMAGE_CRC.xor_output, Status.READY,
                                                    Status.BAD_WEIGHTS))]
                    m.next = "DONE"
            with m.State("DONE"):
                pass
        return m
