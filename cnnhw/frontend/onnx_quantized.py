"""ONNX models quantized by onnxruntime (``quantize_static``): QDQ (QuantizeLinear and
DequantizeLinear around float Conv, Gemm, MatMul, MaxPool, Flatten, Reshape) and QOperator
(QLinearConv, QGemm, QLinearMatMul, with MaxPool and Flatten on the integers), imported with their
own integers: the arithmetic onnxruntime's fused kernels compute (``cnnhw.quant.onnx_arith``).

Both formats become the same layers. In QDQ, a float op between DequantizeLinear nodes of its
activation and constant operands and a QuantizeLinear of its result is that op on the integers,
as onnxruntime fuses it. The float view (``predict --golden float``) is the dequantized model:
the same ops with dequantized weights, each followed by the clamp its output quantization implies.

Per-tensor or per-channel weights (int8, or uint8 with zero points: less their zero point, 9
bits), activations in int8 or uint8 with zero points (the input's folded into the bias, and what
padding inserts). Refused, naming the node and why: ops onnxruntime computes in a way cnnhw does
not reproduce exactly (QLinearAdd, whose result depends on the CPU kernel; average pooling), a float
op left between quantized ones, accumulators that can reach 2**24 (where float32 stops holding them
exactly).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import ModelError, UnsupportedModelError
from ..ir import Clip, Conv2d, Dense, Graph, Pool2d, Reshape
from ..ir.graph import INPUT
from ..ir.ops import PoolKind
from ..quant.arith import IntFormat
from ..quant.onnx_arith import EXACT_ACCUMULATOR, OnnxRequantizer
from ..quant.qgraph import InputQuantizer, QConv, QDense, QPool, QReshape
from .integer_graph import IntegerGraphBuilder

#: ONNX element types of quantized tensors: int8 and uint8.
FORMATS = {3: IntFormat(8, True), 2: IntFormat(8, False)}
TYPE_NAMES = {3: "int8", 2: "uint8", 6: "int32", 1: "float32"}
SUPPORTED = ("QuantizeLinear, DequantizeLinear around Conv, Gemm, MatMul, MaxPool, Flatten and Reshape (QDQ); "
             "QLinearConv, QGemm, QLinearMatMul, MaxPool and Flatten (QOperator)")
#: Ops whose quantized form onnxruntime computes in a way cnnhw does not reproduce, and why.
_KERNEL_DEPENDENT = ("onnxruntime's quantized Add (QLinearAdd) gives results that depend on which CPU kernel runs "
                     "(float32 with or without FMA, or fixed point)")
_OWN_AVERAGE = ("onnxruntime's quantized average pooling rounds in float32 on its own path, which cnnhw does not "
                "reproduce yet")
INEXACT = {"Add": _KERNEL_DEPENDENT, "QLinearAdd": _KERNEL_DEPENDENT, "AveragePool": _OWN_AVERAGE,
           "GlobalAveragePool": _OWN_AVERAGE, "QLinearAveragePool": _OWN_AVERAGE,
           "QLinearGlobalAveragePool": _OWN_AVERAGE}


@dataclass(frozen=True)
class _Quantized:
    """An activation on integers: its scale, zero point, format, (C, H, W) or (N,) shape, and
    the float op that writes it (or INPUT)."""

    scale: float
    zero_point: int
    format: IntFormat
    shape: tuple[int, ...]
    writer: str


@dataclass(frozen=True)
class _Constant:
    """A constant integer tensor with its scales and zero points (per tensor, or along ``axis``)."""

    data: np.ndarray
    scales: np.ndarray
    zero_points: np.ndarray
    axis: int

    def transposed(self) -> "_Constant":
        """A matrix's transpose, its per-column scales now per row."""
        return _Constant(self.data.T, self.scales, self.zero_points, 1 - self.axis if self.scales.size > 1 else 0)


def is_quantized(model, quantized_ops) -> bool:
    return any(node.op_type in quantized_ops for node in model.graph.node)


def load_quantized_onnx(model, name: str, attributes, window) -> Graph:
    """The model's float view holding its integer model (``Graph.integer_model``); ``attributes``
    and ``window`` are the ONNX importer's readers of node attributes and window geometry."""
    return _Importer(model, name, attributes, window).graph()


class _Importer(IntegerGraphBuilder):
    def __init__(self, model, name: str, attributes, window):
        from onnx import numpy_helper

        super().__init__()
        self.name, self.attributes, self.window = name, attributes, window
        self.constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        for node in model.graph.node:
            if node.op_type == "Constant":
                self.constants[node.output[0]] = numpy_helper.to_array(attributes(node)["value"])
        self.graph_proto = model.graph
        self.quantized: dict[str, _Quantized] = {}  # tensor -> the integers it holds
        self.integer_constants: dict[str, _Constant] = {}  # DequantizeLinear of a constant: its integers
        self.dequantized: dict[str, _Quantized] = {}  # DequantizeLinear of an activation: the float view of it
        self.pending: dict[str, tuple] = {}  # a float op's result waiting for its QuantizeLinear
        self.input_quantizer: InputQuantizer | None = None
        self.output: str | None = None
        self.kind = "QOperator"

    # ---------------------------------------------------------------- the graph
    def graph(self) -> Graph:
        inputs = [i for i in self.graph_proto.input if i.name not in self.constants]
        if len(inputs) != 1 or len(self.graph_proto.output) != 1:
            raise UnsupportedModelError(f"model '{self.name}': {len(inputs)} inputs and "
                                        f"{len(self.graph_proto.output)} outputs; cnnhw takes one of each")
        self.input = inputs[0]
        dims = [d.dim_value for d in self.input.type.tensor_type.shape.dim]
        if len(dims) != 4 or any(d <= 0 for d in dims[1:]):
            raise UnsupportedModelError(f"model input '{self.input.name}' has shape {dims}; cnnhw takes images "
                                        f"(N, C, H, W) of a fixed size")
        self.input_shape = tuple(dims[1:])
        for index, node in enumerate(self.graph_proto.node):
            if node.op_type == "Constant":
                continue
            where = f"{node.op_type} node '{node.name or index}'"
            handler = getattr(self, f"_{node.op_type.lower()}", None)
            if node.op_type in INEXACT:
                raise UnsupportedModelError(f"{where}: {INEXACT[node.op_type]}; cnnhw imports quantized models "
                                            f"made of {SUPPORTED}")
            if handler is None:
                raise UnsupportedModelError(f"{where} is not supported in a quantized model; cnnhw imports "
                                            f"{SUPPORTED}")
            handler(node, node.name or f"{node.op_type}_{index}", where)
        if self.input_quantizer is None or not self.layers:
            raise UnsupportedModelError(f"model '{self.name}': no QuantizeLinear of the input and no quantized layer; "
                                        f"is it a quantized model?")
        if self.output != self.graph_proto.output[0].name:
            raise UnsupportedModelError(f"model '{self.name}': its output '{self.graph_proto.output[0].name}' is not "
                                        f"the DequantizeLinear of its last layer; cnnhw takes quantized models "
                                        f"that end so")
        fmt = self.input_quantizer.format
        return self.assemble(self.name, self.input_shape, self.input_quantizer,
                             f"the model's own integers (ONNX {self.kind} {'int8' if fmt.signed else 'uint8'}, "
                             f"onnxruntime's arithmetic)", "ONNX", self.input.name)

    # ---------------------------------------------------------------- reading operands
    def _constant(self, name: str, where: str) -> np.ndarray:
        if name not in self.constants:
            raise UnsupportedModelError(f"{where}: '{name}' is not a constant; cnnhw takes constant scales, zero "
                                        f"points, weights and biases")
        return self.constants[name]

    def _scale_zero(self, node, scale_at: int, zero_at: int, where: str) -> tuple[np.ndarray, np.ndarray]:
        scale = np.atleast_1d(self._constant(node.input[scale_at], where)).astype(np.float32)
        has_zero = len(node.input) > zero_at and node.input[zero_at]
        zero = np.atleast_1d(self._constant(node.input[zero_at], where)) if has_zero else np.zeros(1, np.uint8)
        return scale, zero

    def _activation(self, name: str, where: str) -> _Quantized:
        if name not in self.quantized:
            raise UnsupportedModelError(f"{where}: reads '{name}', which is not a quantized activation of the model "
                                        f"(a float op between quantized ones?); cnnhw imports {SUPPORTED}")
        return self.quantized[name]

    def _quantized_output(self, name: str, scale: np.ndarray, zero: np.ndarray, shape, writer: str,
                          where: str) -> _Quantized:
        """The quantization a QuantizeLinear (or a QOperator's output operands) gives ``name``; a
        layer's output gets its shape and writer when emitted (:meth:`_emit_layer`)."""
        if scale.size != 1 or zero.size != 1 or zero.dtype.kind not in "iu" or zero.dtype.itemsize != 1:
            raise UnsupportedModelError(f"{where}: its output '{name}' is not quantized per tensor to int8 or uint8")
        fmt = IntFormat(8, zero.dtype.kind == "i")
        return _Quantized(float(scale[0]), int(zero[0]), fmt, tuple(shape), writer)

    # ---------------------------------------------------------------- QDQ
    def _quantizelinear(self, node, name, where):
        scale, zero = self._scale_zero(node, 1, 2, where)
        source = node.input[0]
        if source == self.input.name:
            if self.input_quantizer is not None:
                raise UnsupportedModelError(f"{where}: the input is quantized twice")
            out = self._quantized_output(node.output[0], scale, zero, self.input_shape, INPUT, where)
            self.input_quantizer = InputQuantizer(out.scale, out.format, "half_even", out.zero_point, float32=True)
            self.quantized[node.output[0]] = out
            return
        if source not in self.pending:
            raise UnsupportedModelError(f"{where}: quantizes '{source}', which is not the result of a Conv, Gemm, "
                                        f"MatMul, MaxPool, Flatten or Reshape of dequantized operands; cnnhw "
                                        f"imports {SUPPORTED}")
        self.kind = "QDQ"
        make, args = self.pending.pop(source)
        make(*args, y_scale=scale, y_zero=zero, out_name=node.output[0])

    def _dequantizelinear(self, node, name, where):
        scale, zero = self._scale_zero(node, 1, 2, where)
        source = node.input[0]
        if source in self.constants:
            axis = self.attributes(node).get("axis", 1)
            self.integer_constants[node.output[0]] = _Constant(self.constants[source], scale, zero, axis)
        elif source in self.quantized:
            self.dequantized[node.output[0]] = self.quantized[source]
            if node.output[0] == self.graph_proto.output[0].name:
                self.output = node.output[0]
        else:
            raise UnsupportedModelError(f"{where}: dequantizes '{source}', which is neither a constant nor a "
                                        f"quantized activation")

    def _dequantized_input(self, node, where: str) -> _Quantized:
        if node.input[0] not in self.dequantized:
            raise UnsupportedModelError(f"{where}: reads '{node.input[0]}', which is not a DequantizeLinear of a "
                                        f"quantized activation; cnnhw imports {SUPPORTED}")
        return self.dequantized[node.input[0]]

    def _integer_constant(self, node, position: int, where: str, what: str) -> _Constant | None:
        if len(node.input) <= position or not node.input[position]:
            return None
        if node.input[position] not in self.integer_constants:
            raise UnsupportedModelError(f"{where}: its {what} '{node.input[position]}' is not a DequantizeLinear of "
                                        f"a constant (a float {what} in a quantized model)")
        return self.integer_constants[node.input[position]]

    def _conv(self, node, name, where):
        x = self._dequantized_input(node, where)
        w = self._integer_constant(node, 1, where, "weight")
        b = self._integer_constant(node, 2, where, "bias")
        self.pending[node.output[0]] = (self._matrix, (node, name, where, x, w, b, True))

    def _gemm(self, node, name, where):
        attrs = self.attributes(node)
        if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
            raise UnsupportedModelError(f"{where}: transA, alpha or beta other than 0, 1, 1 are not supported")
        x = self._dequantized_input(node, where)
        w = self._integer_constant(node, 1, where, "weight")
        if not attrs.get("transB", 0):
            w = w.transposed()
        b = self._integer_constant(node, 2, where, "bias")
        self.pending[node.output[0]] = (self._matrix, (node, name, where, x, w, b, False))

    def _matmul(self, node, name, where):
        x = self._dequantized_input(node, where)
        w = self._integer_constant(node, 1, where, "weight").transposed()  # (inputs, outputs) -> (outputs, inputs)
        self.pending[node.output[0]] = (self._matrix, (node, name, where, x, w, None, False))

    def _on_integers(self, node, name, where, make) -> None:
        """A MaxPool, Flatten or Reshape: of the integers themselves (QOperator), made now; or
        between a DequantizeLinear and a QuantizeLinear (QDQ), made when the QuantizeLinear gives
        its output's quantization."""
        if node.input[0] in self.quantized:
            x = self._activation(node.input[0], where)
            make(node, name, where, x, **self._same_quantization(x, node.output[0]))
            return
        x = self._dequantized_input(node, where)
        self.pending[node.output[0]] = (make, (node, name, where, x))

    def _maxpool(self, node, name, where):
        self._on_integers(node, name, where, self._pool)

    def _flatten(self, node, name, where):
        self._on_integers(node, name, where, self._flatten_layer)

    def _reshape(self, node, name, where):
        self._flatten(node, name, where)

    @staticmethod
    def _same_quantization(x: _Quantized, out_name: str) -> dict:
        """A QOperator MaxPool or Flatten: its output is quantized as its input."""
        zero = np.array([x.zero_point], np.int8 if x.format.signed else np.uint8)
        return dict(y_scale=np.float32([x.scale]), y_zero=zero, out_name=out_name)

    # ---------------------------------------------------------------- QOperator
    def _qlinearconv(self, node, name, where):
        self._qlinear(node, name, where, x_at=0, w_at=3, y_at=6, bias_at=8, conv=True, outputs_first=True)

    def _qgemm(self, node, name, where):
        attrs = self.attributes(node)
        if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0:
            raise UnsupportedModelError(f"{where}: transA or alpha other than 0 and 1 are not supported")
        if len(node.input) < 8 or not node.input[7]:
            raise UnsupportedModelError(f"{where}: its output is float (no y_scale); cnnhw takes a QGemm with a "
                                        f"quantized output")
        self._qlinear(node, name, where, x_at=0, w_at=3, y_at=7, bias_at=6, conv=False,
                      outputs_first=bool(attrs.get("transB", 0)))

    def _qlinearmatmul(self, node, name, where):
        self._qlinear(node, name, where, x_at=0, w_at=3, y_at=6, bias_at=None, conv=False, outputs_first=False)

    def _qlinear(self, node, name, where, x_at, w_at, y_at, bias_at, conv, outputs_first):
        """A QLinearConv, QGemm or QLinearMatMul: operands at these positions; weights (outputs,
        ...) when ``outputs_first``, else (inputs, outputs)."""
        x = self._activation(node.input[x_at], where)
        x_scale, x_zero = self._scale_zero(node, x_at + 1, x_at + 2, where)
        if (float(x_scale[0]), int(x_zero[0])) != (x.scale, x.zero_point):
            raise ModelError(f"{where}: its input's scale and zero point differ from those its writer gave it")
        w_scale, w_zero = self._scale_zero(node, w_at + 1, w_at + 2, where)
        data = self._constant(node.input[w_at], where)
        w = _Constant(data if outputs_first else data.T, w_scale, w_zero, 0)
        b = None
        if bias_at is not None and len(node.input) > bias_at and node.input[bias_at]:
            bias = self._constant(node.input[bias_at], where)
            b = _Constant(bias, (x.scale * w_scale).astype(np.float32), np.zeros(1, np.int32), 0)
        y_scale, y_zero = self._scale_zero(node, y_at, y_at + 1, where)
        self._matrix(node, name, where, x, w, b, conv, y_scale=y_scale, y_zero=y_zero, out_name=node.output[0])

    # ---------------------------------------------------------------- layers
    def _weights(self, w: _Constant, outputs: int, where: str) -> tuple[np.ndarray, IntFormat]:
        """The weights less their zero points (per output channel), as int64, and their format."""
        if w is None or w.data.dtype.kind not in "iu" or w.data.dtype.itemsize != 1:
            raise UnsupportedModelError(f"{where}: its weights are not constant int8 or uint8")
        if w.scales.size not in (1, outputs) or (w.scales.size > 1 and w.axis != 0):
            raise UnsupportedModelError(f"{where}: its weight scales ({w.scales.size}, axis {w.axis}) are neither "
                                        f"per tensor nor per output channel")
        zeros = np.resize(w.zero_points.astype(np.int64), outputs).reshape((-1,) + (1,) * (w.data.ndim - 1))
        values = w.data.astype(np.int64) - zeros
        return values, IntFormat.holding(int(values.min(initial=0)), int(values.max(initial=0)))

    def _matrix(self, node, name, where, x: _Quantized, w: _Constant, b: _Constant | None, conv: bool, *,
                y_scale, y_zero, out_name):
        """A convolution or dense layer: the integer layer (input zero point folded into the bias)
        and its float view (dequantized weights and bias, the clamp of the output's range)."""
        outputs = w.data.shape[0]
        weights, weight_format = self._weights(w, outputs, where)
        w_scales = np.resize(w.scales, outputs).astype(np.float32)
        bias = np.zeros(outputs, np.int64) if b is None else np.resize(b.data.astype(np.int64), outputs)
        if b is not None:
            if b.data.dtype != np.int32 or b.data.size != outputs or np.any(b.zero_points):
                raise UnsupportedModelError(f"{where}: its bias is not int32 with zero point 0, one per output")
            expected = np.float32(x.scale) * w_scales
            if not np.allclose(np.resize(b.scales, outputs), expected, rtol=1e-6, atol=0):
                raise UnsupportedModelError(f"{where}: its bias scale is not input scale x weight scale, which "
                                            f"onnxruntime's fused kernel assumes")
        folded = bias - x.zero_point * weights.reshape(outputs, -1).sum(axis=1)
        magnitude = max(abs(x.format.lo - x.zero_point), abs(x.format.hi - x.zero_point))
        bound = int((np.abs(weights).reshape(outputs, -1).sum(axis=1) * max(abs(x.format.lo), abs(x.format.hi))
                     + np.abs(folded)).max())
        reach = int((np.abs(weights).reshape(outputs, -1).sum(axis=1) * magnitude + np.abs(bias)).max())
        if reach >= EXACT_ACCUMULATOR:
            raise UnsupportedModelError(f"{where}: its accumulator can reach {reach:,}, past 2^24, where "
                                        f"onnxruntime's float32 requantization rounds it (cnnhw reproduces it only "
                                        f"below)")
        out_q = self._quantized_output(out_name, y_scale, y_zero, (), "", where)
        requant = OnnxRequantizer.for_scales(x.scale, w_scales, out_q.scale, out_q.zero_point, out_q.format.lo,
                                             out_q.format.hi)
        float_w = weights * w_scales.astype(np.float64).reshape((-1,) + (1,) * (weights.ndim - 1))
        float_b = bias * (x.scale * w_scales.astype(np.float64))
        common = dict(in_format=x.format, out_format=out_q.format, in_scale=x.scale, out_scale=out_q.scale,
                      out_zero_point=out_q.zero_point, weight=weights, bias=folded, weight_format=weight_format,
                      weight_scales=tuple(float(s) for s in w_scales), acc_format=IntFormat.holding(-bound, bound),
                      requant=requant, activation="none")
        # The float view's clamp stands for the output's QuantizeLinear; the layer is its source.
        clamp = Clip(f"{name}/range", *self._real_range(out_q))
        if conv:
            attrs = self.attributes(node)
            groups = int(attrs.get("group", 1))
            geometry = dict(self.window(attrs, tuple(weights.shape[2:]), where, x.shape), groups=groups)
            float_op = Conv2d(name, float_w, float_b, **geometry)
            out_shape = float_op.output_shape(x.shape)
            layer = QConv(name, clamp.name, x.shape, out_shape, **common, **geometry, pad_value=x.zero_point)
        else:
            if weights.shape[1] != int(np.prod(x.shape)):
                raise UnsupportedModelError(f"{where}: input {x.shape} does not match weights {weights.shape}")
            float_op = Dense(name, float_w, float_b)
            out_shape = (outputs,)
            layer = QDense(name, clamp.name, (weights.shape[1],), out_shape, **common)
        self._emit_layer([float_op, clamp], x, layer, out_name, out_q, out_shape)

    def _pool(self, node, name, where, x: _Quantized, *, y_scale, y_zero, out_name):
        out_q = self._quantized_output(out_name, y_scale, y_zero, (), "", where)
        if (out_q.scale, out_q.zero_point, out_q.format) != (x.scale, x.zero_point, x.format):
            raise UnsupportedModelError(f"{where}: its input and output quantization differ; cnnhw takes a MaxPool "
                                        f"of the integers themselves (as onnxruntime runs it)")
        attrs = self.attributes(node)
        if attrs.get("ceil_mode", 0) or attrs.get("storage_order", 0):
            raise UnsupportedModelError(f"{where}: ceil_mode and storage_order are not supported in a quantized model")
        kernel = tuple(attrs.get("kernel_shape", ()))
        float_op = Pool2d(name, PoolKind.MAX, kernel, **self.window(attrs, kernel, where, x.shape))
        out_shape = float_op.output_shape(x.shape)
        layer = QPool(name, name, x.shape, out_shape, x.format, x.format, x.scale, x.scale,
                      out_zero_point=x.zero_point, kind=PoolKind.MAX, kernel=float_op.kernel, stride=float_op.stride,
                      pads=float_op.pads, dilation=float_op.dilation)
        self._emit_layer([float_op], x, layer, out_name, out_q, out_shape)

    def _flatten_layer(self, node, name, where, x: _Quantized, *, y_scale, y_zero, out_name):
        out_q = self._quantized_output(out_name, y_scale, y_zero, (), "", where)
        if (out_q.scale, out_q.zero_point) != (x.scale, x.zero_point):
            raise UnsupportedModelError(f"{where}: its input and output quantization differ")
        if node.op_type == "Flatten" and self.attributes(node).get("axis", 1) != 1:
            raise UnsupportedModelError(f"{where}: cnnhw flattens each image (axis 1)")
        if node.op_type == "Reshape":
            shape = tuple(int(d) for d in self._constant(node.input[1], where))
            if len(shape) != 2 or shape[1] not in (-1, int(np.prod(x.shape))):
                raise UnsupportedModelError(f"{where}: reshapes to {shape}; cnnhw takes a Reshape that flattens "
                                            f"each image")
        size = int(np.prod(x.shape))
        layer = QReshape(name, name, x.shape, (size,), x.format, x.format, x.scale, x.scale,
                         out_zero_point=x.zero_point)
        self._emit_layer([Reshape(name, (size,))], x, layer, out_name, out_q, (size,))

    def _emit_layer(self, float_ops, x: _Quantized, layer, out_name: str, out_q: _Quantized, out_shape) -> None:
        """The layer reading ``x``; its output ``out_name`` holds ``out_q``'s integers, of ``out_shape``."""
        self.emit(float_ops, (x.writer,), layer, out_name)
        self.quantized[out_name] = replace(out_q, shape=tuple(out_shape), writer=float_ops[-1].name)

    @staticmethod
    def _real_range(q: _Quantized) -> tuple[float, float]:
        """The real values a quantized output represents: what its QuantizeLinear clamps to."""
        return (q.format.lo - q.zero_point) * q.scale, (q.format.hi - q.zero_point) * q.scale

