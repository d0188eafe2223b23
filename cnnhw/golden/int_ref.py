"""The bit-exact integer golden model: what the hardware must compute, integer for integer.

After the input quantizer (the only float step) everything is int64 NumPy arithmetic
using the rules of ``cnnhw.quant.arith``. Every layer's output is returned so hardware
can be compared layer by layer.
"""

from __future__ import annotations

from functools import singledispatch

import numpy as np

from ..quant.arith import saturate
from ..quant.qgraph import QAdd, QClamp, QConcat, QConv, QDense, QGlobalPool, QGraph, QLayer, QLookup, QPool, QReshape
from ..ir.batches import run_in_batches
from ..ir.graph import INPUT
from ..ir.ops import PoolKind
from ..ir.windows import pad, pool_windows, window_counts, window_stack


class AccumulatorOverflow(AssertionError):
    """An accumulator left its derived format: a bug in the width derivation, never user error."""


def run_int(qgraph: QGraph, x: np.ndarray, *, every_layer: bool = False):
    """Quantize the float batch ``x`` and run the integer layers.

    Returns the int64 output batch, or with ``every_layer`` a list of every layer's output
    (entry 0 is the quantized input, then one entry per layer).
    """
    return run_in_batches(qgraph.graph, x, lambda batch: _run(qgraph, batch), every_layer)


def _run(qgraph: QGraph, x: np.ndarray) -> list[np.ndarray]:
    values = {INPUT: qgraph.input(x)}
    outputs = [values[INPUT]]
    for layer, reads in zip(qgraph.layers, qgraph.layer_inputs):
        value = apply_int(layer, *(values[name] for name in reads))
        values[layer.name] = value
        outputs.append(value)
    return outputs


def _check_accumulator(acc: np.ndarray, layer) -> np.ndarray:
    fmt = layer.acc_format
    if acc.size and (acc.min() < fmt.lo or acc.max() > fmt.hi):
        raise AccumulatorOverflow(f"{layer.label} '{layer.name}': accumulator left {fmt} "
                                  f"([{acc.min()}, {acc.max()}])")
    return acc


@singledispatch
def apply_int(layer: QLayer, x: np.ndarray, *more: np.ndarray) -> np.ndarray:
    """One layer on a batch (a join on one batch of each of its inputs)."""
    raise TypeError(f"no integer model for {type(layer).__name__}")


@apply_int.register
def _(layer: QAdd, *inputs):
    return layer.requant.sum_of(inputs)


@apply_int.register
def _(layer: QConcat, *inputs):
    return np.concatenate([layer.requant.finish(x * m) for x, m in zip(inputs, layer.requant.multipliers)], axis=1)


@apply_int.register
def _(layer: QConv, x):
    out_hw = layer.out_shape[1:]
    windows = window_stack(pad(x, layer.pads, layer.pad_value), layer.kernel, layer.stride, layer.dilation, out_hw)
    per_group_in = layer.weight.shape[1]
    per_group_out = layer.weight.shape[0] // layer.groups
    parts = []
    for g in range(layer.groups):
        w = layer.weight[g * per_group_out:(g + 1) * per_group_out].reshape(per_group_out, per_group_in, -1)
        win = windows[:, g * per_group_in:(g + 1) * per_group_in]
        parts.append(np.einsum("nckhw,ock->nohw", win, w))
    acc = np.concatenate(parts, axis=1) + layer.bias[None, :, None, None]
    return layer.requant(_check_accumulator(acc, layer), channel_axis=1)


@apply_int.register
def _(layer: QDense, x):
    acc = x @ layer.weight.T + layer.bias
    return layer.requant(_check_accumulator(acc, layer), channel_axis=1)


@apply_int.register
def _(layer: QPool, x):
    out_hw = layer.out_shape[1:]
    if layer.kind == PoolKind.MAX:
        # Padding never wins: it holds the format's minimum, which no window falls below.
        return pool_windows(x, layer, out_hw, layer.in_format.lo).max(axis=2)
    sums = pool_windows(x, layer, out_hw, 0).sum(axis=2)
    return layer.divider(sums, window_counts(layer, x.shape[2:], out_hw))


@apply_int.register
def _(layer: QGlobalPool, x):
    if layer.kind == PoolKind.MAX:
        return x.max(axis=(2, 3), keepdims=True)
    sums = x.sum(axis=(2, 3), keepdims=True)
    return layer.divider(sums, np.full(sums.shape, x.shape[2] * x.shape[3]))


@apply_int.register
def _(layer: QReshape, x):
    return x.reshape((x.shape[0],) + tuple(layer.out_shape))


@apply_int.register
def _(layer: QClamp, x):
    return saturate(x, layer.lo, layer.hi)


@apply_int.register
def _(layer: QLookup, x):
    return layer.table(x)
