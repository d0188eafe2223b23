"""The graph: a chain of ops from one image input to one output.

cnnhw builds streaming pipelines, one stage per layer, so the IR is a chain: each op
takes the previous op's output. Constructing a :class:`Graph` infers and checks every
shape, so a ``Graph`` that exists is consistent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from ..errors import DataError, ModelError, UnsupportedModelError
from .ops import Op, Shape, Sigmoid, Softmax


@dataclass(frozen=True)
class Layer:
    """One op with the shapes it sees, as reports and later stages want it."""

    op: Op
    in_shape: Shape
    out_shape: Shape

    @property
    def macs(self) -> int:
        return self.op.macs(self.in_shape)

    @property
    def working_values(self) -> int:
        """Values the reference models hold at once to compute this layer for one image: input,
        output and, for windowed ops, every window (``ir/windows.window_stack``)."""
        kernel = getattr(self.op, "kernel", None)
        windows = math.prod(kernel) * self.in_shape[0] * math.prod(self.out_shape[1:]) if kernel else 0
        return math.prod(self.in_shape) + math.prod(self.out_shape) + windows


@dataclass(frozen=True, eq=False)
class Graph:
    """A chain of ops applied to one image of ``input_shape``.

    ``input_reshape`` and ``input_perm`` record what the *model file* does to its input before
    the chain: a reshape of each image to ``input_reshape`` (tf2onnx's (N, 28, 28) ->
    (N, 28, 28, 1), PyTorch's (N, 784) -> (N, 1, 28, 28)), then a transpose of the whole tensor,
    batch axis included (an NHWC export's leading Transpose, or Gemm's ``transA`` on the input),
    into ``(N, *input_shape)``. DATA files given to cnnhw are always in that canonical layout;
    :meth:`from_file_layout` converts a tensor laid out as the model file expects.
    """

    name: str
    input_shape: Shape
    ops: tuple[Op, ...]
    input_name: str = "input"
    output_name: str = "output"
    input_perm: tuple[int, ...] | None = None
    source: str = ""
    input_reshape: tuple[int, ...] | None = None
    layers: tuple[Layer, ...] = field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "ops", tuple(self.ops))
        shape = tuple(int(d) for d in self.input_shape)
        if not shape or any(d < 1 for d in shape):
            raise ModelError(f"model '{self.name}': input shape {shape} must have positive sizes")
        object.__setattr__(self, "input_shape", shape)
        seen: set[str] = set()
        duplicate = next((op.name for op in self.ops if op.name in seen or seen.add(op.name)), None)
        if duplicate is not None:
            raise ModelError(f"model '{self.name}': two layers are named '{duplicate}'; layer names must be unique")
        for op in self.ops[:-1]:
            if isinstance(op, Softmax):
                raise UnsupportedModelError(
                    f"Softmax '{op.name}' is not the last op; cnnhw supports Softmax only at the output"
                )
        layers = []
        for op in self.ops:
            out_shape = op.output_shape(shape)
            layers.append(Layer(op, shape, out_shape))
            shape = out_shape
        object.__setattr__(self, "layers", tuple(layers))

    @property
    def output_shape(self) -> Shape:
        return self.layers[-1].out_shape if self.layers else self.input_shape

    @property
    def working_values(self) -> int:
        """Values the reference models hold at once for one image (the largest layer's need)."""
        return max((layer.working_values for layer in self.layers), default=math.prod(self.input_shape))

    @property
    def output_values(self) -> int:
        """Values of every layer's output for one image (what ``every_layer`` runs keep)."""
        return sum(math.prod(layer.out_shape) for layer in self.layers)

    @property
    def classes(self) -> int:
        """How many values the output has (the classes of a classifier)."""
        return math.prod(self.output_shape)

    @property
    def has_classes(self) -> bool:
        """Whether the output scores classes, so that a class means something (``golden.classes_of``).
        A model ending in Softmax or Sigmoid does. An output of more than one position per channel
        (a segmentation map, a decoder's image) or shaped as the input (an autoencoder's
        reconstruction) does not. Any other output is logits (one logit: a binary classifier)."""
        if self.ops and isinstance(self.ops[-1], (Softmax, Sigmoid)):
            return True
        shape = self.output_shape
        if len(shape) == 3 and shape[1] * shape[2] > 1:
            return False
        return shape != self.input_shape

    @property
    def labels(self) -> int:
        """How many classes a label may name: a one-output (binary) classifier has two."""
        return max(self.classes, 2)

    @property
    def class_threshold(self) -> float:
        """Above it a one-output model's output is class 1: 0.5 for a probability (a final
        Sigmoid), else 0 (a logit)."""
        return 0.5 if self.ops and isinstance(self.ops[-1], Sigmoid) else 0.0

    @property
    def macs(self) -> int:
        """Multiply-accumulates of all conv and dense layers for one image."""
        return sum(layer.macs for layer in self.layers)

    @property
    def params(self) -> int:
        return sum(op.params for op in self.ops)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def replace_ops(self, ops) -> "Graph":
        """The same graph with another op chain (passes use this; shapes are re-checked)."""
        return Graph(self.name, self.input_shape, tuple(ops), self.input_name, self.output_name,
                     self.input_perm, self.source, self.input_reshape)

    def check_batch(self, x: np.ndarray, what: str = "inputs") -> np.ndarray:
        return check_batch(x, self.input_shape, self.name, what)

    def from_file_layout(self, x: np.ndarray) -> np.ndarray:
        """Convert a batch laid out as the model file's input into the canonical layout."""
        if self.input_reshape is not None:
            x = np.reshape(x, (len(x), *self.input_reshape))
        return np.transpose(x, self.input_perm) if self.input_perm is not None else x


def check_batch(x: np.ndarray, input_shape: tuple[int, ...], model: str, what: str = "inputs") -> np.ndarray:
    """Return ``x`` as a float batch ``(N, *input_shape)``, or raise DataError.

    Accepts exactly ``(N, *input_shape)``, or ``(N, H, W)`` for a one-channel image
    input. Nothing else is reshaped: a mismatch is an error, not a guess.
    """
    input_shape = tuple(input_shape)
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise DataError(f"{what}: x has dtype {x.dtype}; expected numbers")
    if x.ndim == len(input_shape) and len(input_shape) == 3 and input_shape[0] == 1:
        x = x[:, None]
    if x.ndim != len(input_shape) + 1 or tuple(x.shape[1:]) != input_shape:
        expected = f"(N, {', '.join(map(str, input_shape))})"
        if len(input_shape) == 3 and input_shape[0] == 1:
            expected += f" or (N, {input_shape[1]}, {input_shape[2]})"
        raise DataError(f"{what}: x has shape {tuple(x.shape)}, but model '{model}' takes {expected}")
    if x.shape[0] == 0:
        raise DataError(f"{what}: x holds no images")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise DataError(f"{what}: x contains NaN or Inf")
    return x

