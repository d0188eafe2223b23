"""What the study kit's manifest says of each integer layer and of each rescaling rule, and the
tensors it writes for them.

:func:`layer_record` gives a layer's entry (op, shapes, formats, scales, the op's parameters) and
its tensors (weights, biases, per-channel constants, tables); :func:`rule_record` a rescaling
rule's constants, by rule set: cnnhw's (``quant/arith.py``), TFLite's (``quant/tflite_arith.py``)
and onnxruntime's (``quant/onnx_arith.py``). Every constant is the QGraph's own: the kit computes
nothing the golden model does not read. The arithmetic each rule names is spelled out in the kit's
``reference.py`` and ``reference.c``.
"""

from __future__ import annotations

import math
from functools import singledispatch

import numpy as np

from ..ir.ops import PoolKind
from ..quant.arith import AverageDivider, IntFormat, Requantizer
from ..quant.onnx_arith import OnnxRequantizer
from ..quant.qgraph import QClamp, QConv, QDense, QGlobalPool, QJoin, QLayer, QLookup, QPool, QReshape
from ..quant.tflite_arith import ADD_LEFT_SHIFT, TFLiteAdd, TFLiteAverage, TFLiteRequantizer
from .tensors import format_facts, format_of

#: A tensor to write: (values, format, the order of its axes).
Tensor = tuple[np.ndarray, IntFormat, str]


def _table(values) -> Tensor:
    values = np.asarray(values, dtype=np.int64)
    return values, format_of(values), "(channel,)"


# ---------------------------------------------------------------------- rescaling rules
@singledispatch
def rule_record(rule) -> tuple[dict, dict[str, Tensor]]:
    """(the rule's scalar constants, its per-index tables) for the manifest's ``rescale``."""
    raise TypeError(f"the study kit has no record of the rule {type(rule).__name__}")


@rule_record.register
def _(rule: Requantizer):
    facts = {"rule": "cnnhw", "shift": rule.shift, "lo": rule.lo, "hi": rule.hi, "rounding": rule.rounding,
             "multipliers": list(rule.multipliers)}
    tensors = {"multipliers": _table(rule.multipliers)}
    if rule.negative_multipliers is not None:
        facts["negative_multipliers"] = list(rule.negative_multipliers)
        tensors["negative_multipliers"] = _table(rule.negative_multipliers)
    return facts, tensors


@rule_record.register
def _(rule: TFLiteRequantizer):
    facts = {"rule": "tflite", "offset": rule.offset, "lo": rule.lo, "hi": rule.hi,
             "single_rounding": rule.single_rounding, "multipliers": list(rule.quantized_multipliers),
             "shifts": list(rule.shifts)}
    return facts, {"multipliers": _table(rule.quantized_multipliers), "shifts": _table(rule.shifts)}


@rule_record.register
def _(rule: OnnxRequantizer):
    facts = {"rule": "onnxruntime", "offset": rule.offset, "lo": rule.lo, "hi": rule.hi,
             "mantissas": list(rule.mantissas), "exponents": list(rule.exponents)}
    return facts, {"mantissas": _table(rule.mantissas), "exponents": _table(rule.exponents)}


@rule_record.register
def _(rule: TFLiteAdd):
    return {"rule": "tflite_add", "left_shift": ADD_LEFT_SHIFT, "input_offsets": list(rule.input_offsets),
            "input_multipliers": list(rule.input_multipliers), "input_shifts": list(rule.input_shifts),
            "output_multiplier": rule.output_multiplier, "output_shift": rule.output_shift, "offset": rule.offset,
            "lo": rule.lo, "hi": rule.hi}, {}


@rule_record.register
def _(rule: AverageDivider):
    return ({"rule": "cnnhw_average", "shift": rule.shift, "rounding": rule.rounding,
             "multipliers": list(rule.multipliers)},
            {"multipliers": (np.asarray(rule.multipliers, dtype=np.int64), format_of(rule.multipliers), "(count,)")})


@rule_record.register
def _(rule: TFLiteAverage):
    return {"rule": "tflite_average", "lo": rule.lo, "hi": rule.hi}, {}


# ---------------------------------------------------------------------- layers
def _common(layer: QLayer) -> dict:
    return {"op": layer.label, "source": layer.source, "out_shape": list(layer.out_shape),
            "out_format": format_facts(layer.out_format), "out_scale": layer.out_scale,
            "out_zero_point": layer.out_zero_point}


def macs(layer: QLayer) -> int:
    """Multiply-accumulates of one image (conv and dense layers; 0 for the others)."""
    if isinstance(layer, QConv):
        return math.prod(layer.out_shape) * math.prod(layer.weight.shape[1:])
    if isinstance(layer, QDense):
        return int(layer.weight.size)
    return 0


@singledispatch
def layer_record(layer: QLayer) -> tuple[dict, dict[str, Tensor]]:
    """(the layer's manifest entry but for its inputs and files, the tensors to write)."""
    raise TypeError(f"the study kit has no record of {type(layer).__name__}")


def _with_rule(entry: dict, tensors: dict, rule, key: str = "rescale") -> None:
    facts, tables = rule_record(rule)
    entry[key] = facts
    tensors.update({f"{key}.{name}": table for name, table in tables.items()})


def _matrix(layer, parameters: dict, weight_order: str, bias_order: str):
    """A conv or dense layer: ``acc = bias + sum(weight * x)`` in ``acc_format``, then its rule."""
    entry = {**_common(layer), **parameters, "activation": layer.activation,
             "weight_format": format_facts(layer.weight_format), "acc_format": format_facts(layer.acc_format),
             "macs": macs(layer)}
    tensors = {"weight": (layer.weight, layer.weight_format, weight_order),
               "bias": (layer.bias, layer.acc_format, bias_order)}
    _with_rule(entry, tensors, layer.requant)
    return entry, tensors


@layer_record.register
def _(layer: QConv):
    parameters = {"kernel": list(layer.kernel), "stride": list(layer.stride), "pads": list(layer.pads),
                  "dilation": list(layer.dilation), "groups": layer.groups, "pad_value": layer.pad_value}
    return _matrix(layer, parameters, "(out channel, in channel of its group, row, column)", "(out channel,)")


@layer_record.register
def _(layer: QDense):
    return _matrix(layer, {}, "(output, input)", "(output,)")


def _pool(layer, parameters: dict):
    """A pooling layer: max, or average with its divider."""
    entry = {**_common(layer), "kind": "max" if layer.kind == PoolKind.MAX else "average", **parameters}
    tensors: dict[str, Tensor] = {}
    if layer.divider is not None:
        _with_rule(entry, tensors, layer.divider, "divide")
    return entry, tensors


@layer_record.register
def _(layer: QPool):
    return _pool(layer, {"kernel": list(layer.kernel), "stride": list(layer.stride), "pads": list(layer.pads),
                         "dilation": list(layer.dilation), "ceil_mode": layer.ceil_mode,
                         "count_include_pad": layer.count_include_pad})


@layer_record.register
def _(layer: QGlobalPool):
    return _pool(layer, {})


@layer_record.register
def _(layer: QReshape):
    return _common(layer), {}


@layer_record.register
def _(layer: QClamp):
    return {**_common(layer), "lo": layer.lo, "hi": layer.hi}, {}


@layer_record.register
def _(layer: QJoin):
    entry = {**_common(layer), "activation": layer.activation}
    tensors: dict[str, Tensor] = {}
    _with_rule(entry, tensors, layer.requant)
    # A join's rule has one multiplier per input, not per channel.
    return entry, {name: (values, fmt, "(input,)") for name, (values, fmt, _) in tensors.items()}


@layer_record.register
def _(layer: QLookup):
    table = np.asarray(layer.table.entries, dtype=np.int64)
    entry = {**_common(layer), "function": layer.function, "table_first_input": layer.table.in_format.lo}
    return entry, {"table": (table, layer.out_format, "(input - table_first_input,)")}


