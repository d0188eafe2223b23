"""The graph: ops from one image input to one output, in topological order.

Each op reads the outputs of earlier ops (by name) or the model input (:data:`INPUT`): most
read the one op before them, a join (Add, Concat) reads two or more, and an output read by
several ops is a fork. Constructing a :class:`Graph` infers and checks every shape, so a
``Graph`` that exists is consistent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from ..errors import DataError, ModelError, UnsupportedModelError
from .ops import Op, Shape, Sigmoid, Softmax

#: The name by which ops read the model input.
INPUT = "<input>"


@dataclass(frozen=True)
class Layer:
    """One op with the shapes it sees, as reports and later stages want it: ``inputs`` names the
    tensors it reads (earlier ops, or :data:`INPUT`), ``in_shapes`` their shapes, ``in_shape``
    the first's."""

    op: Op
    in_shape: Shape
    out_shape: Shape
    inputs: tuple[str, ...] = (INPUT,)
    in_shapes: tuple[Shape, ...] = ()

    @property
    def macs(self) -> int:
        return self.op.macs(self.in_shape)

    @property
    def working_values(self) -> int:
        """Values the reference models hold at once to compute this layer for one image: input,
        output and, for windowed ops, every window (``ir/windows.window_stack``)."""
        kernel = getattr(self.op, "kernel", None)
        windows = math.prod(kernel) * self.in_shape[0] * math.prod(self.out_shape[1:]) if kernel else 0
        return sum(math.prod(shape) for shape in self.in_shapes) + math.prod(self.out_shape) + windows


@dataclass(frozen=True, eq=False)
class Graph:
    """Ops applied to one image of ``input_shape``, in topological order; the last op's output is
    the model's. ``op_inputs`` gives, for each op, the names of the tensors it reads (earlier
    ops, or :data:`INPUT`); without it the ops are a chain, each reading the one before. Every
    op but the last is read by a later one.

    ``input_reshape`` and ``input_perm`` record what the *model file* does to its input before
    the chain: a reshape of each image to ``input_reshape`` (tf2onnx's (N, 28, 28) ->
    (N, 28, 28, 1), PyTorch's (N, 784) -> (N, 1, 28, 28)), then a transpose of the whole tensor,
    batch axis included (an NHWC export's leading Transpose, or Gemm's ``transA`` on the input),
    into ``(N, *input_shape)``. DATA files given to cnnhw are always in that canonical layout;
    :meth:`from_file_layout` converts a tensor laid out as the model file expects.

    ``integer_model`` is a pre-quantized model's own integer model (a ``cnnhw.quant.QGraph``, made
    by the importer from the file's integers; the ops here are its dequantized float view):
    quantization returns it as it is, and never quantizes such a model again.
    """

    name: str
    input_shape: Shape
    ops: tuple[Op, ...]
    input_name: str = "input"
    output_name: str = "output"
    input_perm: tuple[int, ...] | None = None
    source: str = ""
    input_reshape: tuple[int, ...] | None = None
    op_inputs: tuple[tuple[str, ...], ...] | None = None
    integer_model: object | None = field(default=None, repr=False)
    layers: tuple[Layer, ...] = field(init=False, repr=False)
    _consumers: dict[str, list[str]] = field(init=False, repr=False)

    def __post_init__(self):
        ops = tuple(self.ops)
        object.__setattr__(self, "ops", ops)
        shape = tuple(int(d) for d in self.input_shape)
        if not shape or any(d < 1 for d in shape):
            raise ModelError(f"model '{self.name}': input shape {shape} must have positive sizes")
        object.__setattr__(self, "input_shape", shape)
        seen: set[str] = set()
        duplicate = next((op.name for op in ops if op.name in seen or seen.add(op.name)), None)
        if duplicate is not None:
            raise ModelError(f"model '{self.name}': two layers are named '{duplicate}'; layer names must be unique")
        if INPUT in seen:
            raise ModelError(f"model '{self.name}': a layer is named '{INPUT}', the name of the model input")
        for op in ops[:-1]:
            if isinstance(op, Softmax):
                raise UnsupportedModelError(
                    f"Softmax '{op.name}' is not the last op; cnnhw supports Softmax only at the output"
                )
        if self.op_inputs is None:
            reads = tuple((ops[k - 1].name if k else INPUT,) for k in range(len(ops)))
        else:
            reads = tuple(tuple(names) for names in self.op_inputs)
            if len(reads) != len(ops):
                raise ModelError(f"model '{self.name}': {len(reads)} input lists for {len(ops)} layers")
        object.__setattr__(self, "op_inputs", reads)
        shapes = {INPUT: shape}
        layers = []
        for op, names in zip(ops, reads):
            unknown = next((n for n in names if n not in shapes), None)
            if unknown is not None:
                raise ModelError(f"model '{self.name}': layer '{op.name}' reads '{unknown}', which no earlier "
                                 f"layer writes")
            in_shapes = tuple(shapes[n] for n in names)
            out_shape = op.output_shape_of(in_shapes)
            layers.append(Layer(op, in_shapes[0], out_shape, names, in_shapes))
            shapes[op.name] = out_shape
        object.__setattr__(self, "layers", tuple(layers))
        consumers: dict[str, list[str]] = {INPUT: [], **{op.name: [] for op in ops}}
        for layer in layers:
            for name in dict.fromkeys(layer.inputs):
                consumers[name].append(layer.op.name)
        object.__setattr__(self, "_consumers", consumers)
        unused = next((layer for layer in layers[:-1] if not consumers[layer.op.name]), None)
        if unused is not None:
            raise UnsupportedModelError(f"model '{self.name}': the output of {unused.op.label} '{unused.op.name}' is "
                                        f"not used; cnnhw takes models with one output")

    @property
    def output_shape(self) -> Shape:
        return self.layers[-1].out_shape if self.layers else self.input_shape

    @property
    def working_values(self) -> int:
        """Values the reference models hold at once for one image: the largest layer's need, with
        the outputs that wait meanwhile for a layer of another branch."""
        last_read: dict[str, int] = {}
        for k, layer in enumerate(self.layers):
            for name in layer.inputs:
                last_read[name] = k
        sizes = {INPUT: math.prod(self.input_shape), **{lay.op.name: math.prod(lay.out_shape) for lay in self.layers}}
        most, live = sizes[INPUT], {INPUT}
        for k, layer in enumerate(self.layers):
            waiting = sum(sizes[name] for name in live if name not in layer.inputs)
            most = max(most, layer.working_values + waiting)
            live = {name for name in live if last_read.get(name, -1) > k}
            if last_read.get(layer.op.name, -1) > k:
                live.add(layer.op.name)
        return most

    def consumers(self, name: str) -> list[str]:
        """The layers that read the output ``name`` (an op's, or :data:`INPUT`), in order."""
        return self._consumers[name]

    @property
    def is_chain(self) -> bool:
        """Whether each op reads only the one before it (no fork, no join)."""
        return all(layer.inputs == ((self.layers[k - 1].op.name if k else INPUT),)
                   for k, layer in enumerate(self.layers))

    def segments(self) -> list[list[Layer]]:
        """The graph cut into maximal chains: a layer continues the chain of the layer before it
        when it reads that layer alone and is its only reader. A chain starts at the model input,
        a join, or a reader of a fork. In the order of their first layers (topological)."""
        chains: list[list[Layer]] = []
        ends: dict[str, list[Layer]] = {}
        for layer in self.layers:
            source = layer.inputs[0]
            chain = ends.pop(source, None) if len(layer.inputs) == 1 and source != INPUT \
                and self._consumers[source] == [layer.op.name] else None
            if chain is None:
                chain = []
                chains.append(chain)
            chain.append(layer)
            ends[layer.op.name] = chain
        return chains

    def map_segments(self, rewrite) -> "Graph":
        """The graph with each of :meth:`segments` replaced by ``rewrite(layers)`` (a list of ops, each
        reading the one before; the first reads what the segment's first layer read). The
        segment's readers read its new last op; a segment rewritten to nothing (a no-op reshape)
        passes its input on. Passes that merge neighbouring ops are such rewrites: within a
        segment, an op is the only reader of the one before."""
        renamed = {INPUT: INPUT}
        ops, reads = [], []
        for segment in self.segments():
            new = list(rewrite(segment))
            first = tuple(renamed[name] for name in segment[0].inputs)
            if not new:
                if len(first) != 1:
                    raise ValueError(f"a pass removed the join '{segment[0].op.name}'")
                renamed[segment[-1].op.name] = first[0]
                continue
            for k, op in enumerate(new):
                ops.append(op)
                reads.append(first if k == 0 else (new[k - 1].name,))
            renamed[segment[-1].op.name] = new[-1].name
        return Graph(self.name, self.input_shape, tuple(ops), self.input_name, self.output_name,
                     self.input_perm, self.source, self.input_reshape, tuple(reads), self.integer_model)

    @property
    def output_values(self) -> int:
        """Values of every layer's output for one image (what ``every_layer`` runs keep)."""
        return sum(math.prod(layer.out_shape) for layer in self.layers)

    @property
    def classes(self) -> int:
        """How many values the output has (the classes of a classifier)."""
        return math.prod(self.output_shape)

    @property
    def has_classes(self) -> bool:
        """Whether the output scores classes, so that a class means something (``golden.classes_of``).
        A model ending in Softmax or Sigmoid does. An output of more than one position per channel
        (a segmentation map, a decoder's image) or shaped as the input (an autoencoder's
        reconstruction) does not. Any other output is logits (one logit: a binary classifier)."""
        if self.ops and isinstance(self.ops[-1], (Softmax, Sigmoid)):
            return True
        shape = self.output_shape
        if len(shape) == 3 and shape[1] * shape[2] > 1:
            return False
        return shape != self.input_shape

    @property
    def labels(self) -> int:
        return label_count(self.classes)

    @property
    def class_threshold(self) -> float:
        """Above it a one-output model's output is class 1: 0.5 for a probability (a final
        Sigmoid), else 0 (a logit)."""
        return 0.5 if self.ops and isinstance(self.ops[-1], Sigmoid) else 0.0

    @property
    def macs(self) -> int:
        """Multiply-accumulates of all conv and dense layers for one image."""
        return sum(layer.macs for layer in self.layers)

    @property
    def params(self) -> int:
        return sum(op.params for op in self.ops)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def check_batch(self, x: np.ndarray, what: str = "inputs") -> np.ndarray:
        return check_batch(x, self.input_shape, self.name, what)

    def from_file_layout(self, x: np.ndarray) -> np.ndarray:
        """Convert a batch laid out as the model file's input into the canonical layout."""
        if self.input_reshape is not None:
            x = np.reshape(x, (len(x), *self.input_reshape))
        return np.transpose(x, self.input_perm) if self.input_perm is not None else x


def label_count(outputs: int) -> int:
    """How many classes a label may name for a model of ``outputs`` output values: a one-output
    (binary) classifier has two."""
    return max(outputs, 2)


def check_batch(x: np.ndarray, input_shape: tuple[int, ...], model: str, what: str = "inputs") -> np.ndarray:
    """Return ``x`` as a float batch ``(N, *input_shape)``, or raise DataError.

    Accepts exactly ``(N, *input_shape)``, or ``(N, H, W)`` for a one-channel image
    input. Nothing else is reshaped: a mismatch is an error, not a guess.
    """
    input_shape = tuple(input_shape)
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise DataError(f"{what}: x has dtype {x.dtype}; expected numbers")
    if x.ndim == len(input_shape) and len(input_shape) == 3 and input_shape[0] == 1:
        x = x[:, None]
    if x.ndim != len(input_shape) + 1 or tuple(x.shape[1:]) != input_shape:
        expected = f"(N, {', '.join(map(str, input_shape))})"
        if len(input_shape) == 3 and input_shape[0] == 1:
            expected += f" or (N, {input_shape[1]}, {input_shape[2]})"
        raise DataError(f"{what}: x has shape {tuple(x.shape)}, but model '{model}' takes {expected}")
    if x.shape[0] == 0:
        raise DataError(f"{what}: x holds no images")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise DataError(f"{what}: x contains NaN or Inf")
    return x

