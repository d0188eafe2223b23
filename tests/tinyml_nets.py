"""The shapes of MLPerf Tiny's other two reference models, written as torch.onnx writes them
(``branchnets._Writer``), with random weights: a MobileNet-style network (MobileNetV1 at width
0.25 on 96x96x3, the visual wake words model: a stride-2 convolution, then 13 depthwise-separable
blocks) and the anomaly-detection dense autoencoder (640 -> 128 x 4 -> 8 -> 128 x 4 -> 640,
whose output is the reconstruction)."""

from __future__ import annotations

import onnx

from branchnets import _Writer

#: MobileNetV1's depthwise-separable blocks at width 0.25: (stride, output channels).
MOBILENET_BLOCKS = ((1, 16), (2, 32), (1, 32), (2, 64), (1, 64), (2, 128),
                    (1, 128), (1, 128), (1, 128), (1, 128), (1, 128), (2, 256), (1, 256))


def mobilenet(seed: int = 3, size: int = 96, classes: int = 2, blocks=MOBILENET_BLOCKS) -> onnx.ModelProto:
    """A 3x3 stride-2 convolution to 8 channels, then each block: a 3x3 depthwise convolution (its
    stride), a 1x1 convolution to the block's channels, each with batch norm and ReLU; global
    average pooling and a linear classifier."""
    w = _Writer(seed)
    x = w.node("Relu", [w.batchnorm(w.conv("input", "/stem", 3, 8, 3, 2), "/stem_bn", 8)], "/stem_relu")
    channels = 8
    for k, (stride, out) in enumerate(blocks):
        block = f"/blocks/blocks.{k}"
        x = w.conv(x, f"{block}/dw", channels, channels, 3, stride, groups=channels)
        x = w.node("Relu", [w.batchnorm(x, f"{block}/dw_bn", channels)], f"{block}/dw_relu")
        x = w.node("Relu", [w.batchnorm(w.conv(x, f"{block}/pw", channels, out, 1), f"{block}/pw_bn", out)],
                   f"{block}/pw_relu")
        channels = out
    x = w.node("Flatten", [w.node("GlobalAveragePool", [x], "/avgpool")], "", axis=1)
    w.node("Gemm", [x, w.tensor("fc.weight", w.rng.normal(size=(classes, channels)) * 0.2),
                    w.tensor("fc.bias", w.rng.normal(size=classes) * 0.1)], "/fc", alpha=1.0, beta=1.0, transB=1)
    return w.model([3, size, size], [classes], "mobilenet")


#: The autoencoder's layer widths, input to output.
AUTOENCODER_WIDTHS = (640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640)


def dense_autoencoder(seed: int = 4, widths=AUTOENCODER_WIDTHS) -> onnx.ModelProto:
    """Linear layers of ``widths``, each but the last with batch norm (BatchNorm1d) and ReLU, as
    MLPerf Tiny's anomaly-detection model; the last layer's output is the reconstruction."""
    w = _Writer(seed)
    x = "input"
    layers = len(widths) - 1
    for k, (c_in, c_out) in enumerate(zip(widths, widths[1:])):
        scope = f"/layers/layers.{k}"
        x = w.node("Gemm", [x, w.tensor(f"layers.{k}.weight", w.rng.normal(size=(c_out, c_in)) * (2 / c_in) ** 0.5),
                            w.tensor(f"layers.{k}.bias", w.rng.normal(size=c_out) * 0.1)],
                   scope, alpha=1.0, beta=1.0, transB=1)
        if k < layers - 1:
            x = w.node("Relu", [w.batchnorm(x, f"{scope}/bn", c_out)], f"{scope}/relu")
    return w.model([widths[0]], [widths[-1]], "dense_autoencoder")
