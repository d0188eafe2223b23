"""Graphs as PyTorch (torch.onnx) and Keras (tf2onnx) write them, built by hand with their node
names, shapes and opsets (neither exporter is installed here): each imports, computes what
onnxruntime computes, and reduces to the layers the hardware has."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cnnhw.errors import CnnhwError
from cnnhw.frontend import load_model
from cnnhw.flow.verilog import export_verilog
from cnnhw.golden import run_float
from cnnhw.plan import default_plan
from cnnhw.quant import QuantOptions, quantize_graph
from cnnhw.sim.runner import simulate_export
from cnnhw.verify import expected_streams
from models import onnxruntime_reference, relative_error

RNG = np.random.default_rng(7)


def _tensor(name: str, value) -> onnx.TensorProto:
    value = np.asarray(value)
    return numpy_helper.from_array(value.astype(np.float32 if value.dtype.kind == "f" else np.int64), name)


def _model(nodes, inputs, output, initializers, opset: int, producer: str, check: bool = True) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "exported", inputs, [output], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name=producer)
    if check:  # a refused model may be one the checker rejects too
        onnx.checker.check_model(model, full_check=True)
    return model


def _imported(model: onnx.ModelProto, x: np.ndarray, tmp_path):
    """The imported graph, after checking its float result against onnxruntime's (``x`` in the
    model file's layout; cnnhw's data files are NCHW)."""
    onnx.save(model, tmp_path / "model.onnx")
    graph = load_model(tmp_path / "model.onnx")
    assert relative_error(run_float(graph, graph.from_file_layout(x)), onnxruntime_reference(model, x)) <= 1e-5
    return graph


def _labels(graph) -> list[str]:
    return [layer.op.label for layer in graph.layers]


def test_pytorch_batchnorm1d_between_unsqueeze_and_squeeze_folds_into_the_dense_layer(tmp_path):
    """torch.onnx, BatchNorm1d after Linear: Gemm -> Unsqueeze(2) -> BatchNormalization ->
    Squeeze(2) -> Relu -> Gemm; the normalisation becomes part of the first Gemm."""
    features = 16
    inits = [_tensor("fc1.weight", RNG.normal(size=(features, 12))), _tensor("fc1.bias", RNG.normal(size=features)),
             _tensor("bn1.weight", RNG.uniform(0.5, 2, features)), _tensor("bn1.bias", RNG.normal(size=features)),
             _tensor("bn1.running_mean", RNG.normal(size=features)),
             _tensor("bn1.running_var", RNG.uniform(0.5, 2, features)),
             _tensor("fc2.weight", RNG.normal(size=(4, features))), _tensor("fc2.bias", RNG.normal(size=4)),
             _tensor("onnx::Unsqueeze_11", [2]), _tensor("onnx::Squeeze_13", [2])]
    nodes = [
        helper.make_node("Gemm", ["input", "fc1.weight", "fc1.bias"], ["/fc1/Gemm_output_0"], "/fc1/Gemm",
                         alpha=1.0, beta=1.0, transB=1),
        helper.make_node("Unsqueeze", ["/fc1/Gemm_output_0", "onnx::Unsqueeze_11"], ["/bn1/Unsqueeze_output_0"],
                         "/bn1/Unsqueeze"),
        helper.make_node("BatchNormalization", ["/bn1/Unsqueeze_output_0", "bn1.weight", "bn1.bias",
                                                "bn1.running_mean", "bn1.running_var"],
                         ["/bn1/BatchNormalization_output_0"], "/bn1/BatchNormalization", epsilon=1e-5,
                         momentum=0.9),
        helper.make_node("Squeeze", ["/bn1/BatchNormalization_output_0", "onnx::Squeeze_13"],
                         ["/bn1/Squeeze_output_0"], "/bn1/Squeeze"),
        helper.make_node("Relu", ["/bn1/Squeeze_output_0"], ["/relu/Relu_output_0"], "/relu/Relu"),
        helper.make_node("Gemm", ["/relu/Relu_output_0", "fc2.weight", "fc2.bias"], ["output"], "/fc2/Gemm",
                         alpha=1.0, beta=1.0, transB=1),
    ]
    model = _model(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 12])],
                   helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 4]), inits, 17, "pytorch")
    x = RNG.normal(size=(5, 12)).astype(np.float32)
    graph = _imported(model, x, tmp_path)
    assert _labels(graph) == ["Dense", "Relu", "Dense"]
    quantize_graph(graph, QuantOptions(), x)  # the hardware's layers: it quantizes


def _keras_pooled_dense(scope: str, x: str, number: int) -> list[onnx.NodeProto]:
    """Keras GlobalAveragePooling2D -> Dense as tf2onnx writes them: GlobalAveragePool, a Squeeze of
    the spatial axes (the initializer ``const_axes__{number + 1}``), MatMul, Add (into ``dense``)."""
    pooled = f"{scope}/global_average_pooling2d/Mean"
    return [helper.make_node("GlobalAveragePool", [x], [f"{pooled}_Squeeze__{number}:0"], pooled),
            helper.make_node("Squeeze", [f"{pooled}_Squeeze__{number}:0", f"const_axes__{number + 1}"],
                             [f"{pooled}:0"], f"{pooled}_Squeeze__{number}"),
            helper.make_node("MatMul", [f"{pooled}:0", "dense/MatMul/ReadVariableOp:0"], [f"{scope}/dense/MatMul:0"],
                             f"{scope}/dense/MatMul"),
            helper.make_node("Add", [f"{scope}/dense/MatMul:0", "dense/BiasAdd/ReadVariableOp:0"], ["dense"],
                             f"{scope}/dense/BiasAdd")]


def test_keras_batchnorm_as_mul_and_add_and_the_squeeze_after_global_pooling(tmp_path):
    """tf2onnx, Keras Conv2D -> BatchNormalization -> ReLU -> GlobalAveragePooling2D -> Dense on an
    NHWC input: the input Transpose, the normalisation as Mul then Add of per-channel constants,
    GlobalAveragePool then Squeeze of the spatial axes, and Dense as MatMul then Add."""
    channels = 6
    inits = [_tensor("conv2d/kernel", RNG.normal(size=(channels, 3, 3, 3))),
             _tensor("conv2d/bias", RNG.normal(size=channels)),
             _tensor("batch_normalization/mul", RNG.uniform(0.5, 2, (1, channels, 1, 1))),
             _tensor("batch_normalization/sub", RNG.normal(size=(1, channels, 1, 1))),
             _tensor("const_axes__21", [2, 3]),
             _tensor("dense/MatMul/ReadVariableOp:0", RNG.normal(size=(channels, 5))),
             _tensor("dense/BiasAdd/ReadVariableOp:0", RNG.normal(size=5))]
    nodes = [
        helper.make_node("Transpose", ["input_1"], ["sequential/conv2d/BiasAdd__6:0"],
                         "sequential/conv2d/BiasAdd__6", perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["sequential/conv2d/BiasAdd__6:0", "conv2d/kernel", "conv2d/bias"],
                         ["sequential/conv2d/BiasAdd:0"], "sequential/conv2d/BiasAdd", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1], group=1),
        helper.make_node("Mul", ["sequential/conv2d/BiasAdd:0", "batch_normalization/mul"],
                         ["sequential/batch_normalization/batchnorm/mul_1:0"],
                         "sequential/batch_normalization/batchnorm/mul_1"),
        helper.make_node("Add", ["sequential/batch_normalization/batchnorm/mul_1:0", "batch_normalization/sub"],
                         ["sequential/batch_normalization/batchnorm/add_1:0"],
                         "sequential/batch_normalization/batchnorm/add_1"),
        helper.make_node("Relu", ["sequential/batch_normalization/batchnorm/add_1:0"], ["sequential/re_lu/Relu:0"],
                         "sequential/re_lu/Relu"),
        *_keras_pooled_dense("sequential", "sequential/re_lu/Relu:0", 20),
    ]
    model = _model(nodes, [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["unk__30", 8, 8, 3])],
                   helper.make_tensor_value_info("dense", TensorProto.FLOAT, ["unk__31", 5]), inits, 13, "tf2onnx")
    x = RNG.uniform(0, 1, size=(4, 8, 8, 3)).astype(np.float32)
    graph = _imported(model, x, tmp_path)
    assert _labels(graph) == ["Conv", "Relu", "GlobalAvgPool", "Reshape", "Dense"]
    # And in hardware: the exported Verilog computes every layer as the golden model does.
    images = graph.from_file_layout(x)
    qgraph = quantize_graph(graph, QuantOptions(), images)
    export = export_verilog(qgraph, default_plan(qgraph), tmp_path / "rtl")
    result = simulate_export(export, expected_streams(qgraph, images), tmp_path / "sim")
    assert result.bit_exact, result.mismatches


@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze_and_unsqueeze_axes_as_attribute_or_input(opset, tmp_path):
    """Before opset 13 the axes are an attribute, from 13 an input; negative axes count from the end."""
    if opset < 13:
        nodes = [helper.make_node("Unsqueeze", ["x"], ["u"], "unsqueeze", axes=[-1]),
                 helper.make_node("Squeeze", ["u"], ["y"], "squeeze", axes=[3])]
        inits = []
    else:
        nodes = [helper.make_node("Unsqueeze", ["x", "minus_one"], ["u"], "unsqueeze"),
                 helper.make_node("Squeeze", ["u", "three"], ["y"], "squeeze")]
        inits = [_tensor("minus_one", [-1]), _tensor("three", [3])]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3])],
                   helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 3]), inits, opset, "test")
    _imported(model, RNG.normal(size=(2, 2, 3)).astype(np.float32), tmp_path)


@pytest.mark.parametrize("node, message", [
    (helper.make_node("Squeeze", ["x"], ["y"], "squeeze", axes=[0]), "removes the batch dimension"),
    (helper.make_node("Unsqueeze", ["x"], ["y"], "unsqueeze", axes=[0]), "adds a dimension before the batch"),
    (helper.make_node("Squeeze", ["x"], ["y"], "squeeze", axes=[1]), "are not all of size 1"),
])
def test_squeeze_and_unsqueeze_that_touch_the_batch_are_refused(node, message, tmp_path):
    model = _model([node], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3])],
                   helper.make_tensor_value_info("y", TensorProto.FLOAT, None), [], 11, "test", check=False)
    onnx.save(model, tmp_path / "model.onnx")
    with pytest.raises(CnnhwError, match=message):
        load_model(tmp_path / "model.onnx")


@pytest.mark.parametrize("pads", [(0, 0, 0, 0), (1, 1, 1, 1)])
def test_a_normalising_sub_and_div_on_the_input_fold_into_the_first_conv(pads, tmp_path):
    """(x - mean) / std on the input, as a Keras Normalization layer writes it, then a conv: one
    affine, folded into the conv's weights and bias. With padding the shift cannot fold (the
    conv's zeros are zeros of the normalised input): the affine stays, and the quantizer makes it a
    depthwise 1x1 convolution of its own."""
    inits = [_tensor("mean", RNG.normal(size=(1, 3, 1, 1))), _tensor("std", RNG.uniform(0.5, 2, (1, 3, 1, 1))),
             _tensor("w", RNG.normal(size=(4, 3, 3, 3))), _tensor("b", RNG.normal(size=4))]
    nodes = [helper.make_node("Sub", ["x", "mean"], ["centred"], "normalization/sub"),
             helper.make_node("Div", ["centred", "std"], ["scaled"], "normalization/truediv"),
             helper.make_node("Conv", ["scaled", "w", "b"], ["y"], "conv", kernel_shape=[3, 3], pads=list(pads))]
    side = 4 if not any(pads) else 6
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 6, 6])],
                   helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, side, side]), inits, 13, "tf2onnx")
    x = RNG.uniform(0, 1, size=(2, 3, 6, 6)).astype(np.float32)
    graph = _imported(model, x, tmp_path)
    assert _labels(graph) == (["Affine", "Conv"] if any(pads) else ["Conv"])
    qgraph = quantize_graph(graph, QuantOptions(), x)
    assert [layer.label for layer in qgraph.layers] == (["Conv", "Conv"] if any(pads) else ["Conv"])


def test_a_scale_and_shift_before_a_dense_layer_fold_into_it(tmp_path):
    inits = [_tensor("scale", RNG.uniform(0.5, 2, (1, 10))), _tensor("shift", RNG.normal(size=(1, 10))),
             _tensor("w", RNG.normal(size=(10, 3)))]
    nodes = [helper.make_node("Mul", ["x", "scale"], ["scaled"], "scale"),
             helper.make_node("Add", ["scaled", "shift"], ["shifted"], "shift"),
             helper.make_node("MatMul", ["shifted", "w"], ["y"], "dense")]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 10])],
                   helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3]), inits, 13, "tf2onnx")
    graph = _imported(model, RNG.normal(size=(3, 10)).astype(np.float32), tmp_path)
    assert _labels(graph) == ["Dense"]


def test_keras_residual_add_and_concatenate_are_joins(tmp_path):
    """tf2onnx, a Keras functional model on an NHWC input: Conv2D -> ReLU, then a residual block
    (Conv2D, BatchNormalization as Mul then Add, ``layers.Add()`` of it and the block's input, ReLU)
    and ``layers.Concatenate()`` of the block's output and its input (tf2onnx's transpose optimizer
    turns the NHWC axis -1 into NCHW axis 1), GlobalAveragePooling2D, Dense."""
    channels = 4
    inits = [_tensor("conv2d/kernel", RNG.normal(size=(channels, 2, 3, 3)) * 0.5),
             _tensor("conv2d/bias", RNG.normal(size=channels) * 0.1),
             _tensor("conv2d_1/kernel", RNG.normal(size=(channels, channels, 3, 3)) * 0.3),
             _tensor("conv2d_1/bias", RNG.normal(size=channels) * 0.1),
             _tensor("batch_normalization/mul", RNG.uniform(0.5, 2, (1, channels, 1, 1))),
             _tensor("batch_normalization/sub", RNG.normal(size=(1, channels, 1, 1)) * 0.1),
             _tensor("const_axes__31", [2, 3]),
             _tensor("dense/MatMul/ReadVariableOp:0", RNG.normal(size=(2 * channels, 3))),
             _tensor("dense/BiasAdd/ReadVariableOp:0", RNG.normal(size=3))]
    conv = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1], group=1)
    nodes = [
        helper.make_node("Transpose", ["input_1"], ["model/conv2d/BiasAdd__6:0"], "model/conv2d/BiasAdd__6",
                         perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["model/conv2d/BiasAdd__6:0", "conv2d/kernel", "conv2d/bias"],
                         ["model/conv2d/BiasAdd:0"], "model/conv2d/BiasAdd", **conv),
        helper.make_node("Relu", ["model/conv2d/BiasAdd:0"], ["model/re_lu/Relu:0"], "model/re_lu/Relu"),
        helper.make_node("Conv", ["model/re_lu/Relu:0", "conv2d_1/kernel", "conv2d_1/bias"],
                         ["model/conv2d_1/BiasAdd:0"], "model/conv2d_1/BiasAdd", **conv),
        helper.make_node("Mul", ["model/conv2d_1/BiasAdd:0", "batch_normalization/mul"],
                         ["model/batch_normalization/batchnorm/mul_1:0"], "model/batch_normalization/batchnorm/mul_1"),
        helper.make_node("Add", ["model/batch_normalization/batchnorm/mul_1:0", "batch_normalization/sub"],
                         ["model/batch_normalization/batchnorm/add_1:0"], "model/batch_normalization/batchnorm/add_1"),
        helper.make_node("Add", ["model/batch_normalization/batchnorm/add_1:0", "model/re_lu/Relu:0"],
                         ["model/add/add:0"], "model/add/add"),
        helper.make_node("Relu", ["model/add/add:0"], ["model/re_lu_1/Relu:0"], "model/re_lu_1/Relu"),
        helper.make_node("Concat", ["model/re_lu_1/Relu:0", "model/re_lu/Relu:0"], ["model/concatenate/concat:0"],
                         "model/concatenate/concat", axis=1),
        *_keras_pooled_dense("model", "model/concatenate/concat:0", 30),
    ]
    model = _model(nodes, [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["unk__40", 6, 6, 2])],
                   helper.make_tensor_value_info("dense", TensorProto.FLOAT, ["unk__41", 3]), inits, 13, "tf2onnx")
    x = RNG.uniform(0, 1, size=(4, 6, 6, 2)).astype(np.float32)
    graph = _imported(model, x, tmp_path)
    assert _labels(graph) == ["Conv", "Relu", "Conv", "Add", "Relu", "Concat", "GlobalAvgPool", "Reshape", "Dense"]
    reads = {layer.op.name: layer.inputs for layer in graph.layers}
    # The batch normalisation folded into the conv on the residual branch (the Add reads it).
    assert reads["model/add/add"] == ("model/conv2d_1/BiasAdd", "model/re_lu/Relu")
    assert reads["model/concatenate/concat"] == ("model/re_lu_1/Relu", "model/re_lu/Relu")


def test_keras_flatten_as_transpose_then_reshape_folds_into_the_dense_weights(tmp_path):
    """tf2onnx writes a Keras Flatten of an NCHW tensor as Transpose to NHWC then Reshape: the
    transpose becomes a permutation of the dense layer's columns, and the graph is
    Conv, Relu, MaxPool, flatten, Dense."""
    inits = [_tensor("conv2d/kernel", RNG.normal(size=(4, 1, 3, 3))), _tensor("conv2d/bias", RNG.normal(size=4)),
             _tensor("const_fold_opt__12", [-1, 36]), _tensor("dense/kernel", RNG.normal(size=(36, 3))),
             _tensor("dense/bias", RNG.normal(size=3))]
    nodes = [
        helper.make_node("Conv", ["input", "conv2d/kernel", "conv2d/bias"], ["sequential/conv2d/BiasAdd:0"],
                         "sequential/conv2d/BiasAdd", kernel_shape=[3, 3]),
        helper.make_node("Relu", ["sequential/conv2d/BiasAdd:0"], ["sequential/conv2d/Relu:0"], "sequential/conv2d/Relu"),
        helper.make_node("MaxPool", ["sequential/conv2d/Relu:0"], ["sequential/max_pooling2d/MaxPool:0"],
                         "sequential/max_pooling2d/MaxPool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Transpose", ["sequential/max_pooling2d/MaxPool:0"],
                         ["sequential/max_pooling2d/MaxPool__15:0"], "sequential/max_pooling2d/MaxPool__15",
                         perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["sequential/max_pooling2d/MaxPool__15:0", "const_fold_opt__12"],
                         ["sequential/flatten/Reshape:0"], "sequential/flatten/Reshape"),
        helper.make_node("MatMul", ["sequential/flatten/Reshape:0", "dense/kernel"], ["sequential/dense/MatMul:0"],
                         "sequential/dense/MatMul"),
        helper.make_node("Add", ["sequential/dense/MatMul:0", "dense/bias"], ["dense"], "sequential/dense/BiasAdd"),
    ]
    model = _model(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["unk__20", 1, 8, 8])],
                   helper.make_tensor_value_info("dense", TensorProto.FLOAT, ["unk__21", 3]), inits, 13, "tf2onnx")
    x = RNG.uniform(0, 1, size=(3, 1, 8, 8)).astype(np.float32)
    graph = _imported(model, x, tmp_path)
    assert _labels(graph) == ["Conv", "Relu", "MaxPool", "Reshape", "Dense"]
    quantize_graph(graph, QuantOptions(), x)


def test_a_transpose_the_hardware_cannot_stream_is_refused_on_import(tmp_path):
    inits = [_tensor("w", RNG.normal(size=(2, 1, 3, 3)))]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], "conv", kernel_shape=[3, 3]),
             helper.make_node("Transpose", ["c"], ["y"], "to_nhwc", perm=[0, 2, 3, 1])]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 6, 6])],
                   helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 4, 2]), inits, 13, "test")
    onnx.save(model, tmp_path / "model.onnx")
    with pytest.raises(CnnhwError, match="Transpose node 'to_nhwc' reorders each image.*before a flatten into a dense"):
        load_model(tmp_path / "model.onnx")


@pytest.mark.parametrize("opset", [9, 13])
def test_an_explicit_zero_pad_becomes_the_next_convolutions_padding(opset, tmp_path):
    """PyTorch's ZeroPad2d / Keras' ZeroPadding2D: Pad (pads an attribute before opset 11, an
    input since) then Conv; the conv pads instead, asymmetrically too."""
    pads = [0, 0, 1, 2, 0, 0, 3, 0]  # N, C, H, W begins, then ends
    inits = [_tensor("w", RNG.normal(size=(2, 3, 3, 3)))]
    if opset < 11:
        pad = helper.make_node("Pad", ["x"], ["padded"], "/pad/Pad", mode="constant", pads=pads)
    else:
        pad = helper.make_node("Pad", ["x", "pads"], ["padded"], "/pad/Pad", mode="constant")
        inits.append(_tensor("pads", pads))
    nodes = [pad, helper.make_node("Conv", ["padded", "w"], ["y"], "/conv/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 5, 5])],
                   helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 9, 7]), inits, opset, "pytorch")
    graph = _imported(model, RNG.normal(size=(2, 3, 5, 5)).astype(np.float32), tmp_path)
    assert _labels(graph) == ["Conv"] and graph.layers[0].op.pads == (2, 3, 4, 1)


@pytest.mark.parametrize("pad, message", [
    (helper.make_node("Pad", ["x"], ["y"], "edge", mode="edge", pads=[0, 0, 1, 1, 0, 0, 1, 1]), "mode 'edge'"),
    (helper.make_node("Pad", ["x"], ["y"], "ones", pads=[0, 0, 1, 1, 0, 0, 1, 1], value=1.0), "pads with 1"),
    (helper.make_node("Pad", ["x"], ["y"], "channels", pads=[0, 1, 0, 0, 0, 0, 0, 0]), "the batch or the channels"),
    (helper.make_node("Pad", ["x"], ["y"], "alone", pads=[0, 0, 1, 1, 0, 0, 1, 1]), "not followed by a convolution"),
])
def test_pads_the_hardware_cannot_take_are_named(pad, message, tmp_path):
    model = _model([pad], [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 4, 4])],
                   helper.make_tensor_value_info("y", TensorProto.FLOAT, None), [], 9, "test", check=False)
    onnx.save(model, tmp_path / "model.onnx")
    with pytest.raises(CnnhwError, match=message):
        load_model(tmp_path / "model.onnx")


def test_keras_input_reshape_then_transpose_is_the_input_layout(tmp_path):
    """tf2onnx, a Keras model taking (N, 28, 28): Reshape to (N, 28, 28, 1), Transpose to NCHW, Conv.
    The graph computes on (1, 28, 28) images, as every image model's data files hold them."""
    inits = [_tensor("new_shape__10", [-1, 28, 28, 1]), _tensor("conv2d/kernel", RNG.normal(size=(2, 1, 3, 3)))]
    nodes = [
        helper.make_node("Reshape", ["input_1", "new_shape__10"], ["sequential/reshape/Reshape:0"],
                         "sequential/reshape/Reshape"),
        helper.make_node("Transpose", ["sequential/reshape/Reshape:0"], ["sequential/conv2d/Conv2D__6:0"],
                         "sequential/conv2d/Conv2D__6", perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["sequential/conv2d/Conv2D__6:0", "conv2d/kernel"], ["conv"], "sequential/conv2d/Conv2D",
                         kernel_shape=[3, 3]),
    ]
    model = _model(nodes, [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["unk__15", 28, 28])],
                   helper.make_tensor_value_info("conv", TensorProto.FLOAT, ["unk__16", 2, 26, 26]), inits, 13,
                   "tf2onnx")
    x = RNG.uniform(0, 1, size=(2, 28, 28)).astype(np.float32)
    graph = _imported(model, x, tmp_path)
    assert graph.input_shape == (1, 28, 28) and _labels(graph) == ["Conv"]


def test_pytorch_input_view_of_a_flat_vector_is_the_input_layout(tmp_path):
    """torch.onnx, ``x.view(-1, 1, 8, 8)`` of a (N, 64) input before the first conv."""
    inits = [_tensor("/Constant_output_0", [-1, 1, 8, 8]), _tensor("conv.weight", RNG.normal(size=(2, 1, 3, 3)))]
    nodes = [helper.make_node("Reshape", ["input", "/Constant_output_0"], ["/Reshape_output_0"], "/Reshape"),
             helper.make_node("Conv", ["/Reshape_output_0", "conv.weight"], ["output"], "/conv/Conv", kernel_shape=[3, 3])]
    model = _model(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 64])],
                   helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 2, 6, 6]), inits, 17, "pytorch")
    graph = _imported(model, RNG.normal(size=(3, 64)).astype(np.float32), tmp_path)
    assert graph.input_shape == (1, 8, 8) and _labels(graph) == ["Conv"]
