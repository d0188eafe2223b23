"""What the importers of pre-quantized models (TFLite, ONNX QDQ/QOperator) share: a model read
operator by operator into two graphs at once, the float view (dequantized weights, a
:class:`~cnnhw.ir.Graph`) and the model's own integers (a :class:`~cnnhw.quant.qgraph.QGraph`
whose layers each stand for one float op, their ``source``).

An importer calls :meth:`IntegerGraphBuilder.emit` once per layer, with the float ops the layer
stands for (the last one's output is the layer's) and the float ops they read, and
:meth:`IntegerGraphBuilder.assemble` at the end; for a float model, :meth:`emit_float` and
:meth:`assemble_float`.
"""

from __future__ import annotations

from ..ir import Graph
from ..ir.graph import INPUT
from ..quant.qgraph import InputQuantizer, QGraph, QuantOptions


class IntegerGraphBuilder:
    def __init__(self):
        self.float_ops, self.float_reads, self.layers, self.layer_reads = [], [], [], []
        #: A tensor's key (the importer's: an index, a name) -> the float op (or INPUT) that writes it.
        self.writer: dict = {}

    def emit(self, float_ops, reads, layer, out_key) -> None:
        """The float ops (the first reading ``reads``, each next one the one before) and the layer,
        which writes the tensor ``out_key``."""
        for k, op in enumerate(float_ops):
            self.float_ops.append(op)
            self.float_reads.append(reads if k == 0 else (float_ops[k - 1].name,))
        self.layers.append(layer)
        self.layer_reads.append(tuple(self.layer_of(name) for name in reads))
        self.writer[out_key] = float_ops[-1].name

    def emit_float(self, float_ops, reads, out_key) -> None:
        """Float ops only (a float model, which cnnhw quantizes itself)."""
        for k, op in enumerate(float_ops):
            self.float_ops.append(op)
            self.float_reads.append(reads if k == 0 else (float_ops[k - 1].name,))
        self.writer[out_key] = float_ops[-1].name

    def layer_of(self, float_name: str) -> str:
        """The integer layer whose output is the float op ``float_name``'s (its ``source``)."""
        if float_name == INPUT:
            return INPUT
        return next(layer.name for layer in self.layers if layer.source == float_name)

    def assemble_float(self, name: str, input_shape, source: str, input_name: str, input_perm=None) -> Graph:
        """A float model's graph (no integer model: cnnhw quantizes it)."""
        return Graph(name, tuple(input_shape), tuple(self.float_ops), input_name=input_name, input_perm=input_perm,
                     source=source, op_inputs=tuple(self.float_reads))

    def assemble(self, name: str, input_shape, input_quantizer: InputQuantizer, calibration: str, source: str,
                 input_name: str, input_perm=None, dropped: str = "") -> Graph:
        """The float view, holding the integer model (``Graph.integer_model``); a ``dropped`` final
        op (Softmax) is in the float view and not in the integer model."""
        kept = len(self.float_ops) - bool(dropped)
        integer_graph = Graph(name, tuple(input_shape), tuple(self.float_ops[:kept]),
                              op_inputs=tuple(self.float_reads[:kept]), source=source)
        qgraph = QGraph(integer_graph, input_quantizer, tuple(self.layers), QuantOptions(), calibration, dropped,
                        tuple(self.layer_reads))
        return Graph(name, tuple(input_shape), tuple(self.float_ops), input_name=input_name, input_perm=input_perm,
                     source=source, op_inputs=tuple(self.float_reads), integer_model=qgraph)
