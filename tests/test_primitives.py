"""The packed multiplier's primitive path: SB_MAC16 in 8x8 mode, simulated with yosys' own model
(ice40/cells_sim.v), gives exactly a[i] * b[i] for signed weights and unsigned or signed activations."""

import json

import pytest
from amaranth.back import verilog

from cnnhw.gateware.dsp import PackedMultiplier
from cnnhw.sim.primitives import PrimitivesPlatform, primitive_models
from cnnhw.sim.runner import run_cocotb


@pytest.mark.parametrize("b_signed", [False, True])
def test_sb_mac16_8x8_products_are_exact(b_signed, tmp_path):
    source = tmp_path / "packed.v"
    text = verilog.convert(PackedMultiplier(b_signed), name="packed", emit_src=False, platform=PrimitivesPlatform())
    assert "SB_MAC16" in text and "MODE_8x8" in text
    source.write_text(text)
    results = tmp_path / "results.json"
    run_cocotb([source, primitive_models(tmp_path)], "packed", "cocotb_packed", tmp_path, "verilator",
               {"PACKED_B_SIGNED": str(int(b_signed)), "PACKED_RESULTS": str(results)})
    seen = json.loads(results.read_text())
    assert len(seen) > 3000
    for a0, b0, a1, b1, p0, p1 in seen:
        assert (p0, p1) == (a0 * b0, a1 * b1), (a0, b0, a1, b1, p0, p1)
