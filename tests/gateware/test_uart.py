"""UART transmitter -> receiver loopback at several divisors, with random gaps between bytes."""

import random

import pytest
from amaranth import Module
from amaranth.sim import Simulator

from cnnhw.gateware.uart import UARTReceiver, UARTTransmitter
from tests.gateware.streams import get_n, put_all


@pytest.mark.parametrize("divisor", [4, 8, 13, 16])
def test_loopback(divisor):
    m = Module()
    m.submodules.tx = tx = UARTTransmitter(divisor)
    m.submodules.rx = rx = UARTReceiver(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    rng = random.Random(divisor)
    data = [0x00, 0xFF, 0x55, 0xAA] + [rng.randrange(256) for _ in range(40)]
    got = []

    async def sender(ctx):
        await put_all(ctx, tx.i, data, rng, gap=0.3)

    async def receiver(ctx):
        await get_n(ctx, rx.o, len(data), rng, stall=0.0, out=got, max_cycles=len(data) * 12 * divisor + 1000)

    simulator = Simulator(m)
    simulator.add_clock(1e-8)
    simulator.add_testbench(sender)
    simulator.add_testbench(receiver)
    simulator.run()
    assert [int(b) for b in got] == data
