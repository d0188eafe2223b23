"""What the hardware must stream, from the integer golden model, and where it differs.

Shared by the Amaranth-simulator tests and the cocotb testbench so both check the same
thing the same way: every stage's output stream, element by element, with ``==``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .gateware.streams import stream_order
from .golden.classes import classes_of
from .golden.int_ref import run_int
from .quant.qgraph import QGraph, QReshape


@dataclass(frozen=True)
class ExpectedStreams:
    inputs: list[int]  # the quantized images, in stream order, one after another
    stages: list[tuple[str, list[int]]]  # (layer name, its output stream) for every hardware stage
    classes: list[int]

    @property
    def outputs(self) -> list[int]:
        return self.stages[-1][1]


def expected_streams(qgraph: QGraph, x: np.ndarray) -> ExpectedStreams:
    """The streams for the float batch ``x`` (quantized by the graph's input quantizer)."""
    values = run_int(qgraph, x, every_layer=True)
    inputs = [int(v) for image in values[0] for v in image.ravel()[stream_order(image.shape)]]
    stages = []
    for layer, output in zip(qgraph.layers, values[1:]):
        if isinstance(layer, QReshape):
            continue  # no stage: a flatten moves no data
        order = stream_order(layer.out_shape)
        stages.append((layer.name, [int(v) for image in output for v in image.ravel()[order]]))
    final = values[-1].reshape(len(x), -1)
    order = stream_order(qgraph.layers[-1].out_shape) if qgraph.layers else np.arange(final.shape[1])
    classes = [int(c) for c in classes_of(final[:, order])]  # the hardware's argmax walks stream order
    return ExpectedStreams(inputs, stages, classes)


@dataclass(frozen=True)
class Mismatch:
    layer: str
    index: int
    expected: int | None  # None: the hardware produced more than expected
    got: int | None  # None: the hardware produced fewer

    def __str__(self) -> str:
        return f"layer '{self.layer}', element {self.index}: expected {self.expected}, got {self.got}"


def first_mismatch(layer: str, expected: list[int], got: list[int]) -> Mismatch | None:
    for index, (want, have) in enumerate(zip(expected, got)):
        if want != have:
            return Mismatch(layer, index, want, have)
    if len(expected) != len(got):
        index = min(len(expected), len(got))
        return Mismatch(layer, index, expected[index] if index < len(expected) else None,
                        got[index] if index < len(got) else None)
    return None
