"""Two 8x8 products in one iCE40 DSP (SB_MAC16 in ``MODE_8x8``).

yosys maps every wide-enough multiply to its own SB_MAC16 (``cnnhw.families.ice40``'s DspRule),
using one of its four 8x8 multipliers' worth of a 16x16 array; in 8x8 mode one SB_MAC16 delivers
two independent products,
``A[15:8] * B[15:8]`` on ``O[31:16]`` and ``A[7:0] * B[7:0]`` on ``O[15:0]``, both 16 bits.
``A_SIGNED``/``B_SIGNED`` then make *both* bytes of A/B two's complement (yosys'
``ice40/cells_sim.v``, the model the tests simulate the instance with). Every register of the
primitive is bypassed: the products are combinational, like the ``*`` they replace.

Contract: ``p[i] == a[i] * b[i]`` exactly, for ``a`` signed weights of at most 8 bits and ``b``
activations of at most 8 bits (unsigned, or signed with ``b_signed``); the products fit 16 bits.
Without a platform (Amaranth's simulator, the Verilog ``cnnhw sim`` exports) the component
elaborates to that arithmetic; with one (``cnnhw build``), to the primitive.
"""

from __future__ import annotations

from amaranth import Cat, Instance, Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

class PackedMultiplier(wiring.Component):
    def __init__(self, b_signed: bool):
        self.b_signed = b_signed
        operand = signed(8) if b_signed else unsigned(8)
        super().__init__({"a": In(data.ArrayLayout(signed(8), 2)), "b": In(data.ArrayLayout(operand, 2)),
                          "p": Out(data.ArrayLayout(signed(16), 2))})

    def elaborate(self, platform):
        m = Module()
        if platform is None:
            m.d.comb += [self.p[i].eq(self.a[i] * self.b[i]) for i in range(2)]
            return m
        product = Signal(32)
        m.submodules.mac = Instance(
            "SB_MAC16",
            p_MODE_8x8=1, p_A_SIGNED=1, p_B_SIGNED=int(self.b_signed),
            p_TOPOUTPUT_SELECT=2, p_BOTOUTPUT_SELECT=2,  # the 8x8 products, unregistered
            i_CLK=0, i_CE=1, i_A=Cat(self.a[1], self.a[0]), i_B=Cat(self.b[1], self.b[0]),
            i_C=0, i_D=0, i_AHOLD=0, i_BHOLD=0, i_CHOLD=0, i_DHOLD=0,
            i_IRSTTOP=0, i_IRSTBOT=0, i_ORSTTOP=0, i_ORSTBOT=0, i_OLOADTOP=0, i_OLOADBOT=0,
            i_ADDSUBTOP=0, i_ADDSUBBOT=0, i_OHOLDTOP=0, i_OHOLDBOT=0, i_CI=0, i_ACCUMCI=0, i_SIGNEXTIN=0,
            o_O=product,
        )
        m.d.comb += [self.p[0].eq(product[16:32]), self.p[1].eq(product[0:16])]
        return m
