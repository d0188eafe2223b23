"""The board's side of the framed serial protocol (``cnnhw.protocol.frames`` defines it).

:class:`SerialFrontEnd` sits between the UART and the :class:`Accelerator`:

* it parses frames from ``rx_byte`` (sync bytes, type, length, payload, CRC-8), keeping a
  CLASSIFY payload in an image buffer; only a frame whose checksum and length are right is
  fed to the accelerator (``image``), so a damaged frame never reaches the datapath;
* it answers on ``tx_byte``: RESULT (the logits as they leave the accelerator, then the class),
  STATUS, or ERROR (bad checksum, bad length, unknown type, timeout in mid-frame, busy);
  after an error it looks for the next sync bytes, so the link keeps working.

Two image buffers (``image_buffers``; one where the plan needs the block RAM): an image is received
into one while the other is fed to the accelerator, so a host that keeps two images in flight
(``runtime.host.BoardLink.classify_all``) overlaps sending an image with computing the one before,
and the slower of the two sets the rate. A CLASSIFY frame that arrives while every buffer is taken
(one being fed, one waiting) is answered BUSY. RESULTs go out in the order the images came.
``busy`` is high while an image is fed or a RESULT is sent.

``status`` (a :class:`Status`, from the weight loader; READY when there is none) is what STATUS
requests get; while it is not READY a CLASSIFY frame is answered with a STATUS frame carrying it
(weights still loading, or bad) and nothing reaches the accelerator.
"""

from __future__ import annotations

from amaranth import Module, Mux, Shape, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..protocol.frames import (FRAME_CRC, MAX_IMAGE_BUFFERS, SYNC, Error, FrameType, Status, class_bytes, logit_bytes,
                               result_payload_bytes)
from .memories import MemoryShape


def frame_crc_step(m: Module, crc, byte):
    """``crc`` after one more ``byte`` of FRAME_CRC (no reflection: most significant bit first), as
    eight shift-and-subtract steps, each held in its own signal (each step reads the previous one
    three times: as one expression the steps would grow 3**8-fold). ``amaranth.lib.crc``'s
    Processor computes the same as one XOR matrix; it takes 20 more logic cells for the front end's
    two checksums, and LeNet-5's 8-DSP plan has 3 to spare."""
    algorithm = FRAME_CRC
    assert not algorithm.reflect_input and not algorithm.reflect_output and algorithm.xor_output == 0
    width, top, mask = algorithm.crc_width, 1 << (algorithm.crc_width - 1), (1 << algorithm.crc_width) - 1

    def keep(expression):
        step = Signal(width)
        m.d.comb += step.eq(expression)
        return step

    crc = keep(crc ^ byte)
    for _ in range(8):
        shifted = (crc << 1) & mask
        crc = keep(Mux(crc & top, shifted ^ algorithm.polynomial, shifted))
    return crc


def image_buffers(image_elements: int, count: int = MAX_IMAGE_BUFFERS) -> list[MemoryShape]:
    """The front end's memories: a byte per input element in each of its ``count`` image buffers
    (with two, one receives while the other feeds the accelerator)."""
    if not 1 <= count <= MAX_IMAGE_BUFFERS:
        raise ValueError(f"a front end has 1 to {MAX_IMAGE_BUFFERS} image buffers, not {count}")
    return [MemoryShape("image buffer", 8, max(image_elements, 2))] * count


class SerialFrontEnd(wiring.Component):
    def __init__(self, image_elements: int, element: Shape, logit: Shape, classes: int, timeout_cycles: int,
                 image_buffers: int = MAX_IMAGE_BUFFERS):
        self.image_elements = image_elements
        self.image_buffers = image_buffers
        self.element = Shape.cast(element)
        self.logit = Shape.cast(logit)
        self.logit_bytes = logit_bytes(self.logit.width)
        self.classes = classes
        self.class_bytes = class_bytes(classes)
        self.timeout_cycles = timeout_cycles
        super().__init__({
            "rx_byte": In(stream.Signature(unsigned(8))),
            "tx_byte": Out(stream.Signature(unsigned(8))),
            "image": Out(stream.Signature(self.element)),
            "logits": In(stream.Signature(self.logit)),
            "cls": In(stream.Signature(range(max(classes, 2)))),
            "busy": Out(1),
            "last_class": Out(range(max(classes, 2))),
            "status": In(Status, init=Status.READY),
        })

    def memories(self) -> list[MemoryShape]:
        return image_buffers(self.image_elements, self.image_buffers)

    def elaborate(self, platform):
        m = Module()
        n = self.image_elements
        writes, reads = [], []
        for k, shape in enumerate(self.memories()):
            buffer = Memory(shape=8, depth=shape.depth, init=[])
            m.submodules[f"buffer{k}"] = buffer
            writes.append(buffer.write_port())
            reads.append(buffer.read_port())
        # ``taken[k]``: buffer k holds a checked image not yet wholly fed. Frames are received into
        # buffer ``receiving`` and fed from buffer ``feeding_from``, each moving to the other buffer
        # when done with one, so images are fed in the order they came.
        buffers = self.image_buffers
        taken = Signal(buffers)
        receiving, feeding_from = Signal(), Signal()

        # ------------------------------------------------------------ receiving frames
        byte = self.rx_byte.payload
        got = self.rx_byte.valid
        m.d.comb += self.rx_byte.ready.eq(1)  # a UART cannot wait
        frame_type = Signal(8)
        length = Signal(16)
        count = Signal(16)
        left = Signal(16)  # payload bytes still to come: the end test is no carry chain (timing)
        crc = Signal(8)
        idle_cycles = Signal(range(self.timeout_cycles + 1))
        feeding = Signal()  # the buffer ``feeding_from`` is being fed
        m.d.comb += feeding.eq(taken.bit_select(feeding_from, 1))
        dropping = Signal()  # this frame's payload is not stored (busy, or not a CLASSIFY)

        # One pending reply for the transmitter: 0 none, else (frame type, code).
        reply = Signal()
        reply_type = Signal(8)
        reply_code = Signal(8)

        answering = Signal()  # a new reply is being set this cycle (it wins over clearing the old one)
        accepted = Signal()  # a checked CLASSIFY frame's image is complete in buffer ``receiving``

        def answer(kind, code):
            m.d.sync += [reply.eq(1), reply_type.eq(kind), reply_code.eq(code)]
            m.d.comb += answering.eq(1)

        def watch_timeout():
            """Inside a frame: a gap of `timeout_cycles` without a byte drops the frame."""
            with m.If(got):
                m.d.sync += idle_cycles.eq(0)
            with m.Elif(idle_cycles == self.timeout_cycles):
                answer(FrameType.ERROR, Error.TIMEOUT)
                m.next = "SYNC0"
            with m.Else():
                m.d.sync += idle_cycles.eq(idle_cycles + 1)

        crc_next = frame_crc_step(m, crc, byte)
        m.d.comb += [port.addr.eq(count) for port in writes] + [port.data.eq(byte) for port in writes]
        with m.FSM(name="receive"):
            with m.State("SYNC0"):
                m.d.sync += idle_cycles.eq(0)
                with m.If(got & (byte == SYNC[0])):
                    m.next = "SYNC1"
            with m.State("SYNC1"):
                m.d.sync += crc.eq(FRAME_CRC.initial_crc)  # the checksum starts at the type byte
                with m.If(got):
                    with m.If(byte == SYNC[1]):
                        m.next = "TYPE"
                    with m.Elif(byte != SYNC[0]):
                        m.next = "SYNC0"
            with m.State("TYPE"):
                watch_timeout()
                with m.If(got):
                    m.d.sync += [frame_type.eq(byte), crc.eq(crc_next)]
                    m.next = "LENGTH0"
            with m.State("LENGTH0"):
                watch_timeout()
                with m.If(got):
                    m.d.sync += [length[:8].eq(byte), crc.eq(crc_next)]
                    m.next = "LENGTH1"
            with m.State("LENGTH1"):
                watch_timeout()
                with m.If(got):
                    full_length = (byte << 8) | length[:8]
                    m.d.sync += [length[8:].eq(byte), crc.eq(crc_next), count.eq(0), left.eq(full_length),
                                 dropping.eq((frame_type != FrameType.CLASSIFY) | taken.bit_select(receiving, 1))]
                    with m.If(full_length > n):
                        answer(FrameType.ERROR, Error.BAD_LENGTH)  # cannot be ours: resynchronise now
                        m.next = "SYNC0"
                    with m.Elif(full_length == 0):
                        m.next = "CHECK"
                    with m.Else():
                        m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                watch_timeout()
                with m.If(got):
                    for k, port in enumerate(writes):
                        m.d.comb += port.en.eq(~dropping & (receiving == k))
                    m.d.sync += [crc.eq(crc_next), count.eq(count + 1), left.eq(left - 1)]
                    with m.If(left == 1):
                        m.next = "CHECK"
            with m.State("CHECK"):
                watch_timeout()
                with m.If(got):
                    with m.If(byte != crc):
                        answer(FrameType.ERROR, Error.BAD_CHECKSUM)
                    with m.Elif(frame_type == FrameType.STATUS_REQUEST):
                        answer(FrameType.STATUS, self.status)
                    with m.Elif(frame_type != FrameType.CLASSIFY):
                        answer(FrameType.ERROR, Error.UNKNOWN_TYPE)
                    with m.Elif(length != n):
                        answer(FrameType.ERROR, Error.BAD_LENGTH)
                    with m.Elif(dropping):
                        answer(FrameType.ERROR, Error.BUSY)
                    with m.Elif(self.status != Status.READY):
                        answer(FrameType.STATUS, self.status)  # no weights yet: never a class
                    with m.Else():
                        m.d.comb += accepted.eq(1)
                        if buffers == 2:
                            m.d.sync += receiving.eq(~receiving)
                    m.next = "SYNC0"

        # ------------------------------------------------------------ feeding the accelerator
        fed = Signal(range(n + 1))
        loaded = Signal()  # the read port of buffer ``feeding_from`` holds element `fed`
        read_addr = Signal(range(n + 1))
        read_en = Signal()
        finished = Signal()  # the last element of buffer ``feeding_from`` is taken this cycle
        m.d.comb += [read_addr.eq(fed), read_en.eq(~loaded | (self.image.valid & self.image.ready)),
                     self.image.payload.eq(Mux(feeding_from, reads[-1].data, reads[0].data)),
                     self.image.valid.eq(feeding & loaded)]
        m.d.comb += [port.addr.eq(read_addr) for port in reads]
        m.d.comb += [port.en.eq(read_en & (feeding_from == k)) for k, port in enumerate(reads)]
        with m.If(feeding):
            with m.If(~loaded):
                m.d.sync += loaded.eq(1)
            with m.If(self.image.valid & self.image.ready):
                with m.If(fed == n - 1):
                    m.d.comb += finished.eq(1)
                    m.d.sync += [fed.eq(0), loaded.eq(0)]
                    if buffers == 2:
                        m.d.sync += feeding_from.eq(~feeding_from)
                with m.Else():
                    m.d.sync += fed.eq(fed + 1)
                    m.d.comb += read_addr.eq(fed + 1)
        # An image accepted and another finished in the same cycle are in different buffers.
        for k in range(buffers):
            with m.If(accepted & (receiving == k)):
                m.d.sync += taken[k].eq(1)
            with m.Elif(finished & (feeding_from == k)):
                m.d.sync += taken[k].eq(0)

        # ------------------------------------------------------------ answering
        out = self.tx_byte
        # One checksum circuit for every byte sent: a byte counts when it is taken and
        # `tx_checksum` is set (`tx_first`: it is the first, so the checksum starts from 0).
        tx_crc = Signal(8)
        tx_checksum, tx_first = Signal(), Signal()
        with m.If(out.valid & out.ready & tx_checksum):
            m.d.sync += tx_crc.eq(frame_crc_step(m, Mux(tx_first, FRAME_CRC.initial_crc, tx_crc), out.payload))
        logit = Signal(self.logit.width)
        part = Signal(range(max(self.logit_bytes, self.class_bytes, 2)))  # the byte of a logit or class being sent
        sent_logits = Signal(range(self.classes + 1))
        in_result = Signal()
        m.d.comb += self.busy.eq(feeding | in_result)
        result_length = result_payload_bytes(self.classes, self.logit_bytes)

        def emit(value, next_state, checksum=True, first=False):
            m.d.comb += [out.valid.eq(1), out.payload.eq(value), tx_checksum.eq(checksum), tx_first.eq(first)]
            with m.If(out.ready):
                m.next = next_state

        with m.FSM(name="answer"):
            with m.State("IDLE"):
                with m.If(reply):
                    m.next = "REPLY_SYNC0"
                with m.Elif(self.logits.valid):
                    m.d.sync += [in_result.eq(1), sent_logits.eq(0)]
                    m.next = "RESULT_SYNC0"
            # A one-byte reply: sync, type, length 1, code, crc.
            with m.State("REPLY_SYNC0"):
                emit(SYNC[0], "REPLY_SYNC1", checksum=False)
            with m.State("REPLY_SYNC1"):
                emit(SYNC[1], "REPLY_TYPE", checksum=False)
            with m.State("REPLY_TYPE"):
                emit(reply_type, "REPLY_LENGTH0", first=True)
            with m.State("REPLY_LENGTH0"):
                emit(1, "REPLY_LENGTH1")
            with m.State("REPLY_LENGTH1"):
                emit(0, "REPLY_CODE")
            with m.State("REPLY_CODE"):
                emit(reply_code, "REPLY_CRC")
            with m.State("REPLY_CRC"):
                emit(tx_crc, "IDLE", checksum=False)
                with m.If(out.ready & ~answering):  # a reply set meanwhile is the next one to send
                    m.d.sync += reply.eq(0)
            # RESULT: sync, type, length, every logit, the class (each little endian), crc.
            with m.State("RESULT_SYNC0"):
                emit(SYNC[0], "RESULT_SYNC1", checksum=False)
            with m.State("RESULT_SYNC1"):
                emit(SYNC[1], "RESULT_TYPE", checksum=False)
            with m.State("RESULT_TYPE"):
                emit(FrameType.RESULT, "RESULT_LENGTH0", first=True)
            with m.State("RESULT_LENGTH0"):
                emit(result_length & 0xFF, "RESULT_LENGTH1")
            with m.State("RESULT_LENGTH1"):
                emit(result_length >> 8, "RESULT_TAKE")
            with m.State("RESULT_TAKE"):
                with m.If(sent_logits == self.classes):
                    m.d.sync += part.eq(0)
                    m.next = "RESULT_CLASS"
                with m.Else():
                    m.d.comb += self.logits.ready.eq(1)
                    with m.If(self.logits.valid):
                        m.d.sync += [logit.eq(self.logits.payload), part.eq(0)]
                        m.next = "RESULT_LOGIT"
            with m.State("RESULT_LOGIT"):
                value = logit.as_signed() if self.logit.signed else logit
                byte_value = (value >> (part * 8))[:8]
                m.d.comb += [out.valid.eq(1), out.payload.eq(byte_value)]
                m.d.comb += tx_checksum.eq(1)
                with m.If(out.ready):
                    with m.If(part == self.logit_bytes - 1):
                        m.d.sync += sent_logits.eq(sent_logits + 1)
                        m.next = "RESULT_TAKE"
                    with m.Else():
                        m.d.sync += part.eq(part + 1)
            with m.State("RESULT_CLASS"):
                # The class stays on the stream (valid, unchanged) until its last byte is taken.
                last_part = part == self.class_bytes - 1
                m.d.comb += [self.cls.ready.eq(out.ready & last_part), out.valid.eq(self.cls.valid),
                             out.payload.eq((self.cls.payload >> (part * 8))[:8]), tx_checksum.eq(1)]
                with m.If(self.cls.valid & out.ready):
                    with m.If(last_part):
                        m.d.sync += self.last_class.eq(self.cls.payload)
                        m.next = "RESULT_CRC"
                    with m.Else():
                        m.d.sync += part.eq(part + 1)
            with m.State("RESULT_CRC"):
                emit(tx_crc, "IDLE", checksum=False)
                with m.If(out.ready):
                    m.d.sync += in_result.eq(0)
        return m
