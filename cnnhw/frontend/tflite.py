"""TFLite import: a ``.tflite`` flatbuffer, int8 (or uint8, with the older kernels' asymmetric uint8
weights) as the TFLite converter quantizes, into
the model's own integer model (``Graph.integer_model``, TFLite's rule set of
``cnnhw.quant.tflite_arith``) and its dequantized float view (the Graph's ops). A float model
(float32 throughout) becomes a float Graph only, which cnnhw quantizes like an ONNX model.

TFLite is NHWC; cnnhw's images stay (C, H, W) (the Graph records the file's layout in
``input_perm``). Weights become cnnhw's layouts: CONV_2D's (O, kh, kw, I) is (O, I, kh, kw),
DEPTHWISE_CONV_2D's (1, kh, kw, C * m) a grouped convolution of ``C`` groups; a flatten of an
(H, W, C) map is in H, W, C order, so the fully connected layer after it gets its columns in
cnnhw's C, H, W order. The input zero point is folded into each layer's bias (``sum(w * (x -
z)) = sum(w * x) - z * sum(w)``, exact) and padding inserts it, so that a padded position adds
nothing, as in TFLite's kernels. A final SOFTMAX is dropped: the class is the largest logit.

Ops: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, AVERAGE_POOL_2D, MAX_POOL_2D, ADD,
CONCATENATION (of the channels, one quantization), PAD (before a convolution, which takes it as
its own padding: TFLite pads with the zero point), RESHAPE, SOFTMAX (last); fused NONE, RELU, RELU6,
RELU_N1_TO_1; QUANTIZE of a float input first and DEQUANTIZE to a float output last. Anything else
is refused naming the op and its index.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tflite

from ..errors import ModelError, UnsupportedModelError
from ..ir import Graph, simplify
from ..ir.graph import INPUT
from ..ir.ops import Add, Clip, Concat, Conv2d, Dense, PoolKind, Pool2d, Relu, Reshape, Softmax
from ..ir.windows import window_counts
from ..quant.arith import IntFormat, Requantizer
from ..quant.qgraph import QAdd, QClamp, QConcat, QConv, QDense, QPool, QReshape, InputQuantizer
from ..quant.tflite_arith import (INT32_MAX, TFLiteAdd, TFLiteAverage, TFLiteRequantizer, activation_range)
from .integer_graph import IntegerGraphBuilder

def _names(enum) -> dict[int, str]:
    """A schema enum's names by value (``tflite.TensorType``, ``BuiltinOperator``, ...)."""
    return {value: key for key, value in vars(enum).items() if not key.startswith("_")}


INT8, UINT8, INT32, FLOAT32 = (tflite.TensorType.INT8, tflite.TensorType.UINT8, tflite.TensorType.INT32,
                               tflite.TensorType.FLOAT32)
_TYPE_NAMES = {value: name.lower() for value, name in _names(tflite.TensorType).items()}
_OP_NAMES = _names(tflite.BuiltinOperator)
_ACTIVATIONS = _names(tflite.ActivationFunctionType)
#: The activation types cnnhw computes.
_FORMATS = {INT8: IntFormat(8, True), UINT8: IntFormat(8, False)}
#: The flatbuffer's file identifier (bytes 4..8).
IDENTIFIER = b"TFL3"


@dataclass(frozen=True)
class _Tensor:
    """One tensor of the file: its shape and type, its quantization, and its data if constant."""

    index: int
    name: str
    shape: tuple[int, ...]
    type: int
    scales: np.ndarray | None
    zero_points: np.ndarray | None
    data: np.ndarray | None

    @property
    def scale(self) -> float:
        return float(self.scales[0])

    @property
    def zero_point(self) -> int:
        return int(self.zero_points[0]) if self.zero_points is not None and len(self.zero_points) else 0

    @property
    def chw(self) -> tuple[int, ...]:
        """cnnhw's shape of one image of this (1, H, W, C) map or (1, N) vector: (C, H, W) or (N,)."""
        return (self.shape[3], self.shape[1], self.shape[2]) if len(self.shape) == 4 else tuple(self.shape[1:])


def load_tflite(path: Path) -> Graph:
    data = Path(path).read_bytes()
    what = f"model {path}"
    if not data:
        raise ModelError(f"{what}: the file is empty; give a .tflite model written by the TFLite converter")
    if len(data) < 8 or data[4:8] != IDENTIFIER:
        raise ModelError(f"{what}: not a TFLite flatbuffer (no 'TFL3' identifier); is it a .tflite file?")
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        return _Importer(model, path.stem, what).graph()
    except (ModelError, UnsupportedModelError):
        raise
    except (struct.error, IndexError, ValueError, OverflowError, UnicodeDecodeError) as error:
        # What a damaged flatbuffer's accessors raise: offsets past the end, bad lengths, bad text.
        raise ModelError(f"{what}: the flatbuffer is truncated or corrupt ({type(error).__name__}); "
                         f"export the model again") from None


class _Importer(IntegerGraphBuilder):
    def __init__(self, model, name: str, what: str):
        super().__init__()
        self.model, self.name, self.what = model, name, what
        if model.SubgraphsLength() != 1:
            raise UnsupportedModelError(f"{what}: {model.SubgraphsLength()} subgraphs; cnnhw takes models of one")
        self.subgraph = model.Subgraphs(0)
        self.tensors = [self._tensor(k) for k in range(self.subgraph.TensorsLength())]
        #: Vectors flattened from an (H, W, C) map with H * W > 1 (tensor -> (H, W, C)): in that
        #: order, which only a fully connected layer can take (reordering its weights).
        self.hwc_vectors: dict[int, tuple[int, int, int]] = {}
        #: A float model (float32 tensors throughout): only the float graph is built, and cnnhw
        #: quantizes it like an ONNX model.
        self.float_model = False
        #: PAD outputs (tensor -> (the tensor padded, (top, left, bottom, right), the PAD's index)):
        #: a convolution reading one takes the padding as its own.
        self.padded: dict[int, tuple[_Tensor, tuple[int, int, int, int], int]] = {}

    # ---------------------------------------------------------------- reading the file
    def _tensor(self, index: int) -> _Tensor:
        t = self.subgraph.Tensors(index)
        q = t.Quantization()
        scales = q.ScaleAsNumpy() if q is not None and q.ScaleLength() else None
        zeros = q.ZeroPointAsNumpy() if q is not None and q.ZeroPointLength() else None
        buffer = self.model.Buffers(t.Buffer())
        data = None
        if buffer is not None and buffer.DataLength():
            dtype = {INT8: np.int8, UINT8: np.uint8, INT32: np.int32, FLOAT32: np.float32}.get(t.Type())
            if dtype is not None:
                data = np.frombuffer(buffer.DataAsNumpy().tobytes(), dtype=dtype).reshape(tuple(t.ShapeAsNumpy()))
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        return _Tensor(index, t.Name().decode(errors="replace"), shape, t.Type(), scales, zeros, data)

    def _op_name(self, op) -> str:
        code = self.model.OperatorCodes(op.OpcodeIndex())
        return _OP_NAMES.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")

    def _options(self, op, kind, index: int, what: str, required: bool = True):
        """The operator's builtin options as ``kind`` (None when an optional table is absent)."""
        table = op.BuiltinOptions()
        if table is None:
            if required:
                raise ModelError(f"{what} (operator {index}): its options are missing; export the model again")
            return None
        options = kind()
        options.Init(table.Bytes, table.Pos)
        return options

    # ---------------------------------------------------------------- the graph
    def graph(self) -> Graph:
        inputs, outputs = self.subgraph.InputsAsNumpy(), self.subgraph.OutputsAsNumpy()
        if len(inputs) != 1 or len(outputs) != 1:
            raise UnsupportedModelError(f"{self.what}: {len(inputs)} inputs and {len(outputs)} outputs; cnnhw takes "
                                        f"models of one input and one output")
        model_input = self.tensors[int(inputs[0])]
        count = self.subgraph.OperatorsLength()
        first_op = self._op_name(self.subgraph.Operators(0)) if count else None
        self.float_model = model_input.type == FLOAT32 and first_op != "QUANTIZE"
        if self.float_model:
            x, first, y, end = model_input, 0, self.tensors[int(outputs[0])], count
        else:
            # A float input and output at the edges: QUANTIZE first, DEQUANTIZE last (the converter's
            # default); the integers between them are the model's.
            x, first = self._edge(model_input, 0, "QUANTIZE", count)
            y, end = self._edge(self.tensors[int(outputs[0])], count - 1, "DEQUANTIZE", count)
        if len(x.shape) != 4 or x.shape[0] != 1:
            raise UnsupportedModelError(f"{self.what}: input '{x.name}' has shape {x.shape}; cnnhw takes images "
                                        f"(1, H, W, C)")
        self.writer[x.index] = INPUT
        dropped = ""
        for index in range(first, end):
            op = self.subgraph.Operators(index)
            kind = self._op_name(op)
            if kind == "SOFTMAX" and index == end - 1:
                dropped = "Softmax"
                softmax = Softmax(f"softmax_{index}")
                self.float_ops.append(softmax)
                self.float_reads.append((self._read(self.tensors[int(op.InputsAsNumpy()[0])], index, "SOFTMAX"),))
                self.writer[int(op.OutputsAsNumpy()[0])] = softmax.name
                continue
            handler = getattr(self, f"_{kind.lower()}", None)
            if handler is None:
                raise UnsupportedModelError(f"{self.what}: {kind} (operator {index}) is not supported; cnnhw imports "
                                            f"CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, AVERAGE_POOL_2D, "
                                            f"MAX_POOL_2D, ADD, CONCATENATION, PAD, RESHAPE and a final SOFTMAX")
            handler(op, index, f"{kind.lower()}_{index}")
        for _, _, pad_index in self.padded.values():
            raise UnsupportedModelError(f"{self.what}: PAD (operator {pad_index}) is read by no convolution; cnnhw "
                                        f"takes a PAD only before a CONV_2D or DEPTHWISE_CONV_2D, as its padding")
        if not self.float_ops or self.writer.get(y.index) != self.float_ops[-1].name:
            raise UnsupportedModelError(f"{self.what}: its output '{y.name}' is not the last operator's; cnnhw takes "
                                        f"models whose last operator writes the output")
        if self.float_model:
            return simplify(self.assemble_float(self.name, x.chw, "TFLite", model_input.name, (0, 3, 1, 2)))
        if first:  # TFLite's QUANTIZE: float32 x / scale, rounded half away from zero
            input_quantizer = InputQuantizer(x.scale, _FORMATS[x.type], "half_away", x.zero_point, float32=True)
        else:  # the integers themselves, given as the real values they stand for
            input_quantizer = InputQuantizer(x.scale, _FORMATS[x.type], "half_up", x.zero_point)
        return self.assemble(self.name, x.chw, input_quantizer, f"the model's own integers (TFLite {_TYPE_NAMES[x.type]})",
                             "TFLite", model_input.name, (0, 3, 1, 2), dropped)

    def _edge(self, tensor: _Tensor, index: int, kind: str, count: int) -> tuple[_Tensor, int]:
        """The model's integer input (or output) and the first operator (or the end) of its
        integers: ``tensor`` itself when it is int8 or uint8; else ``kind`` (QUANTIZE, DEQUANTIZE)
        must be the operator at ``index`` and convert it."""
        side = "input" if kind == "QUANTIZE" else "output"
        bound = 0 if kind == "QUANTIZE" else count
        if tensor.type in _FORMATS:
            return tensor, bound
        op = self.subgraph.Operators(index) if 0 <= index < count else None
        if tensor.type == FLOAT32 and op is not None and self._op_name(op) == kind:
            inside, outside = (op.OutputsAsNumpy()[0], op.InputsAsNumpy()[0]) if kind == "QUANTIZE" else \
                (op.InputsAsNumpy()[0], op.OutputsAsNumpy()[0])
            if int(outside) == tensor.index:
                converted = self._activation_tensor(int(inside), index, f"{kind} '{kind.lower()}_{index}'")
                return converted, 1 if kind == "QUANTIZE" else count - 1
        raise UnsupportedModelError(f"{self.what}: {side} '{tensor.name}' is {_TYPE_NAMES.get(tensor.type, tensor.type)}"
                                    f"{'' if tensor.type != FLOAT32 else f' and no {kind} converts it'}; cnnhw "
                                    f"imports TFLite models quantized to int8 or uint8, and float ones")

    # ---------------------------------------------------------------- helpers
    def _activation_tensor(self, index: int, op_index: int, what: str) -> _Tensor:
        t = self.tensors[index]
        if self.float_model:
            if t.type != FLOAT32:
                raise UnsupportedModelError(f"{what} (operator {op_index}): tensor '{t.name}' is "
                                            f"{_TYPE_NAMES.get(t.type, t.type)} in a float model")
            return t
        if t.type not in _FORMATS or t.scales is None:
            raise UnsupportedModelError(f"{what} (operator {op_index}): tensor '{t.name}' is "
                                        f"{_TYPE_NAMES.get(t.type, t.type)}; cnnhw computes int8 and uint8 "
                                        f"activations")
        return t

    def _read(self, tensor: _Tensor, op_index: int, what: str, takes_hwc: bool = False) -> str:
        if tensor.index in self.padded:
            raise UnsupportedModelError(f"{what} (operator {op_index}): reads '{tensor.name}', the output of PAD "
                                        f"(operator {self.padded[tensor.index][2]}); cnnhw takes a PAD only before a "
                                        f"CONV_2D or DEPTHWISE_CONV_2D, as its padding")
        if tensor.index in self.hwc_vectors and not takes_hwc:
            raise UnsupportedModelError(f"{what} (operator {op_index}): reads '{tensor.name}', a flattened map in "
                                        f"TFLite's (H, W, C) order; cnnhw takes one only into FULLY_CONNECTED")
        if tensor.index not in self.writer:
            raise UnsupportedModelError(f"{what} (operator {op_index}): reads '{tensor.name}', which no earlier "
                                        f"operator writes (a constant activation?)")
        return self.writer[tensor.index]

    def _fused(self, options, out: _Tensor, op_index: int, what: str) -> tuple[str, int, int]:
        """The fused activation and its integer range (none in a float model)."""
        code = options.FusedActivationFunction() if options is not None else tflite.ActivationFunctionType.NONE
        activation = _ACTIVATIONS.get(code, "?")
        if activation not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
            raise UnsupportedModelError(f"{what} (operator {op_index}): fused activation {activation} is not "
                                        f"supported (NONE, RELU, RELU6, RELU_N1_TO_1)")
        if self.float_model:
            return activation, None, None
        fmt = _FORMATS[out.type]
        return (activation, *activation_range(activation, out.scale, out.zero_point, fmt.lo, fmt.hi))

    @staticmethod
    def _float_activation(activation: str, name: str) -> tuple[list, str, str]:
        """A fused activation's float view: (the ops after the layer's own, none or one; the float
        op whose output the integer layer stands for, its ``source``; the layer's activation label)."""
        op = {"NONE": None, "RELU": Relu(f"{name}/relu"), "RELU6": Clip(f"{name}/relu6", 0.0, 6.0),
              "RELU_N1_TO_1": Clip(f"{name}/relu_n1_to_1", -1.0, 1.0)}[activation]
        return ([], name, "none") if op is None else ([op], op.name, type(op).__name__)

    def _emit(self, float_ops, reads, layer, out: _Tensor) -> None:
        """The float ops and the integer layer (none in a float model)."""
        if self.float_model:
            self.emit_float(float_ops, reads, out.index)
        else:
            self.emit(float_ops, reads, layer, out.index)

    def _same_quantization(self, a: _Tensor, b: _Tensor) -> bool:
        return self.float_model or (a.scale, a.zero_point, a.type) == (b.scale, b.zero_point, b.type)

    @staticmethod
    def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
        """TFLite's SAME padding of one axis: (before, after), the odd one after."""
        out = -(-size // stride)
        total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
        return total // 2, total - total // 2

    def _pads(self, options, in_hw, kernel, stride, dilation) -> tuple[int, int, int, int]:
        if options.Padding() == tflite.Padding.VALID:
            return 0, 0, 0, 0
        (top, bottom), (left, right) = (self._same_pads(in_hw[k], kernel[k], stride[k], dilation[k]) for k in (0, 1))
        return top, left, bottom, right

    def _requantizer(self, x: _Tensor, weights: _Tensor, out: _Tensor, lo: int, hi: int, acc_bound: int,
                     op_index: int, what: str, fully_connected: bool) -> TFLiteRequantizer:
        requant = TFLiteRequantizer.for_scales(x.scale, weights.scales, out.scale, out.zero_point, lo, hi,
                                               single_rounding=fully_connected)
        if acc_bound << requant.largest_left_shift() > INT32_MAX:
            raise UnsupportedModelError(f"{what} (operator {op_index}): its rescaling shifts the accumulator left "
                                        f"by {requant.largest_left_shift()} bits, past int32 (where TFLite's result "
                                        f"is undefined)")
        return requant

    # ---------------------------------------------------------------- operators
    def _conv(self, op, index: int, name: str, depthwise: bool) -> None:
        what = f"{'DEPTHWISE_CONV_2D' if depthwise else 'CONV_2D'} '{name}'"
        ins, outs = op.InputsAsNumpy(), op.OutputsAsNumpy()
        x = self._activation_tensor(int(ins[0]), index, what)
        explicit = (0, 0, 0, 0)
        if x.index in self.padded:  # a PAD before: the convolution's own padding, of the same zero point
            x, explicit, _ = self.padded.pop(x.index)
        weights, out = self.tensors[int(ins[1])], self._activation_tensor(int(outs[0]), index, what)
        bias = self.tensors[int(ins[2])] if len(ins) > 2 and ins[2] >= 0 else None
        options = self._options(op, tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions, index, what)
        w = self._weights(weights, x, index, what)
        stride = (options.StrideH(), options.StrideW())
        dilation = (options.DilationHFactor(), options.DilationWFactor())
        _, in_h, in_w, in_c = x.shape
        if depthwise:  # (1, kh, kw, C * m) -> (C * m, 1, kh, kw), C groups
            w, groups = w[0].transpose(2, 0, 1)[:, None], in_c
        else:  # (O, kh, kw, I) -> (O, I, kh, kw)
            w, groups = w.transpose(0, 3, 1, 2), 1
        kernel = (w.shape[2], w.shape[3])
        padded_hw = (in_h + explicit[0] + explicit[2], in_w + explicit[1] + explicit[3])
        pads = tuple(a + b for a, b in zip(self._pads(options, padded_hw, kernel, stride, dilation), explicit))
        self._matrix_layer(op, index, name, what, x, weights, out, bias, w, options,
                           dict(stride=stride, pads=pads, dilation=dilation, groups=groups))

    def _conv_2d(self, op, index: int, name: str) -> None:
        self._conv(op, index, name, depthwise=False)

    def _depthwise_conv_2d(self, op, index: int, name: str) -> None:
        self._conv(op, index, name, depthwise=True)

    def _fully_connected(self, op, index: int, name: str) -> None:
        what = f"FULLY_CONNECTED '{name}'"
        ins, outs = op.InputsAsNumpy(), op.OutputsAsNumpy()
        x = self._activation_tensor(int(ins[0]), index, what)
        weights, out = self.tensors[int(ins[1])], self._activation_tensor(int(outs[0]), index, what)
        bias = self.tensors[int(ins[2])] if len(ins) > 2 and ins[2] >= 0 else None
        w = self._weights(weights, x, index, what)
        if math.prod(x.shape[1:]) != weights.shape[1] or x.shape[0] != 1:
            raise UnsupportedModelError(f"{what} (operator {index}): input {x.shape} does not match weights "
                                        f"{weights.shape}")
        if x.index in self.hwc_vectors:  # columns in (H, W, C) order -> cnnhw's (C, H, W)
            h, width, c = self.hwc_vectors[x.index]
            w = w.reshape(-1, h, width, c).transpose(0, 3, 1, 2).reshape(len(w), -1)
        options = self._options(op, tflite.FullyConnectedOptions, index, what, required=False)
        self._matrix_layer(op, index, name, what, x, weights, out, bias, w, options, None)

    @staticmethod
    def _weights(weights: _Tensor, x: _Tensor, index: int, what: str) -> np.ndarray:
        """The weights as integers with zero point 0: int8 ones (symmetric) as they are; uint8 ones
        (TFLite's older asymmetric kernels, with a uint8 input) less their zero point, 9 bits."""
        if weights.type == FLOAT32 and x.type == FLOAT32 and weights.data is not None:  # a float model
            return weights.data.astype(np.float64)
        if weights.data is None or weights.type not in (INT8, UINT8):
            raise UnsupportedModelError(f"{what} (operator {index}): its weights are not constant int8 or uint8")
        if weights.type == UINT8:
            if x.type != UINT8 or len(weights.zero_points) != 1:
                raise UnsupportedModelError(f"{what} (operator {index}): uint8 weights need a uint8 input and one "
                                            f"zero point (TFLite's uint8 kernels)")
            return weights.data.astype(np.int64) - weights.zero_point
        if weights.zero_points is not None and np.any(weights.zero_points):
            raise UnsupportedModelError(f"{what} (operator {index}): int8 weights with a zero point are not "
                                        f"supported (TFLite's int8 kernels take symmetric weights)")
        return weights.data.astype(np.int64)

    def _matrix_layer(self, op, index, name, what, x, weights, out, bias, w, options, conv) -> None:
        """A CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED: the integer layer (input zero point
        folded into the bias) and its float view (dequantized weights and bias, the activation)."""
        reads = (self._read(x, index, what, takes_hwc=conv is None),)
        activation, lo, hi = self._fused(options, out, index, what)
        outputs = w.shape[0]
        if self.float_model:
            b = np.zeros(outputs) if bias is None or bias.data is None else bias.data.astype(np.float64)
            activation_ops, _, _ = self._float_activation(activation, name)
            float_op = Conv2d(name, w, b, **conv) if conv is not None else Dense(name, w, b)
            self._emit([float_op, *activation_ops], reads, None, out)
            return
        scales = np.resize(np.asarray(weights.scales, dtype=np.float64), outputs)
        b = np.zeros(outputs, dtype=np.int64) if bias is None or bias.data is None else bias.data.astype(np.int64)
        sums = w.reshape(outputs, -1).sum(axis=1)
        folded = b - x.zero_point * sums
        in_fmt, out_fmt = _FORMATS[x.type], _FORMATS[out.type]
        magnitude = max(abs(in_fmt.lo), abs(in_fmt.hi))
        bound = int((np.abs(w).reshape(outputs, -1).sum(axis=1) * magnitude + np.abs(folded)).max())
        requant = self._requantizer(x, weights, out, lo, hi, bound, index, what, fully_connected=conv is None)
        float_w = w * scales.reshape((-1,) + (1,) * (w.ndim - 1))
        float_b = b * (x.scale * scales)
        activation_ops, source, label = self._float_activation(activation, name)
        common = dict(in_format=in_fmt, out_format=out_fmt, in_scale=x.scale, out_scale=out.scale,
                      out_zero_point=out.zero_point, weight=w,
                      bias=folded, weight_format=IntFormat(8 if weights.type == INT8 else 9, True),
                      weight_scales=tuple(float(s) for s in weights.scales),
                      acc_format=IntFormat.holding(-bound, bound), requant=requant,
                      activation=label)
        if conv is not None:
            float_op = Conv2d(name, float_w, float_b, **conv)
            out_shape = float_op.output_shape(x.chw)
            if out_shape != out.chw:
                raise ModelError(f"{what} (operator {index}): output {out.shape} does not match the convolution's "
                                 f"{out_shape}")
            layer = QConv(name, source, x.chw, out_shape, **common, **conv, pad_value=x.zero_point)
        else:
            float_op = Dense(name, float_w, float_b)
            layer = QDense(name, source, (w.shape[1],), (outputs,), **common)
        self._emit([float_op, *activation_ops], reads, layer, out)

    def _pool(self, op, index: int, name: str, kind: PoolKind) -> None:
        what = f"{'AVERAGE' if kind == PoolKind.AVG else 'MAX'}_POOL_2D '{name}'"
        x = self._activation_tensor(int(op.InputsAsNumpy()[0]), index, what)
        out = self._activation_tensor(int(op.OutputsAsNumpy()[0]), index, what)
        if not self._same_quantization(x, out):
            raise UnsupportedModelError(f"{what} (operator {index}): its input and output quantization differ; "
                                        f"TFLite's kernels require them equal")
        options = self._options(op, tflite.Pool2DOptions, index, what)
        activation, lo, hi = self._fused(options, out, index, what)
        kernel, stride = (options.FilterHeight(), options.FilterWidth()), (options.StrideH(), options.StrideW())
        _, in_h, in_w, c = x.shape
        pads = self._pads(options, (in_h, in_w), kernel, stride, (1, 1))
        float_op = Pool2d(name, kind, kernel, stride, pads)
        out_shape = float_op.output_shape((c, in_h, in_w))
        activation_ops, source, _ = self._float_activation(activation, name)
        if self.float_model:
            self._emit([float_op, *activation_ops], (self._read(x, index, what),), None, out)
            return
        fmt = _FORMATS[x.type]
        common = dict(in_format=fmt, out_format=fmt, in_scale=x.scale, out_scale=out.scale,
                      out_zero_point=out.zero_point, kind=kind, kernel=kernel, stride=stride, pads=pads)
        reads = (self._read(x, index, what),)
        if kind == PoolKind.AVG:  # the average's divider clamps to the activation's range
            count = kernel[0] * kernel[1]
            counts = window_counts(float_op, (in_h, in_w), out_shape[1:]).ravel()
            layer = QPool(name, source, (c, in_h, in_w), out_shape, **common,
                          sum_format=IntFormat.holding(fmt.lo * count, fmt.hi * count),
                          divider=TFLiteAverage.for_windows(lo, hi, counts, fmt.lo, fmt.hi))
            self._emit([float_op, *activation_ops], reads, layer, out)
            return
        self._emit([float_op], reads, QPool(name, name, (c, in_h, in_w), out_shape, **common), out)
        if activation_ops:  # the max, then the fused activation's clamp
            clamp = QClamp(source, source, out_shape, out_shape, fmt, fmt, x.scale, out.scale, lo=lo, hi=hi,
                           out_zero_point=out.zero_point)
            self._emit(activation_ops, (name,), clamp, out)

    def _average_pool_2d(self, op, index: int, name: str) -> None:
        self._pool(op, index, name, PoolKind.AVG)

    def _max_pool_2d(self, op, index: int, name: str) -> None:
        self._pool(op, index, name, PoolKind.MAX)

    def _add(self, op, index: int, name: str) -> None:
        what = f"ADD '{name}'"
        ins = [self._activation_tensor(int(k), index, what) for k in op.InputsAsNumpy()]
        out = self._activation_tensor(int(op.OutputsAsNumpy()[0]), index, what)
        if len(ins) != 2 or ins[0].shape != ins[1].shape or ins[0].shape != out.shape:
            raise UnsupportedModelError(f"{what} (operator {index}): adds {[t.shape for t in ins]}; cnnhw adds two "
                                        f"computed tensors of one shape (no broadcasting)")
        if len({t.type for t in ins + [out]}) != 1:
            raise UnsupportedModelError(f"{what} (operator {index}): its inputs and output are not all int8 or all "
                                        f"uint8")
        reads = tuple(self._read(t, index, what) for t in ins)
        options = self._options(op, tflite.AddOptions, index, what, required=False)
        activation, lo, hi = self._fused(options, out, index, what)
        if self.float_model:
            self._emit([Add(name), *self._float_activation(activation, name)[0]], reads, None, out)
            return
        rule = TFLiteAdd.for_scales([t.scale for t in ins], [t.zero_point for t in ins], out.scale, out.zero_point,
                                    lo, hi)
        shape = out.chw
        activation_ops, source, label = self._float_activation(activation, name)
        fmt = _FORMATS[out.type]
        layer = QAdd(name, source, shape, shape, fmt, fmt, ins[0].scale, out.scale, in_formats=(fmt, fmt),
                     in_scales=tuple(t.scale for t in ins), requant=rule, activation=label, in_shapes=(shape, shape),
                     out_zero_point=out.zero_point)
        self._emit([Add(name), *activation_ops], reads, layer, out)

    def _pad(self, op, index: int, name: str) -> None:
        """Recorded, not emitted: the convolution reading it pads by as much (TFLite pads an int8
        or uint8 tensor with its zero point, which is what a convolution's padding inserts)."""
        what = f"PAD '{name}'"
        ins = op.InputsAsNumpy()
        x = self._activation_tensor(int(ins[0]), index, what)
        out = self._activation_tensor(int(op.OutputsAsNumpy()[0]), index, what)
        paddings = self.tensors[int(ins[1])].data
        if len(ins) > 2 and ins[2] >= 0:
            raise UnsupportedModelError(f"{what} (operator {index}): a constant other than the zero point is not "
                                        f"supported")
        if paddings is None or paddings.shape != (4, 2) or len(x.shape) != 4:
            raise UnsupportedModelError(f"{what} (operator {index}): cnnhw takes a PAD of a (1, H, W, C) map by "
                                        f"constant paddings")
        if np.any(paddings[0]) or np.any(paddings[3]) or np.any(paddings < 0):
            raise UnsupportedModelError(f"{what} (operator {index}): pads {paddings.tolist()}; cnnhw pads rows and "
                                        f"columns only")
        if not self._same_quantization(x, out):
            raise UnsupportedModelError(f"{what} (operator {index}): its input and output quantization differ")
        self._read(x, index, what)
        (top, bottom), (left, right) = paddings[1], paddings[2]
        self.padded[out.index] = (x, (int(top), int(left), int(bottom), int(right)), index)

    def _concatenation(self, op, index: int, name: str) -> None:
        """Of the channels, every input quantized as the output (TFLite's int8 kernel requires it)."""
        what = f"CONCATENATION '{name}'"
        ins = [self._activation_tensor(int(k), index, what) for k in op.InputsAsNumpy()]
        out = self._activation_tensor(int(op.OutputsAsNumpy()[0]), index, what)
        options = self._options(op, tflite.ConcatenationOptions, index, what)
        if len(out.shape) != 4 or options.Axis() not in (3, -1) or any(len(t.shape) != 4 for t in ins):
            raise UnsupportedModelError(f"{what} (operator {index}): cnnhw concatenates (1, H, W, C) maps along "
                                        f"their channels (axis 3), not axis {options.Axis()} of {out.shape}")
        if not all(self._same_quantization(t, out) for t in ins):
            raise UnsupportedModelError(f"{what} (operator {index}): its inputs are not all quantized as its "
                                        f"output; cnnhw takes a CONCATENATION of one scale and zero point")
        activation, lo, hi = self._fused(options, out, index, what)
        if activation != "NONE":
            raise UnsupportedModelError(f"{what} (operator {index}): a fused {activation} is not supported")
        reads = tuple(self._read(t, index, what) for t in ins)
        if self.float_model:
            self._emit([Concat(name)], reads, None, out)
            return
        fmt = _FORMATS[out.type]
        identity = Requantizer((1,) * len(ins), 0, fmt.lo, fmt.hi)  # the integers as they are
        shapes = tuple(t.chw for t in ins)
        layer = QConcat(name, name, shapes[0], out.chw, fmt, fmt, out.scale, out.scale, in_formats=(fmt,) * len(ins),
                        in_scales=(out.scale,) * len(ins), requant=identity, in_shapes=shapes,
                        out_zero_point=out.zero_point)
        self._emit([Concat(name)], reads, layer, out)

    def _reshape(self, op, index: int, name: str) -> None:
        what = f"RESHAPE '{name}'"
        x = self._activation_tensor(int(op.InputsAsNumpy()[0]), index, what)
        out = self._activation_tensor(int(op.OutputsAsNumpy()[0]), index, what)
        if len(out.shape) != 2 or out.shape[0] != 1 or len(x.shape) != 4 or not self._same_quantization(x, out):
            raise UnsupportedModelError(f"{what} (operator {index}): reshapes {x.shape} to {out.shape}; cnnhw takes "
                                        f"a RESHAPE that flattens a (1, H, W, C) map to (1, H*W*C)")
        _, h, w, c = x.shape
        if h * w > 1:  # a vector in (H, W, C) order: the next fully connected layer reorders its weights
            self.hwc_vectors[out.index] = (h, w, c)
        reads = (self._read(x, index, what),)
        if self.float_model:
            self._emit([Reshape(name, (c * h * w,))], reads, None, out)
            return
        fmt = _FORMATS[x.type]
        layer = QReshape(name, name, (c, h, w), (c * h * w,), fmt, fmt, x.scale, out.scale,
                         out_zero_point=out.zero_point)
        self._emit([Reshape(name, (c * h * w,))], reads, layer, out)
