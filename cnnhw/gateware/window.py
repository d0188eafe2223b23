"""Line buffer and sliding window: feature-map pixels in, convolution/pooling windows out.

Stream order everywhere in cnnhw's datapath is row-major pixels with channels innermost
(HWC). The window unit keeps the last ``rows`` input rows in block RAM (a ring of rows)
and, for every output pixel, emits its window as a sequence of *words* of ``simd``
channels, in the order::

    for group in groups:             # 1 for a plain conv; channels for depthwise and pooling
        for ky in kernel rows:
            for kx in kernel columns:
                for word in channels of the group / simd:
                    emit x[y, x, group * channels_per_group + word * simd : ... + simd]

with ``y = out_row * stride_h - pad_top + ky * dilation_h`` (columns alike). Positions
outside the input emit ``pad_value`` (0, or a TFLite model's input zero point), flagged
``inside = 0``; positions past the padded input
(possible with ceil-mode pooling) are also flagged ``beyond = 1``.

Throughput: one word per cycle out, one element per cycle in; input rows are written while
earlier rows are read (the ring holds ``2 * span_h + stride_h`` rows, or ``span_h + stride_h``
without ``overlap``: see ``rows``; without it the unit also waits at every image boundary for
``WindowGeometry.boundary_rows`` rows of the next image). Handshake: both streams obey ``amaranth.lib.stream`` rules
(payload held while ``valid`` and not ``ready``). Latency (``WindowGeometry.LATENCY``): three
cycles from the last needed input element to the window's first word at the output (the row
count updates, the line-buffer read, the output FIFO).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Const, Module, Mux, Shape, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .fifo import RegisterFIFO
from .memories import MemoryShape, counter_bits, times_constant


@dataclass(frozen=True)
class WindowGeometry:
    """Everything the window unit needs to know about its input and its windows."""

    height: int
    width: int
    channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right
    out_hw: tuple[int, int] = (1, 1)
    groups: int = 1
    simd: int = 1
    overlap: bool = True  # room for the next image's first window while this one finishes
    pad_value: int = 0  # what positions outside the input hold

    #: Cycles from the last input element a window needs to its first word at the output.
    LATENCY = 3

    def __post_init__(self):
        if self.channels % self.groups:
            raise ValueError(f"{self.channels} channels do not split into {self.groups} groups")
        if (self.channels // self.groups) % self.simd:
            raise ValueError(f"simd {self.simd} must divide the {self.channels // self.groups} channels per group")

    @property
    def span(self) -> tuple[int, int]:
        return tuple((k - 1) * d + 1 for k, d in zip(self.kernel, self.dilation))

    @property
    def rows(self) -> int:
        """Rows in the ring. ``span + stride`` is the least that works: the window being read plus
        the rows of the next output row. With ``overlap`` there is room for a whole further window,
        so the upstream stage can fill the next image's first window while this image's last one is
        still being read; without it the stage waits at every image boundary (fewer block RAMs,
        more cycles)."""
        return (2 if self.overlap else 1) * self.span[0] + self.stride[0]

    @property
    def boundary_rows(self) -> int:
        """Rows of the next image the unit waits for at every image boundary. While it reads its
        last output row, the ring holds that row's input rows (from its first to the image's last)
        and takes as many rows of the next image as the other slots allow; the next image's first
        window needs its first ``span_h - top pad`` rows. With ``overlap`` the ring has room for
        them all (none to wait for)."""
        (span, _), (stride, _), top = self.span, self.stride, self.pads[0]
        last_first_row = max(0, (self.out_hw[0] - 1) * stride - top)
        early = self.rows - (self.height - last_first_row)
        return max(0, min(span - top, self.height) - early)

    @property
    def words_per_pixel(self) -> int:
        return self.channels // self.simd

    @property
    def words_per_window(self) -> int:
        return self.kernel[0] * self.kernel[1] * self.words_per_pixel

    @property
    def cycles_per_image(self) -> int:
        """Words emitted per image (the unit emits at most one per cycle)."""
        return self.out_hw[0] * self.out_hw[1] * self.words_per_window

    def line_buffer(self, element_bits: int) -> MemoryShape:
        """The ring of rows: ``simd`` elements per word."""
        return MemoryShape("line buffer", self.simd * element_bits, self.rows * self.width * self.words_per_pixel)

    def logic_terms(self, element_bits: int) -> dict[str, float]:
        """The logic-cell model's terms (``cnnhw.plan.logic``): control scaled by the line-buffer
        address width, and the word register and FIFO."""
        return {"window": 1, "window_address_bits": counter_bits(self.rows * self.width * self.words_per_pixel),
                "window_word_bits": self.simd * element_bits}


def window_payload(element: Shape, simd: int) -> data.StructLayout:
    return data.StructLayout({"data": data.ArrayLayout(element, simd), "inside": 1, "beyond": 1})


class SlidingWindow(wiring.Component):
    """Line buffer + window generator (see the module docstring for the order and contract).

    Ports: ``i``, a stream of elements (HWC order, one image after another); ``o``, a stream
    of :func:`window_payload` words.
    """

    def __init__(self, geometry: WindowGeometry, element: Shape):
        self.geometry = geometry
        self.element = Shape.cast(element)
        super().__init__({
            "i": In(stream.Signature(self.element)),
            "o": Out(stream.Signature(window_payload(self.element, geometry.simd))),
        })

    def memories(self) -> list[MemoryShape]:
        return [self.geometry.line_buffer(self.element.width)]

    def elaborate(self, platform):
        g = self.geometry
        m = Module()
        height, width = g.height, g.width
        (kh, kw), (sh, sw), (dh, dw) = g.kernel, g.stride, g.dilation
        top_pad, left_pad, bottom_pad, right_pad = g.pads
        out_h, out_w = g.out_hw
        span_h = g.span[0]
        ring = g.rows
        words = g.words_per_pixel  # words per input pixel
        group_words = words // g.groups
        row_words = width * words
        word_shape = data.ArrayLayout(self.element, g.simd)

        memory = Memory(shape=Shape.cast(word_shape), depth=self.memories()[0].depth, init=[])
        m.submodules.memory = memory
        write = memory.write_port()
        read = memory.read_port()

        # Rows the writer is ahead of the reader's current image start (may be negative while the
        # writer finishes rows of an image the reader has already left).
        ahead = Signal(range(-height - 1, height + ring + 2))
        # The reader: first input row its current output row needs, and that row's ring slot.
        first_row = Signal(range(height + 1))
        first_slot = Signal(range(ring))
        image_slot = Signal(range(ring))  # ring slot of row 0 of the reader's image
        row_done = Signal()
        image_done = Signal()

        # ---------------------------------------------------------------- writer
        lane = Signal(range(max(g.simd, 2)))
        packed = Signal(word_shape)
        w_word = Signal(range(max(words, 2)))
        w_col = Signal(range(max(width, 2)))
        w_slot = Signal(range(ring))
        can_write = ahead - first_row < ring
        m.d.comb += self.i.ready.eq(can_write)
        word_in = Signal(word_shape)
        m.d.comb += [word_in.eq(packed), word_in[g.simd - 1].eq(self.i.payload)]  # the last lane arrives now
        m.d.comb += [
            write.addr.eq(times_constant(w_slot, row_words) + times_constant(w_col, words) + w_word),
            write.data.eq(word_in),
        ]
        wrote_row = Signal()
        with m.If(self.i.valid & self.i.ready):
            if g.simd > 1:
                m.d.sync += packed[lane].eq(self.i.payload)
            with m.If(lane == g.simd - 1):
                m.d.comb += write.en.eq(1)
                m.d.sync += lane.eq(0)
                with m.If(w_word == words - 1):
                    m.d.sync += w_word.eq(0)
                    with m.If(w_col == width - 1):
                        m.d.sync += w_col.eq(0)
                        m.d.sync += w_slot.eq(Mux(w_slot == ring - 1, 0, w_slot + 1))
                        m.d.comb += wrote_row.eq(1)
                    with m.Else():
                        m.d.sync += w_col.eq(w_col + 1)
                with m.Else():
                    m.d.sync += w_word.eq(w_word + 1)
            with m.Else():
                m.d.sync += lane.eq(lane + 1)
        m.d.sync += ahead.eq(ahead + wrote_row - Mux(image_done, height, 0))

        # ---------------------------------------------------------------- reader
        out_row = Signal(range(max(out_h, 2)))
        out_col = Signal(range(max(out_w, 2)))
        group = Signal(range(max(g.groups, 2)))
        ky = Signal(range(max(kh, 2)))
        kx = Signal(range(max(kw, 2)))
        r_word = Signal(range(max(group_words, 2)))
        # Coordinates run from -pad to about size + pad + span: size them to that, not to 16 bits
        # (each is compared against the borders every cycle; narrow ones save logic cells).
        extent = max(height, width) + max(g.pads) + max(g.span) + max(g.stride)
        coordinate = signed(extent.bit_length() + 1)
        top = Signal(coordinate, init=-top_pad)   # out_row * sh - top_pad
        left = Signal(coordinate, init=-left_pad)  # out_col * sw - left_pad
        y = Signal(coordinate, init=-top_pad)      # top + ky * dh
        x = Signal(coordinate, init=-left_pad)     # left + kx * dw

        # Rows the current output row needs written: min(top + span_h, height). Kept in a register
        # updated with `top`, so `rows_ready` (which gates every issue and the whole loop nest) is
        # one comparison, not an add, a clamp and a comparison in a row (the critical path).
        def rows_needed(first):
            return Mux(first + span_h > height, height, first + span_h)

        needed = Signal(coordinate, init=min(-top_pad + span_h, height))
        rows_ready = ahead >= needed
        inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
        beyond = (y >= height + bottom_pad) | (x < -left_pad) | (x >= width + right_pad) | (y < -top_pad)
        # The ring slot of row `y` (first_slot + y - first_row, modulo the ring) and of row `top`,
        # kept in registers stepped with y and top: the read address then starts at a register
        # instead of a subtract, an add and a wrap in a row (the critical path of whole designs).
        # Rows above the image (padding) get a slot too; their words are masked (`inside`).
        def plus(slot, rows):
            """(slot + rows) modulo the ring, for a constant number of rows."""
            rows %= ring
            if rows == 0:
                return slot
            total = slot + rows
            return Mux(total >= ring, total - ring, total)

        top_slot = Signal(range(ring), init=-top_pad % ring)
        slot = Signal(range(ring), init=-top_pad % ring)

        # Issuing only while level + in_flight <= 2 bounds the level at 3, and keeps one word per
        # cycle flowing when the consumer is always ready (level 1, one read in flight).
        fifo = RegisterFIFO(Shape.cast(window_payload(self.element, g.simd)).width, depth=3)
        m.submodules.fifo = fifo
        in_flight = Signal()
        flight_inside = Signal()
        flight_beyond = Signal()
        issue = Signal()
        m.d.comb += issue.eq(rows_ready & (fifo.level + in_flight <= 2))
        m.d.comb += [
            read.addr.eq(times_constant(slot, row_words) + times_constant(x.as_unsigned(), words)
                         + times_constant(group, group_words) + r_word),
            read.en.eq(issue),
        ]
        m.d.sync += [in_flight.eq(issue), flight_inside.eq(inside), flight_beyond.eq(beyond)]
        emitted = Signal(window_payload(self.element, g.simd))
        m.d.comb += [
            emitted.data.eq(Mux(flight_inside, read.data, Cat(Const(g.pad_value, self.element) for _ in range(g.simd)))),
            emitted.inside.eq(flight_inside),
            emitted.beyond.eq(flight_beyond),
            fifo.w_data.eq(emitted),
            fifo.w_en.eq(in_flight),
            self.o.valid.eq(fifo.r_rdy),
            self.o.payload.eq(fifo.r_data),
            fifo.r_en.eq(self.o.ready),
        ]

        next_image_slot = image_slot + (height % ring)  # ring slot of the next image's row 0
        wrapped_image_slot = Mux(next_image_slot >= ring, next_image_slot - ring, next_image_slot)

        # Advance the loop nest (group, ky, kx, word) inside (out_row, out_col) on every issue.
        def next_kernel_row():
            m.d.sync += [ky.eq(ky + 1), y.eq(y + dh), slot.eq(plus(slot, dh)), kx.eq(0), x.eq(left)]

        with m.If(issue):
            with m.If(r_word != group_words - 1):
                m.d.sync += r_word.eq(r_word + 1)
            with m.Else():
                m.d.sync += r_word.eq(0)
                with m.If(kx != kw - 1):
                    m.d.sync += [kx.eq(kx + 1), x.eq(x + dw)]
                with m.Elif(ky != kh - 1):
                    next_kernel_row()
                with m.Else():
                    m.d.sync += [ky.eq(0), kx.eq(0), y.eq(top), slot.eq(top_slot), x.eq(left)]
                    with m.If(group != g.groups - 1):
                        m.d.sync += group.eq(group + 1)
                    with m.Else():
                        m.d.sync += group.eq(0)
                        with m.If(out_col != out_w - 1):
                            m.d.sync += [out_col.eq(out_col + 1), left.eq(left + sw), x.eq(left + sw)]
                        with m.Else():
                            m.d.sync += [out_col.eq(0), left.eq(-left_pad), x.eq(-left_pad)]
                            m.d.comb += row_done.eq(1)
                            with m.If(out_row != out_h - 1):
                                m.d.sync += [out_row.eq(out_row + 1), top.eq(top + sh), y.eq(top + sh),
                                             top_slot.eq(plus(top_slot, sh)), slot.eq(plus(top_slot, sh)),
                                             needed.eq(rows_needed(top + sh))]
                            with m.Else():
                                m.d.sync += [out_row.eq(0), top.eq(-top_pad), y.eq(-top_pad),
                                             top_slot.eq(plus(wrapped_image_slot, -top_pad)),
                                             slot.eq(plus(wrapped_image_slot, -top_pad)),
                                             needed.eq(needed.init)]
                                m.d.comb += image_done.eq(1)

        # Keep the first needed row and its ring slot in step with the output row.
        next_top = top + sh
        next_first = Mux(next_top > 0, next_top, 0)
        step = (next_first - first_row).as_unsigned()[:Shape.cast(range(ring)).width + 1]
        stepped = first_slot + step
        with m.If(image_done):
            m.d.sync += [first_row.eq(0), first_slot.eq(wrapped_image_slot), image_slot.eq(wrapped_image_slot)]
        with m.Elif(row_done):
            m.d.sync += [first_row.eq(next_first), first_slot.eq(Mux(stepped >= ring, stepped - ring, stepped))]
        return m
