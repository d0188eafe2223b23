"""The planner: a plan for a board, as fast as the board's budget allows.

Throughput is set by the slowest stage (``predict_cycles``), so the planner works on the
bottleneck: it starts from the smallest plan (one product per cycle per conv/dense layer, line
buffers with overlap, weights in ROM) and repeatedly gives the bottleneck layer its next
folding with more products per cycle, choosing among the foldings of that size the one with the fewest block RAMs
(PE and SIMD cost different memories: SIMD widens line buffers and window buffers, PE widens the
weight ROM), with one product per DSP if that fits, else two (``LayerPlan.packed``: SB_MAC16 in
8x8 mode). A step is taken only if the whole plan still fits: DSPs (``costs.products``) and
block RAMs (``costs.block_rams``, after giving up line-buffer overlap where that saves the most,
see ``LayerPlan.overlap``, then moving weights to SPRAM, see ``LayerPlan.weights``) and SPRAM
blocks (whose width is the bandwidth a layer's folding needs, so they bound its speed). It
stops when the bottleneck is a stage without folding (pooling), is fixed by the user, or cannot
grow within the budget. Finally every layer goes back to the fewest products that keep pace (growth
may have given the first of two equally slow stages a step the other could not match), and each
rescaler gets the narrowest multiply that keeps pace: no stage keeps multipliers it would only idle
with.

Deterministic (no randomness, ties broken by order), and monotonic in the budget: a larger budget
follows the same steps and may take more, so it never gives a slower plan.
"""

from __future__ import annotations

import dataclasses

from ..boards import Board
from ..errors import DoesNotFitError
from ..quant.qgraph import QConv, QDense, QGlobalPool, QGraph, QPool
from .costs import block_rams, board_memories, needs, plan_costs, products, spram_blocks_of
from .plan import HardwarePlan, LayerPlan, check_plan, divisors, folding_limits, predict_cycles, with_folding


RESOURCE_NAMES = {"logic_cells": "logic cells", "dsp": "DSP (SB_MAC16)", "ebr": "block RAM (EBR, 4 Kbit)",
                  "spram": "SPRAM (256 Kbit)", "io": "IO pins", "pll": "PLL"}


def budget_table(needs: dict[str, int], board: Board, note: str):
    """Each resource needed vs the board's, for a "does not fit" error."""
    from rich.table import Table

    table = Table(title=f"{board.name} budget ({note})")
    for column, justify in (("resource", "left"), ("needed", "right"), ("available", "right"), ("over by", "right")):
        table.add_column(column, justify=justify)
    for key, needed in needs.items():
        available = board.budget.get(key)
        if available is None:
            continue
        over = needed - available
        table.add_row(RESOURCE_NAMES[key], f"{needed:,}", f"{available:,}", f"{over:,}" if over > 0 else "")
    return table


def _advice(over: list[str]) -> str:
    tips = {"dsp": "fewer products per cycle (--plan with smaller pe/simd)",
            "logic_cells": "fewer bits (--weight-bits/--act-bits) or a smaller plan",
            "ebr": "fewer channels or weight bits (weights and line buffers live in block RAM)",
            "spram": "fewer weights", "io": "a board profile with more pins"}
    return "; ".join(tips[key] for key in over if key in tips) + "; or a larger board"


def check_fits(needs: dict[str, int], board: Board, note: str) -> None:
    """DoesNotFitError (one line naming what is over and what to try, the table as details) unless
    every resource in ``needs`` is within the board's budget."""
    over = [key for key, needed in needs.items() if key in board.budget and needed > board.budget[key]]
    if over:
        listed = ", ".join(f"{RESOURCE_NAMES[k]} {needs[k]:,} > {board.budget[k]:,}" for k in over)
        raise DoesNotFitError(f"the design does not fit the {board.name} ({listed}); try {_advice(over)}",
                              details=budget_table(needs, board, note), over=over, needs=needs)


def _memory_use(qgraph: QGraph, plan: HardwarePlan, board: Board) -> tuple[int, int]:
    """(EBRs, SPRAM blocks) the plan takes."""
    memories = board_memories(qgraph, plan, board)
    return sum(block_rams(qgraph, plan, board, memories).values()), sum(spram_blocks_of(memories).values())


def _fit_memories(qgraph: QGraph, plan: HardwarePlan, board: Board,
                  fixed: set[str]) -> tuple[HardwarePlan, int, int]:
    """``plan`` with its memories made to fit the board as far as possible, and the (EBRs, SPRAM
    blocks) it then takes (maybe still over budget).

    While block RAM is over budget: first give up line-buffer overlap (a few cycles per image,
    no other cost), biggest saving first; then move weights into SPRAM (which costs the loader
    and a weight image in flash), biggest saving first, as long as the SPRAM blocks suffice.
    Finally restore overlap wherever it still fits. Layers the user fixed are left alone."""
    windowed = [layer.name for layer in qgraph.layers
                if isinstance(layer, (QConv, QPool, QGlobalPool)) and layer.name not in fixed]
    weighted = [layer.name for layer in qgraph.layers
                if isinstance(layer, (QConv, QDense)) and layer.name not in fixed]
    ebr, spram = _memory_use(qgraph, plan, board)
    dropped = []
    while ebr > board.budget["ebr"]:
        step = None
        for dropping in (True, False):
            if dropping:
                candidates = {name: with_folding(plan, name, overlap=False) for name in windowed
                              if plan.for_layer(name).overlap}
            else:
                candidates = {name: with_folding(plan, name, weights="spram") for name in weighted
                              if plan.for_layer(name).weights == "rom"}
            uses = {name: _memory_use(qgraph, option, board) for name, option in candidates.items()}
            uses = {name: use for name, use in uses.items() if use[0] < ebr and use[1] <= board.budget["spram"]}
            if uses:
                step = min(uses, key=lambda n: uses[n][0])
                break
        if step is None:
            break
        if dropping:
            dropped.append(step)
        plan, (ebr, spram) = candidates[step], uses[step]
    for name in reversed(dropped):
        restored = with_folding(plan, name, overlap=True)
        use = _memory_use(qgraph, restored, board)
        if use[0] <= board.budget["ebr"]:
            plan, (ebr, spram) = restored, use
    return plan, ebr, spram


def _with_room(qgraph: QGraph, plan: HardwarePlan, board: Board,
               fixed: set[str]) -> tuple[HardwarePlan, int] | None:
    """``plan`` fitted to the board's memories (:func:`_fit_memories`) and the EBRs it takes, or
    None if it does not fit (DSPs, block RAM or SPRAM)."""
    if sum(products(layer, plan)[0] for layer in qgraph.layers) > board.budget["dsp"]:
        return None
    plan, ebr, spram = _fit_memories(qgraph, plan, board, fixed)
    if ebr > board.budget["ebr"] or spram > board.budget["spram"]:
        return None
    return plan, ebr


def _foldings(limits: tuple[int, int]) -> dict[int, list[tuple[int, int]]]:
    """Every (pe, simd) of a layer, by products per cycle (SIMD-heavy first)."""
    outputs, inputs = limits
    by_products: dict[int, list[tuple[int, int]]] = {}
    for pe in divisors(outputs):
        for simd in divisors(inputs):
            by_products.setdefault(pe * simd, []).append((pe, simd))
    return {p: sorted(options, key=lambda f: -f[1]) for p, options in sorted(by_products.items())}


def plan_for_board(qgraph: QGraph, board: Board, fixed: HardwarePlan | None = None,
                   digit_bits: int = 4, max_dsp: int | None = None) -> HardwarePlan:
    """The fastest plan the planner finds for ``board`` (see the module docstring). Layers in
    ``fixed`` keep the folding the user gave; an impossible one is a clear error. ``max_dsp``
    spends fewer DSPs than the board has (the build's answer to a design over its logic cells:
    fewer products per cycle, smaller adders and accumulators)."""
    if max_dsp is not None and max_dsp < board.budget["dsp"]:
        board = dataclasses.replace(board, budget={**board.budget, "dsp": max_dsp})
    fixed = check_plan(fixed, qgraph) if fixed is not None else HardwarePlan(())
    fixed_names = {layer.name for layer in fixed.layers}
    foldable = {layer.name: folding_limits(layer) for layer in qgraph.layers if isinstance(layer, (QConv, QDense))}
    packable = {layer.name: layer.in_format.bits <= 8 and layer.weight_format.bits <= 8
                for layer in qgraph.layers if layer.name in foldable}
    start = [fixed.for_layer(name) if name in fixed_names else LayerPlan(name, 1, 1, digit_bits) for name in foldable]
    start += [layer for layer in fixed.layers if layer.name not in foldable]
    fitted = _with_room(qgraph, HardwarePlan(tuple(start)), board, fixed_names)
    if fitted is None:
        lean = HardwarePlan(tuple(start))
        for layer in qgraph.layers:
            if isinstance(layer, (QConv, QPool, QGlobalPool)) and layer.name not in fixed_names:
                lean = with_folding(lean, layer.name, overlap=False)
        lean = _fit_memories(qgraph, lean, board, fixed_names)[0]
        _refuse(qgraph, lean, board, "the smallest plan" if not fixed.layers else "the smallest plan with "
                "your fixed layers")
    plan = fitted[0]
    while True:
        cycles = predict_cycles(qgraph, plan)
        bottleneck = max(cycles, key=cycles.get)
        if bottleneck not in foldable or bottleneck in fixed_names:
            return _narrow_rescalers(qgraph, _trim_foldings(qgraph, plan, board, fixed_names, foldable, packable),
                                     fixed_names)
        current = plan.for_layer(bottleneck)
        packings = (True,) if current.packed else (False, True) if packable[bottleneck] else (False,)
        step = None
        for count, options in _foldings(foldable[bottleneck]).items():
            if count > current.pe * current.simd:
                step = _best_fitting(qgraph, plan, board, fixed_names, bottleneck, options, packings,
                                     lambda fitted: predict_cycles(qgraph, fitted)[bottleneck] < cycles[bottleneck])
                if step is not None:
                    break
        if step is None:
            return _narrow_rescalers(qgraph, _trim_foldings(qgraph, plan, board, fixed_names, foldable, packable),
                                     fixed_names)
        plan = step


def _trim_foldings(qgraph: QGraph, plan: HardwarePlan, board: Board, fixed: set[str], foldable: dict,
                   packable: dict) -> HardwarePlan:
    """Each layer back to the fewest products per cycle that keep it no slower than the bottleneck.
    (Growth gives the first of several equally slow stages its next folding; once another stage
    turns out to set the pace, that one may have more than it needs: fewer products, less logic.)"""
    pace = max(predict_cycles(qgraph, plan).values())
    for name in foldable:
        if name in fixed:
            continue
        current = plan.for_layer(name)
        for count, options in _foldings(foldable[name]).items():
            if count >= current.pe * current.simd:
                break
            fast_enough = [(pe, simd) for pe, simd in options
                           if predict_cycles(qgraph, with_folding(plan, name, pe=pe, simd=simd))[name] <= pace]
            trimmed = _best_fitting(qgraph, plan, board, fixed, name, fast_enough,
                                    (False, True) if packable[name] else (False,),
                                    lambda fitted: max(predict_cycles(qgraph, fitted).values()) <= pace)
            if trimmed is not None:
                plan = trimmed
                break
    return plan


def _best_fitting(qgraph: QGraph, plan: HardwarePlan, board: Board, fixed: set[str], name: str,
                  options: list[tuple[int, int]], packings: tuple[bool, ...], accept) -> HardwarePlan | None:
    """Of ``plan`` with layer ``name`` folded as each (pe, simd) in ``options`` with each packing,
    fitted to the board (:func:`_with_room`) and taken by ``accept``, the one with the fewest block
    RAMs (then unpacked, then SIMD-heavy); None if none is."""
    fitting = []
    for pe, simd in options:
        for packed in packings:
            fitted = _with_room(qgraph, with_folding(plan, name, pe=pe, simd=simd, packed=packed), board, fixed)
            if fitted is not None and accept(fitted[0]):
                fitting.append((fitted[1], packed, -simd, fitted[0]))
    return min(fitting, key=lambda entry: entry[:3])[3] if fitting else None


def _narrow_rescalers(qgraph: QGraph, plan: HardwarePlan, fixed: set[str]) -> HardwarePlan:
    """Each rescaler (requantizer, average) gets the fewest multiplier bits per cycle
    (``LayerPlan.digit_bits``) that keep its stage no slower than the bottleneck: a narrower
    shift-and-add takes less logic and the pipeline is no slower."""
    cycles = predict_cycles(qgraph, plan)
    pace = max(cycles.values())
    for layer in qgraph.layers:
        rescales = isinstance(layer, (QConv, QDense)) or (isinstance(layer, (QPool, QGlobalPool))
                                                          and layer.divider is not None)
        if layer.name in fixed or not rescales:
            continue
        for digit_bits in range(1, plan.for_layer(layer.name).digit_bits):
            narrower = with_folding(plan, layer.name, digit_bits=digit_bits)
            if predict_cycles(qgraph, narrower)[layer.name] <= pace:
                plan = narrower
                break
    return plan


def _refuse(qgraph: QGraph, plan: HardwarePlan, board: Board, what: str) -> None:
    check_fits(needs(plan_costs(qgraph, plan, board)), board, f"{what}, estimated")
    raise AssertionError("unreachable: a plan that fits was refused")  # pragma: no cover

