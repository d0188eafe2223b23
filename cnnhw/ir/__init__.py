"""Graph IR: ops with shapes, parameter and MAC counts, and the passes over them."""

from .graph import Graph, Layer
from .ops import (Affine, Clip, Conv2d, Dense, Elu, GlobalPool, HardSigmoid, HardSwish, LeakyRelu, LookupActivation, Op,
                  Pool2d, Relu, Reshape, Selu, Sigmoid, Softmax, Tanh, Transpose)
from .passes import simplify

__all__ = [
    "Graph", "Layer", "Op", "Conv2d", "Pool2d", "GlobalPool", "Dense", "Affine", "Relu", "Clip",
    "LeakyRelu", "LookupActivation", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Selu", "Reshape",
    "Softmax", "Transpose", "simplify",
]
