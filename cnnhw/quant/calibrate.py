"""Activation ranges: from calibration data, or data-free worst-case bounds.

Both return ``{INPUT: (lo, hi), op name: (lo, hi), ...}``: the real range of the model input
and of every op's output, per tensor.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from ..ir.batches import batches
from ..ir.graph import INPUT
from ..ir.ops import Add, Concat, PoolKind
from ..ir.reference import run_float
from ..ir import (Affine, Clip, Conv2d, Dense, GlobalPool, Graph, LeakyRelu, LookupActivation, Pool2d, Relu, Reshape,
                  Softmax)



def calibrate(graph: Graph, x: np.ndarray, method: str = "minmax", percentile: float = 99.99) -> dict[str, tuple[float, float]]:
    """Observed ranges on the batch ``x``: min/max, or the ``percentile`` and its mirror.

    Min/max is kept per batch, so memory does not grow with the images; percentiles need every
    value, so a percentile calibration keeps every layer's outputs (bounded by ``batches``)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size and x.min() == x.max():
        raise DataError(f"calibration data: every value of all {len(x)} images is {x.min():g}; ranges calibrated "
                        f"on constant images say nothing about real ones: give real images")
    names = [INPUT, *(layer.op.name for layer in graph.layers)]
    if method == "minmax":
        lows = dict.fromkeys(names, np.inf)
        highs = dict.fromkeys(names, -np.inf)
        for part in batches(graph, len(x)):
            for name, value in zip(names, [x[part], *run_float(graph, x[part], every_layer=True)]):
                lows[name] = min(lows[name], float(value.min()))
                highs[name] = max(highs[name], float(value.max()))
        observed = {name: (lows[name], highs[name]) for name in names}
    else:
        outputs = [x, *run_float(graph, x, every_layer=True)]
        observed = {name: (float(np.percentile(value, 100 - percentile)), float(np.percentile(value, percentile)))
                    for name, value in zip(names, outputs)}
    # A range must hold 0 (the zero point): ReLU outputs and images start at exactly 0.
    return {name: (min(lo, 0.0), max(hi, 0.0)) for name, (lo, hi) in observed.items()}


def interval_bounds(graph: Graph, lo: float, hi: float) -> dict[str, tuple[float, float]]:
    """Data-free ranges: interval arithmetic from an input range ``[lo, hi]``.

    Safe (no value can leave its range) but loose: ranges grow with every layer, so
    quantization steps are coarse. Calibration data gives much better accuracy.
    """
    ranges = {INPUT: (min(lo, 0.0), max(hi, 0.0))}
    for layer in graph.layers:
        op = layer.op
        low, high = ranges[layer.inputs[0]]
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
        elif isinstance(op, LookupActivation):
            low, high = op.image(low, high)
        elif isinstance(op, Add):
            low, high = (sum(ranges[name][end] for name in layer.inputs) for end in (0, 1))
        elif isinstance(op, Concat):
            low, high = min(ranges[name][0] for name in layer.inputs), max(ranges[name][1] for name in layer.inputs)
        elif isinstance(op, (Pool2d, GlobalPool)):
            if isinstance(op, Pool2d) and op.kind == PoolKind.AVG and op.count_include_pad:
                low, high = min(low, 0.0), max(high, 0.0)
        elif isinstance(op, Softmax):
            low, high = 0.0, 1.0
        elif not isinstance(op, Reshape):
            raise TypeError(f"no interval rule for {type(op).__name__}")
        ranges[op.name] = (min(low, 0.0), max(high, 0.0))
    return ranges
