"""Networks with branches, written as torch.onnx writes them (its node names, opset 17): a
ResNet-style network, an Inception-style Concat network, and a network whose two branches differ
in latency by several rows."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class _Writer:
    """Nodes and initializers of one exported model, with PyTorch's naming."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []

    def tensor(self, name: str, value) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], scope: str, **attrs) -> str:
        output = f"{scope}/{op}_output_0"
        self.nodes.append(helper.make_node(op, inputs, [output], f"{scope}/{op}", **attrs))
        return output

    def conv(self, x: str, scope: str, c_in: int, c_out: int, kernel: int, stride: int = 1, bias: bool = False,
             groups: int = 1) -> str:
        fan_in = c_in // groups * kernel * kernel
        weight = self.tensor(f"{scope[1:].replace('/', '.')}.weight",
                             self.rng.normal(size=(c_out, c_in // groups, kernel, kernel)) * (2 / fan_in) ** 0.5)
        inputs = [x, weight]
        if bias:
            inputs.append(self.tensor(f"{scope[1:].replace('/', '.')}.bias", self.rng.normal(size=c_out) * 0.1))
        pad = kernel // 2
        return self.node("Conv", inputs, scope, kernel_shape=[kernel, kernel], strides=[stride, stride],
                         pads=[pad] * 4, dilations=[1, 1], group=groups)

    def batchnorm(self, x: str, scope: str, channels: int) -> str:
        name = scope[1:].replace("/", ".")
        params = [self.tensor(f"{name}.weight", self.rng.uniform(0.5, 1.5, channels)),
                  self.tensor(f"{name}.bias", self.rng.normal(size=channels) * 0.1),
                  self.tensor(f"{name}.running_mean", self.rng.normal(size=channels) * 0.1),
                  self.tensor(f"{name}.running_var", self.rng.uniform(0.5, 1.5, channels))]
        return self.node("BatchNormalization", [x, *params], scope, epsilon=1e-5, momentum=0.9)

    def model(self, x_shape, y_shape, name: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                    ["batch", *x_shape])],
                                  [helper.make_tensor_value_info(self.nodes[-1].output[0], TensorProto.FLOAT,
                                                                 ["batch", *y_shape])], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="pytorch")
        onnx.checker.check_model(model, full_check=True)
        return model


def resnet(seed: int = 0, size: int = 12, width: int = 8, classes: int = 10) -> onnx.ModelProto:
    """A stem conv, two residual stages (the second strided, with a strided 1x1 projection on its
    skip path), global average pooling and a linear classifier, as torchvision's BasicBlock."""
    w = _Writer(seed)
    x = w.node("Relu", [w.batchnorm(w.conv("input", "/conv1", 3, width, 3), "/bn1", width)], "/relu")
    for stage, (c_in, c_out, stride) in enumerate([(width, width, 1), (width, 2 * width, 2)], start=1):
        block = f"/layer{stage}/layer{stage}.0"
        h = w.node("Relu", [w.batchnorm(w.conv(x, f"{block}/conv1", c_in, c_out, 3, stride), f"{block}/bn1", c_out)],
                   f"{block}/relu")
        h = w.batchnorm(w.conv(h, f"{block}/conv2", c_out, c_out, 3), f"{block}/bn2", c_out)
        skip = x
        if stride != 1 or c_in != c_out:
            skip = w.batchnorm(w.conv(x, f"{block}/downsample/downsample.0", c_in, c_out, 1, stride),
                               f"{block}/downsample/downsample.1", c_out)
        x = w.node("Relu", [w.node("Add", [h, skip], block)], f"{block}/relu_1")
    x = w.node("Flatten", [w.node("GlobalAveragePool", [x], "/avgpool")], "", axis=1)
    w.node("Gemm", [x, w.tensor("fc.weight", w.rng.normal(size=(classes, 2 * width)) * 0.3),
                    w.tensor("fc.bias", w.rng.normal(size=classes) * 0.1)], "/fc", alpha=1.0, beta=1.0, transB=1)
    return w.model([3, size, size], [classes], "resnet")


def inception(seed: int = 1, size: int = 10, classes: int = 6) -> onnx.ModelProto:
    """A stem conv, then an Inception block: 1x1, 1x1 -> 3x3, and 3x3 max pool -> 1x1 branches
    concatenated along the channels, then a 1x1 conv, global average pooling, a classifier."""
    w = _Writer(seed)
    x = w.node("Relu", [w.conv("input", "/stem", 2, 6, 3, bias=True)], "/stem_relu")
    b1 = w.node("Relu", [w.conv(x, "/branch1", 6, 4, 1, bias=True)], "/branch1_relu")
    b2 = w.node("Relu", [w.conv(x, "/branch2a", 6, 3, 1, bias=True)], "/branch2a_relu")
    b2 = w.node("Relu", [w.conv(b2, "/branch2b", 3, 5, 3, bias=True)], "/branch2b_relu")
    b3 = w.node("MaxPool", [x], "/branch3_pool", kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
    b3 = w.node("Relu", [w.conv(b3, "/branch3", 6, 2, 1, bias=True)], "/branch3_relu")
    x = w.node("Concat", [b1, b2, b3], "/concat", axis=1)
    x = w.node("Relu", [w.conv(x, "/mix", 11, 8, 1, bias=True)], "/mix_relu")
    x = w.node("Flatten", [w.node("GlobalAveragePool", [x], "/avgpool")], "", axis=1)
    w.node("Gemm", [x, w.tensor("fc.weight", w.rng.normal(size=(classes, 8)) * 0.4),
                    w.tensor("fc.bias", w.rng.normal(size=classes) * 0.1)], "/fc", alpha=1.0, beta=1.0, transB=1)
    return w.model([2, size, size], [classes], "inception")


def long_and_short(seed: int = 2, size: int = 12, depth: int = 3, classes: int = 4) -> onnx.ModelProto:
    """A residual whose long path is ``depth`` 3x3 convs (each a row later than the one before)
    and whose short path is the fork itself: the join waits ``depth`` rows for the long path."""
    w = _Writer(seed)
    x = w.node("Relu", [w.conv("input", "/stem", 1, 4, 3, bias=True)], "/stem_relu")
    h = x
    for k in range(depth):
        h = w.conv(h, f"/long{k}", 4, 4, 3, bias=True)
        if k < depth - 1:
            h = w.node("Relu", [h], f"/long{k}_relu")
    x = w.node("Relu", [w.node("Add", [x, h], "/join")], "/join_relu")
    x = w.node("Flatten", [w.node("GlobalMaxPool", [x], "/pool")], "", axis=1)
    w.node("Gemm", [x, w.tensor("fc.weight", w.rng.normal(size=(classes, 4))),
                    w.tensor("fc.bias", w.rng.normal(size=classes) * 0.1)], "/fc", alpha=1.0, beta=1.0, transB=1)
    return w.model([1, size, size], [classes], "long_and_short")


BRANCH_NETWORKS = {"resnet": resnet, "inception": inception, "long_and_short": long_and_short}
