"""Activation ranges: from calibration data, or data-free worst-case bounds.

Both return ``{INPUT: (lo, hi), op name: (lo, hi), ...}``: the real range of the model input
and of every op's output, per tensor.
"""

from __future__ import annotations

import numpy as np

from ..golden import run_float
from ..ir import Affine, Clip, Conv2d, Dense, GlobalPool, Graph, LeakyRelu, Pool2d, Relu, Reshape, Softmax

INPUT = "<input>"


def calibrate(graph: Graph, x: np.ndarray, method: str = "minmax", percentile: float = 99.99,
              batch: int = 64) -> dict[str, tuple[float, float]]:
    """Observed ranges on the batch ``x``: min/max, or the ``percentile`` and its mirror."""
    samples: dict[str, list[np.ndarray]] = {INPUT: [x]}
    for start in range(0, len(x), batch):
        outputs = run_float(graph, x[start:start + batch], every_layer=True)
        for layer, output in zip(graph.layers, outputs):
            samples.setdefault(layer.op.name, []).append(output)
    ranges = {}
    for name, chunks in samples.items():
        values = np.concatenate([c.reshape(-1) for c in chunks]).astype(np.float64)
        if method == "minmax":
            ranges[name] = (float(values.min()), float(values.max()))
        else:
            ranges[name] = (float(np.percentile(values, 100 - percentile)), float(np.percentile(values, percentile)))
        # A range must hold 0 (the zero point): ReLU outputs and images start at exactly 0.
        ranges[name] = (min(ranges[name][0], 0.0), max(ranges[name][1], 0.0))
    return ranges


def interval_bounds(graph: Graph, lo: float, hi: float) -> dict[str, tuple[float, float]]:
    """Data-free ranges: interval arithmetic from an input range ``[lo, hi]``.

    Safe (no value can leave its range) but loose: ranges grow with every layer, so
    quantization steps are coarse. Calibration data gives much better accuracy.
    """
    ranges = {INPUT: (min(lo, 0.0), max(hi, 0.0))}
    low, high = ranges[INPUT]
    for layer in graph.layers:
        op = layer.op
        if isinstance(op, (Conv2d, Dense)):
            weight = op.weight.astype(np.float64).reshape(op.weight.shape[0], -1)
            a, b = min(low, 0.0), max(high, 0.0)  # padding inserts zeros
            top = np.maximum(weight * a, weight * b).sum(axis=1) + op.bias
            bottom = np.minimum(weight * a, weight * b).sum(axis=1) + op.bias
            low, high = float(bottom.min()), float(top.max())
        elif isinstance(op, Affine):
            ends = np.stack([low * op.scale + op.shift, high * op.scale + op.shift])
            low, high = float(ends.min()), float(ends.max())
        elif isinstance(op, Relu):
            low, high = max(low, 0.0), max(high, 0.0)
        elif isinstance(op, Clip):
            bounds = (-np.inf if op.low is None else op.low, np.inf if op.high is None else op.high)
            low, high = (float(np.clip(v, *bounds)) for v in (low, high))
        elif isinstance(op, LeakyRelu):
            low = low if low >= 0 else op.alpha * low
        elif isinstance(op, (Pool2d, GlobalPool)):
            if isinstance(op, Pool2d) and op.kind == "avg" and op.count_include_pad:
                low, high = min(low, 0.0), max(high, 0.0)
        elif isinstance(op, Softmax):
            low, high = 0.0, 1.0
        elif not isinstance(op, Reshape):
            raise TypeError(f"no interval rule for {type(op).__name__}")
        ranges[op.name] = (min(low, 0.0), max(high, 0.0))
    return ranges
