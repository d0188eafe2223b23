"""One memory alone, as Amaranth writes it for our blocks (one synchronous read port; a write port
unless it is a ROM): what the block-RAM placement tests hand to each family's synthesis."""

import numpy as np


def memory_rtlil(width: int, depth: int, rom: bool) -> str:
    """RTLIL of module ``top`` holding a ``width x depth`` memory; a ROM's contents use every bit
    (yosys trims bits that are constant)."""
    from amaranth import Module, Signal
    from amaranth.back import rtlil
    from amaranth.lib.memory import Memory

    m = Module()
    init = [int(v) for v in np.random.default_rng(depth).integers(0, 1 << width, depth)] if rom else []
    m.submodules.memory = memory = Memory(shape=width, depth=depth, init=init)
    read = memory.read_port()
    ports = [Signal(range(depth)), Signal(width)]
    m.d.comb += [read.addr.eq(ports[0]), ports[1].eq(read.data)]
    if not rom:
        write = memory.write_port()
        ports += [Signal(range(depth)), Signal(width), Signal()]
        m.d.comb += [write.addr.eq(ports[2]), write.data.eq(ports[3]), write.en.eq(ports[4])]
    return rtlil.convert(m, ports=ports)
