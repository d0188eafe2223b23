"""cocotb testbench for tests/test_primitives.py: drives a PackedMultiplier built around yosys'
SB_MAC16 model with corner and random operands and records what comes out."""

import json
import os
import random

import cocotb
from cocotb.triggers import Timer


@cocotb.test()
async def packed_products(dut):
    b_signed = os.environ["PACKED_B_SIGNED"] == "1"
    b_values = list(range(-128, 128)) if b_signed else list(range(256))
    corners = [-128, -127, -1, 0, 1, 127]
    b_corners = [-128, -1, 0, 1, 127] if b_signed else [0, 1, 128, 254, 255]
    rng = random.Random(1)
    cases = [(a0, b0, a1, b1) for a0 in corners for b0 in b_corners for a1 in corners[::-1] for b1 in b_corners[:3]]
    cases += [(rng.randrange(-128, 128), rng.choice(b_values), rng.randrange(-128, 128), rng.choice(b_values))
              for _ in range(3000)]
    seen = []
    for a0, b0, a1, b1 in cases:
        dut.a.value = ((a1 & 0xFF) << 8) | (a0 & 0xFF)
        dut.b.value = ((b1 & 0xFF) << 8) | (b0 & 0xFF)
        await Timer(1, unit="ns")
        word = dut.p.value.to_unsigned()
        p0, p1 = word & 0xFFFF, word >> 16
        seen.append([a0, b0, a1, b1, p0 - (p0 >> 15 << 16), p1 - (p1 >> 15 << 16)])
    with open(os.environ["PACKED_RESULTS"], "w") as stream:
        json.dump(seen, stream)
