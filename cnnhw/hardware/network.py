"""A quantized graph's hardware under a plan: one hardware op per layer, and what they add up to.

:class:`Network` is what the planner prices and what the generator builds: cycles per image of
every stage (the slowest sets the pace: every stage works in parallel with the others), the
latency of one image, every memory with its owner, and the accelerator and board top made of
the ops' stages. Building a Network creates no hardware: ops are plain Python objects, and
``accelerator()`` / ``board_top()`` are the only places that create Amaranth components.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ..errors import CnnhwError, UnsupportedModelError
from ..gateware.accelerator import Accelerator
from ..gateware.board import BoardTop
from ..gateware.memories import MemoryShape
from ..gateware.serial import image_buffer
from ..gateware.small import Argmax
from ..gateware.spram import spram_blocks
from ..gateware.streams import stream_order
from ..quant.qgraph import QClamp, QConv, QDense, QGlobalPool, QGraph, QLookup, QPool, QReshape
from .conv import ConvOp
from .dense import DenseOp
from .elementwise import ClampOp, FlattenOp, LookupOp
from .op import HardwareOp
from .plan import HardwarePlan, LayerPlan, divisors
from .pool import TiledMaxPoolOp, WindowPoolOp
from .timing import NEVER, InputTiming, Probe

#: Images the timing model sends back to back for the steady state of a pipeline with coupled
#: stages (``Network.cycles_per_inference``); the first half fill the pipeline.
STEADY_IMAGES = 6


def _branch_refusal(qgraph: QGraph) -> str:
    """The first join or fork of a graph with branches, and what takes it."""
    names = ["<input>"] + [layer.name for layer in qgraph.layers]
    for k, (layer, reads) in enumerate(zip(qgraph.layers, qgraph.layer_inputs)):
        if reads != (names[k],):
            what = f"{layer.label} '{layer.name}' reads {', '.join(repr(n) for n in reads)}"
            return (f"{what}: the hardware streams a chain of layers, one reading the one before; branches "
                    f"(forks, Add and Concat joins) are computed by the golden models, not by the hardware")
    raise AssertionError("a chain")


def hardware_op(layer, plan: LayerPlan) -> HardwareOp:
    """The op for one quantized layer (UnsupportedModelError for a layer without hardware)."""
    if isinstance(layer, QConv):
        return ConvOp(layer, plan)
    if isinstance(layer, QDense):
        return DenseOp(layer, plan)
    if isinstance(layer, QPool):
        return TiledMaxPoolOp(layer, plan) if layer.tiled else WindowPoolOp(layer, plan)
    if isinstance(layer, QGlobalPool):
        return WindowPoolOp(layer, plan)
    if isinstance(layer, QClamp):
        return ClampOp(layer, plan)
    if isinstance(layer, QLookup):
        return LookupOp(layer, plan)
    if isinstance(layer, QReshape):
        return FlattenOp(layer, plan)
    raise UnsupportedModelError(f"{layer.label} '{layer.name}' has no hardware stage")


class Network:
    """The ops of ``qgraph`` under ``plan`` (checked: every layer the plan names exists, and each
    op accepts its part)."""

    def __init__(self, qgraph: QGraph, plan: HardwarePlan):
        names = {layer.name for layer in qgraph.layers}
        for layer_plan in plan.layers:
            if layer_plan.name not in names:
                raise CnnhwError(f"plan: no layer named '{layer_plan.name}' (layers: {', '.join(sorted(names))})")
        if not qgraph.is_chain:
            raise UnsupportedModelError(_branch_refusal(qgraph))
        self.qgraph, self.plan = qgraph, plan
        self._timelines: dict[int, list] = {}
        self.ops = [hardware_op(layer, plan.for_layer(layer.name)) for layer in qgraph.layers]
        if not any(op.has_stage for op in self.ops):
            raise UnsupportedModelError(f"model '{qgraph.graph.name}' has no layer to build hardware for")
        # Rows reach a stage at the pace of the slowest stage before it (images back to back).
        pace = 0
        for op in self.ops:
            if pace and len(op.layer.in_shape) == 3:
                op.input_row_cycles = -(-pace // op.layer.in_shape[1])
            pace = max(pace, op.cycles)

    def fed_by_input(self, name: str) -> bool:
        """Whether the op's input rows come from the accelerator's input at one element per cycle
        (only pass-through stages before it): then a wait for rows at an image boundary is
        exactly their elements (``HardwareOp.boundary_wait``)."""
        for op in self.ops:
            if op.name == name:
                return True
            if op.cycles:
                return False
        raise KeyError(name)

    def op(self, name: str) -> HardwareOp:
        return next(op for op in self.ops if op.name == name)

    # ------------------------------------------------------------------ throughput and latency
    def cycles(self) -> dict[str, int]:
        """Predicted cycles per image of every layer's stage."""
        return {op.name: op.cycles for op in self.ops}

    def coupled(self) -> list[str]:
        """Stages without line-buffer overlap whose rows come from slower stages: at every image
        boundary such a stage waits for rows the stages before produce while it stalls them, a
        coupling that no stage's own cycles capture (``HardwareOp.boundary_wait``)."""
        return [op.name for op in self.ops if op.windowed and not op.plan.overlap and not self.fed_by_input(op.name)]

    @property
    def cycles_per_inference(self) -> int:
        """Images back to back: the slowest stage's cycles; with :meth:`coupled` stages, the timing
        model's steady state instead (the cycles between classes once the pipeline is full)."""
        if self.coupled():
            return math.ceil(self.interval(STEADY_IMAGES, skip=STEADY_IMAGES // 2))
        return max(self.cycles().values())

    def timeline(self, images: int = 1) -> list[tuple[str, list[int]]]:
        """(layer, the cycle of each image's last output element) for every stage, ``images``
        images back to back, the first input element at cycle 0 and one element per cycle, every
        output taken as it comes (:mod:`cnnhw.hardware.timing`: each stage's producer pulls its
        input from the one before, following the blocks' handshakes)."""
        if images not in self._timelines:
            producer, probes = InputTiming(), []
            for op in self.ops:
                producer = op.timing(producer)
                if op.has_stage:
                    producer = Probe(producer, math.prod(op.layer.out_shape))
                    probes.append((op.name, producer))
            for _ in range(images * producer.elements):
                producer.take(NEVER)  # the argmax takes each logit as it comes
            producer.finish()  # and the stages before take what remains of the last image
            self._timelines[images] = [(name, probe.image_ends[:images]) for name, probe in probes]
        return self._timelines[images]

    def stage_latencies(self) -> list[tuple[str, int]]:
        """(layer, cycles from an image's first input element to the stage's last output element)
        for every stage, the pipeline otherwise idle (:meth:`timeline` of one image)."""
        return [(name, ends[0]) for name, ends in self.timeline(1)]

    def latency(self) -> int:
        """Cycles from an image's first input element to its class (as :meth:`stage_latencies`):
        the last stage's last element, then the argmax."""
        return self.stage_latencies()[-1][1] + Argmax.LATENCY

    def interval(self, images: int = 3, skip: int = 0) -> float:
        """Mean cycles between the classes of ``images`` images sent back to back, from the class of
        image ``skip`` on (the simulation measures cycles per inference so, from the first), every
        stall between the stages counted."""
        ends = self.timeline(images)[-1][1]
        return (ends[-1] - ends[skip]) / (images - 1 - skip)

    @property
    def multipliers(self) -> int:
        """Weight-by-activation products per cycle of the whole pipeline."""
        return sum(op.products for op in self.ops)

    # ------------------------------------------------------------------ resources
    def image_elements(self) -> int:
        return math.prod(self.qgraph.graph.input_shape)

    def memories(self) -> list[tuple[str, MemoryShape]]:
        """Every memory of the board top, with its owner (layer name, or "serial" for the serial
        front end's image buffer)."""
        return [("serial", image_buffer(self.image_elements()))] + \
            [(op.name, shape) for op in self.ops for shape in op.memories()]

    def spram_blocks(self) -> dict[str, int]:
        """SPRAM blocks per layer that keeps its weights there."""
        counts: dict[str, int] = {}
        for owner, shape in self.memories():
            if shape.spram:
                counts[owner] = counts.get(owner, 0) + spram_blocks(shape.width, shape.depth)
        return counts

    # ------------------------------------------------------------------ hardware
    def accelerator(self) -> Accelerator:
        stages, order, blocks = [], stream_order(self.qgraph.graph.input_shape), 0
        for op in self.ops:
            if op.has_stage:
                stage = op.create(order, blocks)
                stages.append((op.name, stage))
                if getattr(stage, "spram", None) is not None:
                    blocks += stage.spram.blocks  # SPRAM blocks are numbered in stage order
            order = op.output_order(order)
        return Accelerator(stages, self.image_elements(), np.asarray(order))

    def board_top(self, clock_hz: float, baud: int, timeout_s: float = 0.05,
                  weights_offset: int | None = None) -> BoardTop:
        """The accelerator with the UART, the serial front end and, for weights in SPRAM, the loader
        (``weights_offset``: where the weight image is in the flash)."""
        if self.qgraph.layers[0].in_format.bits > 8:
            raise CnnhwError("the serial protocol sends one byte per input element: use at most 8 input bits")
        return BoardTop(self.accelerator(), clock_hz, baud, timeout_s, weights_offset)


@lru_cache(maxsize=1024)
def network_of(qgraph: QGraph, plan: HardwarePlan) -> Network:
    """``Network(qgraph, plan)``, remembered: the planner asks about the same candidate plans many
    times (a Network is never changed once made)."""
    return Network(qgraph, plan)


def check_plan(plan: HardwarePlan, qgraph: QGraph) -> HardwarePlan:
    """``plan`` if it suits ``qgraph`` (CnnhwError naming the first thing that does not)."""
    Network(qgraph, plan)
    return plan


def predict_cycles(qgraph: QGraph, plan: HardwarePlan) -> dict[str, int]:
    return network_of(qgraph, plan).cycles()


def predict_cycles_per_inference(qgraph: QGraph, plan: HardwarePlan) -> int:
    return network_of(qgraph, plan).cycles_per_inference


def predict_latency(qgraph: QGraph, plan: HardwarePlan) -> int:
    return network_of(qgraph, plan).latency()


def default_plan(qgraph: QGraph, products_per_layer: int = 8) -> HardwarePlan:
    """A simple valid plan: each conv/dense layer gets the largest ``pe * simd`` up to
    ``products_per_layer`` (SIMD first, as it needs no extra accumulators), and one-cycle
    rescaler multiplies. It knows no board budget: the resource-aware planner replaces it."""
    layers = []
    for op in Network(qgraph, HardwarePlan(())).ops:
        limits = op.folding_limits()
        if limits is None:
            continue
        outputs, inputs = limits
        best = max(((pe, simd) for pe in divisors(outputs) for simd in divisors(inputs)
                    if pe * simd <= products_per_layer), key=lambda f: (f[0] * f[1], f[1]))
        layers.append(LayerPlan(op.name, best[0], best[1], digit_bits=32))
    return HardwarePlan(tuple(layers))


def hardware_refusal(graph) -> str | None:
    """Why the hardware cannot take the float ``graph`` (the first op or layer it has no stage
    for), or None; answered before anyone quantizes, by the rules the quantizer and the hardware
    ops apply, on a data-free trial quantization (no data: only the graph's structure decides)."""
    from ..quant import quantize_graph

    try:
        Network(quantize_graph(graph, quiet=True), HardwarePlan(()))
    except UnsupportedModelError as error:
        return str(error)
    except CnnhwError:
        return None  # a matter of ranges or options, which quantize reports with the user's data
    return None
