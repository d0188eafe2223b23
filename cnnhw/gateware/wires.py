"""Wires and pipeline registers for the intermediate values of an arithmetic rule computed on
signals: the ``keep`` a rule's ``finish`` or ``sum_of`` calls (``cnnhw.quant``)."""

from __future__ import annotations

from amaranth import Module, Signal, Value, unsigned
# Amaranth has no public way to rebuild an expression with some signals replaced; its own
# passes use ValueTransformer (amaranth < 0.6 is pinned).
from amaranth.hdl._xfrm import ValueTransformer


def wire_for(m: Module):
    """``keep(value, bits=None, stage=False)``: ``value`` on a wire of its own (a combinational
    signal), so that an expression a rule reads several times (a rounding reads its operand three
    times) is built once in the Verilog: yosys would merge the copies, but Verilator would compute
    each, and nested roundings would multiply them. The wire has the value's shape, or ``bits``
    unsigned bits where the rule knows the value is non-negative and below ``2**bits``: Amaranth
    sizes a shift by a signal for the largest amount its shape allows, so a shift amount or a
    shifted value the rule bounds would otherwise grow by hundreds of bits.

    ``stage`` is where the rule would put a pipeline register; a unit that computes the rule in one
    cycle (a Concat, an Add of cnnhw's rule) ignores it."""
    def keep(value, bits: int | None = None, stage: bool = False):
        wire = Signal(_shape(value, bits))
        m.d.comb += wire.eq(value)
        return wire
    return keep


class SettlingStages:
    """``keep`` for a unit that holds its operands still until the result has settled (the
    Rescaler): ``keep(value, bits, stage=True)`` is a register, any other ``keep`` a wire as in
    :func:`wire_for`. A value that reads registers of different depths is right once the deepest
    has settled, so no stage needs aligning: :attr:`depth`, the longest chain of registers from
    the operands to any kept value, is how many cycles the result takes after its operands are
    final.

    ``m`` is None to only count the stages (planning: the rule's code run on placeholder signals
    gives the same depth as the hardware, from the same code)."""

    def __init__(self, m: Module | None = None):
        self.m = m
        self._wires: list[Signal] = []  # signals compare by value, so the depths go by id
        self._depths: dict[int, int] = {}

    def keep(self, value, bits: int | None = None, stage: bool = False):
        value = Value.cast(value)
        wire = Signal(_shape(value, bits))
        self._wires.append(wire)
        self._depths[id(wire)] = self._depth_read(value) + stage
        if self.m is not None:
            if stage:
                self._register(wire, value)
            else:
                self.m.d.comb += wire.eq(value)
        return wire

    def _depths_read(self, value: Value) -> set[int]:
        """The register depths of the signals ``value`` reads (0 for the operands)."""
        # Amaranth has no public way to list the signals an expression reads; _rhs_signals is
        # what its own checks use (amaranth < 0.6 is pinned).
        return {self._depths.get(id(signal), 0) for signal in value._rhs_signals()}

    def _depth_read(self, value: Value) -> int:
        return max(self._depths_read(value), default=0)

    def _register(self, register: Signal, value: Value) -> None:
        self.m.d.sync += register.eq(value)

    def depth_of(self, value) -> int:
        """Registers between the operands and ``value`` (a kept wire, or an expression of them)."""
        return self._depth_read(Value.cast(value))

    @property
    def depth(self) -> int:
        return max(self._depths.values(), default=0)


class PipelineStages(SettlingStages):
    """``keep`` for a pipeline whose registers all move together, when ``advance`` is high (a
    global stall): a new operand every cycle, each value ``depth`` cycles behind its operands.
    Every kept value must read registers of one depth, or it would combine parts of different
    elements: the rule's code pads its paths to equal depths (``times_constant``'s ``stages``),
    and this checks it."""

    def __init__(self, m: Module | None = None, advance=None):
        super().__init__(m)
        self.advance = advance

    def _depth_read(self, value: Value) -> int:
        depths = self._depths_read(value)
        if len(depths) > 1:
            raise ValueError(f"a pipelined value reads registers of depths {sorted(depths)}: pad the shorter paths")
        return max(depths, default=0)

    def _register(self, register: Signal, value: Value) -> None:
        if self.advance is None:
            self.m.d.sync += register.eq(value)
        else:
            with self.m.If(self.advance):
                self.m.d.sync += register.eq(value)


class AligningStages(PipelineStages):
    """``keep`` for a pipeline that runs code written for :class:`SettlingStages` (a rescaler's
    ``finish``, which may read an operand or a shallow wire again after a register): a kept value
    that reads registers of different depths reads each shallower signal through delay registers
    added here, up to the deepest (one chain per signal and depth, shared by every reader). The
    depths, and so :attr:`depth`, are those SettlingStages counts for the same code. ``advance``
    None: every register moves in every cycle (a pipeline that never stalls)."""

    def __init__(self, m: Module | None = None, advance=None):
        super().__init__(m, advance)
        self._delays: dict[tuple[int, int], Signal] = {}

    def keep(self, value, bits: int | None = None, stage: bool = False):
        value = Value.cast(value)
        depths = self._depths_read(value)
        if len(depths) > 1:
            value = _Substitute(lambda signal: self._delayed(signal, max(depths)))(value)
        return super().keep(value, bits, stage)

    def _delayed(self, signal: Signal, depth: int) -> Signal:
        """``signal`` as it was ``depth - its depth`` cycles ago (itself when it is that deep)."""
        own = self._depths.get(id(signal), 0)
        if own >= depth:
            return signal
        key = (id(signal), depth)
        if key not in self._delays:
            earlier = self._delayed(signal, depth - 1)
            later = Signal.like(earlier, name=f"{signal.name}_d{depth}")
            self._wires.append(later)
            self._depths[id(later)] = depth
            if self.m is not None:
                self._register(later, earlier)
            self._delays[key] = later
        return self._delays[key]


class _Substitute(ValueTransformer):
    """An expression with each signal replaced by ``replace(signal)``."""

    def __init__(self, replace):
        self.replace = replace

    def on_Signal(self, value):
        return self.replace(value)


def _shape(value, bits: int | None):
    return Value.cast(value).shape() if bits is None else unsigned(bits)
