// A behavioural model of the board's SPI NOR flash (W25Q128-like), for simulation only.
//
// SPI mode 0: commands and addresses are sampled on rising SCK, data is shifted out on falling
// SCK, most significant bit first. Commands: 0xAB release from deep power-down, 0xB9 deep
// power-down, 0x03 read (24-bit address, then bytes until CS rises, address wrapping at SIZE).
// The model starts in deep power-down, as the iCE40 leaves the flash after configuring itself:
// until 0xAB, every other command is ignored and MISO stays high, so a loader that forgets to
// wake the flash reads 0xFF; a transaction that starts within tRES1 (3 us) of waking is ignored. Contents: erased (0xFF) everywhere, then the hex file named by the
// plusarg +FLASH_HEX=<file> ($readmemh format with @address lines: the build's stand-in for the
// bitstream at 0 and the weight image at its offset).
module spi_flash #(parameter SIZE = 2097152) (
    input cs_n,
    input sck,
    input mosi,
    output reg miso
);
    reg [7:0] memory [0:SIZE-1];
    reg [7:0] command;
    reg [23:0] address;
    reg [5:0] bits;         // bits received in this transaction (saturates)
    reg [23:0] sent_bytes;  // bytes shifted out since the address
    reg [2:0] out_bit;
    reg asleep;
    reg reading;
    reg ignoring;          // selected within tRES1 (3 us) of waking: the flash does not listen yet
    real woke_at;
    reg [1023:0] hex_file;
    integer i;

    initial begin
        for (i = 0; i < SIZE; i = i + 1) memory[i] = 8'hFF;
        if ($value$plusargs("FLASH_HEX=%s", hex_file)) $readmemh(hex_file, memory);
        asleep = 1;
        reading = 0;
        ignoring = 0;
        woke_at = -1.0e9;
        bits = 0;
        miso = 1;
        out_bit = 7;
        sent_bytes = 0;
    end

    always @(negedge cs_n) ignoring <= !asleep && ($realtime - woke_at < 3000.0);

    // Commands in; a one-byte command takes effect when CS rises.
    always @(posedge sck or posedge cs_n) begin
        if (cs_n) begin
            if (bits == 8 && command == 8'hAB && !ignoring) begin
                asleep <= 0;
                woke_at <= $realtime;
            end
            if (bits == 8 && command == 8'hB9 && !ignoring) asleep <= 1;
            bits <= 0;
            reading <= 0;
        end else if (!ignoring) begin
            if (bits < 8) command <= {command[6:0], mosi};
            else if (bits < 32) address <= {address[22:0], mosi};
            if (bits != 6'd63) bits <= bits + 1;
            if (bits == 31 && command == 8'h03 && !asleep) reading <= 1;
        end
    end

    // Data out, from the falling edge after the last address bit on.
    always @(negedge sck or posedge cs_n) begin
        if (cs_n) begin
            miso <= 1;
            out_bit <= 7;
            sent_bytes <= 0;
        end else if (reading) begin
            miso <= memory[(address + sent_bytes) % SIZE][out_bit];
            out_bit <= out_bit - 1;
            if (out_bit == 0) sent_bytes <= sent_bytes + 1;
        end
    end
endmodule
