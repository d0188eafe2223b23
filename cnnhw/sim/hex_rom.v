// A read-only memory filled from a hex file when simulation starts (one word per line), read
// without a clock: data is word addr. The self-checking harness (cnnhw/sim/harness.py) keeps its
// stimulus and expected streams in these, so the compiled simulator does not depend on the data.
module cnnhw_hex_rom #(
    parameter WIDTH = 8,
    parameter DEPTH = 1,
    parameter FILE = "rom.hex"
) (
    input wire [$clog2(DEPTH + 1) - 1:0] addr,
    output wire [WIDTH - 1:0] data
);
    reg [WIDTH - 1:0] words [0:DEPTH - 1];
    initial $readmemh(FILE, words);
    assign data = addr < DEPTH ? words[addr] : {WIDTH{1'b0}};
endmodule
