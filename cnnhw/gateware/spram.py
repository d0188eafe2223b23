"""Weights in the iCE40UP5K's single-port RAMs (SB_SPRAM256KA: 16K words of 16 bits each).

A layer whose weights do not fit block RAM keeps them here. SPRAM cannot be initialized by the
bitstream, so it starts empty and the :class:`~cnnhw.gateware.loader.WeightLoader` fills it from
the SPI flash after configuration, before the accelerator may run.

:class:`SpramWeights` is a weight memory of ``width x depth`` bits built from
``lanes x banks`` blocks: ``lanes = ceil(width / 16)`` blocks side by side deliver one whole
word per cycle (the bandwidth a layer's folding needs: ``pe * simd * weight bits``), and
``banks = ceil(depth / 16384)`` of those groups stacked give the depth. Block ``first_block + bank
* lanes + lane`` holds bits ``16 * lane ..`` of words ``16384 * bank ..``: :meth:`block_contents`
is that mapping, and the weight image (``cnnhw.protocol.weight_image``) is written from it.

Read port (same contract as an Amaranth ``Memory`` read port with an enable): ``data`` is the word
at the ``addr`` seen in the last cycle with ``en`` high, and holds while ``en`` is low (the
SPRAM's output holds while its chip select is low). Load port (``load``, driven by the loader):
while ``load.loading`` is high the blocks take their address from it and block ``load.block``
stores ``load.data`` at ``load.addr`` in each cycle with ``load.write``; reads are then undefined.

Without a platform (the accelerator-level simulation, which has no flash) the memory is a plain
``Memory`` initialized with the weights, i.e. the state after a successful load; the board-level
simulation uses the primitive itself (yosys' behavioural model) and the real loader.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cached_property

from amaranth import Cat, ClockSignal, Instance, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

#: SB_SPRAM256KA geometry.
SPRAM_DEPTH, SPRAM_WIDTH, SPRAM_ADDRESS_BITS = 16384, 16, 14


def spram_blocks(width: int, depth: int) -> int:
    """Blocks a ``width x depth`` weight memory takes (see the module docstring)."""
    return math.ceil(width / SPRAM_WIDTH) * math.ceil(depth / SPRAM_DEPTH)


class LoadSignature(wiring.Signature):
    """The loader's bus to every SPRAM block (the loader's side: all outputs)."""

    def __init__(self, block_bits: int = 4):
        super().__init__({"loading": Out(1), "block": Out(block_bits), "addr": Out(SPRAM_ADDRESS_BITS),
                          "data": Out(SPRAM_WIDTH), "write": Out(1)})


def drive_load(m: Module, target, source) -> None:
    """Fan one load bus out to another holder of it (a bus goes to many memories)."""
    m.d.comb += [getattr(target, name).eq(getattr(source, name))
                 for name in ("loading", "block", "addr", "data", "write")]


class SpramWeights(wiring.Component):
    def __init__(self, width: int, depth: int, first_block: int, words: Callable[[], list[int]]):
        """``words()``: the contents, ``depth`` words of ``width`` bits (computed only when needed:
        the planner asks many candidate plans for their memories and never for their weights)."""
        self.width, self.first_block, self._words = width, first_block, words
        self.depth = max(2, depth)
        self.lanes = math.ceil(width / SPRAM_WIDTH)
        self.banks = math.ceil(self.depth / SPRAM_DEPTH)
        super().__init__({"addr": In(range(self.depth)), "en": In(1), "data": Out(width),
                          "load": In(LoadSignature())})

    @cached_property
    def words(self) -> list[int]:
        return list(self._words())

    @property
    def blocks(self) -> int:
        return self.lanes * self.banks

    def block_contents(self) -> list[tuple[int, list[int]]]:
        """(block index, its 16-bit words from address 0) for every block, in block order."""
        contents = []
        for bank in range(self.banks):
            chunk = self.words[bank * SPRAM_DEPTH:(bank + 1) * SPRAM_DEPTH]
            for lane in range(self.lanes):
                contents.append((self.first_block + bank * self.lanes + lane,
                                 [(word >> (SPRAM_WIDTH * lane)) & 0xFFFF for word in chunk]))
        return contents

    def elaborate(self, platform):
        m = Module()
        if platform is None:
            memory = Memory(shape=self.width, depth=self.depth, init=self.words)
            m.submodules.memory = memory
            read = memory.read_port()
            m.d.comb += [read.addr.eq(self.addr), read.en.eq(self.en), self.data.eq(read.data)]
            return m
        load = self.load
        address = Signal(SPRAM_ADDRESS_BITS)
        m.d.comb += address.eq(Mux(load.loading, load.addr, self.addr[:SPRAM_ADDRESS_BITS]))
        selected = Signal(range(max(self.banks, 2)))  # the bank the last read came from
        if self.banks > 1:
            with m.If(self.en):
                m.d.sync += selected.eq(self.addr >> SPRAM_ADDRESS_BITS)
        outputs = []
        for bank in range(self.banks):
            lanes = []
            for lane in range(self.lanes):
                index = self.first_block + bank * self.lanes + lane
                out = Signal(SPRAM_WIDTH, name=f"block{index}_out")
                m.submodules[f"block{index}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=address, i_DATAIN=load.data, i_MASKWREN=0b1111,
                    i_WREN=load.loading & load.write & (load.block == index),
                    i_CHIPSELECT=load.loading | self.en, i_CLOCK=ClockSignal("sync"),
                    i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1,
                    o_DATAOUT=out,
                )
                lanes.append(out)
            outputs.append(Cat(*lanes)[:self.width])
        if self.banks == 1:
            m.d.comb += self.data.eq(outputs[0])
        else:
            with m.Switch(selected):
                for bank, value in enumerate(outputs):
                    with m.Case(bank):
                        m.d.comb += self.data.eq(value)
        return m

