"""The serial protocol's host side: framing, CRC, resynchronisation."""

import random
import zlib

import pytest

from cnnhw.protocol.frames import (SYNC, Frame, FrameDecoder, FrameType, class_bytes, crc8, decode_result, encode,
                                    image_payload, result_payload_bytes)
from cnnhw.protocol.weight_image import IMAGE_CRC, WeightImage


def test_crc8_check_value():
    assert crc8(b"123456789") == 0xF4  # the catalogued check value of CRC-8/SMBUS


def test_the_weight_image_crc_is_zlibs_byte_wise_and_bit_serially():
    """The host checks images with zlib; the loader runs IMAGE_CRC a bit per cycle, each byte least
    significant bit first: all three agree."""
    data = random.Random(1).randbytes(300)
    bits = [(byte >> bit) & 1 for byte in data for bit in range(8)]
    assert IMAGE_CRC(data_width=8).compute(data) == IMAGE_CRC(data_width=1).compute(bits) == zlib.crc32(data)
    assert WeightImage((150,), data).crc32 == zlib.crc32(data)


def test_round_trip_and_resync_after_garbage_and_corruption():
    rng = random.Random(0)
    frames = [encode(FrameType.CLASSIFY, bytes(rng.randrange(256) for _ in range(n))) for n in (0, 1, 784)]
    corrupted = bytearray(frames[2])
    corrupted[100] ^= 0x10
    stream = b"\x00\xa5junk" + frames[0] + bytes(corrupted) + SYNC + frames[1] + frames[2]
    decoder = FrameDecoder()
    got = []
    for start in range(0, len(stream), 7):  # bytes arrive in small pieces
        got += decoder.feed(stream[start:start + 7])
    assert [len(f.payload) for f in got] == [0, 1, 784]
    assert got[2].payload == frames[2][5:-1]
    assert decoder.rejected >= 1


def test_result_decoding_and_image_bytes():
    payload = (-2).to_bytes(2, "little", signed=True) + (300).to_bytes(2, "little", signed=True) + bytes([7])
    result = decode_result(Frame(FrameType.RESULT, payload), 2, 2)
    assert result.cls == 7 and result.logits == [-2, 300]
    with pytest.raises(ValueError, match="a RESULT of 5 bytes, expected 7"):
        decode_result(Frame(FrameType.RESULT, payload), 3, 2)
    assert image_payload([-128, -1, 0, 127], signed=True, bits=8) == bytes([0x80, 0xFF, 0x00, 0x7F])
    assert image_payload([0, 15], signed=False, bits=4) == bytes([0, 15])


@pytest.mark.parametrize("outputs, width", [(1, 1), (2, 1), (256, 1), (257, 2), (640, 2), (65536, 2), (65537, 3)])
def test_the_class_field_holds_the_largest_index(outputs, width):
    assert class_bytes(outputs) == width
    assert result_payload_bytes(outputs, 2) == 2 * outputs + width


def test_a_two_byte_class_decodes_little_endian():
    payload = bytes(640 * 2) + (532).to_bytes(2, "little")
    assert decode_result(Frame(FrameType.RESULT, payload), 640, 2).cls == 532


def test_a_corrupted_length_does_not_stall_the_decoder():
    good = encode(FrameType.RESULT, bytes(21))
    bad = bytearray(good)
    bad[4] = 0xFF  # length 65301: impossible for a result
    decoder = FrameDecoder(max_length=64)
    frames = decoder.feed(bytes(bad) + good)
    assert [len(f.payload) for f in frames] == [21] and decoder.rejected == 1
