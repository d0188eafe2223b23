"""A multiplier made of logic cells, for products the DSPs cannot take.

``synth_ice40 -dsp`` turns every ``$mul`` whose product is at least 11 bits wide into an SB_MAC16,
however many the device has. A product the plan puts in logic (``LayerPlan.logic_products``)
must therefore not be a ``$mul``: :func:`logic_product` writes it as a sum of shifted partial
products ``x[i] ? w << i : 0`` (the last one subtracted for a signed ``x``), added in a balanced
tree. Every tree node is a signal marked ``keep``, so that yosys' ``alumacc`` does not merge the
tree into one ``$macc`` (which ``maccmap`` would build from LUT full adders, about 1.5x larger):
each node stays an adder on the iCE40 carry chain, one LUT for the sum and one for the
partial-product AND per bit. Measured with ``synth_ice40 -dsp`` and ``nextpnr --pack-only``:
an 8x8-bit signed product into a 20-bit accumulator takes 183 logic cells (266 as one ``$macc``).
A tree (depth ``ceil(log2(bits))``) rather than a chain keeps the carry paths in series short.

Contract: combinational, ``logic_product(m, w, x) == w * x`` exactly for any signed or unsigned
``w`` and ``x``; the result is as wide as Amaranth's ``w * x``.
"""

from __future__ import annotations

from amaranth import Module, Mux, Shape, Signal, Value


def logic_product(m: Module, w: Value, x: Value, name: str) -> Value:
    """``w * x`` from logic cells (see the module docstring); ``name`` prefixes the tree's signals."""
    w_shape, x_shape = w.shape(), x.shape()
    width = w_shape.width + x_shape.width
    result = Shape(width, w_shape.signed or x_shape.signed)
    rows = []
    for bit in range(x_shape.width):
        row = Mux(x[bit], w, 0)
        if x_shape.signed and bit == x_shape.width - 1:
            row = -row  # two's complement: the sign bit weighs -2**(n-1)
        rows.append(row << bit)
    level = 0
    while len(rows) > 1:
        paired = []
        for index in range(0, len(rows) - 1, 2):
            total = rows[index] + rows[index + 1]
            node = Signal(Shape(min(total.shape().width, width + 1), total.shape().signed),
                          name=f"{name}_l{level}n{index // 2}", attrs={"keep": 1})
            m.d.comb += node.eq(total)
            paired.append(node)
        if len(rows) % 2:
            paired.append(rows[-1])
        rows, level = paired, level + 1
    product = Signal(Shape(width + 1, True), name=f"{name}_product")
    m.d.comb += product.eq(rows[0])
    return product[:width].as_signed() if result.signed else product[:width]
