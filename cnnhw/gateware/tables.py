"""Small constant tables as logic.

``Array`` of constants indexed by a signal becomes a ``switch`` that yosys turns into a ROM and
then places in a block RAM — a whole 4 Kbit EBR for sixteen biases. :func:`lookup` builds a tree
of multiplexers over the index bits instead, which stays in LUTs.
"""

from __future__ import annotations

import math

from amaranth import Const, Mux, Shape, Value


def table_bits(entries: int, width: int) -> float:
    """The logic-cell model's measure of a :func:`lookup` table (``cnnhw.plan.logic``): its width
    per 16 entries; a table of one entry is a constant and costs nothing."""
    return 0 if entries < 2 else width * math.ceil(entries / 16)


def lookup(values, index: Value, shape) -> Value:
    """``values[index]`` (an index past the end gives one of the values: callers never ask for it)."""
    shape = Shape.cast(shape)
    level = [Const(int(v), shape) for v in values]
    if not level:
        raise ValueError("lookup needs at least one value")
    bit = 0
    while len(level) > 1:
        level = [Mux(index[bit], level[i + 1], level[i]) if i + 1 < len(level) else level[i]
                 for i in range(0, len(level), 2)]
        bit += 1
    return level[0]
