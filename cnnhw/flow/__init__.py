"""The outside world: Verilog export, simulation and (later) synthesis and flashing."""
