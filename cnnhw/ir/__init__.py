"""Graph IR: ops with shapes, parameter and MAC counts, and the passes over them."""

from .graph import Graph, Layer
from .ops import Affine, Clip, Conv2d, Dense, GlobalPool, LeakyRelu, Op, Pool2d, Relu, Reshape, Softmax, Transpose
from .passes import simplify

__all__ = [
    "Graph", "Layer", "Op", "Conv2d", "Pool2d", "GlobalPool", "Dense", "Affine", "Relu", "Clip",
    "LeakyRelu", "Reshape", "Softmax", "Transpose", "simplify",
]
