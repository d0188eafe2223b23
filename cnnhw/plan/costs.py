"""What a plan costs, layer by layer, before anything is built.

Every figure of a layer comes from its hardware op (:mod:`cnnhw.hardware`); this module only adds
them up and prices what depends on the board:

* cycles per image: ``HardwareOp.cycles`` (the slowest stage sets the pace);
* products per cycle, and where yosys puts them: ``HardwareOp.dsps`` and ``products_in_logic``
  (the family's ``DspRule`` is yosys' rule: on iCE40 8x8-bit products take one SB_MAC16 each
  and 4x4-bit ones become logic, ``lut_products``; on ECP5 every product takes a MULT18X18D);
* block RAMs: counted from the memories the ops declare (``HardwareOp.memories``), each where
  yosys' ``memory_libmap`` puts it (``memory_placement``): the cheapest of the family's memory
  primitives in the board's aspects, or logic (so small weight ROMs become LUTs, and on ECP5
  small RAMs distributed RAM). Equal to yosys' count on every memory measured
  (``tests/test_build.py``);
* SPRAM blocks (layers whose weights the plan puts there, ``LayerPlan.weights``): a weight
  memory of ``width x depth`` takes ``ceil(width / 16) * ceil(depth / 16384)`` blocks
  (``gateware.spram.spram_blocks``): the width is the bandwidth the folding needs, so a faster
  folding of a layer in SPRAM takes more blocks, and the board's four blocks bound how fast such
  layers go;
* weight bandwidth: ``HardwareOp.weight_bits_per_cycle``;
* logic cells: a linear model over each block's structure (``HardwareOp.logic_terms`` and the
  memories yosys builds from logic), fitted on whole designs (:mod:`cnnhw.plan.logic`, which
  states its error); the build then counts the real ones.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..boards import Board
from ..families import MemoryPrimitive
from ..gateware.memories import MemoryShape, add_terms
from ..hardware import HardwarePlan, Network
from ..hardware.network import network_of
from ..quant.qgraph import QGraph
from .logic import estimate, memory_terms


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


#: yosys memory_libmap's prices (passes/memory/memory_libmap.cc): a bit built from logic costs
#: 1/16 in a ROM and 1 in a RAM (the -logic-cost-rom/-ram defaults); each primitive its own cost
#: (``families.MemoryPrimitive``), plus half a point per bit of the multiplexer its slices in
#: depth are read through (and per slice's write enable), plus two points per point of
#: emulation. The cheapest wins, logic on a tie (its cost is truncated to an integer first).
LOGIC_COST_ROM_BIT, LOGIC_COST_RAM_BIT = 1 / 16, 1.0
MUX_FACTOR, EMULATION_FACTOR = 0.5, 2


@dataclass(frozen=True)
class Placement:
    """Where yosys puts a memory: ``primitive`` (None: logic), how many, and the slices in depth
    its words are split into (each read through a multiplexer)."""

    primitive: MemoryPrimitive | None
    blocks: int
    slices: int

    @property
    def ebr(self) -> int:
        """Block RAMs it takes from the board's budget."""
        return self.blocks if self.primitive is not None and self.primitive.budget_key == "ebr" else 0


IN_LOGIC = Placement(None, 0, 0)


def ebr_blocks(shape: MemoryShape, board: Board) -> int:
    """Block RAMs yosys spends on a memory (0 when it builds it from logic instead)."""
    return memory_placement(shape, board).ebr


def memory_placement(shape: MemoryShape, board: Board) -> Placement:
    """The cheapest of the board's memory primitives (``Family.memory_primitives``) in each of its
    aspects, as yosys prices them, or logic: each slice of ``depth`` words is read through an
    ``n``-way multiplexer on every bit. Slices share a primitive's data lanes where its writes can
    be enabled bit by bit (``lane_width``), and always in a ROM (measured with yosys: 5 x 768 and
    10 x 768 RAMs take 1 and 2 iCE40 blocks of 256 x 16, not 2 and 3)."""
    if shape.logic:
        return IN_LOGIC
    width, depth = shape.width, shape.depth
    candidates = []
    for primitive in board.family.memory_primitives(board):
        if shape.rom and not primitive.holds_rom:
            continue
        emulation = primitive.own_read_port + (0 if shape.rom else primitive.read_beside_write)
        for words, lanes in primitive.aspects:
            slices = math.ceil(depth / words)
            shared = shape.rom or lanes == primitive.lane_width
            blocks = math.ceil(slices * width / lanes) if shared else slices * math.ceil(width / lanes)
            cost = (primitive.cost * blocks + MUX_FACTOR * (slices - 1) * width
                    + (MUX_FACTOR * slices if slices > 1 and not shape.rom else 0) + EMULATION_FACTOR * emulation)
            candidates.append((cost, blocks, slices, primitive))
    logic = int(width * depth * (LOGIC_COST_ROM_BIT if shape.rom else LOGIC_COST_RAM_BIT))
    if not candidates:
        return IN_LOGIC
    cost, blocks, slices, primitive = min(candidates, key=lambda c: c[:3])
    return Placement(primitive, blocks, slices) if cost < logic else IN_LOGIC


def network(qgraph: QGraph, plan: HardwarePlan | Network) -> Network:
    """The functions below take a plan, or the plan's Network when the caller has one."""
    return plan if isinstance(plan, Network) else network_of(qgraph, plan)


def block_rams(qgraph: QGraph, plan: HardwarePlan | Network, board: Board) -> dict[str, int]:
    """EBRs per owner (``Network.memories``)."""
    counts: dict[str, int] = {}
    for owner, shape in network(qgraph, plan).memories():
        if not shape.spram:
            counts[owner] = counts.get(owner, 0) + ebr_blocks(shape, board)
    return counts


def multipliers(qgraph: QGraph, plan: HardwarePlan) -> int:
    """Weight-by-activation products per cycle of the whole pipeline."""
    return network_of(qgraph, plan).multipliers


def logic_terms(qgraph: QGraph, plan: HardwarePlan | Network, board: Board) -> dict[str, dict[str, float]]:
    """The logic-cell model's terms per owner (layer name, or "board"): each op's, the memories'
    that yosys builds from logic or stacks in depth, and the board top's (:mod:`cnnhw.plan.logic`)."""
    net = network(qgraph, plan)
    owners: dict[str, dict[str, float]] = {"board": {"board": 1}}
    spram = sum(net.spram_blocks().values())
    if spram:
        owners["board"] = add_terms(owners["board"], {"loader": 1, "spram_block": spram})
    for owner, terms in net.logic_terms().items():
        if terms:
            owners[owner] = terms
    for owner, shape in net.memories():
        placed = IN_LOGIC if shape.spram else memory_placement(shape, board)
        key = owner if owner in owners else "board"
        owners[key] = add_terms(owners[key], memory_terms(shape, placed))
    return owners


def logic_cells(qgraph: QGraph, plan: HardwarePlan | Network, board: Board) -> dict[str, int]:
    """Estimated logic cells per owner (see :func:`logic_terms`)."""
    return {owner: estimate(terms, board.family.name) for owner, terms in logic_terms(qgraph, plan, board).items()}


def plan_costs(qgraph: QGraph, plan: HardwarePlan | Network, board: Board) -> list[LayerCost]:
    net = network(qgraph, plan)
    ebr, spram, cells = block_rams(qgraph, net, board), net.spram_blocks(), logic_cells(qgraph, net, board)
    costs = [LayerCost(op.name, op.layer.label, op.cycles, op.dsps, op.products_in_logic, ebr.get(op.name, 0),
                       spram.get(op.name, 0), op.weight_bits_per_cycle, cells.get(op.name, 0)) for op in net.ops]
    costs.append(LayerCost("board", "UART etc.", 0, 0, 0, ebr.get("serial", 0), 0, 0, cells["board"]))
    return costs


def plan_facts(qgraph: QGraph, plan: HardwarePlan, board: Board) -> dict:
    """What the cost model says of ``plan`` on ``board``, as ``cnnhw plan --json`` and build.json
    write it (DESIGN.md names the keys)."""
    net = network_of(qgraph, plan)
    costs = plan_costs(qgraph, net, board)
    macs = qgraph.graph.macs
    return {
        "predicted": needs(costs),
        "cycles_per_inference": net.cycles_per_inference,
        "latency_cycles": net.latency(),
        "macs": macs,
        "multipliers": net.multipliers,
        "bound_cycles": math.ceil(macs / board.budget["dsp"]),
        "plan": plan.to_json(),
        "layer_costs": [dataclasses.asdict(cost) for cost in costs],  # the cost model, layer by layer
    }


def needs(costs: list[LayerCost]) -> dict[str, int]:
    """Board resources the plan needs, in budget keys (those this module predicts)."""
    return {"logic_cells": sum(c.logic_cells for c in costs), "dsp": sum(c.dsp for c in costs),
            "ebr": sum(c.ebr for c in costs), "spram": sum(c.spram for c in costs)}
