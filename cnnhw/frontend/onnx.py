"""ONNX import: the only module that knows the ONNX file format.

``load_onnx(path)`` reads a model exported from PyTorch, Keras (tf2onnx) or any other
ONNX writer and returns a :class:`~cnnhw.ir.Graph`. The network must be a chain from one
image input to one output; nodes whose inputs are all constants are evaluated at import
(with ONNX's own reference evaluator, so constant sub-graphs mean exactly what ONNX says).

Every refusal is a :class:`~cnnhw.errors.ModelError` naming the node and saying what to do.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import ModelError, UnsupportedModelError
from ..inputs import read_bytes, regular_file
from ..ir import (Affine, Clip, Conv2d, Dense, Elu, GlobalPool, Graph, HardSigmoid, HardSwish, LeakyRelu, Pool2d, Relu,
                  Reshape, Selu, Sigmoid, Softmax, Tanh, Transpose, simplify)
from ..ir.graph import INPUT
from ..ir.ops import Add, Concat
from ..ir.ops import Pad, PoolKind, window_span
from .onnx_quantized import is_quantized, load_quantized_onnx

#: Default-domain opsets this importer knows (the semantics of every supported op are
#: unchanged between 13 and 25; older ones differ in attributes, handled below).
MIN_OPSET, MAX_OPSET = 7, 25

FLOAT_TYPES = {1: "float32", 10: "float16", 11: "float64", 16: "bfloat16"}
#: Protocol buffers cannot hold more than 2 GiB; a larger file is not an ONNX model.
MAX_MODEL_BYTES = 2 << 30


def load_onnx(path) -> Graph:
    """Read an ONNX model into a simplified Graph (BatchNorm and bias Adds folded)."""
    import onnx  # deferred: importing onnx costs ~0.3 s, and npz users never need it

    path = Path(path)
    model = _read_model(path, onnx)
    if is_quantized(model, QUANTIZED_OPS):
        return load_quantized_onnx(model, path.stem, _attributes, _window)
    graph = simplify(_Importer(model, path.stem).run())
    for layer in graph.layers:  # what the passes could not fold into a layer the hardware has
        if isinstance(layer.op, Transpose):
            raise UnsupportedModelError(
                f"Transpose node '{layer.op.name}' reorders each image; cnnhw takes a transpose only on the model "
                f"input (an NHWC layout) or right before a flatten into a dense layer (it becomes part of the "
                f"weights)")
        if isinstance(layer.op, Pad):
            raise UnsupportedModelError(
                f"Pad node '{layer.op.name}' is not followed by a convolution; cnnhw takes explicit zero padding "
                f"only as part of the convolution after it")
    return graph


def _read_model(path: Path, onnx):
    from google.protobuf.message import DecodeError

    data = read_bytes(path, "model file", ModelError, limit=MAX_MODEL_BYTES)
    if not data:
        raise ModelError(f"model file {path} is empty")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError, RecursionError) as error:
        raise ModelError(f"model file {path} is not a valid ONNX model ({error}); is it truncated? export it again") from None
    if not model.HasField("graph") or not model.graph.output:
        raise ModelError(f"model file {path} holds no ONNX graph; is it an ONNX file? export it again")
    _load_external_data(model, path, onnx)
    return model


def _load_external_data(model, path: Path, onnx) -> None:
    """Load tensors stored beside the model, refusing any that point outside its folder.

    Every tensor of the model is looked at (initializers, sparse initializers, attributes, and
    the same inside every subgraph), and every location is checked before anything is read or
    even looked up, so a hostile model can neither make cnnhw read files elsewhere nor learn
    whether they exist: the refusal is the same either way.
    """
    from onnx.external_data_helper import load_external_data_for_tensor

    folder = path.resolve().parent
    external = [t for t in _all_tensors(model.graph) if t.data_location == onnx.TensorProto.EXTERNAL]
    for tensor in external:
        entries = {e.key: e.value for e in tensor.external_data}
        location = entries.get("location", "")
        try:
            target = (folder / location).resolve()
            inside = bool(location) and not Path(location).is_absolute() and target.is_relative_to(folder)
        except (OSError, ValueError, RuntimeError):  # a NUL byte, a link loop
            inside = False
        if not inside:
            raise ModelError(
                f"model {path}: tensor '{tensor.name}' stores its data at '{location}', outside the model's "
                f"folder; cnnhw refuses to read it (keep external data files beside the model)"
            )
    for tensor in external:
        location = {e.key: e.value for e in tensor.external_data}.get("location", "")
        target = folder / location
        if not target.exists():
            raise ModelError(f"model {path}: external data file '{location}' of tensor '{tensor.name}' not found")
        regular_file(target, f"model {path}: external data file of tensor '{tensor.name}',", ModelError)
    for tensor in external:
        try:
            load_external_data_for_tensor(tensor, str(folder))
        except (OSError, ValueError) as error:
            raise ModelError(f"model {path}: cannot read external data of tensor '{tensor.name}': {error}") from None
        expected = math.prod(tensor.dims) * np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
        if len(tensor.raw_data) != expected:
            raise ModelError(
                f"model {path}: external data of tensor '{tensor.name}' holds {len(tensor.raw_data)} bytes, "
                f"expected {expected}; the data file is truncated"
            )
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT


def _all_tensors(graph):
    """Every TensorProto of ``graph`` and of its subgraphs (a sparse tensor is two: values, indices)."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            for sparse in ([attribute.sparse_tensor] if attribute.HasField("sparse_tensor") else []):
                yield from (sparse.values, sparse.indices)
            for sparse in attribute.sparse_tensors:
                yield from (sparse.values, sparse.indices)
            if attribute.HasField("g"):
                yield from _all_tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _all_tensors(subgraph)


def _attributes(node) -> dict:
    from onnx import helper

    values = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        if isinstance(value, bytes):
            value = value.decode()
        values[attribute.name] = value
    return values


class _Importer:
    """Walks the nodes of one ONNX graph (in its topological order) into ops, each reading the ops
    that write its data inputs (a tensor read by several nodes is a fork; an Add or Concat of two
    computed tensors, a join)."""

    def __init__(self, model, name: str):
        from onnx import numpy_helper

        self.model = model
        self.onnx_graph = model.graph
        self.name = name
        self.opset = self._default_opset()
        self.consts: dict[str, np.ndarray] = {}
        for tensor in self.onnx_graph.initializer:
            self.consts[tensor.name] = self._to_array(tensor, numpy_helper)
        self.ops: list = []
        self.reads: list[tuple[str, ...]] = []  # for each op, the ops (or INPUT) whose outputs it reads
        self.used_names: set[str] = set()
        self.input_perm: tuple[int, ...] | None = None
        self.input_reshape: tuple[int, ...] | None = None
        inputs = [i for i in self.onnx_graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise UnsupportedModelError(
                f"model '{self.name}' has {len(inputs)} inputs ({', '.join(i.name for i in inputs) or 'none'}); "
                f"cnnhw needs exactly one image input"
            )
        outputs = self.onnx_graph.output
        if len(outputs) != 1:
            raise UnsupportedModelError(
                f"model '{self.name}' has {len(outputs)} outputs ({', '.join(o.name for o in outputs)}); "
                f"cnnhw needs exactly one output (remove the others before export)"
            )
        self.input = inputs[0]
        self.file_dims = self._input_dims(self.input)
        self.writer = {self.input.name: INPUT}  # ONNX tensor -> the op that writes it (or INPUT)
        self.out_shapes: dict[str, tuple[int, ...]] = {}  # op name -> its per-image output shape
        self.data = self.input.name  # the data tensor the node being converted reads
        self.source = INPUT  # ... and the op its next op reads (the last op this node added, once it adds one)
        self.input_shape: tuple[int, ...] | None = None  # per-image, fixed at the first real op
        self.consumed = {name for node in self.onnx_graph.node for name in node.input if name}
        self.consumed |= {o.name for o in outputs}

    # ------------------------------------------------------------------ model-level checks
    def _default_opset(self) -> int:
        versions = [o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")]
        if not versions:
            raise ModelError(f"model '{self.name}' declares no ONNX opset; export it again")
        opset = versions[0]
        if not MIN_OPSET <= opset <= MAX_OPSET:
            raise UnsupportedModelError(
                f"model '{self.name}' uses ONNX opset {opset}; cnnhw reads opsets {MIN_OPSET} to {MAX_OPSET} "
                f"(convert it with onnx.version_converter.convert_version(model, 13))"
            )
        return opset

    def _to_array(self, tensor, numpy_helper) -> np.ndarray:
        try:
            return numpy_helper.to_array(tensor)
        except Exception as error:  # protobuf/numpy raise several types for broken tensors
            raise ModelError(f"model '{self.name}': tensor '{tensor.name}' is corrupt ({error})") from None

    def _input_dims(self, value_info) -> list:
        tensor_type = value_info.type.tensor_type
        if not value_info.type.HasField("tensor_type"):
            raise UnsupportedModelError(f"model input '{value_info.name}' is not a tensor")
        if tensor_type.elem_type not in FLOAT_TYPES:
            from onnx import helper

            type_name = helper.tensor_dtype_to_string(tensor_type.elem_type).removeprefix("TensorProto.")
            raise UnsupportedModelError(
                f"model input '{value_info.name}' has element type {type_name}; cnnhw takes float inputs "
                f"(export the model with a float32 input)"
            )
        if not tensor_type.HasField("shape"):
            raise UnsupportedModelError(
                f"model input '{value_info.name}' has no shape; export the model with a fixed input size"
            )
        for axis, d in enumerate(tensor_type.shape.dim):
            if d.HasField("dim_value") and d.dim_value <= 0 and axis > 0:
                raise UnsupportedModelError(
                    f"model input '{value_info.name}' has size {d.dim_value} in dimension {axis}; every size "
                    f"of an image must be positive: export the model again with its real input size")
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or "?")
                for d in tensor_type.shape.dim]
        if len(dims) < 2:
            raise UnsupportedModelError(
                f"model input '{value_info.name}' has shape {tuple(dims)}; cnnhw needs a batch dimension first: "
                f"(N, C, H, W) for images or (N, features)"
            )
        return dims

    def _canonical_shape(self) -> tuple[int, ...]:
        """The per-image shape of the data the next op reads; the first call fixes the input shape
        (after input transposes)."""
        if self.input_shape is None:
            per_image = self.file_dims[1:]
            for axis, dim in enumerate(per_image, start=1):
                if not isinstance(dim, int):
                    raise UnsupportedModelError(
                        f"model input '{self.input.name}' has symbolic size '{dim}' in dimension {axis}; cnnhw "
                        f"builds fixed-size hardware: export with a fixed input size (only the batch may vary)"
                    )
            self.input_shape = tuple(per_image)
        return self._shape_of(self.source)

    def _shape_of(self, writer: str) -> tuple[int, ...]:
        return self.input_shape if writer == INPUT else self.out_shapes[writer]

    @property
    def batch(self) -> int | None:
        """The declared batch size, or None if symbolic."""
        return self.file_dims[0] if isinstance(self.file_dims[0], int) else None

    # ------------------------------------------------------------------ the walk
    def run(self) -> Graph:
        for index, node in enumerate(self.onnx_graph.node):
            self._visit(node, index)
        output = self.onnx_graph.output[0].name
        if output in self.consts:
            raise UnsupportedModelError(f"model output '{output}' is a constant; it does not depend on the input")
        last = self.ops[-1].name if self.ops else INPUT
        if self.writer.get(output) != last:
            raise UnsupportedModelError(
                f"model output '{output}' is not the last layer's output; cnnhw takes models with one output, "
                f"written by their last node"
            )
        self.source = INPUT
        self._canonical_shape()
        graph = Graph(self.name, self.input_shape, tuple(self.ops), input_name=self.input.name,
                      output_name=output, input_perm=self.input_perm, source=f"ONNX opset {self.opset}",
                      input_reshape=self.input_reshape, op_inputs=tuple(self.reads))
        return graph

    def _visit(self, node, index: int) -> None:
        label = f"'{node.name}'" if node.name else f"#{index}"
        where = f"{node.op_type} node {label}"
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedModelError(
                f"unsupported op '{node.domain}::{node.op_type}' at node {label}; cnnhw supports "
                f"the standard ONNX ops {', '.join(SUPPORTED_OPS)}"
            )
        present = [name for name in node.input if name]
        data = [name for name in present if name not in self.consts]
        if not data:
            self._fold_constant(node, where)
            return
        converter = _CONVERTERS.get(node.op_type)
        if converter is None:
            raise UnsupportedModelError(
                f"unsupported op '{node.op_type}' at node {label}; cnnhw supports "
                f"{', '.join(SUPPORTED_OPS)}"
            )
        if len(set(data)) > 1 and node.op_type not in _JOINS:
            raise UnsupportedModelError(
                f"{where} reads {', '.join(repr(d) for d in data)}; cnnhw computes on two tensors only to add or "
                f"concatenate them ({', '.join(sorted(_JOINS))}): every other op's weights must be constants"
            )
        for extra in node.output[1:]:
            if extra and extra in self.consumed:
                raise UnsupportedModelError(
                    f"{where}: its extra output '{extra}' is used; cnnhw supports only the first output "
                    f"(export the model in inference mode)"
                )
        name = node.name or f"{node.op_type.lower()}_{index}"
        while name in self.used_names:
            name += "_"
        self.used_names.add(name)
        self.data = data[0]
        self.source = self.writer[data[0]]
        converter(self, node, _attributes(node), name, where)
        # The op the node added writes its output; a node that added none passes its input on.
        self.writer[node.output[0]] = self.source

    def _fold_constant(self, node, where: str) -> None:
        from onnx import helper
        from onnx.reference import ReferenceEvaluator

        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            from onnx import numpy_helper

            self.consts[node.output[0]] = self._to_array(node.attribute[0].t, numpy_helper)
            return
        inputs = [name for name in node.input if name]
        graph = helper.make_graph(
            [node], "fold",
            [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(self.consts[n].dtype), None)
             for n in dict.fromkeys(inputs)],
            [helper.make_empty_tensor_value_info(o) for o in node.output if o],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        try:
            results = ReferenceEvaluator(model).run(None, {n: self.consts[n] for n in inputs})
        except Exception as error:  # the evaluator raises many types for ops it cannot run
            raise UnsupportedModelError(f"{where}: cannot evaluate this constant expression ({error})") from None
        for output, value in zip([o for o in node.output if o], results):
            self.consts[output] = np.asarray(value)

    # ------------------------------------------------------------------ helpers for converters
    def const_input(self, node, position: int, where: str, what: str, required: bool = True):
        """The constant at input ``position`` of ``node`` (None if absent and not required)."""
        name = node.input[position] if position < len(node.input) else ""
        if not name:
            if required:
                raise ModelError(f"{where} lacks its {what} input")
            return None
        if name not in self.consts:
            raise UnsupportedModelError(
                f"{where}: its {what} '{name}' is computed at run time; cnnhw needs it as a constant (initializer)"
            )
        return self.consts[name]

    def require_data_first(self, node, where: str) -> None:
        if node.input[0] != self.data:
            raise UnsupportedModelError(
                f"{where}: the layer input must be its first operand; cnnhw supports data x constant products only"
            )

    def add(self, op) -> None:
        """Add ``op``, reading the node's data (or the op the node added before it)."""
        self.out_shapes[op.name] = op.output_shape(self._canonical_shape())
        self.ops.append(op)
        self.reads.append((self.source,))
        self.source = op.name

    def add_join(self, op, tensors: list[str]) -> None:
        """Add ``op``, reading the ONNX ``tensors`` (each written by an earlier op or the input)."""
        self._canonical_shape()
        sources = tuple(self.writer[tensor] for tensor in tensors)
        self.out_shapes[op.name] = op.output_shape_of(tuple(self._shape_of(source) for source in sources))
        self.ops.append(op)
        self.reads.append(sources)
        self.source = op.name

    def data_inputs(self, node) -> list[str]:
        """The node's inputs that are computed (not constants), in order."""
        return [name for name in node.input if name and name not in self.consts]

    def per_image_constant(self, value: np.ndarray, where: str) -> np.ndarray:
        """A constant broadcast against (batch, *shape) reduced to its per-image part."""
        shape = self._canonical_shape()
        value = np.asarray(value, dtype=np.float64)
        full_rank = len(shape) + 1
        if value.ndim > full_rank:
            raise UnsupportedModelError(f"{where}: constant of shape {value.shape} has more dimensions than the data")
        if value.ndim == full_rank:
            if value.shape[0] != 1:
                raise UnsupportedModelError(
                    f"{where}: constant of shape {value.shape} varies over the batch dimension; cnnhw needs one "
                    f"value per feature (leading dimension 1)"
                )
            value = value[0]
        return value

    def at_model_input(self) -> bool:
        return not self.ops and self.input_shape is None

    def reshape_input(self, per_image: tuple[int, ...], where: str) -> None:
        """A reshape that makes images of the model input, before anything else: part of its layout."""
        if self.input_perm is not None:
            raise UnsupportedModelError(f"{where} reshapes the model input after transposing it; cnnhw takes a "
                                        f"reshape of the input before a transpose only")
        self.input_reshape = tuple(per_image)
        self.file_dims = [self.file_dims[0], *per_image]

    def per_image_shape(self) -> tuple[int, ...]:
        """The data's per-image shape, without fixing the input's while no op has been added."""
        if self.at_model_input():
            return tuple(self.file_dims[1:]) if all(isinstance(d, int) for d in self.file_dims[1:]) \
                else self._canonical_shape()
        return self._canonical_shape()

    def permute_input(self, perm: tuple[int, ...], where: str) -> None:
        if sorted(perm) != list(range(len(self.file_dims))):
            raise ModelError(f"{where}: perm {perm} is not a permutation of {len(self.file_dims)} axes")
        self.input_perm = perm if self.input_perm is None else tuple(self.input_perm[p] for p in perm)
        self.file_dims = [self.file_dims[p] for p in perm]


def _resolve_pads(attrs: dict, in_hw, kernel, stride, dilation, where: str) -> tuple[int, int, int, int]:
    auto_pad = attrs.get("auto_pad", "NOTSET") or "NOTSET"
    if auto_pad == "NOTSET":
        pads = tuple(attrs.get("pads", (0, 0, 0, 0)))
        if len(pads) != 4:
            raise ModelError(f"{where}: pads {pads} must have 4 entries for a 2-D window")
        return pads
    if auto_pad == "VALID":
        return (0, 0, 0, 0)
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise ModelError(f"{where}: unknown auto_pad '{auto_pad}'")
    begin, end = [], []
    for size, k, s, d in zip(in_hw, kernel, stride, dilation):
        out = -(-size // s)
        total = max(0, (out - 1) * s + window_span(k, d) - size)
        small, large = total // 2, total - total // 2
        begin.append(small if auto_pad == "SAME_UPPER" else large)
        end.append(large if auto_pad == "SAME_UPPER" else small)
    return (begin[0], begin[1], end[0], end[1])


def _window(attrs: dict, kernel, where: str, shape) -> dict:
    if len(kernel) != 2:
        raise UnsupportedModelError(f"{where} has a {len(kernel)}-D window; cnnhw supports 2-D windows only")
    stride = tuple(attrs.get("strides", (1, 1)))
    dilation = tuple(attrs.get("dilations", (1, 1)))
    if len(shape) != 3:
        raise UnsupportedModelError(f"{where} needs a (C, H, W) input, got shape {shape}")
    pads = _resolve_pads(attrs, shape[1:], kernel, stride, dilation, where)
    return dict(stride=stride, pads=pads, dilation=dilation)


# ---------------------------------------------------------------------- one converter per op
def _conv(imp: _Importer, node, attrs, name, where):
    imp.require_data_first(node, where)
    weight = imp.const_input(node, 1, where, "weight")
    bias = imp.const_input(node, 2, where, "bias", required=False)
    if weight.ndim != 4:
        raise UnsupportedModelError(f"{where} has a {weight.ndim - 2}-D kernel; cnnhw supports 2-D convolution only")
    kernel = tuple(attrs.get("kernel_shape", weight.shape[2:]))
    if kernel != weight.shape[2:]:
        raise ModelError(f"{where}: kernel_shape {kernel} does not match weights of shape {weight.shape}")
    geometry = _window(attrs, kernel, where, imp._canonical_shape())
    bias = np.zeros(weight.shape[0]) if bias is None else bias
    imp.add(Conv2d(name, weight, bias, groups=int(attrs.get("group", 1)), **geometry))


def _pool(kind):
    def convert(imp: _Importer, node, attrs, name, where):
        if "kernel_shape" not in attrs:
            raise ModelError(f"{where} lacks kernel_shape")
        kernel = tuple(attrs["kernel_shape"])
        geometry = _window(attrs, kernel, where, imp._canonical_shape())
        imp.add(Pool2d(name, kind, kernel, ceil_mode=bool(attrs.get("ceil_mode", 0)),
                       count_include_pad=bool(attrs.get("count_include_pad", 0)), **geometry))
    return convert


def _global_pool(kind):
    def convert(imp: _Importer, node, attrs, name, where):
        imp.add(GlobalPool(name, kind))
    return convert


def _gemm(imp: _Importer, node, attrs, name, where):
    imp.require_data_first(node, where)
    if attrs.get("transA", 0):
        if not imp.at_model_input() or len(imp.file_dims) != 2:
            raise UnsupportedModelError(
                f"{where}: transA=1 on a computed tensor would move the batch dimension; cnnhw supports it only "
                f"on a 2-D model input"
            )
        imp.permute_input((1, 0), where)
    b = imp.const_input(node, 1, where, "B (weights)")
    if b.ndim != 2:
        raise ModelError(f"{where}: B must be 2-D, got shape {b.shape}")
    weight = (b if attrs.get("transB", 0) else b.T).astype(np.float64) * attrs.get("alpha", 1.0)
    c = imp.const_input(node, 2, where, "C (bias)", required=False)
    bias = np.zeros(weight.shape[0])
    if c is not None:
        c = np.asarray(c, dtype=np.float64)
        if c.ndim == 2:
            if c.shape[0] != 1:
                raise UnsupportedModelError(
                    f"{where}: bias C of shape {c.shape} varies over the batch; cnnhw needs one bias per output "
                    f"(shape ({weight.shape[0]},) or (1, {weight.shape[0]}))"
                )
            c = c[0]
        try:
            bias = attrs.get("beta", 1.0) * np.broadcast_to(c, (weight.shape[0],))
        except ValueError:
            raise ModelError(f"{where}: bias C of shape {c.shape} does not match {weight.shape[0]} outputs") from None
    imp.add(Dense(name, weight, bias))


def _matmul(imp: _Importer, node, attrs, name, where):
    imp.require_data_first(node, where)
    b = imp.const_input(node, 1, where, "B (weights)")
    if b.ndim != 2 or len(imp._canonical_shape()) != 1:
        raise UnsupportedModelError(
            f"{where}: cnnhw supports MatMul as a dense layer only, (N, K) x (K, M) with constant weights; "
            f"got data {(imp.batch or 'N', *imp._canonical_shape())} x weights {b.shape}"
        )
    imp.add(Dense(name, b.T, np.zeros(b.shape[1])))


def _constant_operand(imp: _Importer, node, where: str, what: str) -> tuple[np.ndarray, bool]:
    """The per-image constant of a binary op on the layer input, and whether the data comes first."""
    data_first = node.input[0] == imp.data
    return imp.per_image_constant(imp.const_input(node, 1 if data_first else 0, where, what), where), data_first


def _add(imp: _Importer, node, attrs, name, where):
    """``x + c`` (a bias, a normalising mean, half a BatchNormalization), or ``x + y`` of two
    computed tensors (a residual connection)."""
    data = imp.data_inputs(node)
    if len(data) == 2:
        imp.add_join(Add(name), data)
        return
    constant, _ = _constant_operand(imp, node, where, "addend")
    imp.add(Affine(name, np.ones(()), constant))


def _concat(imp: _Importer, node, attrs, name, where):
    """Computed tensors along the channels (axis 1 with the batch)."""
    data = imp.data_inputs(node)
    if len(data) != len([n for n in node.input if n]):
        raise UnsupportedModelError(f"{where} concatenates a constant; cnnhw concatenates computed tensors only")
    rank = len(imp._canonical_shape()) + 1
    axis = int(attrs.get("axis", 1))
    if axis not in (1, 1 - rank):
        raise UnsupportedModelError(f"{where} concatenates along axis {axis}; cnnhw concatenates along the "
                                    f"channels (axis 1) only")
    if len(data) == 1:
        return  # one tensor: nothing to join
    imp.add_join(Concat(name), data)


def _sub(imp: _Importer, node, attrs, name, where):
    """``x - c`` (a normalising layer's mean), or ``c - x``."""
    constant, data_first = _constant_operand(imp, node, where, "subtrahend")
    imp.add(Affine(name, np.ones(()), -constant) if data_first else Affine(name, -np.ones(()), constant))


def _mul(imp: _Importer, node, attrs, name, where):
    """``x * c``: a per-channel scale (tf2onnx writes a folded BatchNormalization as Mul then Add)."""
    constant, _ = _constant_operand(imp, node, where, "factor")
    imp.add(Affine(name, constant, np.zeros(())))


def _div(imp: _Importer, node, attrs, name, where):
    """``x / c`` (a normalising layer's standard deviation); ``c / x`` is not affine."""
    imp.require_data_first(node, where)
    constant = imp.per_image_constant(imp.const_input(node, 1, where, "divisor"), where)
    if np.any(constant == 0):
        raise ModelError(f"{where} divides by a constant that is 0 somewhere")
    imp.add(Affine(name, 1.0 / constant, np.zeros(())))


def _activation(kind, **defaults):
    """A converter for an activation whose attributes are floats with ONNX's ``defaults``."""
    def convert(imp, node, attrs, name, where):
        imp.add(kind(name, **{key: float(attrs.get(key, value)) for key, value in defaults.items()}))
    return convert


def _clip(imp: _Importer, node, attrs, name, where):
    if imp.opset < 11:
        low, high = attrs.get("min"), attrs.get("max")
    else:
        low = imp.const_input(node, 1, where, "min", required=False)
        high = imp.const_input(node, 2, where, "max", required=False)
    bounds = [None if v is None else float(np.asarray(v).reshape(())) for v in (low, high)]
    imp.add(Clip(name, *bounds))


def _batch_norm(imp: _Importer, node, attrs, name, where):
    if attrs.get("training_mode", 0):
        raise UnsupportedModelError(f"{where} is in training mode; export the model in eval mode")
    if not attrs.get("spatial", 1):
        raise UnsupportedModelError(f"{where} has spatial=0 (per-position statistics); not supported")
    scale, shift, mean, var = (imp.const_input(node, i, where, what)
                               for i, what in enumerate(("scale", "B", "mean", "var"), start=1))
    imp.add(Affine.from_batchnorm(name, scale, shift, mean, var, float(attrs.get("epsilon", 1e-5)),
                                  len(imp._canonical_shape())))


def _flatten(imp: _Importer, node, attrs, name, where):
    shape = imp._canonical_shape()
    axis = int(attrs.get("axis", 1))
    axis += len(shape) + 1 if axis < 0 else 0
    if axis != 1:
        raise UnsupportedModelError(
            f"{where} has axis {axis}, which mixes the batch dimension with features; cnnhw supports axis 1"
        )
    imp.add(Reshape(name, (math.prod(shape),)))


def _reshape(imp: _Importer, node, attrs, name, where):
    """A reshape of each image. One that makes an image (C, H, W) of the model input's plane or
    vector is part of the input's layout: the data files hold images as the model computes on them."""
    shape = imp.per_image_shape()
    target = [int(v) for v in np.asarray(imp.const_input(node, 1, where, "shape")).reshape(-1)]
    allow_zero = bool(attrs.get("allowzero", 0))
    full = [imp.batch, *shape]
    keeps_batch = bool(target) and (
        (target[0] == 0 and not allow_zero)
        or (target[0] == -1 and -1 not in target[1:])
        or (target[0] == imp.batch)
        or (imp.batch is None and target[0] == 1)
    )
    if not keeps_batch:
        raise UnsupportedModelError(
            f"{where} reshapes {tuple(d or 'N' for d in full)} to {tuple(target)}, changing the batch dimension; "
            f"cnnhw needs dimension 0 to stay the batch"
        )
    per_image = []
    for axis, dim in enumerate(target[1:], start=1):
        if dim == 0 and not allow_zero:
            if axis >= len(full):
                raise ModelError(f"{where}: shape entry 0 at axis {axis} has no input dimension to copy")
            dim = full[axis]
        per_image.append(dim)
    if per_image.count(-1) > 1 or any(d < -1 or d == 0 for d in per_image):
        raise ModelError(f"{where}: invalid target shape {tuple(target)}")
    known = math.prod(d for d in per_image if d != -1)
    if -1 in per_image and math.prod(shape) % known == 0:
        per_image[per_image.index(-1)] = math.prod(shape) // known
    if math.prod(per_image) != math.prod(shape):
        raise UnsupportedModelError(
            f"{where} reshapes {tuple(d or 'N' for d in full)} to {tuple(target)}, which moves data between "
            f"images of the batch; cnnhw needs each image reshaped on its own"
        )
    if imp.at_model_input() and len(per_image) == 3 > len(shape):
        imp.reshape_input(tuple(per_image), where)  # an image made of a plane or a vector
    else:
        imp.add(Reshape(name, tuple(per_image)))


def _transpose(imp: _Importer, node, attrs, name, where):
    """On the model input, a layout the data files do not have (NHWC); elsewhere a permutation of
    each image's axes (``ir.Transpose``)."""
    if imp.at_model_input():
        rank = len(imp.file_dims)
        imp.permute_input(tuple(int(p) for p in attrs.get("perm", range(rank - 1, -1, -1))), where)
        return
    rank = len(imp._canonical_shape()) + 1
    perm = tuple(int(p) for p in attrs.get("perm", range(rank - 1, -1, -1)))
    if sorted(perm) != list(range(rank)):
        raise ModelError(f"{where}: perm {perm} is not a permutation of {rank} axes")
    if perm[0] != 0:
        raise UnsupportedModelError(f"{where} moves the batch dimension (perm {perm}); cnnhw needs dimension 0 to "
                                    f"stay the batch")
    imp.add(Transpose(name, tuple(p - 1 for p in perm[1:])))


def _softmax(imp: _Importer, node, attrs, name, where):
    shape = imp._canonical_shape()
    rank = len(shape) + 1
    axis = int(attrs.get("axis", 1 if imp.opset < 13 else -1))
    axis += rank if axis < 0 else 0
    if not 1 <= axis < rank:
        raise UnsupportedModelError(f"{where} normalises over axis {axis}, the batch; cnnhw needs axis >= 1")
    # Before opset 13, Softmax flattens the axes from `axis` on and normalises over them together.
    axes = tuple(range(axis - 1, rank - 1)) if imp.opset < 13 else (axis - 1,)
    imp.add(Softmax(name, axes))


def _dropout(imp: _Importer, node, attrs, name, where):
    training = imp.const_input(node, 2, where, "training_mode", required=False)
    if training is not None and bool(np.asarray(training).reshape(())):
        raise UnsupportedModelError(f"{where} is in training mode; export the model in eval mode")


def _identity(imp, node, attrs, name, where):
    pass


def _pad(imp: _Importer, node, attrs, name, where):
    """Zero padding of the spatial axes (becomes the next convolution's padding)."""
    mode = attrs.get("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode != "constant":
        raise UnsupportedModelError(f"{where} pads in mode '{mode}'; cnnhw pads with zeros only (mode 'constant')")
    if imp.opset < 11:
        pads, value = attrs.get("pads"), attrs.get("value", 0.0)
    else:
        pads = imp.const_input(node, 1, where, "pads")
        value = imp.const_input(node, 2, where, "constant_value", required=False)
        if imp.const_input(node, 3, where, "axes", required=False) is not None:
            raise UnsupportedModelError(f"{where} names the axes it pads; cnnhw takes pads for every axis")
    value = 0.0 if value is None else float(np.asarray(value).reshape(()))
    if value != 0:
        raise UnsupportedModelError(f"{where} pads with {value:g}; cnnhw pads with zeros only")
    pads = [int(p) for p in np.asarray(pads).reshape(-1)]
    if len(imp._canonical_shape()) != 3 or len(pads) != 8:
        raise UnsupportedModelError(f"{where} pads a tensor of shape {imp._canonical_shape()}; cnnhw pads "
                                    f"(C, H, W) images only")
    begin, end = pads[:4], pads[4:]
    if begin[:2] != [0, 0] or end[:2] != [0, 0]:
        raise UnsupportedModelError(f"{where} pads the batch or the channels (pads {pads}); cnnhw pads the height "
                                    f"and width only")
    if min(pads) < 0:
        raise UnsupportedModelError(f"{where} crops (negative pads {pads}); cnnhw pads only")
    imp.add(Pad(name, (begin[2], begin[3], end[2], end[3])))


def _axes(imp: _Importer, node, attrs, where: str, rank_of) -> list[int] | None:
    """The ``axes`` of a Squeeze/Unsqueeze (an attribute before opset 13, an input since), made
    non-negative for the rank ``rank_of(count)`` gives for ``count`` axes; None when absent."""
    axes = attrs.get("axes") if imp.opset < 13 else imp.const_input(node, 1, where, "axes", required=False)
    if axes is None:
        return None
    axes = [int(a) for a in np.asarray(axes).reshape(-1)]
    rank = rank_of(len(axes))
    if any(not -rank <= a < rank for a in axes) or len({a % rank for a in axes}) != len(axes):
        raise ModelError(f"{where}: axes {axes} are out of range or repeated for rank {rank}")
    return sorted(a % rank for a in axes)


def _squeeze(imp: _Importer, node, attrs, name, where):
    shape = imp._canonical_shape()
    full = [imp.batch, *shape]
    axes = _axes(imp, node, attrs, where, lambda count: len(full))
    if axes is None:  # every dimension of size 1: the batch too, when it is 1
        axes = [axis for axis, dim in enumerate(full) if dim == 1]
    if 0 in axes:
        raise UnsupportedModelError(f"{where} removes the batch dimension; cnnhw needs dimension 0 to stay the batch")
    if any(full[axis] != 1 for axis in axes):
        raise ModelError(f"{where}: axes {axes} of shape {tuple(d or 'N' for d in full)} are not all of size 1")
    kept = tuple(dim for axis, dim in enumerate(shape, start=1) if axis not in axes)
    imp.add(Reshape(name, kept or (1,)))


def _unsqueeze(imp: _Importer, node, attrs, name, where):
    full = [imp.batch, *imp.per_image_shape()]
    axes = _axes(imp, node, attrs, where, lambda count: len(full) + count)  # axes of the output
    if axes is None:
        raise ModelError(f"{where} lacks its axes")
    if 0 in axes:
        raise UnsupportedModelError(f"{where} adds a dimension before the batch; cnnhw needs dimension 0 to stay "
                                    f"the batch")
    for axis in axes:
        full.insert(axis, 1)
    if imp.at_model_input() and len(full) - 1 == 3:
        imp.reshape_input(tuple(full[1:]), where)  # an image made of a plane or a vector
    else:
        imp.add(Reshape(name, tuple(full[1:])))


_CONVERTERS = {
    "Conv": _conv,
    "MaxPool": _pool(PoolKind.MAX),
    "AveragePool": _pool(PoolKind.AVG),
    "GlobalAveragePool": _global_pool(PoolKind.AVG),
    "GlobalMaxPool": _global_pool(PoolKind.MAX),
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Add": _add,
    "Concat": _concat,
    "Sub": _sub,
    "Mul": _mul,
    "Div": _div,
    "Squeeze": _squeeze,
    "Pad": _pad,
    "Unsqueeze": _unsqueeze,
    "Relu": _activation(Relu),
    "Clip": _clip,
    "LeakyRelu": _activation(LeakyRelu, alpha=0.01),
    "Sigmoid": _activation(Sigmoid),
    "Tanh": _activation(Tanh),
    "HardSigmoid": _activation(HardSigmoid, alpha=0.2, beta=0.5),
    "HardSwish": _activation(HardSwish),
    "Elu": _activation(Elu, alpha=1.0),
    "Selu": _activation(Selu, alpha=Selu.alpha, gamma=Selu.gamma),
    "BatchNormalization": _batch_norm,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Softmax": _softmax,
    "Identity": _identity,
    "Dropout": _dropout,
}

#: The ops that read two or more computed tensors.
_JOINS = {"Add", "Concat"}

#: The ONNX ops cnnhw imports (plus Constant, and any op whose inputs are all constants).
SUPPORTED_OPS = tuple(sorted(_CONVERTERS))
#: The ops that make a model pre-quantized (QDQ pairs, the QOperator format): such a model is imported
#: with its own integers (``frontend/onnx_quantized.py``), its unsupported nodes refused by name.
QUANTIZED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
                           "QLinearMatMul", "QLinearAdd", "QLinearMul", "QLinearAveragePool",
                           "QLinearGlobalAveragePool", "QLinearConcat", "QGemm", "ConvInteger", "MatMulInteger"})
