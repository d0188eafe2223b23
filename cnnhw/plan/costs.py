"""What a plan costs, layer by layer, before anything is built.

* cycles per image: :func:`cnnhw.plan.predict_cycles` (the slowest stage sets the pace);
* products per cycle, and where yosys puts them: ``synth_ice40 -dsp`` maps a multiply to a DSP
  when its product is at least 11 bits wide (``mul2dsp``'s ``DSP_Y_MINWIDTH``), so 8x8-bit
  products take one SB_MAC16 each and 4x4-bit ones become logic (``lut_products``);
* block RAMs: counted from the memories the generator will create (each block declares them, see
  ``gateware/memories.py``) with the board's EBR aspect ratios: a ``width x depth`` memory takes
  ``ceil(depth / d) * ceil(width / w)`` blocks in the best aspect ``d x w``, unless yosys finds
  logic cheaper: its ``memory_libmap`` prices a block RAM at 64 and logic at 1 per bit of RAM or
  1/16 per bit of ROM (so small weight ROMs become LUTs). Equal to yosys' count on every design
  measured so far (mnist-8, the tests' small CNN);
* SPRAM blocks (layers whose weights the plan puts there, ``LayerPlan.weights``): a weight
  memory of ``width x depth`` takes ``ceil(width / 16) * ceil(depth / 16384)`` blocks
  (``gateware/spram.py``): the width is the bandwidth the folding needs, so a faster folding of
  a layer in SPRAM takes more blocks, and the board's four blocks bound how fast such layers go;
* weight bandwidth: bits per cycle the layer's weight memory delivers (``pe * simd * weight bits``);
* logic cells: a linear model over each block's structure, fitted on whole designs
  (:mod:`cnnhw.plan.logic`, which states its error); the build then counts the real ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ..boards import Board
from ..quant.qgraph import QConv, QDense, QGraph
from ..gateware.memories import MemoryShape
from ..gateware.spram import spram_blocks
from .logic import estimate, layer_rescaler_dsps, plan_terms, products_in_logic
from .plan import HardwarePlan, predict_cycles


@dataclass(frozen=True)
class LayerCost:
    name: str
    op: str
    cycles: int
    dsp: int
    lut_products: int
    ebr: int
    spram: int
    weight_bits_per_cycle: int
    logic_cells: int


#: yosys memory_libmap's prices (share/ice40/brams.txt "cost 64"; -logic-cost-rom/-ram defaults).
EBR_COST, LOGIC_COST_ROM_BIT, LOGIC_COST_RAM_BIT = 64, 1 / 16, 1.0


def ebr_blocks(width: int, depth: int, aspects, rom: bool = False) -> int:
    """Block RAMs yosys spends on a memory (0 when it builds it from logic instead)."""
    return ebr_layout(width, depth, aspects, rom)[0]


def ebr_layout(width: int, depth: int, aspects, rom: bool = False) -> tuple[int, int]:
    """(block RAMs, blocks stacked in depth) of a memory: a stack of ``n`` blocks needs an
    ``n``-way multiplexer on every read bit. (0, 0) when yosys builds the memory from logic."""
    blocks, d = min((math.ceil(depth / d) * math.ceil(width / w), d) for d, w in aspects)
    logic = width * depth * (LOGIC_COST_ROM_BIT if rom else LOGIC_COST_RAM_BIT)
    return (blocks, math.ceil(depth / d)) if blocks * EBR_COST <= logic else (0, 0)


def ask_board_top(qgraph: QGraph, plan: HardwarePlan, board: Board, question: Callable):
    """``question(top)`` of the board top ``plan`` gives on ``board``, built only to be asked (never
    elaborated, so Amaranth does not warn about it)."""
    from ..gateware.board import BoardTop
    from ..gateware.memories import questioned_only

    top = BoardTop(qgraph, plan, board.first_try_mhz * 1e6, board.uart_baud,
                   weights_offset=board.flash["weights_offset"])
    answer = question(top)
    questioned_only(top)
    return answer


def board_memories(qgraph: QGraph, plan: HardwarePlan, board: Board) -> list[tuple[str, MemoryShape]]:
    """Every memory of the board top for ``plan``, with its owner (layer name, or "serial" for the
    board top's image buffer)."""
    return ask_board_top(qgraph, plan, board, lambda top: top.memories())


def block_rams(qgraph: QGraph, plan: HardwarePlan, board: Board,
               memories: list[tuple[str, MemoryShape]] | None = None) -> dict[str, int]:
    """EBRs per owner (see :func:`board_memories`)."""
    counts: dict[str, int] = {}
    for owner, shape in memories if memories is not None else board_memories(qgraph, plan, board):
        if not shape.spram:
            counts[owner] = counts.get(owner, 0) + ebr_blocks(shape.width, shape.depth, board.ebr_aspects, shape.rom)
    return counts


def spram_blocks_of(memories: list[tuple[str, MemoryShape]]) -> dict[str, int]:
    """SPRAM blocks per owner."""
    counts: dict[str, int] = {}
    for owner, shape in memories:
        if shape.spram:
            counts[owner] = counts.get(owner, 0) + spram_blocks(shape.width, shape.depth)
    return counts


def multipliers(qgraph: QGraph, plan: HardwarePlan) -> int:
    """Weight-by-activation products per cycle of the whole pipeline."""
    return sum(plan.for_layer(layer.name).pe * plan.for_layer(layer.name).simd
               for layer in qgraph.layers if isinstance(layer, (QConv, QDense)))


def products(layer, plan: HardwarePlan) -> tuple[int, int]:
    """(DSPs, logic products) per cycle of a conv/dense layer; (0, 0) for the others."""
    if not isinstance(layer, (QConv, QDense)):
        return 0, 0
    folding = plan.for_layer(layer.name)
    count = folding.pe * folding.simd
    if folding.logic_products:
        return 0, count
    if folding.packed:  # two per SB_MAC16, whatever their width
        return math.ceil(count / 2), 0
    return (0, count) if products_in_logic(layer, folding) else (count, 0)


def logic_terms(qgraph: QGraph, plan: HardwarePlan, board: Board,
                memories: list[tuple[str, MemoryShape]] | None = None) -> dict[str, dict[str, float]]:
    """The logic-cell model's terms per owner (layer name, or "board"): :mod:`cnnhw.plan.logic`."""
    memories = memories if memories is not None else board_memories(qgraph, plan, board)
    placed = [(owner, shape, (0, 0) if shape.spram else ebr_layout(shape.width, shape.depth, board.ebr_aspects,
                                                                    shape.rom))
              for owner, shape in memories]
    return plan_terms(qgraph, plan, placed, sum(spram_blocks_of(memories).values()))


def logic_cells(qgraph: QGraph, plan: HardwarePlan, board: Board,
                memories: list[tuple[str, MemoryShape]] | None = None) -> dict[str, int]:
    """Estimated logic cells per owner (see :func:`logic_terms`)."""
    return {owner: estimate(terms) for owner, terms in logic_terms(qgraph, plan, board, memories).items()}


def dsps(layer, plan: HardwarePlan) -> int:
    """DSPs of a layer: its products' (:func:`products`) and its rescaler's, if it multiplies a whole
    multiplier per cycle (``logic.rescaler_dsps``)."""
    return products(layer, plan)[0] + layer_rescaler_dsps(layer, plan.for_layer(layer.name))


def plan_costs(qgraph: QGraph, plan: HardwarePlan, board: Board) -> list[LayerCost]:
    cycles = predict_cycles(qgraph, plan)
    memories = board_memories(qgraph, plan, board)
    ebr, spram = block_rams(qgraph, plan, board, memories), spram_blocks_of(memories)
    cells = logic_cells(qgraph, plan, board, memories)
    costs = []
    for layer in qgraph.layers:
        lut = products(layer, plan)[1]
        dsp = dsps(layer, plan)
        folding = plan.for_layer(layer.name)
        bandwidth = folding.pe * folding.simd * layer.weight_format.bits if isinstance(layer, (QConv, QDense)) else 0
        costs.append(LayerCost(layer.name, layer.label, cycles[layer.name], dsp, lut, ebr.get(layer.name, 0),
                               spram.get(layer.name, 0), bandwidth, cells.get(layer.name, 0)))
    costs.append(LayerCost("board", "UART etc.", 0, 0, 0, ebr.get("serial", 0), 0, 0,
                           cells["board"]))
    return costs


def needs(costs: list[LayerCost]) -> dict[str, int]:
    """Board resources the plan needs, in budget keys (those this module predicts)."""
    return {"logic_cells": sum(c.logic_cells for c in costs), "dsp": sum(c.dsp for c in costs),
            "ebr": sum(c.ebr for c in costs), "spram": sum(c.spram for c in costs)}
