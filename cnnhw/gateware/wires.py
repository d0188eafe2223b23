"""Wires for intermediate values of an arithmetic rule computed on signals."""

from __future__ import annotations

from amaranth import Module, Signal, unsigned


def wire_for(m: Module):
    """``keep(value, bits=None)``: ``value`` on a wire of its own (a combinational signal), so that
    an expression a rule reads several times (a rounding reads its operand three times) is built
    once in the Verilog: yosys would merge the copies, but Verilator would compute each, and
    nested roundings would multiply them. The wire has the value's shape, or ``bits`` unsigned
    bits where the rule knows the value is non-negative and below ``2**bits``: Amaranth sizes a
    shift by a signal for the largest amount its shape allows, so a shift amount or a shifted
    value the rule bounds would otherwise grow by hundreds of bits."""
    def keep(value, bits: int | None = None):
        wire = Signal(value.shape() if bits is None else unsigned(bits))
        m.d.comb += wire.eq(value)
        return wire
    return keep
