"""The latency model's steps (cnnhw/hardware/timing.py) on cases worked out by hand from the
blocks' handshakes. The whole model is held to the simulation, stage by stage, in test_sim.py."""

from __future__ import annotations

import numpy as np

from cnnhw.gateware.mvu import MatrixParameters
from cnnhw.hardware.timing import NEVER, InputTiming, MatrixTiming, RescalerTiming, consume, first_ready


def test_a_consumer_takes_one_word_per_cycle_when_offered_and_not_stalled():
    offered = np.array([0, 0, 5, 6, 6, 20])
    assert consume(offered, 0).tolist() == [0, 1, 5, 6, 7, 20]
    assert consume(offered, 3).tolist() == [3, 4, 5, 6, 7, 20]
    # A stall moves the word it hits and every word after it that would fall in it.
    assert consume(offered, 0, [(5, 9)]).tolist() == [0, 1, 9, 10, 11, 20]
    assert consume(None, 10, [(12, 14)], count=4).tolist() == [10, 11, 14, 15]
    assert first_ready(5, [(2, 4), (5, 9), (9, 12)]) == 12 and first_ready(4, [(2, 4)]) == 4


def test_the_input_offers_each_element_the_cycle_after_the_one_before():
    source = InputTiming()
    assert [source.take(NEVER), source.take(NEVER), source.take(10), source.take(NEVER)] == [0, 1, 10, 11]


class Segments:
    """Two-word segments offered at the given cycles; records when the unit took them."""

    def __init__(self, *offered):
        self.offered, self.taken = [np.array(words) for words in offered], []

    def next_segment(self):
        return self.offered[len(self.taken)]

    def segment_taken(self, taken):
        self.taken.append(taken.tolist())


def test_a_matrix_unit_stalls_while_its_requantizer_is_busy():
    """pe = 2, one fold of 2 words, a rescaler of 3 cycles per value. Fold 0 fires at 0 and 1, its
    accumulators are offered at 3 and taken at once; the rescaler takes lane 0 at 4 (result at 6)
    and lane 1 at 7 (result at 9). Fold 1 fires at 2 and 3 and is offered at 5, but the
    requantizer takes it only as it hands lane 1 of fold 0 over, at 7: the unit stalls in 5 and 6,
    so a third segment offered at 4 fires at 4, then 7. Fold 1's lanes go at 10 and 13."""
    matrix = MatrixParameters(groups=1, outputs=2, inputs=2, pe=2, simd=1, element_bits=8, element_signed=True,
                              weight_bits=8, acc_bits=20)
    segments = Segments([0, 1], [2, 3], [4, 4])
    unit = MatrixTiming(matrix, pe=2, rescaler=RescalerTiming(3), source=segments)
    results = [unit.take(NEVER) for _ in range(4)]
    assert results == [6, 9, 12, 15]
    unit.take(NEVER)
    assert segments.taken == [[0, 1], [2, 3], [4, 7]]


def test_a_late_consumer_holds_the_rescaler():
    """The same unit, its consumer ready only from cycle 20: lane 0 goes at 20, the rescaler is idle
    at 21 and takes lane 1 then (its result at 23)."""
    matrix = MatrixParameters(groups=1, outputs=2, inputs=2, pe=2, simd=1, element_bits=8, element_signed=True,
                              weight_bits=8, acc_bits=20)
    unit = MatrixTiming(matrix, pe=2, rescaler=RescalerTiming(3), source=Segments([0, 1]))
    assert [unit.take(20), unit.take(NEVER)] == [20, 23]
