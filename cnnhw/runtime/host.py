"""The host side of the serial link (``cnnhw run``): quantize images exactly as the golden model
does, send them as CLASSIFY frames (two in flight when the board holds two, so that sending one
overlaps computing the one before), read RESULT frames (:mod:`cnnhw.protocol.frames`).

The link is any object with pyserial's ``write(bytes)`` and ``read(n)`` (``read`` returns what
arrived within the port's timeout, possibly nothing), so tests can put a software board behind it.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import CnnhwError
from ..ir.ops import is_int
from ..quant.arith import IntFormat
from ..quant.qgraph import InputQuantizer
from ..gateware.streams import stream_order
from ..protocol.frames import (MAX_IMAGE_BUFFERS, Error, FrameDecoder, FrameType, Result, Status, decode_result, encode,
                               image_payload)


@dataclass(frozen=True)
class LinkFacts:
    """What ``cnnhw build`` records for the host (build.json ``host``)."""

    input_shape: tuple[int, ...]
    quantizer: InputQuantizer
    classes: int
    logit_bytes: int
    output_scale: float
    baud: int
    has_classes: bool = True  # whether a class means something (``Graph.has_classes``)
    output_signed: bool = True  # the output format's signedness (how RESULT's logits decode)
    image_buffers: int = 1  # images the board holds: how many may be in flight

    @staticmethod
    def from_build(facts: dict) -> "LinkFacts":
        try:
            host = facts["host"]
            shape = tuple(host["input_shape"])
            quantizer = InputQuantizer(float(host["input_scale"]), IntFormat(int(host["input_bits"]),
                                       bool(host["input_signed"])), str(host["rounding"]))
            link = LinkFacts(shape, quantizer, int(host["classes"]), int(host["logit_bytes"]),
                             float(host["output_scale"]), int(host["baud"]), bool(host.get("has_classes", True)),
                             bool(host.get("output_signed", True)), int(host.get("image_buffers", 1)))
            sane = (shape and all(is_int(d) and 0 < d <= 1 << 16 for d in shape)
                    and math.prod(shape) <= 1 << 20 and 0 < link.classes <= 1 << 16 and 1 <= link.logit_bytes <= 4
                    and link.baud > 0 and 1 <= link.image_buffers <= MAX_IMAGE_BUFFERS and 0 < quantizer.scale < math.inf and 2 <= quantizer.format.bits <= 16
                    and quantizer.rounding in ("half_up", "half_even"))
        except (KeyError, TypeError, ValueError, OverflowError) as error:
            raise CnnhwError(f"build.json has no usable 'host' facts ({type(error).__name__}: {error}); it was "
                             f"written by an older cnnhw: rebuild with cnnhw build") from None
        if not sane:
            raise CnnhwError("build.json has 'host' facts out of range (input shape, classes, bits, baud or scale); "
                             "rebuild with cnnhw build")
        return link

    def payload(self, image: np.ndarray) -> bytes:
        """One image (in the model's input units, shape ``input_shape``) as CLASSIFY payload bytes."""
        values = self.quantizer(image).ravel()[stream_order(self.input_shape)]
        return image_payload(values, self.quantizer.format.signed, self.quantizer.format.bits)


class BoardLink:
    def __init__(self, port, facts: LinkFacts, reply_timeout_s: float = 2.0):
        self.port, self.facts, self.reply_timeout_s = port, facts, reply_timeout_s
        self.decoder = FrameDecoder(max_length=1 << 16)
        self.arrived: deque = deque()  # frames decoded and not yet taken (a read may bring several)

    def _reply(self):
        deadline = time.monotonic() + self.reply_timeout_s
        while not self.arrived and time.monotonic() < deadline:
            self.arrived.extend(self.decoder.feed(self.port.read(256)))
        if self.arrived:
            return self.arrived.popleft()
        raise CnnhwError(f"the board did not answer within {self.reply_timeout_s:g} s; is it flashed with this "
                         f"build, and is the port right?")

    def status(self) -> Status:
        self.port.write(encode(FrameType.STATUS_REQUEST))
        frame = self._reply()
        if frame.type != FrameType.STATUS or len(frame.payload) != 1:
            raise CnnhwError(f"the board answered a STATUS request with frame type 0x{frame.type:02X}")
        return Status(frame.payload[0])

    def wait_until_ready(self, timeout_s: float = 5.0, poll_s: float = 0.05) -> None:
        """Return once the board answers READY; a board still loading its weights from flash
        (LeNet-5: ~50 ms after power-up) is asked again until ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.status()
            if status == Status.READY:
                return
            if status == Status.BAD_WEIGHTS:
                raise CnnhwError("the board's weight image is missing, damaged or from another build; write both "
                                 "with cnnhw flash DIR (the build this bitstream came from)")
            if time.monotonic() > deadline:
                raise CnnhwError(f"the board was still {status.name} after {timeout_s:g} s; power-cycle it")
            time.sleep(poll_s)

    def classify(self, image: np.ndarray) -> Result:
        self.port.write(encode(FrameType.CLASSIFY, self.facts.payload(image)))
        return self._result()

    def classify_all(self, images, in_flight: int | None = None) -> Iterator[tuple[Result, float]]:
        """(result, seconds from sending the image to its result) for each of ``images``, in order,
        keeping ``in_flight`` images (default: as many as the board holds, ``LinkFacts.image_buffers``)
        sent and not yet answered: with two, sending one overlaps computing the one before, and the
        slower of link and compute sets the rate."""
        in_flight = in_flight or self.facts.image_buffers
        if not 1 <= in_flight <= self.facts.image_buffers:
            raise ValueError(f"this board holds {self.facts.image_buffers} image(s), not {in_flight}")
        sent: deque = deque()  # when each image in flight was sent
        for image in images:
            if len(sent) == in_flight:
                yield self._result(), time.perf_counter() - sent.popleft()
            self.port.write(encode(FrameType.CLASSIFY, self.facts.payload(image)))
            sent.append(time.perf_counter())
        while sent:
            yield self._result(), time.perf_counter() - sent.popleft()

    def _result(self) -> Result:
        """The next reply, as the RESULT of the oldest image in flight."""
        frame = self._reply()
        if frame.type == FrameType.ERROR:
            code = frame.payload[0] if frame.payload else 0
            name = Error(code).name if code in Error._value2member_map_ else f"code {code}"
            raise CnnhwError(f"the board refused the image ({name}); is it flashed with this build?")
        if frame.type == FrameType.STATUS:
            raise CnnhwError(f"the board is not ready ({Status(frame.payload[0]).name}); wait, or reflash")
        try:
            return decode_result(frame, self.facts.classes, self.facts.logit_bytes, self.facts.output_signed)
        except ValueError as error:
            raise CnnhwError(f"the board sent {error}: it runs another bitstream; flash this build") from None
