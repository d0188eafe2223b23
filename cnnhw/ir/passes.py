"""Pure graph passes, each ``Graph -> Graph``, run in an explicit order.

Every pass returns a new graph (the constructor re-checks all shapes). They change how
the network is written, never what it computes (up to float rounding).
"""

from __future__ import annotations

import numpy as np

from .graph import Graph
from .ops import Affine, Conv2d, Dense, Reshape


def _per_channel(constant: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray | None:
    """``constant`` as one value per output channel (axis 0), or None if it varies in space."""
    padded = constant.reshape((1,) * (len(out_shape) - constant.ndim) + constant.shape)
    if any(d != 1 for d in padded.shape[1:]):
        return None
    return np.broadcast_to(padded.reshape(-1), (out_shape[0],)).astype(np.float64)


def fold_affine(graph: Graph) -> Graph:
    """Merge each Affine (folded BatchNorm, Add/Mul of constants) into the Conv/Dense before it.

    ``(W x + b) * s + t == (W * s) x + (b * s + t)`` when ``s`` and ``t`` are one value per
    output channel. An Affine that does not follow a conv/dense layer, or varies over
    space, stays in the graph.
    """
    ops: list = []
    for layer in graph.layers:
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
    return graph.replace_ops(ops)


def drop_noop_reshapes(graph: Graph) -> Graph:
    """Remove reshapes that leave the shape unchanged (e.g. a Flatten of a vector)."""
    return graph.replace_ops(
        layer.op for layer in graph.layers
        if not (isinstance(layer.op, Reshape) and layer.in_shape == layer.out_shape)
    )


#: The passes every imported model goes through, in order.
STANDARD_PASSES = (drop_noop_reshapes, fold_affine)


def simplify(graph: Graph) -> Graph:
    """Run :data:`STANDARD_PASSES` in order."""
    for graph_pass in STANDARD_PASSES:
        graph = graph_pass(graph)
    return graph
