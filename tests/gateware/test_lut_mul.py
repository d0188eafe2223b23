"""Products made of logic cells: exact for every operand pair, and no DSP in the netlist."""


import pytest
from amaranth import Elaboratable, Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from cnnhw.gateware.lut_mul import logic_product

SHAPES = [(signed(8), signed(8)), (signed(8), unsigned(8)), (unsigned(8), signed(8)), (signed(4), signed(3)),
          (signed(5), unsigned(1)), (unsigned(3), signed(1))]


class Product(Elaboratable):
    def __init__(self, w_shape, x_shape):
        self.w, self.x = Signal(w_shape), Signal(x_shape)
        self.p = Signal(signed(w_shape.width + x_shape.width + 1))

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.p.eq(logic_product(m, self.w, self.x, "product"))
        return m


def _range(shape):
    return range(-(1 << (shape.width - 1)), 1 << (shape.width - 1)) if shape.signed else range(1 << shape.width)


@pytest.mark.parametrize("w_shape, x_shape", SHAPES, ids=[f"{w}x{x}" for w, x in SHAPES])
def test_every_operand_pair_gives_the_exact_product(w_shape, x_shape):
    dut = Product(w_shape, x_shape)
    wrong = []

    async def bench(ctx):
        for w in _range(w_shape):
            for x in _range(x_shape):
                ctx.set(dut.w, w)
                ctx.set(dut.x, x)
                if ctx.get(dut.p) != w * x and not wrong:
                    wrong.append((w, x, w * x, ctx.get(dut.p)))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    assert not wrong, "first difference (w, x, expected, got): %s" % (wrong,)


def test_a_wide_logic_product_takes_no_dsp_where_a_multiply_would(tmp_path):
    """yosys ``synth_ice40 -dsp`` maps an 8x8 ``*`` to an SB_MAC16; the same product from
    ``logic_product`` stays in logic cells."""
    from amaranth.back import rtlil

    from cnnhw.flow.tools import find_toolchain, run_tool, synthesis_cells

    class Both(Elaboratable):
        def __init__(self):
            self.w, self.x = Signal(signed(8)), Signal(signed(8))
            self.by_dsp, self.by_logic = Signal(signed(16)), Signal(signed(16))

        def elaborate(self, platform):
            m = Module()
            m.d.sync += [self.by_dsp.eq(self.w * self.x), self.by_logic.eq(logic_product(m, self.w, self.x, "p"))]
            return m

    counts = {}
    for name in ("by_dsp", "by_logic"):
        design = Both()
        ports = [design.w, design.x, getattr(design, name)]
        (tmp_path / f"{name}.il").write_text(rtlil.convert(design, name=name, ports=ports))
        (tmp_path / f"{name}.ys").write_text(f"read_rtlil {name}.il\nsynth_ice40 -dsp -top {name}\n"
                                             f"tee -q -o {name}.json stat -json\n")
        run_tool("yosys", [find_toolchain().yosys, "-q", f"{name}.ys"], tmp_path, tmp_path / f"{name}.log")
        counts[name] = synthesis_cells(tmp_path / f"{name}.json")
    assert counts["by_dsp"].get("SB_MAC16") == 1
    assert counts["by_logic"].get("SB_MAC16", 0) == 0 and counts["by_logic"]["SB_LUT4"] > 50
