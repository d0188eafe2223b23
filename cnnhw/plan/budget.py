"""Fitting a plan to a board's budget before anything is built.

Block RAMs are counted from the memories the generator will create (each block declares them,
see ``gateware/memories.py``) with the board's real EBR aspect ratios: a memory of ``width`` x
``depth`` takes ``ceil(depth / d) * ceil(width / w)`` blocks in the best aspect ``d x w``. On the
iCE40UP5K this count matched yosys exactly on mnist-8 (32 = 32). Multipliers: one DSP per
product (``pe * simd`` per conv/dense layer, see :func:`fit_multipliers`).
"""

from __future__ import annotations

import math

from ..boards import Board
from ..quant.qgraph import QConv, QGlobalPool, QGraph, QPool
from .plan import HardwarePlan, fit_multipliers, with_folding


def ebr_blocks(width: int, depth: int, aspects) -> int:
    return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in aspects)


def block_rams(qgraph: QGraph, plan: HardwarePlan, board: Board) -> dict[str, int]:
    """EBRs per owner (layer name, or "serial" for the image buffer of the board top)."""
    from ..gateware.board import BoardTop
    from ..gateware.memories import questioned_only

    top = BoardTop(qgraph, plan, board.first_try_mhz * 1e6, board.uart_baud)
    memories = top.memories()
    questioned_only(top)
    counts: dict[str, int] = {}
    for owner, shape in memories:
        counts[owner] = counts.get(owner, 0) + ebr_blocks(shape.width, shape.depth, board.ebr_aspects)
    return counts


def fit_board(qgraph: QGraph, board: Board) -> HardwarePlan:
    """The default plan for ``board``: spend its DSPs (:func:`fit_multipliers`), then, while the
    block RAMs do not fit, give up the overlap of line buffers (biggest saving first: the stage then
    waits for its next image's first rows, see ``LayerPlan.overlap``). A plan that still does not
    fit is a DoesNotFitError with the budget table."""
    from ..flow.build import check_fits

    plan = fit_multipliers(qgraph, board.budget["dsp"])
    windowed = [layer.name for layer in qgraph.layers if isinstance(layer, (QConv, QPool, QGlobalPool))]
    ebr = sum(block_rams(qgraph, plan, board).values())
    while ebr > board.budget["ebr"]:
        leaner = {name: sum(block_rams(qgraph, with_folding(plan, name, overlap=False), board).values())
                  for name in windowed if plan.for_layer(name).overlap}
        if not leaner or min(leaner.values()) >= ebr:
            break
        name = min(leaner, key=leaner.get)
        plan, ebr = with_folding(plan, name, overlap=False), leaner[name]
    needs = {"dsp": sum(layer.pe * layer.simd for layer in plan.layers), "ebr": ebr}
    check_fits(needs, board, "estimated from the smallest plan cnnhw found")
    return plan
