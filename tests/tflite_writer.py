"""Small int8 TFLite models written in the tests (the TFLite converter is not installed here): the
flatbuffer the converter writes, built with the ``tflite`` package's schema builders, so that
TFLite's own reference kernels can run it."""

from __future__ import annotations

import importlib

import flatbuffers
import numpy as np
import tflite

_INT8, _UINT8, _INT32 = tflite.TensorType.INT8, tflite.TensorType.UINT8, tflite.TensorType.INT32
_DTYPES = {_INT8: np.int8, _UINT8: np.uint8, _INT32: np.int32, tflite.TensorType.FLOAT32: np.float32}


def _schema(name: str):
    return importlib.import_module(f"tflite.{name}")


class ModelWriter:
    """Tensors, constant buffers and operators of one subgraph; :meth:`write` gives the file."""

    def __init__(self):
        self.tensors: list[dict] = []
        self.buffers: list[bytes] = [b""]  # buffer 0 is the empty one
        self.operators: list[tuple] = []
        self.codes: list[int] = []

    def tensor(self, shape, type_: int = _INT8, scale=None, zero_point=None, data=None, axis: int = 0) -> int:
        """A tensor (constant when ``data`` is given); ``scale``/``zero_point`` a number or a list
        (per channel along ``axis``). Returns its index."""
        buffer = 0
        if data is not None:
            self.buffers.append(np.asarray(data, dtype=_DTYPES[type_]).tobytes())
            buffer = len(self.buffers) - 1
        scales = None if scale is None else [float(s) for s in np.atleast_1d(scale)]
        zeros = None if scale is None else [int(z) for z in np.atleast_1d(zero_point if zero_point is not None else 0)]
        self.tensors.append(dict(shape=[int(d) for d in shape], type=type_, buffer=buffer, scales=scales, zeros=zeros,
                                 axis=axis, name=f"t{len(self.tensors)}"))
        return len(self.tensors) - 1

    def operator(self, code: int, inputs, outputs, options: str | None = None, **fields) -> None:
        """An operator of builtin ``code`` with its ``options`` table (``"Conv2DOptions"``, ...)
        and that table's fields (``Padding=...``, ``StrideW=...``)."""
        if code not in self.codes:
            self.codes.append(code)
        self.operators.append((self.codes.index(code), list(inputs), list(outputs), options, fields))

    # ---------------------------------------------------------------- the flatbuffer
    @staticmethod
    def _vector(builder, module, name: str, values, kind: str):
        getattr(module, f"Start{name}Vector")(builder, len(values))
        prepend = getattr(builder, f"Prepend{kind}")
        for value in reversed(values):
            prepend(value)
        return builder.EndVector()

    def write(self, inputs, outputs) -> bytes:
        b = flatbuffers.Builder(1024)
        buffer_m, tensor_m, quant_m = _schema("Buffer"), _schema("Tensor"), _schema("QuantizationParameters")
        op_m, code_m, graph_m, model_m = _schema("Operator"), _schema("OperatorCode"), _schema("SubGraph"), _schema("Model")
        buffers = []
        for data in self.buffers:
            vector = self._vector(b, buffer_m, "Data", list(data), "Uint8") if data else None
            buffer_m.Start(b)
            if vector is not None:
                buffer_m.AddData(b, vector)
            buffers.append(buffer_m.End(b))
        tensors = []
        for t in self.tensors:
            name = b.CreateString(t["name"])
            shape = self._vector(b, tensor_m, "Shape", t["shape"], "Int32")
            quant = None
            if t["scales"] is not None:
                scales = self._vector(b, quant_m, "Scale", t["scales"], "Float32")
                zeros = self._vector(b, quant_m, "ZeroPoint", t["zeros"], "Int64")
                quant_m.Start(b)
                quant_m.AddScale(b, scales)
                quant_m.AddZeroPoint(b, zeros)
                quant_m.AddQuantizedDimension(b, t["axis"])
                quant = quant_m.End(b)
            tensor_m.Start(b)
            tensor_m.AddShape(b, shape)
            tensor_m.AddType(b, t["type"])
            tensor_m.AddBuffer(b, t["buffer"])
            tensor_m.AddName(b, name)
            if quant is not None:
                tensor_m.AddQuantization(b, quant)
            tensors.append(tensor_m.End(b))
        operators = []
        for code_index, ins, outs, options, fields in self.operators:
            table = None
            if options is not None:
                options_m = _schema(options)
                options_m.Start(b)
                for field, value in fields.items():
                    getattr(options_m, f"Add{field}")(b, value)
                table = options_m.End(b)
            in_vector = self._vector(b, op_m, "Inputs", ins, "Int32")
            out_vector = self._vector(b, op_m, "Outputs", outs, "Int32")
            op_m.Start(b)
            op_m.AddOpcodeIndex(b, code_index)
            op_m.AddInputs(b, in_vector)
            op_m.AddOutputs(b, out_vector)
            if table is not None:
                op_m.AddBuiltinOptionsType(b, getattr(tflite.BuiltinOptions, options))
                op_m.AddBuiltinOptions(b, table)
            operators.append(op_m.End(b))
        codes = []
        for code in self.codes:
            code_m.Start(b)
            code_m.AddDeprecatedBuiltinCode(b, min(code, 127))
            code_m.AddBuiltinCode(b, code)
            code_m.AddVersion(b, 1)
            codes.append(code_m.End(b))
        graph_tensors = self._vector(b, graph_m, "Tensors", tensors, "UOffsetTRelative")
        graph_inputs = self._vector(b, graph_m, "Inputs", list(inputs), "Int32")
        graph_outputs = self._vector(b, graph_m, "Outputs", list(outputs), "Int32")
        graph_ops = self._vector(b, graph_m, "Operators", operators, "UOffsetTRelative")
        graph_m.Start(b)
        graph_m.AddTensors(b, graph_tensors)
        graph_m.AddInputs(b, graph_inputs)
        graph_m.AddOutputs(b, graph_outputs)
        graph_m.AddOperators(b, graph_ops)
        graph = graph_m.End(b)
        model_codes = self._vector(b, model_m, "OperatorCodes", codes, "UOffsetTRelative")
        model_graphs = self._vector(b, model_m, "Subgraphs", [graph], "UOffsetTRelative")
        model_buffers = self._vector(b, model_m, "Buffers", buffers, "UOffsetTRelative")
        description = b.CreateString("cnnhw test model")
        model_m.Start(b)
        model_m.AddVersion(b, 3)
        model_m.AddOperatorCodes(b, model_codes)
        model_m.AddSubgraphs(b, model_graphs)
        model_m.AddDescription(b, description)
        model_m.AddBuffers(b, model_buffers)
        b.Finish(model_m.End(b), file_identifier=b"TFL3")
        return bytes(b.Output())
