"""Where branches leave and meet: a fork that copies a stream to several readers, a FIFO that lets
a short branch run ahead of a long one, and the joins (Add, Concat) that requantize each input to
the output scale.

A join's multipliers are constants: each product is written out as shifted adds and subtracts of
the input, one per non-zero digit of the multiplier in non-adjacent form (``signed_digits``: about
a third of the bits, against half for plain binary), so that yosys keeps them in logic and the
DSPs stay with the convolutions; the rest is the rule's own ``sum_of`` (cnnhw's: the Requantizer's
``finish`` of the sum; TFLite's ADD: a rescaling of each input and of the sum, pipelined).
"""

from __future__ import annotations

from functools import lru_cache, partial

from amaranth import Cat, Module, Mux, Shape, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..quant.arith import Requantizer
from .fifo import RegisterFIFO
from .memories import MemoryShape, counter_bits
from .wires import PipelineStages, wire_for

#: FIFOs up to this depth are registers (``RegisterFIFO``); deeper ones a memory.
REGISTER_FIFO_DEPTH = 4
#: Adder levels between the registers of a staged product of a constant (``times_constant``).
TREE_LEVELS_PER_STAGE = 2


class Fork(wiring.Component):
    """``i`` copied to ``o0`` ... ``o{n-1}``: each output takes the element in its own cycle, and the
    input is taken in the cycle the last of them takes it. Combinational (no latency); one element
    per cycle when every output is ready."""

    @staticmethod
    def logic_terms(outputs: int) -> dict[str, float]:
        """The logic-cell model's terms (``cnnhw.plan.logic``): a taken flag per output."""
        return {"packer_bits": outputs}

    def __init__(self, shape, outputs: int):
        self.shape, self.outputs = Shape.cast(shape), outputs
        super().__init__({"i": In(stream.Signature(self.shape)),
                          **{f"o{k}": Out(stream.Signature(self.shape)) for k in range(outputs)}})

    def ports(self) -> list:
        return [getattr(self, f"o{k}") for k in range(self.outputs)]

    def elaborate(self, platform):
        m = Module()
        ports = self.ports()
        taken = Signal(self.outputs)  # the outputs that have the current element already
        for k, port in enumerate(ports):
            m.d.comb += [port.valid.eq(self.i.valid & ~taken[k]), port.payload.eq(self.i.payload)]
        done = Cat(taken[k] | port.ready for k, port in enumerate(ports))
        m.d.comb += self.i.ready.eq(done.all())
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += taken.eq(0)
        with m.Elif(self.i.valid):
            m.d.sync += taken.eq(taken | Cat(port.valid & port.ready for port in ports))
        return m


class StreamFIFO(wiring.Component):
    """Up to ``depth`` elements between ``i`` and ``o``; ``i`` is ready while fewer than ``depth`` are
    held. An element taken at cycle ``t`` is offered from ``t + latency`` on: 1 for up to
    ``REGISTER_FIFO_DEPTH`` elements (registers), 2 beyond (a memory read through a register: a
    block RAM)."""

    @staticmethod
    def latency_of(depth: int) -> int:
        return 1 if depth <= REGISTER_FIFO_DEPTH else 2

    @staticmethod
    def logic_terms(width: int, depth: int) -> dict[str, float]:
        """The logic-cell model's terms: the pointers and levels (and the entries, when they are
        registers), priced as a packer's word registers."""
        registers = 3 * counter_bits(depth + 1) + (width * depth if depth <= REGISTER_FIFO_DEPTH else 0)
        return {"packer_bits": registers}

    def __init__(self, shape, depth: int):
        if depth < 1:
            raise ValueError(f"a FIFO holds at least one element, not {depth}")
        self.shape, self.depth = Shape.cast(shape), depth
        self.latency = self.latency_of(depth)
        super().__init__({"i": In(stream.Signature(self.shape)), "o": Out(stream.Signature(self.shape))})

    @staticmethod
    def memories_of(width: int, depth: int) -> list[MemoryShape]:
        """The memories a FIFO of ``depth`` entries of ``width`` bits creates."""
        return [] if depth <= REGISTER_FIFO_DEPTH else [MemoryShape("branch FIFO", width, depth)]

    def memories(self) -> list[MemoryShape]:
        return self.memories_of(self.shape.width, self.depth)

    def elaborate(self, platform):
        m = Module()
        width = self.shape.width
        if self.depth <= REGISTER_FIFO_DEPTH:
            m.submodules.fifo = fifo = RegisterFIFO(width, self.depth)
            m.d.comb += [fifo.w_data.eq(self.i.payload), fifo.w_en.eq(self.i.valid), self.i.ready.eq(fifo.w_rdy),
                         self.o.payload.eq(fifo.r_data), self.o.valid.eq(fifo.r_rdy), fifo.r_en.eq(self.o.ready)]
            return m
        (shape,) = self.memories()
        m.submodules.memory = memory = Memory(shape=width, depth=shape.depth, init=[])
        write, read = memory.write_port(), memory.read_port()
        head = Signal(range(self.depth))  # the next entry to read
        tail = Signal(range(self.depth))  # the next entry to write
        stored = Signal(range(self.depth + 1))  # entries written and not yet read
        held = Signal(range(self.depth + 1))  # elements held, the one on the output included
        take = self.i.valid & self.i.ready
        sent = self.o.valid & self.o.ready
        # The read port gives the entry at `head` the cycle after it is addressed; the output is that
        # data, kept (the port disabled) until it is read.
        advance = (~self.o.valid | self.o.ready) & (stored != 0)
        m.d.comb += [self.i.ready.eq(held != self.depth), write.addr.eq(tail), write.data.eq(self.i.payload),
                     write.en.eq(take), read.addr.eq(head), read.en.eq(advance), self.o.payload.eq(read.data)]
        with m.If(take):
            m.d.sync += tail.eq(Mux(tail == self.depth - 1, 0, tail + 1))
        with m.If(advance):
            m.d.sync += head.eq(Mux(head == self.depth - 1, 0, head + 1))
        m.d.sync += [stored.eq(stored + take - advance), held.eq(held + take - sent)]
        with m.If(advance):
            m.d.sync += self.o.valid.eq(1)
        with m.Elif(sent):
            m.d.sync += self.o.valid.eq(0)
        return m


def signed_digits(constant: int) -> list[tuple[int, int]]:
    """``constant`` (a non-negative integer) in non-adjacent form: (bit, +1 or -1) pairs with
    ``sum(sign << bit) == constant`` and no two adjacent bits non-zero, the fewest non-zero
    digits of any signed-binary form."""
    digits, bit = [], 0
    while constant:
        if constant & 1:
            sign = 2 - (constant & 3)  # +1 when the next bit is 0, -1 (carrying up) when it is 1
            digits.append((bit, sign))
            constant -= sign
        constant >>= 1
        bit += 1
    return digits


def adders_of(constant: int) -> int:
    """Adders (or subtractors) that ``times_constant`` spends on ``constant``: one per digit."""
    return len(signed_digits(constant))


def tree_stages(constant: int) -> int:
    """The registers :func:`times_constant` puts in a staged product by ``constant``: one after
    every ``TREE_LEVELS_PER_STAGE`` of the ``ceil(log2(digits))`` levels below the root."""
    levels = (len(signed_digits(constant)) - 1).bit_length()
    return max(levels - 1, 0) // TREE_LEVELS_PER_STAGE


def times_constant(value, constant: int, stage: bool = False, keep=None, stages: int | None = None):
    """``value * constant`` (a non-negative integer) as shifted adds and subtracts of ``value``,
    one per digit of :func:`signed_digits`.

    Unstaged, a chain from the highest digit (+1, so the sum starts there). With ``stage`` and
    ``keep`` (a ``SettlingStages.keep``), a balanced tree of the digits with a register after
    every ``TREE_LEVELS_PER_STAGE`` levels below the root (a 31-bit multiplier has up to 16 digits:
    four levels of 50-bit adders are too long a path for the board's clock), :func:`tree_stages`
    in all, then registers of the product up to ``stages`` when given, so that products by
    different constants come out of a pipeline together. The caller registers the product itself
    if it wants."""
    digits = signed_digits(constant)
    if not (stage and keep):
        if not digits:
            return value * 0
        bit, _ = digits[-1]
        total = value << bit
        for bit, sign in reversed(digits[:-1]):
            total = total + (value << bit) if sign > 0 else total - (value << bit)
        return total
    # Each term is (magnitude, sign); the highest digit is +1, so the root's sign is +1.
    terms = [(value << bit, sign) for bit, sign in digits] or [(value * 0, 1)]
    level = 0
    while len(terms) > 1:
        pairs = [_combine(*terms[k:k + 2]) for k in range(0, len(terms) - 1, 2)]
        terms = pairs + terms[len(pairs) * 2:]
        level += 1
        if len(terms) > 1 and level % TREE_LEVELS_PER_STAGE == 0:
            terms = [(keep(term, stage=True), sign) for term, sign in terms]
    (total, sign), = terms
    assert sign > 0
    for _ in range((stages or 0) - tree_stages(constant)):
        total = keep(total, stage=True)
    return total


def _combine(a, b):
    """Two signed terms of :func:`times_constant`'s tree as one."""
    (x, sx), (y, sy) = a, b
    if sx == sy:
        return x + y, sx
    return (x - y, sx) if sx > 0 else (y - x, sy)


class AddUnit(wiring.Component):
    """``o = requant.sum_of(i0, i1, ...)`` element by element (cnnhw's ``finish(i0 * M[0] + i1 *
    M[1])``, or TFLite's ADD), each product of a constant written out as shifted adds
    (:func:`times_constant`). The inputs are taken in the same cycle, when all are offered and the
    unit can move on: one element per cycle.

    Without pipeline stages in the rule, the sum goes into the output register: offered the cycle
    after the take, and a new element taken when the register is empty or being read. A rule
    whose sum is pipelined (``keep(..., stage=True)``, and products asked for with ``stage``:
    TFLite's ADD, two roundings per input and two of the sum) is a pipeline of
    :meth:`stages_of` registers after the input registers, every product padded to the deepest
    one's registers (``times_constant``'s ``stages``) so that the paths stay aligned: the result
    is offered ``latency_of = 1 + stages`` cycles after the take, when nothing holds it up.
    Handshake: every register moves in each cycle the output is empty or being read, and none
    moves otherwise (a global stall)."""

    @staticmethod
    def _multiply(requant, in_bits, keep):
        """``multiply`` for the rule's ``sum_of``: staged products padded to the deepest tree."""
        deepest = max(tree_stages(constant) for _, constant in requant.constant_products(list(in_bits)))
        return partial(times_constant, keep=keep, stages=deepest)

    @staticmethod
    @lru_cache(maxsize=None)
    def stages_of(in_shapes: tuple[Shape, ...], requant) -> int:
        """The pipeline registers of ``requant.sum_of`` over inputs of ``in_shapes``: the rule's
        own code run on placeholder signals, as the unit runs it."""
        stages = PipelineStages()
        multiply = AddUnit._multiply(requant, [shape.width for shape in in_shapes], stages.keep)
        result = requant.sum_of([Signal(shape) for shape in in_shapes], multiply, Mux, stages.keep)
        # The valid bits follow the result: no kept value may lie deeper than it.
        if stages.depth_of(result) != stages.depth:
            raise ValueError(f"{type(requant).__name__}.sum_of keeps a value {stages.depth} registers deep but "
                             f"returns one {stages.depth_of(result)} deep")
        return stages.depth

    @classmethod
    def latency_of(cls, in_shapes, requant) -> int:
        """Cycles from the take of the inputs to the offer of their result, when nothing stalls."""
        return 1 + cls.stages_of(tuple(Shape.cast(shape) for shape in in_shapes), requant)

    @staticmethod
    def logic_terms(in_bits, requant) -> dict[str, float]:
        """The logic-cell model's terms: an adder per digit of each constant product
        (``adders_of``), as wide as its operand and constant (a 16-bit constant at most: the
        bits below a product's rounding point need no carry chain of their own beyond that),
        the rounding and saturation, and the output register. A pipeline's registers are not
        priced apart: they sit in the cells of the adders they follow (an iCE40 logic cell is a
        LUT and a flip-flop; a residual block with a TFLite ADD: 4,754 estimated, 4,422 packed)."""
        products = requant.constant_products(list(in_bits))
        adder_bits = sum(adders_of(constant) * (bits + min(constant.bit_length(), 16) + 1)
                         for bits, constant in products)
        width = max(bits for bits, _ in products) + max(constant.bit_length() for _, constant in products) + 1
        return {"sum_bits": adder_bits, "rescaler": 1, "packer_bits": width}

    def __init__(self, in_shapes, out_shape, requant):
        self.in_shapes = [Shape.cast(shape) for shape in in_shapes]
        self.out_shape, self.requant = Shape.cast(out_shape), requant
        self.stages = self.stages_of(tuple(self.in_shapes), requant)
        super().__init__({**{f"i{k}": In(stream.Signature(shape)) for k, shape in enumerate(self.in_shapes)},
                          "o": Out(stream.Signature(self.out_shape))})

    def elaborate(self, platform):
        m = Module()
        inputs = [getattr(self, f"i{k}") for k in range(len(self.in_shapes))]
        values = [port.payload.as_signed() if port.payload.shape().signed else port.payload for port in inputs]
        every = Cat(port.valid for port in inputs).all()
        advance = ~self.o.valid | self.o.ready
        for port in inputs:
            m.d.comb += port.ready.eq(advance & every)
        if not self.stages:
            with m.If(advance):
                m.d.sync += self.o.valid.eq(every)
                with m.If(every):
                    m.d.sync += self.o.payload.eq(self.requant.sum_of(values, times_constant, Mux, wire_for(m)))
            return m
        held = [Signal.like(value, name=f"held{k}") for k, value in enumerate(values)]
        valid = [Signal(name=f"valid{k}") for k in range(self.stages + 1)]  # which registers hold an element
        with m.If(advance):
            m.d.sync += [register.eq(value) for register, value in zip(held, values)]
            m.d.sync += [valid[0].eq(every)] + [later.eq(earlier) for earlier, later in zip(valid, valid[1:])]
        stages = PipelineStages(m, advance)
        multiply = self._multiply(self.requant, [shape.width for shape in self.in_shapes], stages.keep)
        result = self.requant.sum_of(held, multiply, Mux, stages.keep)
        assert stages.depth_of(result) == self.stages, "the sum built with other stages than it was counted with"
        m.d.comb += [self.o.payload.eq(result), self.o.valid.eq(valid[-1])]
        return m


class ConcatUnit(wiring.Component):
    """Each pixel's ``channels[k]`` elements of input ``k`` in turn, each as
    ``requant.finish(x * M[k])``: an element is taken when it is offered and the output register is
    empty or being read, and offered ``LATENCY`` cycle later (one element per cycle)."""

    LATENCY = 1

    @staticmethod
    def logic_terms(in_bits, requant: Requantizer, channels) -> dict[str, float]:
        width = max(in_bits) + requant.multiplier_bits + 1
        adders = sum(map(adders_of, requant.multipliers))
        return {"sum_bits": adders * width, "rescaler": 1, "packer_bits": width + 2 * counter_bits(max(channels))}

    def __init__(self, in_shapes, out_shape, requant: Requantizer, channels):
        self.in_shapes = [Shape.cast(shape) for shape in in_shapes]
        self.out_shape, self.requant, self.channels = Shape.cast(out_shape), requant, tuple(channels)
        super().__init__({**{f"i{k}": In(stream.Signature(shape)) for k, shape in enumerate(self.in_shapes)},
                          "o": Out(stream.Signature(self.out_shape))})

    def elaborate(self, platform):
        m = Module()
        inputs = [getattr(self, f"i{k}") for k in range(len(self.in_shapes))]
        source = Signal(range(max(len(inputs), 2)))  # the input the next element comes from
        channel = Signal(range(max(max(self.channels), 2)))
        advance = ~self.o.valid | self.o.ready
        width = max(shape.width for shape in self.in_shapes) + self.requant.multiplier_bits + 2
        value = Signal(signed(width))
        valid = Signal()
        for k, port in enumerate(inputs):
            with m.If(source == k):
                payload = port.payload.as_signed() if port.payload.shape().signed else port.payload
                m.d.comb += [value.eq(times_constant(payload, self.requant.multipliers[k])), valid.eq(port.valid),
                             port.ready.eq(advance)]
        with m.If(advance):
            m.d.sync += self.o.valid.eq(valid)
            with m.If(valid):
                m.d.sync += self.o.payload.eq(self.requant.finish(value, Mux))
                with m.If(channel == _channels_of(self.channels, source) - 1):
                    m.d.sync += [channel.eq(0), source.eq(Mux(source == len(inputs) - 1, 0, source + 1))]
                with m.Else():
                    m.d.sync += channel.eq(channel + 1)
        return m


def _channels_of(channels, index):
    """``channels[index]`` for a signal ``index`` (a multiplexer over the constants)."""
    value = channels[-1]
    for k in range(len(channels) - 2, -1, -1):
        value = Mux(index == k, channels[k], value)
    return value
