// The simulation top of the self-checking harness (cnnhw/sim/harness.py): the simulator itself
// runs the clock (a 10 ns period) and holds reset for the first three rising edges, so that a
// testbench has nothing to do per cycle. The harness is the instance "check".
module cnnhw_sim_clock ();
    reg clk = 1'b0;
    reg rst = 1'b1;
    always #5 clk = ~clk;
    initial #32 rst = 1'b0;
    cnnhw_check check (.clk(clk), .rst(rst));
endmodule
