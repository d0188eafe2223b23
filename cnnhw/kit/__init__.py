"""The study kit (``cnnhw export``): every integer of a quantized network, in files a hardware
engineer can use without cnnhw.

Layout of the kit folder (written atomically: assembled beside it and renamed into place)::

    manifest.json        the network layer by layer: op, reads, shapes, formats, scales, parameters,
                         rescaling rule and constants, and the files of every tensor
    weights/             per layer ``NN_<layer>.<tensor>.npy`` and ``.hex`` (``kit/tensors.py``): weights
                         in the model's order, biases, per-channel rescaling constants, tables; for a
                         conv or dense layer also ``.weight_hw.hex``, the words its MatrixVectorUnit
                         reads, in the order it reads them, and ``.weight_hw_index.npy``: for each word
                         and lane, the flat index of that weight in the model's order
    vectors/             ``x.npy`` and ``x.txt`` (the images, real values; the text one value per line,
                         each double exactly), ``00_input`` (the quantized input) and
                         each layer's output ``NN_<layer>``, for every image, ``.npy`` and ``.hex``
    reference.py         NumPy only: runs the network from these files and checks every vector
    reference.c          C99 only: the same, reading the ``.hex`` files and ``network.txt``
    network.txt          the manifest's layers as ``key value`` lines, for the C reference
    README.md            the network layer by layer with its numbers, and how to run both references

A layer's input is the output of the layers it ``reads`` (``input``: the quantized input); a
layer's tensors are named by the layer's position ``NN`` (from 01) and its name made safe for
file names. The hardware words depend on the plan (``--board``, ``--plan``; else cnnhw's default
folding), the arithmetic does not.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np

from ..ir.graph import INPUT
from ..outputs import replace_folder, staging_folder, write_json
from ..quant.qgraph import QGraph
from .records import layer_record, macs
from .tensors import format_facts, write_tensor, write_words

#: The kit's own files, copied as they are.
REFERENCES = ("reference.py", "reference.c")
MANIFEST = "manifest.json"
#: The manifest's format: a reader checks it.
KIT_FORMAT = "cnnhw study kit 1"
#: Axes of a batch of images or feature maps in the vectors.
BATCH_ORDER = "(image, channel, row, column)"


def file_stem(index: int, name: str) -> str:
    """``NN_<name>`` with anything but letters, digits, ``.``, ``_`` and ``-`` as ``_``."""
    safe = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_.-]", "_", name)).strip("_.")
    return f"{index:02d}_{safe[:60] or 'layer'}"


def _batch_order(shape) -> str:
    return BATCH_ORDER if len(shape) == 3 else "(image, value)"


def export_kit(qgraph: QGraph, x: np.ndarray, source: str, folder: Path, plan, model_file: str) -> dict:
    """Write the kit of ``qgraph`` for the images ``x`` (real values; ``source`` says where they
    came from) into ``folder``, with the hardware words of ``plan``; the manifest."""
    from ..golden.int_ref import run_int

    folder = Path(folder)
    staging = staging_folder(folder, "kit")
    try:
        values = run_int(qgraph, x, every_layer=True)
        manifest = _manifest(qgraph, x, values, source, staging, plan, model_file)
        for name in REFERENCES:
            shutil.copyfile(Path(__file__).parent / name, staging / name)
        from .readme import network_text, readme

        (staging / "network.txt").write_text(network_text(manifest))
        (staging / "README.md").write_text(readme(manifest))
        write_json(staging / MANIFEST, manifest)
        replace_folder(staging, folder)
        return manifest
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _manifest(qgraph: QGraph, x, values, source: str, kit: Path, plan, model_file: str) -> dict:
    weights, vectors = kit / "weights", kit / "vectors"
    vectors.mkdir()
    np.save(vectors / "x.npy", np.asarray(x), allow_pickle=False)  # exactly what the golden model quantized
    # The same values as text for the C reference: 17 significant digits give every double back.
    (vectors / "x.txt").write_text("".join(f"{float(v)!r}\n" for v in np.asarray(x, dtype=np.float64).ravel()))
    quantizer = qgraph.input
    inputs = {INPUT: write_tensor(vectors, "00_input", values[0], quantizer.format, _batch_order(qgraph.graph.input_shape))}
    hardware = hardware_words(qgraph, plan)
    # What each layer reads: the quantized input, or a layer's output.
    shapes = {INPUT: qgraph.graph.input_shape, **{layer.name: layer.out_shape for layer in qgraph.layers}}
    formats = {INPUT: quantizer.format, **{layer.name: layer.out_format for layer in qgraph.layers}}
    layers = []
    for index, (layer, reads, output) in enumerate(zip(qgraph.layers, qgraph.layer_inputs, values[1:]), start=1):
        stem = file_stem(index, layer.name)
        entry, tensors = layer_record(layer)
        files = {name: write_tensor(weights, f"{stem}.{name}", *tensor) for name, tensor in tensors.items()}
        if layer.name in hardware:
            words, word_bits, index_map, order = hardware[layer.name]
            files["weight_hw"] = write_words(weights, f"{stem}.weight_hw", words, word_bits, order)
            np.save(weights / f"{stem}.weight_hw_index.npy", index_map, allow_pickle=False)
            files["weight_hw"]["index"] = f"weights/{stem}.weight_hw_index.npy"
        inputs[layer.name] = write_tensor(vectors, stem, output, layer.out_format, _batch_order(layer.out_shape))
        layers.append({"index": index, "name": layer.name, **entry,
                       "reads": ["input" if name == INPUT else name for name in reads],
                       "in_shapes": [list(shapes[name]) for name in reads],
                       "in_formats": [format_facts(formats[name]) for name in reads],
                       "tensors": files, "output": inputs[layer.name]})
    last = qgraph.layers[-1]
    return {
        "format": KIT_FORMAT,
        "model": qgraph.graph.name,
        "model_file": model_file,
        "calibration": qgraph.calibration,
        "dropped": qgraph.dropped or None,
        "has_classes": qgraph.has_classes,
        "input": {"shape": list(qgraph.graph.input_shape), "format": format_facts(quantizer.format),
                  "scale": quantizer.scale, "zero_point": quantizer.zero_point, "rounding": quantizer.rounding,
                  "float32": quantizer.float32, "images": "vectors/x.npy", "quantized": inputs[INPUT]},
        "layers": layers,
        "output": {"layer": last.name, "scale": last.out_scale, "zero_point": last.out_zero_point},
        "vectors": {"images": int(len(x)), "source": source},
        "macs": sum(macs(layer) for layer in qgraph.layers),
        "plan": plan.to_json(),
    }


def hardware_words(qgraph: QGraph, plan) -> dict[str, tuple[list[int], int, np.ndarray, str]]:
    """For each conv and dense layer: (the words its MatrixVectorUnit reads under ``plan``, their
    width, for each word and lane the flat index of the weight in the model's order, what that
    order is). The op's own reordering (``MatrixOp.window_weights``) applied to the weights' flat
    indices says where each weight went."""
    from ..hardware.matrix import MatrixOp
    from ..hardware.network import Network

    network = Network(qgraph, plan)
    orders = network.stream_orders()
    words = {}
    for op in network.ops:
        if not isinstance(op, MatrixOp):
            continue
        mx, weight, order = op.matrix, op.layer.weight, orders[network.reads[op.name][0]]
        index = np.arange(weight.size, dtype=np.int64).reshape(weight.shape)
        index_map = mx.word_lanes(op.window_weights(index, order)).astype(np.int64)
        described = (f"{mx.groups} group(s) x {mx.folds} fold(s) x {mx.words} word(s) per window, in that nesting; "
                     f"lane i (bits {mx.weight_bits}*i and up, {mx.weight_bits} bits, two's complement) of word w is "
                     f"the weight at flat index weight_hw_index[w, i] of the model-order weight array")
        words[op.name] = (mx.rom_words(op.window_weights(weight, order)), mx.weight_bits * len(mx.product_lanes),
                          index_map, described)
    return words
