"""Pure graph passes, each ``Graph -> Graph``, run in an explicit order.

Every pass returns a new graph (the constructor re-checks all shapes). They change how
the network is written, never what it computes (up to float rounding). Each merges
neighbouring ops, so each is a rewrite of the graph's segments (``Graph.map_segments``): within
a segment an op is the only reader of the one before, so no other branch sees the change.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np

from .graph import Graph, Layer
from .ops import Affine, Conv2d, Dense, Pad, Reshape, Transpose


def per_segment(rewrite):
    """The pass that applies ``rewrite(layers) -> ops`` to each segment of a graph."""
    @functools.wraps(rewrite)
    def graph_pass(graph: Graph) -> Graph:
        return graph.map_segments(rewrite)
    return graph_pass


def _per_channel(constant: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray | None:
    """``constant`` as one value per output channel (axis 0), or None if it varies in space."""
    padded = constant.reshape((1,) * (len(out_shape) - constant.ndim) + constant.shape)
    if any(d != 1 for d in padded.shape[1:]):
        return None
    return np.broadcast_to(padded.reshape(-1), (out_shape[0],)).astype(np.float64)


@per_segment
def fold_affine(layers: list[Layer]) -> list:
    """Merge each Affine (folded BatchNorm, Add/Mul of constants) into the Conv/Dense before it.

    ``(W x + b) * s + t == (W * s) x + (b * s + t)`` when ``s`` and ``t`` are one value per
    output channel. An Affine that does not follow a conv/dense layer, or varies over
    space, stays in the graph.
    """
    ops: list = []
    for layer in layers:
        op = layer.op
        previous = ops[-1] if ops else None
        if isinstance(op, Affine) and isinstance(previous, (Conv2d, Dense)):
            scale = _per_channel(op.scale, layer.out_shape)
            shift = _per_channel(op.shift, layer.out_shape)
            if scale is not None and shift is not None:
                weight = previous.weight.astype(np.float64)
                weight = weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
                bias = previous.bias.astype(np.float64) * scale + shift
                if isinstance(previous, Conv2d):
                    ops[-1] = Conv2d(previous.name, weight, bias, previous.stride, previous.pads,
                                     previous.dilation, previous.groups)
                else:
                    ops[-1] = Dense(previous.name, weight, bias)
                continue
        ops.append(op)
    return ops


@per_segment
def drop_noop_reshapes(layers: list[Layer]) -> list:
    """Remove reshapes that leave the shape unchanged (e.g. a Flatten of a vector)."""
    return [layer.op for layer in layers if not (isinstance(layer.op, Reshape) and layer.in_shape == layer.out_shape)]


def _compact(constant: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``constant`` broadcast onto ``shape``, kept as one value per channel (axis 0) when it does
    not vary over the other axes."""
    full = np.broadcast_to(constant, shape)
    first = full[(slice(None),) + (slice(0, 1),) * (len(shape) - 1)]
    return first if np.array_equal(np.broadcast_to(first, shape), full) else np.array(full)


@per_segment
def affine_before_reshapes(layers: list[Layer]) -> list:
    """Move an Affine that follows reshapes of a Conv/Dense output to right after that layer, its
    constants reshaped (an element-wise op commutes with a row-major reshape), when they are then
    one value per channel, so that ``fold_affine`` merges it. This is PyTorch's BatchNorm1d:
    Unsqueeze, BatchNormalization, Squeeze after a dense layer."""
    ops: list = []
    shapes: list[tuple[int, ...]] = []
    for layer in layers:
        op = layer.op
        start = len(ops)
        while start > 0 and isinstance(ops[start - 1], Reshape):
            start -= 1
        if isinstance(op, Affine) and start < len(ops) and start > 0 and isinstance(ops[start - 1], (Conv2d, Dense)):
            shape = shapes[start - 1]
            scale = _compact(np.broadcast_to(op.scale, layer.out_shape).reshape(shape), shape)
            shift = _compact(np.broadcast_to(op.shift, layer.out_shape).reshape(shape), shape)
            if _per_channel(scale, shape) is not None and _per_channel(shift, shape) is not None:
                ops.insert(start, Affine(op.name, scale, shift))
                shapes.insert(start, shape)
                continue
        ops.append(op)
        shapes.append(layer.out_shape)
    return ops


@per_segment
def merge_reshapes(layers: list[Layer]) -> list:
    """A reshape straight into another is the second alone (each names its whole target shape)."""
    return [layer.op for index, layer in enumerate(layers)
            if not (isinstance(layer.op, Reshape) and index + 1 < len(layers)
                    and isinstance(layers[index + 1].op, Reshape))]


@per_segment
def merge_affines(layers: list[Layer]) -> list:
    """Two Affines in a row are one: ``(x * a + b) * c + d == x * (a * c) + (b * c + d)`` (a
    normalising layer's Sub then Div)."""
    ops: list = []
    for op in (layer.op for layer in layers):
        if isinstance(op, Affine) and ops and isinstance(ops[-1], Affine):
            first = ops.pop()
            op = Affine(first.name, first.scale * op.scale, first.shift * op.scale + op.shift)
        ops.append(op)
    return ops


@per_segment
def fold_affine_into_next(layers: list[Layer]) -> list:
    """Merge an Affine that is one value per input channel into the Conv/Dense after it:
    ``W (x * s + t) + b == (W * s) x + (W t + b)``. A convolution must not pad, unless ``t`` is
    0: its zeros are zeros of the Affine's output, not of its input. (A normalising layer on
    the model input, as Keras writes one.)"""
    ops: list = []
    index = 0
    while index < len(layers):
        layer, op = layers[index], layers[index].op
        following = layers[index + 1].op if index + 1 < len(layers) else None
        if isinstance(op, Affine) and isinstance(following, (Conv2d, Dense)):
            merged = _affine_into(op, following, layer.out_shape)
            if merged is not None:
                ops.append(merged)
                index += 2
                continue
        ops.append(op)
        index += 1
    return ops


def _affine_into(affine: Affine, op, shape: tuple[int, ...]):
    """``op`` (Conv2d or Dense) reading ``affine``'s output of ``shape``, with the affine folded
    in; None when it cannot be."""
    if isinstance(op, Dense):
        scale = np.broadcast_to(affine.scale, shape).reshape(-1).astype(np.float64)
        shift = np.broadcast_to(affine.shift, shape).reshape(-1).astype(np.float64)
        weight = op.weight.astype(np.float64)
        return replace(op, weight=weight * scale, bias=op.bias + weight @ shift)
    scale, shift = _per_channel(affine.scale, shape), _per_channel(affine.shift, shape)
    if scale is None or shift is None or (any(op.pads) and np.any(shift != 0)):
        return None
    weight = op.weight.astype(np.float64)
    out_channels, per_group = weight.shape[0], weight.shape[1]
    groups = op.groups
    # The input channel each weight reads: group (output channel // outputs per group) * per_group + i.
    channel = (np.arange(out_channels)[:, None] // (out_channels // groups)) * per_group + np.arange(per_group)
    factor = scale[channel][:, :, None, None]
    bias = op.bias + (weight * shift[channel][:, :, None, None]).sum(axis=(1, 2, 3))
    return replace(op, weight=weight * factor, bias=bias)


@per_segment
def fold_transpose_into_dense(layers: list[Layer]) -> list:
    """A Transpose, then a flatten, then a dense layer is a flatten of the untransposed image and a
    dense layer with its columns permuted: ``W flatten(transpose(x)) == W' flatten(x)`` with
    ``W'[:, order] = W``, where ``order`` is the untransposed index of each transposed element.
    (tf2onnx writes a Keras Flatten as Transpose to NHWC, then Reshape.)"""
    ops: list = []
    index = 0
    while index < len(layers):
        op = layers[index].op
        window = [layer.op for layer in layers[index + 1:index + 3]]
        if isinstance(op, Transpose) and len(window) == 2 and isinstance(window[0], Reshape) \
                and len(window[0].shape) == 1 and isinstance(window[1], Dense):
            in_shape = layers[index].in_shape
            order = np.arange(int(np.prod(in_shape))).reshape(in_shape).transpose(op.perm).reshape(-1)
            dense = window[1]
            weight = np.empty_like(dense.weight)
            weight[:, order] = dense.weight
            ops += [window[0], replace(dense, weight=weight)]
            index += 3
            continue
        ops.append(op)
        index += 1
    return ops


@per_segment
def fold_pad_into_conv(layers: list[Layer]) -> list:
    """Zeros padded in front of a convolution are the convolution's own padding, added to it."""
    ops: list = []
    for op in (layer.op for layer in layers):
        if isinstance(op, Conv2d) and ops and isinstance(ops[-1], Pad):
            extra = ops.pop().pads
            op = replace(op, pads=tuple(a + b for a, b in zip(op.pads, extra)))
        ops.append(op)
    return ops


#: The passes every imported model goes through, in order.
STANDARD_PASSES = (drop_noop_reshapes, fold_pad_into_conv, fold_transpose_into_dense, affine_before_reshapes,
                   merge_reshapes, drop_noop_reshapes, merge_affines, fold_affine, fold_affine_into_next)


def simplify(graph: Graph) -> Graph:
    """Run :data:`STANDARD_PASSES` in order."""
    for graph_pass in STANDARD_PASSES:
        graph = graph_pass(graph)
    return graph
