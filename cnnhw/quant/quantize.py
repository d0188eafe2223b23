"""Quantize a Graph into a QGraph: formats, integer weights, accumulator widths, requantizers.

Order of work:

1. :func:`lower_for_integers` rewrites the float graph into the shape the integer pipeline
   wants (drop the final Softmax, move activations next to the conv/dense they fuse into,
   turn a stand-alone per-channel Affine into a depthwise 1x1 convolution).
2. Ranges come from calibration data or data-free bounds (``calibrate.py``).
3. :func:`quantize` walks the layers: each conv/dense with its activation becomes one
   integer layer whose output format and scale come from its output range.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import CnnhwError, UnsupportedModelError
from ..ir import (Affine, Clip, Conv2d, Dense, GlobalPool, Graph, LeakyRelu, LookupActivation, Pool2d, Relu, Reshape,
                  Sigmoid, Softmax)
from ..ir.graph import INPUT
from ..ir.ops import Add, Join, PoolKind
from .arith import AverageDivider, IntFormat, LookupTable, Requantizer, round_real
from .qgraph import (InputQuantizer, QAdd, QClamp, QConcat, QConv, QDense, QGlobalPool, QGraph, QJoin, QLayer, QLookup,
                     QPool, QReshape, QuantOptions)

#: Accumulators wider than this are refused (the hardware keeps them in DSP/fabric registers).
MAX_ACCUMULATOR_BITS = 48

_ACTIVATIONS = (Relu, Clip, LeakyRelu)  # the element-wise activations a conv/dense layer absorbs


def lower_for_integers(graph: Graph) -> tuple[Graph, str]:
    """Rewrite ``graph`` for integer inference; returns (graph, the label of the final op dropped
    or "").

    Softmax is monotonic, so the class (argmax) does not change without it; nor does a one-output
    model's Sigmoid (its class is whether the logit is above 0: ``golden.classes_of``). ReLU, Clip
    and LeakyReLU (alpha >= 0) are monotonic, so they commute with max-pooling and reshapes and
    can move back to fuse into the conv/dense before them (within a segment: no other branch
    reads the tensors in between).
    """
    last = graph.layers[-1].op if graph.layers else None
    dropped = ""
    if isinstance(last, Softmax) or (isinstance(last, Sigmoid) and graph.classes == 1):
        dropped = last.label

    def lower(layers):
        lowered = [_affine_as_layer(layer.op, layer.in_shape) if isinstance(layer.op, Affine) else layer.op
                   for layer in layers if layer.op is not last or not dropped]
        moved = True
        while moved:
            moved = False
            for i in range(1, len(lowered)):
                op, before = lowered[i], lowered[i - 1]
                commutes = isinstance(before, Reshape) or (isinstance(before, (Pool2d, GlobalPool))
                                                           and before.kind == PoolKind.MAX)
                if isinstance(op, _ACTIVATIONS) and commutes and not (isinstance(op, LeakyRelu) and op.alpha < 0):
                    lowered[i - 1], lowered[i] = op, before
                    moved = True
        return lowered

    return graph.map_segments(lower), dropped


def _affine_as_layer(op: Affine, in_shape):
    """A per-channel Affine as a depthwise 1x1 conv (maps) or a diagonal dense layer (vectors)."""
    channels = in_shape[0]
    per_channel = []
    for constant in (op.scale, op.shift):
        padded = constant.reshape((1,) * (len(in_shape) - constant.ndim) + constant.shape)
        if any(d != 1 for d in padded.shape[1:]):
            raise UnsupportedModelError(
                f"'{op.name}' scales or shifts each position differently; cnnhw quantizes per-channel "
                f"scale/shift only (fold it into a conv/dense layer before export)"
            )
        per_channel.append(np.broadcast_to(padded.reshape(-1), (channels,)).astype(np.float64))
    scale, shift = per_channel
    if len(in_shape) == 3:
        return Conv2d(op.name, scale.reshape(channels, 1, 1, 1), shift, groups=channels)
    if len(in_shape) == 1:
        return Dense(op.name, np.diag(scale), shift)
    raise UnsupportedModelError(f"'{op.name}': cannot quantize a scale/shift on a tensor of shape {in_shape}")


def activation_format(bits: int, lo: float) -> IntFormat:
    """Unsigned when the data cannot be negative (images, ReLU outputs), else signed."""
    return IntFormat(bits, signed=lo < 0)


def scale_for(lo: float, hi: float, fmt: IntFormat, power_of_two: bool) -> float:
    """The real value of one integer step so that ``[lo, hi]`` fills ``fmt`` (zero point 0)."""
    extent = max(abs(lo), abs(hi))
    if extent == 0:
        return 1.0  # a tensor that is always 0: any scale represents it
    scale = extent / fmt.hi
    return 2.0 ** math.ceil(math.log2(scale)) if power_of_two else scale


def quantize_weights(weight: np.ndarray, options: QuantOptions) -> tuple[np.ndarray, np.ndarray, IntFormat]:
    """Symmetric weights in ``[-(2**(b-1) - 1), 2**(b-1) - 1]``, one scale per output channel
    (or one for the tensor). Returns (integer weights, scales per output channel, format)."""
    fmt = IntFormat(options.weight_bits, True)
    limit = fmt.hi
    flat = np.abs(weight.astype(np.float64).reshape(weight.shape[0], -1))
    extent = flat.max(axis=1) if options.per_channel else np.full(weight.shape[0], flat.max())
    scales = np.where(extent > 0, extent / limit, 1.0)
    if options.power_of_two:
        scales = 2.0 ** np.ceil(np.log2(scales))
    per_channel = scales.reshape((-1,) + (1,) * (weight.ndim - 1))
    q = np.clip(round_real(weight / per_channel, options.rounding), -limit, limit)
    return q, scales, fmt


#: The integer model computes in int64 (``cnnhw.golden.int_ref``).
GOLDEN_BITS = 64


def check_product_bits(acc_bits: int, multiplier_bits: int, what: str) -> None:
    """Refuse a layer whose requantization product ``acc * M`` (``acc_bits`` signed times
    ``multiplier_bits`` unsigned) would not fit the integer model's int64: NumPy would wrap it
    silently, and the golden model would no longer be the arithmetic the hardware does."""
    if acc_bits + multiplier_bits > GOLDEN_BITS:
        raise CnnhwError(f"{what}: its requantization product needs {acc_bits} + {multiplier_bits} bits, more than "
                         f"the {GOLDEN_BITS} the integer model computes in; use fewer weight or activation bits")


def accumulator_format(weight_q: np.ndarray, bias_q: np.ndarray, in_format: IntFormat, what: str) -> IntFormat:
    """The narrowest signed format holding ``sum(w * x) + b`` for every input in ``in_format``.

    Per output channel the extremes are reached by x = hi where w > 0 and x = lo where w < 0
    (and the reverse); zero padding only removes terms, so it stays inside these bounds.
    """
    flat = weight_q.reshape(weight_q.shape[0], -1)
    positive = np.where(flat > 0, flat, 0).sum(axis=1)
    negative = np.where(flat < 0, flat, 0).sum(axis=1)
    top = positive * in_format.hi + negative * in_format.lo + bias_q
    bottom = positive * in_format.lo + negative * in_format.hi + bias_q
    fmt = IntFormat.holding(min(int(bottom.min()), 0), max(int(top.max()), 0))
    fmt = IntFormat(fmt.bits + (0 if fmt.signed else 1), True)
    if fmt.bits > MAX_ACCUMULATOR_BITS:
        raise CnnhwError(
            f"{what}: its accumulator needs {fmt.bits} bits (more than {MAX_ACCUMULATOR_BITS}); "
            f"the ranges cannot be represented: use fewer bits or recalibrate"
        )
    return fmt


def quantize(graph: Graph, ranges: dict, options: QuantOptions, calibration: str) -> QGraph:
    """Quantize ``graph`` (already lowered) with the real ``ranges`` of its tensors, a segment at a
    time (``Graph.segments``: a conv/dense fuses the activation after it in its segment, the only
    reader of its output)."""
    options.check()
    in_lo, in_hi = ranges[INPUT]
    in_format = activation_format(options.activation_bits, in_lo)
    in_scale = scale_for(in_lo, in_hi, in_format, options.power_of_two)
    quantizer = InputQuantizer(in_scale, in_format, options.rounding)

    position = {layer.op.name: k for k, layer in enumerate(graph.layers)}
    linear = [layer.op.name for layer in graph.layers if isinstance(layer.op, (Conv2d, Dense))]
    last_linear = position[linear[-1]] if linear else -1
    # Each float tensor's integer format, scale, and the integer layer that writes it.
    tensors = {INPUT: (in_format, in_scale, INPUT)}
    layers: list[QLayer] = []
    reads: list[tuple[str, ...]] = []
    for segment in graph.segments():
        index = 0
        while index < len(segment):
            layer = segment[index]
            op = layer.op
            following = segment[index + 1].op if index + 1 < len(segment) else None
            sources = [tensors[name] for name in layer.inputs]
            fmt, scale, _ = sources[0]
            fused = False
            if isinstance(op, (Conv2d, Dense)):
                activation = following if isinstance(following, _ACTIVATIONS) else None
                out_layer = segment[index + 1] if activation else layer
                # The logits are wide (the class is not decided by saturation), unless a table reads them.
                logits = position[op.name] == last_linear and not isinstance(following, LookupActivation)
                bits = options.output_bits if logits else options.activation_bits
                q = _quantize_linear(op, activation, layer, out_layer, fmt, scale, ranges, bits, options)
                fused = activation is not None
            elif isinstance(op, Join):
                activation = following if isinstance(following, (Relu, Clip)) else None
                out_layer = segment[index + 1] if activation else layer
                bits = options.output_bits if position[op.name] > last_linear else options.activation_bits
                q = _quantize_join(op, activation, layer, out_layer, sources, ranges, bits, options)
                fused = activation is not None
            elif isinstance(op, Pool2d):
                q = _quantize_pool(op, layer, fmt, scale, options)
            elif isinstance(op, GlobalPool):
                count = layer.in_shape[1] * layer.in_shape[2]
                sum_format = IntFormat.holding(fmt.lo * count, fmt.hi * count) if op.kind == PoolKind.AVG else None
                divider = (AverageDivider.for_counts(count, options.rounding, what=f"GlobalAveragePool '{op.name}'")
                           if op.kind == PoolKind.AVG else None)
                q = QGlobalPool(op.name, op.name, layer.in_shape, layer.out_shape, fmt, fmt, scale, scale, op.kind,
                                sum_format, divider)
            elif isinstance(op, Reshape):
                q = QReshape(op.name, op.name, layer.in_shape, layer.out_shape, fmt, fmt, scale, scale)
            elif isinstance(op, (Relu, Clip)):
                lo, hi = _clamp_bounds(op, fmt, scale, options.rounding)
                q = QClamp(op.name, op.name, layer.in_shape, layer.out_shape, fmt, fmt, scale, scale, lo, hi)
            elif isinstance(op, LookupActivation):
                q = _quantize_lookup(op, layer, fmt, scale, options)
            elif isinstance(op, LeakyRelu):
                raise UnsupportedModelError(
                    f"LeakyRelu '{op.name}' does not follow a conv or dense layer; cnnhw computes LeakyReLU inside "
                    f"the layer before it"
                )
            else:
                raise UnsupportedModelError(f"{op.label} '{op.name}' cannot be quantized")
            layers.append(q)
            reads.append(tuple(source[2] for source in sources))
            index += 2 if fused else 1
            tensors[segment[index - 1].op.name] = (q.out_format, q.out_scale, q.name)
    return QGraph(graph, quantizer, tuple(layers), options, calibration, layer_inputs=tuple(reads))


def _clamp_bounds(activation, fmt: IntFormat, scale: float, rounding: str) -> tuple[int, int]:
    """The integer ``[lo, hi]`` of a ReLU/Clip at ``scale``, inside ``fmt``."""
    lo, hi = fmt.lo, fmt.hi
    if isinstance(activation, Relu):
        lo = max(lo, 0)
    elif isinstance(activation, Clip):
        if activation.low is not None:
            lo = max(lo, int(round_real(activation.low / scale, rounding)))
        if activation.high is not None:
            hi = min(hi, int(round_real(activation.high / scale, rounding)))
    return lo, max(lo, hi)


def _quantize_linear(op, activation, layer, out_layer, in_format, in_scale, ranges, bits, options) -> QLayer:
    lo, hi = ranges[out_layer.op.name]
    # Signed unless the activation keeps the output at 0 or above: the calibration images may all
    # give a layer (a one-logit classifier's output, say) positive values that others do not.
    non_negative = _non_negative(activation)
    if non_negative:
        lo = 0.0
    out_format = IntFormat(bits, signed=not non_negative)
    out_scale = scale_for(lo, hi, out_format, options.power_of_two)
    weight_q, weight_scales, weight_format = quantize_weights(op.weight, options)
    bias_q = round_real(op.bias.astype(np.float64) / (in_scale * weight_scales), options.rounding)
    what = f"{op.label} '{op.name}'"
    acc_format = accumulator_format(weight_q, bias_q, in_format, what)
    clamp_lo, clamp_hi = _clamp_bounds(activation, out_format, out_scale, options.rounding)
    ratios = in_scale * weight_scales / out_scale
    negative = ratios * activation.alpha if isinstance(activation, LeakyRelu) else None
    requant = Requantizer.for_ratios(ratios, options.multiplier_bits, clamp_lo, clamp_hi, options.rounding,
                                     options.power_of_two, negative, what)
    check_product_bits(acc_format.bits, requant.multiplier_bits, what)
    common = dict(name=op.name, source=out_layer.op.name, in_shape=layer.in_shape, out_shape=out_layer.out_shape,
                  in_format=in_format, out_format=out_format, in_scale=in_scale, out_scale=out_scale,
                  weight=weight_q, bias=bias_q, weight_format=weight_format,
                  weight_scales=tuple(float(s) for s in weight_scales), acc_format=acc_format, requant=requant,
                  activation=type(activation).__name__ if activation else "none")
    if isinstance(op, Conv2d):
        return QConv(**common, stride=op.stride, pads=op.pads, dilation=op.dilation, groups=op.groups)
    return QDense(**common)


def _quantize_join(op, activation, layer, out_layer, sources, ranges, bits, options) -> QJoin:
    """An Add or Concat: every input brought to the output scale by one requantizer (a multiplier
    per input, ``in_scale[k] / out_scale``), with a ReLU/Clip after it as its clamp."""
    lo, hi = ranges[out_layer.op.name]
    # A sum or a concatenation of values that are all 0 or above is too.
    non_negative = _non_negative(activation) or all(not fmt.signed for fmt, _, _ in sources)
    if non_negative:
        lo = 0.0
    out_format = IntFormat(bits, signed=not non_negative)
    out_scale = scale_for(lo, hi, out_format, options.power_of_two)
    clamp_lo, clamp_hi = _clamp_bounds(activation, out_format, out_scale, options.rounding)
    what = f"{op.label} '{op.name}'"
    ratios = [scale / out_scale for _, scale, _ in sources]
    requant = Requantizer.for_ratios(ratios, options.multiplier_bits, clamp_lo, clamp_hi, options.rounding,
                                     options.power_of_two, what=what)
    widest = max(fmt.bits + (0 if fmt.signed else 1) for fmt, _, _ in sources)
    check_product_bits(widest + len(sources), requant.multiplier_bits, what)
    kind = QAdd if isinstance(op, Add) else QConcat
    first_format, first_scale, _ = sources[0]
    return kind(op.name, out_layer.op.name, layer.in_shape, out_layer.out_shape, first_format, out_format,
                first_scale, out_scale, tuple(fmt for fmt, _, _ in sources), tuple(scale for _, scale, _ in sources),
                requant, type(activation).__name__ if activation else "none", tuple(layer.in_shapes))


def _non_negative(activation) -> bool:
    """Whether a fused ReLU/Clip keeps the output at 0 or above."""
    return isinstance(activation, Relu) or (isinstance(activation, Clip) and activation.low is not None
                                            and activation.low >= 0)


def _quantize_lookup(op, layer, fmt: IntFormat, scale: float, options: QuantOptions) -> QLookup:
    """The table of ``op`` over every integer of ``fmt``. The output range is the function's image
    of everything the input format represents, so no entry saturates."""
    out_lo, out_hi = op.image(fmt.lo * scale, fmt.hi * scale)
    out_format = activation_format(options.activation_bits, out_lo)
    out_scale = scale_for(min(out_lo, 0.0), max(out_hi, 0.0), out_format, options.power_of_two)
    table = LookupTable.for_function(op.function, fmt, scale, out_format, out_scale, options.rounding,
                                     f"{op.label} '{op.name}'")
    return QLookup(op.name, op.name, layer.in_shape, layer.out_shape, fmt, out_format, scale, out_scale, table,
                   op.label)


def _quantize_pool(op: Pool2d, layer, fmt: IntFormat, scale: float, options: QuantOptions) -> QPool:
    sum_format = divider = None
    if op.kind == PoolKind.AVG:
        count = op.kernel[0] * op.kernel[1]
        sum_format = IntFormat.holding(min(fmt.lo * count, 0), fmt.hi * count)
        divider = AverageDivider.for_counts(count, options.rounding, what=f"AveragePool '{op.name}'")
    return QPool(op.name, op.name, layer.in_shape, layer.out_shape, fmt, fmt, scale, scale, op.kind, op.kernel,
                 op.stride, op.pads, op.dilation, op.ceil_mode, op.count_include_pad, sum_format, divider)
