"""The quantized graph: integer layers with every constant the hardware needs.

A :class:`QGraph` is a plain value. The integer golden model (``cnnhw.golden.int_ref``)
and the hardware generator are both functions of it; neither computes a constant of
its own. Scales (floats) are carried for reports and for dequantizing outputs only;
no integer computation reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir import Graph
from ..ir.graph import INPUT
from ..ir.ops import PoolKind, Shape
from .arith import AverageDivider, IntFormat, LookupTable, Requantizer, round_real, saturate


@dataclass(frozen=True, eq=False)
class QLayer:
    """Base: one integer layer. ``source`` names the float op whose output this layer's output
    approximates (:meth:`dequantize`), for layer-by-layer comparisons. ``out_zero_point`` is 0
    but for a pre-quantized model's layer."""

    name: str
    source: str
    in_shape: Shape
    out_shape: Shape
    in_format: IntFormat
    out_format: IntFormat
    in_scale: float
    out_scale: float
    out_zero_point: int = field(default=0, kw_only=True)

    label = "QLayer"

    def dequantize(self, values: np.ndarray) -> np.ndarray:
        """The real values the layer's output integers stand for: ``out_scale * (q - out_zero_point)``."""
        return (values - self.out_zero_point) * self.out_scale

    @property
    def params(self) -> int:
        return 0

    def describe(self) -> str:
        return ""


@dataclass(frozen=True, eq=False)
class QConv(QLayer):
    """Integer convolution: ``acc = sum(w * x) + bias`` in ``acc_format``, then ``requant``.

    Padding inserts ``pad_value``: 0 (cnnhw's zero point), or a pre-quantized model's input zero
    point, whose product with the weights is then folded into the bias, so that a padded position
    adds nothing (TFLite's rule). ``weight`` is int64 ``(out, in/groups, kh, kw)`` in
    ``weight_format``; ``bias`` int64 ``(out,)`` in accumulator units.
    """

    weight: np.ndarray = field(repr=False, default=None)
    bias: np.ndarray = field(repr=False, default=None)
    weight_format: IntFormat = None
    weight_scales: tuple[float, ...] = ()
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    acc_format: IntFormat = None
    requant: Requantizer = None
    activation: str = "none"
    pad_value: int = 0
    label = "Conv"

    @property
    def kernel(self) -> tuple[int, int]:
        return self.weight.shape[2], self.weight.shape[3]

    @property
    def params(self) -> int:
        return self.weight.size + self.bias.size


@dataclass(frozen=True, eq=False)
class QDense(QLayer):
    """Integer dense layer: ``acc = weight @ x + bias`` in ``acc_format``, then ``requant``."""

    weight: np.ndarray = field(repr=False, default=None)
    bias: np.ndarray = field(repr=False, default=None)
    weight_format: IntFormat = None
    weight_scales: tuple[float, ...] = ()
    acc_format: IntFormat = None
    requant: Requantizer = None
    activation: str = "none"
    label = "Dense"

    @property
    def params(self) -> int:
        return self.weight.size + self.bias.size


@dataclass(frozen=True, eq=False)
class QPool(QLayer):
    """Max or average pooling on integers; the scale is unchanged.

    Max: padding never wins. Average: ``divider(window sum, element count)``, where the
    count includes padding only with ``count_include_pad`` (never positions past it).
    """

    kind: PoolKind = PoolKind.MAX
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    ceil_mode: bool = False
    count_include_pad: bool = False
    sum_format: IntFormat | None = None
    divider: AverageDivider | None = None

    @property
    def label(self) -> str:  # type: ignore[override]
        return "MaxPool" if self.kind == PoolKind.MAX else "AvgPool"

    @property
    def tiled(self) -> bool:
        """Max pooling over non-overlapping whole tiles (stride = kernel, no padding or dilation):
        the hardware needs no sliding window for it (``gateware/tiled_pool.py``)."""
        _, in_h, in_w = self.in_shape
        _, out_h, out_w = self.out_shape
        return (self.kind == PoolKind.MAX and self.stride == self.kernel and self.pads == (0, 0, 0, 0)
                and self.dilation == (1, 1) and (out_h, out_w) == (in_h // self.kernel[0], in_w // self.kernel[1]))


@dataclass(frozen=True, eq=False)
class QGlobalPool(QLayer):
    kind: PoolKind = PoolKind.MAX
    sum_format: IntFormat | None = None
    divider: AverageDivider | None = None

    @property
    def label(self) -> str:  # type: ignore[override]
        return "GlobalMaxPool" if self.kind == PoolKind.MAX else "GlobalAvgPool"


@dataclass(frozen=True, eq=False)
class QReshape(QLayer):
    """Row-major reshape of one image; the integers are unchanged."""

    label = "Reshape"


@dataclass(frozen=True, eq=False)
class QClamp(QLayer):
    """A ReLU/Clip that could not be fused: ``saturate(x, lo, hi)``; the scale is unchanged."""

    lo: int = 0
    hi: int = 0
    label = "Clamp"


@dataclass(frozen=True, eq=False)
class QJoin(QLayer):
    """Base of the layers that read two or more tensors: ``in_formats``, ``in_scales`` and
    ``in_shapes`` are each input's (``in_format``/``in_scale``/``in_shape`` the first's). ``requant`` has one multiplier per input: it
    brings every input to the output scale by the one requantization rule."""

    in_formats: tuple[IntFormat, ...] = ()
    in_scales: tuple[float, ...] = ()
    requant: Requantizer = None
    activation: str = "none"
    in_shapes: tuple[Shape, ...] = ()


@dataclass(frozen=True, eq=False)
class QAdd(QJoin):
    """``y = requant.finish(sum(x[k] * M[k]))``: the inputs' sum at the output scale, rounded once."""

    label = "Add"


@dataclass(frozen=True, eq=False)
class QConcat(QJoin):
    """Each input requantized on its own, ``requant.finish(x[k] * M[k])``, then all of them along
    the channels."""

    label = "Concat"


@dataclass(frozen=True, eq=False)
class QLookup(QLayer):
    """A smooth activation (sigmoid, tanh, ELU...) as ``table``: each input integer's output."""

    table: LookupTable = field(repr=False, default=None)
    function: str = ""  # the float op's label, for reports

    @property
    def label(self) -> str:  # type: ignore[override]
        return self.function


@dataclass(frozen=True)
class InputQuantizer:
    """The only float step: ``x_q = saturate(round(x / scale) + zero_point, format)`` with the
    graph's rounding (the zero point is 0 but for a pre-quantized model's input). With
    ``float32``, ``x / scale`` is divided in float32, as ONNX's QuantizeLinear is in onnxruntime
    (a quotient near a tie can round the other way in double)."""

    scale: float
    format: IntFormat
    rounding: str
    zero_point: int = 0
    float32: bool = False

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return saturate(self._rounded(x), self.format.lo, self.format.hi)

    def clipped(self, x: np.ndarray) -> int:
        """How many values of ``x`` lie outside the format's range, so that saturation changes them."""
        rounded = self._rounded(x)
        return int(np.count_nonzero((rounded < self.format.lo) | (rounded > self.format.hi)))

    def real_range(self) -> tuple[float, float]:
        """The input values the format represents, in the model's input units."""
        return (self.format.lo - self.zero_point) * self.scale, (self.format.hi - self.zero_point) * self.scale

    def _rounded(self, x: np.ndarray) -> np.ndarray:
        # Bounded to one step beyond the format first: the same result after saturation, and no
        # float beyond int64 (1e300 would wrap to a negative integer and saturate the wrong way).
        lo, hi = self.format.lo - self.zero_point, self.format.hi - self.zero_point
        kind = np.float32 if self.float32 else np.float64
        steps = np.clip(np.asarray(x, dtype=kind) / kind(self.scale), lo - 1, hi + 1)
        return round_real(steps, self.rounding) + self.zero_point


@dataclass(frozen=True, eq=False)
class QGraph:
    """A quantized network: input quantizer, integer layers, and what produced them."""

    graph: Graph  # the float graph it was quantized from (after the standard passes)
    input: InputQuantizer
    layers: tuple[QLayer, ...]
    options: "QuantOptions"
    calibration: str  # where the ranges came from ("calibration data x.npz (256 images)", ...)
    dropped: str = ""  # the label of a final op dropped because the class does not need it (Softmax, Sigmoid)
    #: For each layer, the layers whose outputs it reads (``ir.graph.INPUT``: the quantized input);
    #: None: a chain, each layer reading the one before.
    layer_inputs: tuple[tuple[str, ...], ...] | None = None

    def __post_init__(self):
        if self.layer_inputs is None:
            names = [INPUT] + [layer.name for layer in self.layers]
            object.__setattr__(self, "layer_inputs", tuple((names[k],) for k in range(len(self.layers))))

    @property
    def is_chain(self) -> bool:
        """Whether each layer reads only the one before it (no fork, no join)."""
        names = [INPUT] + [layer.name for layer in self.layers]
        return all(reads == (names[k],) for k, reads in enumerate(self.layer_inputs))

    @property
    def has_classes(self) -> bool:
        """Whether the output scores classes (``Graph.has_classes`` of the model before its final
        Softmax or Sigmoid was dropped)."""
        return bool(self.dropped) or self.graph.has_classes

    @property
    def output_scale(self) -> float:
        return self.layers[-1].out_scale if self.layers else self.input.scale

    @property
    def output_format(self) -> IntFormat:
        return self.layers[-1].out_format if self.layers else self.input.format


@dataclass(frozen=True)
class QuantOptions:
    """How to quantize. Every field is validated where the options are built (``check``)."""

    weight_bits: int = 8
    activation_bits: int = 8
    output_bits: int = 16  # the last conv/dense layer's logits
    multiplier_bits: int = 16
    per_channel: bool = True
    power_of_two: bool = False
    rounding: str = "half_up"
    calibration: str = "minmax"  # or "percentile"
    percentile: float = 99.99

    def check(self) -> "QuantOptions":
        from ..errors import CnnhwError
        from .arith import check_rounding

        for name in ("weight_bits", "activation_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 2 <= value <= 8:
                raise CnnhwError(f"{name.replace('_', ' ')} must be an int from 2 to 8, not {value!r}")
        if not isinstance(self.output_bits, int) or not self.activation_bits <= self.output_bits <= 32:
            raise CnnhwError(f"output bits must be an int from {self.activation_bits} to 32, not {self.output_bits!r}")
        if not isinstance(self.multiplier_bits, int) or not 2 <= self.multiplier_bits <= 24:
            raise CnnhwError(f"multiplier bits must be an int from 2 to 24, not {self.multiplier_bits!r}")
        check_rounding(self.rounding)
        if self.calibration not in ("minmax", "percentile"):
            raise CnnhwError(f"calibration must be minmax or percentile, not {self.calibration!r}")
        if not 50 < self.percentile <= 100:
            raise CnnhwError(f"percentile must be in (50, 100], not {self.percentile!r}")
        return self
