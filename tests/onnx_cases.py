"""ONNX backend conformance cases for the ops cnnhw imports, prepared for comparison.

The cases come from the installed ``onnx`` package's generators
(``onnx.backend.test.case.node``). Each case model feeds weights as graph inputs; cnnhw
needs them as constants, so every input but the first becomes an initializer holding the
case's own data. The result is the model a framework would export for that layer.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import onnx
from onnx import numpy_helper

from cnnhw.frontend.onnx import SUPPORTED_OPS


@dataclass
class Case:
    name: str
    model: onnx.ModelProto  # weights as initializers, one data input
    x: np.ndarray | None  # the data input, in the model file's layout (None: the case has no input)


@lru_cache(maxsize=1)
def conformance_cases() -> tuple[Case, ...]:
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases()  # it only honours op_type on its first call, so take all and filter
    supported = set(SUPPORTED_OPS) | {"Constant"}
    prepared = []
    for case in cases:
        graph = case.model.graph
        if not graph.node or not {node.op_type for node in graph.node} <= supported:
            continue
        inputs, _outputs = case.data_sets[0]
        model = onnx.ModelProto()
        model.CopyFrom(case.model)
        feeds = list(model.graph.input)
        del model.graph.input[1:]
        for value_info, value in zip(feeds[1:], inputs[1:]):
            model.graph.initializer.append(numpy_helper.from_array(np.asarray(value), value_info.name))
        prepared.append(Case(case.name, model, np.asarray(inputs[0]) if inputs else None))
    return tuple(sorted(prepared, key=lambda c: c.name))
