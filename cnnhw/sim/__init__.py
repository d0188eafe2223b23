"""RTL simulation: the exported Verilog in cocotb + Verilator (or Icarus), against the golden model."""
