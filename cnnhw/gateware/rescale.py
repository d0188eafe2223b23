"""Rescaler: ``y = finish(value * M[index])``, the multiply-and-round step of requantization
and of average pooling, with the rounding/saturation taken from the rule (``cnnhw.quant.arith``,
``cnnhw.quant.tflite_arith`` or ``cnnhw.quant.onnx_arith``).

The product is built ``digit_bits`` multiplier bits per cycle (most significant first).

* ``digit_bits >= multiplier bits`` is one full multiply (a DSP with yosys ``-dsp``) and the
  rescaler is a pipeline: one value per cycle. A value taken is offered ``latency = 3 + table +
  partials + finish_stages`` cycles later (input register, the multiplier read from a table in
  memory, on a family whose DSP rule has ``registered_products`` the partial products' registers,
  the product register, the rule's pipeline registers, ``keep(value, stage=True)``, and the output
  queue). The partial products (``RescalerParameters.product_pieces``) are one DSP each, from
  slices of the value and of the multiplier; they are added in the next cycle: a 32 x 31-bit
  TFLite multiply is four MULT18X18Ds whose outputs, joined by carry chains in the same cycle,
  made ResNet-8's critical path on the ECP5-85F (18.7 ns). The pipeline never stalls: results
  wait in a queue of ``latency + 1`` entries, and a value is taken while fewer than that many
  are taken and not yet handed over, so that
  ``i.ready`` comes from a register (no ready path through the rescaler) and the rate is one value
  per cycle while the consumer keeps up.
* Fewer bits trade cycles for logic: shifted adds, one digit per cycle, in a unit that takes a
  value when idle. The finish's registers settle while the product is held, ``finish_stages``
  cycles (:func:`finish_stages`). One value per ``steps + 2 + finish_stages`` cycles, where
  ``steps = ceil(multiplier_bits / digit_bits)``, plus one when the multipliers are in a memory;
  the result is offered one cycle before the next value can be taken.

Handshake: ``o`` holds its payload until ``ready``.

The multiplier table is logic (a constant multiplexer) for up to ``TABLE_IN_LOGIC_MAX`` entries
and a ROM beyond (yosys puts a large one in block RAM): a dense layer's 100+ per-channel
multipliers cost hundreds of LUTs as logic. The ROM's synchronous read costs one cycle per value.
A table whose entries are all equal is a constant. A rule whose finish differs by index (a
TFLite layer's per-channel shifts, an onnxruntime layer's per-channel exponents) reads its own
tables at the index kept with the value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from amaranth import Array, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..families import ICE40, DspRule
from .memories import MemoryShape, add_terms
from .tables import lookup, table_bits
from .wires import AligningStages, SettlingStages

#: Largest multiplier table kept in logic (see the module docstring).
TABLE_IN_LOGIC_MAX = 32


#: ``RescalerParameters.for_rule``'s answers: (id(rule), value_bits, digit_bits, dsp, out_bits) -> (rule, parameters).
_FOR_RULE: dict = {}


@dataclass(frozen=True)
class RescalerParameters:
    """What a Rescaler costs, known before it is built: ``value_bits`` wide values, multipliers of
    ``multiplier_bits``, ``entries`` of them per table, ``tables`` tables (two with negative
    multipliers), ``digit_bits`` multiplier bits per cycle; ``dsp``: how yosys puts a whole
    multiply on the family's DSPs; ``out_bits`` wide results."""

    value_bits: int
    multiplier_bits: int
    entries: int
    digit_bits: int
    tables: int = 1
    finish_terms: tuple[tuple[str, float], ...] = ()
    finish_stages: int = 0
    dsp: DspRule = ICE40.dsp
    out_bits: int = 8

    @staticmethod
    def for_rule(rule, value_bits: int, digit_bits: int, dsp: DspRule = ICE40.dsp,
                 out_bits: int = 8) -> "RescalerParameters":
        """For a rule with ``multipliers``, ``negative_multipliers`` and ``finish_structure``: a
        ``Requantizer`` or ``AverageDivider`` (``cnnhw.quant.arith``), TFLite's or onnxruntime's.
        Remembered per rule object (rules are immutable; the planner asks for the same ones in
        thousands of candidate plans)."""
        key = (id(rule), value_bits, digit_bits, dsp, out_bits)
        known = _FOR_RULE.get(key)
        if known is None or known[0] is not rule:  # the rule is kept with its answer: its id stays its own
            known = _FOR_RULE[key] = (rule, RescalerParameters._for_rule(rule, value_bits, digit_bits, dsp, out_bits))
        return known[1]

    @staticmethod
    def _for_rule(rule, value_bits: int, digit_bits: int, dsp: DspRule, out_bits: int) -> "RescalerParameters":
        negative = rule.negative_multipliers
        entries = table_entries(rule.multipliers, negative)
        # A finish beyond cnnhw's own rounding (whose cost the fitted rescaler terms hold) has
        # product-wide steps of its own: adds, compares and multiplexer stages across the product,
        # priced as adder bits; and the per-index tables it reads (logic).
        tables, steps = rule.finish_structure()
        product_bits = value_bits + rule.multiplier_bits + 2
        terms = {"table_bits": sum(table_bits(entries, width) for entries, width in tables),
                 "sum_bits": product_bits * steps}
        return RescalerParameters(value_bits, rule.multiplier_bits, entries, digit_bits,
                                  1 if negative is None else 2,
                                  tuple((name, value) for name, value in terms.items() if value),
                                  finish_stages(rule), dsp, out_bits)

    @property
    def digit(self) -> int:
        """Multiplier bits per cycle, as built (at least one, at most the whole multiplier)."""
        return max(1, min(self.digit_bits, self.multiplier_bits))

    @property
    def steps(self) -> int:
        return math.ceil(self.multiplier_bits / self.digit)

    @property
    def table_in_memory(self) -> bool:
        return self.entries > TABLE_IN_LOGIC_MAX

    @property
    def pipelined(self) -> bool:
        """One whole multiply per value: the rescaler is a pipeline (see the module docstring)."""
        return self.steps == 1

    @property
    def cycles_per_value(self) -> int:
        """Cycles between values taken, while the consumer keeps up."""
        return 1 if self.pipelined else self.steps + 2 + self.table_in_memory + self.finish_stages

    @property
    def latency(self) -> int:
        """Cycles from taking a value to offering its result, when nothing waits."""
        if self.pipelined:
            return 3 + self.table_in_memory + bool(self.product_pieces) + self.finish_stages
        return self.cycles_per_value - 1

    @property
    def product_pieces(self) -> tuple[tuple[int, int, int, int], ...]:
        """The partial products a pipeline registers before it adds them, on a family whose DSP
        rule has ``registered_products`` and for a multiply yosys puts on DSPs: (value slice start,
        width, multiplier slice start, width) of each, one DSP apiece. The value's slices (of its
        register, ``value_bits + 1`` wide) are unsigned but the top one, signed; the multiplier's
        are a bit narrower than a DSP operand, so that beside a signed slice their zero sign bit
        still fits. Empty: the product is one ``*``."""
        if not (self.pipelined and self.dsp.registered_products
                and self.dsp.dsps_of_product(self.value_bits, self.digit + 1)):
            return ()
        values = even_slices(self.value_bits + 1, self.dsp.piece_bits)
        multipliers = even_slices(self.multiplier_bits, self.dsp.piece_bits - 1)
        return tuple((vs, vw, ms, mw) for vs, vw in values for ms, mw in multipliers)

    @property
    def queue_entries(self) -> int:
        """A pipeline's output queue: values taken and not yet handed over, at most (0: none)."""
        return self.latency + 1 if self.pipelined else 0

    def memories(self) -> list[MemoryShape]:
        if not self.table_in_memory:
            return []
        return [MemoryShape("rescale multipliers", self.tables * self.multiplier_bits, self.entries, rom=True)]

    @property
    def dsps(self) -> int:
        """None while it multiplies a few bits per cycle (shifted adds in logic); a whole multiplier
        per cycle is a ``*`` of the signed value by it, which yosys maps: the value's register has a
        sign bit to spare (yosys merges it away: ``value_bits``), the unsigned multiplier gains a
        zero sign bit (``digit + 1``; measured with synth_ecp5: 19-bit values by 16-bit
        multipliers take one MULT18X18D)."""
        if self.steps != 1:
            return 0
        return len(self.product_pieces) or self.dsp.dsps_of_product(self.value_bits, self.digit + 1)

    def logic_terms(self) -> dict[str, float]:
        """The logic-cell model's terms (``cnnhw.plan.logic``): control, rounding and saturation;
        registers and the product's adder; a pipeline's output queue; the shifted adds unless a DSP
        multiplies; tables in logic."""
        terms = {"rescaler": 1, "rescale_bits": 2 * self.value_bits + 2 * self.multiplier_bits}
        if self.pipelined:  # the output queue: a flip-flop per bit and its read multiplexer
            terms["ram_logic_bits"] = self.queue_entries * self.out_bits
        if not self.dsps:
            terms["rescale_digit_bits"] = (self.value_bits + 1) * self.digit
        if not self.table_in_memory:
            terms["table_bits"] = self.tables * table_bits(self.entries, self.multiplier_bits)
        return add_terms(terms, dict(self.finish_terms))


def even_slices(bits: int, widest: int) -> list[tuple[int, int]]:
    """(start, width) of the fewest slices of at most ``widest`` bits that cover ``bits``, as even
    as they come (none narrower than a DSP takes, as a remainder slice could be)."""
    count = math.ceil(bits / widest)
    widths = [bits // count + (k < bits % count) for k in range(count)]
    return [(sum(widths[:k]), width) for k, width in enumerate(widths)]


def table_entries(multipliers, negative_multipliers=None) -> int:
    """Entries a multiplier table needs: one when every entry is the same (a constant)."""
    pairs = set(zip(multipliers, negative_multipliers or [0] * len(multipliers)))
    return 1 if len(pairs) == 1 else len(multipliers)


@lru_cache(maxsize=None)
def finish_stages(rule) -> int:
    """The pipeline registers on the longest path of ``rule.finish`` (its ``keep(...,
    stage=True)``): the rule's own code run on placeholder signals, as the Rescaler runs it."""
    stages = SettlingStages()
    index = Signal(range(max(len(rule.multipliers), 2)))
    rule.finish(Signal(signed(64)), Mux, table_reader(index), stages.keep)
    return stages.depth


def table_reader(index: Signal, m: Module | None = None):
    """``at(table)`` for a rule's finish: ``table[index]``, a multiplexer of constants; with ``m``,
    its register (read a cycle ahead, at the index then, so that the multiplexer is off the
    finish's paths: a pipeline's tables are read beside its multiply)."""
    def at(table):
        shape = unsigned(max(1, max(int(v).bit_length() for v in table)))
        if m is None:
            return lookup(table, index, shape)
        entry = Signal(shape, name="table_entry")
        m.d.sync += entry.eq(lookup(table, index, shape))
        return entry
    return at


def rescale_input(value: Shape, entries: int) -> data.StructLayout:
    return data.StructLayout({"value": value, "index": range(max(entries, 2))})


class Rescaler(wiring.Component):
    """``o = rule.finish(i.value * multipliers[i.index])`` (``negative_multipliers`` when ``value < 0``).

    ``rule`` is a :class:`cnnhw.quant.arith.Requantizer` or ``AverageDivider``, TFLite's
    ``TFLiteRequantizer`` or ``TFLiteAverage``, or onnxruntime's ``OnnxRequantizer``: this unit
    only forms the exact product; the rule decides rounding and saturation, reading any per-index
    table it has at the value's index (``finish(product, Mux, at, keep)``).
    """

    def __init__(self, parameters: RescalerParameters, rule, value: Shape, out: Shape):
        """``parameters``: the rule's (``RescalerParameters.for_rule``), so that what the cost model
        priced is what is built; ``value`` and ``out``: shapes of their widths."""
        self.value_shape = Shape.cast(value)
        self.out_shape = Shape.cast(out)
        if (self.value_shape.width, self.out_shape.width) != (parameters.value_bits, parameters.out_bits):
            raise ValueError(f"a rescaler of {parameters.value_bits}-bit values and {parameters.out_bits}-bit results "
                             f"built for {self.value_shape} values and {self.out_shape} results")
        self.parameters = parameters
        self.rule = rule
        self.multipliers = tuple(int(m) for m in rule.multipliers)
        negatives = rule.negative_multipliers
        self.negative_multipliers = None if negatives is None else tuple(int(m) for m in negatives)
        self.multiplier_bits = parameters.multiplier_bits
        self.digit_bits = parameters.digit
        self.steps = parameters.steps
        super().__init__({
            "i": In(stream.Signature(rescale_input(self.value_shape, len(self.multipliers)))),
            "o": Out(stream.Signature(self.out_shape)),
        })

    @property
    def table_in_memory(self) -> bool:
        return self.parameters.table_in_memory

    @property
    def cycles_per_value(self) -> int:
        return self.parameters.cycles_per_value

    def memories(self) -> list[MemoryShape]:
        return self.parameters.memories()

    def elaborate(self, platform):
        m = Module()
        if self.parameters.pipelined:
            self._pipeline(m)
        else:
            self._sequential(m)
        return m

    def _multiplier_table(self, m: Module, index, value):
        """The multiplier for ``value`` at ``index`` (the stream's offer): from logic, the cycle it
        is asked; from the ROM (``table_in_memory``), the cycle after, with ``value`` then the
        value asked with (it picks the negative multiplier)."""
        width = self.multiplier_bits
        if self.table_in_memory:
            words = [m_pos | (m_neg << width) for m_pos, m_neg in
                     zip(self.multipliers, self.negative_multipliers or [0] * len(self.multipliers))]
            table = Memory(shape=self.memories()[0].width, depth=len(words), init=words)
            m.submodules.table = table
            table_read = table.read_port()
            m.d.comb += table_read.addr.eq(index)
            chosen = table_read.data[:width]
            if self.negative_multipliers is not None:
                chosen = Mux(value < 0, table_read.data[width:], chosen)
            return chosen
        constant = self.parameters.entries == 1
        chosen = lookup(self.multipliers[:1] if constant else self.multipliers, index, unsigned(width))
        if self.negative_multipliers is not None:
            negatives = self.negative_multipliers[:1] if constant else self.negative_multipliers
            chosen = Mux(self.i.payload.value < 0, lookup(negatives, index, unsigned(width)), chosen)
        return chosen

    def _pipeline(self, m: Module):
        """One value per cycle (the module docstring): registers that move every cycle, each with
        the valid bit of the value it holds, into a queue that ``i.ready`` keeps from overflowing."""
        parameters = self.parameters
        taken = self.i.valid & self.i.ready
        # Input register: the value, its index and (a table in logic) its multiplier.
        value = Signal(signed(self.value_shape.width + 1))
        index = Signal.like(self.i.payload.index)
        valid = Signal()
        m.d.sync += [value.eq(self.i.payload.value), index.eq(self.i.payload.index), valid.eq(taken)]
        multiplier = Signal(unsigned(self.multiplier_bits))
        chosen = self._multiplier_table(m, self.i.payload.index, value)
        if self.table_in_memory:
            # The ROM's word arrives with the input register; one more register before the multiply.
            later_value, later_index, later_valid = Signal.like(value), Signal.like(index), Signal()
            m.d.sync += [later_value.eq(value), later_index.eq(index), later_valid.eq(valid), multiplier.eq(chosen)]
            value, index, valid = later_value, later_index, later_valid
        else:
            m.d.sync += multiplier.eq(chosen)
        # The multiply is between registers (one full product: what a DSP is for).
        product = Signal(signed(self.value_shape.width + self.multiplier_bits + 2))
        product_valid = Signal()
        if parameters.product_pieces:
            # Each partial product is a DSP's, in a register; the next cycle adds them.
            partials = []
            top = max(start for start, _, _, _ in parameters.product_pieces)
            for v_start, v_width, m_start, m_width in parameters.product_pieces:
                piece = value[v_start:v_start + v_width]
                piece = piece.as_signed() if v_start == top else piece
                partial = Signal(signed(v_width + m_width + 1) if v_start == top else unsigned(v_width + m_width),
                                 name=f"partial_{v_start}_{m_start}")
                m.d.sync += partial.eq(piece * multiplier[m_start:m_start + m_width])
                partials.append(partial.shift_left(v_start + m_start))
            later_index, partials_valid = Signal.like(index), Signal()
            m.d.sync += [later_index.eq(index), partials_valid.eq(valid),
                         product.eq(sum(partials)), product_valid.eq(partials_valid)]
            index = later_index
        else:
            m.d.sync += [product.eq(value * multiplier), product_valid.eq(valid)]
        stages = AligningStages(m)
        # The finish's per-index tables are registers beside the product's, read at its index.
        result = self.rule.finish(product, Mux, table_reader(index, m), stages.keep)
        assert stages.depth_of(result) == stages.depth == parameters.finish_stages, "finish_stages runs the same code"
        arrived = product_valid
        for stage in range(parameters.finish_stages):
            later = Signal(name=f"valid_stage{stage}")
            m.d.sync += later.eq(arrived)
            arrived = later
        self._queue(m, result, arrived, taken)

    def _queue(self, m: Module, result, arrived, taken):
        """The output queue: ``result`` goes in at the end of each cycle ``arrived``; ``i.ready``
        while fewer than ``queue_entries`` values are taken and not handed over."""
        entries = self.parameters.queue_entries
        slots = Array(Signal(self.out_shape, name=f"queued{k}") for k in range(entries))
        write, read = Signal(range(entries)), Signal(range(entries))
        waiting = Signal(range(entries + 1))  # in the queue
        owed = Signal(range(entries + 1))  # taken and not handed over (in the pipeline or the queue)
        handed = self.o.valid & self.o.ready
        m.d.comb += [self.i.ready.eq(owed < entries), self.o.valid.eq(waiting != 0), self.o.payload.eq(slots[read])]
        with m.If(arrived):
            m.d.sync += [slots[write].eq(result), write.eq(Mux(write == entries - 1, 0, write + 1))]
        with m.If(handed):
            m.d.sync += read.eq(Mux(read == entries - 1, 0, read + 1))
        m.d.sync += [waiting.eq(waiting + arrived - handed), owed.eq(owed + taken - handed)]

    def _sequential(self, m: Module):
        """A few multiplier bits per cycle (the module docstring): a unit that takes a value when idle."""
        width = self.multiplier_bits
        digit = self.digit_bits
        padded = self.steps * digit  # the multiplier, padded at the top to whole digits
        product_bits = self.value_shape.width + width + 2
        value = Signal(signed(self.value_shape.width + 1))
        multiplier = Signal(unsigned(padded))
        product = Signal(signed(product_bits))
        steps_left = Signal(range(self.steps + 1))

        chosen = self._multiplier_table(m, self.i.payload.index, value)
        # The index of the value being multiplied, for a rule whose finish reads per-index tables.
        index = Signal.like(self.i.payload.index)
        # The finish reads only the product and the index, which stay put from the last multiply
        # step until the result is taken: its pipeline registers settle meanwhile. Its per-index
        # tables are registers, read the cycle after the index is (long before the last step):
        # otherwise the lookup would sit at the start of the finish's first path (ResNet-8's
        # critical path on the ECP5-85F: 4.6 of its 17.8 ns).
        stages = SettlingStages(m)
        result = self.rule.finish(product, Mux, table_reader(index, m), stages.keep)
        settle_cycles = self.parameters.finish_stages
        assert stages.depth == settle_cycles, "finish_stages runs the same code"
        settling = Signal(range(max(settle_cycles, 2)))

        # A few bits per cycle: shifted adds, written out so that yosys keeps them in logic
        # instead of spending a DSP on a narrow product.
        top_digit = multiplier[padded - digit:]
        partial = sum(Mux(top_digit[bit], value << bit, 0) for bit in range(digit))
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [value.eq(self.i.payload.value), index.eq(self.i.payload.index), product.eq(0),
                                 steps_left.eq(self.steps)]
                    if self.table_in_memory:
                        m.next = "LOAD"  # the table is read at this cycle's index
                    else:
                        m.d.sync += multiplier.eq(chosen)
                        m.next = "MULTIPLY"
            if self.table_in_memory:
                with m.State("LOAD"):
                    m.d.sync += multiplier.eq(chosen)
                    m.next = "MULTIPLY"
            with m.State("MULTIPLY"):
                m.d.sync += [product.eq((product << digit) + partial),
                             multiplier.eq(multiplier << digit), steps_left.eq(steps_left - 1)]
                with m.If(steps_left == 1):
                    m.next = "SETTLE" if settle_cycles else "DONE"
                    if settle_cycles:
                        m.d.sync += settling.eq(settle_cycles - 1)
            if settle_cycles:
                with m.State("SETTLE"):
                    m.d.sync += settling.eq(settling - 1)
                    with m.If(settling == 0):
                        m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(result)]
                with m.If(self.o.ready):
                    m.next = "IDLE"
