"""The weight image: what the build writes for weights kept in SPRAM, and the loader reads from
the SPI flash at boot (the one definition; ``gateware/loader.py`` checks exactly this).

Layout (all integers little endian)::

    offset 0   magic      b"CNNW"
           4   version    u16 = 1
           6   blocks     u16: SPRAM blocks the payload fills, in block order 0, 1, ...
           8   length     u32: payload bytes
          12   crc32      u32: IMAGE_CRC of the payload (CRC-32/ISO-HDLC, zlib's)
          16   payload    for each block, its words from address 0 as u16

How many words each block gets is fixed by the build (the ``layout``: one entry per block), so the
loader knows where each word goes; the header only confirms that the image is this build's. The
bitstream carries the expected header: an image from another build, a damaged one, or an erased
flash (all 0xFF) is refused with the bad-weights status, never used.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from amaranth.lib import crc

from ..errors import CnnhwError

#: The payload's checksum. The loader computes it from these parameters a bit per cycle, each byte
#: least significant bit first (``gateware/loader.py``); the host with ``zlib.crc32``, 100 times as
#: fast as ``IMAGE_CRC(data_width=8).compute`` (a test checks that all of them agree).
IMAGE_CRC = crc.catalog.CRC32_ISO_HDLC
MAGIC = b"CNNW"
VERSION = 1
HEADER = struct.Struct("<4sHHII")


@dataclass(frozen=True)
class WeightImage:
    layout: tuple[int, ...]  # words per block, block 0 first
    payload: bytes

    @staticmethod
    def from_blocks(blocks: list[tuple[int, list[int]]]) -> "WeightImage":
        """From (block index, 16-bit words) in block order, numbered 0, 1, ... without gaps."""
        for expected, (index, _) in enumerate(blocks):
            if index != expected:
                raise ValueError(f"SPRAM blocks must be numbered 0, 1, ... in order (got {index} at {expected})")
        payload = b"".join(struct.pack(f"<{len(words)}H", *words) for _, words in blocks)
        return WeightImage(tuple(len(words) for _, words in blocks), payload)

    @property
    def crc32(self) -> int:
        """IMAGE_CRC of the payload."""
        return zlib.crc32(self.payload)

    @property
    def header(self) -> bytes:
        return HEADER.pack(MAGIC, VERSION, len(self.layout), len(self.payload), self.crc32)

    def to_bytes(self) -> bytes:
        return self.header + self.payload


def check_image_file(path: Path, expected_bytes: int | None = None) -> bytes:
    """The bytes of a weight image file, after checking its header and CRC (CnnhwError if not)."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise CnnhwError(f"{path}: cannot read the weight image ({error.strerror})") from None
    if len(data) < HEADER.size:
        raise CnnhwError(f"{path}: not a cnnhw weight image (only {len(data)} bytes); rebuild with cnnhw build")
    magic, version, _, length, crc = HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION:
        raise CnnhwError(f"{path}: not a cnnhw weight image version {VERSION} (magic {magic!r}, version {version}); "
                         f"rebuild with cnnhw build")
    if len(data) != HEADER.size + length or zlib.crc32(data[HEADER.size:]) != crc:
        raise CnnhwError(f"{path}: the weight image is damaged (length or CRC-32 wrong); rebuild with cnnhw build")
    if expected_bytes is not None and len(data) != expected_bytes:
        raise CnnhwError(f"{path}: {len(data)} bytes, but build.json records {expected_bytes}; rebuild with cnnhw build")
    return data
