"""The float reference: what the network computes, in NumPy float64.

This is the meaning of a :class:`~cnnhw.ir.Graph`. It is checked against ONNX's own
reference evaluator on the ONNX conformance cases; quantization is measured against it.
Inputs are batches in the canonical layout ``(N, *graph.input_shape)``.
"""

from __future__ import annotations

from functools import singledispatch

import numpy as np

from . import Affine, Clip, Conv2d, Dense, GlobalPool, Graph, LeakyRelu, Pool2d, Relu, Reshape, Softmax, Transpose
from .graph import INPUT
from .ops import Add, Concat, LookupActivation, Op, Pad, PoolKind
from .batches import run_in_batches
from .windows import pad, pool_windows, window_counts, window_stack


def run_float(graph: Graph, x: np.ndarray, *, every_layer: bool = False):
    """Run ``graph`` on the batch ``x``.

    Returns the output batch (float64), or with ``every_layer`` a list holding the output
    of every layer in order (the last entry is the network output).
    """
    if not graph.layers:
        return [] if every_layer else np.asarray(x, dtype=np.float64)
    return run_in_batches(graph, x, lambda batch: _run(graph, batch), every_layer)


def _run(graph: Graph, x: np.ndarray) -> list[np.ndarray]:
    values = {INPUT: np.asarray(x, dtype=np.float64)}
    outputs = []
    for layer in graph.layers:
        value = apply(layer.op, *(values[name] for name in layer.inputs))
        values[layer.op.name] = value
        outputs.append(value)
    return outputs


@singledispatch
def apply(op: Op, x: np.ndarray, *more: np.ndarray) -> np.ndarray:
    """Apply one op to a batch (a join to one batch of each of its inputs)."""
    raise TypeError(f"no float reference for {type(op).__name__}")


@apply.register
def _(op: Add, a, b):
    return a + b


@apply.register
def _(op: Concat, *parts):
    return np.concatenate(parts, axis=1)


@apply.register
def _(op: Conv2d, x):
    _, out_h, out_w = op.output_shape(x.shape[1:])
    windows = window_stack(pad(x, op.pads, 0.0), op.kernel, op.stride, op.dilation, (out_h, out_w))
    weight = op.weight.astype(np.float64)
    per_group_in = weight.shape[1]
    per_group_out = op.out_channels // op.groups
    parts = []
    for g in range(op.groups):
        w = weight[g * per_group_out:(g + 1) * per_group_out].reshape(per_group_out, per_group_in, -1)
        win = windows[:, g * per_group_in:(g + 1) * per_group_in]
        parts.append(np.einsum("nckhw,ock->nohw", win, w, optimize=True))
    return np.concatenate(parts, axis=1) + op.bias.astype(np.float64)[None, :, None, None]


@apply.register
def _(op: Pool2d, x):
    out_hw = op.output_shape(x.shape[1:])[1:]
    if op.kind == PoolKind.MAX:
        return pool_windows(x, op, out_hw, -np.inf).max(axis=2)
    return pool_windows(x, op, out_hw, 0.0).sum(axis=2) / window_counts(op, x.shape[2:], out_hw)


@apply.register
def _(op: GlobalPool, x):
    reduce = np.max if op.kind == PoolKind.MAX else np.mean
    return reduce(x, axis=(2, 3), keepdims=True)


@apply.register
def _(op: Dense, x):
    return x @ op.weight.astype(np.float64).T + op.bias.astype(np.float64)


@apply.register
def _(op: Affine, x):
    return x * op.scale.astype(np.float64) + op.shift.astype(np.float64)


@apply.register
def _(op: Relu, x):
    return np.maximum(x, 0.0)


@apply.register
def _(op: Clip, x):
    low = -np.inf if op.low is None else op.low
    high = np.inf if op.high is None else op.high
    return np.minimum(np.maximum(x, low), high)


@apply.register
def _(op: LeakyRelu, x):
    return np.where(x >= 0, x, op.alpha * x)


@apply.register
def _(op: LookupActivation, x):
    return op.function(x)


@apply.register
def _(op: Reshape, x):
    return x.reshape((x.shape[0],) + op.shape)


@apply.register
def _(op: Pad, x):
    top, left, bottom, right = op.pads
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))


@apply.register
def _(op: Transpose, x):
    return np.transpose(x, (0, *(axis + 1 for axis in op.perm)))


@apply.register
def _(op: Softmax, x):
    axes = tuple(a + 1 for a in op.axes)
    shifted = np.exp(x - x.max(axis=axes, keepdims=True))
    return shifted / shifted.sum(axis=axes, keepdims=True)
