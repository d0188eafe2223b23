"""The float reference against onnx.reference.ReferenceEvaluator on ONNX's own conformance cases.

Every conformance case whose ops cnnhw imports is accounted for: either cnnhw computes
what ONNX's reference computes (relative error <= 1e-5), or it refuses the model with the
specific one-line reason listed here. Nothing is skipped silently.
"""

import numpy as np
import onnx
import pytest

from cnnhw.errors import CnnhwError
from cnnhw.frontend.onnx import load_onnx
from cnnhw.golden import run_float
from models import onnx_reference, relative_error
from onnx_cases import conformance_cases

# Cases outside what a CNN accelerator with batch-1 streaming hardware means, and why.
REFUSED = {
    "test_add": "varies over the batch",  # a different constant per batch element
    "test_sub": "varies over the batch",
    "test_mul": "varies over the batch",
    "test_div": "varies over the batch",
    "test_squeeze": "removes the batch dimension",
    "test_unsqueeze_axis_0": "adds a dimension before the batch",
    "test_constant_pad": "pads with 1.2",  # zeros only: they become a convolution's padding
    "test_constant_pad_axes": "names the axes it pads",
    "test_constant_pad_negative_axes": "names the axes it pads",
    "test_gemm_default_matrix_bias": "varies over the batch",
    "test_constant": "needs exactly one image input",
    "test_identity_opt": "is not a tensor",
    "test_identity_sequence": "is not a tensor",
    "test_flatten_axis0": "mixes the batch dimension",
    "test_flatten_axis2": "mixes the batch dimension",
    "test_flatten_axis3": "mixes the batch dimension",
    "test_flatten_negative_axis1": "mixes the batch dimension",
    "test_flatten_negative_axis2": "mixes the batch dimension",
    "test_flatten_negative_axis4": "mixes the batch dimension",
    "test_matmul_3d": "MatMul as a dense layer only",
    "test_matmul_4d": "MatMul as a dense layer only",
    "test_matmul_4d_1d": "MatMul as a dense layer only",
    "test_matmul_bcast": "MatMul as a dense layer only",
    "test_reshape_allowzero_reordered": "changing the batch dimension",
    "test_reshape_one_dim": "changing the batch dimension",
    "test_reshape_reordered_all_dims": "changing the batch dimension",
    "test_reshape_negative_extended_dims": "moves data between images",
    "test_softmax_axis_0": "the batch",
    "test_hardswish_expanded": "only to add or concatenate them",  # x * HardSigmoid(x): a product of two tensors
    "test_training_dropout": "training mode",
    "test_training_dropout_default": "training mode",
    "test_training_dropout_zero_ratio": "training mode",
}


def expected_refusal(case) -> str | None:
    """Why cnnhw refuses this case (a fragment of its error line), or None if it must match."""
    if case.name in REFUSED:
        return REFUSED[case.name]
    graph = case.model.graph
    if len(graph.output) > 1:
        return "needs exactly one output"  # MaxPool indices, Dropout mask, BatchNorm training stats
    data = graph.input[0].type.tensor_type
    if data.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16):
        return "cnnhw takes float inputs"
    if len(data.shape.dim) < 2:
        return "needs a batch dimension first"
    if any(node.op_type in ("MaxPool", "AveragePool") for node in graph.node) and len(data.shape.dim) != 4:
        return "supports 2-D windows only"  # 1-D and 3-D pooling
    if any(node.op_type == "Concat" for node in graph.node):
        return "concatenates a constant"  # every input but the first became an initializer
    return None


CASES = conformance_cases()


def test_the_suite_covers_every_supported_op():
    ops = {node.op_type for case in CASES if expected_refusal(case) is None for node in case.model.graph.node}
    assert ops >= {"Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Gemm", "MatMul",
                   "Add", "Relu", "Clip", "LeakyRelu", "BatchNormalization", "Flatten", "Reshape", "Transpose",
                   "Softmax", "Identity", "Dropout", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Selu"}
    assert sum(expected_refusal(case) is None for case in CASES) >= 70


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_conformance_case(case, tmp_path):
    path = tmp_path / f"{case.name}.onnx"
    onnx.save(case.model, path)
    refusal = expected_refusal(case)
    if refusal is not None:
        with pytest.raises(CnnhwError, match=refusal):
            load_onnx(path)
        return
    graph = load_onnx(path)
    ours = run_float(graph, graph.from_file_layout(case.x))
    reference = onnx_reference(case.model, case.x)
    assert relative_error(ours, reference.astype(np.float64)) <= 1e-5
