"""HardwarePlan: per layer, PE (output channels in parallel), SIMD (products per output per
cycle) and the rescaler's multiplier digit width. The generator is a function of
(QGraph, HardwarePlan); this module also predicts the cycles a plan takes.

The cycle model (per image, steady state, images back to back): every stage works in
parallel with the others, so an image takes as long as the slowest stage. A stage's time is
the largest of what its parts need:

* window unit: one word per cycle: ``out_pixels * kh * kw * channels / simd``;
* matrix-vector unit: one word per cycle: ``out_pixels * (out_channels / pe) * (kh * kw * channels_per_group / simd)``;
* rescaler (requantizer, average): ``outputs * (ceil(multiplier_bits / digit_bits) + 2)``, plus
  one per output when its multiplier table is a ROM (``gateware.rescale.rescale_cycles``);
* input of a window unit or packer: one element per cycle;
* tiled max pooling (``QPool.tiled``): one element per cycle, never waits;
* a window unit without ``overlap`` also waits, at every image boundary, for the rows of the next
  image its first window needs beyond those its ring could take early:
  ``(span_h - stride_h) * in_w * in_c``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass, replace

from ..errors import CnnhwError
from ..gateware.rescale import rescale_cycles
from ..ir.ops import is_int
from ..quant.qgraph import QConv, QDense, QGlobalPool, QGraph, QPool


#: Where a layer's weights can live (``LayerPlan.weights``).
WEIGHT_HOMES = ("rom", "spram")


@dataclass(frozen=True)
class LayerPlan:
    """One layer's folding. ``overlap`` (conv and pooling layers): line buffers with room for the
    next image's first window, so stages overlap across images (the cycle model assumes it);
    without, fewer block RAMs and a wait at every image boundary. ``packed`` (conv and dense
    layers with operands of at most 8 bits): two products per DSP (SB_MAC16 in 8x8 mode).
    ``weights`` (conv and dense layers): where the weights live, "rom" (initialized by the
    bitstream: block RAM or LUTs, as yosys decides) or "spram" (loaded from flash at boot).
    ``logic_products`` (conv and dense layers): the products are made of logic cells (LUT
    multipliers, ``gateware/lut_mul.py``) and take no DSP: what a plan uses when the DSPs run out."""

    name: str
    pe: int = 1
    simd: int = 1
    digit_bits: int = 4
    overlap: bool = True
    packed: bool = False
    weights: str = "rom"
    logic_products: bool = False


@dataclass(frozen=True)
class HardwarePlan:
    layers: tuple[LayerPlan, ...]

    def for_layer(self, name: str) -> LayerPlan:
        for layer in self.layers:
            if layer.name == name:
                return layer
        return LayerPlan(name)

    def to_json(self) -> dict:
        return {"layers": [asdict(layer) for layer in self.layers]}

    @staticmethod
    def from_json(facts) -> "HardwarePlan":
        """The plan a JSON value describes, checked key by key (types, ranges, unknown keys, layers
        listed twice); whether it suits a model is :func:`check_plan`'s question."""
        expected = "expected {\"layers\": [{\"name\": ..., \"pe\": ..., \"simd\": ...}, ...]}"
        if not isinstance(facts, dict) or not isinstance(facts.get("layers"), list):
            raise CnnhwError(f"plan: not a cnnhw plan; {expected}")
        unknown = set(facts) - {"layers", "written_by"}
        if unknown:
            raise CnnhwError(f"plan: unknown key {sorted(unknown)[0]!r} at the top level; {expected}")
        layers, seen = [], set()
        for index, layer in enumerate(facts["layers"]):
            layers.append(_layer_plan(layer, index))
            if layers[-1].name in seen:
                raise CnnhwError(f"plan: layer '{layers[-1].name}' is listed twice; give each layer once")
            seen.add(layers[-1].name)
        return HardwarePlan(tuple(layers))

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)


#: The largest PE or SIMD a plan may ask for (far beyond any FPGA's multipliers).
MAX_FOLDING = 1 << 16
#: The widest rescaler digit: a whole 32-bit multiplier per cycle.
MAX_DIGIT_BITS = 32


def _layer_plan(layer, index: int) -> LayerPlan:
    if not isinstance(layer, dict):
        raise CnnhwError(f"plan: layer entry {index} must be an object with 'name', 'pe', 'simd', ..., not {layer!r:.40}")
    name = layer.get("name")
    if not isinstance(name, str) or not name:
        raise CnnhwError(f"plan: layer entry {index} needs a 'name' (a string), not {name!r:.40}")
    fields = {f.name: f for f in dataclasses.fields(LayerPlan)}
    unknown = set(layer) - set(fields)
    if unknown:
        raise CnnhwError(f"plan: layer '{name}' has unknown key {sorted(unknown)[0]!r} (keys: {', '.join(fields)})")
    for key, value in layer.items():
        if key in ("pe", "simd", "digit_bits"):
            top = MAX_DIGIT_BITS if key == "digit_bits" else MAX_FOLDING
            if not is_int(value) or not 1 <= value <= top:
                raise CnnhwError(f"plan: '{key}' of layer '{name}' must be an integer from 1 to {top}, not {value!r:.40}")
        elif key in ("overlap", "packed", "logic_products") and not isinstance(value, bool):
            raise CnnhwError(f"plan: '{key}' of layer '{name}' must be true or false, not {value!r:.40}")
        elif key == "weights" and value not in WEIGHT_HOMES:
            raise CnnhwError(f"plan: 'weights' of layer '{name}' must be one of {', '.join(WEIGHT_HOMES)}, "
                             f"not {value!r:.40}")
    return LayerPlan(**layer)


def folding_limits(layer) -> tuple[int, int] | None:
    """(outputs per group that PE must divide, inputs per group word that SIMD must divide)."""
    if isinstance(layer, QConv):
        return layer.weight.shape[0] // layer.groups, layer.weight.shape[1]
    if isinstance(layer, QDense):
        return layer.weight.shape[0], layer.weight.shape[1]
    return None


def default_plan(qgraph: QGraph, products_per_layer: int = 8) -> HardwarePlan:
    """A simple valid plan: each conv/dense layer gets the largest ``pe * simd`` up to
    ``products_per_layer`` (SIMD first, as it needs no extra accumulators), and one-cycle
    rescaler multiplies. It knows no board budget: the resource-aware planner replaces it."""
    layers = []
    for layer in qgraph.layers:
        limits = folding_limits(layer)
        if limits is None:
            continue
        outputs, inputs = limits
        best = max(((pe, simd) for pe in divisors(outputs) for simd in divisors(inputs)
                    if pe * simd <= products_per_layer), key=lambda f: (f[0] * f[1], f[1]))
        layers.append(LayerPlan(layer.name, best[0], best[1], digit_bits=32))
    return HardwarePlan(tuple(layers))


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def check_plan(plan: HardwarePlan, qgraph: QGraph) -> HardwarePlan:
    names = {layer.name for layer in qgraph.layers}
    for layer_plan in plan.layers:
        if layer_plan.name not in names:
            raise CnnhwError(f"plan: no layer named '{layer_plan.name}' (layers: {', '.join(sorted(names))})")
    for layer in qgraph.layers:
        limits = folding_limits(layer)
        folding = plan.for_layer(layer.name)
        for flag in ("overlap", "packed", "logic_products"):
            if not isinstance(getattr(folding, flag), bool):
                raise CnnhwError(f"plan: {flag} of layer '{layer.name}' must be true or false")
        if folding.packed and (limits is None or layer.in_format.bits > 8 or layer.weight_format.bits > 8):
            raise CnnhwError(f"plan: layer '{layer.name}' ({layer.label}) cannot pack two products per DSP "
                             f"(only conv/dense layers with operands of at most 8 bits)")
        if folding.logic_products and limits is None:
            raise CnnhwError(f"plan: layer '{layer.name}' ({layer.label}) has no products to make from logic")
        if folding.logic_products and folding.packed:
            raise CnnhwError(f"plan: layer '{layer.name}': products are either packed into DSPs or made of "
                             f"logic (logic_products), not both")
        if folding.weights not in WEIGHT_HOMES:
            raise CnnhwError(f"plan: weights of layer '{layer.name}' must be one of {', '.join(WEIGHT_HOMES)}, "
                             f"not {folding.weights!r}")
        if limits is None and folding.weights != "rom":
            raise CnnhwError(f"plan: layer '{layer.name}' ({layer.label}) has no weights to place in SPRAM")
        if limits is None:
            if (folding.pe, folding.simd) != (1, 1):
                raise CnnhwError(f"plan: layer '{layer.name}' ({layer.label}) has no PE/SIMD folding")
            continue
        outputs, inputs = limits
        for what, value, limit in (("pe", folding.pe, outputs), ("simd", folding.simd, inputs)):
            if not isinstance(value, int) or value < 1 or limit % value:
                divisors = [d for d in range(1, limit + 1) if limit % d == 0]
                raise CnnhwError(f"plan: {what} {value} of layer '{layer.name}' must divide {limit} "
                                 f"(choose from {divisors})")
        if not isinstance(folding.digit_bits, int) or folding.digit_bits < 1:
            raise CnnhwError(f"plan: digit_bits of layer '{layer.name}' must be a positive int")
    return plan




def _boundary_wait(folding: LayerPlan, kernel_h: int, dilation_h: int, stride_h: int, row_elements: int) -> int:
    if folding.overlap:
        return 0
    span = (kernel_h - 1) * dilation_h + 1
    return max(0, span - stride_h) * row_elements


def predict_cycles(qgraph: QGraph, plan: HardwarePlan) -> dict[str, int]:
    """Predicted cycles per image of every layer's stage (see the module docstring)."""
    cycles = {}
    for layer in qgraph.layers:
        folding = plan.for_layer(layer.name)
        if isinstance(layer, QConv):
            out_c, out_h, out_w = layer.out_shape
            in_c, in_h, in_w = layer.in_shape
            pixels = out_h * out_w
            kh, kw = layer.kernel
            window = pixels * kh * kw * in_c // folding.simd
            mvu = pixels * (out_c // folding.pe) * (kh * kw * layer.weight.shape[1] // folding.simd)
            rescale = pixels * out_c * rescale_cycles(layer.requant.multiplier_bits, folding.digit_bits, out_c)
            wait = _boundary_wait(folding, kh, layer.dilation[0], layer.stride[0], in_w * in_c)
            cycles[layer.name] = max(in_c * in_h * in_w, window + wait, mvu + wait, rescale)
        elif isinstance(layer, QDense):
            out, k = layer.weight.shape
            mvu = (out // folding.pe) * (k // folding.simd)
            rescale = out * rescale_cycles(layer.requant.multiplier_bits, folding.digit_bits, out)
            cycles[layer.name] = max(k, mvu, rescale)
        elif isinstance(layer, (QPool, QGlobalPool)):
            c, out_h, out_w = layer.out_shape
            _, in_h, in_w = layer.in_shape
            kh, kw = layer.kernel if isinstance(layer, QPool) else (in_h, in_w)
            window = out_h * out_w * c * kh * kw
            rescale = 0
            if layer.divider is not None:
                rescale = out_h * out_w * c * rescale_cycles(max(m.bit_length() for m in layer.divider.multipliers),
                                                             folding.digit_bits, len(layer.divider.multipliers))
            stride, dilation = (layer.stride[0], layer.dilation[0]) if isinstance(layer, QPool) else (1, 1)
            tiled = isinstance(layer, QPool) and layer.tiled  # no line buffer: never waits
            wait = 0 if tiled else _boundary_wait(folding, kh, dilation, stride, in_w * c)
            cycles[layer.name] = max(c * in_h * in_w, window + wait, rescale)
        else:
            cycles[layer.name] = 0  # reshapes and clamps pass the stream through
    return cycles


def predict_latency(qgraph: QGraph, plan: HardwarePlan) -> int:
    """Predicted cycles from an image's first input element to its class, the pipeline otherwise
    idle and the input offered one element per cycle.

    A row model: each stage turns the times at which its input rows are complete into the times
    at which its output rows are. A windowed stage (conv, pooling) spends ``cycles / out_h`` per
    output row (``predict_cycles``), starting a row once the last input row its window needs has
    arrived and the previous row is done; a dense layer's first fold runs while its input arrives,
    the other folds after the last element, then its last word is rescaled; element-wise stages
    and flattens pass times through. The argmax adds its pipeline."""
    cycles = predict_cycles(qgraph, plan)
    in_c, in_h, in_w = qgraph.graph.input_shape if len(qgraph.graph.input_shape) == 3 else (1, 1, 1)
    rows = [(y + 1) * in_w * in_c for y in range(in_h)]  # when each input row is complete
    for layer in qgraph.layers:
        folding = plan.for_layer(layer.name)
        if isinstance(layer, (QConv, QPool, QGlobalPool)):
            _, out_h, _ = layer.out_shape
            if isinstance(layer, QGlobalPool):
                span, stride, top = len(rows), 1, 0
            else:
                span = (layer.kernel[0] - 1) * layer.dilation[0] + 1
                stride, top = layer.stride[0], layer.pads[0]
            per_row = cycles[layer.name] / out_h
            # After a row's last window word: the window's read and FIFO, and for a conv the MVU's
            # pipeline and the rescaling of its last word (for a pool, of its last value).
            if isinstance(layer, QConv):
                drain = WINDOW_LATENCY + MVU_LATENCY + folding.pe * rescale_cycles(
                    layer.requant.multiplier_bits, folding.digit_bits, layer.out_shape[0])
            elif layer.divider is not None:
                drain = WINDOW_LATENCY + rescale_cycles(max(m.bit_length() for m in layer.divider.multipliers),
                                                        folding.digit_bits, len(layer.divider.multipliers))
            else:
                drain = WINDOW_LATENCY
            done, out_rows = 0.0, []
            for r in range(out_h):
                needed = min(len(rows) - 1, max(0, r * stride - top + span - 1))
                done = max(rows[needed], done) + per_row
                out_rows.append(done + drain)
            rows = out_rows
        elif isinstance(layer, QDense):
            out, k = layer.weight.shape
            folds, words = out // folding.pe, k // folding.simd
            rescale = folding.pe * rescale_cycles(layer.requant.multiplier_bits, folding.digit_bits, out)
            first_fold = max(rows[-1], rows[0] + words)
            rows = [first_fold + (folds - 1) * words + rescale + MVU_LATENCY]
        # element-wise stages and reshapes move no rows
    return math.ceil(rows[-1]) + ARGMAX_LATENCY


#: Pipeline cycles of a MatrixVectorUnit's last word, of a SlidingWindow's read and output FIFO,
#: and of the Argmax (gateware docstrings).
MVU_LATENCY, WINDOW_LATENCY, ARGMAX_LATENCY = 3, 3, 2


def with_folding(plan: HardwarePlan, name: str, **changes) -> HardwarePlan:
    """A copy of ``plan`` with one layer's folding changed."""
    layers = [replace(layer, **changes) if layer.name == name else layer for layer in plan.layers]
    if all(layer.name != name for layer in plan.layers):
        layers.append(replace(LayerPlan(name), **changes))
    return HardwarePlan(tuple(layers))
