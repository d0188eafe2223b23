"""Robustness of model loading (``cnnhw inspect --model M``, sometimes ``quantize``): external
data never read outside the model's folder (nor probed: the message is the same whether the
target exists), model paths that are not regular files, malformed .npz architectures, ONNX
attributes out of range, names that are not plain text, and huge or slow models."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from models import make_model
from robust import (anyof, Case, check, params, run_case, run_cnnhw, save_npz, snapshot)

O = "outside the model's folder"
W_BYTES = np.ones(18, np.float32).tobytes()  # the conv weight (2, 1, 3, 3)


def save_model(model: onnx.ModelProto, path: Path) -> None:
    """The bytes as they are (onnx.save would touch external data)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())


def conv_model(nodes=None, shape=("N", 1, 8, 8), weight=None, opset=13, initializers=None):
    """x (N, 1, 8, 8) -> Conv 3x3 -> y (parts replaceable)."""
    nodes = nodes or [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")]
    inits = {"w": np.ones((2, 1, 3, 3), np.float32) if weight is None else weight}
    if initializers is not None:
        inits = initializers
    return make_model(nodes, inits, list(shape), opset=opset)


def externalize(tensor: TensorProto, location: str, **entries) -> None:
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.ClearField("int64_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value=location)
    for key, value in entries.items():
        tensor.external_data.add(key=key, value=str(value))


def sparse_weight(external_part: str | None, location: str | None, name: str = "w"):
    values = numpy_helper.from_array(np.ones(3, np.float32), name)
    indices = numpy_helper.from_array(np.array([0, 4, 8], np.int64), f"{name}_indices")
    if external_part == "values":
        externalize(values, location)
    elif external_part == "indices":
        externalize(indices, location)
    return helper.make_sparse_tensor(values, indices, [2, 1, 3, 3])


# ---------------------------------------------------------------- models with external data

def ext_initializer(location):
    model = conv_model()
    externalize(model.graph.initializer[0], location)
    return model


def ext_sparse_initializer(location, part="values"):
    model = conv_model(initializers={})
    model.graph.sparse_initializer.append(sparse_weight(part, location))
    return model


def ext_constant_sparse(location):
    nodes = [helper.make_node("Constant", [], ["w"], name="const", sparse_value=sparse_weight("values", location)),
             helper.make_node("Conv", ["x", "w"], ["y"], name="conv")]
    return conv_model(nodes=nodes, initializers={})


def ext_constant_dense(location):
    tensor = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "wt")
    externalize(tensor, location)
    nodes = [helper.make_node("Constant", [], ["w"], name="const", value=tensor),
             helper.make_node("Conv", ["x", "w"], ["y"], name="conv")]
    return conv_model(nodes=nodes, initializers={})


def _if_model(then_graph, else_graph):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=then_graph, else_branch=else_graph)]
    inits = {"w": np.ones((2, 1, 3, 3), np.float32), "cond": np.array(True)}
    return conv_model(nodes=nodes, initializers=inits)


def ext_if_initializer(location):
    t = numpy_helper.from_array(np.ones(1, np.float32), "t")
    externalize(t, location)
    then_graph = helper.make_graph([helper.make_node("Add", ["c", "t"], ["then_out"])], "then", [],
                                   [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, None)], initializer=[t])
    else_graph = helper.make_graph([helper.make_node("Identity", ["c"], ["else_out"])], "else", [],
                                   [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, None)])
    return _if_model(then_graph, else_graph)


def ext_if_constant(location):
    t = numpy_helper.from_array(np.ones(1, np.float32), "tc")
    externalize(t, location)
    then_graph = helper.make_graph([helper.make_node("Identity", ["c"], ["then_out"])], "then", [],
                                   [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, None)])
    else_graph = helper.make_graph([helper.make_node("Constant", [], ["k"], value=t),
                                    helper.make_node("Add", ["c", "k"], ["else_out"])], "else", [],
                                   [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, None)])
    return _if_model(then_graph, else_graph)


def ext_if_sparse_constant(location):
    then_graph = helper.make_graph(
        [helper.make_node("Constant", [], ["k"], sparse_value=sparse_weight("values", location, "k")),
         helper.make_node("Add", ["c", "k"], ["then_out"])], "then", [],
        [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, None)])
    else_graph = helper.make_graph([helper.make_node("Identity", ["c"], ["else_out"])], "else", [],
                                   [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, None)])
    return _if_model(then_graph, else_graph)


EXTERNAL_KINDS = {
    # kind: (model maker, location from (root) -> str)
    "initializer-parent": (ext_initializer, lambda root: "../secret.bin"),
    "initializer-absolute": (ext_initializer, lambda root: str(root / "secret.bin")),
    "initializer-down-and-up": (ext_initializer, lambda root: "sub/../../secret.bin"),
    "initializer-far-up": (ext_initializer, lambda root: "../" * 40 + str(root / "secret.bin").lstrip("/")),
    "sparse-initializer-values": (ext_sparse_initializer, lambda root: "../secret.bin"),
    "sparse-initializer-indices": (lambda loc: ext_sparse_initializer(loc, "indices"), lambda root: "../secret.bin"),
    "constant-sparse-value": (ext_constant_sparse, lambda root: "../secret.bin"),
    "constant-dense-value": (ext_constant_dense, lambda root: str(root / "secret.bin")),
    "if-branch-initializer": (ext_if_initializer, lambda root: "../secret.bin"),
    "if-branch-constant": (ext_if_constant, lambda root: "../secret.bin"),
    "if-branch-sparse-constant": (ext_if_sparse_constant, lambda root: "sub/../../secret.bin"),
}


def external_setup(kind, target=None):
    """model/m.onnx refers to ROOT/secret.bin; ``target``: None (absent), "file" or "fifo"."""
    make, location = EXTERNAL_KINDS[kind]

    def setup(root):
        save_model(make(location(root)), root / "model" / "m.onnx")
        if target == "file":
            (root / "secret.bin").write_bytes(W_BYTES)
        elif target == "fifo":
            os.mkfifo(root / "secret.bin")
        return ["inspect", "--model", "model/m.onnx"]
    return setup


@pytest.mark.parametrize("kind", list(EXTERNAL_KINDS))
def test_external_data_outside_is_refused_without_probing(kind, tmp_path):
    """Absent target, a file, a FIFO (opening it would hang): the same single line each time."""
    lines = {}
    for target in ("absent", "file", "fifo"):
        root = tmp_path / target
        root.mkdir()
        argv = external_setup(kind, None if target == "absent" else target)(root)
        before = snapshot(root)
        result = run_cnnhw(argv, root, timeout=30)
        check(result, "error", [O], before, snapshot(root))
        lines[target] = result.error_lines[0].replace(str(root), "<TMP>")
    assert lines["absent"] == lines["file"] == lines["fifo"], f"the message depends on the target: {lines}"


# ---------------------------------------------------------------- external data inside the folder

def inside(location, prepare, **entries):
    def setup(tmp):
        model = conv_model()
        externalize(model.graph.initializer[0], location, **entries)
        save_model(model, tmp / "model" / "m.onnx")
        prepare(tmp)
        return ["inspect", "--model", "model/m.onnx"]
    return setup


def nothing(tmp):
    pass


def weights_file(tmp):
    (tmp / "model" / "weights.bin").write_bytes(W_BYTES)


EXTERNAL = [
    Case("external-etc-hostname", inside("/etc/hostname", nothing), "error", O),
    Case("external-etc-passwd-far-up", inside("../../../../../../../../../../etc/passwd", nothing), "error", O),
    Case("external-symlink-to-etc-hostname", inside("weights.bin", lambda tmp: os.symlink(
        "/etc/hostname", tmp / "model" / "weights.bin")), "error", O),
    Case("external-symlink-to-parent-file", inside("weights.bin", lambda tmp: (
        (tmp / "secret.bin").write_bytes(W_BYTES), os.symlink("../secret.bin", tmp / "model" / "weights.bin"))),
         "error", O),
    Case("external-symlinked-subfolder", inside("sub/weights.bin", lambda tmp: (
        (tmp / "elsewhere").mkdir(), (tmp / "elsewhere" / "weights.bin").write_bytes(W_BYTES),
        os.symlink("../elsewhere", tmp / "model" / "sub"))), "error", O),
    Case("external-symlink-to-fifo-outside", inside("weights.bin", lambda tmp: (
        os.mkfifo(tmp / "pipe"), os.symlink("../pipe", tmp / "model" / "weights.bin"))), "error", O, timeout=30),
    Case("external-fifo-inside", inside("weights.bin", lambda tmp: os.mkfifo(tmp / "model" / "weights.bin")),
         "error", "not a regular file", timeout=30),
    Case("external-char-device-inside", inside("weights.bin", lambda tmp: _mknod(tmp / "model" / "weights.bin")),
         "error", "not a regular file", timeout=30),
    Case("external-folder-inside", inside("data", lambda tmp: (tmp / "model" / "data").mkdir()), "error",
         anyof("folder", "not a regular file")),
    Case("external-model-folder-itself", inside(".", nothing), "error", "'w'"),
    Case("external-empty-location", inside("", nothing), "error", "'w'"),
    Case("external-location-with-nul", inside("w\x00.bin", nothing), "error", "'w'"),
    Case("external-the-model-file-itself", inside("m.onnx", nothing), "error", "'w'"),
    Case("external-offset-beyond-file", inside("weights.bin", weights_file, offset=1_000_000), "error",
         anyof("truncated", "'w'")),
    Case("external-negative-length", inside("weights.bin", weights_file, length=-5), "error", "'w'"),
    Case("external-offset-not-a-number", inside("weights.bin", weights_file, offset="abc"), "error", "'w'"),
    Case("external-huge-length", inside("weights.bin", weights_file, length=10 ** 15), "error", "'w'"),
]


def _mknod(path):
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 5))  # like /dev/zero
    except PermissionError:
        pytest.skip("making a device node needs root")


# ---------------------------------------------------------------- the model path itself

def model_path(name, prepare):
    def setup(tmp):
        prepare(tmp)
        return ["inspect", "--model", name]
    return setup


MODEL_PATH = [
    Case("model-onnx-fifo", model_path("m.onnx", lambda tmp: os.mkfifo(tmp / "m.onnx")), "error", "not a regular file",
         timeout=30),
    Case("model-npz-fifo", model_path("m.npz", lambda tmp: os.mkfifo(tmp / "m.npz")), "error", "not a regular file",
         timeout=30),
    Case("model-onnx-folder", model_path("m.onnx", lambda tmp: (tmp / "m.onnx").mkdir()), "error", "folder"),
    Case("model-npz-folder", model_path("m.npz", lambda tmp: (tmp / "m.npz").mkdir()), "error", "folder"),
    Case("model-onnx-char-device", model_path("m.onnx", lambda tmp: _mknod(tmp / "m.onnx")), "error",
         "not a regular file", timeout=30),
    Case("model-symlink-to-fifo", model_path("m.onnx", lambda tmp: (os.mkfifo(tmp / "pipe"),
                                                                    os.symlink("pipe", tmp / "m.onnx"))),
         "error", "not a regular file", timeout=30),
    Case("model-dangling-symlink", model_path("m.onnx", lambda tmp: os.symlink("nowhere.onnx", tmp / "m.onnx")),
         "error", "m.onnx"),
    Case("model-quantize-fifo", lambda tmp: (os.mkfifo(tmp / "m.onnx"), ["quantize", "--model", "m.onnx"])[-1],
         "error", "not a regular file", timeout=30),
]


# ---------------------------------------------------------------- malformed .npz architectures

def npz_layers(kind):
    conv = {"type": "conv", "name": "conv1"}
    if kind == "bn":
        return [conv, {"type": "batchnorm", "name": "bn"}, {"type": "relu"}, {"type": "flatten"},
                {"type": "dense", "name": "fc"}], 72
    if kind == "leaky":
        return [conv, {"type": "leakyrelu", "alpha": 0.125}, {"type": "flatten"}, {"type": "dense", "name": "fc"}], 72
    if kind == "clip":
        return [conv, {"type": "clip", "min": 0, "max": 6}, {"type": "flatten"}, {"type": "dense", "name": "fc"}], 72
    if kind in ("maxpool", "avgpool"):
        return [conv, {"type": "relu"}, {"type": kind, "kernel": 2}, {"type": "flatten"},
                {"type": "dense", "name": "fc"}], 18
    return [conv, {"type": "relu"}, {"type": "flatten"}, {"type": "dense", "name": "fc"}], 72


def npz_model(kind="base", layer=None, edit=None, top=None, architecture=None):
    """A .npz model (the README's format): ``layer``: (index, {key: value}) merged into that layer
    (value ... deletes the key); ``top``: keys merged into the architecture; ``edit(arch)``;
    ``architecture``: the architecture array as given."""
    def setup(tmp):
        layers, features = npz_layers(kind)
        arch = {"format": "cnnhw-npz", "version": 1, "input": [1, 8, 8], "layers": layers}
        if layer is not None:
            index, changes = layer
            for key, value in changes.items():
                if value is ...:
                    layers[index].pop(key, None)
                else:
                    layers[index][key] = value
        if top is not None:
            for key, value in top.items():
                if value is ...:
                    arch.pop(key, None)
                else:
                    arch[key] = value
        if edit is not None:
            arch = edit(arch)
        arrays = {"conv1.weight": np.ones((2, 1, 3, 3), np.float32), "conv1.bias": np.zeros(2, np.float32),
                  "fc.weight": np.ones((10, features), np.float32), "fc.bias": np.zeros(10, np.float32)}
        if kind == "bn":
            arrays.update({"bn.scale": np.ones(2, np.float32), "bn.bias": np.zeros(2, np.float32),
                           "bn.mean": np.zeros(2, np.float32), "bn.var": np.ones(2, np.float32)})
        given = json.dumps(arch) if architecture is None else architecture
        save_npz(tmp / "net.npz", architecture=given, **arrays)
        return ["inspect", "--model", "net.npz"]
    return setup


NAN = float("nan")
NPZ = [
    Case("npz-type-a-list", npz_model(layer=(0, {"type": ["conv"]})), "error", "'type'"),
    Case("npz-type-a-number", npz_model(layer=(0, {"type": 5})), "error", "'type'"),
    Case("npz-type-null", npz_model(layer=(1, {"type": None})), "error", "'type'"),
    Case("npz-type-missing", npz_model(layer=(1, {"type": ...})), "error", "'type'"),
    Case("npz-epsilon-a-string", npz_model("bn", layer=(1, {"epsilon": "abc"})), "error", "'epsilon'"),
    Case("npz-epsilon-negative", npz_model("bn", layer=(1, {"epsilon": -1})), "error", "'epsilon'"),
    Case("npz-epsilon-nan", npz_model("bn", layer=(1, {"epsilon": NAN})), "error", "'epsilon'"),
    Case("npz-epsilon-a-list", npz_model("bn", layer=(1, {"epsilon": [1e-5]})), "error", "'epsilon'"),
    Case("npz-alpha-null", npz_model("leaky", layer=(1, {"alpha": None})), "error", "'alpha'"),
    Case("npz-alpha-nan", npz_model("leaky", layer=(1, {"alpha": NAN})), "error", "'alpha'"),
    Case("npz-alpha-infinity", npz_model("leaky", layer=(1, {"alpha": float("inf")})), "error", "'alpha'"),
    Case("npz-alpha-a-string", npz_model("leaky", layer=(1, {"alpha": "0.1"})), "error", "'alpha'"),
    Case("npz-ceil-mode-a-string", npz_model("maxpool", layer=(2, {"ceil_mode": "false"})), "error", "'ceil_mode'"),
    Case("npz-ceil-mode-an-int", npz_model("maxpool", layer=(2, {"ceil_mode": 0})), "error", "'ceil_mode'"),
    Case("npz-count-include-pad-an-int", npz_model("avgpool", layer=(2, {"count_include_pad": 1})), "error",
         "'count_include_pad'"),
    Case("npz-count-include-pad-a-string", npz_model("avgpool", layer=(2, {"count_include_pad": "true"})), "error",
         "'count_include_pad'"),
    Case("npz-stride-a-string", npz_model(layer=(0, {"stride": "2"})), "error", "'stride'"),
    Case("npz-stride-zero", npz_model(layer=(0, {"stride": 0})), "error", "'stride'"),
    Case("npz-stride-true", npz_model(layer=(0, {"stride": True})), "error", "'stride'"),
    Case("npz-stride-negative", npz_model(layer=(0, {"stride": -1})), "error", "'stride'"),
    Case("npz-stride-fractional", npz_model(layer=(0, {"stride": 1.5})), "error", "'stride'"),
    Case("npz-stride-three-values", npz_model(layer=(0, {"stride": [1, 1, 1]})), "error", "'stride'"),
    Case("npz-pool-stride-zero", npz_model("maxpool", layer=(2, {"stride": 0})), "error", "'stride'"),
    Case("npz-pads-three-values", npz_model(layer=(0, {"pads": [1, 2, 3]})), "error", "'pads'"),
    Case("npz-pads-negative", npz_model(layer=(0, {"pads": -1})), "error", "'pads'"),
    Case("npz-pads-one-negative", npz_model(layer=(0, {"pads": [1, 1, 1, -1]})), "error", "'pads'"),
    Case("npz-pads-a-string", npz_model(layer=(0, {"pads": "1"})), "error", "'pads'"),
    Case("npz-dilation-zero", npz_model(layer=(0, {"dilation": 0})), "error", "'dilation'"),
    Case("npz-dilation-a-string", npz_model(layer=(0, {"dilation": "2"})), "error", "'dilation'"),
    Case("npz-groups-zero", npz_model(layer=(0, {"groups": 0})), "error", "groups"),
    Case("npz-groups-a-string", npz_model(layer=(0, {"groups": "1"})), "error", "groups"),
    Case("npz-groups-not-dividing", npz_model(layer=(0, {"groups": 3})), "error", "groups"),
    Case("npz-groups-negative", npz_model(layer=(0, {"groups": -1})), "error", "groups"),
    Case("npz-kernel-zero", npz_model("maxpool", layer=(2, {"kernel": 0})), "error", "'kernel'"),
    Case("npz-kernel-one-value-list", npz_model("maxpool", layer=(2, {"kernel": [2]})), "error", "'kernel'"),
    Case("npz-kernel-a-string", npz_model("maxpool", layer=(2, {"kernel": "2"})), "error", "'kernel'"),
    Case("npz-kernel-missing", npz_model("maxpool", layer=(2, {"kernel": ...})), "error", "'kernel'"),
    Case("npz-kernel-bigger-than-image", npz_model("maxpool", layer=(2, {"kernel": 100})), "error",
         anyof("kernel", "window")),
    Case("npz-name-a-number", npz_model(layer=(0, {"name": 5})), "error", "'name'"),
    Case("npz-name-a-list", npz_model(layer=(0, {"name": ["a"]})), "error", "'name'"),
    Case("npz-name-null", npz_model(layer=(0, {"name": None})), "error", "'name'"),
    Case("npz-duplicate-names", npz_model(layer=(3, {"name": "conv1"})), "error", "conv1"),
    Case("npz-input-a-string-element", npz_model(top={"input": [1, "8", 8]}), "error", "'input'"),
    Case("npz-input-zero", npz_model(top={"input": [1, 0, 8]}), "error", "'input'"),
    Case("npz-input-negative", npz_model(top={"input": [1, -8, 8]}), "error", "'input'"),
    Case("npz-input-a-string", npz_model(top={"input": "1x8x8"}), "error", "'input'"),
    Case("npz-input-empty", npz_model(top={"input": []}), "error", "'input'"),
    Case("npz-input-floats", npz_model(top={"input": [1, 8.5, 8]}), "error", "'input'"),
    Case("npz-input-missing", npz_model(top={"input": ...}), "error", "'input'"),
    Case("npz-layers-an-object", npz_model(top={"layers": {}}), "error", "'layers'"),
    Case("npz-layers-a-string", npz_model(top={"layers": "conv"}), "error", "'layers'"),
    Case("npz-layers-missing", npz_model(top={"layers": ...}), "error", "'layers'"),
    Case("npz-layers-empty", npz_model(top={"layers": []}), "error", anyof("layers", "not used by any layer")),
    Case("npz-layer-a-string", npz_model(edit=lambda a: {**a, "layers": [a["layers"][0], "relu", *a["layers"][2:]]}),
         "error", "layer"),
    Case("npz-layer-null", npz_model(edit=lambda a: {**a, "layers": [a["layers"][0], None, *a["layers"][2:]]}),
         "error", "layer"),
    Case("npz-clip-min-a-string", npz_model("clip", layer=(1, {"min": "x"})), "error", "'min'"),
    Case("npz-clip-max-a-string", npz_model("clip", layer=(1, {"max": "y"})), "error", "'max'"),
    Case("npz-clip-min-above-max", npz_model("clip", layer=(1, {"min": 6, "max": 0})), "error", "min"),
    Case("npz-clip-min-nan", npz_model("clip", layer=(1, {"min": NAN})), "error", "min"),
    Case("npz-unknown-layer-key", npz_model(layer=(0, {"strides": 2})), "error", "strides"),
    Case("npz-unknown-top-key", npz_model(top={"inputs": [1, 8, 8]}), "error", "inputs"),
    Case("npz-architecture-a-json-list", npz_model(architecture=json.dumps([1, 2])), "error", "architecture"),
    Case("npz-architecture-a-json-string", npz_model(architecture=json.dumps("conv")), "error", "architecture"),
    Case("npz-architecture-not-json", npz_model(architecture="{layers: conv}"), "error", "architecture"),
    Case("npz-architecture-an-int-array", npz_model(architecture=np.array([1, 2, 3])), "error", "architecture"),
    Case("npz-architecture-two-strings", npz_model(architecture=np.array(["{}", "{}"])), "error", "architecture"),
    Case("npz-architecture-nested-lists", npz_model(architecture="[" * 100_000 + "]" * 100_000), "error",
         "architecture"),
    Case("npz-version-2", npz_model(top={"version": 2}), "error", "version"),
    Case("npz-version-a-string", npz_model(top={"version": "1"}), "error", "version"),
    Case("npz-format-other", npz_model(top={"format": "other"}), "error", "format"),
    Case("npz-format-missing", npz_model(top={"format": ...}), "error", "format"),
]


# ---------------------------------------------------------------- ONNX attributes and names

def onnx_setup(model_maker, command="inspect"):
    def setup(tmp):
        save_model(model_maker(), tmp / "m.onnx")
        return [command, "--model", "m.onnx"]
    return setup


def clip_model(lo, hi, opset=13):
    if opset >= 11:
        nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
                 helper.make_node("Clip", ["c", "lo", "hi"], ["y"], name="clip")]
        return conv_model(nodes=nodes, opset=opset, initializers={
            "w": np.ones((2, 1, 3, 3), np.float32), "lo": np.float32(lo), "hi": np.float32(hi)})
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Clip", ["c"], ["y"], name="clip", min=lo, max=hi)]
    return conv_model(nodes=nodes, opset=opset)


def leaky_model(alpha):
    return conv_model(nodes=[helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
                             helper.make_node("LeakyRelu", ["c"], ["y"], name="leaky", alpha=alpha)])


def bn_model(var, epsilon=1e-5):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["y"], name="bn", epsilon=epsilon)]
    return conv_model(nodes=nodes, initializers={
        "w": np.ones((2, 1, 3, 3), np.float32), "s": np.ones(2, np.float32), "b": np.zeros(2, np.float32),
        "m": np.zeros(2, np.float32), "v": np.asarray(var, np.float32)})


def unsupported_named(name):
    return conv_model(nodes=[helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
                             helper.make_node("Erf", ["c"], ["y"], name=name)])


def named(graph_name=None, node_name="conv"):
    def make():
        model = conv_model(nodes=[helper.make_node("Conv", ["x", "w"], ["c"], name=node_name),
                                  helper.make_node("Relu", ["c"], ["y"], name="relu")])
        if graph_name is not None:
            model.graph.name = graph_name
        return model
    return make


ONNX = [
    Case("onnx-clip-min-above-max", onnx_setup(lambda: clip_model(6, 0)), "error", "min"),
    Case("onnx-clip-min-above-max-opset-10", onnx_setup(lambda: clip_model(6.0, 0.0, opset=10)), "error", "min"),
    Case("onnx-clip-min-nan", onnx_setup(lambda: clip_model(NAN, 6)), "error", "min"),
    Case("onnx-leakyrelu-alpha-nan", onnx_setup(lambda: leaky_model(NAN)), "error", "alpha"),
    Case("onnx-leakyrelu-alpha-infinite", onnx_setup(lambda: leaky_model(float("inf"))), "error", "alpha"),
    Case("onnx-batchnorm-negative-variance", onnx_setup(lambda: bn_model([-1.0, 1.0])), "error", "negative variance"),
    Case("onnx-batchnorm-negative-epsilon", onnx_setup(lambda: bn_model([0.5, 0.5], epsilon=-1.0)), "error",
         anyof("epsilon", "variance")),
    Case("onnx-batchnorm-nan-variance", onnx_setup(lambda: bn_model([NAN, 1.0])), "error", anyof("NaN", "variance")),
    Case("onnx-input-height-zero", onnx_setup(lambda: conv_model(shape=("N", 1, 0, 8))), "error", "size",
         forbidden=("symbolic",)),
    Case("onnx-input-width-zero", onnx_setup(lambda: conv_model(shape=(1, 1, 8, 0))), "error", "size",
         forbidden=("symbolic",)),
    Case("onnx-input-height-negative", onnx_setup(lambda: conv_model(shape=("N", 1, -3, 8))), "error", "size",
         forbidden=("symbolic",)),
    Case("onnx-input-width-minus-one", onnx_setup(lambda: conv_model(shape=(1, 1, 8, -1))), "error", "size",
         forbidden=("symbolic",)),
    Case("onnx-node-name-with-newline", onnx_setup(lambda: unsupported_named("a\nb")), "error", "a\\nb"),
    Case("onnx-node-name-with-carriage-return", onnx_setup(lambda: unsupported_named("a\rb")), "error", "a\\rb"),
    Case("onnx-node-name-with-escape", onnx_setup(lambda: unsupported_named("a\x1b[31mb")), "error", "Erf",
         forbidden=("\x1b",)),
    Case("onnx-unsupported-node-name-markup", onnx_setup(lambda: unsupported_named("[/bold]")), "error", "[/bold]"),
    Case("onnx-node-name-closing-markup", onnx_setup(named(node_name="[/bold]")), "ok", "[/bold]",
         after=lambda tmp, r: None if "[/bold]" in r.stdout else pytest.fail("stdout lacks [/bold]")),
    # The model's name is its file's stem (a file name cannot hold "[/bold]": the slash).
    Case("onnx-model-name-markup", lambda tmp: (save_model(named()(), tmp / "[red]x[red].onnx"),
                                                    ["inspect", "--model", "[red]x[red].onnx"])[-1], "ok",
         after=lambda tmp, r: None if "[red]x[red]" in r.stdout else pytest.fail("stdout lacks [red]x[red]")),
    Case("onnx-graph-name-markup", onnx_setup(named(graph_name="[/bold]")), "ok"),
    Case("onnx-node-name-markup", onnx_setup(named(node_name="[red]x[/red]")), "ok", "[red]x[/red]",
         after=lambda tmp, r: None if "[red]x[/red]" in r.stdout else pytest.fail("stdout lacks [red]x[/red]")),
    Case("onnx-model-name-with-newline", onnx_setup(named(graph_name="a\nb")), "clean"),
    Case("onnx-quantize-node-name-markup", onnx_setup(named(node_name="[/bold]"), "quantize"), "clean",
         forbidden=("MarkupError",)),
]


# ---------------------------------------------------------------- huge and slow models

def wide_conv():
    rng = np.random.default_rng(1)
    return conv_model(weight=(rng.normal(size=(100_000, 1, 3, 3)) * 0.1).astype(np.float32))


def huge_input():
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "w", "b"], ["y"], name="fc", transB=1)]
    return make_model(nodes, {"w": np.ones((10, 1), np.float32), "b": np.zeros(10, np.float32)},
                      ["N", 1, 100_000, 100_000])


def relu_chain(n=20_000):
    nodes = [helper.make_node("Conv", ["x", "w"], ["r0"], name="conv")]
    nodes += [helper.make_node("Relu", [f"r{k}"], [f"r{k + 1}" if k + 1 < n else "y"], name=f"relu{k}")
              for k in range(n)]
    return conv_model(nodes=nodes)


HUGE = [
    Case("huge-100k-channel-conv-inspect", onnx_setup(wide_conv), "ok", timeout=60),
    Case("huge-100k-channel-conv-quantize", onnx_setup(wide_conv, "quantize"), "clean", timeout=60, memory_mb=3072),
    Case("huge-input-100k-squared-inspect", onnx_setup(huge_input), "clean", timeout=60),
    Case("huge-input-100k-squared-quantize", onnx_setup(huge_input, "quantize"), "clean", timeout=60),
    Case("huge-20k-relu-chain-inspect", onnx_setup(relu_chain), "clean", timeout=30),
    Case("huge-weights-3e38-quantize", onnx_setup(lambda: conv_model(weight=np.full((2, 1, 3, 3), 3e38, np.float32)),
                                                  "quantize"), "error", "3e+38"),
    Case("huge-weights-all-zero-quantize", onnx_setup(lambda: conv_model(weight=np.zeros((2, 1, 3, 3), np.float32)),
                                                      "quantize"), "warn", "all-zero weights"),
    Case("huge-weights-subnormal-quantize", onnx_setup(lambda: conv_model(weight=np.full((2, 1, 3, 3), 1e-45,
                                                                                            np.float32)), "quantize"),
         "clean"),
]

CASES = EXTERNAL + MODEL_PATH + NPZ + ONNX + HUGE


@pytest.mark.parametrize("case", params(CASES))
def test_models(case, tmp_path):
    run_case(case, tmp_path)
