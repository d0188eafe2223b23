"""The serial front end alone, in Amaranth's simulator, at the byte level: frames in on ``rx_byte``,
replies out of ``tx_byte`` (taken with random stalls) decoded by the host's protocol code, and the
accelerator's side played by the testbench (image elements taken with random stalls, logits and the
class given back). Every reply the protocol defines, and what reaches the accelerator, is checked."""

from __future__ import annotations

import random

import pytest
from amaranth import signed, unsigned
from amaranth.sim import Simulator

from cnnhw.gateware.serial import SerialFrontEnd
from cnnhw.protocol.frames import Error, Frame, FrameDecoder, FrameType, Status, decode_result, encode

ELEMENTS, CLASSES, TIMEOUT = 6, 3, 60
LOGIT = signed(12)  # two bytes per logit on the wire
BYTE_GAP = 3  # idle cycles between received bytes: a UART delivers one byte every few cycles


def _run(script: list[tuple[bytes, int]], status: Status = Status.READY, seed: int = 0, first_take: int = 0,
         classes: int = CLASSES, logit=LOGIT, image_buffers: int = 2):
    """Send each (bytes, idle cycles after them) of ``script``; the accelerator takes no element
    before cycle ``first_take`` and answers each image with ``classes`` logits 100 * k - sum(image)
    and class ``sum(image) % classes``. Returns (reply frames, images the accelerator got)."""
    front = SerialFrontEnd(ELEMENTS, unsigned(8), logit, classes, TIMEOUT, image_buffers)
    rng = random.Random(seed)
    replies, images = bytearray(), []

    async def sender(ctx):
        ctx.set(front.status, status)
        for data, idle in script:
            for byte in data:
                ctx.set(front.rx_byte.payload, byte)
                ctx.set(front.rx_byte.valid, 1)
                await ctx.tick()
                ctx.set(front.rx_byte.valid, 0)
                await ctx.tick().repeat(BYTE_GAP)
            if idle:
                await ctx.tick().repeat(idle)
        await ctx.tick().repeat(400 + 4 * classes)  # the last reply goes out

    async def accelerator(ctx):
        image = []
        await ctx.tick().repeat(first_take + 1)
        while True:
            taken = await _take(ctx, front.image, rng.random() < 0.6)
            if taken is not None:
                image.append(taken)
            if len(image) == ELEMENTS:
                images.append(image)
                total = sum(image)
                ctx.set(front.image.ready, 0)
                for value in [100 * k - total for k in range(classes)]:
                    await _give(ctx, front.logits, value)
                await _give(ctx, front.cls, total % classes)
                image = []

    async def receiver(ctx):
        while True:
            taken = await _take(ctx, front.tx_byte, rng.random() < 0.7)
            if taken is not None:
                replies.append(taken)

    simulator = Simulator(front)
    simulator.add_clock(1e-8)
    simulator.add_testbench(sender)
    simulator.add_testbench(accelerator, background=True)
    simulator.add_testbench(receiver, background=True)
    simulator.run()
    return FrameDecoder().feed(bytes(replies)), images


async def _take(ctx, port, ready: bool):
    """One cycle of the stream ``port``'s sink, ready or not: the payload it took, or None."""
    ctx.set(port.ready, ready)
    _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
    return payload if valid and ready else None


async def _give(ctx, port, value):
    """Offer ``value`` on the stream ``port`` until it is taken."""
    ctx.set(port.payload, value)
    ctx.set(port.valid, 1)
    while True:
        _, _, ready = await ctx.tick().sample(port.ready)
        if ready:
            break
    ctx.set(port.valid, 0)


def _error(code: Error) -> Frame:
    return Frame(FrameType.ERROR, bytes([code]))


def test_every_reply_and_only_good_images_reach_the_accelerator():
    good = bytes([3, 1, 4, 1, 5, 9])
    other = bytes([2, 7, 1, 8, 2, 8])
    damaged = bytearray(encode(FrameType.CLASSIFY, other))
    damaged[7] ^= 0x40  # a payload byte: only the checksum can tell
    script = [
        (encode(FrameType.STATUS_REQUEST), 0),
        (bytes(damaged), 0),
        (encode(FrameType.CLASSIFY, good[:5]), 0),  # one element short
        (encode(0x7E, b"\x00"), 0),  # a type the board does not know
        (b"\x00\xa5\x17", 0),  # garbage before the next sync: skipped without a reply
        (encode(FrameType.CLASSIFY, good), 300),  # classified; the result goes out before the next
        (encode(FrameType.CLASSIFY, other)[:6], TIMEOUT + 20),  # cut off in mid-payload
        (encode(FrameType.CLASSIFY, other), 300),
    ]
    frames, images = _run(script)
    assert images == [list(good), list(other)]
    assert frames[:4] == [Frame(FrameType.STATUS, bytes([Status.READY])), _error(Error.BAD_CHECKSUM),
                          _error(Error.BAD_LENGTH), _error(Error.UNKNOWN_TYPE)]
    assert frames[5] == _error(Error.TIMEOUT)
    for frame, image in zip([frames[4], frames[6]], [good, other]):
        result = decode_result(frame, CLASSES, logit_bytes=2)
        assert result.logits == [100 * k - sum(image) for k in range(CLASSES)]
        assert result.cls == sum(image) % CLASSES
    assert len(frames) == 7


def test_an_image_is_received_while_the_one_before_is_fed_and_a_third_is_busy():
    first, second, third = bytes([1] * ELEMENTS), bytes([2] * ELEMENTS), bytes([3] * ELEMENTS)
    frames, images = _run([(encode(FrameType.CLASSIFY, first), 0), (encode(FrameType.CLASSIFY, second), 0),
                           (encode(FrameType.CLASSIFY, third), 600)], first_take=150)
    # The accelerator takes nothing for 150 cycles: the second frame arrives while the first image
    # waits to be fed and goes into the other buffer; the third finds both taken and is refused.
    # Both images are fed, in order, and answered in order.
    assert images == [list(first), list(second)]
    assert frames[0] == _error(Error.BUSY)
    assert [decode_result(f, CLASSES, logit_bytes=2).cls for f in frames[1:]] == [sum(first) % CLASSES,
                                                                                 sum(second) % CLASSES]


def test_with_one_image_buffer_a_second_image_while_the_first_is_fed_is_busy():
    first, second = bytes([1] * ELEMENTS), bytes([2] * ELEMENTS)
    frames, images = _run([(encode(FrameType.CLASSIFY, first), 0), (encode(FrameType.CLASSIFY, second), 400)],
                          first_take=100, image_buffers=1)
    assert images == [list(first)]
    assert frames[0] == _error(Error.BUSY)
    assert decode_result(frames[1], CLASSES, logit_bytes=2).cls == sum(first) % CLASSES


def test_once_an_image_is_fed_its_buffer_takes_the_next():
    """Images back to back, each sent as soon as the one before was answered but one: every one is
    taken (never BUSY), fed in order and answered in order."""
    images = [bytes([k] * ELEMENTS) for k in range(1, 6)]
    script = [(encode(FrameType.CLASSIFY, images[0]), 0)] + [(encode(FrameType.CLASSIFY, image), 150)
                                                             for image in images[1:]]
    frames, fed = _run(script, first_take=20)
    assert fed == [list(image) for image in images]
    assert [decode_result(f, CLASSES, logit_bytes=2).cls for f in frames] == [sum(i) % CLASSES for i in images]


def test_a_class_above_255_goes_out_in_two_bytes():
    image = bytes([200, 60, 7, 0, 0, 0])  # class 267 of 300
    frames, _ = _run([(encode(FrameType.CLASSIFY, image), 0)], classes=300, logit=signed(16))
    assert len(frames) == 1 and len(frames[0].payload) == 300 * 2 + 2
    result = decode_result(frames[0], 300, logit_bytes=2)
    assert result.cls == 267
    assert result.logits == [100 * k - 267 for k in range(300)]


@pytest.mark.parametrize("status", [Status.LOADING_WEIGHTS, Status.BAD_WEIGHTS])
def test_without_weights_an_image_gets_the_status_and_never_reaches_the_accelerator(status):
    frames, images = _run([(encode(FrameType.CLASSIFY, bytes(ELEMENTS)), 100),
                           (encode(FrameType.STATUS_REQUEST), 0)], status=status)
    assert images == []
    assert frames == [Frame(FrameType.STATUS, bytes([status]))] * 2
