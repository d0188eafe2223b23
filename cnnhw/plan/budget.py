"""The planner: a plan for a board, as fast as the board's budget allows.

Throughput is set by the slowest stage (``predict_cycles``), so the planner works on the
bottleneck: it starts from the smallest plan (one product per cycle per conv/dense layer, line
buffers with overlap, weights in ROM) and repeatedly gives the bottleneck layer its next
folding with more products per cycle (or, when its rescales set its pace, a rescaler that makes its
whole multiply in one cycle: ``_wider_rescaler``), choosing among the foldings of that size the one with the fewest block RAMs
(PE and SIMD cost different memories: SIMD widens line buffers and window buffers, PE widens the
weight ROM), with one product per DSP if that fits, else two (``LayerPlan.packed``: SB_MAC16 in
8x8 mode), else with products made of logic cells (``LayerPlan.logic_products``: when the DSPs
have run out, the layers whose products free a DSP for the least logic move to logic, see
``_free_dsps``). A step is taken only if the whole plan still fits: DSPs (``costs.dsps``) and
block RAMs (``costs.block_rams``, after giving up line-buffer overlap where that saves the most,
see ``LayerPlan.overlap``, then moving weights to SPRAM, see ``LayerPlan.weights``) and SPRAM
blocks (whose width is the bandwidth a layer's folding needs, so they bound its speed), and, for
a plan with products in logic, the estimated logic cells (``plan/logic.py``). It stops when the
bottleneck is a stage without folding (pooling), is fixed by the user, or cannot grow within the
budget. Then every layer goes back to the fewest products that keep pace (growth may have given the
first of two equally slow stages a step the other could not match), products in logic go back to
DSPs that trimming freed, and each rescaler gets the narrowest multiply that keeps pace: no stage
keeps multipliers it would only idle with.

Logic cells do not grow step by step (a faster folding of a layer in SPRAM has a shallower memory
and smaller counters; the smallest plan of LeNet-5 is within 3 % of its 8-DSP plan), so growth on
DSPs does not stop at them: the result is the fastest plan grown whose estimate, once trimmed, fits.

Deterministic (no randomness, ties broken by order). A larger DSP or block-RAM budget follows the
same steps and may take more, so, but for the logic-cell estimate, it never gives a slower plan
(the tests check it on synthetic budgets).
"""

from __future__ import annotations

import dataclasses

from ..boards import Board
from ..errors import DoesNotFitError
from ..hardware import HardwarePlan, LayerPlan, Network, check_plan, predict_cycles, with_folding
from ..hardware.network import network_of
from ..hardware.plan import WeightHome, divisors
from ..quant.qgraph import QGraph
from . import logic
from .costs import block_rams, logic_cells, needs, plan_costs


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
        table.add_row(board.family.resource_names[key], f"{needed:,}", f"{available:,}", f"{over:,}" if over > 0 else "")
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
        listed = ", ".join(f"{board.family.resource_names[k]} {needs[k]:,} > {board.budget[k]:,}" for k in over)
        raise DoesNotFitError(f"the design does not fit the {board.name} ({listed}); try {_advice(over)}",
                              details=budget_table(needs, board, note), over=over, needs=needs)


def _memory_use(qgraph: QGraph, plan: HardwarePlan, board: Board, bounded: bool) -> tuple[int, int]:
    """(EBRs, SPRAM blocks) the plan takes (``bounded``: its branch FIFOs sized by
    ``Network._bound_branches``, else by the timing model)."""
    network = network_of(qgraph, plan, bounded)
    return sum(block_rams(qgraph, network, board).values()), sum(network.spram_blocks().values())


def _fit_memories(qgraph: QGraph, plan: HardwarePlan, board: Board,
                  fixed: set[str], bounded: bool = False) -> tuple[HardwarePlan, int, int]:
    """``plan`` with its memories made to fit the board as far as possible, and the (EBRs, SPRAM
    blocks) it then takes (maybe still over budget).

    While block RAM is over budget: first give up line-buffer overlap of windowed stages (a wait at
    each image boundary, no other cost), biggest saving first; then move weights into SPRAM (which
    costs the loader and a weight image in flash), biggest saving first, as long as the SPRAM blocks
    suffice; then (a board without SPRAM, or with too little) ROMs into LUTs, a layer's weights
    (``weights: logic``) or its bias table (``biases_in_logic``), the one that saves a block RAM
    for the fewest bits first, as long as the estimated logic cells stay within the board's.
    Finally restore overlap wherever it still fits. Layers the user fixed are left alone."""
    network = network_of(qgraph, plan)
    windowed = [op.name for op in network.ops if op.windowed and op.name not in fixed]
    weighted = [op.name for op in network.ops if op.foldable and op.name not in fixed]
    ebr, spram = _memory_use(qgraph, plan, board, bounded)
    dropped = []
    while ebr > board.budget["ebr"]:
        step = None
        for move in ("overlap", "spram", "logic"):
            if move == "overlap":
                candidates = {name: with_folding(plan, name, overlap=False) for name in windowed
                              if plan.for_layer(name).overlap}
            elif move == "spram":
                candidates = {name: with_folding(plan, name, weights="spram") for name in weighted
                              if plan.for_layer(name).weights == "rom"}
            else:
                candidates = {**{(name, "weights"): with_folding(plan, name, weights="logic") for name in weighted
                                 if plan.for_layer(name).weights == "rom"},
                              **{(name, "biases"): with_folding(plan, name, biases_in_logic=True) for name in weighted
                                 if _rom_bits(qgraph, plan, name, "biases")}}
            uses = {key: _memory_use(qgraph, option, board, bounded) for key, option in candidates.items()}
            uses = {key: use for key, use in uses.items() if use[0] < ebr and use[1] <= board.budget["spram"]}
            if move == "logic":  # only while the LUTs have room for the ROM
                uses = {key: use for key, use in uses.items()
                        if _logic_cells(qgraph, candidates[key], board, bounded) <= board.budget["logic_cells"]}
            if uses:
                if move == "logic":  # the fewest bits per block RAM saved: the fewest LUTs
                    step = min(uses, key=lambda key: (_rom_bits(qgraph, plan, *key) / (ebr - uses[key][0]), key))
                else:
                    step = min(uses, key=lambda key: uses[key][0])
                break
        if step is None:
            break
        if move == "overlap":
            dropped.append(step)
        plan, (ebr, spram) = candidates[step], uses[step]
    for name in reversed(dropped):
        restored = with_folding(plan, name, overlap=True)
        use = _memory_use(qgraph, restored, board, bounded)
        if use[0] <= board.budget["ebr"]:
            plan, (ebr, spram) = restored, use
    return plan, ebr, spram


def _rom_bits(qgraph: QGraph, plan: HardwarePlan, name: str, role: str) -> int:
    """Bits of a layer's memories of ``role`` ("weights", "biases": ``HardwareOp.memories``)."""
    return sum(shape.width * shape.depth for shape in network_of(qgraph, plan).op(name).memories()
               if shape.role == role)


def _dsps(qgraph: QGraph, plan: HardwarePlan) -> int:
    return sum(op.dsps for op in network_of(qgraph, plan).ops)


def _free_dsps(qgraph: QGraph, plan: HardwarePlan, board: Board, fixed: set[str]) -> HardwarePlan | None:
    """``plan`` with as few layers' products moved into logic (``LayerPlan.logic_products``) as it
    takes to be within the board's DSPs, or None if even that is not enough. Layers go in the
    order of the logic a freed DSP costs: fewest products per freed DSP (an unpacked product frees
    a DSP, a packed pair one), then fewest products; layers the user fixed stay."""
    movable = []
    for op in network_of(qgraph, plan).ops:
        if op.product_dsps and op.name not in fixed:
            movable.append((op.products / op.product_dsps, op.products, op.name))
    for _, _, name in sorted(movable):
        if _dsps(qgraph, plan) <= board.budget["dsp"]:
            break
        plan = with_folding(plan, name, packed=False, logic_products=True)
    return plan if _dsps(qgraph, plan) <= board.budget["dsp"] else None


def _with_room(qgraph: QGraph, plan: HardwarePlan, board: Board,
               fixed: set[str]) -> tuple[HardwarePlan, int] | None:
    """``plan`` fitted to the board (DSPs freed by products in logic where needed, see
    :func:`_free_dsps`; memories, see :func:`_fit_memories`) and the EBRs it takes, or None if it
    does not fit (DSPs, block RAM, SPRAM, or, when it has products in logic, the estimated logic
    cells). Branch FIFOs are first sized by their bound (no timing model: a residual network's
    candidates are judged in milliseconds, not seconds); only a plan whose memories do not fit so
    is judged again with the FIFOs the timing model sizes. (The FIFOs' share of the logic cells is
    a few counters: a plan over them is over either way; the plan returned is checked with the
    timed FIFOs, see :func:`plan_for_board`.)"""
    fitted = _fitted(qgraph, plan, board, fixed, bounded=True)
    if fitted == "memories":
        fitted = _fitted(qgraph, plan, board, fixed, bounded=False)
    return None if isinstance(fitted, str) else fitted


def _fitted(qgraph: QGraph, plan: HardwarePlan, board: Board, fixed: set[str],
            bounded: bool) -> tuple[HardwarePlan, int] | str:
    """:func:`_with_room` with the branch FIFOs sized one way (``Network.bounded_branches``), or
    what is over: "dsps", "memories" or "logic"."""
    if _dsps(qgraph, plan) > board.budget["dsp"]:
        plan = _free_dsps(qgraph, plan, board, fixed)
        if plan is None:
            return "dsps"
    plan, ebr, spram = _fit_memories(qgraph, plan, board, fixed, bounded)
    if ebr > board.budget["ebr"] or spram > board.budget["spram"]:
        return "memories"
    cells = board.budget["logic_cells"]
    # Products in logic only where the logic cells have room for them, as the plan is or once its
    # rescalers are narrowed (fewer shifted adds; asked only of a plan over as it is). Growth is
    # judged so; the plan returned is judged as finished (plan_for_board).
    if _in_logic(plan) and _logic_cells(qgraph, plan, board, bounded) > cells and \
            _logic_cells(qgraph, _narrow_rescalers(qgraph, plan, fixed), board, bounded) > cells:
        return "logic"
    return plan, ebr


def _logic_cells(qgraph: QGraph, plan: HardwarePlan, board: Board, bounded: bool = False) -> int:
    return sum(logic_cells(qgraph, network_of(qgraph, plan, bounded), board).values())


def _foldings(limits: tuple[int, int]) -> dict[int, list[tuple[int, int]]]:
    """Every (pe, simd) of a layer, by products per cycle (SIMD-heavy first)."""
    outputs, inputs = limits
    by_products: dict[int, list[tuple[int, int]]] = {}
    for pe in divisors(outputs):
        for simd in divisors(inputs):
            by_products.setdefault(pe * simd, []).append((pe, simd))
    return {p: sorted(options, key=lambda f: -f[1]) for p, options in sorted(by_products.items())}


#: The ways a layer's products can be made (``LayerPlan`` flags): one per DSP, two per DSP, in logic.
ON_DSPS, PACKED, IN_LOGIC = ({"packed": False, "logic_products": False}, {"packed": True, "logic_products": False},
                             {"packed": False, "logic_products": True})


def _kinds(folding: LayerPlan, packable: bool) -> tuple[dict, ...]:
    """How a grown layer's products may be made: a packed layer stays packed (unpacking would need
    twice the DSPs for the same products), any layer may move to logic."""
    if folding.packed:
        return PACKED, IN_LOGIC
    return (ON_DSPS, PACKED, IN_LOGIC) if packable else (ON_DSPS, IN_LOGIC)


def _in_logic(plan: HardwarePlan) -> int:
    return sum(layer.logic_products for layer in plan.layers)


def plan_for_board(qgraph: QGraph, board: Board, fixed: HardwarePlan | None = None,
                   digit_bits: int = 4, max_dsp: int | None = None,
                   max_logic_cells: int | None = None) -> HardwarePlan:
    """The fastest plan the planner finds for ``board`` (:func:`_plan_for_board`), with two image
    buffers in the serial front end (the board receives an image while it computes the one before),
    unless the block RAM the second one takes makes the plan slower: then with one, planned again
    when that RAM could have mattered (the plan is short of block RAM, or keeps weights in SPRAM).
    A ``fixed`` plan with one image buffer keeps it."""
    fixed = fixed or HardwarePlan(())
    single = dataclasses.replace(fixed, image_buffers=1)
    options = dict(digit_bits=digit_bits, max_dsp=max_dsp, max_logic_cells=max_logic_cells)
    if fixed.image_buffers == 1:
        return _plan_for_board(qgraph, board, single, **options)
    try:
        double = _plan_for_board(qgraph, board, dataclasses.replace(fixed, image_buffers=2), **options)
    except DoesNotFitError:
        return _plan_for_board(qgraph, board, single, **options)
    costs = plan_costs(qgraph, double, board)
    buffer_blocks = next(cost.ebr for cost in costs if cost.name == "board") // 2  # the board row: the buffers
    short = needs(costs)["ebr"] + buffer_blocks > board.budget["ebr"]
    if not short and all(layer.weights != WeightHome.SPRAM for layer in double.layers):
        return double
    try:
        one = _plan_for_board(qgraph, board, single, **options)
    except DoesNotFitError:
        return double
    faster = network_of(qgraph, one).cycles_per_inference < network_of(qgraph, double).cycles_per_inference
    return one if faster else double


def _plan_for_board(qgraph: QGraph, board: Board, fixed: HardwarePlan, digit_bits: int = 4,
                    max_dsp: int | None = None, max_logic_cells: int | None = None) -> HardwarePlan:
    """The fastest plan the planner finds for ``board`` (see the module docstring). Layers in
    ``fixed`` keep the folding the user gave; an impossible one is a clear error. ``max_dsp``
    spends fewer DSPs than the board has. ``max_logic_cells`` is a bound on the estimated logic
    cells (the build's answer to a design that turned out over the board's: plan again within a
    smaller estimate); without it, a plan may be estimated up to the model's typical error over the
    share of the board's logic cells its family lets a plan fill (``Family.plannable_logic_fraction``,
    ``logic.typical_error``): the estimate errs either way, and the build packs the netlist and decides."""
    cells = max_logic_cells if max_logic_cells is not None else round(
        board.budget["logic_cells"] * board.family.plannable_logic_fraction * (1 + logic.typical_error(board.family.name)))
    dsp = min(board.budget["dsp"], max_dsp or board.budget["dsp"])
    # What a refusal shows: the budget without the estimate's margin.
    strict = dataclasses.replace(board, budget={**board.budget, "dsp": dsp,
                                                "logic_cells": min(cells, board.budget["logic_cells"])})
    board = dataclasses.replace(board, budget={**board.budget, "logic_cells": cells, "dsp": dsp})
    # The plan is for the board's family (how many DSPs a product takes, whether two share one).
    fixed = dataclasses.replace(fixed, family=board.family.name)
    fixed = check_plan(fixed, qgraph)
    fixed_names = {layer.name for layer in fixed.layers}
    ops = Network(qgraph, fixed).ops
    foldable = {op.name: op.folding_limits() for op in ops if op.foldable}
    packable = {op.name: op.packable and board.family.dsp.packs_two_8x8 for op in ops if op.foldable}
    start = [fixed.for_layer(name) if name in fixed_names else LayerPlan(name, 1, 1, digit_bits) for name in foldable]
    start += [layer for layer in fixed.layers if layer.name not in foldable]
    fitted = _with_room(qgraph, HardwarePlan(tuple(start), fixed.family, fixed.image_buffers), board, fixed_names)
    if fitted is None:
        lean = HardwarePlan(tuple(start), fixed.family, fixed.image_buffers)
        network = Network(qgraph, lean)
        for op in network.ops:
            if op.windowed and op.name not in fixed_names:
                lean = with_folding(lean, op.name, overlap=False)
        lean = _fit_memories(qgraph, lean, board, fixed_names)[0]
        _refuse(qgraph, lean, strict, "the smallest plan" if not fixed.layers else "the smallest plan with "
                "your fixed layers")
    plan = fitted[0]
    grown = [plan]
    while True:
        cycles = predict_cycles(qgraph, plan)
        bottleneck = max(cycles, key=cycles.get)
        if bottleneck not in foldable or bottleneck in fixed_names:
            break
        current = plan.for_layer(bottleneck)
        step = _larger_folding(qgraph, plan, board, fixed_names, bottleneck, foldable[bottleneck],
                               _kinds(current, packable[bottleneck]),
                               lambda fitted: predict_cycles(qgraph, fitted)[bottleneck] < cycles[bottleneck])
        if step is None:
            step = _wider_rescaler(qgraph, plan, board, fixed_names, bottleneck, foldable[bottleneck],
                                   _kinds(current, packable[bottleneck]))
        if step is None:
            break
        plan = step
        grown.append(plan)
    # The fastest plan grown whose estimated logic cells fit, once trimmed (see the module docstring).
    # Judged with the timed branch FIFOs (growth may have judged by their bound).
    for plan in reversed(grown):
        finished = _narrow_rescalers(qgraph, _trim_foldings(qgraph, plan, board, fixed_names, foldable, packable),
                                     fixed_names)
        fitted = _fitted(qgraph, finished, board, fixed_names, bounded=False)
        if not isinstance(fitted, str) and _logic_cells(qgraph, fitted[0], board) <= board.budget["logic_cells"]:
            return fitted[0]
    _refuse(qgraph, finished, strict, "the smallest plan" if not fixed.layers else "the smallest plan with "
            "your fixed layers")


def _wider_rescaler(qgraph: QGraph, plan: HardwarePlan, board: Board, fixed: set[str], name: str,
                    limits: tuple[int, int], kinds: tuple[dict, ...]) -> HardwarePlan | None:
    """``plan`` with the rescaler of layer ``name`` (the bottleneck, whose next folding alone is no
    faster) making its whole multiply in one cycle (a DSP's job: wider shifted adds than the
    default digit would lengthen the critical path), alone or with a larger folding (when the MAC
    words and the rescales take equally long, neither alone is faster); fitted to the board
    (:func:`_with_room`); None if that is no faster."""
    pace = predict_cycles(qgraph, plan)[name]
    faster = lambda fitted: predict_cycles(qgraph, fitted)[name] < pace  # noqa: E731
    pe, simd = list(_foldings(limits).values())[-1][0]
    if faster(with_folding(plan, name, pe=pe, simd=simd)):
        return None  # the largest folding alone would be faster: the board, not the rescaler, stops it
    rescaler = network_of(qgraph, plan).op(name).rescaler
    if rescaler.steps == 1:
        return None
    wider = with_folding(plan, name, digit_bits=rescaler.multiplier_bits)
    fitted = _with_room(qgraph, wider, board, fixed)
    if fitted is not None and faster(fitted[0]):
        return fitted[0]
    return _larger_folding(qgraph, wider, board, fixed, name, limits, kinds, faster)


def _larger_folding(qgraph: QGraph, plan: HardwarePlan, board: Board, fixed: set[str], name: str,
                    limits: tuple[int, int], kinds: tuple[dict, ...], accept) -> HardwarePlan | None:
    """``plan`` with layer ``name`` at the fewest products per cycle beyond its own that gives a
    plan :func:`_best_fitting` finds (fitted, taken by ``accept``); None if no larger one does."""
    current = plan.for_layer(name)
    for count, options in _foldings(limits).items():
        if count > current.pe * current.simd:
            step = _best_fitting(qgraph, plan, board, fixed, name, options, kinds, accept)
            if step is not None:
                return step
    return None


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
                                    (ON_DSPS, PACKED, IN_LOGIC) if packable[name] else (ON_DSPS, IN_LOGIC),
                                    lambda fitted: max(predict_cycles(qgraph, fitted).values()) <= pace)
            if trimmed is not None:
                plan = trimmed
                break
    # Trimming may have freed DSPs: products in logic go back to them where they now fit.
    for name in foldable:
        folding = plan.for_layer(name)
        if name in fixed or not folding.logic_products:
            continue
        kinds = (ON_DSPS, PACKED) if packable[name] else (ON_DSPS,)
        back = _best_fitting(qgraph, plan, board, fixed, name, [(folding.pe, folding.simd)], kinds,
                             lambda fitted: _in_logic(fitted) < _in_logic(plan))
        if back is not None:
            plan = back
    return plan


def _best_fitting(qgraph: QGraph, plan: HardwarePlan, board: Board, fixed: set[str], name: str,
                  options: list[tuple[int, int]], kinds: tuple[dict, ...], accept) -> HardwarePlan | None:
    """Of ``plan`` with layer ``name`` folded as each (pe, simd) in ``options`` with each kind of
    products (``ON_DSPS``, ``PACKED``, ``IN_LOGIC``), fitted to the board (:func:`_with_room`) and
    taken by ``accept``, the one with the fewest layers' products in logic (they cost logic cells
    and clock speed: used only when the DSPs run out), then the fewest block RAMs, then unpacked,
    then SIMD-heavy; None if none is."""
    fitting = []
    for pe, simd in options:
        for kind in kinds:
            fitted = _with_room(qgraph, with_folding(plan, name, pe=pe, simd=simd, **kind), board, fixed)
            if fitted is not None and accept(fitted[0]):
                fitting.append((_in_logic(fitted[0]), fitted[1], kind["packed"], -simd, fitted[0]))
    return min(fitting, key=lambda entry: entry[:4])[4] if fitting else None


def _narrow_rescalers(qgraph: QGraph, plan: HardwarePlan, fixed: set[str]) -> HardwarePlan:
    """Each rescaler (requantizer, average) gets the fewest multiplier bits per cycle
    (``LayerPlan.digit_bits``) that keep its stage no slower than the bottleneck: a narrower
    shift-and-add takes less logic and the pipeline is no slower."""
    cycles = predict_cycles(qgraph, plan)
    pace = max(cycles.values())
    for op in network_of(qgraph, plan).ops:
        if op.name in fixed or not op.rescales:
            continue
        # A stage's cycles never grow with its rescaler's digit width: bisect for the narrowest.
        low, high = 1, plan.for_layer(op.name).digit_bits  # high keeps pace
        while low < high:
            middle = (low + high) // 2
            if predict_cycles(qgraph, with_folding(plan, op.name, digit_bits=middle))[op.name] <= pace:
                high = middle
            else:
                low = middle + 1
        plan = with_folding(plan, op.name, digit_bits=high)
    return plan


def _refuse(qgraph: QGraph, plan: HardwarePlan, board: Board, what: str) -> None:
    check_fits(needs(plan_costs(qgraph, plan, board)), board, f"{what}, estimated")
    raise AssertionError("unreachable: a plan that fits was refused")  # pragma: no cover

