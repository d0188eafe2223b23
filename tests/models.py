"""Small ONNX models built in the tests, and a writer for the same networks as .npz."""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def make_model(nodes, initializers, input_shape, output_shape=None, opset=13, input_name="x", output_name="y",
               elem_type=TensorProto.FLOAT):
    graph = helper.make_graph(
        nodes, "test",
        [helper.make_tensor_value_info(input_name, elem_type, input_shape)],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, output_shape)],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 8)
    return model


def small_cnn(rng, opset=13, batch="N"):
    """conv3x3 (+BN) -> ReLU -> maxpool -> conv 3x3 stride 2, pad -> Clip (ReLU6) -> avgpool ->
    flatten -> Dropout -> Identity -> Gemm -> LeakyRelu -> MatMul + Add -> Softmax.
    Returns (model, arrays)."""
    a = {
        "w1": rng.normal(size=(4, 2, 3, 3)).astype(np.float32), "b1": rng.normal(size=4).astype(np.float32),
        "bn_s": rng.uniform(0.5, 1.5, 4).astype(np.float32), "bn_b": rng.normal(size=4).astype(np.float32),
        "bn_m": rng.normal(size=4).astype(np.float32), "bn_v": rng.uniform(0.5, 2, 4).astype(np.float32),
        "w2": rng.normal(size=(6, 4, 3, 3)).astype(np.float32), "b2": rng.normal(size=6).astype(np.float32),
        "w3": rng.normal(size=(12, 12)).astype(np.float32), "b3": rng.normal(size=12).astype(np.float32),
        "w4": rng.normal(size=(12, 5)).astype(np.float32), "b4": rng.normal(size=5).astype(np.float32),
    }
    clip_inputs = ["c2"]
    initializers = dict(a)
    clip_attrs = {}
    if opset >= 11:
        initializers["lo"], initializers["hi"] = np.float32(0), np.float32(6)
        clip_inputs += ["lo", "hi"]
    else:
        clip_attrs = {"min": 0.0, "max": 6.0}
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("BatchNormalization", ["c1", "bn_s", "bn_b", "bn_m", "bn_v"], ["n1"], epsilon=2.0 ** -10,
                         name="bn1"),
        helper.make_node("Relu", ["n1"], ["a1"], name="relu1"),
        helper.make_node("MaxPool", ["a1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="pool1"),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 0, 1, 0], name="conv2"),
        helper.make_node("Clip", clip_inputs, ["a2"], name="relu6", **clip_attrs),
        helper.make_node("AveragePool", ["a2"], ["p2"], kernel_shape=[2, 2], strides=[1, 1], name="pool2"),
        helper.make_node("Flatten", ["p2"], ["f"], axis=1, name="flatten"),
        helper.make_node("Dropout", ["f"], ["fd"], name="dropout"),
        helper.make_node("Identity", ["fd"], ["fi"], name="identity"),
        helper.make_node("Gemm", ["fi", "w3", "b3"], ["g"], transB=1, name="fc1"),
        helper.make_node("LeakyRelu", ["g"], ["l"], alpha=0.125, name="leaky"),
        helper.make_node("MatMul", ["l", "w4"], ["m"], name="fc2"),
        helper.make_node("Add", ["m", "b4"], ["logits"], name="fc2_bias"),
        helper.make_node("Softmax", ["logits"], ["y"], axis=1, name="softmax"),
    ]
    return make_model(nodes, initializers, [batch, 2, 12, 10], [batch, 5], opset=opset), a


def cifar10_tutorial(rng) -> onnx.ModelProto:
    """The PyTorch CIFAR-10 tutorial network (``Net`` of "Training a classifier"), random weights:
    conv 3->6 5x5, ReLU, max pool 2, conv 6->16 5x5, ReLU, max pool 2, flatten, dense 120, 84, 10."""
    shapes = {"w1": (6, 3, 5, 5), "b1": (6,), "w2": (16, 6, 5, 5), "b2": (16,), "w3": (120, 400), "b3": (120,),
              "w4": (84, 120), "b4": (84,), "w5": (10, 84), "b5": (10,)}
    arrays = {name: (0.2 * rng.normal(size=shape)).astype(np.float32) for name, shape in shapes.items()}
    node = helper.make_node
    nodes = [node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[5, 5], name="conv1"),
             node("Relu", ["c1"], ["r1"], name="relu1"),
             node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="pool1"),
             node("Conv", ["p1", "w2", "b2"], ["c2"], kernel_shape=[5, 5], name="conv2"),
             node("Relu", ["c2"], ["r2"], name="relu2"),
             node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2], name="pool2"),
             node("Flatten", ["p2"], ["f"], axis=1, name="flatten"),
             node("Gemm", ["f", "w3", "b3"], ["g3"], transB=1, name="fc1"), node("Relu", ["g3"], ["r3"], name="relu3"),
             node("Gemm", ["r3", "w4", "b4"], ["g4"], transB=1, name="fc2"), node("Relu", ["g4"], ["r4"], name="relu4"),
             node("Gemm", ["r4", "w5", "b5"], ["y"], transB=1, name="fc3")]
    return make_model(nodes, arrays, ["N", 3, 32, 32], ["N", 10])


def small_cnn_npz(arrays) -> dict:
    """The same network as small_cnn, in cnnhw's .npz format.

    ONNX stores float attributes as float32, so epsilon and alpha are powers of two here: then
    the JSON doubles equal them exactly and both files describe the same arithmetic.
    """
    a = arrays
    architecture = {
        "format": "cnnhw-npz", "version": 1, "input": [2, 12, 10],
        "layers": [
            {"type": "conv", "name": "conv1", "pads": 1},
            {"type": "batchnorm", "name": "bn1", "epsilon": 2.0 ** -10},
            {"type": "relu"},
            {"type": "maxpool", "kernel": 2},
            {"type": "conv", "name": "conv2", "stride": 2, "pads": [1, 0, 1, 0]},
            {"type": "relu6"},
            {"type": "avgpool", "kernel": 2, "stride": 1},
            {"type": "flatten"},
            {"type": "dense", "name": "fc1"},
            {"type": "leakyrelu", "alpha": 0.125},
            {"type": "dense", "name": "fc2"},
            {"type": "softmax"},
        ],
    }
    return {
        "architecture": json.dumps(architecture),
        "conv1.weight": a["w1"], "conv1.bias": a["b1"],
        "bn1.scale": a["bn_s"], "bn1.bias": a["bn_b"], "bn1.mean": a["bn_m"], "bn1.var": a["bn_v"],
        "conv2.weight": a["w2"], "conv2.bias": a["b2"],
        "fc1.weight": a["w3"], "fc1.bias": a["b3"],
        "fc2.weight": a["w4"].T, "fc2.bias": a["b4"],
    }


def onnx_reference(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(model).run(None, {model.graph.input[0].name: x})[0]


def onnxruntime_reference(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {model.graph.input[0].name: x})[0]


def relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    """max |ours - reference| / max |reference|: float reference vs float reference only."""
    assert ours.shape == reference.shape, (ours.shape, reference.shape)
    return float(np.max(np.abs(ours - reference)) / max(float(np.max(np.abs(reference))), 1e-30))


def tiny_cnn(rng, channels: int = 2) -> onnx.ModelProto:
    """The smallest CNN that is still one: conv 3x3 (1 -> ``channels``) -> ReLU -> flatten -> Gemm
    (3 classes), on 1x6x6 images. For tests that build many bitstreams (``cnnhw zoo``)."""
    a = {"w1": rng.normal(size=(channels, 1, 3, 3)).astype(np.float32),
         "b1": rng.normal(size=channels).astype(np.float32),
         "w2": rng.normal(size=(3, channels * 16)).astype(np.float32), "b2": rng.normal(size=3).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], name="conv1"),
             helper.make_node("Relu", ["c1"], ["a1"], name="relu1"),
             helper.make_node("Flatten", ["a1"], ["f"], axis=1, name="flatten"),
             helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], transB=1, name="fc")]
    return make_model(nodes, a, ["N", 1, 6, 6], ["N", 3])
