"""The ops of cnnhw's graph IR.

Every op works on ONE image: shapes here never include the batch dimension. A feature
map is ``(C, H, W)``, a feature vector is ``(K,)``; element-wise ops accept any shape.
Parameters are float32 NumPy arrays (read-only); ops are immutable values.

Each op knows its own arithmetic cost (``macs``) and size (``params``) so that reports
and, later, the planner only add up (DESIGN.md principle 5).

Spatial conventions (the ONNX ones): ``pads`` are ``(top, left, bottom, right)``;
``stride`` and ``dilation`` are ``(rows, cols)``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar

import numpy as np

from ..errors import ModelError, UnsupportedModelError

Shape = tuple[int, ...]


#: Parameters beyond this magnitude are refused: trained weights are many orders smaller, and
#: float32 sums of such products overflow (a corrupt or mis-exported model, not a network).
MAX_PARAMETER = 1e30


def _frozen(array, name: str) -> np.ndarray:
    wide = np.array(array, dtype=np.float64)
    if not np.all(np.isfinite(wide)):
        raise ModelError(f"{name} contains NaN or Inf values; export the model again from a trained checkpoint")
    largest = float(np.max(np.abs(wide))) if wide.size else 0.0
    if largest > MAX_PARAMETER:
        raise ModelError(f"{name} reach {largest:.3g} in magnitude; cnnhw takes parameters up to {MAX_PARAMETER:g} "
                         f"(trained weights are far smaller: is the model corrupt?)")
    a = wide.astype(np.float32)  # always a private copy
    a.setflags(write=False)
    return a


def is_int(value) -> bool:
    """A Python or NumPy integer, not a bool (``True`` is an int to Python, never a size to cnnhw)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _ints(value, count: int, low: int, what: str, meaning: str) -> tuple[int, ...]:
    values = tuple(value) if isinstance(value, (tuple, list, np.ndarray)) else (value,)
    if len(values) != count or not all(is_int(v) and v >= low for v in values):
        raise ModelError(f"{what} must be {meaning}, not {value!r}")
    return tuple(int(v) for v in values)


def _pair(value, what: str) -> tuple[int, int]:
    return _ints(value, 2, 1, what, "two positive ints")


def _pads(value, what: str) -> tuple[int, int, int, int]:
    return _ints(value, 4, 0, what, "four non-negative ints (top, left, bottom, right)")


def _bound(value, what: str) -> float | None:
    """An optional real bound (None: unbounded), which must be a finite number."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
        raise ModelError(f"{what} must be a finite number, not {value!r}")
    return float(value)


def _number(value, what: str) -> float:
    """A required finite real attribute (an activation's alpha, beta, gamma)."""
    number = _bound(value, what)
    if number is None:
        raise ModelError(f"{what} must be a finite number, not None")
    return number


def describe_window(kernel, stride, pads, dilation) -> list[str]:
    """Report words for a 2-D window: ``5x5 stride 2x2 pads 1,1,1,1 dilation 2x2`` (defaults omitted)."""
    parts = [f"{kernel[0]}x{kernel[1]}"]
    if tuple(stride) != (1, 1):
        parts.append(f"stride {stride[0]}x{stride[1]}")
    if any(pads):
        parts.append("pads " + ",".join(map(str, pads)))
    if tuple(dilation) != (1, 1):
        parts.append(f"dilation {dilation[0]}x{dilation[1]}")
    return parts


def window_span(kernel: int, dilation: int) -> int:
    """Rows (or columns) of input one dilated kernel covers."""
    return (kernel - 1) * dilation + 1


@dataclass(frozen=True, eq=False)
class Op(ABC):
    """Base class: a named step that maps one per-image tensor to another."""

    name: str

    #: Short label shown in reports (``Conv``, ``MaxPool``...).
    label = "Op"

    #: How many tensors the op reads (None: two or more, as a Concat).
    arity: ClassVar[int | None] = 1

    @abstractmethod
    def output_shape(self, in_shape: Shape) -> Shape:
        """The output shape for ``in_shape``; raises ModelError if the op cannot take it."""

    def output_shape_of(self, in_shapes: tuple[Shape, ...]) -> Shape:
        """The output shape for the shapes of every tensor the op reads (a join overrides it)."""
        if len(in_shapes) != 1:
            raise ModelError(f"{self.label} '{self.name}' reads one tensor, not {len(in_shapes)}")
        return self.output_shape(in_shapes[0])

    def macs(self, in_shape: Shape) -> int:
        """Multiply-accumulates for one image (only conv and dense layers count)."""
        return 0

    @property
    def params(self) -> int:
        """Number of stored parameters (weights and biases)."""
        return 0

    def describe(self) -> str:
        """Attributes worth showing in a one-line report."""
        return ""

    def _need_rank(self, in_shape: Shape, rank: int, what: str) -> None:
        if len(in_shape) != rank:
            raise UnsupportedModelError(
                f"{self.label} '{self.name}' needs a {what} input, got shape {in_shape}"
            )


@dataclass(frozen=True, eq=False)
class Conv2d(Op):
    """2-D convolution (cross-correlation, as in ONNX and PyTorch), with groups.

    ``weight`` is ``(out_channels, in_channels // groups, kh, kw)``; ``bias`` is
    ``(out_channels,)``. Depthwise convolution is ``groups == in_channels``.
    """

    weight: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    label = "Conv"

    def __post_init__(self):
        weight = _frozen(self.weight, f"weights of Conv '{self.name}'")
        if weight.ndim != 4:
            raise UnsupportedModelError(
                f"Conv '{self.name}' has a {weight.ndim - 2}-D kernel; cnnhw supports 2-D convolution only"
            )
        bias = _frozen(self.bias, f"bias of Conv '{self.name}'")
        if bias.shape != (weight.shape[0],):
            raise ModelError(f"bias of Conv '{self.name}' has shape {bias.shape}, expected ({weight.shape[0]},)")
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "bias", bias)
        object.__setattr__(self, "stride", _pair(self.stride, f"stride of Conv '{self.name}'"))
        object.__setattr__(self, "dilation", _pair(self.dilation, f"dilation of Conv '{self.name}'"))
        object.__setattr__(self, "pads", _pads(self.pads, f"pads of Conv '{self.name}'"))
        if not isinstance(self.groups, int) or self.groups < 1:
            raise ModelError(f"groups of Conv '{self.name}' must be a positive int, not {self.groups!r}")
        if weight.shape[0] % self.groups:
            raise ModelError(
                f"Conv '{self.name}': {weight.shape[0]} output channels do not split into {self.groups} groups"
            )

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    @property
    def kernel(self) -> tuple[int, int]:
        return self.weight.shape[2], self.weight.shape[3]

    def output_shape(self, in_shape: Shape) -> Shape:
        self._need_rank(in_shape, 3, "(C, H, W)")
        channels, height, width = in_shape
        if channels != self.weight.shape[1] * self.groups:
            raise ModelError(
                f"Conv '{self.name}' expects {self.weight.shape[1] * self.groups} input channels "
                f"({self.groups} groups of {self.weight.shape[1]}), got {channels}"
            )
        top, left, bottom, right = self.pads
        out_h = (height + top + bottom - window_span(self.kernel[0], self.dilation[0])) // self.stride[0] + 1
        out_w = (width + left + right - window_span(self.kernel[1], self.dilation[1])) // self.stride[1] + 1
        if out_h < 1 or out_w < 1:
            raise ModelError(f"Conv '{self.name}': kernel {self.kernel} does not fit input {in_shape} with pads {self.pads}")
        return (self.out_channels, out_h, out_w)

    def macs(self, in_shape: Shape) -> int:
        _, out_h, out_w = self.output_shape(in_shape)
        per_output = self.weight.shape[1] * self.kernel[0] * self.kernel[1]
        return self.out_channels * out_h * out_w * per_output

    @property
    def params(self) -> int:
        return self.weight.size + self.bias.size

    def describe(self) -> str:
        parts = describe_window(self.kernel, self.stride, self.pads, self.dilation)
        if self.groups != 1:
            parts.append(f"groups {self.groups}")
        return " ".join(parts)


class PoolKind(str, Enum):
    """What a pooling window computes. A ``str`` enum: it compares equal to its word, which is how
    ``.npz`` architectures and plans spell it."""

    MAX = "max"
    AVG = "avg"


def pool_kind(kind, what: str) -> PoolKind:
    try:
        return PoolKind(kind)
    except ValueError:
        raise ValueError(f"{what} kind must be 'max' or 'avg', not {kind!r}") from None


@dataclass(frozen=True, eq=False)
class Pool2d(Op):
    """Max or average pooling over a 2-D window, with the ONNX semantics.

    Windows start at ``output_index * stride - pad_begin``. Padding never wins a max.
    For the average, padded positions count only with ``count_include_pad``; positions
    beyond the padded input (possible with ``ceil_mode``) never count.
    """

    kind: PoolKind
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    ceil_mode: bool = False
    count_include_pad: bool = False

    def __post_init__(self):
        object.__setattr__(self, "kind", pool_kind(self.kind, "Pool2d"))
        what = f"{self.label} '{self.name}'"
        object.__setattr__(self, "kernel", _pair(self.kernel, f"kernel of {what}"))
        object.__setattr__(self, "stride", _pair(self.stride, f"stride of {what}"))
        object.__setattr__(self, "dilation", _pair(self.dilation, f"dilation of {what}"))
        object.__setattr__(self, "pads", _pads(self.pads, f"pads of {what}"))
        for axis in (0, 1):
            span = window_span(self.kernel[axis], self.dilation[axis])
            if max(self.pads[axis], self.pads[axis + 2]) >= span:
                raise ModelError(f"{what}: pads {self.pads} must be smaller than the window ({span}); "
                                 f"a window of padding only has no value")
        object.__setattr__(self, "ceil_mode", bool(self.ceil_mode))
        object.__setattr__(self, "count_include_pad", bool(self.count_include_pad))

    @property
    def label(self) -> str:  # type: ignore[override]
        return "MaxPool" if self.kind == PoolKind.MAX else "AvgPool"

    def _out_size(self, size: int, axis: int) -> int:
        begin, end = self.pads[axis], self.pads[axis + 2]
        span = window_span(self.kernel[axis], self.dilation[axis])
        room = size + begin + end - span
        if room < 0:
            raise ModelError(f"{self.label} '{self.name}': window {self.kernel} does not fit input size {size}")
        stride = self.stride[axis]
        if not self.ceil_mode:
            return room // stride + 1
        out = -(-room // stride) + 1
        # The last window must start inside the input or its begin padding (as PyTorch/ONNX).
        if (out - 1) * stride >= size + begin:
            out -= 1
        return out

    def output_shape(self, in_shape: Shape) -> Shape:
        self._need_rank(in_shape, 3, "(C, H, W)")
        return (in_shape[0], self._out_size(in_shape[1], 0), self._out_size(in_shape[2], 1))

    def describe(self) -> str:
        parts = describe_window(self.kernel, self.stride, self.pads, self.dilation)
        if self.ceil_mode:
            parts.append("ceil")
        if self.kind == PoolKind.AVG and self.count_include_pad:
            parts.append("count pads")
        return " ".join(parts)


@dataclass(frozen=True, eq=False)
class GlobalPool(Op):
    """Max or average over all H x W positions of each channel: ``(C, H, W) -> (C, 1, 1)``."""

    kind: PoolKind

    def __post_init__(self):
        object.__setattr__(self, "kind", pool_kind(self.kind, "GlobalPool"))

    @property
    def label(self) -> str:  # type: ignore[override]
        return "GlobalMaxPool" if self.kind == PoolKind.MAX else "GlobalAvgPool"

    def output_shape(self, in_shape: Shape) -> Shape:
        self._need_rank(in_shape, 3, "(C, H, W)")
        return (in_shape[0], 1, 1)


@dataclass(frozen=True, eq=False)
class Dense(Op):
    """Fully connected layer ``y = weight @ x + bias``; ``weight`` is ``(out, in)``."""

    weight: np.ndarray
    bias: np.ndarray
    label = "Dense"

    def __post_init__(self):
        weight = _frozen(self.weight, f"weights of Dense '{self.name}'")
        if weight.ndim != 2:
            raise ModelError(f"weights of Dense '{self.name}' must be 2-D (out, in), got shape {weight.shape}")
        bias = _frozen(self.bias, f"bias of Dense '{self.name}'")
        if bias.shape != (weight.shape[0],):
            raise ModelError(f"bias of Dense '{self.name}' has shape {bias.shape}, expected ({weight.shape[0]},)")
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "bias", bias)

    def output_shape(self, in_shape: Shape) -> Shape:
        if in_shape != (self.weight.shape[1],):
            raise ModelError(
                f"Dense '{self.name}' expects a vector of {self.weight.shape[1]} features, got shape {in_shape}"
                + (" (add a Flatten before it)" if len(in_shape) > 1 else "")
            )
        return (self.weight.shape[0],)

    def macs(self, in_shape: Shape) -> int:
        return self.weight.size

    @property
    def params(self) -> int:
        return self.weight.size + self.bias.size

    def describe(self) -> str:
        return f"{self.weight.shape[1]} -> {self.weight.shape[0]}"


@dataclass(frozen=True, eq=False)
class Affine(Op):
    """Element-wise ``x * scale + shift`` with NumPy broadcasting against one image.

    This is what a BatchNormalization or an Add/Mul of a constant becomes; the
    ``fold_affine`` pass merges it into the conv or dense layer before it.
    """

    scale: np.ndarray
    shift: np.ndarray
    label = "Affine"

    def __post_init__(self):
        object.__setattr__(self, "scale", _frozen(self.scale, f"scale of '{self.name}'"))
        object.__setattr__(self, "shift", _frozen(self.shift, f"shift of '{self.name}'"))

    def output_shape(self, in_shape: Shape) -> Shape:
        try:
            out = np.broadcast_shapes(in_shape, self.scale.shape, self.shift.shape)
        except ValueError:
            out = None
        if out != tuple(in_shape):
            raise UnsupportedModelError(
                f"'{self.name}': constants of shape {self.scale.shape}/{self.shift.shape} do not broadcast "
                f"onto one image of shape {in_shape} (constants that vary over the batch are not supported)"
            )
        return tuple(in_shape)

    @property
    def params(self) -> int:
        return self.scale.size + self.shift.size

    @staticmethod
    def from_batchnorm(name: str, scale, bias, mean, var, epsilon: float, rank: int) -> "Affine":
        """Inference BatchNorm over the channels (axis 0) of a rank-``rank`` image:
        ``(x - mean) / sqrt(var + epsilon) * scale + bias`` as one per-channel affine op."""
        scale, bias, mean, var = (np.asarray(v, dtype=np.float64) for v in (scale, bias, mean, var))
        where = f"BatchNorm '{name}'"
        if not all(np.all(np.isfinite(v)) for v in (scale, bias, mean, var)):
            raise ModelError(f"{where}: scale, bias, mean or var contains NaN or Inf values")
        if np.any(var < 0):
            raise ModelError(f"{where} has a negative variance ({float(var.min()):g}); a variance is never "
                             f"negative: export the model again")
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.number)) or not 0 <= epsilon < math.inf:
            raise ModelError(f"{where}: epsilon must be a non-negative number, not {epsilon!r}")
        if np.any(var + epsilon == 0):
            raise ModelError(f"{where}: var + epsilon is 0 for some channel (division by zero)")
        factor = scale / np.sqrt(var + float(epsilon))
        per_channel = (-1,) + (1,) * (rank - 1)
        return Affine(name, factor.reshape(per_channel), (bias - mean * factor).reshape(per_channel))


@dataclass(frozen=True, eq=False)
class Activation(Op):
    """Base of element-wise activations: any shape, unchanged."""

    def output_shape(self, in_shape: Shape) -> Shape:
        return tuple(in_shape)


@dataclass(frozen=True, eq=False)
class Relu(Activation):
    label = "Relu"


@dataclass(frozen=True, eq=False)
class Clip(Activation):
    """``min(max(x, low), high)``; ReLU6 is ``Clip(0, 6)``. ``None`` means unbounded."""

    low: float | None = None
    high: float | None = None
    label = "Clip"

    def __post_init__(self):
        low = _bound(self.low, f"min of Clip '{self.name}'")
        high = _bound(self.high, f"max of Clip '{self.name}'")
        if low is not None and high is not None and low > high:
            raise ModelError(f"Clip '{self.name}' has min {low:g} > max {high:g}; every value would be out of range")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def describe(self) -> str:
        return f"[{self.low}, {self.high}]"


@dataclass(frozen=True, eq=False)
class LeakyRelu(Activation):
    alpha: float = 0.01
    label = "LeakyRelu"

    def __post_init__(self):
        object.__setattr__(self, "alpha", _number(self.alpha, f"alpha of LeakyRelu '{self.name}'"))

    def describe(self) -> str:
        return f"alpha {self.alpha:g}"


@dataclass(frozen=True, eq=False)
class LookupActivation(Activation):
    """Base of the smooth (and piecewise) activations the hardware computes as a table from each
    input integer to an output integer (``quant.arith.LookupTable``): :meth:`function` is the real
    function, the one definition the float reference and the table both evaluate."""

    #: Points other than 0 where the function turns (its range over an interval is reached at the
    #: interval's ends, at 0 or at one of these).
    turning_points: ClassVar[tuple[float, ...]] = ()
    #: The op's real-valued attributes (alpha, beta, gamma): each checked finite, each reported.
    parameters: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self):
        for what in self.parameters:
            object.__setattr__(self, what, _number(getattr(self, what), f"{what} of {self.label} '{self.name}'"))

    @abstractmethod
    def function(self, x: np.ndarray) -> np.ndarray:
        """The activation of float64 ``x``, element-wise."""

    def describe(self) -> str:
        return " ".join(f"{what} {getattr(self, what):g}" for what in self.parameters)

    def image(self, lo: float, hi: float) -> tuple[float, float]:
        """The smallest and largest value the function takes on ``[lo, hi]``."""
        points = [lo, hi] + [p for p in (0.0, *self.turning_points) if lo <= p <= hi]
        values = self.function(np.asarray(points, dtype=np.float64))
        return float(values.min()), float(values.max())


@dataclass(frozen=True, eq=False)
class Sigmoid(LookupActivation):
    label = "Sigmoid"

    def function(self, x):
        # exp of a negative argument only: no overflow for large |x|.
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@dataclass(frozen=True, eq=False)
class Tanh(LookupActivation):
    label = "Tanh"

    def function(self, x):
        return np.tanh(x)


@dataclass(frozen=True, eq=False)
class HardSigmoid(LookupActivation):
    """``max(0, min(1, alpha * x + beta))`` (ONNX's defaults: alpha 0.2, beta 0.5)."""

    alpha: float = 0.2
    beta: float = 0.5
    parameters = ("alpha", "beta")
    label = "HardSigmoid"

    def function(self, x):
        return np.clip(self.alpha * x + self.beta, 0.0, 1.0)


@dataclass(frozen=True, eq=False)
class HardSwish(LookupActivation):
    """``x * max(0, min(1, x / 6 + 1/2))``: its least value, -3/8, is at x = -3/2."""

    turning_points = (-1.5,)
    label = "HardSwish"

    def function(self, x):
        return x * np.clip(x / 6.0 + 0.5, 0.0, 1.0)


@dataclass(frozen=True, eq=False)
class Elu(LookupActivation):
    """``x`` for x > 0, ``alpha * (exp(x) - 1)`` below (ONNX's default alpha: 1)."""

    alpha: float = 1.0
    parameters = ("alpha",)
    label = "Elu"

    def function(self, x):
        return np.where(x > 0, x, self.alpha * np.expm1(np.minimum(x, 0.0)))


@dataclass(frozen=True, eq=False)
class Selu(Elu):
    """``gamma * Elu(alpha)(x)``, ONNX's defaults the self-normalising constants."""

    alpha: float = 1.67326319217681884765625
    gamma: float = 1.05070102214813232421875
    parameters = ("alpha", "gamma")
    label = "Selu"

    def function(self, x):
        return self.gamma * super().function(x)


@dataclass(frozen=True, eq=False)
class Reshape(Op):
    """Row-major (C order) reshape of one image; ``Flatten`` is ``Reshape(shape=(n,))``."""

    shape: tuple[int, ...] = field(default=())
    label = "Reshape"

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if not self.shape or any(d < 1 for d in self.shape):
            raise ModelError(f"Reshape '{self.name}' needs a shape of positive sizes, not {self.shape}")

    def output_shape(self, in_shape: Shape) -> Shape:
        if math.prod(in_shape) != math.prod(self.shape):
            raise ModelError(f"Reshape '{self.name}' cannot reshape {in_shape} into {self.shape}")
        return self.shape

    def describe(self) -> str:
        return "flatten" if len(self.shape) == 1 else ""


@dataclass(frozen=True, eq=False)
class Pad(Op):
    """Zeros around each channel of a (C, H, W) image: ``pads`` = (top, left, bottom, right), as
    ONNX's explicit Pad (PyTorch's ZeroPad2d, Keras' ZeroPadding2D). The ``fold_pad_into_conv``
    pass makes it part of the convolution after it."""

    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    label = "Pad"

    def __post_init__(self):
        object.__setattr__(self, "pads", _pads(self.pads, f"pads of Pad '{self.name}'"))

    def output_shape(self, in_shape: Shape) -> Shape:
        self._need_rank(in_shape, 3, "(C, H, W)")
        top, left, bottom, right = self.pads
        return (in_shape[0], in_shape[1] + top + bottom, in_shape[2] + left + right)


@dataclass(frozen=True, eq=False)
class Transpose(Op):
    """A permutation of one image's axes (``perm`` of its axes, the batch excluded), as tf2onnx
    writes before a Keras Flatten (NCHW back to NHWC). The ``fold_transpose_into_dense`` pass
    folds it into the dense layer after that flatten; the hardware streams no other."""

    perm: tuple[int, ...] = ()
    label = "Transpose"

    def __post_init__(self):
        object.__setattr__(self, "perm", tuple(int(p) for p in self.perm))

    def output_shape(self, in_shape: Shape) -> Shape:
        if sorted(self.perm) != list(range(len(in_shape))):
            raise ModelError(f"Transpose '{self.name}': perm {self.perm} is not a permutation of the "
                             f"{len(in_shape)} axes of an image of shape {in_shape}")
        return tuple(in_shape[p] for p in self.perm)


@dataclass(frozen=True, eq=False)
class Join(Op):
    """Base of the ops that read two or more tensors (where branches meet)."""

    def output_shape(self, in_shape: Shape) -> Shape:
        raise ModelError(f"{self.label} '{self.name}' joins two or more tensors, not one")

    def output_shape_of(self, in_shapes: tuple[Shape, ...]) -> Shape:
        if len(in_shapes) < 2 or (self.arity is not None and len(in_shapes) != self.arity):
            wanted = self.arity or "two or more"
            raise ModelError(f"{self.label} '{self.name}' reads {wanted} tensors, not {len(in_shapes)}")
        return self.joined_shape(tuple(tuple(shape) for shape in in_shapes))

    @abstractmethod
    def joined_shape(self, in_shapes: tuple[Shape, ...]) -> Shape:
        """The output shape for the (checked, two or more) input shapes."""


@dataclass(frozen=True, eq=False)
class Add(Join):
    """The element-wise sum of two tensors of one shape (a residual connection). A sum with a
    constant is an :class:`Affine`."""

    arity = 2
    label = "Add"

    def joined_shape(self, in_shapes):
        if in_shapes[0] != in_shapes[1]:
            raise UnsupportedModelError(f"Add '{self.name}' adds tensors of shapes {in_shapes[0]} and {in_shapes[1]}; "
                                        f"cnnhw adds tensors of one shape (no broadcasting between two tensors)")
        return in_shapes[0]


@dataclass(frozen=True, eq=False)
class Concat(Join):
    """The tensors one after the other along the channels (axis 0 of each image), as an
    Inception block's branches meet; every other size must agree."""

    arity = None
    label = "Concat"

    def joined_shape(self, in_shapes):
        rest = {shape[1:] for shape in in_shapes}
        if len({len(shape) for shape in in_shapes}) != 1 or len(rest) != 1:
            raise ModelError(f"Concat '{self.name}' joins tensors of shapes "
                             f"{', '.join(map(str, in_shapes))}; all sizes but the channels must agree")
        return (sum(shape[0] for shape in in_shapes), *in_shapes[0][1:])

    def describe(self) -> str:
        return "channels"


@dataclass(frozen=True, eq=False)
class Softmax(Op):
    """Softmax over ``axes`` of one image (the network's last op only)."""

    axes: tuple[int, ...] = (0,)
    label = "Softmax"

    def output_shape(self, in_shape: Shape) -> Shape:
        if any(not 0 <= a < len(in_shape) for a in self.axes):
            raise ModelError(f"Softmax '{self.name}': axes {self.axes} out of range for shape {in_shape}")
        return tuple(in_shape)
