"""The latency model's machinery: when each element of a stage's output stream transfers, given
when each element of its input stream does.

Times are clock cycles of transfers (``valid & ready``), counted from the image's first input
element (cycle 0). The model follows one image through an otherwise idle pipeline, its input
offered one element per cycle, every output taken as soon as it is offered. It follows each
block's handshake as the gateware has it (the blocks' docstrings give the cycles), so within a
stage it is exact, stalls included: a matrix unit waiting for its rescaler, a window unit waiting
for its ring to free a row. Between stages it assumes no stage makes the one before it wait
(a full line buffer only delays the elements it cannot take yet, not the stages before).

The shared step is :func:`consume`: a consumer that takes one word per cycle at most, never
before it is offered, and not while it is stalled.
"""

from __future__ import annotations

import numpy as np

from ..gateware.mvu import MatrixParameters
from ..gateware.window import WindowGeometry

#: A time before any other (``-inf`` would make the arrays float).
NEVER = -(1 << 40)


def consume(offered: np.ndarray | None, start: int, stalls: list[tuple[int, int]] = ()) -> np.ndarray:
    """Cycles at which a one-word-per-cycle consumer takes each word: word ``k`` at the first
    cycle at or after ``offered[k]`` (``None``: every word is there), after word ``k - 1`` and
    at or after ``start``, outside every stall ``[begin, end)`` (sorted, not overlapping)."""
    count = len(offered) if offered is not None else 0
    return _consume(offered, start, stalls, count)


def consume_count(count: int, start: int, stalls: list[tuple[int, int]] = ()) -> np.ndarray:
    """:func:`consume` of ``count`` words that are all there."""
    return _consume(None, start, stalls, count)


def _consume(offered, start, stalls, count) -> np.ndarray:
    steps = np.arange(count, dtype=np.int64)
    if offered is None:
        taken = start + steps
    else:
        taken = np.maximum.accumulate(np.maximum(np.asarray(offered, dtype=np.int64) - steps, start)) + steps
    for begin, end in stalls:
        hit = int(np.searchsorted(taken, begin))
        if hit < count and taken[hit] < end:
            rest = None if offered is None else offered[hit:]
            taken[hit:] = _consume(rest, end, (), count - hit)
    return taken


class RescalerTiming:
    """A Rescaler (``gateware/rescale.py``): takes a value when idle, offers its result
    ``cycles_per_value - 1`` cycles later and is idle again the cycle after (the result is taken
    as soon as it is offered)."""

    def __init__(self, cycles_per_value: int):
        self.cycles_per_value = cycles_per_value
        self.idle_from = NEVER

    def take(self, offered: int) -> int:
        """The cycle the value offered at ``offered`` is taken; its result transfers at
        ``taken + cycles_per_value - 1``."""
        taken = max(offered, self.idle_from)
        self.idle_from = taken + self.cycles_per_value
        return taken


class MatrixTiming:
    """A MatrixVectorUnit and its RequantUnit (``gateware/mvu.py``, ``gateware/requant.py``).

    The unit takes a window segment (one group's ``words`` words) at a time: with one fold each
    word is multiplied as it is taken; with several, words go into the ping-pong buffer (a half
    is free once the segment two before is computed) and fold 0 reads each word the cycle after
    it is written. A fold's accumulators are offered ``MatrixParameters.LATENCY`` cycles after its
    last word; while they wait for the requantizer, the whole unit stalls. The requantizer takes a
    word once it has handed over the last lane of the one before, and hands lanes to its Rescaler
    one after another."""

    def __init__(self, matrix: MatrixParameters, pe: int, cycles_per_value: int):
        self.matrix, self.pe = matrix, pe
        self.rescaler = RescalerTiming(cycles_per_value)
        self.last_fire = self.last_write = NEVER
        self.stalls: list[tuple[int, int]] = []
        self.finished: list[int] = []  # cycle of each segment's last fire
        self.lane_free = NEVER  # the requantizer can take a word from this cycle

    def segment(self, offered: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """Take one segment offered at ``offered`` (one cycle per word); return the cycles its
        words are taken and the transfer cycles of the ``folds * pe`` outputs it makes."""
        mx = self.matrix
        outputs: list[int] = []
        if mx.folds == 1:
            fires = self._fire(offered)
            outputs += self._bank(int(fires[-1]))
            taken = fires
        else:
            n = len(self.finished)
            half_free = self.finished[n - 2] + 1 if n >= 2 else NEVER
            taken = consume(offered, max(self.last_write + 1, half_free))
            self.last_write = int(taken[-1])
            for fold in range(mx.folds):
                fires = self._fire(taken + 1 if fold == 0 else None, mx.words)
                outputs += self._bank(int(fires[-1]))
        self.finished.append(self.last_fire)
        return taken, outputs

    def _fire(self, offered, count: int | None = None) -> np.ndarray:
        self.stalls = [stall for stall in self.stalls if stall[1] > self.last_fire + 1]
        start = self.last_fire + 1
        fires = consume(offered, start, self.stalls) if offered is not None else \
            consume_count(count, start, self.stalls)
        self.last_fire = int(fires[-1])
        return fires

    def _bank(self, last_fire: int) -> list[int]:
        """A fold's output, its last word fired at ``last_fire``: the transfer cycle of each lane."""
        moves = last_fire + 1  # its word moves into the accumulate stage at the next unstalled cycle
        for begin, end in self.stalls:
            if begin <= moves < end:
                moves = end
        offered = moves + MatrixParameters.LATENCY - 1
        taken = max(offered, self.lane_free)
        if taken > offered:
            self.stalls.append((offered, taken))
        cycles = self.rescaler.cycles_per_value
        first = self.rescaler.take(taken + 1)
        lanes = [first + lane * cycles for lane in range(self.pe)]
        self.rescaler.idle_from = lanes[-1] + cycles
        self.lane_free = lanes[-1]
        return [lane + cycles - 1 for lane in lanes]


class ReducerTiming:
    """A PoolReducer (``gateware/pool.py``): one word per cycle; each window's result is offered
    the cycle after its last word, as the output (max) or to its Rescaler (average), and the
    reducer takes no word while a result waits."""

    def __init__(self, cycles_per_value: int | None):
        self.rescaler = RescalerTiming(cycles_per_value) if cycles_per_value is not None else None
        self.last = NEVER
        self.stalls: list[tuple[int, int]] = []

    def segment(self, offered: np.ndarray) -> tuple[np.ndarray, list[int]]:
        self.stalls = [stall for stall in self.stalls if stall[1] > self.last + 1]
        taken = consume(offered, self.last + 1, self.stalls)
        self.last = int(taken[-1])
        result = self.last + 1
        if self.rescaler is None:
            return taken, [result]
        handed = self.rescaler.take(result)
        if handed > result:
            self.stalls.append((result, handed))
        return taken, [handed + self.rescaler.cycles_per_value - 1]


def window_stage_times(geometry: WindowGeometry, times: np.ndarray, consumer, segment_words: int) -> np.ndarray:
    """Output transfer cycles of a SlidingWindow feeding ``consumer`` (a MatrixTiming or a
    ReducerTiming, taking ``segment_words`` words at a time), given the input's ``times`` in
    stream order (HWC).

    The writer takes an element when it arrives and the ring has a slot for its row (row ``y``
    needs the reader past row ``y - rows``); a row counts one cycle after its last element. An
    output row is issued once its last input row counts, one word per cycle, each word offered
    two cycles after its issue (``WindowGeometry.LATENCY`` from the last needed element), and
    the unit issues only while fewer than three words wait in its FIFO."""
    g = geometry
    height, (span, _), (stride, _), top = g.height, g.span, g.stride, g.pads[0]
    row_elements = g.width * g.channels
    arrivals = np.asarray(times, dtype=np.int64).reshape(height, row_elements)
    row_counts = [NEVER] * height  # the cycle each input row counts as written
    reader_row_done: list[int] = []  # cycle the reader moved past each output row
    written, last_write = 0, NEVER
    words_per_row = g.out_hw[1] * g.words_per_window
    issued_tail = NEVER
    taken_tail = np.full(3, NEVER, dtype=np.int64)
    outputs: list[int] = []
    for row in range(g.out_hw[0]):
        needed = min(height - 1, max(0, row * stride - top + span - 1))
        while written <= needed:
            # Row `written` may go into the ring once the reader's first row is past
            # written - rows: once it has left the output row before the first one starting there.
            allowed, threshold = NEVER, written - g.rows + 1
            if threshold > 0:
                leaves = -(-(threshold + top) // stride) - 1  # the output row the reader must leave
                allowed = reader_row_done[leaves]
            taken = consume(arrivals[written], max(last_write + 1, allowed))
            last_write = int(taken[-1])
            row_counts[written] = last_write + 1
            written += 1
        ready = row_counts[needed]
        offered = np.full(segment_words, ready + WindowGeometry.LATENCY - 1, dtype=np.int64)
        row_taken = []
        for _ in range(words_per_row // segment_words):
            taken, made = consumer.segment(offered)
            row_taken.append(taken)
            outputs += made
        row_taken = np.concatenate(row_taken)
        # Issue cycles: word j no earlier than the row is ready, the word before it, and the read
        # of word j - 3 (the FIFO's room); the reader leaves the row the cycle after its last issue.
        before = np.concatenate([taken_tail, row_taken])[:len(row_taken)]
        earliest = np.maximum(ready, before + 1)
        steps = np.arange(len(row_taken), dtype=np.int64)
        issued = np.maximum.accumulate(np.maximum(earliest - steps, issued_tail + 1)) + steps
        issued_tail = int(issued[-1])
        taken_tail = np.concatenate([taken_tail, row_taken])[-3:]
        reader_row_done.append(issued_tail + 1)
    return np.asarray(outputs, dtype=np.int64)
