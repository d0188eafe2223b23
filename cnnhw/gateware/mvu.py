"""Matrix-vector unit: PE output channels in parallel, SIMD products per output per cycle.

For each incoming window (``groups`` segments of ``words_per_group`` SIMD-wide words, the
order :mod:`cnnhw.gateware.window` emits), and for each group, the unit computes
``out_per_group`` dot products ``bias[c] + sum_k w[c, k] * x[k]`` in ``out_per_group / pe``
folds of ``pe`` channels. With one fold the words go straight from the stream into the
multipliers; with several, each window is kept in an input buffer of two halves (ping-pong):
the stream fills one half while the folds read the other, so the next window arrives while
this one is still being computed. Each fold ends with one output word: the ``pe``
accumulators, for channels ``fold * pe + lane`` in order.

A *diagonal* unit (``MatrixParameters.diagonal``, depthwise convolution) has ``pe`` channels per
group and words of ``pe`` elements, and output lane ``p`` multiplies input lane ``p`` only: ``pe``
products per cycle, one per accumulator.

Weights live in a memory of ``groups * folds * words_per_group`` words of one lane per product
(``pe * simd``; ``pe`` when diagonal):
a ROM initialized from the quantized model (block RAM or LUTs, as yosys decides; with
``home=WeightHome.LOGIC`` always LUTs, yosys' ``rom_style = "logic"``), or, with
``home=WeightHome.SPRAM``, SPRAM blocks filled at boot through the ``load`` port
(:mod:`cnnhw.gateware.spram`). Both read one word per cycle, one cycle after the address.

Throughput: one input word (``simd`` products per lane) per cycle when not stalled, so
``groups * folds * words_per_group`` cycles per window. Latency (``MatrixParameters.latency``):
2 cycles from taking the last word of a fold to offering its output, 4 on a family whose DSP rule
has ``registered_products`` (weights and operands, then products, each in a register of their own). Handshake: the whole pipeline advances only when the output
register is free or being read (a global stall), so nothing is lost or duplicated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np
from amaranth import Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..families import ICE40, DspRule
from .dsp import PackedMultiplier
from .lut_mul import logic_product
from .memories import MemoryShape, counter_bits
from .spram import LoadSignature, SpramWeights, drive_load
from .rescale import TABLE_IN_LOGIC_MAX
from .tables import lookup, table_bits


class WeightHome(str, Enum):
    """Where a matrix's weights live: a ROM the bitstream initializes (block RAM or LUTs, as yosys
    decides), the same ROM always in LUTs (for a board whose block RAM runs out and that has no
    SPRAM), or SPRAM blocks the loader fills from flash at boot (``gateware/spram.py``)."""

    ROM = "rom"
    LOGIC = "logic"
    SPRAM = "spram"


@dataclass(frozen=True)
class MatrixParameters:
    """Everything about a MatrixVectorUnit but its weights: ``groups`` independent matrices of
    ``outputs`` rows by ``inputs`` columns (per group), folded as ``pe`` rows by ``simd`` columns
    per cycle; ``element_bits`` (signed or not) activations, ``weight_bits`` weights, ``acc_bits``
    accumulators. ``packed``: two products per DSP; ``logic_products``: products from logic cells;
    ``home``: where the weights live; ``dsp``: how yosys puts products on the family's DSPs;
    ``biases_in_logic``: the bias table is a multiplexer of constants however long it is.

    ``diagonal``: each group's matrix is zero but where output lane ``p`` meets input lane ``p``
    (a depthwise convolution with ``pe`` channels per group, ``simd == pe``): only those ``pe``
    products are made, one per accumulator, and only their weights are stored."""

    groups: int
    outputs: int
    inputs: int
    pe: int
    simd: int
    element_bits: int
    element_signed: bool
    weight_bits: int
    acc_bits: int
    packed: bool = False
    logic_products: bool = False
    home: WeightHome = WeightHome.ROM
    dsp: DspRule = ICE40.dsp
    biases_in_logic: bool = False
    diagonal: bool = False

    @property
    def latency(self) -> int:
        """Cycles from taking the last word of a fold to offering its output."""
        return 2 + 2 * self.dsp.registered_products

    def __post_init__(self):
        if self.outputs % self.pe:
            raise ValueError(f"pe {self.pe} must divide the {self.outputs} outputs per group")
        if self.inputs % self.simd:
            raise ValueError(f"simd {self.simd} must divide the {self.inputs} inputs per output")
        if self.packed and self.logic_products:
            raise ValueError("products are either packed into DSPs or made of logic, not both")
        if self.packed and (self.weight_bits > 8 or self.element_bits > 8):
            raise ValueError("packed products need weights and activations of at most 8 bits")
        if self.packed and not self.dsp.packs_two_8x8:
            raise ValueError(f"{self.dsp.primitive} makes one product at a time: products cannot be packed")
        if self.diagonal and not self.outputs == self.pe == self.simd:
            raise ValueError(f"a diagonal matrix has pe == simd == outputs per group, not {self.pe}, {self.simd}, "
                             f"{self.outputs}")
        WeightHome(self.home)

    @property
    def folds(self) -> int:
        return self.outputs // self.pe

    @property
    def words(self) -> int:
        """Input words (``simd`` elements) per group of a window."""
        return self.inputs // self.simd

    @property
    def banks(self) -> int:
        """(group, fold) pairs: one output word and one bias entry each."""
        return self.groups * self.folds

    @property
    def cycles_per_window(self) -> int:
        return self.banks * self.words

    @property
    def window_lead(self) -> int:
        """Cycles the unit keeps computing on windows it already holds once its input stops: with
        several folds the ping-pong buffer holds the next window while this one is computed, so
        ``2 * cycles_per_window`` of work, less the words of the window being written; with one
        fold the words go straight into the products, and none."""
        return 2 * self.cycles_per_window - self.words * self.groups if self.folds > 1 else 0

    @property
    def product_lanes(self) -> list[tuple[int, int]]:
        """(output lane, input lane) of each product, in the order of the weight word's lanes."""
        if self.diagonal:
            return [(p, p) for p in range(self.pe)]
        return [(p, s) for p in range(self.pe) for s in range(self.simd)]

    @property
    def products(self) -> int:
        """Weight-by-activation products per cycle."""
        return self.pe if self.diagonal else self.pe * self.simd

    @property
    def weight_bits_per_cycle(self) -> int:
        """Bits the weight memory delivers per cycle."""
        return self.products * self.weight_bits

    @property
    def biases_in_memory(self) -> bool:
        """Bias tables longer than the rescaler's logic limit are a ROM too (same reasons), unless
        ``biases_in_logic``."""
        return self.banks > TABLE_IN_LOGIC_MAX and not self.biases_in_logic

    @property
    def narrow_products(self) -> bool:
        """Products too narrow for yosys to put on a DSP (it builds them from logic itself)."""
        return not self.packed and not self.logic_products and \
            not self.dsp.dsps_of_product(self.element_bits, self.weight_bits)

    @property
    def dsps(self) -> int:
        if self.logic_products or self.narrow_products:
            return 0
        return math.ceil(self.products / 2) if self.packed else self.products

    @property
    def products_in_logic(self) -> int:
        """Products per cycle made of logic cells (asked for, or too narrow for a DSP)."""
        return 0 if self.dsps else self.products

    def memories(self) -> list[MemoryShape]:
        """The weight ROM (or SPRAM), with several folds the ping-pong window buffer, and a long
        bias table."""
        shapes = [MemoryShape("weights", self.weight_bits_per_cycle, max(2, self.cycles_per_window), rom=True,
                              spram=self.home == WeightHome.SPRAM, logic=self.home == WeightHome.LOGIC)]
        if self.folds > 1:
            shapes.append(MemoryShape("window buffer", self.element_bits * self.simd, 2 * self.words))
        if self.biases_in_memory:
            shapes.append(MemoryShape("biases", self.pe * self.acc_bits, self.banks, rom=True))
        return shapes

    def logic_terms(self) -> dict[str, float]:
        """The logic-cell model's terms (``cnnhw.plan.logic``): control scaled by the weight address
        width, the ping-pong buffer's control, accumulators, one adder per product, products
        in logic, and a short bias table."""
        terms = {"mvu": 1, "mvu_address_bits": counter_bits(self.cycles_per_window),
                 "mvu_buffered": int(self.folds > 1), "accumulator_bits": self.pe * self.acc_bits,
                 "sum_bits": self.products * self.acc_bits}
        product_bits = self.products * self.element_bits * self.weight_bits
        if self.logic_products:
            terms["logic_product_bits"] = product_bits
        elif self.narrow_products:
            terms["narrow_product_bits"] = product_bits
        if not self.biases_in_memory:
            terms["table_bits"] = self.pe * table_bits(self.banks, self.acc_bits)
        return terms

    def word_lanes(self, weights: np.ndarray) -> np.ndarray:
        """The weight memory's words as lanes: ``(words, lanes)``, word ``(g, f, k)`` (group, fold,
        word of the window, in that nesting) holding ``weights[g, f * pe + p, k * simd + s]`` in lane
        ``i`` for ``(p, s) = product_lanes[i]``. ``weights``: ``(groups, outputs, inputs)`` in
        window order (the values, or any array of that shape: their indices)."""
        return np.array([[weights[g, f * self.pe + p, k * self.simd + s] for p, s in self.product_lanes]
                         for g in range(self.groups) for f in range(self.folds) for k in range(self.words)])

    def rom_words(self, weights: np.ndarray) -> list[int]:
        """The weight memory's contents: :meth:`word_lanes` packed, lane 0 in the low bits."""
        return [pack_lanes(lanes, self.weight_bits) for lanes in self.word_lanes(weights)]

    def create(self, weights: np.ndarray, bias: np.ndarray, first_block: int = 0) -> "MatrixVectorUnit":
        return MatrixVectorUnit(self, weights, bias, first_block)


def pack_lanes(values, bits: int) -> int:
    """Little-endian packing of signed lanes into one integer (lane 0 in the low bits)."""
    word = 0
    for lane, value in enumerate(values):
        word |= (int(value) & ((1 << bits) - 1)) << (lane * bits)
    return word


class MatrixVectorUnit(wiring.Component):
    """See the module docstring. ``i``: words of ``simd`` elements; ``o``: ``pe`` accumulators.

    ``weights``: int ``(groups, outputs, inputs)`` in window order; ``bias``: int ``(groups *
    outputs,)``; with weights in SPRAM, blocks ``first_block`` on are this unit's."""

    def __init__(self, parameters: MatrixParameters, weights: np.ndarray, bias: np.ndarray, first_block: int = 0):
        self.parameters = mx = parameters
        if np.shape(weights) != (mx.groups, mx.outputs, mx.inputs):
            raise ValueError(f"weights of shape {np.shape(weights)} for a matrix of "
                             f"{(mx.groups, mx.outputs, mx.inputs)}")
        self.weights, self.bias = weights, bias
        self.element = signed(mx.element_bits) if mx.element_signed else unsigned(mx.element_bits)
        self.acc_shape = signed(mx.acc_bits)
        members = {
            "i": In(stream.Signature(data.ArrayLayout(self.element, mx.simd))),
            "o": Out(stream.Signature(data.ArrayLayout(self.acc_shape, mx.pe))),
        }
        self.spram = None
        if mx.home == WeightHome.SPRAM:
            self.spram = SpramWeights(mx.weight_bits_per_cycle, mx.cycles_per_window, first_block, self.rom_words)
            members["load"] = In(LoadSignature())
        super().__init__(members)

    def rom_words(self) -> list[int]:
        return self.parameters.rom_words(self.weights)

    def memories(self) -> list[MemoryShape]:
        return self.parameters.memories()

    def elaborate(self, platform):
        mx = self.parameters
        pe, simd, folds, words, groups = mx.pe, mx.simd, mx.folds, mx.words, mx.groups
        m = Module()
        lane_bits = mx.weight_bits
        if self.spram is None:
            rom_shape = self.memories()[0]
            rom = Memory(shape=rom_shape.width, depth=rom_shape.depth, init=self.rom_words(),
                         attrs={"rom_style": "logic"} if rom_shape.logic else None)
            m.submodules.rom = rom
            rom_read = rom.read_port()
        else:
            m.submodules.spram = rom_read = self.spram
            drive_load(m, self.spram.load, self.load)

        word_shape = data.ArrayLayout(self.element, simd)
        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)

        # Stage 0: the loop nest (group, fold, word) and the reads it issues.
        group = Signal(range(max(groups, 2)))
        fold = Signal(range(max(folds, 2)))
        word = Signal(range(max(words, 2)))
        address = Signal(range(max(groups * folds * words, 2)))
        bank = Signal(range(max(groups * folds, 2)))  # which (group, fold): selects the biases
        available = Signal()  # the operand word for (fold, word) can be read now
        fire = Signal()
        m.d.comb += [fire.eq(advance & available), rom_read.addr.eq(address), rom_read.en.eq(advance)]

        if folds == 1:
            # Every word is used once: straight from the stream into stage 1.
            m.d.comb += [available.eq(self.i.valid), self.i.ready.eq(advance)]
        else:
            # Every window is replayed `folds` times: an input buffer of two halves (ping-pong). The
            # stream fills one half while the folds read the other, and fold 0 may read a word as
            # soon as it has been written, so input and computation overlap fully.
            buffer = Memory(shape=Shape.cast(word_shape), depth=self.memories()[1].depth, init=[])
            m.submodules.buffer = buffer
            buffer_write, buffer_read = buffer.write_port(), buffer.read_port()
            write_half, read_half = Signal(), Signal()
            written = Signal(range(words + 1))  # words written into write_half so far
            full = Signal(2)  # halves holding a whole window not yet used up
            wrote = self.i.valid & self.i.ready
            m.d.comb += [
                self.i.ready.eq(~full.bit_select(write_half, 1)),
                buffer_write.addr.eq(write_half * words + written),
                buffer_write.data.eq(self.i.payload),
                buffer_write.en.eq(wrote),
                available.eq(full.bit_select(read_half, 1) | ((write_half == read_half) & (written > word))),
                buffer_read.addr.eq(read_half * words + word),
                buffer_read.en.eq(advance),
            ]
            finished_window = fire & (word == words - 1) & (fold == folds - 1)
            with m.If(wrote):
                with m.If(written == words - 1):
                    m.d.sync += [written.eq(0), write_half.eq(~write_half)]
                with m.Else():
                    m.d.sync += written.eq(written + 1)
            set_full = Mux(wrote & (written == words - 1), Mux(write_half, 0b10, 0b01), 0)
            clear_full = Mux(finished_window, Mux(read_half, 0b10, 0b01), 0)
            m.d.sync += full.eq((full | set_full) & ~clear_full)
            with m.If(finished_window):
                m.d.sync += read_half.eq(~read_half)

        with m.If(fire):
            m.d.sync += address.eq(Mux(address == groups * folds * words - 1, 0, address + 1))
            with m.If(word != words - 1):
                m.d.sync += word.eq(word + 1)
            with m.Else():
                m.d.sync += [word.eq(0), bank.eq(Mux(bank == groups * folds - 1, 0, bank + 1))]
                with m.If(fold != folds - 1):
                    m.d.sync += fold.eq(fold + 1)
                with m.Else():
                    m.d.sync += [fold.eq(0), group.eq(Mux(group == groups - 1, 0, group + 1))]

        # Stage 1: operands (the streamed word, or the buffered one) meet their weights.
        valid1, first1, last1 = Signal(), Signal(), Signal()
        bank1 = Signal.like(bank)
        held = Signal(word_shape, reset_less=True)  # a DSP input register: no reset, so yosys can absorb it
        with m.If(advance):
            m.d.sync += [valid1.eq(fire), first1.eq(word == 0), last1.eq(word == words - 1), bank1.eq(bank),
                         held.eq(self.i.payload)]
        operand = Signal(word_shape)
        m.d.comb += operand.eq(held if folds == 1 else buffer_read.data)
        weight_word = rom_read.data
        control = [valid1, first1, last1, bank1]  # what each stage passes on with its word
        bank_read = bank  # the bank whose biases a bias memory reads: one stage before they are added
        if mx.dsp.registered_products:
            # Stage 1b: the weights and the operand in registers of their own, so that the route
            # from the block RAM and the one into the DSPs are each a cycle.
            weight_word = self._staged(m, advance, rom_read.data, "weights_held")
            operand = self._staged(m, advance, operand, "operand_held", shape=word_shape)
            bank_read = control[3]
            control = [self._staged(m, advance, signal, f"{signal.name}b", data=False) for signal in control]
        lanes = mx.product_lanes
        weights = [weight_word[index * lane_bits:(index + 1) * lane_bits].as_signed() for index in range(len(lanes))]
        products = self._products(m, [(weights[index], operand[s]) for index, (_, s) in enumerate(lanes)])
        if mx.dsp.registered_products:
            # Stage 1c: the products in registers (a DSP's output register), then the adder tree.
            products = [self._staged(m, advance, product, f"product{index}_held")
                        for index, product in enumerate(products)]
            bank_read = control[3]
            control = [self._staged(m, advance, signal, f"{signal.name}c", data=False) for signal in control]
        valid, first, last, bank_added = control
        if mx.biases_in_memory:
            # Read with the bank one stage before the sum, like the weights: ready with the products.
            bias_rom = Memory(shape=data.ArrayLayout(self.acc_shape, pe), depth=groups * folds,
                              init=[[int(self.bias[b * pe + p]) for p in range(pe)] for b in range(groups * folds)])
            m.submodules.bias_rom = bias_rom
            bias_read = bias_rom.read_port()
            m.d.comb += [bias_read.addr.eq(bank_read), bias_read.en.eq(advance)]
            biases = [bias_read.data[p] for p in range(pe)]
        else:
            biases = [lookup([self.bias[b * pe + p] for b in range(groups * folds)], bank_added, self.acc_shape)
                      for p in range(pe)]

        # Stage 2: accumulate (acc starts at the bias); after the last word of a fold, the
        # accumulators are the output.
        accumulators = [Signal(self.acc_shape, name=f"acc{p}", reset_less=True) for p in range(pe)]
        with m.If(advance):
            with m.If(valid & last):
                m.d.sync += self.o.valid.eq(1)
            with m.Else():
                m.d.sync += self.o.valid.eq(0)
            for p in range(pe):
                terms = [product for product, (lane, _) in zip(products, lanes) if lane == p]
                total = Mux(first, biases[p], accumulators[p]) + sum(terms)
                with m.If(valid):
                    m.d.sync += accumulators[p].eq(total)
        # The output is the accumulators themselves: while it waits (valid, not ready) the global
        # stall holds them, and the next fold overwrites them only as it is taken. (A copy would
        # cost a register per accumulator bit that cannot share a logic cell with its adder.)
        m.d.comb += [self.o.payload[p].eq(accumulators[p]) for p in range(pe)]
        return m

    @staticmethod
    def _staged(m: Module, advance, value, name: str, data: bool = True, shape=None) -> Signal:
        """``value`` one stage later (of ``shape``, default its own): a register that moves with
        the pipeline. Data registers have no reset (a DSP's own register, where yosys can absorb
        it); control (``data=False``: the valid bit, the fold's first and last word, the bank) is
        reset with the unit."""
        register = Signal(Value.cast(value).shape() if shape is None else shape, name=name, reset_less=data)
        with m.If(advance):
            m.d.sync += register.eq(value)
        return register

    def _products(self, m: Module, factors: list) -> list:
        """``w * x`` for every (w, x); with ``packed``, two per PackedMultiplier (an odd one alone);
        with ``logic_products``, each from logic cells."""
        if self.parameters.logic_products:
            return [logic_product(m, w, x, f"product{index}") for index, (w, x) in enumerate(factors)]
        if not self.parameters.packed:
            return [w * x for w, x in factors]
        products = []
        for index in range(0, len(factors) - 1, 2):
            pair = PackedMultiplier(self.element.signed)
            m.submodules[f"pair{index // 2}"] = pair
            for i in range(2):
                w, x = factors[index + i]
                m.d.comb += [pair.a[i].eq(w), pair.b[i].eq(x)]
                products.append(pair.p[i])
        if len(factors) % 2:
            w, x = factors[-1]
            products.append(w * x)
        return products
