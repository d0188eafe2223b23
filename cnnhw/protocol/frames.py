"""The framed serial protocol between a host and a cnnhw board (the one definition).

Every frame, in both directions::

    0xA5 0x5A | type (1 byte) | length (2 bytes, little endian) | payload (length bytes) | crc (1 byte)

``crc`` is CRC-8 (polynomial 0x07, initial value 0, no reflection: CRC-8/SMBUS) over type, length
and payload. The board resynchronises by looking for the two sync bytes, so after a bad frame
(wrong checksum, wrong length, unknown type, or a gap longer than the timeout in the middle of a
frame) it answers ERROR and the link keeps working.

Host to board:
    CLASSIFY (0x01): payload = the quantized image, one byte per element in stream order (HWC),
                     two's complement for signed input formats; length = elements per image.
                     As many as the board's image buffers (``MAX_IMAGE_BUFFERS`` at most) may
                     be unanswered at once (with two, the board receives one while it computes
                     another); RESULTs come in the order the images came.
    STATUS   (0x02): empty payload.
Board to host:
    RESULT (0x81): payload = every logit as a little-endian integer of ``logit_bytes`` bytes
                   (two's complement for a signed output format), in output stream order, then the
                   class, the index of the largest logit, as a little-endian integer of
                   ``class_bytes(outputs)`` bytes (1 up to 256 outputs, 2 up to 65,536). (The class
                   comes last because the board knows it only after the last logit.)
    STATUS (0x82): payload = one status byte (see ``Status``).
    ERROR  (0xE0): payload = one error byte (see ``Error``).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.lib import crc, enum

SYNC = bytes([0xA5, 0x5A])
MAX_PAYLOAD = 0xFFFF  # the length field's two bytes
#: Images a board holds at most: one being fed to the accelerator, one received meanwhile. A build
#: records its board's count (build.json ``host.image_buffers``: 2, or 1 where the plan needed the
#: block RAM); a host may send that many CLASSIFY frames before the first RESULT, and one more is
#: answered BUSY.
MAX_IMAGE_BUFFERS = 2

# The frame types, statuses and errors are Amaranth enums with the width they have on the wire (or
# on the loader's status lines): the gateware declares its signals with them, the host compares
# received bytes with them, and both read the same numbers.


class FrameType(enum.IntEnum, shape=8):
    CLASSIFY = 0x01
    STATUS_REQUEST = 0x02
    RESULT = 0x81
    STATUS = 0x82
    ERROR = 0xE0


class Status(enum.IntEnum, shape=2):
    READY = 0
    LOADING_WEIGHTS = 1
    BAD_WEIGHTS = 2


class Error(enum.IntEnum, shape=8):
    BAD_CHECKSUM = 1
    BAD_LENGTH = 2
    UNKNOWN_TYPE = 3
    TIMEOUT = 4
    BUSY = 5  # a CLASSIFY arrived while the previous image was still being fed


#: The frame checksum, CRC-8/SMBUS (polynomial 0x07, initial value 0, no reflection): the host
#: computes it with ``amaranth.lib.crc``, the board's front end from its parameters
#: (``gateware/serial.py``).
FRAME_CRC = crc.catalog.CRC8_SMBUS


def crc8(data: bytes) -> int:
    """The frame checksum of ``data``."""
    return FRAME_CRC(data_width=8).compute(data)


def encode(frame_type: int, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes does not fit a frame (at most {MAX_PAYLOAD})")
    body = bytes([int(frame_type)]) + len(payload).to_bytes(2, "little") + bytes(payload)
    return SYNC + body + bytes([crc8(body)])


def image_payload(elements, signed: bool, bits: int) -> bytes:
    """The quantized image as frame bytes (one byte per element)."""
    if bits > 8:
        raise ValueError("input elements wider than 8 bits do not fit one byte each")
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    out = bytearray()
    for value in elements:
        value = int(value)
        if not lo <= value <= hi:
            raise ValueError(f"element {value} is outside the input format [{lo}, {hi}]")
        out.append(value & 0xFF)
    return bytes(out)


@dataclass(frozen=True)
class Frame:
    type: int
    payload: bytes


class FrameDecoder:
    """Feed bytes as they arrive; complete, checked frames come out. Garbage and bad checksums are
    skipped (counted in ``rejected``), exactly as the board resynchronises."""

    def __init__(self, max_length: int = 4096):
        self.buffer = bytearray()
        self.rejected = 0
        self.max_length = max_length  # a longer length field is corruption: do not wait for it

    def feed(self, data: bytes) -> list[Frame]:
        self.buffer.extend(data)
        frames = []
        while True:
            start = self.buffer.find(SYNC)
            if start < 0:
                del self.buffer[:max(0, len(self.buffer) - 1)]  # keep a possible first sync byte
                return frames
            del self.buffer[:start]
            if len(self.buffer) < 5:
                return frames
            length = int.from_bytes(self.buffer[3:5], "little")
            if length > self.max_length:
                self.rejected += 1
                del self.buffer[:2]
                continue
            end = 5 + length + 1
            if len(self.buffer) < end:
                return frames
            body = bytes(self.buffer[2:5 + length])
            if crc8(body) == self.buffer[5 + length]:
                frames.append(Frame(body[0], body[3:]))
                del self.buffer[:end]
            else:
                self.rejected += 1
                del self.buffer[:2]  # not a frame after all: look for the next sync


def logit_bytes(bits: int) -> int:
    """Bytes of each output value of a RESULT, for an output format of ``bits`` bits."""
    return (bits + 7) // 8


def class_bytes(outputs: int) -> int:
    """Bytes of the class field of a RESULT for a model with ``outputs`` values: enough for the
    largest index, ``outputs - 1``, and at least one."""
    return max(1, ((max(outputs, 2) - 1).bit_length() + 7) // 8)


def result_payload_bytes(outputs: int, logit_bytes: int) -> int:
    """The length of a RESULT payload: every output value, then the class."""
    return outputs * logit_bytes + class_bytes(outputs)


@dataclass(frozen=True)
class Result:
    cls: int
    logits: list[int]


def decode_result(frame: Frame, outputs: int, logit_bytes: int, signed: bool = True) -> Result:
    """The values and class of a RESULT frame from a model with ``outputs`` values; a payload of
    another length (another bitstream) raises ``ValueError``."""
    if frame.type != FrameType.RESULT:
        raise ValueError(f"expected a RESULT frame, got type 0x{frame.type:02X}")
    expected = result_payload_bytes(outputs, logit_bytes)
    if len(frame.payload) != expected:
        raise ValueError(f"a RESULT of {len(frame.payload)} bytes, expected {expected} "
                         f"({outputs} values of {logit_bytes} bytes and a {class_bytes(outputs)}-byte class)")
    logits = [int.from_bytes(frame.payload[i * logit_bytes:(i + 1) * logit_bytes], "little", signed=signed)
              for i in range(outputs)]
    return Result(int.from_bytes(frame.payload[outputs * logit_bytes:], "little"), logits)
