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
from ..families import ICE40, DspRule, family
from ..gateware.accelerator import Accelerator
from ..gateware.board import BoardTop
from ..gateware.memories import MemoryShape, add_terms
from ..gateware.serial import image_buffers
from ..gateware.small import Argmax
from ..gateware.spram import spram_blocks
from ..gateware.streams import stream_order
from ..gateware.branches import Fork, StreamFIFO
from ..ir.graph import INPUT
from ..protocol.frames import MAX_PAYLOAD, logit_bytes, result_payload_bytes
from ..quant.qgraph import QAdd, QClamp, QConcat, QConv, QDense, QGlobalPool, QGraph, QLookup, QPool, QReshape
from .conv import ConvOp
from .dense import DenseOp
from .elementwise import ClampOp, FlattenOp, LookupOp
from .join import AddOp, ConcatOp, JoinOp
from .op import HardwareOp
from .plan import HardwarePlan, LayerPlan, divisors
from .pool import TiledMaxPoolOp, WindowPoolOp
from .timing import NEVER, FIFOTiming, ForkTiming, InputTiming, Probe

#: Images the timing model sends back to back for the steady state of a pipeline with coupled
#: stages (``Network.cycles_per_inference``); the first half fill the pipeline.
STEADY_IMAGES = 6


#: The fewest entries a branch FIFO holds beyond what the timing model says it needs
#: (``fifo_entries``): too few entries can deadlock a residual block, a few more cost little.
FIFO_MARGIN = 4
#: Images back to back over which the branch FIFOs are sized: the second and third see the
#: steady state (a FIFO holds most when one image's tail and the next one's head overlap).
SIZING_IMAGES = 3


def fifo_entries(needed: int) -> int:
    """A branch FIFO's entries when it holds ``needed`` at most: an eighth more, at least
    ``FIFO_MARGIN`` more."""
    return needed + max(FIFO_MARGIN, needed // 8)


def hardware_op(layer, plan: LayerPlan, dsp: DspRule = ICE40.dsp) -> HardwareOp:
    """The op for one quantized layer, its products on DSPs as ``dsp`` says (UnsupportedModelError
    for a layer without hardware)."""
    kinds = ((QConv, ConvOp), (QDense, DenseOp), (QGlobalPool, WindowPoolOp), (QClamp, ClampOp),
             (QLookup, LookupOp), (QReshape, FlattenOp), (QAdd, AddOp), (QConcat, ConcatOp))
    if isinstance(layer, QPool):
        return (TiledMaxPoolOp if layer.tiled else WindowPoolOp)(layer, plan, dsp)
    for quantized, op in kinds:
        if isinstance(layer, quantized):
            return op(layer, plan, dsp)
    raise UnsupportedModelError(f"{layer.label} '{layer.name}' has no hardware stage")


class Network:
    """The ops of ``qgraph`` under ``plan`` (checked: every layer the plan names exists, and each
    op accepts its part).

    A graph with branches streams as the graph goes: a tensor read by several stages passes a
    fork (``gateware/branches.Fork``), and each join takes its longest branch's input directly
    and every other input through a FIFO sized by the timing model (``_size_branches``)."""

    def __init__(self, qgraph: QGraph, plan: HardwarePlan, bounded_branches: bool = False):
        names = {layer.name for layer in qgraph.layers}
        for layer_plan in plan.layers:
            if layer_plan.name not in names:
                raise CnnhwError(f"plan: no layer named '{layer_plan.name}' (layers: {', '.join(sorted(names))})")
        self.qgraph, self.plan, self.bounded_branches = qgraph, plan, bounded_branches
        self._timelines: dict[int, list] = {}
        dsp = family(plan.family).dsp
        self.ops = [hardware_op(layer, plan.for_layer(layer.name), dsp) for layer in qgraph.layers]
        if not any(op.has_stage for op in self.ops):
            raise UnsupportedModelError(f"model '{qgraph.graph.name}' has no layer to build hardware for")
        #: What each op reads: earlier ops' names, or INPUT.
        self.reads = {op.name: reads for op, reads in zip(self.ops, qgraph.layer_inputs)}
        # Rows reach a stage at the pace of the slowest stage before it (images back to back).
        self._paces = {INPUT: 0}
        for op in self.ops:
            pace = max(self._paces[name] for name in self.reads[op.name])
            if pace and len(op.layer.in_shape) == 3:
                op.input_row_cycles = -(-pace // op.layer.in_shape[1])
            self._paces[op.name] = max(pace, op.cycles)
        self._joins = [op for op in self.ops if isinstance(op, JoinOp)]
        self._branches_sized = not self._joins

    @property
    def joins(self) -> list[JoinOp]:
        """The join ops, their branches sized."""
        self._ensure_branches_sized()
        return self._joins

    def _ensure_branches_sized(self) -> None:
        """Size the joins' branches (``_size_branches``) the first time anything depends on them:
        the memories, the logic, the timing model's runs and the hardware do; no stage's cycles
        do, and those are all that the planner asks of most candidate plans."""
        if not self._branches_sized:
            self._branches_sized = True  # first: the sizing's own timing runs come back here
            if self.bounded_branches:
                self._bound_branches()
            else:
                self._size_branches()

    def fed_by_input(self, name: str) -> bool:
        """Whether the op's input rows come from the accelerator's input at one element per cycle
        (only pass-through stages before it): then a wait for rows at an image boundary is
        exactly their elements (``HardwareOp.boundary_wait``)."""
        return max(self._paces[source] for source in self.reads[name]) == 0

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
            self._ensure_branches_sized()
            probes, _ = self._run_timing(images)
            self._timelines[images] = [(name, probe.image_ends[:images]) for name, probe in probes]
        return self._timelines[images]

    def _run_timing(self, images: int, fifo_latency=None, all_buffered: bool = False):
        """The timing model over ``images`` images: (the stages' probes, every join's input FIFOs
        as {(join, input): FIFOTiming}). ``fifo_latency(join, input)`` overrides the FIFOs' latencies
        and ``all_buffered`` gives every join input a FIFO (while branches are being sized)."""
        readers = self.readers()
        producers, forks, probes, fifos = {INPUT: InputTiming()}, {}, [], {}

        def source(name: str):
            if readers[name] == 1:
                return producers[name]
            if name not in forks:
                forks[name] = ForkTiming(producers[name], readers[name])
            return forks[name].port()

        for op in self.ops:
            upstreams = [source(name) for name in self.reads[op.name]]
            if isinstance(op, JoinOp):
                latency = None if fifo_latency is None else (lambda k, op=op: fifo_latency(op.name, k))
                producer = op.timing_of(upstreams, latency, all_buffered)
                fifos.update({(op.name, k): p for k, p in enumerate(producer.inputs) if isinstance(p, FIFOTiming)})
            else:
                producer = op.timing(upstreams[0])
            if op.has_stage:
                producer = Probe(producer, math.prod(op.layer.out_shape))
                probes.append((op.name, producer))
            producers[op.name] = producer
        final = producers[self.ops[-1].name]
        for _ in range(images * final.elements):
            final.take(NEVER)  # the argmax takes each logit as it comes
        final.finish()  # and the stages before take what remains of the last image
        return probes, fifos

    def _size_branches(self) -> None:
        """Each join's longest branch (the input whose elements come last when every input has a
        FIFO), and the entries of every other input's FIFO: as many as the timing model holds in
        it over ``SIZING_IMAGES`` images back to back, plus a margin. The FIFOs' latency depends
        on their depth (``StreamFIFO.latency_of``): sized at the longer latency, again at the
        latency of each depth found until none changes, the largest depth kept."""
        _, fifos = self._run_timing(1, fifo_latency=lambda join, k: 2, all_buffered=True)
        for op in self._joins:
            arrivals = [float(np.mean(fifos[(op.name, k)].entered)) for k in range(op.inputs)]
            op.set_branches(int(np.argmax(arrivals)), {})
        depths: dict[tuple[str, int], int] = {}
        assumed: dict[tuple[str, int], int] = {}
        latency = lambda join, k: assumed.get((join, k), 2)  # noqa: E731
        while True:
            _, fifos = self._run_timing(SIZING_IMAGES, fifo_latency=latency)
            for key, fifo in fifos.items():
                needed = fifo.depth_needed()
                depths[key] = max(depths.get(key, 0), fifo_entries(needed))
            found = {key: StreamFIFO.latency_of(depth) for key, depth in depths.items()}
            if all(found[key] == assumed.get(key, 2) for key in found):
                break
            assumed = found
        for op in self._joins:
            op.set_branches(op.first_input, {k: depth for (name, k), depth in depths.items() if name == op.name})

    def _bound_branches(self) -> None:
        """Branches sized without the timing model, for the planner's quick look at a candidate
        (``bounded_branches``): every input's FIFO holds one image of that input (``fifo_entries``
        of it), on every input but the one whose FIFO would be the smallest. A long path holds a
        few of its rows, not an image, so these memories are (in practice) no fewer than the timed
        sizing's; the planner checks the plan it returns with the timed sizing. Such a Network is
        for costs only: hardware and timelines come from a timed one."""
        for op in self._joins:
            depths = {k: fifo_entries(math.prod(shape)) for k, shape in enumerate(op.layer.in_shapes)}
            bits = [depths[k] * fmt.bits for k, fmt in enumerate(op.layer.in_formats)]
            first = min(range(op.inputs), key=lambda k: (bits[k], k))
            op.set_branches(first, {k: depth for k, depth in depths.items() if k != first})

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
    def readers(self) -> dict[str, int]:
        """How many input ports read each stream (an op's output, or INPUT)."""
        counts: dict[str, int] = {}
        for op in self.ops:
            for name in self.reads[op.name]:
                counts[name] = counts.get(name, 0) + 1
        return counts

    def logic_terms(self) -> dict[str, dict[str, float]]:
        """The logic-cell model's terms of each op, a fork counted with the op whose output it
        copies (a fork of the input, with its first reader)."""
        self._ensure_branches_sized()
        terms = {op.name: op.logic_terms() for op in self.ops}
        for name, count in self.readers().items():
            if count > 1:
                owner = name if name != INPUT else next(op.name for op in self.ops if INPUT in self.reads[op.name])
                terms[owner] = add_terms(terms[owner], Fork.logic_terms(count))
        return terms

    def image_elements(self) -> int:
        return math.prod(self.qgraph.graph.input_shape)

    def memories(self) -> list[tuple[str, MemoryShape]]:
        """Every memory of the board top, with its owner (layer name, or "serial" for the serial
        front end's image buffers)."""
        self._ensure_branches_sized()
        return [("serial", shape) for shape in image_buffers(self.image_elements(), self.plan.image_buffers)] + \
            [(op.name, shape) for op in self.ops for shape in op.memories()]

    def spram_blocks(self) -> dict[str, int]:
        """SPRAM blocks per layer that keeps its weights there."""
        counts: dict[str, int] = {}
        for owner, shape in self.memories():
            if shape.spram:
                counts[owner] = counts.get(owner, 0) + spram_blocks(shape.width, shape.depth)
        return counts

    # ------------------------------------------------------------------ hardware
    def stream_orders(self) -> dict[str, np.ndarray]:
        """For the input (``INPUT``) and each op, the order its output stream sends its elements in:
        entry ``j`` is the golden (C-order) index of the ``j``-th element."""
        orders = {INPUT: stream_order(self.qgraph.graph.input_shape)}
        for op in self.ops:
            reads = self.reads[op.name]
            if isinstance(op, JoinOp):
                orders[op.name] = op.output_order_of([orders[name] for name in reads])
            else:
                orders[op.name] = op.output_order(orders[reads[0]])
        return orders

    def accelerator(self) -> Accelerator:
        if self.bounded_branches:
            raise RuntimeError("a Network with bounded branch FIFOs is for costs only; build from a timed one")
        self._ensure_branches_sized()
        orders = self.stream_orders()
        # Each op's output stream comes from a stage (its own, or, for a flatten, the one before).
        streams: dict[str, int] = {INPUT: -1}
        stages, sources, blocks = [], [], 0
        for op in self.ops:
            reads = self.reads[op.name]
            if not op.has_stage:
                streams[op.name] = streams[reads[0]]
                continue
            stage = op.create(orders[reads[0]], blocks)
            stages.append((op.name, stage))
            sources.append([streams[name] for name in reads])
            streams[op.name] = len(stages) - 1
            if getattr(stage, "spram", None) is not None:
                blocks += stage.spram.blocks  # SPRAM blocks are numbered in stage order
        return Accelerator(stages, self.image_elements(), np.asarray(orders[self.ops[-1].name]), sources)

    def board_top(self, clock_hz: float, baud: int, timeout_s: float = 0.05,
                  weights_offset: int | None = None) -> BoardTop:
        """The accelerator with the UART, the serial front end and, for weights in SPRAM, the loader
        (``weights_offset``: where the weight image is in the flash)."""
        self.check_serial_link()
        return BoardTop(self.accelerator(), clock_hz, baud, timeout_s, weights_offset, self.plan.image_buffers)

    def check_serial_link(self) -> None:
        """CnnhwError unless an image and a result each fit one frame of the serial protocol."""
        if self.qgraph.layers[0].in_format.bits > 8:
            raise CnnhwError("the serial protocol sends one byte per input element: use at most 8 input bits")
        last = self.qgraph.layers[-1]
        payloads = {"an image": self.image_elements(),
                    "a result": result_payload_bytes(math.prod(last.out_shape), logit_bytes(last.out_format.bits))}
        for what, payload in payloads.items():
            if payload > MAX_PAYLOAD:
                raise CnnhwError(f"{what} of {payload:,} bytes does not fit one frame of the serial protocol "
                                 f"(at most {MAX_PAYLOAD:,}); use a model with smaller inputs and outputs")


@lru_cache(maxsize=1024)
def network_of(qgraph: QGraph, plan: HardwarePlan, bounded_branches: bool = False) -> Network:
    """``Network(qgraph, plan, bounded_branches)``, remembered: the planner asks about the same
    candidate plans many times (a Network is never changed once made)."""
    return Network(qgraph, plan, bounded_branches)


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
