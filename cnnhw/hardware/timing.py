"""The timing model: the clock cycle of every transfer of images sent back to back through the
pipeline (the latency and the cycles between classes, ``Network.timeline``).

Each op gives a *producer* of its output stream (``HardwareOp.timing``): ``take(ready_from,
stalls)`` returns the cycle its next element transfers, given that the consumer can take it from
``ready_from`` on, outside its ``stalls`` (``[begin, end)`` windows in which it takes nothing).
A producer pulls its own input from the producer before it the same way, so a stage that cannot
take an element yet (a line buffer without a free row, a pool waiting for its output to go) holds
up the stages before it exactly as the handshake does. Cycles count from the first image's first
input element (cycle 0); the images are offered one element per cycle, back to back, and every
class is read as it comes.

Each producer follows its blocks' handshakes as the gateware has them (the blocks' docstrings give
their cycles): the window unit's ring of rows and three-word FIFO, the MVU's ping-pong halves and
its global stall while the requantizer is busy, each Rescaler's cycles per value, the pool
reducer's wait for its divider, the tiled pool's global stall, the forks, branch FIFOs and joins
of a graph with branches (``AddTiming`` and ``ConcatTiming`` say in which order a join pulls its
inputs). The shared step is :func:`consume`: a consumer that takes one word per cycle at most,
never before it is offered, and not while stalled.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque

import numpy as np

from ..gateware.mvu import MatrixParameters
from ..gateware.rescale import RescalerParameters
from ..gateware.tiled_pool import TileGeometry
from ..gateware.window import WindowGeometry

#: A time before any other (``-inf`` would make the arrays float).
NEVER = -(1 << 40)

Stalls = list[tuple[int, int]]


def first_ready(cycle: int, stalls: Stalls = ()) -> int:
    """The first cycle at or after ``cycle`` outside every stall (sorted, not overlapping)."""
    for begin, end in stalls:
        if begin <= cycle < end:
            cycle = end
    return cycle


def consume(offered: np.ndarray | None, start: int, stalls: Stalls = (), count: int | None = None) -> np.ndarray:
    """Cycles at which a one-word-per-cycle consumer takes each word: word ``k`` at the first
    cycle at or after ``offered[k]`` (``None``: ``count`` words, all there), after word ``k - 1``
    and at or after ``start``, outside every stall."""
    count = len(offered) if offered is not None else count
    steps = np.arange(count, dtype=np.int64)
    if offered is None:
        taken = start + steps
    else:
        taken = np.maximum.accumulate(np.maximum(np.asarray(offered, dtype=np.int64) - steps, start)) + steps
    for begin, end in stalls:
        hit = int(np.searchsorted(taken, begin))
        if hit < count and taken[hit] < end:
            taken[hit:] = consume(None if offered is None else offered[hit:], end, (), count - hit)
    return taken


class Producer:
    """A stream's producer (see the module docstring). ``last``: the transfer cycle of the last
    element taken so far; ``finish()`` takes the rest of the image's input, so that the stream
    before it ends too (a stage may need fewer input elements than it gets, as a floor-mode pool
    ignoring the last rows)."""

    last = NEVER

    def take(self, ready_from: int, stalls: Stalls = ()) -> int:
        raise NotImplementedError

    def finish(self) -> None:
        pass


class Probe(Producer):
    """Passes a stage's stream on and notes the transfer cycle of each image's last element
    (``elements`` per image), as the simulation harness's checkers stamp them."""

    def __init__(self, inner: Producer, elements: int):
        self.inner, self.elements = inner, elements
        self.count = 0
        self.image_ends: list[int] = []

    def take(self, ready_from: int, stalls: Stalls = ()) -> int:
        self.last = self.inner.take(ready_from, stalls)
        self.count += 1
        if self.count % self.elements == 0:
            self.image_ends.append(self.last)
        return self.last

    def finish(self) -> None:
        self.inner.finish()


class InputTiming(Producer):
    """The accelerator's input: each element offered the cycle after the one before transfers."""

    def take(self, ready_from: int, stalls: Stalls = ()) -> int:
        self.last = first_ready(max(self.last + 1, 0, ready_from), stalls)
        return self.last


class RegisterTiming(Producer):
    """A stage with one output register (``gateware/small.Lookup``): it takes an element when the
    register is empty or being read, and offers it ``latency`` cycle later."""

    def __init__(self, upstream: Producer, latency: int = 1):
        self.upstream, self.latency = upstream, latency

    def take(self, ready_from: int, stalls: Stalls = ()) -> int:
        # Ready again in the cycle the element before leaves the register (or from the start).
        taken = self.upstream.take(self.last)
        self.last = first_ready(max(taken + self.latency, ready_from), stalls)
        return self.last

    def finish(self) -> None:
        self.upstream.finish()


class RescalerTiming:
    """A Rescaler that multiplies a few bits per cycle (``gateware/rescale.py``): takes a value when
    idle, offers its result ``cycles_per_value - 1`` cycles later, and is idle again the cycle
    after it is taken. :func:`rescaler_timing` gives the model of a Rescaler's parameters."""

    def __init__(self, cycles_per_value: int):
        self.cycles_per_value = cycles_per_value
        self.idle_from = NEVER

    def earliest_take(self, cycle: int) -> int:
        """The first cycle at or after ``cycle`` at which it can take the next value."""
        return max(cycle, self.idle_from)

    def result(self, taken: int, ready_from: int, stalls: Stalls) -> int:
        """The transfer cycle of the result of the value taken at ``taken``."""
        done = first_ready(max(taken + self.cycles_per_value - 1, ready_from), stalls)
        self.idle_from = done + 1
        return done


class PipelinedRescalerTiming:
    """A pipelined Rescaler (one whole multiply per value): takes a value in any cycle after the
    one before while fewer than ``entries`` values are taken and not handed over (the value
    ``entries`` back went before this cycle), and offers each result ``latency`` cycles after its
    take, in order, one per cycle."""

    def __init__(self, latency: int, entries: int):
        self.latency = latency
        self.last_take = NEVER
        self.handed = deque([NEVER] * entries, maxlen=entries)  # the last ``entries`` transfers

    def earliest_take(self, cycle: int) -> int:
        return max(cycle, self.last_take + 1, self.handed[0] + 1)

    def result(self, taken: int, ready_from: int, stalls: Stalls) -> int:
        self.last_take = taken
        done = first_ready(max(taken + self.latency, self.handed[-1] + 1, ready_from), stalls)
        self.handed.append(done)
        return done


def rescaler_timing(rescaler: RescalerParameters) -> RescalerTiming | PipelinedRescalerTiming:
    """The timing model of a Rescaler with these parameters."""
    if rescaler.pipelined:
        return PipelinedRescalerTiming(rescaler.latency, rescaler.queue_entries)
    return RescalerTiming(rescaler.cycles_per_value)


class MatrixTiming(Producer):
    """A MatrixVectorUnit and its RequantUnit (``gateware/mvu.py``, ``gateware/requant.py``):
    the output elements of the window segments ``source`` offers (``next_segment()``: when each
    of a segment's words is offered; ``segment_taken(taken)``: when the unit took them).

    With one fold each word is multiplied as it is taken; with several, words go into the
    ping-pong buffer (a half is free once the segment two before is computed) and fold 0 reads a
    word the cycle after it is written. A fold's accumulators are offered
    ``MatrixParameters.latency`` cycles after its last word; while they wait for the requantizer,
    the whole unit stalls. The requantizer takes a word in the cycle it hands the last lane of the
    one before to its Rescaler (or any cycle once it is empty), and hands each lane as the
    Rescaler becomes idle."""

    def __init__(self, matrix: MatrixParameters, pe: int, rescaler: RescalerTiming | PipelinedRescalerTiming,
                 source):
        self.matrix, self.pe, self.source = matrix, pe, source
        self.rescaler = rescaler
        self.last_fire = self.last_write = NEVER
        self.stalls: Stalls = []
        self.finished: list[int] = []  # cycle of each segment's last fire
        self.folds_done = matrix.folds  # of the current segment
        self.written = None  # when the current segment's words were taken
        self.lanes_left = 0  # of the current fold's output word
        self.word_taken = NEVER  # when the requantizer took the current word
        self.lane_free = NEVER  # the requantizer may take the next word from this cycle

    def take(self, ready_from: int, stalls: Stalls = ()) -> int:
        if not self.lanes_left:
            self._fold()
        handed = self.rescaler.earliest_take(self.word_taken + 1)
        self.last = self.rescaler.result(handed, ready_from, stalls)
        self.lanes_left -= 1
        if not self.lanes_left:
            self.lane_free = handed
        return self.last

    def finish(self) -> None:
        self.source.finish()

    def _fire(self, offered, count: int | None = None) -> int:
        self.stalls = [stall for stall in self.stalls if stall[1] > self.last_fire + 1]
        fires = consume(offered, self.last_fire + 1, self.stalls, count)
        self.last_fire = int(fires[-1])
        return fires

    def _fold(self) -> None:
        """The next fold's output word, up to the requantizer taking it."""
        mx = self.matrix
        if self.folds_done == mx.folds:  # a new segment
            offered = self.source.next_segment()
            if mx.folds == 1:
                taken = self._fire(offered)
            else:
                half_free = self.finished[-2] + 1 if len(self.finished) >= 2 else NEVER
                taken = consume(offered, max(self.last_write + 1, half_free))
                self.last_write = int(taken[-1])
            self.source.segment_taken(taken)
            self.written, self.folds_done = taken, 0
        if mx.folds > 1:
            self._fire(self.written + 1 if self.folds_done == 0 else None, mx.words)
        self.folds_done += 1
        if self.folds_done == mx.folds:
            self.finished.append(self.last_fire)
        # The word moves into the accumulate stage at the next cycle the unit is not stalled.
        offered = first_ready(self.last_fire + 1, self.stalls) + self.matrix.latency - 1
        taken = max(offered, self.lane_free)
        if taken > offered:
            self.stalls.append((offered, taken))
        self.word_taken, self.lanes_left = taken, self.pe


class WindowSource:
    """A SlidingWindow's side of a segmented consumer (MatrixTiming or ReducerTiming): it offers
    each output row's words in segments of ``segment_words``, pulling input rows from
    ``upstream`` as the rows need them, image after image.

    The writer takes an element once its row has a slot in the ring: row ``G`` of the stream
    needs the reader's first row (counted over the stream) past ``G - rows``; a row counts one
    cycle after its last element. An output row is issued once its last input row counts, one
    word per cycle, each offered two cycles after its issue (``WindowGeometry.LATENCY`` from the
    last needed element), and the unit issues only while fewer than three words wait in its
    FIFO. The reader leaves a row the cycle after its last issue; leaving an image's last row, it
    moves to the next image's row 0."""

    def __init__(self, geometry: WindowGeometry, upstream: Producer, segment_words: int):
        self.geometry, self.upstream, self.segment_words = geometry, upstream, segment_words
        self.row_counts: list[int] = []  # the cycle each input row of the stream counts as written
        self.moves: list[int] = []  # the cycles the reader's first row moved on ...
        self.first_rows: list[int] = []  # ... and the row it moved to (over the stream)
        self.output_rows = 0  # output rows the reader has begun
        self.last_write = NEVER
        self.segments_left = 0
        self.ready = NEVER
        self.row_taken: list[np.ndarray] = []
        self.issued_tail = NEVER
        self.taken_tail = np.full(3, NEVER, dtype=np.int64)

    def _first_row(self, output_row: int) -> int:
        """The first input row (over the stream) that the stream's ``output_row`` reads."""
        g = self.geometry
        image, row = divmod(output_row, g.out_hw[0])
        return image * g.height + max(0, row * g.stride[0] - g.pads[0])

    def _write_row(self) -> None:
        g = self.geometry
        threshold = len(self.row_counts) - g.rows + 1
        allowed = NEVER
        if threshold > 0:
            allowed = self.moves[bisect_left(self.first_rows, threshold)]
        for _ in range(g.width * g.channels):
            self.last_write = self.upstream.take(max(self.last_write + 1, allowed))
        self.row_counts.append(self.last_write + 1)

    def next_segment(self) -> np.ndarray:
        g = self.geometry
        if not self.segments_left:
            image, row = divmod(self.output_rows, g.out_hw[0])
            (span, _), (stride, _), top = g.span, g.stride, g.pads[0]
            needed = image * g.height + min(g.height - 1, max(0, row * stride - top + span - 1))
            while len(self.row_counts) <= needed:
                self._write_row()
            self.ready = self.row_counts[needed]
            self.segments_left = g.out_hw[1] * g.words_per_window // self.segment_words
            self.output_rows += 1
        self.segments_left -= 1
        return np.full(self.segment_words, self.ready + WindowGeometry.LATENCY - 1, dtype=np.int64)

    def segment_taken(self, taken: np.ndarray) -> None:
        self.row_taken.append(taken)
        if self.segments_left:
            return
        # Issue cycles of the row's words: no earlier than the row is ready, the word before, and
        # the read of the word three before (the FIFO's room).
        row_taken = np.concatenate(self.row_taken)
        before = np.concatenate([self.taken_tail, row_taken])[:len(row_taken)]
        earliest = np.maximum(self.ready, before + 1)
        steps = np.arange(len(row_taken), dtype=np.int64)
        issued = np.maximum.accumulate(np.maximum(earliest - steps, self.issued_tail + 1)) + steps
        self.issued_tail = int(issued[-1])
        self.taken_tail = np.concatenate([self.taken_tail, row_taken])[-3:]
        self.moves.append(self.issued_tail + 1)
        self.first_rows.append(self._first_row(self.output_rows))
        self.row_taken = []

    def finish(self) -> None:
        images = -(-self.output_rows // self.geometry.out_hw[0])
        while len(self.row_counts) < images * self.geometry.height:
            self._write_row()
        self.upstream.finish()


class ReducerTiming(Producer):
    """A PoolReducer (``gateware/pool.py``) after a SlidingWindow: one word per cycle; each
    window's result is offered the cycle after its last word, as the output (max) or to its
    Rescaler (average), and the reducer takes no word while a result waits."""

    def __init__(self, rescaler: RescalerParameters | None, source: WindowSource):
        self.rescaler = rescaler_timing(rescaler) if rescaler is not None else None
        self.source = source
        self.last_word = NEVER
        self.stalls: Stalls = []

    def take(self, ready_from: int, stalls: Stalls = ()) -> int:
        self.stalls = [stall for stall in self.stalls if stall[1] > self.last_word + 1]
        taken = consume(self.source.next_segment(), self.last_word + 1, self.stalls)
        self.source.segment_taken(taken)
        self.last_word = int(taken[-1])
        result = self.last_word + 1
        if self.rescaler is None:
            held_until = self.last = first_ready(max(result, ready_from), stalls)
        else:
            held_until = self.rescaler.earliest_take(result)
            self.last = self.rescaler.result(held_until, ready_from, stalls)
        if held_until > result:
            self.stalls.append((result, held_until))
        return self.last

    def finish(self) -> None:
        self.source.finish()


class TiledPoolTiming(Producer):
    """A TiledMaxPool (``gateware/tiled_pool.py``): takes each input element (used or not) as it
    comes, offers a tile's maximum ``TileGeometry.LATENCY`` cycles after its last element, and
    stalls whole while a maximum waits to be taken."""

    def __init__(self, tiles: TileGeometry, upstream: Producer):
        self.tiles, self.upstream = tiles, upstream
        self.accepted = 0
        self.last_accept = NEVER
        self.stalls: Stalls = []
        channels, width = tiles.channels, tiles.width
        (kh, kw), out_w = tiles.kernel, tiles.out_w
        # The input element that ends each output's tile, in output order.
        rows, columns, channel = np.meshgrid(np.arange(tiles.out_h), np.arange(out_w), np.arange(channels),
                                             indexing="ij")
        self.ends = (((rows + 1) * kh - 1) * width + (columns + 1) * kw - 1) * channels + channel
        self.ends = self.ends.reshape(-1)
        self.outputs = 0

    def _accept(self) -> int:
        self.last_accept = self.upstream.take(self.last_accept + 1, self.stalls)
        self.accepted += 1
        return self.last_accept

    def take(self, ready_from: int, stalls: Stalls = ()) -> int:
        image, index = divmod(self.outputs, len(self.ends))
        end = image * self.tiles.elements + int(self.ends[index])
        while self.accepted <= end:
            self._accept()
        offered = first_ready(self.last_accept + 1, self.stalls) + TileGeometry.LATENCY - 1
        self.last = first_ready(max(offered, ready_from), stalls)
        if self.last > offered:
            self.stalls.append((offered, self.last))
        self.outputs += 1
        return self.last

    def finish(self) -> None:
        while self.accepted % self.tiles.elements:
            self._accept()
        self.upstream.finish()


class DenseSource:
    """A Packer's side of a dense layer's MatrixTiming: one segment, the whole input, each word
    offered the cycle after its last element arrives. (The packer never waits on the first
    image: the MVU takes every word of its first segment as it is offered.)"""

    def __init__(self, upstream: Producer, inputs: int, simd: int):
        self.upstream, self.inputs, self.simd = upstream, inputs, simd

    def next_segment(self) -> np.ndarray:
        arrivals = np.empty(self.inputs, dtype=np.int64)
        last = NEVER
        for index in range(self.inputs):
            last = arrivals[index] = self.upstream.take(last + 1)
        return arrivals[self.simd - 1::self.simd] + 1

    def segment_taken(self, taken: np.ndarray) -> None:
        pass

    def finish(self) -> None:
        self.upstream.finish()


class ForkTiming:
    """A fork (``gateware/branches.Fork``): its input stream read by several ports. An element
    transfers from the stream before when the first port to ask for it takes it; a port asking
    later takes it then or when it is ready. Exact when the readers that ask later are ready by
    then: the network gives every input of a join but its longest branch a FIFO (``Network``),
    so that only the longest branch holds the fork up, as in the hardware."""

    def __init__(self, upstream: Producer, ports: int):
        self.upstream, self.ports = upstream, ports
        self.times: list[int] = []
        self.finished = 0

    def port(self) -> "ForkPort":
        return ForkPort(self)


class ForkPort(Producer):
    def __init__(self, fork: ForkTiming):
        self.fork, self.count = fork, 0

    def take(self, ready_from: int, stalls: Stalls = ()) -> int:
        times = self.fork.times
        if self.count == len(times):
            times.append(self.fork.upstream.take(ready_from, stalls))
        self.last = first_ready(max(times[self.count], ready_from), stalls)
        self.count += 1
        return self.last

    def finish(self) -> None:
        self.fork.finished += 1
        if self.fork.finished == self.fork.ports:
            self.fork.upstream.finish()


class FIFOTiming(Producer):
    """A branch FIFO (``gateware/branches.StreamFIFO``) that never fills: it takes each element as
    its stream offers it, and offers it ``latency`` cycles later. ``entered``/``left`` note the
    transfers in and out, from which :meth:`depth_needed` follows."""

    def __init__(self, upstream: Producer, latency: int):
        self.upstream, self.latency = upstream, latency
        self.entered: list[int] = []
        self.left: list[int] = []
        self.pending: int | None = None  # the entry of the next element, once its stream gave it

    def offered(self) -> int:
        """The cycle the next element is offered from: it enters as its stream offers it (the
        FIFO never fills, so that does not wait for the reader)."""
        if self.pending is None:
            self.pending = self.upstream.take(NEVER)
        return max(self.pending + self.latency, self.last + 1)

    def take(self, ready_from: int, stalls: Stalls = ()) -> int:
        offered = self.offered()
        self.last = first_ready(max(offered, ready_from), stalls)
        self.entered.append(self.pending)
        self.left.append(self.last)
        self.pending = None
        return self.last

    def finish(self) -> None:
        self.upstream.finish()

    def depth_needed(self) -> int:
        """The fewest entries with which no element would have waited: element ``j`` is taken when
        fewer than ``depth`` are held, those taken before it and not yet read."""
        left = np.asarray(self.left, dtype=np.int64)
        read_before = np.searchsorted(left, np.asarray(self.entered, dtype=np.int64), side="left")
        return int(np.max(np.arange(len(left)) - read_before, initial=0)) + 1


class AddTiming(Producer):
    """An Add (``gateware/branches.AddUnit``): a pipeline of ``latency`` registers, all moving
    together in each cycle its output is empty or being read (a global stall). All inputs transfer
    in one cycle, the first after the last take at which every one offers and the pipeline moves;
    an element reaches the output after ``latency`` cycles in which it moves, and while it waits
    there to be read nothing moves (a *freeze*: the cycles from its arrival to its transfer).

    Every input but the ``first`` (the longest branch) comes through a FIFO that never fills,
    whose next element enters as its stream offers it: each FIFO's next element is pulled first
    (``FIFOTiming.offered``), then the first input, ready from when they are all there, so that a
    branch that comes late for one element (a 3x3 convolution's last row, beside a slower 1x1
    one) holds the first input up as the hardware does. The price: a FIFO branch that pulls a
    shared fork ahead of the longest branch is given the fork's elements as soon as it asks
    (``ForkTiming``), so its own stage may be stamped early when the longest branch holds the fork
    back (measured: 1 of 8 random plans of a TFLite residual block, its 3x3 convolution 98 cycles
    early; the join, the latency and the interval exact in all 8)."""

    def __init__(self, inputs: list[Producer], first: int, latency: int):
        self.inputs, self.first, self.latency = inputs, first, latency
        self.taken = NEVER  # the last take
        self.freezes: Stalls = []  # [arrival, transfer) of the elements read since the last take

    def take(self, ready_from: int, stalls: Stalls = ()) -> int:
        # Freezes that end before the next take can begin no longer matter.
        start = self.taken + 1
        self.freezes = [(begin, end) for begin, end in self.freezes if end > start]
        others = [producer for k, producer in enumerate(self.inputs) if k != self.first]
        offered = max((producer.offered() for producer in others), default=NEVER)
        taken = self.inputs[self.first].take(max(start, offered), self.freezes)
        for producer in others:
            taken = max(taken, producer.take(taken, self.freezes))
        # The element moves at the end of each of the next latency - 1 cycles that no element
        # ahead of it freezes, and is offered the cycle after the last move.
        cycle = taken + 1
        for _ in range(self.latency - 1):
            cycle = first_ready(cycle, self.freezes) + 1
        self.taken = taken
        self.last = first_ready(max(cycle, ready_from), stalls)
        if self.last > cycle:
            self.freezes.append((cycle, self.last))
        return self.last

    def finish(self) -> None:
        for producer in self.inputs:
            producer.finish()


class ConcatTiming(Producer):
    """A Concat (``gateware/branches.ConcatUnit``): each pixel's ``channels[k]`` elements of input
    ``k`` in turn, each taken when offered and the output register is free, offered ``latency``
    cycles later. At each pixel's first element the ``first`` input's elements (the longest
    branch's) are pulled before the others, each when the unit would reach it if the inputs
    before it in the pixel are there (they come through FIFOs), so that the longest branch asks
    its fork for every element first, as it holds the fork up in the hardware."""

    def __init__(self, inputs: list[Producer], channels: tuple[int, ...], first: int, latency: int):
        self.inputs, self.channels, self.first, self.latency = inputs, channels, first, latency
        self.sequence = [k for k, count in enumerate(channels) for _ in range(count)]
        self.before_first = sum(channels[:first])
        self.position = 0
        self.first_taken: list[int] = []  # the longest branch's elements of the current pixel

    def take(self, ready_from: int, stalls: Stalls = ()) -> int:
        if self.position == 0:
            reach = self.last + self.before_first
            self.first_taken = []
            for _ in range(self.channels[self.first]):
                reach = self.inputs[self.first].take(reach) + self.latency
                self.first_taken.append(reach - self.latency)
        source = self.sequence[self.position]
        if source == self.first:
            taken = max(self.first_taken.pop(0), self.last)
        else:
            taken = self.inputs[source].take(self.last)
        self.position = (self.position + 1) % len(self.sequence)
        self.last = first_ready(max(taken + self.latency, ready_from), stalls)
        return self.last

    def finish(self) -> None:
        for producer in self.inputs:
            producer.finish()
