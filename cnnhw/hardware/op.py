"""The hardware op: one layer's hardware, made from its quantized layer and its ``LayerPlan``.

An op owns the layer's geometry, memory shapes, rescaler and tables, and answers every question
the planner, the reports and the cycle model ask about it, without building anything:

* ``cycles``: cycles per image in the steady state (images back to back, every stage busy);
* ``timing(upstream)``: the latency model of its stage, a producer of the transfer cycles of its
  output elements that pulls its input from ``upstream`` (:mod:`cnnhw.hardware.timing`);
* ``memories()``: every memory its hardware creates (shape and kind);
* ``dsps``, ``products_in_logic``, ``products``, ``weight_bits_per_cycle``, ``logic_terms()``;
* ``output_order(input_order)``: the golden index of each element of its output stream;

and ``create()`` gives its Amaranth component (an element stream in, one out). The op's
``__init__`` checks the plan's part that is its own. A new kind of layer is one new subclass
(plus its golden rule in ``cnnhw.golden``), registered in :mod:`cnnhw.hardware.network`.
"""

from __future__ import annotations

from amaranth import Shape, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..errors import CnnhwError
from ..families import ICE40, DspRule
from ..gateware.memories import MemoryShape
from ..gateware.spram import LoadSignature
from ..gateware.streams import stream_order
from ..quant.arith import IntFormat
from .plan import WEIGHT_HOMES, LayerPlan, WeightHome, divisors
from .timing import Producer


def element_shape(fmt: IntFormat) -> Shape:
    return signed(fmt.bits) if fmt.signed else unsigned(fmt.bits)


class HardwareOp:
    """Base of every op: by default a stage with no folding, no weights, no rescaler, no memories."""

    #: The plan's options that mean something for this op (``LayerPlan`` fields beyond the name).
    #: PE/SIMD folding (conv, dense); line-buffer overlap (sliding windows); a rescaler's digits.
    foldable = False
    windowed = False
    rescales = False

    def __init__(self, layer, plan: LayerPlan, dsp: DspRule = ICE40.dsp):
        self.layer, self.plan = layer, plan
        #: How yosys puts this op's products on the family's DSPs (``HardwarePlan.family``).
        self.dsp = dsp
        self.name = layer.name
        #: Cycles between the input rows the op receives: one element per cycle unless the
        #: stages before it are slower (set by :class:`~cnnhw.hardware.network.Network`).
        self.input_row_cycles = self.row_elements
        self._check_plan()

    @property
    def row_elements(self) -> int:
        """Elements per input row (a feature map's ``width * channels``; a vector's length)."""
        shape = self.layer.in_shape
        return shape[0] * shape[2] if len(shape) == 3 else int(shape[0])

    # ------------------------------------------------------------------ the plan's part
    def folding_limits(self) -> tuple[int, int] | None:
        """(outputs per group that PE must divide, inputs per group word that SIMD must divide),
        or None for an op without products."""
        return None

    @property
    def packable(self) -> bool:
        """Whether two products can share a DSP (operands of at most 8 bits)."""
        return False

    def _check_plan(self) -> None:
        layer, folding = self.layer, self.plan
        for flag in ("overlap", "packed", "logic_products"):
            if not isinstance(getattr(folding, flag), bool):
                raise CnnhwError(f"plan: {flag} of layer '{layer.name}' must be true or false")
        limits = self.folding_limits()
        if folding.packed and not self.packable:
            raise CnnhwError(f"plan: layer '{layer.name}' ({layer.label}) cannot pack two products per DSP "
                             f"(only conv/dense layers with operands of at most 8 bits)")
        if folding.packed and not self.dsp.packs_two_8x8:
            raise CnnhwError(f"plan: layer '{layer.name}' cannot pack two products per DSP: the "
                             f"{self.dsp.primitive} makes one at a time (set packed to false)")
        if folding.logic_products and limits is None:
            raise CnnhwError(f"plan: layer '{layer.name}' ({layer.label}) has no products to make from logic")
        if folding.logic_products and folding.packed:
            raise CnnhwError(f"plan: layer '{layer.name}': products are either packed into DSPs or made of "
                             f"logic (logic_products), not both")
        if folding.weights not in WEIGHT_HOMES:
            raise CnnhwError(f"plan: weights of layer '{layer.name}' must be one of {', '.join(WEIGHT_HOMES)}, "
                             f"not {folding.weights!r}")
        if limits is None and folding.biases_in_logic:
            raise CnnhwError(f"plan: layer '{layer.name}' ({layer.label}) has no biases to keep in logic")
        if limits is None and folding.weights != WeightHome.ROM:
            raise CnnhwError(f"plan: layer '{layer.name}' ({layer.label}) has no weights to place in "
                             f"{folding.weights.value}")
        if limits is None:
            if (folding.pe, folding.simd) != (1, 1):
                raise CnnhwError(f"plan: layer '{layer.name}' ({layer.label}) has no PE/SIMD folding")
            return
        outputs, inputs = limits
        for what, value, limit in (("pe", folding.pe, outputs), ("simd", folding.simd, inputs)):
            if not isinstance(value, int) or value < 1 or limit % value:
                raise CnnhwError(f"plan: {what} {value} of layer '{layer.name}' must divide {limit} "
                                 f"(choose from {divisors(limit)})")
        if not isinstance(folding.digit_bits, int) or folding.digit_bits < 1:
            raise CnnhwError(f"plan: digit_bits of layer '{layer.name}' must be a positive int")

    def boundary_wait(self, rows: int) -> int:
        """Cycles a stage waits for ``rows`` input rows of the next image (``WindowGeometry.boundary_rows``):
        exact when they come from the accelerator's input, one element per cycle; after slower
        stages an upper estimate, as those stages may have produced part of them while blocked."""
        return rows * max(self.row_elements, self.input_row_cycles)

    # ------------------------------------------------------------------ costs
    @property
    def has_stage(self) -> bool:
        """Whether the op is a pipeline stage (a flatten moves no data and has none)."""
        return True

    @property
    def cycles(self) -> int:
        """Cycles per image, steady state."""
        return 0

    def timing(self, upstream: Producer) -> Producer:
        """The stage's latency model: a producer of its output stream pulling its input from
        ``upstream`` (:mod:`cnnhw.hardware.timing`). Element-wise stages and reshapes pass each
        element on in the cycle it comes."""
        return upstream

    def memories(self) -> list[MemoryShape]:
        return []

    @property
    def products(self) -> int:
        """Weight-by-activation products per cycle."""
        return 0

    @property
    def dsps(self) -> int:
        """DSPs of the op: its products' and its rescaler's."""
        return 0

    @property
    def product_dsps(self) -> int:
        """DSPs of the products alone (what moving them into logic would free)."""
        return 0

    @property
    def products_in_logic(self) -> int:
        return 0

    @property
    def weight_bits_per_cycle(self) -> int:
        return 0

    def logic_terms(self) -> dict[str, float]:
        """The logic-cell model's terms of the op's blocks (``cnnhw.plan.logic``); memories are
        priced by the planner, which knows the board's block RAMs."""
        return {}

    def output_order(self, input_order):
        """The golden (C-order) index of each element of the output stream."""
        return stream_order(self.layer.out_shape)

    # ------------------------------------------------------------------ hardware
    def create(self, input_order, first_block: int = 0) -> wiring.Component:
        """The op's stage; ``input_order``: the order of its input stream; ``first_block``: the
        first SPRAM block its weights may use (ops with weights in SPRAM)."""
        raise NotImplementedError


class Stage(wiring.Component):
    """A layer's stage: ``i`` and ``o`` element streams in the layer's formats, and ``load`` (the
    loader's bus) when its weights are in SPRAM. ``layer`` is the quantized layer it computes."""

    def __init__(self, layer, spram: bool = False):
        self.layer = layer
        members = {"i": In(stream.Signature(element_shape(layer.in_format))),
                   "o": Out(stream.Signature(element_shape(layer.out_format)))}
        if spram:
            members["load"] = In(LoadSignature())
        super().__init__(members)


def chain(m, stage: wiring.Component, parts) -> None:
    """Add ``parts`` as submodules and connect stage.i -> parts[0] -> ... -> parts[-1] -> stage.o."""
    previous = wiring.flipped(stage.i)
    for index, part in enumerate(parts):
        m.submodules[f"part{index}_{type(part).__name__.lower()}"] = part
        wiring.connect(m, previous, part.i)
        previous = part.o
    wiring.connect(m, previous, wiring.flipped(stage.o))
